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
    expect(c.state.ended).toBe("Session expired: sign in again.");
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
    expect(c.state.ended).toBe("Session expired: sign in again.");
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
    expect(c.state.ended).toBe("");
    c.stop();
  });
});

/* The daemon's REST API refusing the token for any reason (its secret
 * rotated, the token revoked or expired between two WebSocket checks) ends
 * the session like the WebSocket's expiry; a 403 refuses one thing only. */
describe("the REST API's 401 and 403", () => {
  const now = Date.parse("2026-12-07T02:00:00Z");
  const exp = now / 1000 + 3600; /* the token itself is far from its exp */
  const refused = (status: number, message: string) =>
    new Response(JSON.stringify({ error: { code: status === 401 ? "unauthorized" : "forbidden", message } }), { status });

  let answer: (url: string) => Response;
  let calls: string[];

  async function started() {
    vi.useFakeTimers({ now });
    FakeSocket.made = [];
    calls = [];
    answer = () => new Response(JSON.stringify({ conversations: [] }), { status: 200 });
    vi.stubGlobal("WebSocket", FakeSocket);
    vi.stubGlobal("fetch", async (url: string) => {
      calls.push(url);
      return answer(url);
    });
    const c = new Client("http://x", token({ sub: "me", exp }), { sub: "me", role: "agent", exp });
    c.start();
    FakeSocket.made[0].open();
    FakeSocket.made[0].frame({ type: "subscribed", conversation: "*", cursor: "E~r1" });
    await vi.advanceTimersByTimeAsync(100);
    expect(c.state.online).toBe(true);
    return c;
  }

  afterEach(() => vi.useRealTimers());

  it("a 401 from any call ends the session at once: the socket closed, no reconnect, and why", async () => {
    const c = await started();
    answer = () => refused(401, "bad token signature");
    const r = await c.kpis(new Date(now - 86400e3), new Date(now), "none");
    expect(r.status).toBe(401);
    await vi.advanceTimersByTimeAsync(100);
    expect(FakeSocket.made[0].readyState).toBe(3);
    expect(c.state.online).toBe(false);
    expect(c.state.ended).toBe("Your session is no longer valid (bad token signature); sign in again.");
    const n = calls.length;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.made).toHaveLength(1);
    expect(calls).toHaveLength(n); /* and the REST calls made after it stay home */
    expect((await c.refresh("c1"), calls)).toHaveLength(n);
    c.stop();
  });

  it("a 401 saying the token expired reads as an expired session", async () => {
    const c = await started();
    answer = () => refused(401, "token expired");
    await c.refresh("c1");
    await vi.advanceTimersByTimeAsync(100);
    expect(c.state.ended).toBe("Session expired: sign in again.");
    c.stop();
  });

  it("a media proxy's 401 ends it too", async () => {
    const c = await started();
    answer = () => refused(401, "bad token signature");
    expect((await c.media("/v1/media/whatsapp/m1")).status).toBe(401);
    await vi.advanceTimersByTimeAsync(100);
    expect(c.state.ended).toMatch(/no longer valid/);
    c.stop();
  });

  it("an upgrade refused while the token is not expired asks the REST API, whose 401 ends the reconnects", async () => {
    const c = await started();
    FakeSocket.made[0].end(1001, "server shutting down"); /* the daemon restarts ... */
    await vi.advanceTimersByTimeAsync(400);
    expect(FakeSocket.made).toHaveLength(2);
    answer = () => refused(401, "bad token signature"); /* ... with another auth.jwt_secret */
    FakeSocket.made[1].end(1006, ""); /* the upgrade's 401, as a browser shows it */
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.made.length).toBeLessThanOrEqual(3); /* at most the one already planned */
    expect(c.state.ended).toMatch(/no longer valid/);
    expect(c.state.online).toBe(false);
    c.stop();
  });

  it("an upgrade failing for the network goes on reconnecting", async () => {
    const c = await started();
    FakeSocket.made[0].end(1006, "");
    for (let i = 1; i <= 4; i++) {
      await vi.advanceTimersByTimeAsync(5000);
      answer = () => {
        throw new TypeError("network down");
      };
      FakeSocket.made[i].end(1006, "");
    }
    await vi.advanceTimersByTimeAsync(5000);
    expect(FakeSocket.made).toHaveLength(6);
    expect(c.state.ended).toBe("");
    c.stop();
  });

  it("a 403 does not end the session: the history says so where it would be, once, and other calls go on", async () => {
    const c = await started();
    answer = (url) =>
      url.includes("/events") ? refused(403, "not yours to read") : new Response(JSON.stringify({ conversation_id: "c1" }), { status: 200 });
    c.open("c1");
    await vi.advanceTimersByTimeAsync(10_000); /* the 2 s ticker would fetch a thread not loaded again */
    expect(calls.filter((u) => u.includes("/events"))).toHaveLength(1);
    expect(c.state.threads.get("c1")?.error).toBe("not yours to read");
    answer = () => refused(403, "agents of team billing only");
    await c.claim("c1");
    await vi.advanceTimersByTimeAsync(100);
    expect(c.state.notice).toBe("agents of team billing only");
    expect(c.state.ended).toBe("");
    expect(c.state.online).toBe(true);
    expect(FakeSocket.made[0].readyState).toBe(1);
    c.stop();
  });
});
