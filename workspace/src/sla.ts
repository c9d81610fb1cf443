// sla.ts - the SLA countdown of a conversation: which deadline is next and
// how it reads ("4:59", "1h 02m", "overdue 0:12"). Pure: time comes in.
import type { Conversation } from "./types";

export type SlaLevel = "ok" | "warn" | "breached";

export interface Countdown {
  text: string;
  level: SlaLevel;
  kind: "frt" | "nrt";
}

function pad(n: number): string {
  return n < 10 ? "0" + n : String(n);
}

/* seconds as "m:ss" under an hour, "Xh YYm" under a day, "Xd YYh" above */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  if (s < 3600) return `${Math.floor(s / 60)}:${pad(s % 60)}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d ${pad(Math.floor((s % 86400) / 3600))}h`;
}

/* The countdown to show, or null when the conversation has no running SLA
 * (none configured, already answered, or resolved). Under a fifth of the
 * priority's usual target - one minute - it warns. */
export function slaCountdown(c: Conversation, nowMs: number): Countdown | null {
  const sla = c.sla;
  if (!sla || c.status === "resolved") return null;
  const due: Array<[number, "frt" | "nrt"]> = [];
  for (const [v, kind] of [
    [sla.first_response_due, "frt"],
    [sla.next_response_due, "nrt"],
  ] as const) {
    if (!v) continue;
    const t = Date.parse(v);
    if (!Number.isNaN(t)) due.push([t, kind]);
  }
  const breached = (sla.breached ?? []).length > 0;
  if (!due.length) {
    return breached ? { text: "SLA breached", level: "breached", kind: sla.breached![0] === "nrt" ? "nrt" : "frt" } : null;
  }
  due.sort((a, b) => a[0] - b[0]);
  const [t, kind] = due[0];
  const left = (t - nowMs) / 1000;
  if (left < 0) return { text: "overdue " + formatDuration(-left), level: "breached", kind };
  return { text: formatDuration(left), level: breached ? "breached" : left < 60 ? "warn" : "ok", kind };
}
