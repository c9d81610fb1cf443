/* daemon.c - the processes under test: omnihubd (started with the bench's
 * secrets on a free port in a temp dir, or attached by URL) and nginx as the
 * HTTP ceiling; CPU time and peak RSS from /proc; the bench's agent token
 * and run ids for talking to it. */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench.h"
#include "core/auth.h"
#include "core/crypto.h"

int bench_proc_read(pid_t pid, struct bench_proc *out)
{
    memset(out, 0, sizeof *out);
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* fields after the parenthesised command: state is field 3, utime 14, stime 15 */
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    out->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(buf, sizeof buf, f)) {
        if (strncmp(buf, "VmHWM:", 6) == 0)
            out->hwm_kb = strtol(buf + 6, NULL, 10);
        else if (strncmp(buf, "VmRSS:", 6) == 0)
            out->rss_kb = strtol(buf + 6, NULL, 10);
    }
    fclose(f);
    return 0;
}

int bench_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

void bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

void bench_rmtree(const char *dir)
{
    if (dir && *dir) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int make_tmp(char *out, size_t len, const char *what)
{
    const char *t = getenv("TMPDIR");
    snprintf(out, len, "%s/omnihub-bench-%s-XXXXXX", t && *t ? t : "/tmp", what);
    return mkdtemp(out) ? 0 : -1;
}

/* Child side of a spawn: stdout/stderr to LOG, argv exec'd with ENV added. */
static pid_t spawn(char *const argv[], const char *log, char *const *env)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* ended with the bench, also when it is killed (a test's timeout):
     * spawned from the main thread only, whose exit this follows */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(127);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) {
        dup2(nul, 0);
        close(nul);
    }
    for (char *const *e = env; e && *e; e++)
        putenv(*e);
    setpgid(0, 0);
    execv(argv[0], argv);
    _exit(127);
}

static void env_name(char *out, size_t len, const char *key)
{
    size_t n = snprintf(out, len, "OMNIHUB_");
    for (const char *k = key; *k && n + 1 < len; k++)
        out[n++] = *k == '.' ? '_' : (char)(*k >= 'a' && *k <= 'z' ? *k - 32 : *k);
    out[n] = '\0';
}

static long get_status(const char *url)
{
    return bench_http_get(url, NULL, NULL);
}

int bench_daemon_start(struct bench_daemon *d, const struct bench_opts *o, const char *const *kv,
                       const char *data_dir, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    if (make_tmp(d->dir, sizeof d->dir, "d")) {
        snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    if (data_dir)
        snprintf(d->data_dir, sizeof d->data_dir, "%s", data_dir);
    else
        snprintf(d->data_dir, sizeof d->data_dir, "%s/data", d->dir);
    d->port = bench_free_port();
    snprintf(d->url, sizeof d->url, "http://127.0.0.1:%d", d->port);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", d->port);
    const char *base[] = {"http.listen",
                          listen,
                          "data_dir",
                          d->data_dir,
                          "auth.jwt_secret",
                          BENCH_JWT_SECRET,
                          "api.inbound_secret",
                          BENCH_INBOUND_SECRET,
                          "logging.level",
                          "warn",
                          "ws.idle_timeout",
                          "3600",
                          "ws.rate",
                          "1000",
                          NULL};
    char *env[64];
    int ne = 0;
    for (int pass = 0; pass < 2; pass++)
        for (const char *const *p = pass ? kv : base; p && p[0] && ne < 62; p += 2) {
            char name[128];
            env_name(name, sizeof name, p[0]);
            if (asprintf(&env[ne], "%s=%s", name, p[1]) < 0) return -1;
            ne++;
        }
    env[ne] = NULL;
    char log[320];
    snprintf(log, sizeof log, "%s/omnihubd.log", d->dir);
    char *argv[] = {(char *)o->daemon_bin, NULL};
    d->pid = spawn(argv, log, env);
    for (int i = 0; i < ne; i++)
        free(env[i]);
    if (d->pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    char ready[160];
    snprintf(ready, sizeof ready, "%s/readyz", d->url);
    int64_t deadline = bench_now_us() + 60 * 1000000LL;
    while (bench_now_us() < deadline) {
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            snprintf(err, errlen, "omnihubd exited (status %d); see %s", st, log);
            d->pid = 0;
            return -1;
        }
        if (get_status(ready) == 200) return 0;
        usleep(20000);
    }
    snprintf(err, errlen, "omnihubd not ready after 60 s; see %s", log);
    bench_daemon_stop(d);
    return -1;
}

int bench_daemon_attach(struct bench_daemon *d, const struct bench_opts *o)
{
    memset(d, 0, sizeof *d);
    snprintf(d->url, sizeof d->url, "%s", o->url);
    size_t n = strlen(d->url);
    if (n && d->url[n - 1] == '/') d->url[n - 1] = '\0';
    return 0;
}

static void stop_pid(pid_t pid, int secs)
{
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    for (int i = 0; i < secs * 50; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid) return;
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

void bench_daemon_stop(struct bench_daemon *d)
{
    stop_pid(d->pid, 30);
    d->pid = 0;
    if (getenv("OMNIHUB_BENCH_KEEP"))
        fprintf(stderr, "kept %s\n", d->dir);
    else
        bench_rmtree(d->dir);
    d->dir[0] = '\0';
}

int bench_nginx_start(struct bench_nginx *n, char *err, size_t errlen)
{
    memset(n, 0, sizeof *n);
    const char *bin = access("/usr/sbin/nginx", X_OK) == 0 ? "/usr/sbin/nginx" : NULL;
    if (!bin) {
        snprintf(err, errlen, "nginx not found (apt-get install nginx-light)");
        return -1;
    }
    if (make_tmp(n->dir, sizeof n->dir, "nginx")) {
        snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    n->port = bench_free_port();
    snprintf(n->url, sizeof n->url, "http://127.0.0.1:%d", n->port);
    char conf[320], log[320];
    snprintf(conf, sizeof conf, "%s/nginx.conf", n->dir);
    snprintf(log, sizeof log, "%s/nginx.out", n->dir);
    FILE *f = fopen(conf, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", conf, strerror(errno));
        return -1;
    }
    /* the same work an HTTP front would do at the least: read the request
     * and its body, answer a small JSON 200, keep the connection */
    fprintf(f,
            "worker_processes auto;\n"
            "pid %s/nginx.pid;\n"
            "error_log %s/error.log warn;\n"
            "events { worker_connections 16384; }\n"
            "http {\n"
            "  access_log off;\n"
            "  client_body_temp_path %s/body;\n"
            "  proxy_temp_path %s/proxy;\n"
            "  fastcgi_temp_path %s/fastcgi;\n"
            "  uwsgi_temp_path %s/uwsgi;\n"
            "  scgi_temp_path %s/scgi;\n"
            "  keepalive_requests 1000000;\n"
            "  client_body_buffer_size 1m;\n"
            "  client_max_body_size 1m;\n"
            "  server {\n"
            "    listen 127.0.0.1:%d;\n"
            "    default_type application/json;\n"
            "    location / { return 200 '{\"ok\":true}'; }\n"
            "  }\n"
            "}\n",
            n->dir, n->dir, n->dir, n->dir, n->dir, n->dir, n->dir, n->port);
    fclose(f);
    char *argv[] = {(char *)bin, "-c", conf, "-p", n->dir, "-g", "daemon off;", NULL};
    n->pid = spawn(argv, log, NULL);
    int64_t deadline = bench_now_us() + 10 * 1000000LL;
    while (bench_now_us() < deadline) {
        if (waitpid(n->pid, NULL, WNOHANG) == n->pid) {
            snprintf(err, errlen, "nginx exited; see %s", log);
            n->pid = 0;
            return -1;
        }
        if (get_status(n->url) == 200) return 0;
        usleep(20000);
    }
    snprintf(err, errlen, "nginx did not answer; see %s", log);
    bench_nginx_stop(n);
    return -1;
}

void bench_nginx_stop(struct bench_nginx *n)
{
    /* nginx runs in its own process group: master and workers */
    if (n->pid > 0) {
        kill(n->pid, SIGQUIT);
        for (int i = 0; i < 250 && waitpid(n->pid, NULL, WNOHANG) != n->pid; i++)
            usleep(20000);
        kill(-n->pid, SIGKILL);
        waitpid(n->pid, NULL, WNOHANG);
    }
    n->pid = 0;
    bench_rmtree(n->dir);
    n->dir[0] = '\0';
}

/* PING over RESP: 1 once Redis answers +PONG. */
static int redis_ping(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = 0;
    char buf[16] = "";
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        write(fd, "PING\r\n", 6) == 6 && read(fd, buf, sizeof buf - 1) > 0)
        ok = strncmp(buf, "+PONG", 5) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

int bench_redis_start(struct bench_redis *rd, char *err, size_t errlen)
{
    memset(rd, 0, sizeof *rd);
    const char *bin = access("/usr/bin/redis-server", X_OK) == 0 ? "/usr/bin/redis-server" : NULL;
    if (!bin) {
        snprintf(err, errlen, "redis-server not found (apt-get install redis-server)");
        return -1;
    }
    if (make_tmp(rd->dir, sizeof rd->dir, "redis")) {
        snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    rd->port = bench_free_port();
    snprintf(rd->url, sizeof rd->url, "127.0.0.1:%d", rd->port);
    char conf[320], log[320];
    snprintf(conf, sizeof conf, "%s/redis.conf", rd->dir);
    snprintf(log, sizeof log, "%s/redis.out", rd->dir);
    FILE *f = fopen(conf, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", conf, strerror(errno));
        return -1;
    }
    /* durable like omnihub's 202: every write in the append-only file and
     * fsync'd before the answer (Redis groups the fsyncs of one loop turn) */
    fprintf(f,
            "bind 127.0.0.1\n"
            "port %d\n"
            "dir %s\n"
            "daemonize no\n"
            "protected-mode no\n"
            "save \"\"\n"
            "appendonly yes\n"
            "appendfsync always\n"
            "maxclients 10000\n",
            rd->port, rd->dir);
    fclose(f);
    char *argv[] = {(char *)bin, conf, NULL};
    rd->pid = spawn(argv, log, NULL);
    int64_t deadline = bench_now_us() + 10 * 1000000LL;
    while (bench_now_us() < deadline) {
        if (waitpid(rd->pid, NULL, WNOHANG) == rd->pid) {
            snprintf(err, errlen, "redis-server exited; see %s", log);
            rd->pid = 0;
            return -1;
        }
        if (redis_ping(rd->port)) return 0;
        usleep(20000);
    }
    snprintf(err, errlen, "redis-server did not answer; see %s", log);
    bench_redis_stop(rd);
    return -1;
}

void bench_redis_stop(struct bench_redis *rd)
{
    stop_pid(rd->pid, 10);
    rd->pid = 0;
    bench_rmtree(rd->dir);
    rd->dir[0] = '\0';
}

/* The voluntary and involuntary context switches in /proc/PID/task/TID/status. */
static void task_switches(pid_t pid, const char *tid, double *vcs, double *ivcs)
{
    char p[128], line[256];
    snprintf(p, sizeof p, "/proc/%d/task/%s/status", (int)pid, tid);
    FILE *f = fopen(p, "r");
    if (!f) return;
    unsigned long v;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "voluntary_ctxt_switches: %lu", &v) == 1) *vcs += (double)v;
        if (sscanf(line, "nonvoluntary_ctxt_switches: %lu", &v) == 1) *ivcs += (double)v;
    }
    fclose(f);
}

/* Adds X to OBJ[KEY] (a real, created at 0). */
static void add_to(json_t *obj, const char *key, double x)
{
    json_t *have = json_object_get(obj, key);
    json_object_set_new(obj, key, json_real(x + (have ? json_real_value(have) : 0)));
}

int bench_proc_threads(pid_t pid, json_t *out)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    double tck = (double)sysconf(_SC_CLK_TCK);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[128], buf[1024];
        snprintf(p, sizeof p, "/proc/%d/task/%s/stat", (int)pid, e->d_name);
        FILE *f = fopen(p, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        if (!lp || !rp ||
            sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
            continue;
        /* threads of one pool share a name: summed under it */
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(rp - lp - 1), lp + 1);
        json_t *t = json_object_get(out, name);
        if (!t) json_object_set_new(out, name, t = json_object());
        double vcs = 0, ivcs = 0;
        task_switches(pid, e->d_name, &vcs, &ivcs);
        add_to(t, "user_s", (double)ut / tck);
        add_to(t, "sys_s", (double)st / tck);
        add_to(t, "switches", vcs);
        add_to(t, "involuntary_switches", ivcs);
    }
    closedir(d);
    return 0;
}

void bench_run_id(char *out)
{
    unsigned char r[4];
    if (oh_random(r, sizeof r)) memset(r, (int)getpid(), sizeof r);
    snprintf(out, 16, "r%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
}

char *bench_agent_token(void)
{
    return oh_auth_issue(BENCH_JWT_SECRET, "bench-agent", "agent", "bench", 24 * 3600);
}
