// media.ts - attachments' previews, pure apart from URL.createObjectURL:
// which preview an attachment gets, where its bytes come from (the daemon's
// media proxy GET /v1/media/<connector>/<ref>, which needs the bearer token,
// so the bytes are fetched by api.ts and shown through a blob: URL) and the
// bounded, reference-counted cache of those blob: URLs.

export type Preview = "image" | "audio" | "video" | "file";

export interface Attachment {
  kind?: string;
  mime_type?: string;
  filename?: string;
  size?: number;
  url?: string;
  media_ref?: string;
}

/* The preview an attachment gets: its kind first, its MIME type when the kind
 * says nothing a browser can play; everything else is a download link. */
export function previewKind(a: Attachment): Preview {
  const kind = (a.kind ?? "").toLowerCase();
  const mime = (a.mime_type ?? "").toLowerCase();
  if (kind === "image" || kind === "sticker") return "image";
  if (kind === "audio" || kind === "voice") return "audio";
  if (kind === "video") return "video";
  if (kind === "document" || kind === "file") return "file";
  if (mime.startsWith("image/")) return "image";
  if (mime.startsWith("audio/")) return "audio";
  if (mime.startsWith("video/")) return "video";
  return "file";
}

/* Where the bytes are: {proxy} is a path of the daemon's media proxy (fetched
 * with the token), {external} a platform's public link (opened as a link,
 * never fetched with the token), null when the event only describes a file. */
export function mediaSource(a: Attachment, channel: string | undefined): { proxy: string } | { external: string } | null {
  if (typeof a.url === "string" && a.url.startsWith("/v1/media/")) return { proxy: a.url };
  if (typeof a.media_ref === "string" && a.media_ref && channel && /^[A-Za-z0-9_-]{1,63}$/.test(channel)) {
    const ref = /^[A-Za-z0-9._~=-]+$/.test(a.media_ref) ? a.media_ref : encodeURIComponent(a.media_ref);
    return { proxy: `/v1/media/${channel}/${ref}` };
  }
  if (typeof a.url === "string" && /^https?:\/\//.test(a.url)) return { external: a.url };
  return null;
}

export function formatSize(n: number | undefined): string {
  if (typeof n !== "number" || !isFinite(n) || n < 0) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function fileName(a: Attachment): string {
  if (a.filename) return a.filename;
  const ext = (a.mime_type ?? "").split("/")[1]?.replace(/[^a-z0-9]/gi, "") || "bin";
  return `${a.kind || "attachment"}.${ext}`;
}

/* ---- the blob: URL cache ---- */

export type MediaState =
  | { state: "loading" }
  | { state: "ready"; url: string; type: string; size: number }
  | { state: "error"; message: string };

export interface Fetched {
  status: number;
  blob: Blob | null;
  message?: string;
}

interface Entry {
  refs: number;
  bytes: number;
  value: MediaState;
  waiters: Set<(s: MediaState) => void>;
}

export interface CacheLimits {
  entries: number; /* blob: URLs alive at once */
  bytes: number; /* their total size */
  item: number; /* one attachment's largest size (the daemon's own bound is 16 MiB) */
}

export const DEFAULT_LIMITS: CacheLimits = { entries: 64, bytes: 64 << 20, item: 16 << 20 };

/* One entry per proxy path, shared by every message showing it; an entry
 * lives while a shown message holds it (acquire on mount, release on
 * unmount) and its blob: URL is revoked when the last holder leaves the
 * view. Past the limits a new attachment gets an error, never a blob. */
export class BlobCache {
  private map = new Map<string, Entry>();
  private total = 0;

  constructor(
    private readonly fetcher: (path: string) => Promise<Fetched>,
    readonly limits: CacheLimits = DEFAULT_LIMITS,
    private readonly createURL: (b: Blob) => string = (b) => URL.createObjectURL(b),
    private readonly revokeURL: (u: string) => void = (u) => URL.revokeObjectURL(u),
  ) {}

  get size(): number {
    return this.map.size;
  }

  get bytes(): number {
    return this.total;
  }

  /* Holds PATH's entry; ON is called with its state now and when it changes. */
  acquire(path: string, on: (s: MediaState) => void): MediaState {
    let e = this.map.get(path);
    if (e) {
      e.refs++;
      e.waiters.add(on);
      return e.value;
    }
    if (this.map.size >= this.limits.entries) return { state: "error", message: "too many previews open" };
    e = { refs: 1, bytes: 0, value: { state: "loading" }, waiters: new Set([on]) };
    this.map.set(path, e);
    const entry = e;
    void this.fetcher(path).then(
      (r) => this.settle(path, entry, r),
      () => this.settle(path, entry, { status: 0, blob: null }),
    );
    return e.value;
  }

  release(path: string, on: (s: MediaState) => void): void {
    const e = this.map.get(path);
    if (!e || !e.waiters.has(on)) return;
    e.waiters.delete(on);
    if (--e.refs > 0) return;
    this.map.delete(path);
    this.total -= e.bytes;
    if (e.value.state === "ready") this.revokeURL(e.value.url);
  }

  /* every URL revoked (signing out) */
  clear(): void {
    for (const e of this.map.values()) if (e.value.state === "ready") this.revokeURL(e.value.url);
    this.map.clear();
    this.total = 0;
  }

  private settle(path: string, e: Entry, r: Fetched): void {
    if (this.map.get(path) !== e) return; /* released meanwhile: nothing to keep */
    let v: MediaState;
    if (r.status === 200 && r.blob) {
      if (r.blob.size > this.limits.item) v = { state: "error", message: "too large to preview" };
      else if (this.total + r.blob.size > this.limits.bytes) v = { state: "error", message: "preview memory full" };
      else {
        e.bytes = r.blob.size;
        this.total += e.bytes;
        v = { state: "ready", url: this.createURL(r.blob), type: r.blob.type, size: r.blob.size };
      }
    } else {
      v = { state: "error", message: r.message || (r.status === 0 ? "network error" : `HTTP ${r.status}`) };
    }
    e.value = v;
    for (const f of e.waiters) f(v);
  }
}
