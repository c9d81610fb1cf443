import { describe, expect, it } from "vitest";
import { DEFAULT_FILTER, inboxList, viewCounts, channelsOf } from "../src/inbox";
import type { Conversation } from "../src/types";

function c(id: string, o: Partial<Conversation>): Conversation {
  return { conversation_id: id, channel: "api:shop", account: "a", contact: { id: id, name: "N " + id }, head: 1, updated_at: "2026-12-04T10:00:00Z", status: "open", assignee: null, team: null, priority: "normal", labels: [], contact_id: null, snoozed_until: null, last_message: null, ...o };
}

const all = [
  c("a", { assignee: "me", priority: "low", updated_at: "2026-12-04T10:00:05Z" }),
  c("b", { assignee: null, priority: "urgent", channel: "whatsapp", updated_at: "2026-12-04T09:00:00Z" }),
  c("d", { assignee: "bob", status: "resolved", labels: ["vip"], last_message: { seq: 1, direction: "inbound", kind: "text", text: "refund please", time: "2026-12-04T10:00:09Z" } }),
  c("e", { assignee: null, priority: "normal", channel: "api:crm", updated_at: "2026-12-04T10:00:01Z" }),
];
const ids = (l: Conversation[]) => l.map((x) => x.conversation_id);

describe("inbox filters", () => {
  it("mine, unassigned, all", () => {
    expect(ids(inboxList(all, { ...DEFAULT_FILTER, view: "mine" }, "me"))).toEqual(["a"]);
    expect(ids(inboxList(all, { ...DEFAULT_FILTER, view: "unassigned" }, "me"))).toEqual(["b", "e"]);
    expect(inboxList(all, DEFAULT_FILTER, "me")).toHaveLength(4);
  });
  it("status, channel family or exact channel, priority, label", () => {
    expect(ids(inboxList(all, { ...DEFAULT_FILTER, status: "resolved" }, "me"))).toEqual(["d"]);
    expect(ids(inboxList(all, { ...DEFAULT_FILTER, channel: "api", sort: "recent" }, "me"))).toEqual(["d", "a", "e"]);
    expect(ids(inboxList(all, { ...DEFAULT_FILTER, channel: "api:crm" }, "me"))).toEqual(["e"]);
    expect(ids(inboxList(all, { ...DEFAULT_FILTER, priority: "urgent" }, "me"))).toEqual(["b"]);
    expect(ids(inboxList(all, { ...DEFAULT_FILTER, label: "vip" }, "me"))).toEqual(["d"]);
  });
  it("a status and a view both apply; the default view hides no status", () => {
    expect(DEFAULT_FILTER.view).toBe("all");
    expect(ids(inboxList(all, { ...DEFAULT_FILTER, status: "open" }, "me"))).toEqual(["b", "e", "a"]);
    expect(ids(inboxList(all, { ...DEFAULT_FILTER, status: "resolved" }, "bob"))).toEqual(["d"]);
    expect(ids(inboxList(all, { ...DEFAULT_FILTER, view: "mine", status: "resolved" }, "bob"))).toEqual(["d"]);
    expect(inboxList(all, { ...DEFAULT_FILTER, view: "mine", status: "resolved" }, "me")).toEqual([]);
    expect(inboxList(all, { ...DEFAULT_FILTER, view: "unassigned", status: "resolved" }, "me")).toEqual([]);
  });
  it("search matches the preview, the name, or the server's hits", () => {
    expect(ids(inboxList(all, { ...DEFAULT_FILTER, q: "REFUND" }, "me"))).toEqual(["d"]);
    expect(ids(inboxList(all, { ...DEFAULT_FILTER, q: "n b" }, "me"))).toEqual(["b"]);
    expect(ids(inboxList(all, { ...DEFAULT_FILTER, q: "invoice" }, "me", new Set(["a"])))).toEqual(["a"]);
  });
});

describe("inbox order", () => {
  it("urgent first, then most recent", () => {
    expect(ids(inboxList(all, DEFAULT_FILTER, "me"))).toEqual(["b", "d", "e", "a"]);
  });
  it("most recent only", () => {
    expect(ids(inboxList(all, { ...DEFAULT_FILTER, sort: "recent" }, "me"))).toEqual(["d", "a", "e", "b"]);
  });
  it("counts open work per view and lists channel families", () => {
    expect(viewCounts(all, "me")).toEqual({ mine: 1, unassigned: 2, all: 3 });
    expect(channelsOf(all)).toEqual(["api", "whatsapp"]);
  });
});
