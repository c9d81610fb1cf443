// panels.tsx - beside a conversation: suggested replies and articles (the
// knowledge base), and the contact (identities, merge suggestions, past
// conversations). Each panel fetches its own API; a 404 (the service is not
// part of this server) reads "not available", never an error.
import { useEffect, useState } from "preact/hooks";
import type { Client, Reply } from "./api";
import type { Conversation } from "./types";

type Load<T> = { state: "loading" } | { state: "absent" } | { state: "error"; text: string } | { state: "ok"; data: T };

function useLoad<T>(f: () => Promise<Reply<T>>, deps: unknown[]): [Load<T>, () => void] {
  const [v, set] = useState<Load<T>>({ state: "loading" });
  const [n, setN] = useState(0);
  useEffect(() => {
    let alive = true;
    set({ state: "loading" });
    void f().then((r) => {
      if (!alive) return;
      if (r.status === 200 && r.body) set({ state: "ok", data: r.body });
      else if (r.status === 404 || r.status === 405 || r.status === 501) set({ state: "absent" });
      else set({ state: "error", text: r.status ? `error ${r.status}` : "offline" });
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
      <Suggestions client={client} conv={conv} />
      <ContactPanel client={client} conv={conv} />
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
}

function ContactPanel({ client, conv }: { client: Client; conv: Conversation }) {
  const cid = conv.contact_id;
  const [v, reload] = useLoad<Contact>(
    () => (cid ? client.contact(cid) : Promise.resolve({ status: 404, body: null })),
    [cid],
  );
  return (
    <section class="panel" data-testid="contact-panel" aria-label="Contact">
      <h3>Contact</h3>
      <p>
        <strong>{conv.contact?.name || conv.contact?.id}</strong> <span class="muted">{conv.channel}</span>
      </p>
      <Status v={v} />
      {v.state === "ok" && (
        <>
          <ul class="identifiers">
            {(v.data.identifiers ?? []).map((i) => (
              <li key={i.type + i.value}>
                {i.type}: {i.value} {i.verified ? <span title="verified">✔</span> : <span class="muted">(unverified)</span>}
              </li>
            ))}
          </ul>
          {(v.data.suggestions ?? []).length > 0 && (
            <div>
              <h4>Maybe the same person</h4>
              {(v.data.suggestions ?? []).map((m) => {
                const other = m.contact_id;
                return (
                  <button
                    key={other}
                    class="link"
                    onClick={() =>
                      void client.merge(v.data.contact_id, other).then((r) => {
                        client.dispatch({ t: "notice", text: r.status === 200 ? "Contacts merged" : "Merge failed" });
                        reload();
                      })
                    }
                  >
                    merge {m.contact_id}
                    {m.identifier ? ` (shares ${m.identifier.type} ${m.identifier.value})` : ""}
                  </button>
                );
              })}
            </div>
          )}
          <h4>Conversations</h4>
          <ul class="past">
            {(v.data.conversations ?? []).map((id) => (
              <li key={id}>
                <button class="link" onClick={() => client.open(id)} aria-current={id === conv.conversation_id ? "true" : undefined}>
                  {client.state.convs.get(id)?.channel ?? ""} {id === conv.conversation_id ? "(this one)" : id.slice(0, 16)}
                </button>
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
