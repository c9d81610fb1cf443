// Two devices of one customer in two browser contexts: device 1 sends,
// device 2 sees it; device 2 loses its network, three agent replies
// arrive, it comes back and shows all three once, in order.
// usage: node webchat.mjs BASE_URL CUSTOMER_TOKEN SUB AGENT_TOKEN
import { chromium } from "playwright-core";

const [base, token, sub, agentToken] = process.argv.slice(2);
const url = `${base}/app/index.html?token=${encodeURIComponent(token)}&sub=${encodeURIComponent(sub)}`;
const fail = (msg) => { console.error("FAIL:", msg); process.exit(1); };

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const dev1 = await browser.newContext();
  const dev2 = await browser.newContext();
  const p1 = await dev1.newPage();
  const p2 = await dev2.newPage();
  await p1.goto(url);
  await p2.goto(url);
  await p1.waitForSelector("body[data-state=online]");
  await p2.waitForSelector("body[data-state=online]");

  await p1.fill("#text", "hello from my phone");
  await p1.press("#text", "Enter");
  await p2.waitForSelector("#log li >> text=hello from my phone", { timeout: 10000 });
  const conv = await p2.evaluate(() => window.omnihubChat.conversation);
  if (!conv || conv === "new") fail("device 2 did not learn the conversation");

  await dev2.setOffline(true);
  await p2.evaluate(() => window.omnihubChat.drop());
  await p2.waitForSelector("body[data-state='offline, retrying']");
  for (let i = 1; i <= 3; i++) {
    const r = await fetch(`${base}/v1/conversations/${conv}/messages`, {
      method: "POST",
      headers: { "Authorization": `Bearer ${agentToken}`, "Content-Type": "application/json" },
      body: JSON.stringify({ text: `agent reply ${i}`, client_msg_id: `browser-${i}` }),
    });
    if (r.status !== 202) fail(`agent reply ${i}: HTTP ${r.status}`);
  }
  await p1.waitForSelector("#log li >> text=agent reply 3", { timeout: 10000 });
  await dev2.setOffline(false);
  await p2.waitForSelector("#log li >> text=agent reply 3", { timeout: 30000 });
  await p2.waitForTimeout(500);
  const texts = await p2.$$eval("#log li", (lis) => lis.map((li) => li.textContent));
  const want = ["hello from my phone", "agent reply 1", "agent reply 2", "agent reply 3"];
  if (JSON.stringify(texts) !== JSON.stringify(want)) fail(`device 2 shows ${JSON.stringify(texts)}`);
  const texts1 = await p1.$$eval("#log li", (lis) => lis.map((li) => li.textContent));
  if (JSON.stringify(texts1) !== JSON.stringify(want)) fail(`device 1 shows ${JSON.stringify(texts1)}`);
  await p2.screenshot({ path: process.env.SCREENSHOT || "/tmp/omnihub-webchat.png" });
  console.log("ok: both devices show", texts.length, "messages once, in order");
} finally {
  await browser.close();
}
