// The staff console's login page: PIN -> POST /staff/login -> the console.
"use strict";
(function () {
  const form = document.getElementById("login");
  const pin = document.getElementById("pin");
  const msg = document.getElementById("msg");
  const go = document.getElementById("go");
  const keypad = document.getElementById("keypad");

  // an on-screen keypad for the tablet (the field takes the keyboard too)
  ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", "OK"].forEach(function (k) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = k;
    b.className = "key";
    b.addEventListener("click", function () {
      if (k === "⌫") pin.value = pin.value.slice(0, -1);
      else if (k === "OK") form.requestSubmit();
      else if (pin.value.length < 64) pin.value += k;
      pin.focus();
    });
    keypad.appendChild(b);
  });

  form.addEventListener("submit", async function (e) {
    e.preventDefault();
    msg.textContent = "";
    go.disabled = true;
    try {
      const r = await fetch("/staff/login", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ pin: pin.value }),
      });
      if (r.ok) {
        location.replace("/staff");
        return;
      }
      let text = "Login failed (" + r.status + ")";
      try { text = (await r.json()).error || text; } catch (_) { /* not JSON */ }
      if (r.status === 401) text = "Wrong PIN";
      msg.textContent = text;
      pin.value = "";
    } catch (err) {
      msg.textContent = "The mirror does not answer; check the network";
    } finally {
      go.disabled = false;
      pin.focus();
    }
  });
})();
