import { afterEach, describe, expect, it, vi } from "vitest";
import { Client, decodeToken, sessionEnded } from "../src/api";

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

  it("keeps a reply refused for an expired token, unmarked, for the next sign-in", async () => {
    const kept = new Map<string, string>(); /* the tab's localStorage, across the two clients */
    vi.stubGlobal("localStorage", { getItem: (k: string) => kept.get(k) ?? null, setItem: (k: string, v: string) => kept.set(k, v) });
    vi.stubGlobal("fetch", async () =>
      new Response(JSON.stringify({ error: { code: "unauthorized", message: "token expired" } }), { status: 401 }));
    const c = new Client("http://x", token({ sub: "me" }), { sub: "me", role: "agent" });
    c.send("c1", "on my way", false);
    await tick();
    expect(c.state.outbox).toEqual([expect.objectContaining({ text: "on my way" })]);
    expect(c.state.outbox[0].error).toBeUndefined();
    let sent: any = null;
    vi.stubGlobal("fetch", async (_: string, init: any) => {
      sent = JSON.parse(init.body);
      return new Response("{}", { status: 202 });
    });
    const again = new Client("http://x", token({ sub: "me" }), { sub: "me", role: "agent" }); /* signed in again */
    await again.flushOutbox();
    expect(sent).toMatchObject({ text: "on my way", client_msg_id: c.state.outbox[0].client_msg_id });
    expect(again.state.outbox).toHaveLength(0);
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

/* A stand-in for the browser's WebSocket: each one made is kept, and the test
 * opens it, hands it frames and closes it as the server would. */
class FakeSocket {
  static made: FakeSocket[] = [];
  readyState = 0;
  sent: any[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.made.push(this);
  }
  send(s: string): void {
    this.sent.push(JSON.parse(s));
  }
  close(): void {
    this.end(1005, "");
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.();
  }
  frame(o: object): void {
    this.onmessage?.({ data: JSON.stringify(o) });
  }
  end(code: number, reason: string): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

describe("sessionEnded", () => {
  const exp = 1_800_000_000;
  const before = exp * 1000 - 1;
  it("ends on the server's 1008 for the token, not on its 1008 for a slow consumer", () => {
    expect(sessionEnded({ code: 1008, reason: "token expired", opened: true }, exp, before)).toBe(true);
    expect(sessionEnded({ code: 1008, reason: "slow consumer: resume later", opened: true }, exp, before)).toBe(false);
  });
  it("ends when an upgrade fails from exp on, and only then", () => {
    expect(sessionEnded({ code: 1006, reason: "", opened: false }, exp, exp * 1000)).toBe(true);
    expect(sessionEnded({ code: 1006, reason: "", opened: false }, exp, before)).toBe(false);
    expect(sessionEnded({ code: 1006, reason: "", opened: false }, undefined, exp * 1000)).toBe(false);
    expect(sessionEnded({ code: 1006, reason: "", opened: true }, exp, exp * 1000)).toBe(false); /* tried again first */
  });
  it("goes on after the server going away and the network", () => {
    for (const code of [1000, 1001, 1005, 1006, 1011])
      expect(sessionEnded({ code, reason: "", opened: true }, exp, before)).toBe(false);
  });
});

describe("reconnecting", () => {
  const now = Date.parse("2026-12-07T02:00:00Z");
  const exp = now / 1000 + 60;

  /* a started client whose first socket is open and subscribed */
  async function started() {
    vi.useFakeTimers({ now });
    FakeSocket.made = [];
    vi.stubGlobal("WebSocket", FakeSocket);
    vi.stubGlobal("fetch", async () => new Response(JSON.stringify({ conversations: [] }), { status: 200 }));
    const c = new Client("http://x", token({ sub: "me", exp }), { sub: "me", role: "agent", exp });
    c.start();
    const ws = FakeSocket.made[0];
    ws.open();
    ws.frame({ type: "subscribed", conversation: "*", cursor: "E~r1" });
    await vi.advanceTimersByTimeAsync(100);
    expect(c.state.online).toBe(true);
    return { c, ws };
  }

  /* a minute on: no socket made past the N-th, and the client says the session expired */
  async function stopped(c: Client, n: number) {
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.made).toHaveLength(n);
    expect(c.state.online).toBe(false);
    expect(c.state.expired).toBe(true);
  }

  afterEach(() => vi.useRealTimers());

  it("stops once the server says the token expired (unauthorized, then 1008), and says why for good", async () => {
    const { c, ws } = await started();
    vi.setSystemTime(exp * 1000 + 1000);
    ws.frame({ type: "error", code: "unauthorized", message: "token expired" });
    ws.end(1008, "token expired");
    await stopped(c, 1); /* no upgrade with the expired token */
    c.dispatch({ t: "notice", text: "Contacts merged" }); /* another notice does not hide it */
    await vi.advanceTimersByTimeAsync(100);
    expect(c.state.expired).toBe(true);
    c.stop();
  });

  it("stops on a 1008 close for the token even when the error frame was lost", async () => {
    const { c, ws } = await started();
    ws.end(1008, "token expired");
    await stopped(c, 1);
    c.stop();
  });

  it("stops when an upgrade fails after the token's exp (the server's 401 shows as 1006)", async () => {
    const { c, ws } = await started();
    ws.end(1006, ""); /* the network, before exp: retried */
    await vi.advanceTimersByTimeAsync(400);
    expect(FakeSocket.made).toHaveLength(2);
    vi.setSystemTime(exp * 1000);
    FakeSocket.made[1].end(1006, ""); /* never opened, token expired: the 401 */
    await stopped(c, 2);
    c.stop();
  });

  it("keeps reconnecting after 1001 going away, 1006 the network and 1008 slow consumer, resuming from the cursor", async () => {
    const { c, ws } = await started();
    ws.end(1001, "server shutting down");
    await vi.advanceTimersByTimeAsync(400);
    expect(FakeSocket.made).toHaveLength(2);
    FakeSocket.made[1].end(1006, ""); /* the daemon not back yet: the upgrade fails, token still good */
    await vi.advanceTimersByTimeAsync(700);
    expect(FakeSocket.made).toHaveLength(3);
    FakeSocket.made[2].open();
    expect(FakeSocket.made[2].sent[0]).toEqual({ type: "subscribe", conversation: "*", cursor: "E~r1" });
    FakeSocket.made[2].end(1008, "slow consumer: resume later");
    await vi.advanceTimersByTimeAsync(400);
    expect(FakeSocket.made).toHaveLength(4);
    expect(c.state.expired).toBe(false);
    c.stop();
  });
});
