// api.ts - the one module that speaks omnihub's contract: REST calls, the
// WebSocket ("*" with a resume cursor, typing, presence, reads), the seq
// rules of an open conversation (fill a gap from the history, never show an
// event twice) and the outbox (replies typed offline, sent once by their
// client_msg_id). Views never touch the network; they call these methods
// and render the state this module dispatches.
import { reduce, type Action, type State, initialState } from "./state";
import type { CloudEvent, Conversation, Pending } from "./types";
import { BlobCache, DEFAULT_LIMITS, type Fetched } from "./media";

export interface Reply<T = any> {
  status: number; /* 0: the network failed */
  body: T | null;
}

export interface Claims {
  sub: string;
  role: string;
  name?: string;
  exp?: number;
}

export function decodeToken(token: string): Claims | null {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const b = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = JSON.parse(atob(b + "=".repeat((4 - (b.length % 4)) % 4)));
    return typeof json.sub === "string" ? (json as Claims) : null;
  } catch {
    return null;
  }
}

function newId(): string {
  const c = (globalThis as any).crypto;
  if (c?.randomUUID) return c.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
}

/* How a WebSocket ended, as the reconnect decision sees it */
export interface WsClose {
  code: number;
  reason: string;
  opened: boolean; /* false: the upgrade failed (a browser shows the server's 401 only as 1006) */
}

/* Whether a closed WebSocket ended the session, so that reconnecting with
 * the same token would be refused for ever: the server's 1008 for an
 * expired token (its other 1008, "slow consumer: resume later", is resumed),
 * or an upgrade that failed once the token's exp had passed by this clock
 * (the server allows no skew on exp). Anything else, 1001 going away or 1006
 * the network among them, is retried. */
export function sessionEnded(c: WsClose, exp: number | undefined, nowMs: number): boolean {
  if (c.code === 1008) return !c.reason.startsWith("slow consumer");
  return !c.opened && exp !== undefined && nowMs >= exp * 1000;
}

export const EXPIRED = "Session expired: sign in again.";

/* What the sign-in form says after the REST API refused the token (401):
 * expired, or no longer taken for another reason (the daemon's
 * auth.jwt_secret changed, a bad signature), with the daemon's own words. */
export function refusedWhy(body: any): string {
  const m = body?.error?.message;
  if (m === "token expired") return EXPIRED;
  return `Your session is no longer valid${typeof m === "string" && m ? ` (${m})` : ""}; sign in again.`;
}

const PAGE = 1000;
const MAX_CONVERSATIONS = 50000;
const OUTBOX_KEY = "omnihub.outbox";

type Listener = (s: State) => void;
type Inserter = (conv: string, text: string, suggestion?: Pending["suggestion"]) => void;

export class Client {
  state: State;
  private listeners = new Set<Listener>();
  private queue: Action[] = [];
  private flushing = false;
  private ws: WebSocket | null = null;
  private retry = 0;
  private closed = false;
  private ended = false; /* the token is no good any more: nothing more with it (end) */
  private ticker: ReturnType<typeof setInterval> | null = null;
  private typingSent: Record<string, number> = {};
  private readSent: Record<string, number> = {};
  private canned: any[] | null = null;

  constructor(
    readonly base: string,
    readonly token: string,
    readonly me: Claims,
  ) {
    this.state = initialState(me.sub);
    this.state.outbox = this.loadOutbox();
  }

  private inserts = new Set<Inserter>();

  /* a suggestion or an article clicked: its text goes into the composer */
  insert(conv: string, text: string, suggestion?: Pending["suggestion"]): void {
    for (const f of this.inserts) f(conv, text, suggestion);
  }

  onInsert(f: Inserter): () => void {
    this.inserts.add(f);
    return () => this.inserts.delete(f);
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /* actions are applied once per frame: a burst of events renders once */
  dispatch(...a: Action[]): void {
    this.queue.push(...a);
    if (this.flushing) return;
    this.flushing = true;
    let done = false;
    const run = () => {
      if (done) return;
      done = true;
      this.flushing = false;
      const batch = this.queue;
      this.queue = [];
      this.state = reduce(this.state, batch);
      for (const l of this.listeners) l(this.state);
      this.afterBatch();
    };
    /* the next frame; a timer too, as frames stop in a hidden or throttled page */
    if (typeof requestAnimationFrame === "function") requestAnimationFrame(run);
    setTimeout(run, 50);
  }

  /* Any answer 401 ends the session (end); a 403 is the caller's to show where it asked */
  async rest<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply<T>> {
    if (this.ended) return { status: 401, body: null };
    try {
      const r = await fetch(this.base + path, {
        method,
        headers: {
          Authorization: "Bearer " + this.token,
          ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
          ...headers,
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      let json: any = null;
      const text = await r.text();
      if (text) {
        try {
          json = JSON.parse(text);
        } catch {
          json = null;
        }
      }
      if (r.status === 401) this.end(refusedWhy(json));
      return { status: r.status, body: json };
    } catch {
      return { status: 0, body: null };
    }
  }

  /* One attachment's bytes through the media proxy (GET /v1/media/<connector>/<ref>),
   * with the token an <img src> could not send; refused past LIMIT bytes. */
  async media(path: string, limit = 16 << 20): Promise<Fetched> {
    if (!path.startsWith("/v1/media/")) return { status: 400, blob: null, message: "not a media path" };
    if (this.ended) return { status: 401, blob: null, message: "signed out" };
    try {
      const r = await fetch(this.base + path, { headers: { Authorization: "Bearer " + this.token } });
      if (r.status !== 200) {
        let body: any = null;
        try {
          body = await r.json();
        } catch {
          body = null;
        }
        if (r.status === 401) this.end(refusedWhy(body));
        const message: string | undefined = body?.error?.message;
        return { status: r.status, blob: null, message: message ? `HTTP ${r.status}: ${message}` : undefined };
      }
      const len = Number(r.headers.get("Content-Length") ?? "0");
      if (len > limit) return { status: 413, blob: null, message: "too large to preview" };
      return { status: 200, blob: await r.blob() };
    } catch {
      return { status: 0, blob: null };
    }
  }

  /* the blob: URLs of the attachments on screen (media.ts) */
  readonly blobs = new BlobCache((p) => this.media(p, DEFAULT_LIMITS.item));

  /* ---- start, the inbox list and the live stream ---- */

  private readonly onOnline = () => this.connect();
  private readonly onOffline = () => this.drop();

  start(): void {
    this.connect();
    void this.loadList();
    if (typeof window !== "undefined") {
      window.addEventListener("online", this.onOnline);
      window.addEventListener("offline", this.onOffline);
    }
    this.ticker = setInterval(() => this.afterBatch(), 2000);
  }

  /* signing out, or in again after the session ended: nothing of this client runs on */
  stop(): void {
    this.closed = true;
    this.ws?.close();
    this.blobs.clear();
    if (this.ticker) clearInterval(this.ticker);
    if (typeof window !== "undefined") {
      window.removeEventListener("online", this.onOnline);
      window.removeEventListener("offline", this.onOffline);
    }
  }

  async loadList(): Promise<void> {
    let cursor = "";
    let n = 0;
    for (;;) {
      const q = `/v1/conversations?limit=${PAGE}` + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : "");
      const r = await this.rest<{ conversations: Conversation[]; next_cursor?: string | null }>("GET", q);
      if (r.status !== 200 || !r.body) {
        if (r.status === 0) setTimeout(() => void this.loadList(), 2000);
        else if (r.status !== 401) this.dispatch({ t: "notice", text: errorText(r, "inbox not loaded") });
        return;
      }
      this.dispatch({ t: "conversations", list: r.body.conversations });
      n += r.body.conversations.length;
      if (!r.body.next_cursor || n >= MAX_CONVERSATIONS || !r.body.conversations.length) return;
      cursor = r.body.next_cursor;
    }
  }

  /* the server's full-text search (messages and subjects): the ids it matched */
  async search(q: string): Promise<Set<string> | null> {
    const r = await this.rest<{ conversations: Conversation[] }>(
      "GET",
      `/v1/conversations?limit=200&q=${encodeURIComponent(q)}`,
    );
    if (r.status !== 200 || !r.body) return null;
    this.dispatch({ t: "conversations", list: r.body.conversations });
    return new Set(r.body.conversations.map((c) => c.conversation_id));
  }

  private connect(): void {
    if (this.closed || this.ended || (this.ws && this.ws.readyState <= 1)) return;
    const url = this.base.replace(/^http/, "ws") + "/v1/ws?access_token=" + encodeURIComponent(this.token);
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch {
      this.reconnectLater();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.retry = 0;
      /* "" = from now on; a reconnect resumes where the last one ended */
      this.wsSend({ type: "subscribe", conversation: "*", cursor: this.state.cursor });
      this.wsSend({ type: "presence", status: "online" });
    };
    ws.onmessage = (m) => {
      let f: any;
      try {
        f = JSON.parse(String(m.data));
      } catch {
        return;
      }
      this.onFrame(f);
    };
    ws.onclose = (e) => {
      if (this.ws === ws) this.ws = null;
      this.dispatch({ t: "online", online: false });
      if (sessionEnded({ code: e.code, reason: e.reason, opened }, this.me.exp, Date.now())) {
        this.end(EXPIRED);
        return;
      }
      /* A refused upgrade reads as the network (1006) whatever the daemon
       * said: its REST API tells whether it still takes the token (a 401
       * there ends the session, before the next try) */
      if (!opened && !this.closed) void this.rest("GET", "/v1/conversations?limit=1");
      this.reconnectLater();
    };
    ws.onerror = () => ws.close();
  }

  /* the network is gone: say so now rather than after the close handshake
   * times out, and start again from the cursor when it is back */
  drop(): void {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = null;
      ws.close();
    }
    this.dispatch({ t: "online", online: false });
    this.reconnectLater();
  }

  private reconnectLater(): void {
    if (this.closed || this.ended) return;
    const delay = Math.min(5000, 300 * 2 ** this.retry++);
    setTimeout(() => this.connect(), delay);
  }

  private wsSend(o: unknown): boolean {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify(o));
    return true;
  }

  onFrame(f: any): void {
    switch (f?.type) {
      case "subscribed":
        if (f.conversation === "*") {
          if (typeof f.cursor === "string") this.dispatch({ t: "cursor", cursor: f.cursor });
          this.dispatch({ t: "online", online: true });
          void this.flushOutbox();
          /* the open conversation: whatever came while away, after our head */
          if (this.state.open) void this.loadHistory(this.state.open);
        }
        break;
      case "conversation":
        if (f.conversation) this.dispatch({ t: "conversations", list: [f.conversation] });
        break;
      case "event":
        if (f.event) {
          this.dispatch({ t: "event", ev: f.event as CloudEvent });
          const id = f.event.subject;
          if (id && !this.state.convs.has(id)) void this.refresh(id);
          if (id && f.event.type === "omnihub.message.inbound") this.slaLater(id);
        }
        break;
      case "typing":
        if (f.from?.id !== this.me.sub)
          this.dispatch({ t: "typing", conv: f.conversation, from: f.from?.id ?? "", state: f.state, now: Date.now() });
        break;
      case "error":
        if (f.code === "unauthorized") this.end(EXPIRED); /* the server's 1008 close would follow */
        break;
    }
  }

  /* The one way a session ends, whatever found the token dead (the
   * WebSocket's expiry, a refused upgrade, any REST 401): no more sockets
   * or calls with it, and the state says why; the view then forgets the
   * token and shows the sign-in form with that reason (app.tsx). */
  private end(why: string): void {
    if (this.ended) return;
    this.ended = true;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = null;
      ws.close();
    }
    this.dispatch({ t: "ended", why });
  }

  /* after each batch: a thread with a gap or not loaded is fetched; the
   * open conversation's read cursor follows its head */
  private afterBatch(): void {
    const id = this.state.open;
    if (!id) return;
    const th = this.state.threads.get(id);
    /* a gap, or a first load that failed (offline): fetch after our head;
     * not one refused (its error shows instead) */
    if (th && !th.error && (th.gap || !th.loaded) && !this.loading.has(id)) void this.loadHistory(id);
    if (th && th.head > (this.readSent[id] ?? 0) && th.loaded) {
      this.readSent[id] = th.head;
      const msg = { type: "read", conversation: id, seq: th.head };
      if (!this.wsSend(msg)) void this.rest("POST", `/v1/conversations/${encodeURIComponent(id)}/read`, { seq: th.head });
    }
  }

  private loading = new Set<string>();

  /* An inbound message starts (or restarts) an SLA clock, which the SLA
   * service writes a moment later and no event announces: the objects of
   * the conversations that got one are fetched again once, a little later
   * (one list call by updated_after when many did), and again if the
   * deadline was not there yet. */
  private slaWanted = new Map<string, number>(); /* id -> tries left */
  private slaTimer: ReturnType<typeof setTimeout> | null = null;

  private slaLater(id: string, tries = 2): void {
    this.slaWanted.set(id, Math.max(tries, this.slaWanted.get(id) ?? 0));
    if (!this.slaTimer) this.slaTimer = setTimeout(() => void this.slaRefresh(), 1200);
  }

  private async slaRefresh(): Promise<void> {
    const wanted = this.slaWanted;
    this.slaWanted = new Map();
    const ids = [...wanted.keys()];
    let got: Conversation[] = [];
    if (ids.length <= 8) {
      const rs = await Promise.all(ids.map((id) => this.rest<Conversation>("GET", `/v1/conversations/${encodeURIComponent(id)}`)));
      got = rs.filter((r) => r.status === 200 && r.body).map((r) => r.body!);
    } else {
      /* the server's own clock: the oldest of their updated_at, less a margin */
      let since = Infinity;
      for (const id of ids) {
        const t = Date.parse(this.state.convs.get(id)?.updated_at ?? "");
        if (!Number.isNaN(t)) since = Math.min(since, t);
      }
      if (since === Infinity) since = Date.now();
      const r = await this.rest<{ conversations: Conversation[] }>(
        "GET",
        `/v1/conversations?limit=${PAGE}&updated_after=${encodeURIComponent(new Date(since - 30e3).toISOString())}`,
      );
      if (r.status === 200 && r.body) got = r.body.conversations.filter((c) => wanted.has(c.conversation_id));
    }
    if (got.length) this.dispatch({ t: "conversations", list: got });
    this.slaTimer = null;
    for (const c of got) {
      const tries = (wanted.get(c.conversation_id) ?? 1) - 1;
      const waiting = c.status === "open" && c.last_message?.direction === "inbound";
      if (tries > 0 && waiting && !c.sla?.first_response_due && !c.sla?.next_response_due) this.slaLater(c.conversation_id, tries);
    }
    if (this.slaWanted.size && !this.slaTimer) this.slaTimer = setTimeout(() => void this.slaRefresh(), 2500);
  }

  async refresh(id: string): Promise<void> {
    const r = await this.rest<Conversation>("GET", `/v1/conversations/${encodeURIComponent(id)}`);
    if (r.status === 200 && r.body) this.dispatch({ t: "conversations", list: [r.body] });
  }

  async loadHistory(id: string): Promise<void> {
    if (this.loading.has(id)) return;
    this.loading.add(id);
    try {
      let after = this.state.threads.get(id)?.head ?? 0;
      for (let i = 0; i < 50; i++) {
        const r = await this.rest<{ events: CloudEvent[]; next_after: number; head: number }>(
          "GET",
          `/v1/conversations/${encodeURIComponent(id)}/events?after=${after}&limit=500`,
        );
        if (r.status === 403 || r.status === 404) this.dispatch({ t: "refused", conv: id, text: errorText(r, "history refused") });
        if (r.status !== 200 || !r.body) return;
        this.dispatch({ t: "history", conv: id, events: r.body.events });
        if (!r.body.events.length || r.body.next_after >= r.body.head) return;
        after = r.body.next_after;
      }
    } finally {
      this.loading.delete(id);
    }
  }

  open(id: string | null): void {
    this.dispatch({ t: "open", conv: id });
    if (id) {
      void this.loadHistory(id);
      void this.refresh(id);
    }
  }

  /* ---- actions ---- */

  async claim(id: string): Promise<Reply> {
    const r = await this.rest("POST", `/v1/conversations/${encodeURIComponent(id)}/claim`);
    if (r.status === 200 && r.body) this.dispatch({ t: "conversations", list: [r.body] });
    else if (r.status === 409) {
      const who = r.body?.error?.assignee ?? r.body?.assignee ?? "another agent";
      this.dispatch({ t: "notice", text: `Already claimed by ${who}` });
      void this.refresh(id);
    } else this.dispatch({ t: "notice", text: errorText(r, "claim failed") });
    return r;
  }

  async patch(id: string, body: Record<string, unknown>): Promise<Reply> {
    const r = await this.rest("PATCH", `/v1/conversations/${encodeURIComponent(id)}`, body);
    if (r.status === 200 && r.body) this.dispatch({ t: "conversations", list: [r.body] });
    else this.dispatch({ t: "notice", text: errorText(r, "change failed") });
    return r;
  }

  /* a reply or note: into the outbox first, so nothing typed is lost */
  send(conversation: string, text: string, internal: boolean, suggestion?: Pending["suggestion"]): void {
    const p: Pending = { conversation, client_msg_id: newId(), text, internal };
    if (suggestion && !internal) p.suggestion = suggestion;
    this.setOutbox([...this.state.outbox, p]);
    this.typing(conversation, false);
    void this.flushOutbox();
  }

  private sending = false;

  async flushOutbox(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      for (;;) {
        const p = this.state.outbox.find((x) => !x.error);
        if (!p) return;
        const body: Record<string, unknown> = { text: p.text, client_msg_id: p.client_msg_id };
        if (p.internal) body.internal = true;
        if (p.suggestion) body.suggestion = p.suggestion;
        const r = await this.rest("POST", `/v1/conversations/${encodeURIComponent(p.conversation)}/messages`, body);
        /* retried when back online; 401, the session ended: kept for the next sign-in */
        if (r.status === 0 || r.status === 401 || r.status === 429 || r.status >= 500) return;
        const rest = this.state.outbox.filter((x) => x.client_msg_id !== p.client_msg_id);
        if (r.status >= 400) rest.push({ ...p, error: errorText(r, "not sent") });
        this.setOutbox(rest);
      }
    } finally {
      this.sending = false;
    }
  }

  discard(client_msg_id: string): void {
    this.setOutbox(this.state.outbox.filter((x) => x.client_msg_id !== client_msg_id));
  }

  private setOutbox(outbox: Pending[]): void {
    /* the reducer runs a frame later: the state is updated at once too,
     * so a flush started meanwhile sees the same list */
    this.state = { ...this.state, outbox };
    this.dispatch({ t: "outbox", outbox });
    try {
      localStorage.setItem(OUTBOX_KEY + ":" + this.me.sub, JSON.stringify(outbox));
    } catch {
      /* private mode: the outbox lives as long as the page */
    }
  }

  private loadOutbox(): Pending[] {
    try {
      const v = JSON.parse(localStorage.getItem(OUTBOX_KEY + ":" + this.me.sub) ?? "[]");
      return Array.isArray(v) ? v : [];
    } catch {
      return [];
    }
  }

  /* at most one "start" each 3 s per conversation (the server forwards one a second) */
  typing(conversation: string, on: boolean): void {
    const now = Date.now();
    if (on) {
      if (now - (this.typingSent[conversation] ?? 0) < 3000) return;
      this.typingSent[conversation] = now;
      this.wsSend({ type: "typing", conversation, state: "start" });
    } else if (this.typingSent[conversation]) {
      delete this.typingSent[conversation];
      this.wsSend({ type: "typing", conversation, state: "stop" });
    }
  }

  /* ---- panels of other services: a 404 means "not available here" ---- */

  async suggestions(id: string): Promise<Reply> {
    return this.rest("GET", `/v1/conversations/${encodeURIComponent(id)}/suggestions`);
  }

  async contact(contactId: string): Promise<Reply> {
    return this.rest("GET", `/v1/contacts/${encodeURIComponent(contactId)}`);
  }

  /* the person's history across all their conversations (every channel), oldest first */
  async contactEvents(contactId: string, limit = 100): Promise<Reply> {
    return this.rest("GET", `/v1/contacts/${encodeURIComponent(contactId)}/events?limit=${limit}`);
  }

  async merge(contactId: string, other: string): Promise<Reply> {
    return this.rest("POST", `/v1/contacts/${encodeURIComponent(contactId)}/merge`, { other });
  }

  async agents(): Promise<Reply> {
    return this.rest("GET", "/v1/agents");
  }

  async kpis(from: Date, to: Date, groupBy: string): Promise<Reply> {
    return this.rest(
      "GET",
      `/v1/reports/kpis?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}&group_by=${groupBy}`,
    );
  }

  /* canned responses: [{shortcut, text}] whichever shape the list comes in */
  async cannedList(): Promise<Array<{ shortcut: string; title: string; text: string }>> {
    if (this.canned) return this.canned;
    const r = await this.rest("GET", "/v1/canned");
    const raw = r.status === 200 ? (Array.isArray(r.body) ? r.body : (r.body?.canned ?? r.body?.responses ?? r.body?.items ?? [])) : [];
    this.canned = raw
      .filter((x: any) => x && typeof x.text === "string")
      .map((x: any) => ({ shortcut: String(x.shortcut ?? x.id ?? x.name ?? ""), title: String(x.title ?? ""), text: x.text }));
    return this.canned!;
  }
}

export function errorText(r: Reply, fallback: string): string {
  if (r.status === 0) return "offline: " + fallback;
  return r.body?.error?.message ?? `${fallback} (${r.status})`;
}
