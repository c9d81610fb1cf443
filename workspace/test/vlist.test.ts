import { describe, expect, it } from "vitest";
import { scrollToRow, windowFor } from "../src/vlist";

describe("windowFor", () => {
  it("renders a screenful and the overscan, not 10,000 rows", () => {
    const w = windowFor(0, 680, 68, 10000, 6);
    expect(w.start).toBe(0);
    expect(w.end).toBe(17);
    expect(w.total).toBe(680000);
  });
  it("follows the scroll position", () => {
    const w = windowFor(68 * 5000, 680, 68, 10000, 6);
    expect(w.start).toBe(4994);
    expect(w.end).toBe(5017);
    expect(w.padTop).toBe(4994 * 68);
  });
  it("clamps past the end and handles empty lists", () => {
    const w = windowFor(10 ** 9, 680, 68, 100, 2);
    expect(w.end).toBe(100);
    expect(w.start).toBeGreaterThan(80);
    expect(windowFor(0, 500, 68, 0)).toEqual({ start: 0, end: 0, padTop: 0, total: 0 });
  });
  it("a list shorter than the viewport shows whole", () => {
    expect(windowFor(0, 800, 68, 3)).toMatchObject({ start: 0, end: 3 });
  });
});

describe("scrollToRow", () => {
  it("scrolls only when the row is out of view", () => {
    expect(scrollToRow(5, 0, 680, 68)).toBe(0);
    expect(scrollToRow(10, 0, 680, 68)).toBe(68 * 11 - 680);
    expect(scrollToRow(2, 680, 680, 68)).toBe(136);
  });
});
