// inbox_view.tsx - the inbox: filter bar and a virtualized list (only the
// rows near the viewport exist in the DOM), live from the state.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Client } from "./api";
import type { State } from "./state";
import type { Conversation } from "./types";
import { channelFamily, channelsOf, labelsOf, viewCounts, type Filter, type View } from "./inbox";
import { windowFor, scrollToRow } from "./vlist";
import { slaCountdown } from "./sla";
import { PRIORITIES, STATUSES } from "./types";

export const ROW_HEIGHT = 68;

/* letters, not emoji: they render with any font (Debian's Chromium has no emoji font) */
const ICONS: Record<string, string> = {
  whatsapp: "WA",
  email: "@",
  messenger: "FB",
  instagram: "IG",
  telegram: "TG",
  line: "LN",
  x: "X",
  webchat: "WEB",
  api: "API",
};

export function channelIcon(channel: string): string {
  return ICONS[channelFamily(channel)] ?? channelFamily(channel).slice(0, 3).toUpperCase();
}

export function ChannelIcon({ channel }: { channel: string }) {
  return (
    <span class={"chan chan-" + channelFamily(channel)} title={channel} aria-label={"channel " + channel}>
      {channelIcon(channel)}
    </span>
  );
}

export function useNow(ms: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

interface Props {
  client: Client;
  state: State;
  list: Conversation[];
  filter: Filter;
  setFilter: (f: Filter) => void;
}

export function Inbox({ client, state, list, filter, setFilter }: Props) {
  const counts = useMemo(() => viewCounts(state.convs.values(), state.me), [state.convs, state.me]);
  const channels = useMemo(() => channelsOf(state.convs.values()), [state.convs]);
  const labels = useMemo(() => labelsOf(state.convs.values()), [state.convs]);
  const set = (k: keyof Filter) => (e: Event) => setFilter({ ...filter, [k]: (e.target as HTMLInputElement).value });
  return (
    <aside class="inbox" aria-label="Inbox">
      <div class="filters" role="search">
        <div class="views" role="radiogroup" aria-label="Whose conversations">
          {(["mine", "unassigned", "all"] as View[]).map((v) => (
            <label key={v} class={filter.view === v ? "view on" : "view"}>
              <input type="radio" name="view" value={v} checked={filter.view === v} onChange={set("view")} />
              {v} <span class="count">{counts[v]}</span>
            </label>
          ))}
        </div>
        <input
          id="inbox-search"
          name="q"
          type="search"
          placeholder="Search  ( / )"
          aria-label="Search conversations"
          value={filter.q}
          onInput={set("q")}
        />
        <div class="selects">
          {/* the contract's `inbox-filter` is this one control, so a check can selectOption a status */}
          <FilterSelect name="status" label="Status" choices={STATUSES} filter={filter} set={set} testid="inbox-filter" />
          <FilterSelect name="channel" label="Channel" choices={channels} filter={filter} set={set} />
          <FilterSelect name="priority" label="Priority" choices={PRIORITIES} filter={filter} set={set} />
          <FilterSelect name="label" label="Label" choices={labels} filter={filter} set={set} />
          <select name="sort" aria-label="Order" value={filter.sort} onChange={set("sort")}>
            <option value="priority">urgent first</option>
            <option value="recent">most recent</option>
          </select>
        </div>
      </div>
      <VirtualList client={client} list={list} open={state.open} />
    </aside>
  );
}

type FilterKey = "status" | "channel" | "priority" | "label";

/* one "any X" select of the filter bar; "" means no filter */
function FilterSelect(props: {
  name: FilterKey;
  label: string;
  choices: readonly string[];
  filter: Filter;
  set: (k: keyof Filter) => (e: Event) => void;
  testid?: string;
}) {
  const { name, label, choices, filter, set, testid } = props;
  return (
    <select name={name} aria-label={label} value={filter[name]} onChange={set(name)} data-testid={testid}>
      <option value="">any {name}</option>
      {choices.map((x) => (
        <option key={x} value={x}>
          {x}
        </option>
      ))}
    </select>
  );
}

function VirtualList({ client, list, open }: { client: Client; list: Conversation[]; open: string | null }) {
  const ref = useRef<HTMLDivElement>(null);
  const [scroll, setScroll] = useState(0);
  const [height, setHeight] = useState(600);
  const now = useNow(1000);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    setHeight(el.clientHeight);
    return () => ro.disconnect();
  }, []);
  /* keep the open conversation visible when j/k moves it */
  useEffect(() => {
    const el = ref.current;
    const i = list.findIndex((c) => c.conversation_id === open);
    if (!el || i < 0) return;
    const top = scrollToRow(i, el.scrollTop, el.clientHeight, ROW_HEIGHT);
    if (top !== el.scrollTop) el.scrollTop = top;
  }, [open]);
  const w = windowFor(scroll, height, ROW_HEIGHT, list.length);
  return (
    <div class="vlist" ref={ref} onScroll={(e) => setScroll((e.target as HTMLDivElement).scrollTop)} role="list" aria-label={`${list.length} conversations`}>
      <div style={{ height: w.total + "px", position: "relative" }}>
        <div style={{ transform: `translateY(${w.padTop}px)` }}>
          {list.slice(w.start, w.end).map((c) => (
            <Row key={c.conversation_id} c={c} open={c.conversation_id === open} now={now} onOpen={() => client.open(c.conversation_id)} />
          ))}
        </div>
      </div>
      {!list.length && <p class="empty">No conversation matches.</p>}
    </div>
  );
}

function Row({ c, open, now, onOpen }: { c: Conversation; open: boolean; now: number; onOpen: () => void }) {
  const sla = slaCountdown(c, now);
  const name = c.contact?.name || c.contact?.id || c.conversation_id;
  return (
    <div
      role="listitem"
      tabIndex={0}
      class={"item" + (open ? " open" : "") + (c.unread ? " unread" : "")}
      style={{ height: ROW_HEIGHT + "px" }}
      data-testid="inbox-item"
      data-conversation-id={c.conversation_id}
      data-status={c.status}
      data-priority={c.priority}
      data-assignee={c.assignee ?? ""}
      aria-current={open ? "true" : undefined}
      onClick={onOpen}
      onKeyDown={(e) => {
        if (e.key === "Enter") onOpen();
      }}
    >
      <div class="line1">
        <ChannelIcon channel={c.channel} />
        <span class="name">{name}</span>
        {c.frustrated && (
          <span class="badge frustrated" title="the customer sounds frustrated">
            frustrated
          </span>
        )}
        <span class={"badge prio " + c.priority} data-testid="priority-badge">
          {c.priority}
        </span>
        {!!c.unread && (
          <span class="badge unread-count" aria-label={`${c.unread} unread`}>
            {c.unread}
          </span>
        )}
      </div>
      <div class="line2">
        <span class="preview">
          {c.last_message?.direction === "outbound" ? "↩ " : ""}
          {c.last_message?.text || (c.last_message ? `[${c.last_message.kind}]` : "")}
        </span>
      </div>
      <div class="line3">
        <span class={"status " + c.status}>{c.status}</span>
        <span class="assignee">{c.assignee ? "@" + c.assignee : "unassigned"}</span>
        {sla && (
          <span class={"sla " + sla.level} title={sla.kind === "frt" ? "first response due" : "next response due"}>
            SLA {sla.text}
          </span>
        )}
      </div>
    </div>
  );
}
