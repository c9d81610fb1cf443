import { describe, expect, it } from "vitest";
import { formatDuration, slaCountdown } from "../src/sla";
import type { Conversation } from "../src/types";

const base = { conversation_id: "c", channel: "x", account: "a", contact: { id: "u", name: "" }, head: 1, updated_at: null, status: "open", assignee: null, team: null, priority: "normal", labels: [], contact_id: null, snoozed_until: null, last_message: null } as Conversation;
const now = Date.parse("2026-12-04T10:00:00Z");

describe("formatDuration", () => {
  it("reads m:ss, then hours, then days", () => {
    expect(formatDuration(0)).toBe("0:00");
    expect(formatDuration(59.9)).toBe("0:59");
    expect(formatDuration(299)).toBe("4:59");
    expect(formatDuration(3600 + 120)).toBe("1h 02m");
    expect(formatDuration(86400 * 2 + 3600 * 5)).toBe("2d 05h");
    expect(formatDuration(-5)).toBe("0:00");
  });
});

describe("slaCountdown", () => {
  it("is absent without an SLA or when resolved", () => {
    expect(slaCountdown(base, now)).toBeNull();
    expect(slaCountdown({ ...base, status: "resolved", sla: { first_response_due: "2026-12-04T10:05:00Z" } }, now)).toBeNull();
  });
  it("counts down to the nearest deadline", () => {
    const c = { ...base, sla: { first_response_due: "2026-12-04T10:05:00Z", next_response_due: "2026-12-04T10:02:00Z", breached: [] } };
    expect(slaCountdown(c, now)).toEqual({ text: "2:00", level: "ok", kind: "nrt" });
  });
  it("warns in the last minute and reads overdue after", () => {
    const c = { ...base, sla: { first_response_due: "2026-12-04T10:00:30Z" } };
    expect(slaCountdown(c, now)!.level).toBe("warn");
    expect(slaCountdown(c, now + 90_000)).toEqual({ text: "overdue 1:00", level: "breached", kind: "frt" });
  });
  it("shows a breach the server recorded even with no deadline left", () => {
    expect(slaCountdown({ ...base, sla: { breached: ["frt"] } }, now)!.level).toBe("breached");
  });
  it("ignores unparsable times", () => {
    expect(slaCountdown({ ...base, sla: { first_response_due: "soon" } }, now)).toBeNull();
  });
});
