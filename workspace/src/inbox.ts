// inbox.ts - what the inbox shows: the filters (mine / unassigned / all,
// status, channel, priority, label, search) and the order. Pure.
import type { Conversation, Priority } from "./types";

export type View = "mine" | "unassigned" | "all";
export type SortMode = "priority" | "recent";

export interface Filter {
  view: View;
  status: string; /* "" = any */
  channel: string; /* "" = any; "api" matches every "api:<name>" */
  priority: string;
  label: string;
  q: string;
  sort: SortMode;
}

export const DEFAULT_FILTER: Filter = {
  view: "all",
  status: "",
  channel: "",
  priority: "",
  label: "",
  q: "",
  sort: "priority",
};

const RANK: Record<Priority, number> = { urgent: 0, high: 1, normal: 2, low: 3 };

export function channelFamily(channel: string): string {
  const i = channel.indexOf(":");
  return i < 0 ? channel : channel.slice(0, i);
}

function textMatch(c: Conversation, words: string[]): boolean {
  const hay = [c.contact?.name, c.contact?.id, c.conversation_id, c.last_message?.text, ...(c.labels ?? [])]
    .filter(Boolean)
    .join(" ")
    .toLowerCase();
  return words.every((w) => hay.includes(w));
}

/* `hits`: conversations the server's full-text search matched for f.q
 * (over every message, not only the preview); a conversation shows when
 * either the server or the local preview matches. */
export function matches(c: Conversation, f: Filter, me: string, hits?: Set<string> | null): boolean {
  if (f.view === "mine" && c.assignee !== me) return false;
  if (f.view === "unassigned" && c.assignee) return false;
  if (f.status && c.status !== f.status) return false;
  if (f.channel && c.channel !== f.channel && channelFamily(c.channel) !== f.channel) return false;
  if (f.priority && c.priority !== f.priority) return false;
  if (f.label && !(c.labels ?? []).includes(f.label)) return false;
  const q = f.q.trim().toLowerCase();
  if (q) {
    const words = q.split(/\s+/);
    if (!textMatch(c, words) && !(hits && hits.has(c.conversation_id))) return false;
  }
  return true;
}

function updated(c: Conversation): number {
  const t = c.last_message?.time ?? c.updated_at;
  const v = t ? Date.parse(t) : 0;
  return Number.isNaN(v) ? 0 : v;
}

export function compare(a: Conversation, b: Conversation, mode: SortMode): number {
  if (mode === "priority") {
    const d = (RANK[a.priority] ?? 2) - (RANK[b.priority] ?? 2);
    if (d) return d;
  }
  const t = updated(b) - updated(a);
  if (t) return t;
  return a.conversation_id < b.conversation_id ? -1 : a.conversation_id > b.conversation_id ? 1 : 0;
}

export function inboxList(
  convs: Iterable<Conversation>,
  f: Filter,
  me: string,
  hits?: Set<string> | null,
): Conversation[] {
  const out: Conversation[] = [];
  for (const c of convs) if (matches(c, f, me, hits)) out.push(c);
  out.sort((a, b) => compare(a, b, f.sort));
  return out;
}

/* the counts shown beside mine / unassigned / all (open work only) */
export function viewCounts(convs: Iterable<Conversation>, me: string): Record<View, number> {
  const n = { mine: 0, unassigned: 0, all: 0 };
  for (const c of convs) {
    if (c.status === "resolved") continue;
    n.all++;
    if (c.assignee === me) n.mine++;
    if (!c.assignee) n.unassigned++;
  }
  return n;
}

export function channelsOf(convs: Iterable<Conversation>): string[] {
  const s = new Set<string>();
  for (const c of convs) s.add(channelFamily(c.channel));
  return [...s].sort();
}

export function labelsOf(convs: Iterable<Conversation>): string[] {
  const s = new Set<string>();
  for (const c of convs) for (const l of c.labels ?? []) s.add(l);
  return [...s].sort();
}
