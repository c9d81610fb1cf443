// panels.tsx - beside a conversation: suggested replies and articles (the
// knowledge base), and the contact (identities, merge suggestions, past
// conversations). Each panel fetches its own API; a 404 (the service is not
// part of this server) reads "not available", never an error.
import { useEffect, useState } from "preact/hooks";
import { errorText, type Client, type Reply } from "./api";
import { ChannelIcon } from "./inbox_view";
import type { CloudEvent, Conversation } from "./types";

type Load<T> = { state: "loading" } | { state: "absent" } | { state: "error"; text: string } | { state: "ok"; data: T };

function useLoad<T>(f: () => Promise<Reply<T>>, deps: unknown[]): [Load<T>, () => void] {
  const [v, set] = useState<Load<T>>({ state: "loading" });
  const [n, setN] = useState(0);
  useEffect(() => {
    let alive = true;
    /* what is shown stays while it is asked again (no flicker) */
    set((old) => (old.state === "ok" ? old : { state: "loading" }));
    void f().then((r) => {
      if (!alive) return;
      if (r.status === 200 && r.body) set({ state: "ok", data: r.body });
      else if (r.status === 404 || r.status === 405 || r.status === 501) set({ state: "absent" });
      /* a 403 (not for this role) says so here; a 401 has ended the session */
      else {
        const m = (r.body as any)?.error?.message;
        set({ state: "error", text: r.status ? `error ${r.status}${m ? ": " + m : ""}` : "offline" });
      }
    });
    return () => {
      alive = false;
    };
  }, [...deps, n]);
  return [v, () => setN(n + 1)];
}

function Status({ v }: { v: Load<unknown> }) {
  if (v.state === "loading") return <p class="muted">loading…</p>;
  if (v.state === "absent") return <p class="muted">not available</p>;
  if (v.state === "error") return <p class="muted">{v.text}</p>;
  return null;
}

export function SidePanels({ client, conv }: { client: Client; conv: Conversation }) {
  return (
    <aside class="side" aria-label="Details">
      {/* keyed: another conversation starts from "loading", never from the last one's data */}
      <Suggestions key={"s" + conv.conversation_id} client={client} conv={conv} />
      <ContactPanel key={"c" + conv.conversation_id + (conv.contact_id ?? "")} client={client} conv={conv} />
    </aside>
  );
}

interface Suggest {
  articles?: Array<{ id: string; title: string; score?: number; snippet?: string }>;
  replies?: Array<{ text: string; source?: string; article_ids?: string[]; suggestion_id?: string }>;
}

function Suggestions({ client, conv }: { client: Client; conv: Conversation }) {
  /* again when a new inbound message arrives */
  const inboundSeq = conv.last_message?.direction === "inbound" ? conv.last_message.seq : 0;
  const [v] = useLoad<Suggest>(() => client.suggestions(conv.conversation_id), [conv.conversation_id, inboundSeq]);
  return (
    <section class="panel" aria-label="Suggestions">
      <h3>Suggestions</h3>
      <Status v={v} />
      {v.state === "ok" && (
        <>
          {(v.data.replies ?? []).map((r, i) => (
            <div key={"r" + i} class="suggestion-row">
              <span class="src">{r.source}</span>
              <button class="suggestion" data-testid="suggestion" title="put it in the composer" onClick={() =>
                  client.insert(conv.conversation_id, r.text, r.suggestion_id && r.source ? { id: r.suggestion_id, source: r.source } : undefined)
                }
              >
                {r.text}
              </button>
            </div>
          ))}
          {(v.data.articles ?? []).map((a) => (
            <button key={a.id} class="article" title="insert the article's snippet" onClick={() => client.insert(conv.conversation_id, `${a.title}: ${a.snippet ?? ""}`.trim())}>
              article: <strong>{a.title}</strong> <span class="muted">{a.snippet}</span>
            </button>
          ))}
          {!(v.data.replies ?? []).length && !(v.data.articles ?? []).length && <p class="muted">nothing to suggest</p>}
        </>
      )}
    </section>
  );
}

interface Contact {
  contact_id: string;
  name?: string;
  identifiers?: Array<{ type: string; value: string; verified?: boolean }>;
  conversations?: string[];
  /* other people sharing an identifier that one side holds unverified */
  suggestions?: Array<{ contact_id: string; identifier?: { type: string; value: string } }>;
  merged?: string[];
  erased?: boolean;
}

interface ContactEvents {
  contact_id: string;
  events: CloudEvent[];
}

const HISTORY_SHOWN = 20;

/* one line per identifier: after a merge the same address may come from
 * each side (verified wins) */
export function uniqueIdentifiers<T extends { type: string; value: string; verified?: boolean }>(ids: T[]): T[] {
  const by = new Map<string, T>();
  for (const i of ids) {
    const k = i.type + "\u0000" + i.value;
    const old = by.get(k);
    if (!old || (!old.verified && i.verified)) by.set(k, i);
  }
  return [...by.values()];
}

/* The person behind the conversation (GET /v1/contacts/{id}): identifiers
 * on every channel, merge suggestions (accepting one is POST .../merge),
 * their conversations and their messages across channels (GET
 * /v1/contacts/{id}/events: the first 100 events of their conversations,
 * merged by time). A conversation is linked to its contact a moment after
 * it is created: a 404 is asked again twice before it reads "not available". */
function ContactPanel({ client, conv }: { client: Client; conv: Conversation }) {
  const cid = conv.contact_id;
  /* again with each event of the conversation: a merge or a new suggestion
   * may have come meanwhile */
  const [v, reload] = useLoad<Contact>(
    () => (cid ? client.contact(cid) : Promise.resolve({ status: 404, body: null })),
    [cid, conv.head],
  );
  const [tries, setTries] = useState(0);
  useEffect(() => setTries(0), [cid]);
  useEffect(() => {
    if (v.state !== "absent" || tries >= 2) return;
    const t = setTimeout(() => {
      setTries(tries + 1);
      /* the object again: once linked, its contact_id names the person */
      void client.refresh(conv.conversation_id).then(reload);
    }, 1500);
    return () => clearTimeout(t);
  }, [v.state, tries]);
  const root = v.state === "ok" ? v.data.contact_id : null;
  const nconv = v.state === "ok" ? (v.data.conversations ?? []).length : 0;
  const [h] = useLoad<ContactEvents>(
    () => (root ? client.contactEvents(root) : Promise.resolve({ status: 404, body: null })),
    [root, nconv, conv.head],
  );
  const channelOf: Record<string, string> = {};
  const messages: CloudEvent[] = [];
  if (h.state === "ok") {
    for (const e of h.data.events ?? []) {
      const d = e.data ?? {};
      if (e.subject && d.channel) channelOf[e.subject] = d.channel;
      if (e.type === "omnihub.message.inbound" || e.type === "omnihub.message.outbound") messages.push(e);
    }
  }
  const shown = messages.slice(-HISTORY_SHOWN);
  return (
    <section class="panel" data-testid="contact-panel" aria-label="Contact">
      <h3>Contact</h3>
      <p>
        <strong>{(v.state === "ok" && v.data.name) || conv.contact?.name || conv.contact?.id}</strong>{" "}
        <span class="muted">{conv.channel}</span>
      </p>
      <Status v={v} />
      {v.state === "ok" && (
        <>
          <ul class="identifiers" aria-label="Identifiers">
            {uniqueIdentifiers(v.data.identifiers ?? []).map((i) => (
              <li key={i.type + i.value} data-testid="contact-identifier">
                <ChannelIcon channel={i.type} /> {i.type}: {i.value}{" "}
                {i.verified ? <span title="verified">✔</span> : <span class="muted">(unverified)</span>}
              </li>
            ))}
          </ul>
          {(v.data.suggestions ?? []).length > 0 && (
            <div>
              <h4>Maybe the same person</h4>
              {(v.data.suggestions ?? []).map((m) => (
                <button
                  key={m.contact_id}
                  class="link merge"
                  data-testid="merge-suggestion"
                  onClick={() =>
                    void client.merge(v.data.contact_id, m.contact_id).then((r) => {
                      client.dispatch({ t: "notice", text: r.status === 200 ? "Contacts merged" : errorText(r, "merge failed") });
                      reload();
                    })
                  }
                >
                  merge {m.contact_id}
                  {m.identifier ? ` (shares ${m.identifier.type} ${m.identifier.value})` : ""}
                </button>
              ))}
            </div>
          )}
          <h4>Conversations</h4>
          <ul class="past" aria-label="Conversations of this contact">
            {(v.data.conversations ?? []).map((id) => {
              const c = client.state.convs.get(id);
              const ch = c?.channel ?? channelOf[id] ?? "";
              return (
                <li key={id} data-testid="contact-conversation" data-conversation-id={id}>
                  <button class="link" onClick={() => client.open(id)} aria-current={id === conv.conversation_id ? "true" : undefined}>
                    {ch && <ChannelIcon channel={ch} />} {ch} {id === conv.conversation_id ? "(this one)" : c?.status ?? id.slice(0, 16)}
                  </button>
                </li>
              );
            })}
          </ul>
          {shown.length > 0 && (
            <>
              <h4>History across channels</h4>
              <ol class="xhistory" aria-label="Messages across channels">
                {shown.map((e) => {
                  const d = e.data ?? {};
                  return (
                    <li key={e.id} class={"xmsg " + (d.direction ?? "")} data-testid="contact-event" data-conversation-id={e.subject}>
                      <ChannelIcon channel={d.channel ?? channelOf[e.subject ?? ""] ?? ""} />{" "}
                      <span class="muted">{e.time ? new Date(e.time).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : ""}</span>{" "}
                      {d.internal ? <em>(note) </em> : null}
                      {String(d.text ?? d.subject ?? `[${d.kind ?? "message"}]`).slice(0, 120)}
                    </li>
                  );
                })}
              </ol>
            </>
          )}
        </>
      )}
    </section>
  );
}
