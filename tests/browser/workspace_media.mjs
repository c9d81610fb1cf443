// Media previews through the media proxy: a WhatsApp image and a document
// (the stand-in Graph API knows the image, not the document) in one
// conversation. The image shows inline from a blob: URL (fetched with the
// token) and decodes; the document shows a placeholder and the view goes on;
// leaving the conversation revokes the blob: URL.
// usage: node workspace_media.mjs BASE_URL AGENT_TOKEN CONVERSATION_ID INBOUND_SECRET
import { createHmac } from "node:crypto";
import { chromium } from "playwright-core";

const [base, token, conv, secret] = process.argv.slice(2);
const fail = (msg) => { console.error("FAIL:", msg); process.exit(1); };
const T = { timeout: 8000 };

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${base}/workspace/?token=${encodeURIComponent(token)}`);
  const item = `[data-testid=inbox-item][data-conversation-id="${conv}"]`;
  await page.click(item, T);
  await page.waitForSelector(`[data-testid=conversation-view][data-conversation-id="${conv}"]`, T);

  const img = "[data-testid=attachment][data-preview=image] img";
  await page.waitForSelector(img, T);
  await page.waitForFunction((sel) => {
    const e = document.querySelector(sel);
    return e && e.complete && e.naturalWidth > 0;
  }, img, T);
  const shown = await page.$eval(img, (e) => ({ src: e.getAttribute("src"), w: e.naturalWidth, h: e.naturalHeight,
    href: e.closest("a")?.getAttribute("href") }));
  if (!shown.src.startsWith("blob:")) fail(`the image's src is ${shown.src}`);
  if (shown.href !== shown.src) fail("the image does not open full size");
  if (shown.w !== 4 || shown.h !== 3) fail(`the image decoded as ${shown.w}x${shown.h}`);

  // the document the platform does not have: a placeholder with its name, the view intact
  const failed = page.locator("[data-testid=attachment][data-preview=failed]");
  await failed.waitFor(T);
  if (!(await failed.textContent()).includes("order-2025-0611.pdf")) fail("the placeholder does not name the file");
  await page.waitForSelector("[data-testid=message]:has-text('Succulents')", T);
  await page.getByTestId("composer").waitFor(T);

  // another conversation opened: the image left the view and its blob: URL is revoked
  const raw = JSON.stringify({ channel: "api:shop", account: "acme", contact: { id: `c-${Date.now()}`, name: "Bo" },
    message_id: `m-${Date.now()}`, text: "hello", sent_at: new Date().toISOString() });
  const r = await fetch(`${base}/v1/inbound`, { method: "POST", body: raw,
    headers: { "X-Omnihub-Signature": "sha256=" + createHmac("sha256", secret).update(raw).digest("hex") } });
  if (r.status !== 202) fail(`inbound: HTTP ${r.status}`);
  const other = (await r.json()).conversation_id;
  await page.click(`[data-testid=inbox-item][data-conversation-id="${other}"]`, T);
  await page.waitForSelector(`[data-testid=conversation-view][data-conversation-id="${other}"]`, T);
  const alive = await page.evaluate((u) => fetch(u).then(() => true, () => false), shown.src);
  if (alive) fail("the blob: URL outlived its message");
  if (errors.length) fail(`page errors: ${errors.join("; ")}`);
  console.log(JSON.stringify({ image: shown }));
} finally {
  await browser.close();
}
