/* walbuf.h - a SQLite VFS over the default one that writes a transaction's
 * WAL frames in one write instead of two per frame (its 24-byte header,
 * then its page). On this machine a system call costs about a microsecond
 * and the embedded log and the store append about three frames per
 * message (docs/performance.md, "Fewer system calls and wake-ups per
 * message"). Nothing else changes: the bytes written, their order, when
 * they are synced.
 *
 * The log's and the store's writer connections open their files with it;
 * both use synchronous=FULL, but it is also right without a sync per
 * commit (walbuf.c says when the buffer is written out). */
#ifndef OH_WALBUF_H
#define OH_WALBUF_H

/* The VFS's name for sqlite3_open_v2(), registered on the first call
 * (thread-safe); NULL when it could not be (then open with the default). */
const char *oh_walbuf_vfs(void);

#endif
