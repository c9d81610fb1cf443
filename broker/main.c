/* main.c - omnihubd: loads the configuration, listens, opens the log and
 * the store on a start-up thread, starts the connectors and the services of
 * the chosen role, and serves until SIGINT or SIGTERM. */
#include <ctype.h>
#include <getopt.h>
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include "oh_build_config.h"
#ifdef OH_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif
#include "core/hub_int.h"
#include "core/kbase.h"
#include "core/auth.h"
#include "core/conn_env.h"
#include "core/daemon.h"
#include "core/http_client.h"
#include "gateway/gateway.h"
#include "services/service.h"
#include "services/enrich_text.h"

static struct oh_gateway *the_gw;
static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
    if (the_gw) oh_gateway_stop(the_gw);
}

static void role_names(char *out, size_t outlen);

static void usage(FILE *out)
{
    char roles[256];
    role_names(roles, sizeof roles);
    fprintf(out,
            "usage: omnihubd [-c FILE] [--role all|ROLE[,ROLE...]] [--check-config]\n"
            "\n"
            "omnihub's daemon: channel webhooks and pollers, the conversation stream, the\n"
            "session-sync service, the dispatcher, and the HTTP/WebSocket API.\n"
            "\n"
            "  -c, --config FILE   YAML configuration (default: built-in defaults)\n"
            "      --role ROLE     services to run (default: the key \"role\", all):\n"
            "                      %s\n"
            "      --check-config  validate the configuration and exit (0 ok, 2 bad)\n"
            "      --keys          list every configuration key with its default\n"
            "  -h, --help          this text\n"
            "  -V, --version       print the version\n"
            "\n"
            "Every key can be set by an environment variable: OMNIHUB_ + the key in upper\n"
            "case with dots as underscores (http.listen -> OMNIHUB_HTTP_LISTEN).\n",
            roles);
}

static void list_keys(void)
{
    static const char *types[] = {"string", "secret", "integer", "bool", "size", "list"};
    for (const struct oh_config_key *const *t = oh_config_tables(); *t; t++)
        for (const struct oh_config_key *k = *t; k->key; k++)
            printf("%-32s %-8s %-16s %s\n", k->key, types[k->type], k->def ? k->def : "-", k->help);
}

/* Enabled: "<name>.enabled" when given, else when the connector is on by
 * default or any of its keys is set. */
static bool connector_enabled(const oh_config *cfg, const struct oh_connector *vt)
{
    char key[96], prefix[96];
    snprintf(key, sizeof key, "%s.enabled", vt->name);
    if (oh_config_is_set(cfg, key)) return oh_config_bool(cfg, key);
    if (vt->enabled_by_default) return true;
    snprintf(prefix, sizeof prefix, "%s.", vt->name);
    return oh_config_any_set(cfg, prefix);
}

static int start_connectors(oh_hub *hub, char *err, size_t errlen)
{
    for (const struct oh_connector *const *c = oh_connectors; *c; c++) {
        if (!connector_enabled(hub->cfg, *c)) continue;
        if (hub->nconn == OH_ARRAY_SIZE(hub->conn)) {
            oh_errf(err, errlen, "too many connectors");
            return OH_EINVAL;
        }
        void *ctx = NULL;
        char why[512] = "";
        struct oh_conn_env *env = oh_conn_env_new(hub, *c);
        if (!env) {
            oh_errf(err, errlen, "connector %s: out of memory", (*c)->name);
            return OH_ENOMEM;
        }
        if ((*c)->init && (*c)->init(env, hub->cfg, &ctx, why, sizeof why)) {
            oh_conn_env_free(env);
            oh_errf(err, errlen, "connector %s: %s", (*c)->name, why);
            return OH_EINVAL;
        }
        hub->conn[hub->nconn++] = (struct oh_instance){*c, ctx, env};
        OH_INFO("main", "connector %s enabled", (*c)->name);
    }
    for (size_t i = 0; i < hub->nconn; i++)
        if (hub->run_gateway && hub->conn[i].vt->start &&
            hub->conn[i].vt->start(hub->conn[i].ctx)) {
            oh_errf(err, errlen, "connector %s failed to start", hub->conn[i].vt->name);
            return OH_EIO;
        }
    return OH_OK;
}

/* Every start-up check that needs no network and creates nothing: the
 * secrets and keys the role needs, the backends and their settings, the
 * listener, each enabled connector's configuration (its init, undone at
 * once). --check-config runs exactly this; a start runs it before opening
 * anything, so that a refused start leaves no files behind. */
static int preflight(oh_hub *hub, char *err, size_t errlen)
{
    const oh_config *cfg = hub->cfg;
    char host[256];
    int port, rc;
    /* read once here, for the run as well (core/http_client.h) */
    if ((rc = oh_http_init(oh_config_str(cfg, "http.ca_file"), err, errlen))) return rc;
    if (hub->run_gateway) {
        /* a JWKS file alone will do: the verifier says what is missing */
        oh_auth *auth = oh_auth_from_config(cfg, err, errlen);
        if (!auth) return OH_EINVAL;
        oh_auth_free(auth);
        if ((rc = oh_config_hostport(cfg, "http.listen", host, sizeof host, &port, err, errlen)))
            return rc;
        const char *admin = oh_config_str(cfg, "http.admin_listen");
        if (admin && *admin &&
            (rc = oh_config_hostport(cfg, "http.admin_listen", host, sizeof host, &port, err,
                                     errlen)))
            return rc;
    }
    if ((rc = oh_log_check(cfg, err, errlen)) || (rc = oh_store_check(cfg, err, errlen))) return rc;
    for (const struct oh_connector *const *c = oh_connectors; *c; c++) {
        if (!connector_enabled(cfg, *c) || !(*c)->init) continue;
        void *ctx = NULL;
        char why[512] = "";
        struct oh_conn_env *env = oh_conn_env_new(hub, *c);
        if (!env) {
            oh_errf(err, errlen, "connector %s: out of memory", (*c)->name);
            return OH_ENOMEM;
        }
        rc = (*c)->init(env, cfg, &ctx, why, sizeof why);
        if (rc == 0 && (*c)->destroy) (*c)->destroy(ctx);
        oh_conn_env_free(env);
        if (rc) {
            oh_errf(err, errlen, "connector %s: %s", (*c)->name, why);
            return OH_EINVAL;
        }
    }
    return OH_OK;
}

/* The key an error message starts with ("store.backend: ..."), if any. */
static const char *key_of(const char *msg, char *key, size_t len)
{
    size_t n = strcspn(msg, ": ");
    if (n == 0 || n >= len || !strchr(msg, '.') || strchr(msg, '.') > msg + n) return NULL;
    for (const struct oh_config_key *const *t = oh_config_tables(); *t; t++)
        for (const struct oh_config_key *k = *t; k->key; k++)
            if (strlen(k->key) == n && strncmp(k->key, msg, n) == 0) {
                snprintf(key, len, "%s", k->key);
                return key;
            }
    return NULL;
}

/* Where MSG first mentions the key NAME (LEN bytes) as a word of its own;
 * NULL when it does not. */
static const char *mentions(const char *msg, const char *name, size_t len)
{
    for (const char *p = msg; (p = strstr(p, name)) != NULL; p += len) {
        char before = p > msg ? p[-1] : ' ', after = p[len];
        if (!isalnum((unsigned char)before) && before != '_' && before != '.' &&
            !isalnum((unsigned char)after) && after != '_' && after != '.')
            return p;
    }
    return NULL;
}

/* Where a refused start points (CONTRACT: "file:line: message"). The
 * refusal's key is the one the message starts with, else the first it
 * names: where that key was given (its line, or the variable that set it);
 * for a key given nowhere (a required one), the first line of the file that
 * gives another key the message names (the one that requires it), else a
 * key of the same section, else line 1. Without a file, "omnihubd". */
static void refusal_where(const oh_hub *hub, const char *path, const char *msg, char *where,
                          size_t len)
{
    const oh_config *cfg = hub->cfg;
    char key[128] = "";
    const char *first = NULL;
    if (!key_of(msg, key, sizeof key))
        for (const struct oh_config_key *const *t = oh_config_tables(); *t; t++)
            for (const struct oh_config_key *k = *t; k->key; k++) {
                const char *at = mentions(msg, k->key, strlen(k->key));
                if (at && (!first || at < first)) {
                    first = at;
                    snprintf(key, sizeof key, "%s", k->key);
                }
            }
    if (*key) oh_config_where(cfg, key, where, len);
    if (!path || (*key && strcmp(where, path) != 0)) { /* given: where */
        if (!*key) snprintf(where, len, "%s", path ? path : "omnihubd");
        return;
    }
    size_t named = 0, section = 0, sect_len = *key ? strcspn(key, ".") + 1 : 0;
    for (const struct oh_config_key *const *t = oh_config_tables(); *t; t++)
        for (const struct oh_config_key *k = *t; k->key; k++) {
            size_t line = oh_config_line(cfg, k->key);
            if (!line) continue;
            if (mentions(msg, k->key, strlen(k->key)) && (!named || line < named)) named = line;
            if (*key && strncmp(k->key, key, sect_len) == 0 && (!section || line < section))
                section = line;
        }
    snprintf(where, len, "%s:%zu", path, named ? named : section ? section : 1);
}

static void warn_env(const char *name, const char *suggestion, void *opaque)
{
    (void)opaque;
    if (suggestion)
        OH_WARN("config", "%s is not a configuration variable and is ignored (did you mean %s?)",
                name, suggestion);
    else
        OH_WARN("config", "%s is not a configuration variable and is ignored", name);
}

/* The built-in roles, each a flag of the hub that the gateway and the
 * services of those roles look at; every other role is a service's own
 * (.role in services/registry.c), kept in hub->roles. */
static const struct {
    const char *name;
    size_t flag; /* offsetof(oh_hub, run_<name>) */
} builtin_roles[] = {
    {"gateway", offsetof(oh_hub, run_gateway)},
    {"sync", offsetof(oh_hub, run_sync)},
    {"dispatch", offsetof(oh_hub, run_dispatch)},
};

/* Whether NAME (LEN bytes) is a service's role. */
static bool service_role(const char *name, size_t len)
{
    for (const struct oh_service *const *s = oh_service_table; *s; s++)
        if ((*s)->role && strlen((*s)->role) == len && strncmp((*s)->role, name, len) == 0)
            return true;
    return false;
}

/* "all, gateway, sync, dispatch, enrich, ... or kpi" into OUT. */
static void role_names(char *out, size_t outlen)
{
    const char *names[32];
    size_t n = 0;
    for (size_t i = 0; i < OH_ARRAY_SIZE(builtin_roles); i++)
        names[n++] = builtin_roles[i].name;
    for (const struct oh_service *const *s = oh_service_table; *s && n < OH_ARRAY_SIZE(names);
         s++) {
        bool seen = !(*s)->role;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strcmp(names[i], (*s)->role) == 0;
        if (!seen) names[n++] = (*s)->role;
    }
    size_t at = (size_t)snprintf(out, outlen, "all");
    for (size_t i = 0; i < n && at < outlen; i++)
        at += (size_t)snprintf(out + at, outlen - at, "%s%s", i + 1 < n ? ", " : " or ", names[i]);
}

/* ROLE: "all" or a comma-separated list of roles ("gateway,sync"). */
static int set_role(oh_hub *hub, const char *role, char *err, size_t errlen)
{
    bool all = strcmp(role, "all") == 0;
    for (size_t i = 0; i < OH_ARRAY_SIZE(builtin_roles); i++)
        *(bool *)((char *)hub + builtin_roles[i].flag) = all;
    size_t at = (size_t)snprintf(hub->roles, sizeof hub->roles, "%s", all ? "all" : "");
    for (const char *p = role; !all && *p;) {
        size_t n = strcspn(p, ","), i = 0;
        while (i < OH_ARRAY_SIZE(builtin_roles) &&
               (strlen(builtin_roles[i].name) != n || strncmp(p, builtin_roles[i].name, n)))
            i++;
        if (i < OH_ARRAY_SIZE(builtin_roles)) {
            *(bool *)((char *)hub + builtin_roles[i].flag) = true;
        } else if (service_role(p, n) && at + n + 1 < sizeof hub->roles) {
            at += (size_t)snprintf(hub->roles + at, sizeof hub->roles - at, "%s%.*s", at ? "," : "",
                                   (int)n, p);
        } else {
            char names[256];
            role_names(names, sizeof names);
            oh_errf(err, errlen, "role must be %s (or a comma-separated list of them), not \"%s\"",
                    names, role);
            return OH_EINVAL;
        }
        p += n + (p[n] == ',');
    }
    return OH_OK;
}

/* store.verify_on_start: reads every stored event once and reports; the
 * damaged ones are also logged one by one and counted. Serving starts
 * either way: a damaged event is refused when asked for. */
static void verify_store(oh_store *st)
{
    struct oh_store_verify v;
    int64_t t0 = oh_mono_ms();
    int rc = oh_store_verify(st, &v);
    if (rc) {
        OH_ERROR("main", "store check: stopped after %lld events: %s", (long long)v.checked,
                 oh_strerror(rc));
        return;
    }
    if (v.damaged)
        OH_ERROR("main",
                 "store check: %lld of %lld events damaged (checksum mismatch); see the lines "
                 "above and docs/operations.md",
                 (long long)v.damaged, (long long)v.checked);
    else
        OH_INFO("main",
                "store check: %lld events, none damaged (%lld stored without checksum) in "
                "%lld ms",
                (long long)v.checked, (long long)v.unverified, (long long)(oh_mono_ms() - t0));
}

/* OH_EUNAVAIL (ERR empty: nothing failed) once a stop was asked for. */
static int stopped(oh_hub *hub, char *err, size_t errlen)
{
    if (!atomic_load(&hub->stopping)) return OH_OK;
    if (errlen) err[0] = '\0';
    return OH_EUNAVAIL;
}

/* What the start-up thread opens (into the hub), and how it ended. */
struct start {
    oh_hub *hub;
    struct oh_gateway *gw;
    struct oh_service_set *services;
    int rc;
    char err[1024];
};

/* Opens the log, the store, the knowledge base's indexes, the connectors,
 * attaches the gateway and starts the services, as a start did before the
 * gateway listened; each step leaves what it opened in the hub for main()
 * to close. Stops between steps once hub->stopping is set. */
static int open_all(struct start *s, char *err, size_t errlen)
{
    oh_hub *hub = s->hub;
    int rc;
    if (!(hub->log = oh_log_open(hub->cfg, err, errlen))) return OH_EIO;
    if ((rc = stopped(hub, err, errlen))) return rc;
    if (!(hub->store = oh_store_open(hub->cfg, err, errlen))) return OH_EIO;
    if ((rc = stopped(hub, err, errlen))) return rc;
    if (oh_config_bool(hub->cfg, "store.verify_on_start")) verify_store(hub->store);
    /* the knowledge base's indexes, rebuilt on each change (gateway/kb_api.c) */
    if (!(hub->kb = oh_kbase_new()) || !(hub->canned = oh_kbase_new())) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    if ((rc = oh_hub_kb_reload(hub, false, err, errlen)) ||
        (rc = oh_hub_kb_reload(hub, true, err, errlen)))
        return rc;
    /* before any connector or client can append to a log the store would skip */
    if (hub->run_sync) {
        char why[1000] = "";
        if ((rc = oh_sync_check_log(hub, why, sizeof why))) {
            oh_errf(err, errlen, "sync: %s", why);
            return rc;
        }
    }
    if ((rc = stopped(hub, err, errlen)) || (rc = start_connectors(hub, err, errlen))) return rc;
    /* events appended here and materialized here are parsed once */
    if (hub->run_gateway && hub->run_sync && !(hub->handoff = oh_handoff_new(16384, 64u << 20))) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    /* messages sync scores inline are marked for the enrich service */
    if (oh_triage_inline(hub) && !(hub->scored = oh_marks_new(16384))) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    if ((rc = oh_gateway_attach(s->gw, err, errlen))) return rc;
    /* the services of the role (services/registry.c) and their lag */
    if ((rc = oh_services_start(hub, oh_service_table, 5000, &s->services, err, errlen)) ||
        (rc = stopped(hub, err, errlen)))
        return rc;
    oh_gateway_ready(s->gw);
    OH_INFO("main", "omnihubd %s ready: role %s, log %s, store %s, epoch %s", OH_VERSION,
            oh_config_str(hub->cfg, "role"), oh_log_backend(hub->log), oh_store_backend(hub->store),
            oh_store_epoch(hub->store));
    return OH_OK;
}

/* The start-up thread, while the main thread's gateway answers "starting":
 * a failed start ends the gateway's loop (its reason in S->err). */
static void *start_up(void *opaque)
{
    struct start *s = opaque;
    pthread_setname_np(pthread_self(), "oh-start");
    if ((s->rc = open_all(s, s->err, sizeof s->err))) oh_gateway_stop(s->gw);
    return NULL;
}

/* How long a stop waits for the start-up thread: its step may be a
 * connect or a retry that cannot be interrupted (a PostgreSQL connect
 * waits up to 5 s, and the migrations retry for about 13 s; a Kafka
 * metadata request up to 5 s). */
#define START_STOP_WAIT_S 5

/* Joins T, for at most START_STOP_WAIT_S; false when it still runs. */
static bool join_start(pthread_t t)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += START_STOP_WAIT_S;
    return pthread_timedjoin_np(t, NULL, &until) == 0;
}

/* The version, and the allocator this binary was linked with (jemalloc
 * unless built without it or with a sanitizer: docs/performance.md). */
static void print_version(void)
{
    printf("omnihubd %s\n", OH_VERSION);
#ifdef OH_HAVE_JEMALLOC
    const char *v = NULL;
    size_t len = sizeof v;
    if (mallctl("version", (void *)&v, &len, NULL, 0) == 0 && v)
        printf("allocator: jemalloc %s\n", v);
    else
        printf("allocator: jemalloc\n");
#else
    printf("allocator: the default malloc\n");
#endif
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"role", required_argument, NULL, 'r'},
                                         {"check-config", no_argument, NULL, 'k'},
                                         {"keys", no_argument, NULL, 'K'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL, *role = NULL;
    bool check = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 'r': role = optarg; break;
        case 'k': check = true; break;
        case 'K': list_keys(); return 0;
        case 'h': usage(stdout); return 0;
        case 'V': print_version(); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "omnihubd: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    char err[1024] = "";
    oh_hub hub = {0};
    hub.cfg = oh_config_load(path, oh_config_tables(), NULL, err, sizeof err);
    if (!hub.cfg) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (role && oh_config_set(hub.cfg, "role", role, err, sizeof err)) {
        fprintf(stderr, "omnihubd: %s\n", err);
        return 2;
    }
    if (set_role(&hub, oh_config_str(hub.cfg, "role"), err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", path ? path : "omnihubd", err);
        oh_config_free(hub.cfg);
        return 2;
    }
    static const char *levels[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(oh_config_str(hub.cfg, "logging.level"), levels[i]) == 0)
            oh_slog_set_level((enum oh_level)i);
    oh_config_unknown_env(hub.cfg, NULL, warn_env, NULL);
    curl_global_init(CURL_GLOBAL_ALL); /* before the CAs are read (preflight) */
    int refused = preflight(&hub, err, sizeof err);
    if (refused || check) {
        if (refused) {
            char where[512];
            refusal_where(&hub, path, err, where, sizeof where);
            fprintf(stderr, "%s: %s\n", where, err);
        }
        oh_config_free(hub.cfg);
        oh_http_cleanup();
        curl_global_cleanup();
        return refused ? 2 : 0;
    }
    int ncas;
    const char *cas = oh_http_ca_source(&ncas);
    if (cas)
        OH_INFO("main", "outbound HTTPS trusts the %d certificates of %s", ncas, cas);
    else
        OH_WARN("main", "no CA bundle could be read: outbound HTTPS verifies as libcurl does "
                        "by itself (set http.ca_file)");
    signal(SIGPIPE, SIG_IGN);
    int rc = 1;
    struct start start = {.hub = &hub};
    pthread_t starter;
    /* listening first: /healthz answers while the log and the store open */
    if (!(the_gw = oh_gateway_new(&hub, err, sizeof err))) goto out;
    start.gw = the_gw;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* the start-up thread and every thread it starts leave the stop
     * signals to this one */
    sigset_t stopping, was;
    sigemptyset(&stopping);
    sigaddset(&stopping, SIGINT);
    sigaddset(&stopping, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stopping, &was);
    int e = pthread_create(&starter, NULL, start_up, &start);
    pthread_sigmask(SIG_SETMASK, &was, NULL);
    if (e) {
        oh_errf(err, sizeof err, "start-up thread: %s", strerror(e));
        goto out;
    }
    oh_gateway_run(the_gw);
    /* a second signal during the stop must not reach a gateway being freed */
    sigprocmask(SIG_BLOCK, &stopping, NULL);
    atomic_store(&hub.stopping, true);
    if (got_signal) OH_INFO("main", "stopping (signal %d)", (int)got_signal);
    if (!join_start(starter)) {
        /* a connect or retry that does not look at hub.stopping: exit
         * without it (nothing was served yet; the listener closes) */
        OH_WARN("main", "start-up did not end within %d s of the stop: exiting without it",
                START_STOP_WAIT_S);
        _exit(0);
    }
    rc = start.rc && !got_signal;
    if (rc) snprintf(err, sizeof err, "%s", start.err);
out:
    if (rc) OH_ERROR("main", "%s", err);
    atomic_store(&hub.stopping, true);
    for (size_t i = 0; i < hub.nconn; i++)
        if (hub.conn[i].vt->stop && hub.run_gateway) hub.conn[i].vt->stop(hub.conn[i].ctx);
    oh_services_stop(start.services);
    oh_gateway_drain(the_gw);
    for (size_t i = 0; i < hub.nconn; i++)
        if (hub.conn[i].vt->destroy) hub.conn[i].vt->destroy(hub.conn[i].ctx);
    /* appends still in flight report to the gateway (and the handoff) as
     * the log closes: both outlive it */
    oh_log_close(hub.log);
    oh_gateway_free(the_gw);
    oh_handoff_free(hub.handoff);
    oh_marks_free(hub.scored);
    for (size_t i = 0; i < hub.nconn; i++)
        oh_conn_env_free(hub.conn[i].env);
    oh_store_close(hub.store);
    oh_kbase_free(hub.kb);
    oh_kbase_free(hub.canned);
    oh_config_free(hub.cfg);
    oh_http_cleanup();
    curl_global_cleanup();
    return rc;
}
