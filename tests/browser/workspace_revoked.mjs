// A session the daemon stops honouring before its exp (docs/security.md): the
// page is open and live when the daemon is restarted with another
// auth.jwt_secret, so the WebSocket's upgrade and every REST call are 401s
// though the token's exp is an hour away. The workspace ends the session
// once, as for an expired token: the sign-in form saying why, no more
// sockets and no more REST calls with the dead token, the stored token gone
// (a reload asks for one); a token of the new secret is live again.
// usage: [SCREENSHOT=signin.png] node workspace_revoked.mjs BASE_URL AGENT_TOKEN INBOUND_SECRET
// Prints "READY" once the page is live, then reads one line on stdin: a
// token of the new secret, written once the daemon is back with it.
import { createHmac } from "node:crypto";
import { createInterface } from "node:readline";
import { launch } from "./chromium.mjs";

const [base, token, secret] = process.argv.slice(2);
const fail = (msg) => { console.error("FAIL:", msg); process.exit(1); };
const T = { timeout: 10000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function inbound(text) {
  const raw = JSON.stringify({ channel: "api:shop", account: "acme", contact: { id: `c-${Date.now()}`, name: "Cy" },
    message_id: `m-${Date.now()}-${Math.random()}`, text, sent_at: new Date().toISOString() });
  const r = await fetch(`${base}/v1/inbound`, { method: "POST", body: raw,
    headers: { "X-Omnihub-Signature": "sha256=" + createHmac("sha256", secret).update(raw).digest("hex") } });
  if (r.status !== 202) fail(`inbound: HTTP ${r.status}`);
  return (await r.json()).conversation_id;
}

const browser = await launch();
try {
  const errors = [];
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  const upgrades = []; // every WebSocket the page opened or tried to
  const calls = []; // every REST answer: [time, path, status]
  const asked = []; // every REST request: [time, path]
  const rest = (r) => { const u = new URL(r.url()); return u.pathname.startsWith("/v1/") ? u.pathname : null; };
  page.on("websocket", () => upgrades.push(Date.now()));
  page.on("request", (r) => rest(r) && asked.push([Date.now(), rest(r)]));
  page.on("response", (r) => rest(r) && calls.push([Date.now(), rest(r), r.status()]));
  page.on("pageerror", (e) => errors.push(String(e)));
  const conv = await inbound("is anyone there?");
  await page.goto(`${base}/workspace/?token=${encodeURIComponent(token)}`);
  await page.waitForSelector("[data-testid=connection-state]:text-is('online')", T);
  await page.locator(`[data-testid=inbox-item][data-conversation-id="${conv}"]`).click();
  await page.waitForSelector("[data-testid=message]", T);

  console.log("READY");
  const restarted = Date.now();
  const fresh = (await lines.next()).value?.trim();
  if (!fresh) fail("no token of the new secret on stdin");

  // the sign-in form, saying why (before the fix: an upgrade every 5 s for ever)
  const form = page.getByTestId("token-input");
  await form.waitFor({ timeout: 30000 }).catch(() =>
    fail(`no sign-in form ${Math.round((Date.now() - restarted) / 1000)} s after the restart; ` +
      `${upgrades.filter((t) => t > restarted).length} upgrades since, ` +
      `${calls.filter(([t, , s]) => t > restarted && s === 401).length} REST 401s`));
  const why = await page.locator(".signin [role=alert]").textContent();
  if (!why.includes("no longer valid")) fail(`the sign-in form says ${JSON.stringify(why)}`);
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT });
  const ended = Date.now();
  const refused = calls.filter(([t, , s]) => t > restarted && s === 401).map(([, p]) => p);

  // nothing more with the dead token: no socket, no REST call
  await sleep(7000);
  const ups = upgrades.filter((t) => t > ended).length;
  const late = asked.filter(([t]) => t > ended).map(([, p]) => p);
  if (ups || late.length) fail(`after the session ended: ${ups} upgrades, REST calls ${late.join(", ")}`);
  if (await page.evaluate(() => sessionStorage.getItem("omnihub.token"))) fail("the dead token is still stored");
  await page.reload();
  await form.waitFor(T);
  if (asked.some(([t]) => t > ended)) fail("the reload used a token");

  // a token of the new secret: live again, a new conversation shows without a reload
  await form.fill(fresh);
  await page.getByTestId("sign-in").click();
  await page.waitForSelector("[data-testid=connection-state]:text-is('online')", T);
  const conv2 = await inbound("back?");
  await page.waitForSelector(`[data-testid=inbox-item][data-conversation-id="${conv2}"]`, T);
  if (errors.length) fail(`page errors: ${errors.join("; ")}`);
  console.log(JSON.stringify({ refused, upgrades: upgrades.length, ended_after_ms: ended - restarted }));
} finally {
  await browser.close();
}
