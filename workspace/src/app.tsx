// app.tsx - the shell: sign-in, the top bar (connection state, KPI strip)
// and the three columns (inbox, conversation, side panels), plus the
// keyboard shortcuts (j/k move, e resolve, a assign, / search).
import { useEffect, useMemo, useState } from "preact/hooks";
import { Client, decodeToken } from "./api";
import type { State } from "./state";
import { Inbox } from "./inbox_view";
import { ConversationView } from "./conversation_view";
import { SidePanels } from "./panels";
import { KpiDashboard, KpiStrip } from "./kpi";
import { DEFAULT_FILTER, inboxList, type Filter } from "./inbox";

const TOKEN_KEY = "omnihub.token";

function initialToken(): string {
  const u = new URL(location.href);
  const t = u.searchParams.get("token");
  if (t) {
    /* out of the address bar and the history once read */
    u.searchParams.delete("token");
    history.replaceState(null, "", u.pathname + u.search + u.hash);
    sessionStorage.setItem(TOKEN_KEY, t);
    return t;
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

export function App() {
  const [token, setToken] = useState(initialToken);
  const [client, setClient] = useState<Client | null>(null);
  const [error, setError] = useState("");

  useEffect(() => {
    if (!token) return;
    const claims = decodeToken(token);
    if (!claims) {
      setError("That is not a token omnihub issued (a JWT).");
      setToken("");
      return;
    }
    const c = new Client(location.origin, token, claims);
    let alive = true;
    void c.rest("GET", "/v1/conversations?limit=1").then((r) => {
      if (!alive) return;
      if (r.status === 401 || r.status === 403) {
        setError(r.status === 401 ? "The token was refused (expired or not signed for this server)." : "Agents only: this token is a customer's.");
        sessionStorage.removeItem(TOKEN_KEY);
        setToken("");
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, token);
      c.start();
      setClient(c);
    });
    return () => {
      alive = false;
      c.stop();
    };
  }, [token]);

  if (!token || !client) return <SignIn onToken={(t) => (setError(""), setToken(t))} error={error} busy={!!token} />;
  /* why: shown by the sign-in form (a session that ended: api.ts, end) */
  const signOut = (why = "") => {
    sessionStorage.removeItem(TOKEN_KEY);
    setError(why);
    setClient(null);
    setToken("");
  };
  return <Workspace client={client} onSignOut={signOut} />;
}

function SignIn(props: { onToken: (t: string) => void; error: string; busy: boolean }) {
  const [v, setV] = useState("");
  return (
    <main class="signin">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (v.trim()) props.onToken(v.trim());
        }}
      >
        <h1>omnihub workspace</h1>
        <label for="token">Agent token</label>
        <textarea
          id="token"
          data-testid="token-input"
          rows={4}
          value={v}
          onInput={(e) => setV((e.target as HTMLTextAreaElement).value)}
          placeholder="eyJhbGciOi…  (omnihubctl token --role agent)"
        />
        <button type="submit" data-testid="sign-in" disabled={props.busy}>
          {props.busy ? "Signing in…" : "Sign in"}
        </button>
        {props.error && (
          <p class="error" role="alert">
            {props.error}
          </p>
        )}
      </form>
    </main>
  );
}

export function useClientState(client: Client): State {
  const [s, set] = useState(client.state);
  useEffect(() => {
    const off = client.subscribe(set);
    set(client.state); /* whatever was dispatched between the first render and now */
    return off;
  }, [client]);
  return s;
}

function Workspace(props: { client: Client; onSignOut: (why?: string) => void }) {
  const { client } = props;
  const s = useClientState(client);
  const [tab, setTab] = useState<"inbox" | "kpis">("inbox");
  const [filter, setFilter] = useState<Filter>(DEFAULT_FILTER);
  const [hits, setHits] = useState<Set<string> | null>(null);

  /* the session ended (the token expired, or the daemon refused it): the
   * stored token goes and the sign-in form says why */
  useEffect(() => {
    if (s.ended) props.onSignOut(s.ended);
  }, [s.ended]);

  /* the server's full-text search, a moment after typing stops */
  useEffect(() => {
    const q = filter.q.trim();
    if (!q) {
      setHits(null);
      return;
    }
    const t = setTimeout(() => void client.search(q).then(setHits), 250);
    return () => clearTimeout(t);
  }, [filter.q, client]);

  const list = useMemo(() => inboxList(s.convs.values(), filter, s.me, hits), [s.convs, filter, s.me, hits]);
  const resolved = useMemo(() => {
    let n = 0;
    for (const c of s.convs.values()) if (c.status === "resolved") n++;
    return n;
  }, [s.convs]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const el = e.target as HTMLElement;
      if (el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable)) {
        if (e.key === "Escape") el.blur();
        return;
      }
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const i = list.findIndex((c) => c.conversation_id === s.open);
      if (e.key === "j" || e.key === "k") {
        const n = e.key === "j" ? Math.min(list.length - 1, i + 1) : Math.max(0, i - 1);
        if (list[n]) client.open(list[n].conversation_id);
        e.preventDefault();
      } else if (e.key === "/") {
        (document.getElementById("inbox-search") as HTMLInputElement | null)?.focus();
        e.preventDefault();
      } else if (e.key === "e" && s.open) {
        void client.patch(s.open, { status: "resolved" });
        e.preventDefault();
      } else if (e.key === "a" && s.open) {
        (document.getElementById("assign-select") as HTMLSelectElement | null)?.focus();
        e.preventDefault();
      } else if (e.key === "r" && s.open) {
        (document.querySelector("[data-testid=composer]") as HTMLTextAreaElement | null)?.focus();
        e.preventDefault();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [list, s.open, client]);

  const open = s.open ? s.convs.get(s.open) ?? null : null;
  return (
    <div class="shell">
      <header class="topbar">
        <h1 class="brand">omnihub</h1>
        <nav aria-label="Views">
          <button class={tab === "inbox" ? "tab on" : "tab"} aria-pressed={tab === "inbox"} onClick={() => setTab("inbox")}>
            Inbox
          </button>
          <button class={tab === "kpis" ? "tab on" : "tab"} aria-pressed={tab === "kpis"} onClick={() => setTab("kpis")}>
            KPIs
          </button>
        </nav>
        <KpiStrip client={client} resolved={resolved} />
        <span class="me" title="signed in as">
          {client.me.name ?? client.me.sub}
        </span>
        <span class={s.online ? "conn online" : "conn offline"} data-testid="connection-state" role="status" aria-live="polite">
          {s.online ? "online" : "offline"}
        </span>
        <button class="link" onClick={() => props.onSignOut()}>
          Sign out
        </button>
      </header>
      {s.notice && (
        <div class="notice" role="alert">
          {s.notice}
          <button class="link" aria-label="Dismiss" onClick={() => client.dispatch({ t: "notice", text: "" })}>
            ×
          </button>
        </div>
      )}
      {tab === "kpis" ? (
        <KpiDashboard client={client} />
      ) : (
        <div class="columns">
          <Inbox client={client} state={s} list={list} filter={filter} setFilter={setFilter} />
          <main class="center" aria-label="Conversation">
            {open ? <ConversationView key={open.conversation_id} client={client} state={s} conv={open} /> : <p class="empty">Select a conversation (j/k to move, / to search).</p>}
          </main>
          {open && <SidePanels key={open.conversation_id} client={client} conv={open} />}
        </div>
      )}
    </div>
  );
}
