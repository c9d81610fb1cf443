// attachment_view.tsx - one attachment of a message: an image inline (a click
// opens it full size), audio and video with their controls, anything else a
// download link with its name and size. The bytes come through the media
// proxy as a blob: URL (media.ts) held while the message is shown; a fetch
// that fails shows a placeholder, never breaks the view.
import { useEffect, useState } from "preact/hooks";
import type { Client } from "./api";
import { fileName, formatSize, mediaSource, previewKind, type Attachment, type MediaState } from "./media";

export function AttachmentView({ client, att, channel }: { client: Client; att: Attachment; channel?: string }) {
  const kind = previewKind(att);
  const src = mediaSource(att, channel);
  const proxy = src && "proxy" in src ? src.proxy : null;
  const [m, setM] = useState<MediaState>({ state: "loading" });
  const [broken, setBroken] = useState(false);
  useEffect(() => {
    if (!proxy) return;
    const on = (s: MediaState) => setM(s);
    setM(client.blobs.acquire(proxy, on));
    return () => client.blobs.release(proxy, on);
  }, [client, proxy]);
  const name = fileName(att);
  const size = formatSize(m.state === "ready" ? m.size : att.size);
  const label = `${name}${size ? ` (${size})` : ""}`;
  if (!src) {
    return (
      <div class="attachment none" data-testid="attachment" data-preview="none">
        📎 {label} {att.mime_type ? <small>{att.mime_type}</small> : null}
      </div>
    );
  }
  if ("external" in src) {
    return (
      <div class="attachment" data-testid="attachment" data-preview="link">
        <a href={src.external} target="_blank" rel="noopener noreferrer">
          📎 {label}
        </a>
      </div>
    );
  }
  if (m.state === "loading") {
    return (
      <div class="attachment loading" data-testid="attachment" data-preview="loading">
        loading {label}…
      </div>
    );
  }
  if (m.state === "error" || broken) {
    return (
      <div class="attachment failed" data-testid="attachment" data-preview="failed" role="note">
        ⚠ {label} unavailable{m.state === "error" ? `: ${m.message}` : ": cannot be shown"}
      </div>
    );
  }
  if (kind === "image") {
    return (
      <div class="attachment" data-testid="attachment" data-preview="image">
        <a href={m.url} target="_blank" rel="noopener" title={`${label}: open full size`}>
          <img src={m.url} alt={att.filename || `${att.kind || "image"} from the customer`} onError={() => setBroken(true)} />
        </a>
      </div>
    );
  }
  if (kind === "audio") {
    return (
      <div class="attachment" data-testid="attachment" data-preview="audio">
        <audio controls preload="metadata" src={m.url} aria-label={label} onError={() => setBroken(true)} />
      </div>
    );
  }
  if (kind === "video") {
    return (
      <div class="attachment" data-testid="attachment" data-preview="video">
        <video controls preload="metadata" src={m.url} aria-label={label} onError={() => setBroken(true)} />
      </div>
    );
  }
  return (
    <div class="attachment" data-testid="attachment" data-preview="file">
      <a href={m.url} download={name}>
        ⬇ {label}
      </a>
    </div>
  );
}
