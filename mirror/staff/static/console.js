// The staff console: the live mirror card over /staff/ws, suggestions and replies over the API.
// Everything from the server is put on the page with textContent, never as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let state = null;
  let offsetMs = 0;                  // server clock - our clock
  let wasPresent = null;
  const seenRequests = new Map();     // request id -> how many alerts it has had here
  const selected = new Set();
  let ws = null;
  let retryMs = 1000;
  let audio = null;
  let lastGoesWith = "";
  let lastNewsAt = null;             // the newest web-store note seen (null: the first state, no alert)

  // --- helpers ------------------------------------------------------------------------
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function clock(unix) {
    return new Date(unix * 1000 - offsetMs).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit",
                                                                      second: "2-digit" });
  }
  function ago(unix) {
    const s = Math.max(0, Math.round((Date.now() + offsetMs) / 1000 - unix));
    return s < 60 ? s + " s" : Math.floor(s / 60) + " min " + (s % 60) + " s";
  }
  async function api(method, path, body) {
    const r = await fetch(path, {
      method, credentials: "same-origin",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    let data = null;
    try { data = await r.json(); } catch (_) { /* no JSON */ }
    if (r.status === 401) { location.replace("/staff"); throw new Error("logged out"); }
    if (!r.ok) throw new Error((data && data.error) || ("error " + r.status));
    return data;
  }

  // --- alerts: a sound and a visible banner ----------------------------------------------
  function soundReady() { return audio && audio.state === "running"; }
  function updateSoundButton() { $("sound").textContent = soundReady() ? "Sound on" : "Turn sound on"; }
  $("sound").addEventListener("click", function () {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      audio.resume().then(updateSoundButton);
      beep([660]);
    } catch (_) { /* no audio on this device */ }
  });
  function beep(tones) {
    if (!soundReady()) return;
    tones.forEach(function (f, i) {
      const o = audio.createOscillator(), g = audio.createGain();
      const t = audio.currentTime + i * 0.22;
      o.frequency.value = f;
      g.gain.setValueAtTime(0.0001, t);
      g.gain.exponentialRampToValueAtTime(0.3, t + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, t + 0.2);
      o.connect(g).connect(audio.destination);
      o.start(t);
      o.stop(t + 0.21);
    });
  }
  let alertTimer = null;
  function alertStaff(text, tones) {
    const a = $("alert");
    a.textContent = text;
    a.hidden = false;
    a.style.animation = "none";
    void a.offsetWidth;                         // restart the flash
    a.style.animation = "";
    beep(tones);
    clearTimeout(alertTimer);
    alertTimer = setTimeout(function () { a.hidden = true; }, 15000);
  }
  $("alert").addEventListener("click", function () { $("alert").hidden = true; });

  // --- the live card -----------------------------------------------------------------------
  function render(s) {
    state = s;
    offsetMs = s.now * 1000 - Date.now();
    const here = !!s.present;
    if (wasPresent === false && here) alertStaff("Someone stepped up to the mirror", [520, 780]);
    wasPresent = here;
    const p = $("presence");
    p.textContent = here ? "Someone at the mirror" : (s.ended ? "Session ended — nobody at the mirror"
                                                              : "Nobody at the mirror");
    p.classList.toggle("here", here);
    $("session").textContent = here && s.started_at ? "since " + clock(s.started_at)
      : (s.ended && s.ended_at ? "she left at " + clock(s.ended_at) + "; her requests and suggestions are wiped" : "");
    $("product").textContent = here && s.product ? s.product.name + " (" + s.product.sku + ")" : "–";
    $("colour").textContent = here && s.colour ? s.colour : "–";
    $("size").textContent = here && s.size ? s.size : "–";
    const c = s.call;
    $("call").textContent = !c ? "–" : c.state === "connected" ? c.name + ", " + ago(c.since)
      : c.state === "knocking" ? c.name + " is waiting to be let in" : c.state === "inviting" ? "showing the join code"
      : c.name + " " + c.state;
    const k = s.checkout;
    $("checkout").textContent = !k ? "–" : [k.state, k.code ? "code " + k.code : "", k.order_id ? "order " + k.order_id.slice(0, 8) : "",
                                             k.note].filter(Boolean).join(" · ");
    const cart = $("cart");
    clear(cart);
    if (here) {
      (s.cart.items || []).forEach(function (it) {
        cart.appendChild(el("li", "", [it.name || it.sku, it.colour, it.size, it.price ? "€" + it.price : ""]
          .filter(Boolean).join(" · ")));
      });
      if (s.cart.reserve) cart.appendChild(el("li", "", "Put one aside in her size"));
    }
    const lp = $("listener");
    lp.hidden = !s.listener_problem;
    lp.textContent = s.listener_problem || "";
    renderRequests(s);
    renderSuggestions(s);
    renderMember(s);
    renderReservations(s);
    renderTimeline(s);
    if (here && s.product && s.product.sku !== lastGoesWith) loadGoesWith(s.product);
    if (!here) { lastGoesWith = ""; clear($("goes-with")); $("gw-title").hidden = true; }
  }

  function renderRequests(s) {
    const ul = $("requests");
    const keep = {};
    ul.querySelectorAll("input[data-request]").forEach(function (i) { keep[i.dataset.request] = i.value; });
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.request
                                                                               : undefined;
    clear(ul);
    (s.requests || []).forEach(function (r) {
      if (r.open && (seenRequests.get(r.id) || 0) < (r.alerts || 1)) {
        const again = seenRequests.has(r.id);
        seenRequests.set(r.id, r.alerts || 1);
        alertStaff((again ? "Still waiting, nobody answered: " : "") + asks(r), again ? [880, 660, 880, 660]
                                                                                      : [880, 660, 880]);
      }
      const li = el("li", "request" + (r.open ? " open" : ""));
      li.dataset.id = r.id;
      const head = el("div");
      head.appendChild(el("span", "what", (r.kind === "size" ? "Size " + r.size + " · " : "Help · ") + describe(r)));
      const age = el("span", "age", r.open ? "waiting " + ago(r.at) : "at " + clock(r.at));
      if (r.open) age.dataset.at = r.at;
      head.appendChild(age);
      li.appendChild(head);
      if (r.open) {
        const form = el("form", "answer");
        const mine = el("button", "primary", "On my way");
        mine.type = "button";
        mine.addEventListener("click", function () { reply(r.id, "On my way"); });
        const input = el("input");
        input.type = "text"; input.maxLength = 200; input.placeholder = "or a short reply";
        input.dataset.request = r.id;
        input.value = keep[r.id] || "";
        const send = el("button", "", "Send");
        send.type = "submit";
        form.addEventListener("submit", function (e) { e.preventDefault(); if (input.value.trim()) reply(r.id, input.value); });
        form.append(mine, input, send);
        li.appendChild(form);
        if (focused === r.id) setTimeout(function () { input.focus(); }, 0);
      } else {
        li.appendChild(el("div", "muted", (r.answered_by || "") + ": “" + (r.reply || "") + "”"));
      }
      ul.appendChild(li);
    });
    $("no-requests").hidden = (s.requests || []).length > 0;
  }
  function asks(r) {
    return r.kind === "size" ? "She asks for size " + r.size + (r.colour ? " in " + r.colour : "") + ": " +
      ((r.product && (r.product.name || r.product.sku)) || "") : "She asks for help: " + describe(r);
  }
  function describe(r) {
    return [r.product && (r.product.name || r.product.sku), r.colour, r.size ? "size " + r.size : ""]
      .filter(Boolean).join(" · ");
  }
  async function reply(id, text) {
    try { await api("POST", "/staff/api/requests/" + encodeURIComponent(id) + "/reply", { text: text }); }
    catch (e) { alertStaff("Reply not sent: " + e.message, []); }
  }

  function renderSuggestions(s) {
    const st = $("push-status");
    const items = s.suggestions || [];
    const status = { pushed: "Pushed, on its way to the mirror", shown: "On the mirror now",
                     dismissed: "She dismissed them" }[s.suggestion_status];
    st.textContent = items.length ? (status || "") + (s.push ? " · by " + s.push.by + " at " + clock(s.push.at) : "")
      : "Nothing pushed to the mirror yet.";
    const ul = $("pushed-items");
    clear(ul);
    items.forEach(function (it) {
      const li = el("li", it.taken ? "taken" : "", [it.name, it.colour, it.size,
        it.in_stock === true ? "in stock in her size" : it.in_stock === false ? "not in stock in her size" : "",
        it.taken ? "✓ she took it" : ""].filter(Boolean).join(" · "));
      ul.appendChild(li);
    });
    const acc = $("accepted");
    clear(acc);
    (s.accepted || []).forEach(function (a) {
      acc.appendChild(el("li", "taken", [a.name || a.sku, a.colour, a.size, a.price ? "€" + a.price : ""]
        .filter(Boolean).join(" · ")));
    });
    $("accepted-title").hidden = !(s.accepted || []).length;
    updatePushButton();
  }

  function renderTimeline(s) {
    const ol = $("timeline");
    clear(ol);
    (s.timeline || []).slice().reverse().forEach(function (t) {
      const li = el("li");
      li.appendChild(el("time", "", clock(t.t)));
      li.appendChild(document.createTextNode(t.event));
      ol.appendChild(li);
    });
  }

  // --- the member card (only after her yes) and reservations -------------------------------
  function line(parts) { return parts.filter(Boolean).join(" · "); }
  function fill(id, rows, empty) {
    const ul = $(id);
    clear(ul);
    rows.forEach(function (t) { ul.appendChild(el("li", "", t)); });
    if (!rows.length) ul.appendChild(el("li", "muted", empty));
  }
  function renderMember(s) {
    const p = s.profile;
    $("member-status").textContent = p ? "She shares her profile with staff while she is here." : {
      asked: "She tapped a member card and is being asked whether to share her profile.",
      declined: "She keeps her profile private.",
      shared: "She said yes; her profile is loading…",
    }[s.member_status] || "No member card tapped.";
    $("profile").hidden = !p;
    if (!p) return;
    $("profile").dataset.member = p.member_id;
    $("profile-name").textContent = p.first_name || "Member";
    $("profile-sizes").textContent = (p.sizes || []).join(", ") + (p.sizes_noted ? "" : p.sizes.length ? " (from her orders)" : "–");
    fill("profile-orders", (p.orders || []).map(function (o) {
      return line([new Date(o.at * 1000).toLocaleDateString(), (o.items || []).join(", "), "€" + o.total, o.state]);
    }), "None yet.");
    fill("profile-looks", (p.looks || []).map(function (l) { return line([l.name || l.sku, l.colour]); }), "None yet.");
    fill("profile-reservations", (p.reservations || []).map(function (r) {
      return line([r.name, r.colour, r.size, r.source === "webstore" ? "from the web store" : r.source, r.state]);
    }), "Nothing.");
    fill("profile-wishlist", (p.wishlist || []).map(function (w) { return line([w.name || w.sku, w.colour, w.size]); }),
         "Empty.");
    fill("profile-notes", (p.notes || []).map(function (n) { return line([n.text, n.by, clock(n.at)]); }), "No notes.");
  }
  $("note-form").addEventListener("submit", async function (e) {
    e.preventDefault();
    const id = $("profile").dataset.member, text = $("note").value.trim();
    if (!id || !text) return;
    try {
      await api("POST", "/staff/api/members/" + encodeURIComponent(id) + "/notes", { text: text });
      $("note").value = "";
      $("member-msg").textContent = "Note added";
    } catch (err) { $("member-msg").textContent = err.message; }
  });
  $("forget").addEventListener("click", async function () {
    const id = $("profile").dataset.member;
    if (!id || !window.confirm("Delete everything the store keeps about " + ($("profile-name").textContent) +
                               "? Her orders stay for the books, without her name.")) return;
    try {
      await api("POST", "/staff/api/members/" + encodeURIComponent(id) + "/forget");
      $("member-msg").textContent = "Forgotten";
    } catch (err) { $("member-msg").textContent = err.message; }
  });

  function renderReservations(s) {
    const ul = $("reservations");
    clear(ul);
    const rows = s.reservations || [];
    rows.forEach(function (r) {
      const held = r.state === "held";
      const li = el("li", "reservation" + (held ? "" : " closed"));
      li.dataset.id = r.id;
      li.appendChild(el("span", "what", line([r.name, r.colour, r.size, r.for ? "for " + r.for : "",
        { mirror: "from the mirror", staff: "by staff", webstore: "from the web store" }[r.source] || "",
        held ? "until " + clock(r.expires_at) : r.state])));
      if (held) {
        [["collect", "Collected"], ["release", "Release"]].forEach(function (b) {
          const btn = el("button", "", b[1]);
          btn.type = "button";
          btn.dataset.how = b[0];
          btn.addEventListener("click", async function () {
            try { await api("POST", "/staff/api/reservations/" + r.id + "/" + b[0]); }
            catch (err) { $("reserve-msg").textContent = err.message; }
          });
          li.appendChild(btn);
        });
      }
      ul.appendChild(li);
    });
    $("no-reservations").hidden = rows.length > 0;
    const news = s.news || [];
    const newest = news.length ? news[0].at : 0;
    if (lastNewsAt !== null && newest > lastNewsAt) alertStaff(news[0].text, [700, 940]);
    lastNewsAt = newest;
    fill("news", news.map(function (n) { return clock(n.at) + " " + n.text; }), "");
    if (!news.length) clear($("news"));
    $("news-title").hidden = !news.length;
    $("reserve-current").disabled = !(s.present && s.product && s.size && s.colour);
  }
  $("reserve-current").addEventListener("click", async function () {
    if (!state || !state.product) return;
    try {
      await api("POST", "/staff/api/reservations", { sku: state.product.sku, colour: state.colour, size: state.size });
      $("reserve-msg").textContent = "Put aside: " + line([state.product.name, state.colour, state.size]);
    } catch (err) { $("reserve-msg").textContent = err.message; }
  });

  // --- catalogue and pushing -------------------------------------------------------------------
  function productTile(p) {
    const li = el("li", "product" + (selected.has(p.sku) ? " selected" : ""));
    li.dataset.sku = p.sku;
    li.tabIndex = 0;
    li.setAttribute("role", "checkbox");
    li.setAttribute("aria-checked", selected.has(p.sku) ? "true" : "false");
    if (p.image) {
      const img = el("img");
      img.src = p.image; img.alt = ""; img.loading = "lazy";
      li.appendChild(img);
    }
    li.appendChild(el("span", "name", p.name));
    li.appendChild(el("span", "meta", p.sku + " · €" + p.price + " · " + p.category));
    li.appendChild(el("span", "meta", stockLine(p)));
    function toggle() {
      if (selected.has(p.sku)) selected.delete(p.sku); else selected.add(p.sku);
      document.querySelectorAll('.product[data-sku="' + CSS.escape(p.sku) + '"]').forEach(function (n) {
        n.classList.toggle("selected", selected.has(p.sku));
        n.setAttribute("aria-checked", selected.has(p.sku) ? "true" : "false");
      });
      updatePushButton();
    }
    li.addEventListener("click", toggle);
    li.addEventListener("keydown", function (e) { if (e.key === " " || e.key === "Enter") { e.preventDefault(); toggle(); } });
    return li;
  }
  function stockLine(p) {
    const size = state && state.present ? state.size : "";
    const sizes = p.sizes || [];
    const match = sizes.find(function (z) { return size && z.toLowerCase() === size.toLowerCase(); })
      || (sizes.length === 1 ? sizes[0] : "");
    let total = 0;
    Object.keys(p.stock || {}).forEach(function (col) {
      Object.keys(p.stock[col]).forEach(function (z) { if (!match || z === match) total += p.stock[col][z]; });
    });
    return match ? total + " in " + match : total + " in stock · " + sizes.join(" ");
  }
  function showProducts(ul, products) {
    clear(ul);
    products.forEach(function (p) { ul.appendChild(productTile(p)); });
  }
  async function loadGoesWith(product) {
    lastGoesWith = product.sku;
    try {
      const data = await api("GET", "/staff/api/catalog?goes_with=" + encodeURIComponent(product.sku));
      $("gw-name").textContent = product.name;
      $("gw-title").hidden = !data.products.length;
      showProducts($("goes-with"), data.products);
    } catch (_) {
      $("gw-title").hidden = true;            // not in the catalogue database: nothing to propose
      clear($("goes-with"));
    }
  }
  $("search").addEventListener("submit", async function (e) {
    e.preventDefault();
    try {
      const data = await api("GET", "/staff/api/catalog?q=" + encodeURIComponent($("q").value.trim()));
      showProducts($("results"), data.products);
      if (!data.products.length) $("push-msg").textContent = "Nothing found";
    } catch (err) { $("push-msg").textContent = err.message; }
  });
  function updatePushButton() {
    const b = $("push");
    const n = selected.size;
    b.disabled = !n || !(state && state.present);
    b.textContent = n ? "Push " + n + " to the mirror" : "Push to the mirror";
  }
  $("push").addEventListener("click", async function () {
    const skus = Array.from(selected);
    $("push").disabled = true;
    $("push-msg").textContent = "Sending…";
    try {
      await api("POST", "/staff/api/suggestions", { skus: skus, session_id: state ? state.session_id : null });
      $("push-msg").textContent = "Pushed " + skus.length;
      selected.clear();
      document.querySelectorAll(".product.selected").forEach(function (n) {
        n.classList.remove("selected"); n.setAttribute("aria-checked", "false");
      });
    } catch (err) {
      $("push-msg").textContent = err.message;
    }
    updatePushButton();
  });

  // --- logout and the websocket -------------------------------------------------------------------
  $("logout").addEventListener("click", async function () {
    try { await api("POST", "/staff/logout"); } catch (_) { /* gone anyway */ }
    location.replace("/staff");
  });

  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/staff/ws");
    ws.onopen = function () { retryMs = 1000; $("conn").textContent = "live"; $("conn").classList.remove("off"); };
    ws.onmessage = function (e) {
      let m;
      try { m = JSON.parse(e.data); } catch (_) { return; }
      if (m.type === "state") {
        $("user").textContent = m.user;
        render(m.state);
      } else if (m.type === "logged_out") {
        location.replace("/staff");
      }
    };
    ws.onclose = function (e) {
      $("conn").textContent = "reconnecting…";
      $("conn").classList.add("off");
      if (e.code === 4001) { location.replace("/staff"); return; }
      setTimeout(connect, retryMs);
      retryMs = Math.min(10000, retryMs * 2);
    };
  }
  // a refused websocket handshake (401 after the cookie expired) shows only as a close: ask the API
  setInterval(function () {
    if (!ws || ws.readyState !== WebSocket.OPEN) api("GET", "/staff/api/state").catch(function () {});
  }, 5000);
  setInterval(function () {
    document.querySelectorAll(".age[data-at]").forEach(function (a) {   // the ages tick
      a.textContent = "waiting " + ago(Number(a.dataset.at));
    });
  }, 1000);
  updateSoundButton();
  connect();
  window.staffConsole = { state: function () { return state; } };
})();
