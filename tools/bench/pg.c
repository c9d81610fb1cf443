/* pg.c - the PostgreSQL server of the scale scenario: a throwaway
 * PostgreSQL on a free loopback port in a temp dir (initdb and pg_ctl run
 * as the postgres user when we are root, as tests/pg_server.py does), or
 * an existing server given by DSN; one database per store. */
#include "oh_build_config.h"

#ifdef OH_HAVE_POSTGRES
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench.h"
#include "pg.h"

/* The throwaway server's settings, for a 24 GiB, 2-core machine: a quarter
 * of the memory as shared buffers, the rest left to the page cache; WAL
 * kept for crash safety only (no replica), so a COPY into a table
 * truncated in the same transaction skips the WAL; durable commits. */
static const char *const pg_settings[] = {
    "shared_buffers = 6GB",
    "effective_cache_size = 16GB",
    "work_mem = 16MB",
    "maintenance_work_mem = 1GB",
    "max_parallel_maintenance_workers = 2",
    "wal_level = minimal",
    "max_wal_senders = 0",
    "max_wal_size = 8GB",
    "checkpoint_timeout = 15min",
    "random_page_cost = 1.1",
    "fsync = on",
    "synchronous_commit = on",
    "max_connections = 100",
    NULL,
};

static int bindir(char *out, size_t len)
{
    glob_t g;
    int rc = -1;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
        snprintf(out, len, "%s", g.gl_pathv[g.gl_pathc - 1]); /* sorted: the newest */
        char *slash = strrchr(out, '/');
        if (slash) *slash = '\0';
        rc = 0;
    }
    globfree(&g);
    return rc;
}

/* Runs ARGV (as the postgres user when we are root), output to LOG;
 * returns its exit status. */
static int run_pg(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (geteuid() == 0) {
            char *wrapped[32] = {"/usr/sbin/runuser", "-u", "postgres", "--"};
            int n = 4;
            for (int i = 0; argv[i] && n < 31; i++)
                wrapped[n++] = argv[i];
            wrapped[n] = NULL;
            execv(wrapped[0], wrapped);
        } else {
            execv(argv[0], argv);
        }
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* DSN with its dbname replaced by DB (keyword=value form, quoted). */
static int dsn_with_db(const char *dsn, const char *db, char *out, size_t len)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
    if (!opts) {
        PQfreemem(perr);
        return -1;
    }
    size_t n = 0;
    out[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = strcmp(o->keyword, "dbname") == 0 ? db : o->val;
        if (!v) continue;
        n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%s%s='", n ? " " : "", o->keyword);
        for (const char *p = v; *p; p++) {
            if (*p == '\'' || *p == '\\')
                n += (size_t)snprintf(out + n, n < len ? len - n : 0, "\\");
            n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%c", *p);
        }
        n += (size_t)snprintf(out + n, n < len ? len - n : 0, "'");
    }
    PQconninfoFree(opts);
    return n < len ? 0 : -1;
}

int bench_pg_exec(const char *dsn, const char *sql, char *err, size_t errlen)
{
    PGconn *c = PQconnectdb(dsn);
    int rc = 0;
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "postgres: %s", PQerrorMessage(c));
        rc = -1;
    } else {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(err, errlen, "postgres: %s: %s", sql, PQerrorMessage(c));
            rc = -1;
        }
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

static int start_local(struct bench_pg *pg, char *err, size_t errlen)
{
    char bin[256], data[320], log[320], slog[320], conf[340], exe[320];
    if (bindir(bin, sizeof bin)) {
        snprintf(err, errlen, "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin)");
        return -1;
    }
    /* in TMPDIR when the postgres user can reach it there, else in /tmp */
    const char *t = getenv("TMPDIR");
    for (int i = 0; i < 2; i++) {
        snprintf(pg->dir, sizeof pg->dir, "%s/omnihub-bench-pg-XXXXXX",
                 i == 0 && t && *t ? t : "/tmp");
        if (!mkdtemp(pg->dir)) {
            snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
            pg->dir[0] = '\0';
            return -1;
        }
        chmod(pg->dir, 0755);
        if (geteuid() != 0) break;
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(pg->dir, pw->pw_uid, pw->pw_gid) != 0) {
            snprintf(err, errlen, "no postgres user to run the server as");
            return -1;
        }
        char *probe[] = {"/usr/bin/test", "-w", pg->dir, NULL};
        if (run_pg(probe, "/dev/null") == 0) break;
        rmdir(pg->dir);
        pg->dir[0] = '\0';
    }
    if (!pg->dir[0]) {
        snprintf(err, errlen, "no directory the postgres user can write to");
        return -1;
    }
    snprintf(data, sizeof data, "%s/data", pg->dir);
    snprintf(log, sizeof log, "%s/commands.log", pg->dir); /* ours: the server writes server.log */
    snprintf(slog, sizeof slog, "%s/server.log", pg->dir);
    snprintf(exe, sizeof exe, "%s/initdb", bin);
    char *initdb[] = {exe,         "-D", data,   "-U", "postgres", "--auth=trust",
                      "--no-sync", "-E", "UTF8", NULL};
    if (run_pg(initdb, log) != 0) {
        snprintf(err, errlen, "initdb failed; see %s", log);
        return -1;
    }
    snprintf(conf, sizeof conf, "%s/postgresql.conf", data);
    FILE *f = fopen(conf, "a");
    if (!f) {
        snprintf(err, errlen, "%s: %s", conf, strerror(errno));
        return -1;
    }
    fprintf(f, "\n# omnihub-bench scale\n");
    for (const char *const *s = pg_settings; *s; s++)
        fprintf(f, "%s\n", *s);
    fclose(f);
    pg->port = bench_free_port();
    char opts[400];
    snprintf(opts, sizeof opts, "-p %d -k %s -c listen_addresses=127.0.0.1", pg->port, pg->dir);
    snprintf(exe, sizeof exe, "%s/pg_ctl", bin);
    char *ctl[] = {exe, "-D", data, "-w", "-t", "120", "-l", slog, "-o", opts, "start", NULL};
    if (run_pg(ctl, log) != 0) {
        snprintf(err, errlen, "pg_ctl start failed; see %s", log);
        return -1;
    }
    snprintf(pg->base_dsn, sizeof pg->base_dsn,
             "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=5", pg->port);
    return 0;
}

int bench_pg_start(struct bench_pg *pg, const char *dsn, char *err, size_t errlen)
{
    memset(pg, 0, sizeof *pg);
    if (!dsn) return start_local(pg, err, errlen);
    snprintf(pg->base_dsn, sizeof pg->base_dsn, "%s", dsn);
    bench_run_id(pg->suffix);
    PGconn *c = PQconnectdb(dsn);
    int rc = PQstatus(c) == CONNECTION_OK ? 0 : -1;
    if (rc) snprintf(err, errlen, "postgres: %s", PQerrorMessage(c));
    PQfinish(c);
    return rc;
}

int bench_pg_createdb(struct bench_pg *pg, const char *name, char *out, size_t outlen, char *err,
                      size_t errlen)
{
    if (pg->nmade >= (int)(sizeof pg->made / sizeof pg->made[0])) {
        snprintf(err, errlen, "too many databases");
        return -1;
    }
    char db[64], sql[128];
    snprintf(db, sizeof db, "omnihub_bench_%s%s%s", name, pg->suffix[0] ? "_" : "", pg->suffix);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    if (bench_pg_exec(pg->base_dsn, sql, err, errlen)) return -1;
    snprintf(pg->made[pg->nmade++], sizeof pg->made[0], "%s", db);
    if (dsn_with_db(pg->base_dsn, db, out, outlen)) {
        snprintf(err, errlen, "cannot build the DSN of %s", db);
        return -1;
    }
    return 0;
}

long long bench_pg_db_size(const char *dsn)
{
    PGconn *c = PQconnectdb(dsn);
    long long n = -1;
    PGresult *r = PQstatus(c) == CONNECTION_OK
                      ? PQexec(c, "SELECT pg_database_size(current_database())")
                      : NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return n;
}

double bench_pg_cpu_s(const struct bench_pg *pg)
{
    if (!pg->dir[0]) return -1;
    char path[320];
    snprintf(path, sizeof path, "%s/data/postmaster.pid", pg->dir);
    FILE *f = fopen(path, "r");
    int pm = 0;
    if (!f || fscanf(f, "%d", &pm) != 1) pm = 0;
    if (f) fclose(f);
    if (pm <= 0) return -1;
    DIR *d = opendir("/proc");
    double sum = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid <= 0) continue;
        char buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *s = fopen(path, "r");
        size_t n = s ? fread(buf, 1, sizeof buf - 1, s) : 0;
        if (s) fclose(s);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        int ppid = 0;
        unsigned long ut = 0, st = 0;
        if (!p || sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ppid, &ut,
                         &st) != 3)
            continue;
        if (pid == pm || ppid == pm) sum += (double)(ut + st);
    }
    if (d) closedir(d);
    return sum / (double)sysconf(_SC_CLK_TCK);
}

void bench_pg_stop(struct bench_pg *pg)
{
    char err[256];
    if (!pg->dir[0]) {
        for (int i = 0; i < pg->nmade; i++) {
            char sql[128];
            snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", pg->made[i]);
            if (bench_pg_exec(pg->base_dsn, sql, err, sizeof err))
                fprintf(stderr, "omnihub-bench: %s\n", err);
        }
        pg->nmade = 0;
        return;
    }
    char bin[256], data[320], log[320], exe[320];
    if (bindir(bin, sizeof bin) == 0) {
        snprintf(data, sizeof data, "%s/data", pg->dir);
        snprintf(log, sizeof log, "%s/commands.log", pg->dir);
        snprintf(exe, sizeof exe, "%s/pg_ctl", bin);
        char *ctl[] = {exe, "-D", data, "-w", "-t", "120", "-m", "fast", "stop", NULL};
        run_pg(ctl, log);
    }
    if (getenv("OMNIHUB_BENCH_KEEP"))
        fprintf(stderr, "kept %s\n", pg->dir);
    else
        bench_rmtree(pg->dir);
    pg->dir[0] = '\0';
}

#endif
