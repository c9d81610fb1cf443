// vlist.ts - windowing for the inbox: which rows of a fixed-height list
// are in (or near) the viewport, so 10,000 conversations cost a screenful.
export interface Window {
  start: number; /* first row rendered */
  end: number; /* one past the last */
  padTop: number; /* px above the first rendered row */
  total: number; /* px of the whole list */
}

export function windowFor(
  scrollTop: number,
  viewport: number,
  rowHeight: number,
  count: number,
  overscan = 6,
): Window {
  const total = count * rowHeight;
  if (count <= 0 || rowHeight <= 0) return { start: 0, end: 0, padTop: 0, total: 0 };
  const top = Math.min(Math.max(0, scrollTop), Math.max(0, total - viewport));
  const first = Math.floor(top / rowHeight);
  const visible = Math.ceil(Math.max(viewport, 0) / rowHeight) + 1;
  const start = Math.max(0, first - overscan);
  const end = Math.min(count, first + visible + overscan);
  return { start, end, padTop: start * rowHeight, total };
}

/* the scrollTop that brings row i into view (unchanged when it is) */
export function scrollToRow(i: number, scrollTop: number, viewport: number, rowHeight: number): number {
  const top = i * rowHeight;
  if (top < scrollTop) return top;
  if (top + rowHeight > scrollTop + viewport) return top + rowHeight - viewport;
  return scrollTop;
}
