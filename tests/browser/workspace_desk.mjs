// The workspace on the desk's services (routing off, SLA clocks, triage,
// contacts, the knowledge base and the KPI service on): an admin puts a KB
// article; the same person writes on two channels (the shop, a calm
// question the article answers; the CRM, an angry one nobody answers). The
// agent sees the first one's SLA countdown, opens it: the contact panel
// shows the person's identifier and a merge suggestion, which the agent
// accepts (both conversations and the history across channels are then
// in the panel); the agent claims it, clicks the suggested reply (its text
// goes into the composer) and sends it (the reply names the suggestion),
// resolves it, and the KPI strip (and the dashboard's row by agent) shows FRT
// and AHT once the kpi service has folded the episode. The unanswered conversation breaches its SLA; after a
// reload its frustration badge comes back from the history.
// usage: node workspace_desk.mjs BASE_URL AGENT_TOKEN ADMIN_TOKEN INBOUND_SECRET
import { createHmac } from "node:crypto";
import { chromium } from "playwright-core";

const [base, token, admin, secret] = process.argv.slice(2);
const fail = (msg) => { console.error("FAIL:", msg); process.exit(1); };
const T = { timeout: 15000 };
const run = Date.now().toString(36);
const EMAIL = `ann.${run}@example.org`;
const ANGRY = "This is ridiculous, you charged me twice and nobody answers!!! Fix it now or I file a chargeback";

async function api(method, path, tok, body) {
  const r = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${tok}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

async function inbound(channel, contact, text) {
  const raw = JSON.stringify({ channel, account: "acme",
    contact: { ...contact, identifiers: [{ type: "email", value: EMAIL, verified: false }] },
    message_id: `m-${run}-${contact.id}`, text, sent_at: new Date().toISOString() });
  const sig = "sha256=" + createHmac("sha256", secret).update(raw).digest("hex");
  const r = await fetch(`${base}/v1/inbound`, { method: "POST", body: raw, headers: { "X-Omnihub-Signature": sig } });
  if (r.status !== 202) fail(`inbound: HTTP ${r.status}`);
  return (await r.json()).conversation_id;
}

async function until(what, f, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

const r = await api("PUT", "/v1/kb/articles/returns", admin, {
  title: "Returns and refunds",
  body: "You can return any item within 30 days of delivery for a full refund. Print the return label from your order page.",
});
if (r.status !== 200) fail(`PUT article: HTTP ${r.status} ${JSON.stringify(r.body)}`);

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const p = await ctx.newPage();
  const errors = [];
  p.on("pageerror", (e) => errors.push(String(e)));
  await p.goto(`${base}/workspace/?token=${encodeURIComponent(token)}`);
  await p.waitForSelector("[data-testid=connection-state]:text-is('online')", T);

  const shop = await inbound("api:shop", { id: `shop-${run}`, name: "Ann Lee" }, "How do I return an item for a refund?");
  const crm = await inbound("api:crm", { id: `crm-${run}`, name: "Ann" }, ANGRY);
  const item = (c) => `[data-testid=inbox-item][data-conversation-id="${c}"]`;
  await p.waitForSelector(item(shop), T);
  await p.waitForSelector(item(crm), T);

  // the SLA countdown of the unanswered conversation (its clock comes from the SLA service)
  const sla = await (await p.waitForSelector(`${item(shop)} .sla`, T)).textContent();
  if (!/^SLA (overdue )?\d+:\d\d$/.test(sla)) fail(`the SLA countdown reads ${JSON.stringify(sla)}`);
  // triage, live: the angry message's badge
  await p.waitForSelector(`${item(crm)} .badge.frustrated`, T);

  // the contact: identifiers, a merge suggestion (accepted), then both conversations and their messages
  await p.click(item(shop));
  await p.waitForSelector(`[data-testid=conversation-view][data-conversation-id="${shop}"]`, T);
  const panel = "[data-testid=contact-panel]";
  await p.waitForSelector(`${panel} [data-testid=contact-identifier]:has-text("${EMAIL}")`, T);
  await p.click(`${panel} [data-testid=merge-suggestion]`, T);
  await p.waitForSelector(`${panel} [data-testid=contact-conversation][data-conversation-id="${crm}"]`, T);
  await p.waitForSelector(`${panel} [data-testid=contact-conversation][data-conversation-id="${shop}"]`, T);
  await p.waitForSelector(`${panel} [data-testid=contact-event][data-conversation-id="${crm}"]:has-text("chargeback")`, T);

  // claim, then the suggested reply drawn from the article: one click puts it in the composer
  await p.getByTestId("claim").click();
  await p.waitForSelector(`${item(shop)}[data-assignee=agent-1]`, T);
  const sugg = p.locator("[data-testid=suggestion]", { hasText: "30 days" }).first();
  await sugg.waitFor(T);
  const stext = (await sugg.textContent()).trim();
  await sugg.click();
  const composed = await p.getByTestId("composer").inputValue();
  if (composed.trim() !== stext) fail(`the composer holds ${JSON.stringify(composed)}, the suggestion ${JSON.stringify(stext)}`);
  await p.getByTestId("send").click();
  await p.waitForSelector(`[data-testid=message][data-seq]:has-text("30 days")`, T);
  const events = (await api("GET", `/v1/conversations/${shop}/events?after=0&limit=1000`, token)).body.events;
  const reply = events.find((e) => e.type === "omnihub.message.outbound");
  if (!reply || reply.data.text !== composed || reply.data.suggestion?.source !== "kb" || !reply.data.suggestion?.id)
    fail(`the reply in the history: ${JSON.stringify(reply?.data)}`);

  // resolve: once the kpi service has folded the episode, the strip shows FRT and AHT
  await p.getByTestId("resolve").click();
  await p.waitForSelector(`${item(shop)}[data-status=resolved]`, T);
  const from = new Date(Date.now() - 3600e3).toISOString(), to = new Date(Date.now() + 3600e3).toISOString();
  await until("the KPI report", async () => {
    const k = await api("GET", `/v1/reports/kpis?from=${from}&to=${to}&group_by=none`, token);
    return k.status === 200 && k.body.rows.some((row) => row.episodes_resolved >= 1 && row.aht_avg_s !== null);
  });
  await p.waitForFunction(() => {
    const t = (id) => document.querySelector(`[data-testid=${id}]`)?.textContent ?? "";
    return /^\d+:\d\d$/.test(t("kpi-frt")) && /^\d+:\d\d$/.test(t("kpi-aht"));
  }, null, { timeout: 20000 });

  // the dashboard: the agent's own row by agent, with the same figures
  await p.getByRole("button", { name: "KPIs" }).click();
  await p.waitForSelector(".kpi-table tbody tr:has(td:text-is('agent-1'))", T);
  const cells = await p.$$eval(".kpi-table tbody tr", (rows) =>
    rows.map((r) => [...r.querySelectorAll("td")].map((td) => td.textContent)).find((c) => c[0] === "agent-1"));
  if (cells[1] !== "1" || !/^\d+:\d\d$/.test(cells[2]) || !/^\d+:\d\d$/.test(cells[5])) fail(`the dashboard row ${cells}`);
  await p.waitForSelector(".kpis .chart canvas", T);
  await p.getByRole("button", { name: "Inbox" }).click();

  // the unanswered one breaches; after a reload the badge comes back from its history
  await p.waitForSelector(`${item(crm)} .sla.breached`, { timeout: 20000 });
  await p.reload();
  await p.waitForSelector("[data-testid=connection-state]:text-is('online')", T);
  await p.waitForSelector(`${item(crm)} .sla.breached`, T);
  await p.click(item(crm));
  await p.waitForSelector(`[data-testid=conversation-view][data-conversation-id="${crm}"] .badge.frustrated`, T);
  await p.waitForSelector(`${item(crm)} .badge.frustrated`, T);
  await p.waitForSelector(`[data-testid=event].breach:has-text("SLA breached: first response")`, T);
  await p.waitForSelector(`${panel} [data-testid=contact-conversation][data-conversation-id="${shop}"]`, T);
  await p.waitForSelector(`${panel} [data-testid=contact-event][data-conversation-id="${shop}"]:has-text("30 days")`, T);
  const emails = await p.locator(`${panel} [data-testid=contact-identifier]`, { hasText: EMAIL }).count();
  if (emails !== 1) fail(`the merged contact lists its address ${emails} times`);
  await p.screenshot({ path: process.env.SCREENSHOT || "/tmp/omnihub-workspace-desk.png" });
  if (errors.length) fail(`page errors: ${errors.join("; ")}`);
  const kpi = await p.$eval("[data-testid=kpi-frt]", (e) => e.textContent);
  console.log(JSON.stringify({ shop, crm, kpi_frt: kpi, sla }));
} finally {
  await browser.close();
}
