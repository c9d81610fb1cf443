// state.ts - the workspace's state and the reducer that folds REST answers
// and WebSocket frames into it. Pure: views render from it, the network
// module (api.ts) only dispatches actions. Actions come in batches (one
// animation frame's worth), so the 10,000-entry map is copied once a batch.
import type { CloudEvent, Conversation, DeliveryState, Pending } from "./types";

export interface Thread {
  events: CloudEvent[]; /* sorted by seq, each seq once */
  head: number; /* highest seq held with none missing below */
  gap: boolean; /* an event beyond head+1 arrived: the client fetches after head */
  loaded: boolean;
  delivery: Record<string, DeliveryState>; /* by the channel's message_id */
  error?: string; /* the history was refused (403, 404): said in its place, not asked again until opened again */
}

export interface Typing {
  from: string;
  until: number;
}

export interface State {
  me: string;
  convs: Map<string, Conversation>;
  open: string | null;
  threads: Map<string, Thread>;
  typing: Record<string, Typing>;
  online: boolean;
  cursor: string; /* the "*" subscription's resume point */
  outbox: Pending[];
  notice: string;
  ended: string; /* why the session ended (the token expired or was refused): signing in again is the only way on */
}

export type Action =
  | { t: "conversations"; list: Conversation[] }
  | { t: "event"; ev: CloudEvent }
  | { t: "history"; conv: string; events: CloudEvent[] }
  | { t: "open"; conv: string | null }
  | { t: "typing"; conv: string; from: string; state: string; now: number }
  | { t: "online"; online: boolean }
  | { t: "cursor"; cursor: string }
  | { t: "outbox"; outbox: Pending[] }
  | { t: "notice"; text: string }
  | { t: "refused"; conv: string; text: string }
  | { t: "ended"; why: string };

export function initialState(me: string): State {
  return {
    me,
    convs: new Map(),
    open: null,
    threads: new Map(),
    typing: {},
    online: false,
    cursor: "",
    outbox: [],
    notice: "",
    ended: "",
  };
}

export function emptyThread(): Thread {
  return { events: [], head: 0, gap: false, loaded: false, delivery: {} };
}

const STATE_FIELDS = ["status", "assignee", "team", "priority", "labels", "contact_id", "snoozed_until", "sla"] as const;

/* a conversation first seen through a live event, before its object came */
function stub(ev: CloudEvent): Conversation {
  const d = ev.data ?? {};
  return {
    conversation_id: ev.subject ?? d.conversation_id,
    channel: d.channel ?? "",
    account: d.account ?? "",
    contact: { id: d.contact?.id ?? "", name: d.contact?.name ?? "" },
    head: 0,
    updated_at: ev.time ?? null,
    status: "open",
    assignee: null,
    team: null,
    priority: "normal",
    labels: [],
    contact_id: null,
    snoozed_until: null,
    last_message: null,
    unread: 0,
  };
}

function isMessage(type: string): boolean {
  return type === "omnihub.message.inbound" || type === "omnihub.message.outbound";
}

/* insert into a thread by seq; an event already held changes nothing */
export function addToThread(th: Thread, events: CloudEvent[]): Thread {
  const fresh = events.filter((e) => typeof e.seq === "number");
  if (!fresh.length) return th;
  const bySeq = new Map<number, CloudEvent>();
  for (const e of th.events) bySeq.set(e.seq!, e);
  let changed = false;
  const delivery = { ...th.delivery };
  for (const e of fresh) {
    if (bySeq.has(e.seq!)) continue;
    bySeq.set(e.seq!, e);
    changed = true;
    if (e.type === "omnihub.message.status") {
      const st = e.data?.status;
      if (st?.message_id && st.state) delivery[st.message_id] = upgrade(delivery[st.message_id], st.state);
    }
  }
  if (!changed) return th;
  const sorted = [...bySeq.values()].sort((a, b) => a.seq! - b.seq!);
  let head = th.head;
  while (bySeq.has(head + 1)) head++;
  const gap = sorted.length > 0 && sorted[sorted.length - 1].seq! > head;
  return { ...th, events: sorted, head, gap, delivery };
}

const ORDER: Record<string, number> = { sent: 1, delivered: 2, read: 3, failed: 0 };
/* statuses may arrive out of order: read never goes back to delivered */
function upgrade(old: DeliveryState | undefined, s: DeliveryState): DeliveryState {
  if (!old) return s;
  if (s === "failed") return old === "read" || old === "delivered" ? old : s;
  return (ORDER[s] ?? 0) >= (ORDER[old] ?? 0) ? s : old;
}

function applyEvent(s: State, convs: Map<string, Conversation>, ev: CloudEvent): void {
  const id = ev.subject ?? ev.data?.conversation_id;
  if (!id || typeof ev.seq !== "number") return;
  const old = convs.get(id) ?? stub({ ...ev, subject: id });
  const c: Conversation = { ...old };
  const isNew = ev.seq > old.head;
  if (isNew) {
    c.head = ev.seq;
    if (ev.time) c.updated_at = ev.time;
  }
  const d = ev.data ?? {};
  if (isMessage(ev.type) && isNew) {
    c.last_message = {
      seq: ev.seq,
      direction: d.direction ?? (ev.type.endsWith("inbound") ? "inbound" : "outbound"),
      kind: d.kind ?? "text",
      text: String(d.text ?? d.subject ?? "").slice(0, 200),
      time: ev.time ?? null,
    };
  }
  /* an agent's reply answers the running SLA deadline; the next inbound
   * message's deadline comes with the conversation object */
  if (isNew && ev.type === "omnihub.message.outbound" && d.author?.kind === "agent" && !d.internal && c.sla) {
    c.sla = { ...c.sla, first_response_due: null, next_response_due: null };
  }
  if (ev.type === "omnihub.conversation.updated" && d.state && isNew) {
    for (const f of STATE_FIELDS) if (f in d.state) (c as any)[f] = d.state[f];
    /* an SLA breach carries the clocks in its changes (docs/routing.md) */
    const sla = d.changes?.sla;
    if (sla && typeof sla === "object") c.sla = sla;
  }
  if (ev.type === "omnihub.message.enriched" && typeof d.frustrated === "boolean" && ev.seq >= (c.frustrated_seq ?? 0)) {
    c.frustrated = d.frustrated;
    c.frustrated_seq = ev.seq;
  }
  const mine = d.author?.kind === "agent" && d.author?.id === s.me;
  if (isNew && s.open !== id && !mine && ev.type !== "omnihub.internal") c.unread = (c.unread ?? 0) + 1;
  if (isMessage(ev.type) && d.direction === "inbound" && s.typing[id]) {
    const t = { ...s.typing };
    delete t[id];
    s.typing = t;
  }
  convs.set(id, c);
  const th = s.threads.get(id);
  if (th) {
    const threads = new Map(s.threads);
    threads.set(id, addToThread(th, [ev]));
    s.threads = threads;
  }
}

function upsert(convs: Map<string, Conversation>, c: Conversation, open: string | null): void {
  const old = convs.get(c.conversation_id);
  if (old && old.head > c.head) {
    /* a live event was newer than this answer: keep what it set */
    return;
  }
  const next: Conversation = {
    ...c,
    frustrated: c.frustrated ?? old?.frustrated,
    frustrated_seq: c.frustrated_seq ?? old?.frustrated_seq,
  };
  if (open === c.conversation_id) next.unread = 0;
  convs.set(c.conversation_id, next);
}

export function reduce(state: State, actions: Action[]): State {
  if (!actions.length) return state;
  const s: State = { ...state };
  let convs: Map<string, Conversation> | null = null;
  const cv = () => (convs ??= new Map(state.convs));
  for (const a of actions) {
    switch (a.t) {
      case "conversations":
        for (const c of a.list) if (c && c.conversation_id) upsert(cv(), c, s.open);
        break;
      case "event":
        applyEvent(s, cv(), a.ev);
        break;
      case "history": {
        const threads = new Map(s.threads);
        const th = addToThread(threads.get(a.conv) ?? emptyThread(), a.events);
        threads.set(a.conv, { ...th, loaded: true, error: undefined });
        s.threads = threads;
        const c = cv().get(a.conv);
        if (c) {
          let next = c;
          if (th.head > c.head) next = { ...next, head: th.head };
          /* the triage of the latest scored message: the history carries
           * it, so the badge survives a reload (the conversation object
           * has no such field) */
          const tri = lastFrustration(th.events);
          if (tri && tri.seq >= (c.frustrated_seq ?? 0)) next = { ...next, frustrated: tri.frustrated, frustrated_seq: tri.seq };
          if (next !== c) cv().set(a.conv, next);
        }
        break;
      }
      case "open": {
        s.open = a.conv;
        if (a.conv) {
          if (!s.threads.has(a.conv)) {
            const threads = new Map(s.threads);
            threads.set(a.conv, emptyThread());
            s.threads = threads;
          }
          const c = cv().get(a.conv);
          if (c && c.unread) cv().set(a.conv, { ...c, unread: 0 });
        }
        break;
      }
      case "typing": {
        const t = { ...s.typing };
        if (a.state === "start") t[a.conv] = { from: a.from, until: a.now + 6000 };
        else delete t[a.conv];
        s.typing = t;
        break;
      }
      case "online":
        s.online = a.online;
        break;
      case "cursor":
        s.cursor = a.cursor;
        break;
      case "outbox":
        s.outbox = a.outbox;
        break;
      case "notice":
        s.notice = a.text;
        break;
      case "refused": {
        const threads = new Map(s.threads);
        threads.set(a.conv, { ...(threads.get(a.conv) ?? emptyThread()), error: a.text });
        s.threads = threads;
        break;
      }
      case "ended":
        s.ended = a.why;
        s.online = false;
        break;
    }
  }
  if (convs) s.convs = convs;
  return s;
}

/* the latest omnihub.message.enriched of a thread: was the customer frustrated? */
export function lastFrustration(events: CloudEvent[]): { frustrated: boolean; seq: number } | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    if (e.type === "omnihub.message.enriched" && typeof e.data?.frustrated === "boolean")
      return { frustrated: e.data.frustrated, seq: e.seq ?? 0 };
  }
  return null;
}

/* one line for a conversation.updated in the history: "assignee → ann
 * (claimed)"; an SLA breach reads as such, not as its clocks */
export function describeUpdate(d: Record<string, any>): string {
  const reason: string = typeof d.reason === "string" ? d.reason : "";
  if (reason.startsWith("sla_breach:")) {
    const kind = reason.slice(11);
    return `SLA breached: ${kind === "frt" ? "first response" : kind === "nrt" ? "next response" : kind} overdue`;
  }
  const what = Object.entries(d.changes ?? {})
    .filter(([k]) => k !== "sla")
    .map(([k, v]) => {
      const text = Array.isArray(v) ? v.join(", ") || "none" : v === null || v === undefined ? "none" : typeof v === "object" ? JSON.stringify(v) : String(v);
      return `${k} → ${text}`;
    })
    .join("; ");
  return (what || "updated") + (reason ? ` (${reason})` : "");
}

/* helpers views use */
export function isTyping(s: State, conv: string, now: number): Typing | null {
  const t = s.typing[conv];
  return t && t.until > now ? t : null;
}
