// The agent workspace end to end: agent 1 signs in with the form, agent 2
// with ?token=; a conversation posted to /v1/inbound appears live in both;
// agent 1 opens it, claims it (agent 2 sees the assignee), replies with
// Enter (Shift+Enter only breaks the line), loses the network, types a reply
// that is queued while the customer writes again, comes back (the customer's
// message shows, once, and the queued reply is sent once), and resolves it;
// the status filter (data-testid inbox-filter) then lists the resolved one only.
// usage: node workspace.mjs BASE_URL AGENT1_TOKEN AGENT2_TOKEN INBOUND_SECRET
import { createHmac } from "node:crypto";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const [base, token1, token2, secret] = process.argv.slice(2);
const fail = (msg) => { console.error("FAIL:", msg); process.exit(1); };
const T = { timeout: 10000 };
const contactId = `cust-${Date.now()}`;

async function api(method, path, token, body) {
  const r = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

async function inbound(text, mid) {
  const raw = JSON.stringify({ channel: "api:shop", account: "acme", contact: { id: contactId, name: "Ann Lee" },
    message_id: mid, text, sent_at: new Date().toISOString() });
  const sig = "sha256=" + createHmac("sha256", secret).update(raw).digest("hex");
  const r = await fetch(`${base}/v1/inbound`, { method: "POST", body: raw, headers: { "X-Omnihub-Signature": sig } });
  if (r.status !== 202) fail(`inbound: HTTP ${r.status}`);
  return (await r.json()).conversation_id;
}

// axe-core in the page: no serious or critical accessibility violation
const axePath = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
async function accessible(page, what) {
  await page.addScriptTag({ path: axePath });
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
  });
  if (found.length) fail(`${what}: accessibility violations:\n  ${found.join("\n  ")}`);
}

async function history(conv) {
  const r = await api("GET", `/v1/conversations/${conv}/events?after=0&limit=1000`, token1);
  if (r.status !== 200) fail(`history: HTTP ${r.status}`);
  return r.body.events;
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const ctx1 = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const ctx2 = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const p1 = await ctx1.newPage();
  const p2 = await ctx2.newPage();
  const errors = [];
  p1.on("pageerror", (e) => errors.push(String(e)));
  p2.on("pageerror", (e) => errors.push(String(e)));
  if (process.env.WSDEBUG) {
    for (const [n, p] of [["p1", p1], ["p2", p2]]) {
      p.on("websocket", (ws) => {
        console.log(n, "ws open", Date.now());
        ws.on("framesent", (f) => console.log(n, "sent", String(f.payload).slice(0, 200)));
        ws.on("framereceived", (f) => console.log(n, "recv", String(f.payload).slice(0, 200)));
        ws.on("close", () => console.log(n, "ws close", Date.now()));
      });
      p.on("console", (m) => console.log(n, "console", m.text()));
    }
  }

  // agent 1: the sign-in form; agent 2: ?token=, which leaves the address bar
  await p1.goto(`${base}/workspace/`);
  await p1.getByTestId("token-input").waitFor(T);
  await accessible(p1, "the sign-in page");
  await p1.getByTestId("token-input").fill(token1);
  await p1.getByTestId("sign-in").click();
  await p2.goto(`${base}/workspace/?token=${encodeURIComponent(token2)}`);
  for (const p of [p1, p2]) {
    await p.waitForSelector("[data-testid=connection-state]:text-is('online')", T);
  }
  if (p2.url().includes("token=")) fail("the token stayed in the address bar");

  // a new conversation appears live (no reload) in both inboxes
  const conv = await inbound("Where is my parcel?", `m-${Date.now()}`);
  const item = `[data-testid=inbox-item][data-conversation-id="${conv}"]`;
  await p1.waitForSelector(item, T);
  await p2.waitForSelector(item, T);
  const attrs = await p1.$eval(item, (e) => [e.dataset.status, e.dataset.priority, e.dataset.assignee]);
  // (priority: normal unless a triage service raised it)
  if (attrs[0] !== "open" || !["urgent", "high", "normal", "low"].includes(attrs[1]) || attrs[2] !== "")
    fail(`item attributes ${attrs}`);
  await p1.waitForSelector(`${item} [data-testid=priority-badge]`, T);

  // one inbox for every channel: the Telegram chat listed before sign-in, the API one live;
  // the channel filter keeps one of them
  await p1.waitForSelector("[data-testid=inbox-item] .chan-telegram", T);
  const channel = p1.getByRole("combobox", { name: "Channel", exact: true });
  await channel.selectOption("telegram");
  await p1.waitForSelector(item, { state: "detached", ...T });
  if (await p1.locator("[data-testid=inbox-item] .chan-telegram").count() !== 1) fail("the telegram filter");
  await channel.selectOption("");
  await p1.waitForSelector(item, T);

  // open, claim: both agents see the assignee
  await p1.click(item);
  await p1.waitForSelector(`[data-testid=conversation-view][data-conversation-id="${conv}"]`, T);
  await p1.waitForSelector("[data-testid=message][data-seq='1']:has-text('Where is my parcel?')", T);
  await p1.getByTestId("claim").click();
  await p1.waitForSelector(`${item}[data-assignee=agent-1]`, T);
  await p2.waitForSelector(`${item}[data-assignee=agent-1]`, T);
  await p2.click(item);
  await p2.getByTestId("claim").click();
  await p2.waitForSelector(".notice:has-text('agent-1')", T); // the 409, shown

  // agent 2 starts typing: agent 1 sees who (collision warning); it never reaches the history
  await p2.getByTestId("composer").pressSequentially("I can take");
  await p1.waitForSelector(".typing:has-text('agent-2')", T);
  await p2.getByTestId("composer").fill("");

  // the side panels: their own APIs, or "not available" when the server has none
  await p1.getByTestId("contact-panel").waitFor(T);
  await p1.waitForFunction(() => {
    const t = (id) => document.querySelector(`[data-testid=${id}]`)?.textContent ?? "";
    return !t("contact-panel").includes("loading") && t("kpi-frt") && !t("kpi-frt").includes("…") && t("kpi-aht");
  }, null, T);
  const suggestion = p1.getByTestId("suggestion").first();
  if (await suggestion.count()) { // knowledge base present: a click fills the composer
    await suggestion.click();
    const v = await p1.getByTestId("composer").inputValue();
    if (!v || !(await suggestion.textContent()).includes(v.slice(0, 20))) fail("a suggestion did not fill the composer");
    await p1.getByTestId("composer").fill("");
  }

  // a private note: styled apart, stored as internal, never a reply
  await p1.getByRole("checkbox", { name: "private note" }).check();
  await p1.getByTestId("composer").fill("VIP: ship express");
  await p1.getByTestId("send").click();
  await p1.waitForSelector("[data-testid=message].note:has-text('VIP: ship express')", T);
  await p1.getByRole("checkbox", { name: "private note" }).uncheck();

  // Shift+Enter breaks the line, Enter sends
  const composer = p1.getByTestId("composer");
  await composer.click();
  await composer.pressSequentially("It left");
  await composer.press("Shift+Enter");
  await composer.pressSequentially("our warehouse today.");
  if ((await composer.inputValue()) !== "It left\nour warehouse today.") fail("Shift+Enter did not break the line");
  await composer.press("Enter");
  await p1.waitForSelector("[data-testid=message]:has-text('our warehouse today.')", T);
  if ((await composer.inputValue()) !== "") fail("the composer was not cleared");
  let events = await history(conv);
  const note = events.filter((e) => e.data?.text === "VIP: ship express");
  if (note.length !== 1 || note[0].data.internal !== true) fail(`the note in the history: ${JSON.stringify(note)}`);
  let replies = events.filter((e) => e.type === "omnihub.message.outbound" && e.data.text === "It left\nour warehouse today.");
  if (replies.length !== 1) fail(`the reply is ${replies.length} times in the history`);

  // offline: the state shows it, a reply typed meanwhile is queued, then sent once
  await ctx1.setOffline(true);
  await p1.waitForSelector("[data-testid=connection-state]:text-is('offline')", T);
  await composer.fill("Sent after the outage.");
  await composer.press("Enter");
  await p1.waitForSelector(".msg.pending:has-text('Sent after the outage.')", T);
  await inbound("Are you there?", `m1-${Date.now()}`); // arrives while agent 1 is away
  await p2.waitForSelector("[data-testid=message]:has-text('Are you there?')", T);
  await ctx1.setOffline(false);
  await p1.waitForSelector("[data-testid=connection-state]:text-is('online')", { timeout: 20000 });
  await p1.waitForSelector("[data-testid=message][data-seq]:has-text('Sent after the outage.')", { timeout: 20000 });
  await p1.waitForSelector(".msg.pending", { state: "detached", timeout: 10000 });
  await p1.waitForSelector("[data-testid=message]:has-text('Are you there?')", T); // resumed, no gap

  // a new customer message while the conversation is open: shown once, in order
  await inbound("Thanks!", `m2-${Date.now()}`);
  await p1.waitForSelector("[data-testid=message]:has-text('Thanks!')", T);
  await accessible(p1, "the inbox with a conversation open");
  await p1.screenshot({ path: process.env.SCREENSHOT || "/tmp/omnihub-workspace.png" });

  // resolve: the inbox item follows in both
  await p1.getByTestId("resolve").click();
  await p1.waitForSelector(`${item}[data-status=resolved]`, T);
  await p2.waitForSelector(`${item}[data-status=resolved]`, T);

  const seqs = await p1.$$eval("[data-testid=message]", (els) => els.map((e) => Number(e.dataset.seq)));
  if (seqs.some((s, i) => i && s <= seqs[i - 1])) fail(`messages out of order or twice: ${seqs}`);
  events = await history(conv);
  const texts = events.filter((e) => /^omnihub\.message\.(in|out)bound$/.test(e.type)).map((e) => e.data.text);
  const want = ["Where is my parcel?", "VIP: ship express", "It left\nour warehouse today.", "Are you there?",
    "Sent after the outage.", "Thanks!"];
  if (JSON.stringify(texts) !== JSON.stringify(want)) fail(`history texts ${JSON.stringify(texts)}`);
  const shown = await p1.$$eval("[data-testid=message] .text", (els) => els.map((e) => e.textContent));
  if (JSON.stringify(shown) !== JSON.stringify(want)) fail(`the view shows ${JSON.stringify(shown)}`);

  // the contract's inbox-filter is one control, the status <select>: a status keeps only its
  // conversations, resolved ones too (the default view, all, hides none); a view narrows it
  const statusFilter = p1.getByTestId("inbox-filter");
  const tg = "[data-testid=inbox-item]:has(.chan-telegram)";
  const listed = async (status, want) => {
    const got = await p1.$$eval("[data-testid=inbox-item]", (els) => els.map((e) => e.dataset.status));
    if (got.length !== want || got.some((s) => s !== status)) fail(`status ${status}: the inbox shows ${got}`);
  };
  if ((await p1.$eval(tg, (e) => e.dataset.status)) !== "open") fail("the telegram conversation is not open");
  await statusFilter.selectOption("resolved");
  await p1.waitForSelector(tg, { state: "detached", ...T });
  await p1.waitForSelector(`${item}[data-status=resolved]`, T);
  await listed("resolved", 1);
  await statusFilter.selectOption("open");
  await p1.waitForSelector(item, { state: "detached", ...T });
  await p1.waitForSelector(tg, T);
  await listed("open", 1);
  await statusFilter.selectOption("pending");
  await p1.waitForSelector(".vlist .empty", T);
  await listed("pending", 0);
  // each step waits for what differs from the step before (not an empty list again)
  await statusFilter.selectOption("resolved");
  await p1.waitForSelector(`${item}[data-status=resolved]`, T);
  await p1.getByRole("radio", { name: /^unassigned/ }).check();
  await p1.waitForSelector(item, { state: "detached", ...T });
  await p1.waitForSelector(".vlist .empty", T);
  await listed("resolved", 0); // agent 1's, not unassigned
  await p1.getByRole("radio", { name: /^mine/ }).check();
  await p1.waitForSelector(item, T);
  await listed("resolved", 1);
  await p1.getByRole("radio", { name: /^all/ }).check();
  await statusFilter.selectOption("");
  await p1.waitForSelector(tg, T);
  await p1.waitForSelector(item, T);

  if (errors.length) fail(`page errors: ${errors.join("; ")}`);
  console.log(JSON.stringify({ conversation: conv, seqs }));
} finally {
  await browser.close();
}
