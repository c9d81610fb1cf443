/* pg_harness.c - see pg_harness.h. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libpq-fe.h>
#include "pg_harness.h"
#include "tap.h"

static char base[512]; /* DSN of the server's "postgres" database */
static char dir[512];  /* our server's directory; "" for an external one */
static int ndb;

int oh_test_pg_helper(const char *args, char *out, size_t outlen)
{
    char *script = oh_test_src("tests/pg_server.py");
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", script, args);
    free(script);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = 0;
    char sink[256];
    if (out)
        n = fread(out, 1, outlen - 1, p);
    else
        while (fread(sink, 1, sizeof sink, p) > 0) {
        }
    if (out) out[n] = '\0';
    return pclose(p) == 0 ? 0 : -1;
}

bool oh_test_pg_start(void)
{
    if (base[0]) return true;
    const char *env = getenv("OMNIHUB_TEST_PG_DSN");
    if (env && *env) {
        snprintf(base, sizeof base, "%s", env);
        return true;
    }
    char out[1200];
    if (oh_test_pg_helper("start", out, sizeof out) != 0) {
        fprintf(stderr, "pg_server.py start failed: %s\n", out);
        return false;
    }
    size_t nl = strcspn(out, "\n");
    if (!out[nl]) return false;
    snprintf(base, sizeof base, "%.*s", (int)nl, out);
    snprintf(dir, sizeof dir, "%.*s", (int)strcspn(out + nl + 1, "\n"), out + nl + 1);
    return true;
}

const char *oh_test_pg_dir(void)
{
    return dir;
}

void oh_test_pg_sql(const char *dsn, const char *sql)
{
    PGconn *c = PQconnectdb(dsn);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

void oh_test_pg_newdb(char *out, size_t outlen)
{
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE oh_h%d_%d", (int)getpid(), ++ndb);
    oh_test_pg_sql(base, sql);
    snprintf(out, outlen, "%s dbname=oh_h%d_%d", base, (int)getpid(), ndb);
}

void oh_test_pg_stop(void)
{
    if (!base[0]) return;
    if (dir[0]) {
        char args[600];
        snprintf(args, sizeof args, "stop %s", dir);
        oh_test_pg_helper(args, NULL, 0);
    } else {
        PGconn *c = PQconnectdb(base);
        for (int i = 1; i <= ndb && PQstatus(c) == CONNECTION_OK; i++) {
            char sql[128];
            snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS oh_h%d_%d WITH (FORCE)",
                     (int)getpid(), i);
            PQclear(PQexec(c, sql));
        }
        PQfinish(c);
    }
    base[0] = dir[0] = '\0';
}
