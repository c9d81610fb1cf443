// A session that expires (docs/security.md): agent 1 stays on the page, whose
// WebSocket the daemon ends at the token's exp (error unauthorized, 1008);
// agent 2 is offline across exp, so the upgrade after it fails. Both pages
// stop reconnecting with the dead token and show the sign-in form saying the
// session expired; agent 1 then signs in again with it and is live again.
// usage: node workspace_expiry.mjs BASE_URL SHORT_TOKEN1 SHORT_TOKEN2 FRESH_TOKEN1 INBOUND_SECRET
import { createHmac } from "node:crypto";
import { launch } from "./chromium.mjs";

const [base, short1, short2, fresh1, secret] = process.argv.slice(2);
const fail = (msg) => { console.error("FAIL:", msg); process.exit(1); };
const T = { timeout: 10000 };
const expOf = (t) => JSON.parse(Buffer.from(t.split(".")[1], "base64url").toString()).exp * 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const EXPIRED = ".signin [role=alert]:has-text('Session expired')";

const browser = await launch();
try {
  const errors = [];
  const open = async (token) => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    const upgrades = []; // every WebSocket the page opened or tried to
    page.on("websocket", (ws) => upgrades.push(ws.url()));
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${base}/workspace/?token=${encodeURIComponent(token)}`);
    await page.waitForSelector("[data-testid=connection-state]:text-is('online')", T);
    return { ctx, page, upgrades };
  };
  const [a, b] = await Promise.all([open(short1), open(short2)]);
  const exp = Math.max(expOf(short1), expOf(short2));
  if (Date.now() > exp - 2000) fail("the short tokens expired before the pages were up: give them longer");

  // agent 2 goes away before exp and comes back after it: the upgrade then is refused
  await b.ctx.setOffline(true);
  await b.page.waitForSelector("[data-testid=connection-state]:text-is('offline')", T);

  // the daemon ends agent 1's socket within 2 s of exp: the sign-in form says why
  await a.page.waitForSelector(EXPIRED, { timeout: exp - Date.now() + 8000 });
  await sleep(Math.max(0, exp + 1000 - Date.now()));
  await b.ctx.setOffline(false);

  // no reconnect with the dead token (before the fix: one every 5 s at most, each a 401)
  const steady = async (p, who, ms) => {
    const n = p.upgrades.length;
    await sleep(ms);
    if (p.upgrades.length !== n) fail(`${who} reconnected ${p.upgrades.length - n} times with the expired token`);
    if (!(await p.page.locator(EXPIRED).isVisible())) fail(`${who}: the expiry is not shown`);
    if (await p.page.getByTestId("connection-state").count()) fail(`${who}: still in the workspace`);
    if (await p.page.evaluate(() => sessionStorage.getItem("omnihub.token"))) fail(`${who}: the dead token is still stored`);
  };
  await steady(a, "agent 1", 7000);
  await b.page.waitForSelector(EXPIRED, T);
  await steady(b, "agent 2", 5000);

  // a new token in the form connects as usual
  const before = a.upgrades.length;
  await a.page.getByTestId("token-input").fill(fresh1);
  await a.page.getByTestId("sign-in").click();
  await a.page.waitForSelector("[data-testid=connection-state]:text-is('online')", T);
  if (await a.page.locator(EXPIRED).count()) fail("the expiry is still shown after signing in again");

  // live again: a new conversation shows without a reload
  const raw = JSON.stringify({ channel: "api:shop", account: "acme", contact: { id: `c-${Date.now()}`, name: "Bo" },
    message_id: `m-${Date.now()}`, text: "still there?", sent_at: new Date().toISOString() });
  const r = await fetch(`${base}/v1/inbound`, { method: "POST", body: raw,
    headers: { "X-Omnihub-Signature": "sha256=" + createHmac("sha256", secret).update(raw).digest("hex") } });
  if (r.status !== 202) fail(`inbound: HTTP ${r.status}`);
  const conv = (await r.json()).conversation_id;
  await a.page.waitForSelector(`[data-testid=inbox-item][data-conversation-id="${conv}"]`, T);
  if (a.upgrades.length !== before + 1) fail(`agent 1 opened ${a.upgrades.length - before} sockets after signing in`);
  if (errors.length) fail(`page errors: ${errors.join("; ")}`);
  console.log(JSON.stringify({ upgrades: [a.upgrades.length, b.upgrades.length] }));
} finally {
  await browser.close();
}
