/* pg.h - PostgreSQL for the scale scenario: a throwaway server or an
 * existing one, one database per store, and a bulk preload that writes
 * exactly the rows oh_store_materialize would write (pg.c, pgload.c). */
#ifndef OH_BENCH_PG_H
#define OH_BENCH_PG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bench_pg {
    char dir[256]; /* the throwaway server's directory; "" for an existing server */
    int port;
    char base_dsn[512]; /* the maintenance database */
    char suffix[16];    /* appended to database names on an existing server */
    char made[4][64];   /* databases created (dropped at the end) */
    int nmade;
};

/* Starts a throwaway PostgreSQL (DSN NULL) tuned as documented in
 * docs/performance.md, or uses the server DSN names. 0 or -1 with ERR. */
int bench_pg_start(struct bench_pg *pg, const char *dsn, char *err, size_t errlen);
/* Creates database NAME (plus the suffix on an existing server) and writes
 * its DSN to OUT. 0 or -1 with ERR. */
int bench_pg_createdb(struct bench_pg *pg, const char *name, char *out, size_t outlen, char *err,
                      size_t errlen);
/* Runs SQL (one or more statements) on DSN. 0 or -1 with ERR. */
int bench_pg_exec(const char *dsn, const char *sql, char *err, size_t errlen);
/* pg_database_size() of the database DSN names, -1 on error. */
long long bench_pg_db_size(const char *dsn);
/* CPU time (user + system, seconds) of the throwaway server's processes
 * so far; -1 for an existing server. */
double bench_pg_cpu_s(const struct bench_pg *pg);
/* Drops the databases created (existing server) or stops the server and
 * removes its directory (OMNIHUB_BENCH_KEEP keeps it). */
void bench_pg_stop(struct bench_pg *pg);

/* ---- bulk preload (pgload.c) ---- */

struct bench_pgload;

/* Opens the store DSN names (through oh_store_open: migrations and epoch),
 * checks that its history is empty, and starts one COPY per table. NCONVS
 * conversations are expected, indexed 0..NCONVS-1. NULL with ERR. */
struct bench_pgload *bench_pgload_begin(const char *dsn, long nconvs, char *err, size_t errlen);
/* Adds the rows materializing EV (borrowed; message events only) would
 * write: the history row with the next seq of conversation C, its
 * references, and, when LAST (C's last event), its conversation row. */
int bench_pgload_add(struct bench_pgload *l, long c, json_t *ev, int32_t part, int64_t off,
                     bool last);
/* Ends the COPYs, rebuilds the indexes and constraints the load dropped
 * (the same definitions), ANALYZEs and frees L. 0 or -1. */
int bench_pgload_end(struct bench_pgload *l, char *err, size_t errlen);

/* Compares two stores through the store API: every conversation (list,
 * get), its whole history (JSON equal but for the epoch) and the reference
 * of each message. 0 when equal, -1 with ERR naming the first difference. */
int bench_pg_compare(const char *dsn_a, const char *dsn_b, char *err, size_t errlen);

#endif
