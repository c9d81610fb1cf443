// Workspace figures for docs/performance.md (not part of the test suite):
// seeds N conversations through /v1/inbound (unless SEED=0), then in
// Chromium measures the first inbox row's paint, the time until all N are
// listed, frame times while scrolling the virtual list, and frame times
// while 100 inbound messages a second arrive live.
// usage: node workspace_bench.mjs BASE_URL AGENT_TOKEN INBOUND_SECRET [N]
import { createHmac } from "node:crypto";
import { chromium } from "playwright-core";

const [base, token, secret, nArg] = process.argv.slice(2);
const N = Number(nArg || 10000);
const run = Date.now().toString(36);

async function inbound(i, text) {
  const raw = JSON.stringify({ channel: i % 3 ? "api:shop" : "api:crm", account: "acme",
    contact: { id: `bench-${i}`, name: `Customer ${i}` }, message_id: `${run}-${i}-${Math.random()}`, text });
  const sig = "sha256=" + createHmac("sha256", secret).update(raw).digest("hex");
  const r = await fetch(`${base}/v1/inbound`, { method: "POST", body: raw, headers: { "X-Omnihub-Signature": sig } });
  if (r.status !== 202) throw new Error(`inbound ${r.status}`);
}

async function pool(n, width, f) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => { while (next < n) await f(next++); }));
}

if (process.env.SEED !== "0") {
  const t = Date.now();
  await pool(N, 16, (i) => inbound(i, `order ${i}: where is it?`));
  console.log(`seeded ${N} conversations in ${((Date.now() - t) / 1000).toFixed(1)} s`);
}

const frames = (page, ms) => page.evaluate((ms) => new Promise((done) => {
  const d = []; let last = performance.now(); const end = last + ms;
  const tick = (t) => { d.push(t - last); last = t; if (t < end) requestAnimationFrame(tick); else done(d); };
  requestAnimationFrame(tick);
}), ms);
const stats = (d) => {
  const s = [...d].sort((a, b) => a - b);
  return { frames: d.length, p50_ms: +s[Math.floor(s.length / 2)].toFixed(1), p95_ms: +s[Math.floor(s.length * 0.95)].toFixed(1),
    max_ms: +s[s.length - 1].toFixed(1), over_50ms: d.filter((x) => x > 50).length };
};

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"] });
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  const t0 = Date.now();
  await page.goto(`${base}/workspace/?token=${encodeURIComponent(token)}`);
  await page.waitForSelector("[data-testid=inbox-item]", { timeout: 60000 });
  const firstRow = Date.now() - t0;
  await page.waitForFunction((n) => {
    const el = document.querySelector(".views .view:last-child .count");
    return el && Number(el.textContent) >= n;
  }, N, { timeout: 120000, polling: 50 });
  const all = Date.now() - t0;
  const rows = await page.$$eval("[data-testid=inbox-item]", (e) => e.length);
  // scroll the list from top to bottom in 3 s while recording frames
  const scrolling = page.evaluate(() => new Promise((done) => {
    const el = document.querySelector(".vlist"); const t0 = performance.now();
    const step = (t) => { const f = Math.min(1, (t - t0) / 3000); el.scrollTop = f * (el.scrollHeight - el.clientHeight);
      if (f < 1) requestAnimationFrame(step); else done(); };
    requestAnimationFrame(step);
  }));
  const scroll = stats(await frames(page, 3000));
  await scrolling;
  // 100 inbound messages a second for 5 s to existing conversations, live
  const live = frames(page, 5000);
  const t = Date.now();
  for (let s = 0; s < 5; s++) {
    await pool(100, 16, (i) => inbound((s * 100 + i) * 7 % N, `live ${s}-${i}`));
    const wait = t + (s + 1) * 1000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const liveStats = stats(await live);
  const bundle = await page.evaluate(() => performance.getEntriesByType("resource")
    .filter((e) => e.name.includes("/workspace/assets/")).map((e) => ({ name: e.name.split("/").pop(), transfer: e.transferSize, body: e.decodedBodySize })));
  console.log(JSON.stringify({ conversations: N, first_row_ms: firstRow, all_listed_ms: all, dom_rows: rows,
    scroll, live_100_per_s: liveStats, bundle }, null, 1));
} finally {
  await browser.close();
}
