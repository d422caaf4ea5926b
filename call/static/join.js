// The friend's side of the mirror call. No build step, no framework.
// The join token travels in the URL fragment (/join#TOKEN), so it never
// reaches the server's logs or a Referer header; it is sent once, in the
// first websocket message.
"use strict";

const $ = (id) => document.getElementById(id);
const MESSAGES = {
  forged: ["This link isn't valid", "Ask your friend at the mirror for a new link."],
  expired: ["This link has expired", "Links work for a few minutes. Ask your friend for a new one."],
  used: ["This link was already used", "Each link works once. Ask your friend for a new one."],
  ended: ["The session has ended", "Your friend has left the mirror."],
  busy: ["The mirror is busy", "Someone else is already in a call with this mirror. Try again in a while."],
  rate_limited: ["Too many attempts", "Wait a minute, then try again."],
  declined: ["Not this time", "The shopper didn't let the call in."],
  camera_denied: ["Camera or microphone blocked", "Allow them for this site in your browser settings and reload, or join without a camera."],
  no_token: ["This link is incomplete", "Open the whole link your friend sent you."],
  connection_lost: ["The connection was lost", "Check your network and ask for a new link."],
  bad_offer: ["Your browser couldn't start the call", "Try a current Chrome, Safari or Firefox."],
  bad_message: ["Something went wrong", "Reload the page and try again."],
  timeout: ["The mirror didn't hear from you", "Reload the page and try again."],
  not_now: ["Something went wrong", "Reload the page and try again."],
  friend_left: ["You left the call", "Thanks for joining."],
  "shopper hung up": ["The call has ended", "The shopper hung up."],
  shopper_left: ["The call has ended", "The shopper left the mirror."],
  "staff ended the call": ["The call has ended", "The store ended the call."],
  mirror_closed: ["The call has ended", "The mirror was switched off."],
};

const state = { ws: null, pc: null, local: null, phase: "start", ended: false, lastError: "", g2g: [], tc: false };
window.mirrorCall = state;   // for diagnostics and the bench

const token = decodeURIComponent(location.hash.slice(1));
history.replaceState(null, "", location.pathname);

function show(id) {
  for (const s of document.querySelectorAll(".screen")) s.classList.toggle("hidden", s.id !== id);
  state.phase = id;
}

function finish(reason) {
  if (state.ended) return;
  state.ended = true;
  state.lastError = reason;
  const [title, text] = MESSAGES[reason] || ["The call has ended", ""];
  $("message-title").textContent = title;
  $("message-text").textContent = text;
  show("message");
  if (state.pc) state.pc.close();
  if (state.local) state.local.getTracks().forEach((t) => t.stop());
  if (state.ws && state.ws.readyState <= 1) state.ws.close();
}

function send(msg) {
  if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify(msg));
}

async function join(withCamera) {
  if (!token) return finish("no_token");
  if (withCamera) {
    try {
      state.local = await navigator.mediaDevices.getUserMedia({
        // the mirror shows the friend in a small tile: 360p is plenty and spares both ends' CPU
        video: { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } }, audio: true });
    } catch (e) {
      $("join-nocam").classList.remove("hidden");
      state.lastError = "camera_denied";
      const [title, text] = MESSAGES.camera_denied;
      $("message-title").textContent = title;
      $("message-text").textContent = text;
      document.querySelector("#start p").textContent = `${title}. ${text}`;
      return;
    }
  }
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws/join`);
  state.ws = ws;
  ws.onopen = () => send({ type: "join", token, name: $("name").value.trim() || "A friend" });
  ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  ws.onclose = () => { if (!state.ended) finish(state.phase === "call" || state.phase === "lobby" ? "connection_lost" : (state.lastError || "connection_lost")); };
}

async function onMessage(msg) {
  switch (msg.type) {
    case "lobby": show("lobby"); break;
    case "admitted": await startCall(); break;
    case "answer": await state.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp }); break;
    case "reaction_ok": toast("Sent"); break;
    case "declined": finish("declined"); break;
    case "ended": finish(msg.reason); break;
    case "error":
      if (msg.fatal === false) { toast(msg.reason === "rate_limited" ? "Slow down a little" : msg.reason); break; }
      finish(msg.reason); break;
  }
}

async function startCall() {
  show("call");
  const pc = new RTCPeerConnection({ iceServers: [] });
  state.pc = pc;
  if (state.local) {
    state.local.getTracks().forEach((t) => pc.addTrack(t, state.local));
    $("local").srcObject = state.local;
  } else {
    pc.addTransceiver("video", { direction: "recvonly" });
    $("local").classList.add("hidden");
  }
  pc.ontrack = (ev) => {
    if (ev.track.kind === "video") {
      $("remote").srcObject = ev.streams[0] || new MediaStream([ev.track]);
      if (state.tc) watchTimecode();
    }
  };
  pc.onicecandidate = (ev) => send(ev.candidate
    ? { type: "candidate", candidate: ev.candidate.candidate, sdpMid: ev.candidate.sdpMid, sdpMLineIndex: ev.candidate.sdpMLineIndex }
    : { type: "candidate", candidate: null });
  pc.onconnectionstatechange = () => { if (pc.connectionState === "failed") finish("connection_lost"); };
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  send({ type: "offer", sdp: pc.localDescription.sdp });
}

function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.classList.remove("hidden");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.add("hidden"), 1500);
}

function snapshot() {
  const v = $("remote");
  if (!v.videoWidth) return;
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  c.getContext("2d").drawImage(v, 0, 0);
  c.toBlob((blob) => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "mirror-look.png";
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 5000);
  }, "image/png");
  send({ type: "snapshot" });
  toast("Picture saved");
}

// Glass-to-glass latency: the mirror stamps wall-clock milliseconds into the
// bottom-left of each frame (40 blocks: 32 bits + an 8-bit check, see
// call/media.py); read it back as each frame is shown.
const TC_BITS = 40, TC_BLOCK_FRAC = 1 / 48, TC_ROW_FRAC = 1 / 27;
function checksum(v) { return ((v ^ (v >>> 8) ^ (v >>> 16) ^ (v >>> 24) ^ 0x5A) & 0xFF) >>> 0; }
function readTimecode(video, canvas) {
  const w = video.videoWidth, h = video.videoHeight;
  if (!w) return null;
  const bw = Math.max(2, Math.round(w * TC_BLOCK_FRAC)), bh = Math.max(2, Math.round(h * TC_ROW_FRAC));
  canvas.width = TC_BITS * bw; canvas.height = bh;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, h - bh, TC_BITS * bw, bh, 0, 0, TC_BITS * bw, bh);
  const px = ctx.getImageData(0, 0, TC_BITS * bw, bh).data;
  const y = Math.floor(bh / 2);
  let hi = 0, lo = 0;
  for (let i = 0; i < TC_BITS; i++) {
    const x = i * bw + Math.floor(bw / 2), o = (y * TC_BITS * bw + x) * 4;
    const bit = (px[o] + px[o + 1] + px[o + 2]) / 3 > 127 ? 1 : 0;
    if (i < 32) hi = ((hi << 1) | bit) >>> 0; else lo = (lo << 1) | bit;
  }
  return lo === checksum(hi) ? hi : null;
}
function watchTimecode() {
  const v = $("remote"), canvas = document.createElement("canvas");
  const onFrame = (now, meta) => {
    const value = readTimecode(v, canvas);
    if (value !== null) {
      const shown = performance.timeOrigin + (meta && meta.expectedDisplayTime ? meta.expectedDisplayTime : performance.now());
      const delta = ((Math.round(shown) % 4294967296) - value + 4294967296) % 4294967296;
      if (delta < 10000) state.g2g.push(delta);
    }
    v.requestVideoFrameCallback(onFrame);
  };
  v.requestVideoFrameCallback(onFrame);
}
state.startTimecode = () => { state.tc = true; if ($("remote").srcObject) watchTimecode(); };

$("join").onclick = () => join(true);
$("join-nocam").onclick = () => join(false);
$("leave-lobby").onclick = () => { send({ type: "bye" }); finish("friend_left"); };
$("hangup").onclick = () => { send({ type: "bye" }); finish("friend_left"); };
$("snapshot").onclick = snapshot;
for (const b of document.querySelectorAll("[data-reaction]")) b.onclick = () => send({ type: "reaction", kind: b.dataset.reaction });
$("comment-form").onsubmit = (ev) => {
  ev.preventDefault();
  const text = $("comment").value.trim();
  if (text) send({ type: "reaction", kind: "comment", text });
  $("comment").value = "";
};
if (!token) finish("no_token");
