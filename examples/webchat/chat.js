// A minimal omnihub webchat client: speaks the WebSocket protocol of
// CONTRACT.md, reconnects with exponential backoff, and sends with a
// client_msg_id so a resent message is never stored twice. A fresh page
// shows the whole history; a reconnect resumes after the last seq shown.
(function () {
  "use strict";
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const me = params.get("sub") || "";
  const store = window.localStorage;
  const key = (k) => "omnihub." + me + "." + k;
  const log = document.getElementById("log");
  const state = document.getElementById("state");
  let ws = null, backoff = 500, conv = store.getItem(key("conv")) || "new";
  let lastSeq = 0; // a fresh page shows the history; a reconnect resumes after lastSeq
  let epoch = store.getItem(key("epoch"));
  const shown = new Set();
  const outbox = JSON.parse(store.getItem(key("outbox")) || "[]");

  function saveOutbox() { store.setItem(key("outbox"), JSON.stringify(outbox)); }

  function show(ev) {
    if (shown.has(ev.seq)) return;
    shown.add(ev.seq);
    const d = ev.data || {};
    if (ev.type === "omnihub.message.status") return;
    const li = document.createElement("li");
    li.textContent = d.text || "[" + d.kind + "]";
    li.dataset.seq = ev.seq;
    if (d.author && d.author.kind === "customer") li.className = "mine";
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
  }

  function setState(s) { state.textContent = s; document.body.dataset.state = s; }

  function subscribe() {
    const msg = { type: "subscribe", conversation: conv, after: lastSeq };
    if (epoch) msg.epoch = epoch;
    ws.send(JSON.stringify(msg));
  }

  function flushOutbox() {
    for (const m of outbox) ws.send(JSON.stringify(Object.assign({ type: "send" }, m)));
  }

  function connect() {
    if (!token) { setState("no token: open with ?token=<customer JWT>&sub=<id>"); return; }
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
      "/v1/ws?access_token=" + encodeURIComponent(token);
    ws = new WebSocket(url);
    ws.onopen = () => {
      backoff = 500;
      setState("online");
      subscribe(); // "new" means this customer's conversation, wherever it was started
      flushOutbox();
    };
    ws.onmessage = (m) => {
      const f = JSON.parse(m.data);
      if (f.type === "subscribed") {
        if (conv !== f.conversation) { conv = f.conversation; store.setItem(key("conv"), conv); }
        if (!f.recovered && lastSeq > 0) { // another epoch: start over
          lastSeq = 0; shown.clear(); log.innerHTML = "";
        }
        epoch = f.epoch;
        store.setItem(key("epoch"), epoch);
      } else if (f.type === "event") {
        const ev = f.event;
        if (ev.subject !== conv || ev.seq <= lastSeq) return;
        lastSeq = ev.seq;
        show(ev);
      } else if (f.type === "ack") {
        const i = outbox.findIndex((o) => o.client_msg_id === f.client_msg_id);
        if (i >= 0) { outbox.splice(i, 1); saveOutbox(); }
        if (conv === "new") { conv = f.conversation_id; store.setItem(key("conv"), conv); }
      } else if (f.type === "error") {
        console.warn("omnihub:", f.code, f.message);
      }
    };
    ws.onclose = () => {
      setState("offline, retrying");
      setTimeout(connect, backoff + Math.random() * backoff / 2);
      backoff = Math.min(backoff * 2, 15000);
    };
  }

  document.getElementById("form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = document.getElementById("text");
    const m = { conversation: conv, client_msg_id: me + "-" + Date.now() + "-" +
      Math.random().toString(36).slice(2), text: input.value };
    input.value = "";
    outbox.push(m);
    saveOutbox();
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(Object.assign({ type: "send" }, m)));
  });

  window.omnihubChat = {
    get lastSeq() { return lastSeq; },
    get conversation() { return conv; },
    drop() { if (ws) ws.close(); }, // what a lost network does; used by the browser test
  };
  connect();
})();
