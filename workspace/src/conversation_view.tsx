// conversation_view.tsx - one conversation: its actions (claim, assign,
// resolve, snooze, priority, labels), the history (notes apart, delivery
// ticks, typing) and the composer (Enter sends, Shift+Enter breaks the line,
// "/" lists canned responses, notes by a toggle).
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { Client } from "./api";
import { describeUpdate, isTyping, type State } from "./state";
import type { CloudEvent, Conversation, DeliveryState } from "./types";
import { PRIORITIES } from "./types";
import { ChannelIcon, useNow } from "./inbox_view";
import { slaCountdown } from "./sla";
import { AttachmentView } from "./attachment_view";

interface Props {
  client: Client;
  state: State;
  conv: Conversation;
}

export function ConversationView({ client, state, conv }: Props) {
  const th = state.threads.get(conv.conversation_id);
  const now = useNow(1000);
  const typing = isTyping(state, conv.conversation_id, now);
  const pending = state.outbox.filter((p) => p.conversation === conv.conversation_id);
  const scroller = useRef<HTMLDivElement>(null);
  const count = (th?.events.length ?? 0) + pending.length;
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [count, !!typing]);
  const sla = slaCountdown(conv, now);
  return (
    <section class="conversation" data-testid="conversation-view" data-conversation-id={conv.conversation_id} aria-label="Conversation">
      <header class="conv-head">
        <h2>
          <ChannelIcon channel={conv.channel} /> {conv.contact?.name || conv.contact?.id}
          <small>
            {" "}
            {conv.channel} · {conv.account}
          </small>
        </h2>
        <div class="meta">
          <span class={"status " + conv.status}>{conv.status}</span>
          <span class={"badge prio " + conv.priority}>{conv.priority}</span>
          {conv.frustrated && <span class="badge frustrated">frustrated</span>}
          <span class="assignee">{conv.assignee ? "@" + conv.assignee : "unassigned"}</span>
          {sla && <span class={"sla " + sla.level}>SLA {sla.text}</span>}
        </div>
        <Actions client={client} conv={conv} me={state.me} />
      </header>
      <div class="messages" ref={scroller} aria-live="polite">
        {th?.error ? (
          <p class="error" role="alert">
            History not shown: {th.error}
          </p>
        ) : (
          !th?.loaded && <p class="empty">Loading…</p>
        )}
        {th?.events.map((e) => <Item key={e.seq} ev={e} delivery={th.delivery} client={client} />)}
        {pending.map((p) => (
          <div key={p.client_msg_id} class={"msg outbound pending" + (p.internal ? " note" : "")}>
            <div class="text">{p.text}</div>
            <div class="foot">
              {p.error ? (
                <>
                  <span class="error">{p.error}</span>{" "}
                  <button class="link" onClick={() => client.discard(p.client_msg_id)}>
                    discard
                  </button>
                </>
              ) : (
                <span title="queued: sent when online">◷ {state.online ? "sending" : "queued"}</span>
              )}
            </div>
          </div>
        ))}
        {typing && <p class="typing">{typing.from || "customer"} is typing…</p>}
      </div>
      <Composer client={client} conv={conv} />
    </section>
  );
}

const TICKS: Record<DeliveryState, string> = { sent: "✓", delivered: "✓✓", read: "✓✓", failed: "⚠" };

function Item({ ev, delivery, client }: { ev: CloudEvent; delivery: Record<string, DeliveryState>; client: Client }) {
  const d = ev.data ?? {};
  const time = ev.time ? new Date(ev.time).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
  if (ev.type === "omnihub.message.inbound" || ev.type === "omnihub.message.outbound") {
    const out = ev.type === "omnihub.message.outbound";
    const st = out && d.message_id ? delivery[d.message_id] : undefined;
    const who = d.author?.kind === "agent" ? d.author.id : d.author?.kind === "bot" ? "bot" : out ? "" : d.contact?.name;
    return (
      <div class={"msg " + (out ? "outbound" : "inbound") + (d.internal ? " note" : "")} data-testid="message" data-seq={ev.seq}>
        {d.internal && <div class="note-tag">private note</div>}
        {d.subject && <div class="subject">{d.subject}</div>}
        <div class="text">{d.text ?? (d.kind && d.kind !== "text" ? `[${d.kind}]` : "")}</div>
        {Array.isArray(d.attachments) &&
          d.attachments.map((a: any, i: number) => <AttachmentView key={i} client={client} att={a ?? {}} channel={d.channel} />)}
        <div class="foot">
          {who && <span class="who">{who}</span>} <span class="time">{time}</span>
          {out && !d.internal && (
            <span class={"tick " + (st ?? "sent")} title={st ?? "sent"} aria-label={st ?? "sent"}>
              {TICKS[st ?? "sent"]}
            </span>
          )}
        </div>
      </div>
    );
  }
  if (ev.type === "omnihub.conversation.updated") {
    const what = describeUpdate(d);
    const breach = typeof d.reason === "string" && d.reason.startsWith("sla_breach:");
    return (
      <div class={"sys" + (breach ? " breach" : "")} data-testid="event" data-seq={ev.seq}>
        {what} · {d.author?.id ?? ""} {time}
      </div>
    );
  }
  if (ev.type === "omnihub.message.enriched") {
    return (
      <div class="sys enriched" data-testid="event" data-seq={ev.seq}>
        triage: {d.priority}
        {d.frustrated ? ", frustrated" : ""}
        {d.wants_human ? ", wants a human" : ""}
        {d.language ? `, ${d.language}` : ""}
      </div>
    );
  }
  /* statuses show as ticks on their message; anything else stays quiet */
  return null;
}

function Actions({ client, conv, me }: { client: Client; conv: Conversation; me: string }) {
  const id = conv.conversation_id;
  const [agents, setAgents] = useState<Array<{ id: string; name?: string }>>([]);
  const [labels, setLabels] = useState((conv.labels ?? []).join(", "));
  useEffect(() => setLabels((conv.labels ?? []).join(", ")), [conv.labels]);
  useEffect(() => {
    void client.agents().then((r) => {
      if (r.status === 200 && Array.isArray(r.body?.agents)) setAgents(r.body.agents);
    });
  }, [client]);
  const ids = new Set(agents.map((a) => a.id));
  ids.add(me);
  if (conv.assignee) ids.add(conv.assignee);
  return (
    <div class="actions">
      {/* never disabled: claiming one's own conversation is a harmless 200 (the router may have assigned it) */}
      <button data-testid="claim" aria-pressed={conv.assignee === me} onClick={() => void client.claim(id)}>
        {conv.assignee === me ? "Claimed" : "Claim"}
      </button>
      <label>
        <span class="sr">Assign to</span>
        <select
          id="assign-select"
          aria-label="Assign to (a)"
          value={conv.assignee ?? ""}
          onChange={(e) => {
            const v = (e.target as HTMLSelectElement).value;
            void client.patch(id, { assignee: v || null });
          }}
        >
          <option value="">unassigned</option>
          {[...ids].sort().map((a) => (
            <option key={a} value={a}>
              {a === me ? `${a} (me)` : a}
            </option>
          ))}
        </select>
      </label>
      {conv.status === "resolved" ? (
        <button onClick={() => void client.patch(id, { status: "open" })}>Reopen</button>
      ) : (
        <button data-testid="resolve" onClick={() => void client.patch(id, { status: "resolved" })}>
          Resolve (e)
        </button>
      )}
      <select
        aria-label="Snooze"
        value=""
        onChange={(e) => {
          const h = Number((e.target as HTMLSelectElement).value);
          if (h > 0) void client.patch(id, { status: "snoozed", snoozed_until: new Date(Date.now() + h * 3600e3).toISOString() });
        }}
      >
        <option value="">Snooze…</option>
        <option value="1">1 hour</option>
        <option value="4">4 hours</option>
        <option value="24">1 day</option>
      </select>
      <select aria-label="Priority" value={conv.priority} onChange={(e) => void client.patch(id, { priority: (e.target as HTMLSelectElement).value })}>
        {PRIORITIES.map((p) => (
          <option key={p} value={p}>
            {p}
          </option>
        ))}
      </select>
      <form
        class="labels"
        onSubmit={(e) => {
          e.preventDefault();
          const set = [...new Set(labels.split(",").map((x) => x.trim()).filter(Boolean))];
          void client.patch(id, { labels: set });
        }}
      >
        <input aria-label="Labels (comma separated)" placeholder="labels" value={labels} onInput={(e) => setLabels((e.target as HTMLInputElement).value)} />
      </form>
    </div>
  );
}

function Composer({ client, conv }: { client: Client; conv: Conversation }) {
  const id = conv.conversation_id;
  const [text, setText] = useState("");
  const [note, setNote] = useState(false);
  const [canned, setCanned] = useState<Array<{ shortcut: string; title: string; text: string }>>([]);
  /* the suggestion the text came from, while the text is still its own */
  const [used, setUsed] = useState<{ text: string; suggestion?: { id: string; source: string } } | null>(null);
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(
    () =>
      client.onInsert((conv, t, suggestion) => {
        if (conv !== id) return;
        setText(t);
        setUsed({ text: t, suggestion });
        ref.current?.focus();
      }),
    [client, id],
  );
  useEffect(() => {
    const m = /^\/(\S*)$/.exec(text);
    if (!m) {
      setCanned([]);
      return;
    }
    const q = m[1].toLowerCase();
    void client
      .cannedList()
      .then((all) => setCanned(all.filter((c) => c.shortcut.toLowerCase().startsWith(q) || c.title.toLowerCase().includes(q)).slice(0, 8)));
  }, [text, client]);
  const send = () => {
    const t = text.trim();
    if (!t) return;
    client.send(id, t, note, used && used.text.trim() === t ? used.suggestion : undefined);
    setText("");
    setUsed(null);
  };
  return (
    <div class={"composer" + (note ? " note" : "")}>
      {canned.length > 0 && (
        <ul class="canned" role="listbox" aria-label="Canned responses">
          {canned.map((c) => (
            <li key={c.shortcut}>
              <button class="link" onClick={() => setText(c.text)}>
                /{c.shortcut} {c.title && `(${c.title})`} — {c.text.slice(0, 60)}
              </button>
            </li>
          ))}
        </ul>
      )}
      <textarea
        ref={ref}
        data-testid="composer"
        aria-label={note ? "Private note" : "Reply"}
        rows={3}
        placeholder={note ? "Private note (agents only)" : "Reply… (Enter sends, Shift+Enter new line, / canned)"}
        value={text}
        onInput={(e) => {
          setText((e.target as HTMLTextAreaElement).value);
          if (!note) client.typing(id, true);
        }}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            send();
          }
        }}
        onBlur={() => client.typing(id, false)}
      />
      <div class="composer-bar">
        <label class="toggle">
          <input type="checkbox" checked={note} onChange={(e) => setNote((e.target as HTMLInputElement).checked)} /> private note
        </label>
        <button data-testid="send" onClick={send} disabled={!text.trim()}>
          {note ? "Add note" : "Send"}
        </button>
      </div>
    </div>
  );
}
