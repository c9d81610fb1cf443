// kpi.tsx - the KPIs of GET /v1/reports/kpis: a strip in the top bar (the
// last 24 hours) and a dashboard (per day over a week, drawn with uPlot,
// and a table by agent, team or channel). 404: "not available".
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Client } from "./api";
import { formatDuration } from "./sla";

export interface KpiRow {
  key: string | null;
  episodes_resolved: number;
  frt_avg_s: number | null;
  frt_p50_s?: number | null;
  frt_p90_s?: number | null;
  nrt_avg_s: number | null;
  aht_avg_s: number | null;
  resolution_avg_s?: number | null;
  sla_met_ratio: number | null;
}

export function fmtSeconds(v: number | null | undefined): string {
  return typeof v === "number" && Number.isFinite(v) ? formatDuration(v) : "—";
}

function fmtRatio(v: number | null | undefined): string {
  return typeof v === "number" && Number.isFinite(v) ? Math.round(v * 100) + "%" : "—";
}

type Kpis = { state: "loading" | "absent" | "error" } | { state: "ok"; rows: KpiRow[] };

async function fetchRows(client: Client, from: Date, to: Date, groupBy: string): Promise<Kpis> {
  const r = await client.kpis(from, to, groupBy);
  if (r.status === 200 && Array.isArray(r.body?.rows)) return { state: "ok", rows: r.body.rows };
  if (r.status === 404) return { state: "absent" };
  return { state: "error" };
}

/* the caller's figures over [from, to): the single row of group_by=none, or
 * (a server that gives agents only their own rows by agent) the row keyed
 * by the caller */
async function ownRow(client: Client, from: Date, to: Date): Promise<Kpis> {
  const k = await fetchRows(client, from, to, "none");
  if (k.state === "absent" || (k.state === "ok" && k.rows.length)) return k;
  const by = await fetchRows(client, from, to, "agent");
  if (by.state !== "ok") return k.state === "ok" ? k : by;
  return { state: "ok", rows: by.rows.filter((r) => r.key === client.me.sub) };
}

/* `resolved`: how many conversations the inbox holds resolved; when it
 * changes the figures are fetched again (and 1, 3 and 7 s later: the KPI
 * service follows the timeline), besides every 15 s */
export function KpiStrip({ client, resolved }: { client: Client; resolved: number }) {
  const [k, set] = useState<Kpis>({ state: "loading" });
  useEffect(() => {
    const load = () => {
      const to = new Date(Date.now() + 60e3);
      void ownRow(client, new Date(to.getTime() - 86400e3), to).then(set);
    };
    load();
    /* the kpi service folds a resolved episode a moment after it is sequenced */
    const again = [1000, 3000, 7000].map((ms) => setTimeout(load, ms));
    const t = setInterval(load, 15000);
    return () => {
      clearInterval(t);
      again.forEach(clearTimeout);
    };
  }, [client, resolved]);
  const row = k.state === "ok" ? k.rows[0] : undefined;
  const na = k.state === "absent" ? "not available" : k.state === "ok" ? "—" : "…";
  return (
    <div class="kpistrip" aria-label="Key figures, last 24 hours">
      <span>
        FRT <b data-testid="kpi-frt">{row ? fmtSeconds(row.frt_avg_s) : na}</b>
      </span>
      <span>
        AHT <b data-testid="kpi-aht">{row ? fmtSeconds(row.aht_avg_s) : na}</b>
      </span>
      <span>
        SLA <b>{row ? fmtRatio(row.sla_met_ratio) : "—"}</b>
      </span>
    </div>
  );
}

const DAYS = 7;

export function KpiDashboard({ client }: { client: Client }) {
  const [series, setSeries] = useState<{ days: number[]; rows: Array<KpiRow | null> } | null>(null);
  const [absent, setAbsent] = useState(false);
  const [groupBy, setGroupBy] = useState("agent");
  const [table, setTable] = useState<Kpis>({ state: "loading" });
  const chart = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const end = new Date();
    end.setHours(24, 0, 0, 0);
    const days: number[] = [];
    for (let i = DAYS; i > 0; i--) days.push(end.getTime() - i * 86400e3);
    void Promise.all(days.map((d) => fetchRows(client, new Date(d), new Date(d + 86400e3), "none"))).then((all) => {
      if (all.some((a) => a.state === "absent")) setAbsent(true);
      setSeries({ days, rows: all.map((a) => (a.state === "ok" ? (a.rows[0] ?? null) : null)) });
    });
  }, [client]);

  useEffect(() => {
    setTable({ state: "loading" });
    const to = new Date();
    void fetchRows(client, new Date(to.getTime() - DAYS * 86400e3), to, groupBy).then(setTable);
  }, [client, groupBy]);

  useEffect(() => {
    const el = chart.current;
    if (!el || !series || absent) return;
    const pick = (f: keyof KpiRow) => series.rows.map((r) => (r && typeof r[f] === "number" ? (r[f] as number) : null));
    const plot = new uPlot(
      {
        width: Math.min(900, el.clientWidth || 900),
        height: 280,
        title: "Response and handle times per day (seconds)",
        series: [
          {},
          { label: "FRT avg", stroke: "#2563eb", width: 2 },
          { label: "NRT avg", stroke: "#16a34a", width: 2 },
          { label: "AHT avg", stroke: "#d97706", width: 2 },
        ],
        axes: [{}, { label: "s" }],
      },
      [series.days.map((d) => d / 1000), pick("frt_avg_s"), pick("nrt_avg_s"), pick("aht_avg_s")] as uPlot.AlignedData,
      el,
    );
    return () => plot.destroy();
  }, [series, absent]);

  if (absent) {
    return (
      <main class="kpis">
        <h2>KPIs</h2>
        <p class="muted">not available (this server has no KPI reports)</p>
      </main>
    );
  }
  return (
    <main class="kpis">
      <h2>KPIs, last {DAYS} days</h2>
      <div ref={chart} class="chart" />
      {series && (
        <table class="kpi-table">
          <caption>SLA met per day</caption>
          <tbody>
            <tr>
              {series.days.map((d, i) => (
                <td key={d}>
                  {new Date(d).toLocaleDateString([], { weekday: "short" })}: {fmtRatio(series.rows[i]?.sla_met_ratio)}
                </td>
              ))}
            </tr>
          </tbody>
        </table>
      )}
      <label>
        By{" "}
        <select value={groupBy} onChange={(e) => setGroupBy((e.target as HTMLSelectElement).value)}>
          <option value="agent">agent</option>
          <option value="team">team</option>
          <option value="channel">channel</option>
        </select>
      </label>
      {table.state === "ok" ? (
        <table class="kpi-table">
          <thead>
            <tr>
              <th>{groupBy}</th>
              <th>resolved</th>
              <th>FRT avg</th>
              <th>FRT p90</th>
              <th>NRT avg</th>
              <th>AHT avg</th>
              <th>SLA met</th>
            </tr>
          </thead>
          <tbody>
            {table.rows.map((r) => (
              <tr key={r.key ?? "-"}>
                <td>{r.key ?? "—"}</td>
                <td>{r.episodes_resolved}</td>
                <td>{fmtSeconds(r.frt_avg_s)}</td>
                <td>{fmtSeconds(r.frt_p90_s)}</td>
                <td>{fmtSeconds(r.nrt_avg_s)}</td>
                <td>{fmtSeconds(r.aht_avg_s)}</td>
                <td>{fmtRatio(r.sla_met_ratio)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">{table.state === "absent" ? "not available" : table.state === "error" ? "error" : "loading…"}</p>
      )}
    </main>
  );
}
