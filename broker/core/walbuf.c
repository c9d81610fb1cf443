/* walbuf.c - the write-combining VFS of walbuf.h.
 *
 * Each file opened through it wraps one of the default VFS. A WAL file's
 * writes that follow each other (the frames of a transaction: SQLite writes
 * each frame's header and its page with two calls, frame after frame) are
 * gathered in a buffer and written with one call of the default VFS. The
 * buffer is written out, before anything else is done with the file or
 * anything can see it:
 *   - right after the page of a commit frame (its header says the database
 *     size after the commit), so a commit's frames are written by the time
 *     SQLite goes on to sync them or to publish them in the wal-index;
 *   - before a write elsewhere in the file, a read, a sync, a truncation, a
 *     size asked, a file control, a lock change, a close;
 *   - before any shared-memory call or lock change of its database file
 *     (found with sqlite3_database_file_object() when the WAL is opened):
 *     the connection takes and releases the WAL's locks there, so a
 *     transaction rolled back after spilling frames leaves nothing behind
 *     when it gives up the write lock, for a later write to land over
 *     another connection's frames;
 *   - when it would pass BUF_MAX bytes.
 * The file therefore holds the same bytes in the same order as without the
 * buffer at every point another connection or process could look, and a
 * write error comes back from the call that wrote, which SQLite sees as the
 * commit (or the spill) failing. Other files (the database, its rollback
 * journal) go straight through. */
#include "core/walbuf.h"
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define VFS_NAME "omnihub-walbuf"
/* The unix VFS takes at most 128 KiB - 1 in one write (os_unix.c,
 * seekAndWrite() keeps the low 17 bits of the size): 23 frames of 4 KiB */
#define BUF_MAX   (96u << 10)
#define FRAME_HDR 24 /* a WAL frame's header (the file's own header is 32) */

struct wb_file {
    sqlite3_file base;
    sqlite3_file *real; /* the default VFS's file, right after this struct */
    bool wal;
    /* a database file's open WAL, and a WAL's database file (both opened
     * through this VFS; the WAL is closed first) */
    struct wb_file *wal_file, *db_file;
    bool commit_next; /* the last write was a commit frame's header */
    char *buf;
    size_t len, cap;
    sqlite3_int64 at; /* the file offset of buf[0] */
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs wb_vfs;
static const char *registered;

static int flush(struct wb_file *f)
{
    if (!f->len) return SQLITE_OK;
    size_t n = f->len;
    f->len = 0;
    return f->real->pMethods->xWrite(f->real, f->buf, (int)n, f->at);
}

/* Before F's connection does anything another connection could notice:
 * F's bytes, or its WAL's. A failed write here is of frames never
 * committed (a commit's are written with its last frame). */
static void settle(struct wb_file *f)
{
    flush(f->wal_file ? f->wal_file : f);
}

static int wb_close(sqlite3_file *file)
{
    struct wb_file *f = (struct wb_file *)file;
    int rc = flush(f);
    if (f->db_file) f->db_file->wal_file = NULL;
    if (f->wal_file) f->wal_file->db_file = NULL;
    int rc2 = f->real->pMethods->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read(sqlite3_file *file, void *out, int amt, sqlite3_int64 off)
{
    struct wb_file *f = (struct wb_file *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, out, amt, off);
}

static int wb_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
    struct wb_file *f = (struct wb_file *)file;
    if (!f->wal || amt <= 0) return f->real->pMethods->xWrite(f->real, data, amt, off);
    int rc;
    if (f->len && (off != f->at + (sqlite3_int64)f->len || f->len + (size_t)amt > BUF_MAX)) {
        f->commit_next = false;
        if ((rc = flush(f)) != SQLITE_OK) return rc;
    }
    if ((size_t)amt > BUF_MAX) return f->real->pMethods->xWrite(f->real, data, amt, off);
    if (f->cap < f->len + (size_t)amt) {
        size_t cap = f->cap ? f->cap : 32 * 1024;
        while (cap < f->len + (size_t)amt)
            cap *= 2;
        char *p = realloc(f->buf, cap);
        if (!p) { /* write what there is, then this, directly */
            if ((rc = flush(f)) != SQLITE_OK) return rc;
            return f->real->pMethods->xWrite(f->real, data, amt, off);
        }
        f->buf = p;
        f->cap = cap;
    }
    if (!f->len) f->at = off;
    memcpy(f->buf + f->len, data, (size_t)amt);
    f->len += (size_t)amt;
    if (f->commit_next) { /* the commit frame's page: the transaction's last write */
        f->commit_next = false;
        return flush(f);
    }
    /* a frame header; bytes 4-7 (the database size after a commit) are 0
     * but in a commit frame */
    const uint8_t *h = data;
    f->commit_next = amt == FRAME_HDR && (h[4] | h[5] | h[6] | h[7]) != 0;
    return SQLITE_OK;
}

static int wb_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    struct wb_file *f = (struct wb_file *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int wb_sync(sqlite3_file *file, int flags)
{
    struct wb_file *f = (struct wb_file *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int wb_size(sqlite3_file *file, sqlite3_int64 *size)
{
    struct wb_file *f = (struct wb_file *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int wb_lock(sqlite3_file *file, int level)
{
    struct wb_file *f = (struct wb_file *)file;
    settle(f);
    return f->real->pMethods->xLock(f->real, level);
}

static int wb_unlock(sqlite3_file *file, int level)
{
    struct wb_file *f = (struct wb_file *)file;
    settle(f);
    return f->real->pMethods->xUnlock(f->real, level);
}

static int wb_reserved(sqlite3_file *file, int *out)
{
    struct wb_file *f = (struct wb_file *)file;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int wb_control(sqlite3_file *file, int op, void *arg)
{
    struct wb_file *f = (struct wb_file *)file;
    int rc = flush(f);
    if (rc != SQLITE_OK) return rc;
    rc = f->real->pMethods->xFileControl(f->real, op, arg);
    /* the VFS's name as PRAGMA vfs_list and friends report it */
    if (op == SQLITE_FCNTL_VFSNAME && rc == SQLITE_OK) {
        char *inner = *(char **)arg;
        *(char **)arg = sqlite3_mprintf("%s/%z", VFS_NAME, inner);
    }
    return rc;
}

static int wb_sector(sqlite3_file *file)
{
    struct wb_file *f = (struct wb_file *)file;
    return f->real->pMethods->xSectorSize(f->real);
}

static int wb_device(sqlite3_file *file)
{
    struct wb_file *f = (struct wb_file *)file;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int wb_shm_map(sqlite3_file *file, int page, int size, int extend, void volatile **out)
{
    struct wb_file *f = (struct wb_file *)file;
    settle(f);
    return f->real->pMethods->xShmMap(f->real, page, size, extend, out);
}

static int wb_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    struct wb_file *f = (struct wb_file *)file;
    settle(f);
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void wb_shm_barrier(sqlite3_file *file)
{
    struct wb_file *f = (struct wb_file *)file;
    settle(f);
    f->real->pMethods->xShmBarrier(f->real);
}

static int wb_shm_unmap(sqlite3_file *file, int del)
{
    struct wb_file *f = (struct wb_file *)file;
    settle(f);
    return f->real->pMethods->xShmUnmap(f->real, del);
}

static int wb_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **out)
{
    struct wb_file *f = (struct wb_file *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch(f->real, off, amt, out);
}

static int wb_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
    struct wb_file *f = (struct wb_file *)file;
    return f->real->pMethods->xUnfetch(f->real, off, p);
}

static const sqlite3_io_methods wb_io = {
    .iVersion = 3,
    .xClose = wb_close,
    .xRead = wb_read,
    .xWrite = wb_write,
    .xTruncate = wb_truncate,
    .xSync = wb_sync,
    .xFileSize = wb_size,
    .xLock = wb_lock,
    .xUnlock = wb_unlock,
    .xCheckReservedLock = wb_reserved,
    .xFileControl = wb_control,
    .xSectorSize = wb_sector,
    .xDeviceCharacteristics = wb_device,
    .xShmMap = wb_shm_map,
    .xShmLock = wb_shm_lock,
    .xShmBarrier = wb_shm_barrier,
    .xShmUnmap = wb_shm_unmap,
    .xFetch = wb_fetch,
    .xUnfetch = wb_unfetch,
};

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
    struct wb_file *f = (struct wb_file *)file;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out);
    if (rc != SQLITE_OK) {
        /* SQLite calls xClose only when pMethods is set: close the inner
         * file if its VFS left it open */
        if (f->real->pMethods) f->real->pMethods->xClose(f->real);
        return rc;
    }
    /* the inner file's methods must have everything a WAL database uses */
    if (!f->real->pMethods || f->real->pMethods->iVersion < 3) {
        f->real->pMethods->xClose(f->real);
        return SQLITE_CANTOPEN;
    }
    f->base.pMethods = &wb_io;
    /* a WAL is buffered only once tied to its database file: its lock
     * calls are what write out a rolled-back transaction's frames */
    sqlite3_file *db = flags & SQLITE_OPEN_WAL ? sqlite3_database_file_object(name) : NULL;
    if (db && db->pMethods == &wb_io) {
        f->wal = true;
        f->db_file = (struct wb_file *)db;
        f->db_file->wal_file = f;
    }
    return SQLITE_OK;
}

static int wb_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
    return real_vfs->xDelete(real_vfs, name, sync);
}

static int wb_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int wb_full(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *wb_dlopen(sqlite3_vfs *vfs, const char *name)
{
    return real_vfs->xDlOpen(real_vfs, name);
}

static void wb_dlerror(sqlite3_vfs *vfs, int n, char *out)
{
    real_vfs->xDlError(real_vfs, n, out);
}

static void (*wb_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    return real_vfs->xDlSym(real_vfs, h, sym);
}

static void wb_dlclose(sqlite3_vfs *vfs, void *h)
{
    real_vfs->xDlClose(real_vfs, h);
}

static int wb_random(sqlite3_vfs *vfs, int n, char *out)
{
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int wb_sleep(sqlite3_vfs *vfs, int us)
{
    return real_vfs->xSleep(real_vfs, us);
}

static int wb_time(sqlite3_vfs *vfs, double *out)
{
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int wb_lasterror(sqlite3_vfs *vfs, int n, char *out)
{
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int wb_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static void do_register(void)
{
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    /* the methods forwarded below, all present from version 2 on */
    if (!real || real->iVersion < 2 || !real->xCurrentTimeInt64) return;
    real_vfs = real;
    wb_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(struct wb_file) + real->szOsFile,
        .mxPathname = real->mxPathname,
        .zName = VFS_NAME,
        .xOpen = wb_open,
        .xDelete = wb_delete,
        .xAccess = wb_access,
        .xFullPathname = wb_full,
        .xDlOpen = wb_dlopen,
        .xDlError = wb_dlerror,
        .xDlSym = wb_dlsym,
        .xDlClose = wb_dlclose,
        .xRandomness = wb_random,
        .xSleep = wb_sleep,
        .xCurrentTime = wb_time,
        .xGetLastError = wb_lasterror,
        .xCurrentTimeInt64 = wb_time64,
    };
    if (sqlite3_vfs_register(&wb_vfs, 0) == SQLITE_OK) registered = VFS_NAME;
}

const char *oh_walbuf_vfs(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, do_register);
    return registered;
}
