import { afterEach, describe, expect, it, vi } from "vitest";
import { Client, decodeToken } from "../src/api";

function token(claims: object): string {
  const b = (o: object) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  return `${b({ alg: "HS256", typ: "JWT" })}.${b(claims)}.sig`;
}

const tick = () => new Promise((r) => setTimeout(r, 80));

afterEach(() => vi.unstubAllGlobals());

describe("decodeToken", () => {
  it("reads sub and role, refuses what is not a JWT", () => {
    expect(decodeToken(token({ sub: "alice", role: "agent" }))).toMatchObject({ sub: "alice", role: "agent" });
    expect(decodeToken("nope")).toBeNull();
    expect(decodeToken("a.!!!.c")).toBeNull();
    expect(decodeToken(token({ role: "agent" }))).toBeNull();
  });
});

describe("the outbox", () => {
  it("keeps a reply while offline and sends it once, with one client_msg_id", async () => {
    const calls: any[] = [];
    let up = false;
    vi.stubGlobal("fetch", async (url: string, init: any) => {
      calls.push({ url, body: JSON.parse(init.body) });
      if (!up) throw new TypeError("network down");
      return new Response(JSON.stringify({ event_id: "e1", conversation_id: "c1" }), { status: 202 });
    });
    const c = new Client("http://x", token({ sub: "me" }), { sub: "me", role: "agent" });
    c.send("c1", "hello", false);
    await tick();
    expect(c.state.outbox).toHaveLength(1);
    expect(calls).toHaveLength(1);
    up = true;
    await c.flushOutbox();
    await c.flushOutbox();
    await tick();
    expect(c.state.outbox).toHaveLength(0);
    expect(calls).toHaveLength(2);
    expect(calls[0].body.client_msg_id).toBe(calls[1].body.client_msg_id);
    expect(calls[1].url).toBe("http://x/v1/conversations/c1/messages");
    expect(calls[1].body).toMatchObject({ text: "hello" });
  });

  it("marks a refused reply instead of retrying it, and sends notes as internal", async () => {
    const bodies: any[] = [];
    vi.stubGlobal("fetch", async (_: string, init: any) => {
      bodies.push(JSON.parse(init.body));
      return new Response(JSON.stringify({ error: { code: "forbidden", message: "not yours" } }), { status: 403 });
    });
    const c = new Client("http://x", token({ sub: "me" }), { sub: "me", role: "agent" });
    c.send("c1", "psst", true);
    await tick();
    expect(bodies).toEqual([expect.objectContaining({ text: "psst", internal: true })]);
    expect(c.state.outbox).toEqual([expect.objectContaining({ error: "not yours" })]);
    await c.flushOutbox();
    expect(bodies).toHaveLength(1);
  });
});

describe("suggestions", () => {
  it("a reply made from a suggestion names it; a note never does", async () => {
    const bodies: any[] = [];
    vi.stubGlobal("fetch", async (_: string, init: any) => {
      bodies.push(JSON.parse(init.body));
      return new Response("{}", { status: 202 });
    });
    const c = new Client("http://x", token({ sub: "me" }), { sub: "me", role: "agent" });
    c.send("c1", "Try a restart", false, { id: "s1", source: "kb" });
    await tick();
    c.send("c1", "noted", true, { id: "s2", source: "kb" });
    await tick();
    expect(bodies[0].suggestion).toEqual({ id: "s1", source: "kb" });
    expect(bodies[1].suggestion).toBeUndefined();
  });
});

describe("frames", () => {
  it("applies live events, the cursor and typing from the WebSocket", async () => {
    vi.stubGlobal("fetch", async () => new Response("{}", { status: 404 }));
    const c = new Client("http://x", token({ sub: "me" }), { sub: "me", role: "agent" });
    c.onFrame({ type: "subscribed", conversation: "*", cursor: "E~r5", epoch: "E", head: 0, recovered: true });
    c.onFrame({ type: "event", event: { id: "1", type: "omnihub.message.inbound", subject: "c9", seq: 1, data: { text: "hi", direction: "inbound" } } });
    c.onFrame({ type: "typing", conversation: "c9", from: { role: "customer", id: "u" }, state: "start" });
    c.onFrame({ type: "typing", conversation: "c9", from: { role: "agent", id: "me" }, state: "start" });
    await tick();
    expect(c.state.online).toBe(true);
    expect(c.state.cursor).toBe("E~r5");
    expect(c.state.convs.get("c9")?.last_message?.text).toBe("hi");
    expect(c.state.typing.c9.from).toBe("u");
  });
});

describe("SLA deadlines", () => {
  it("fetches the conversation again after an inbound message, and once more while its clock is not there yet", async () => {
    vi.useFakeTimers();
    try {
      const gets: string[] = [];
      const due = "2026-12-04T10:05:00Z";
      const obj = (sla: object | null) => ({
        conversation_id: "c1", channel: "api:shop", account: "acme", contact: { id: "u", name: "Ann" }, head: 2,
        updated_at: "2026-12-04T10:00:00Z", status: "open", assignee: null, team: null, priority: "normal", labels: [],
        contact_id: null, snoozed_until: null, unread: 1, sla,
        last_message: { seq: 2, direction: "inbound", kind: "text", text: "hi", time: "2026-12-04T10:00:00Z" },
      });
      vi.stubGlobal("fetch", async (url: string) => {
        gets.push(url);
        const sla = gets.length >= 2 ? { first_response_due: due, next_response_due: null, breached: [] } : null;
        return new Response(JSON.stringify(obj(sla)), { status: 200 });
      });
      const c = new Client("http://x", token({ sub: "me" }), { sub: "me", role: "agent" });
      c.dispatch({ t: "conversations", list: [{ ...obj(null), head: 1 } as any] });
      await vi.advanceTimersByTimeAsync(100);
      c.onFrame({ type: "event", event: { id: "e2", type: "omnihub.message.inbound", subject: "c1", seq: 2, data: { direction: "inbound", text: "hi" } } });
      await vi.advanceTimersByTimeAsync(1000);
      expect(gets).toHaveLength(0); /* not at once: the SLA service writes the clock a moment later */
      await vi.advanceTimersByTimeAsync(400);
      expect(gets).toEqual(["http://x/v1/conversations/c1"]);
      await vi.advanceTimersByTimeAsync(1500);
      expect(gets).toHaveLength(2); /* no deadline yet: asked once more */
      await vi.advanceTimersByTimeAsync(100);
      expect(c.state.convs.get("c1")!.sla?.first_response_due).toBe(due);
      await vi.advanceTimersByTimeAsync(10000);
      expect(gets).toHaveLength(2); /* there it is: no more */
    } finally {
      vi.useRealTimers();
    }
  });
});
