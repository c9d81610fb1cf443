import { describe, expect, it } from "vitest";
import { BlobCache, mediaSource, previewKind, formatSize, type Fetched, type MediaState } from "../src/media";

describe("previewKind", () => {
  it("decides by kind, then by MIME type", () => {
    expect(previewKind({ kind: "image", mime_type: "image/jpeg" })).toBe("image");
    expect(previewKind({ kind: "sticker", mime_type: "image/webp" })).toBe("image");
    expect(previewKind({ kind: "audio", mime_type: "audio/ogg" })).toBe("audio");
    expect(previewKind({ kind: "voice" })).toBe("audio");
    expect(previewKind({ kind: "video" })).toBe("video");
    expect(previewKind({ kind: "document", mime_type: "image/png" })).toBe("file");
    expect(previewKind({ kind: "other", mime_type: "video/mp4" })).toBe("video");
    expect(previewKind({ mime_type: "application/pdf" })).toBe("file");
    expect(previewKind({})).toBe("file");
  });
  it("finds the proxy path from media_ref or a proxy url, never fetches external links with the token", () => {
    expect(mediaSource({ kind: "image", media_ref: "1003383421387256" }, "whatsapp")).toEqual({ proxy: "/v1/media/whatsapp/1003383421387256" });
    expect(mediaSource({ media_ref: "a/b?c" }, "telegram")).toEqual({ proxy: "/v1/media/telegram/a%2Fb%3Fc" });
    expect(mediaSource({ url: "/v1/media/line/42" }, "line")).toEqual({ proxy: "/v1/media/line/42" });
    expect(mediaSource({ url: "https://cdn.example/x.jpg" }, "messenger")).toEqual({ external: "https://cdn.example/x.jpg" });
    expect(mediaSource({ media_ref: "1" }, "../x")).toBeNull();
    expect(mediaSource({ kind: "document", filename: "a.pdf" }, "api")).toBeNull();
  });
  it("formats sizes", () => {
    expect(formatSize(512)).toBe("512 B");
    expect(formatSize(2048)).toBe("2.0 KB");
    expect(formatSize(3 * 1024 * 1024)).toBe("3.0 MB");
    expect(formatSize(undefined)).toBe("");
  });
});

function harness(limits = { entries: 2, bytes: 100, item: 60 }) {
  const calls: string[] = [];
  const pending = new Map<string, (f: Fetched) => void>();
  const revoked: string[] = [];
  let n = 0;
  const cache = new BlobCache(
    (p) => {
      calls.push(p);
      return new Promise<Fetched>((res) => pending.set(p, res));
    },
    limits,
    () => `blob:${++n}`,
    (u) => revoked.push(u),
  );
  const flush = () => new Promise((r) => setTimeout(r, 0));
  return { cache, calls, pending, revoked, flush };
}

const blob = (n: number) => new Blob([new Uint8Array(n)], { type: "image/png" });

describe("BlobCache", () => {
  it("fetches once per path, shares it, and revokes when the last holder leaves", async () => {
    const h = harness();
    const seen: MediaState[] = [];
    const a = (s: MediaState) => seen.push(s);
    const b = (s: MediaState) => seen.push(s);
    expect(h.cache.acquire("/v1/media/x/1", a).state).toBe("loading");
    h.cache.acquire("/v1/media/x/1", b);
    expect(h.calls).toEqual(["/v1/media/x/1"]);
    h.pending.get("/v1/media/x/1")!({ status: 200, blob: blob(10) });
    await h.flush();
    expect(seen.map((s) => s.state)).toEqual(["ready", "ready"]);
    expect(h.cache.bytes).toBe(10);
    h.cache.release("/v1/media/x/1", a);
    expect(h.revoked).toEqual([]);
    h.cache.release("/v1/media/x/1", b);
    expect(h.revoked).toEqual(["blob:1"]);
    expect(h.cache.size).toBe(0);
    expect(h.cache.bytes).toBe(0);
  });
  it("is bounded in entries, bytes and one item's size", async () => {
    const h = harness();
    const f = () => {};
    h.cache.acquire("/p/1", f);
    h.cache.acquire("/p/2", f);
    expect(h.cache.acquire("/p/3", f)).toEqual({ state: "error", message: "too many previews open" });
    expect(h.calls).toEqual(["/p/1", "/p/2"]);
    h.pending.get("/p/1")!({ status: 200, blob: blob(55) });
    h.pending.get("/p/2")!({ status: 200, blob: blob(55) }); /* 110 > 100 bytes */
    await h.flush();
    expect(h.cache.bytes).toBe(55);
    expect(h.cache.acquire("/p/2", () => {})).toEqual({ state: "error", message: "preview memory full" });
    h.cache.release("/p/1", f);
    h.cache.release("/p/2", f);
    expect(h.cache.size).toBe(1); /* the second holder of /p/2 */
    h.cache.acquire("/p/4", f);
    h.pending.get("/p/4")!({ status: 200, blob: blob(61) });
    await h.flush();
    expect(h.cache.acquire("/p/4", () => {})).toEqual({ state: "error", message: "too large to preview" });
    expect(h.revoked).toEqual(["blob:1"]);
  });
  it("turns a failed fetch into an error state and keeps nothing released mid-flight", async () => {
    const h = harness();
    let got: MediaState | null = null;
    const f = (s: MediaState) => (got = s);
    h.cache.acquire("/p/404", f);
    h.pending.get("/p/404")!({ status: 404, blob: null });
    await h.flush();
    expect(got).toEqual({ state: "error", message: "HTTP 404" });
    const g = () => {};
    h.cache.acquire("/p/late", g);
    h.cache.release("/p/late", g);
    h.pending.get("/p/late")!({ status: 200, blob: blob(5) });
    await h.flush();
    expect(h.cache.size).toBe(1); /* only /p/404, still held */
    expect(h.cache.bytes).toBe(0);
    expect(h.revoked).toEqual([]);
  });
});
