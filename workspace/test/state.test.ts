import { describe, expect, it } from "vitest";
import { addToThread, describeUpdate, emptyThread, initialState, reduce } from "../src/state";
import type { CloudEvent, Conversation } from "../src/types";

function conv(id: string, over: Partial<Conversation> = {}): Conversation {
  return {
    conversation_id: id,
    channel: "api:shop",
    account: "acme",
    contact: { id: "u-" + id, name: "Ann" },
    head: 1,
    updated_at: "2026-12-04T10:00:00Z",
    status: "open",
    assignee: null,
    team: null,
    priority: "normal",
    labels: [],
    contact_id: null,
    snoozed_until: null,
    last_message: null,
    unread: 1,
    ...over,
  };
}

function msg(id: string, seq: number, text = "hi", direction = "inbound", author?: object): CloudEvent {
  return {
    id: `${id}-${seq}`,
    type: `omnihub.message.${direction}`,
    subject: id,
    seq,
    time: `2026-12-04T10:00:${String(seq).padStart(2, "0")}Z`,
    data: { conversation_id: id, channel: "api:shop", account: "acme", direction, kind: "text", text, contact: { id: "u", name: "Ann" }, author },
  };
}

describe("reduce", () => {
  it("adds a conversation first seen through a live event, then its object completes it", () => {
    let s = reduce(initialState("agent-1"), [{ t: "event", ev: msg("c1", 1, "hello") }]);
    const c = s.convs.get("c1")!;
    expect(c.head).toBe(1);
    expect(c.last_message?.text).toBe("hello");
    expect(c.unread).toBe(1);
    expect(c.contact.name).toBe("Ann");
    s = reduce(s, [{ t: "conversations", list: [conv("c1", { head: 1, unread: 1, assignee: "bob" })] }]);
    expect(s.convs.get("c1")!.assignee).toBe("bob");
  });

  it("keeps a live change when an older object arrives afterwards", () => {
    let s = reduce(initialState("a"), [{ t: "conversations", list: [conv("c1", { head: 1 })] }]);
    const upd: CloudEvent = {
      id: "u2",
      type: "omnihub.conversation.updated",
      subject: "c1",
      seq: 2,
      data: { changes: { assignee: "a" }, state: { status: "open", assignee: "a", priority: "high", labels: ["vip"] } },
    };
    s = reduce(s, [{ t: "event", ev: upd }]);
    expect(s.convs.get("c1")!).toMatchObject({ assignee: "a", priority: "high", labels: ["vip"], head: 2 });
    s = reduce(s, [{ t: "conversations", list: [conv("c1", { head: 1, assignee: null })] }]);
    expect(s.convs.get("c1")!.assignee).toBe("a");
  });

  it("does not apply a replayed event twice", () => {
    let s = reduce(initialState("a"), [{ t: "event", ev: msg("c1", 1) }, { t: "event", ev: msg("c1", 2, "again") }]);
    const before = s.convs.get("c1")!;
    s = reduce(s, [{ t: "event", ev: msg("c1", 1) }]);
    expect(s.convs.get("c1")!.unread).toBe(before.unread);
    expect(s.convs.get("c1")!.last_message?.text).toBe("again");
  });

  it("counts unread only for conversations not open and not my own replies", () => {
    let s = reduce(initialState("me"), [{ t: "conversations", list: [conv("c1", { unread: 0 }), conv("c2", { unread: 0 })] }, { t: "open", conv: "c2" }]);
    s = reduce(s, [
      { t: "event", ev: msg("c1", 2) },
      { t: "event", ev: msg("c1", 3, "mine", "outbound", { kind: "agent", id: "me" }) },
      { t: "event", ev: msg("c2", 2) },
    ]);
    expect(s.convs.get("c1")!.unread).toBe(1);
    expect(s.convs.get("c2")!.unread).toBe(0);
  });

  it("opening clears the unread badge and creates a thread", () => {
    let s = reduce(initialState("me"), [{ t: "conversations", list: [conv("c1", { unread: 4 })] }]);
    s = reduce(s, [{ t: "open", conv: "c1" }]);
    expect(s.convs.get("c1")!.unread).toBe(0);
    expect(s.threads.get("c1")).toBeDefined();
  });

  it("marks frustration from triage and copies nothing else from it", () => {
    let s = reduce(initialState("me"), [{ t: "conversations", list: [conv("c1")] }]);
    s = reduce(s, [{ t: "event", ev: { id: "e", type: "omnihub.message.enriched", subject: "c1", seq: 2, data: { frustrated: true, priority: "urgent" } } }]);
    expect(s.convs.get("c1")!.frustrated).toBe(true);
    expect(s.convs.get("c1")!.priority).toBe("normal"); /* the conversation.updated of triage raises it */
  });

  it("typing starts, expires by time, and stops on the customer's message", () => {
    let s = reduce(initialState("me"), [{ t: "typing", conv: "c1", from: "u", state: "start", now: 1000 }]);
    expect(s.typing.c1.until).toBeGreaterThan(1000);
    s = reduce(s, [{ t: "event", ev: msg("c1", 1) }]);
    expect(s.typing.c1).toBeUndefined();
  });

  it("an agent's reply stops the SLA countdown; a private note does not", () => {
    const sla = { first_response_due: "2026-12-04T10:05:00Z", breached: [] };
    let s = reduce(initialState("me"), [{ t: "conversations", list: [conv("c1", { sla })] }]);
    s = reduce(s, [{ t: "event", ev: { ...msg("c1", 2, "note", "outbound", { kind: "agent", id: "me" }), data: { ...msg("c1", 2).data, direction: "outbound", internal: true, author: { kind: "agent", id: "me" } } } }]);
    expect(s.convs.get("c1")!.sla?.first_response_due).toBe(sla.first_response_due);
    s = reduce(s, [{ t: "event", ev: msg("c1", 3, "on it", "outbound", { kind: "agent", id: "me" }) }]);
    expect(s.convs.get("c1")!.sla?.first_response_due).toBeNull();
  });

  it("leaves the state untouched for an empty batch", () => {
    const s = initialState("me");
    expect(reduce(s, [])).toBe(s);
  });
});

describe("threads", () => {
  it("orders by seq, drops duplicates, and finds a gap", () => {
    let th = addToThread(emptyThread(), [msg("c", 2), msg("c", 1), msg("c", 1)]);
    expect(th.events.map((e) => e.seq)).toEqual([1, 2]);
    expect(th.head).toBe(2);
    expect(th.gap).toBe(false);
    th = addToThread(th, [msg("c", 5)]);
    expect(th.head).toBe(2);
    expect(th.gap).toBe(true);
    th = addToThread(th, [msg("c", 3), msg("c", 4)]);
    expect(th.head).toBe(5);
    expect(th.gap).toBe(false);
  });

  it("keeps the best delivery state whatever order statuses come in", () => {
    const st = (seq: number, state: string): CloudEvent => ({ id: "s" + seq, type: "omnihub.message.status", subject: "c", seq, data: { status: { message_id: "m1", state } } });
    const th = addToThread(emptyThread(), [st(1, "read"), st(2, "delivered"), st(3, "sent")]);
    expect(th.delivery.m1).toBe("read");
    expect(addToThread(emptyThread(), [st(1, "sent"), st(2, "failed")]).delivery.m1).toBe("failed");
  });

  it("takes the frustration badge from the history, so it survives a reload", () => {
    const enriched = (seq: number, frustrated: boolean): CloudEvent => ({
      id: "e" + seq,
      type: "omnihub.message.enriched",
      subject: "c1",
      seq,
      data: { conversation_id: "c1", message_event_id: "m", frustrated, sentiment: -0.5, priority: "normal" },
    });
    /* a fresh page: the object carries no triage, the history does */
    let s = reduce(initialState("a"), [{ t: "conversations", list: [conv("c1", { head: 4 })] }, { t: "open", conv: "c1" }]);
    expect(s.convs.get("c1")!.frustrated).toBeUndefined();
    s = reduce(s, [{ t: "history", conv: "c1", events: [msg("c1", 1, "this is ridiculous"), enriched(2, true), msg("c1", 3, "ok")] }]);
    expect(s.convs.get("c1")!.frustrated).toBe(true);
    /* a later object (no triage field) keeps it; a later calm message clears it */
    s = reduce(s, [{ t: "conversations", list: [conv("c1", { head: 4 })] }]);
    expect(s.convs.get("c1")!.frustrated).toBe(true);
    s = reduce(s, [{ t: "event", ev: enriched(4, false) }]);
    expect(s.convs.get("c1")!.frustrated).toBe(false);
    /* an older triage coming back with a history page changes nothing */
    s = reduce(s, [{ t: "history", conv: "c1", events: [enriched(2, true)] }]);
    expect(s.convs.get("c1")!.frustrated).toBe(false);
  });

  it("takes the SLA clocks a breach carries in its changes", () => {
    let s = reduce(initialState("a"), [
      { t: "conversations", list: [conv("c1", { head: 1, sla: { first_response_due: "2026-12-04T10:05:00Z", next_response_due: null, breached: [] } })] },
    ]);
    const sla = { first_response_due: "2026-12-04T10:05:00Z", next_response_due: null, breached: ["frt"] };
    s = reduce(s, [
      {
        t: "event",
        ev: {
          id: "b2",
          type: "omnihub.conversation.updated",
          subject: "c1",
          seq: 2,
          data: { changes: { sla }, state: { status: "open", assignee: null, priority: "normal", labels: [] }, reason: "sla_breach:frt" },
        },
      },
    ]);
    expect(s.convs.get("c1")!.sla).toEqual(sla);
  });

  it("describes a change in one line, a breach as a breach", () => {
    expect(describeUpdate({ changes: { assignee: "ann", labels: [] }, reason: "claimed" })).toBe("assignee → ann; labels → none (claimed)");
    expect(describeUpdate({ changes: { sla: { breached: ["frt"] } }, reason: "sla_breach:frt" })).toBe("SLA breached: first response overdue");
    expect(describeUpdate({ changes: { sla: { breached: ["nrt"] } }, reason: "sla_breach:nrt" })).toBe("SLA breached: next response overdue");
    expect(describeUpdate({ changes: {} })).toBe("updated");
  });
});
