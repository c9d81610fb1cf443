/* bench.h - the pieces of omnihub-bench shared by its scenarios: options,
 * latency histograms, the daemon and nginx under test, the HTTP and
 * WebSocket load drivers and the report. */
#ifndef OH_BENCH_H
#define OH_BENCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_JWT_SECRET     "bench-jwt-secret"
#define BENCH_INBOUND_SECRET "bench-inbound-secret"
#define BENCH_WA_SECRET      "bench-whatsapp-app-secret"

/* ---- options (main.c) ---- */

struct bench_opts {
    const char *daemon_bin; /* omnihubd to start */
    const char *url;        /* an already running omnihubd instead (NULL: start one) */
    const char *data_root;  /* tests/data of the source tree */
    const char *json_path;  /* report file, NULL none */
    const char *channel;    /* ingest: "api" | "whatsapp" */
    long messages;          /* ingest: deliveries; fanout/kafka: messages */
    int concurrency;        /* HTTP connections */
    int clients;            /* fanout: WebSocket clients */
    int per_conv;           /* fanout: subscribers per conversation */
    int rate;               /* fanout: messages per second */
    int seconds;            /* fanout: length of the measured phase */
    int events;             /* resume: missed events */
    int repeat;             /* resume: repetitions */
    long conversations;     /* scale */
    long scale_events;      /* scale */
    long episodes;          /* kpis: finished episodes in the store */
    const char *store;      /* scale: "sqlite" (default) | "postgres" */
    const char *pg_dsn;     /* scale: an existing PostgreSQL (NULL: start one) */
    const char *preload;    /* scale: "materialize" | "bulk" (default: bulk on postgres) */
    bool pg_cluster;        /* scale: CLUSTER the history by conversation after the preload */
    int settle;             /* scale: seconds to leave the stores idle before measuring */
    double normalize_s;     /* normalize: seconds per channel */
    bool no_ceiling;
    bool quick;      /* standard set: smaller sizes */
    int agents;      /* desk: online agents for the router (0: the inbox scenario) */
    int connections; /* connections: WebSocket connections (100000) */
    int sources;     /* connections: loopback source addresses (0: one per 20,000) */
    int rounds;      /* ingest: alternating rounds of omnihub, nginx and Redis (3); resume */
    const char *conversation; /* resume --url: resume this one, holding --events events */
};

/* ---- monotonic time ---- */
int64_t bench_now_us(void);

/* ---- histogram (hist.c): log-linear, microsecond values ---- */

#define BENCH_HIST_SUB  128 /* sub-buckets per power of two: < 1 % error */
#define BENCH_HIST_EXPS 40

struct bench_hist {
    uint64_t counts[BENCH_HIST_EXPS][BENCH_HIST_SUB];
    uint64_t n;
    int64_t min, max;
    double sum;
};

void bench_hist_reset(struct bench_hist *h);
void bench_hist_record(struct bench_hist *h, int64_t us);
/* Merges SRC into DST. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* Value at percentile P (0..100), in microseconds; 0 when empty. */
int64_t bench_hist_pct(const struct bench_hist *h, double p);
/* {"count","mean_ms","p50_ms","p90_ms","p99_ms","max_ms"}; new reference. */
json_t *bench_hist_json(const struct bench_hist *h);

/* ---- processes (daemon.c) ---- */

struct bench_daemon {
    pid_t pid; /* 0 when attached to a given URL */
    int port;
    char url[128]; /* http://127.0.0.1:PORT */
    char dir[256]; /* temp dir holding data/ and the log file ("" when attached) */
    char data_dir[300];
};

/* CPU time (user + system, seconds) and peak/current RSS (KiB) of PID. */
struct bench_proc {
    double cpu_s;
    long hwm_kb, rss_kb;
};
int bench_proc_read(pid_t pid, struct bench_proc *out);

int bench_free_port(void);
/* Raises RLIMIT_NOFILE to its hard limit (children inherit it). */
void bench_raise_nofile(void);

/* Starts omnihubd with the bench's secrets plus KV (NULL-terminated pairs of
 * dotted key, value) in a fresh temp dir, or in DATA_DIR when not NULL
 * (kept afterwards), and waits for /readyz. 0 or -1 with ERR. */
int bench_daemon_start(struct bench_daemon *d, const struct bench_opts *o, const char *const *kv,
                       const char *data_dir, char *err, size_t errlen);
/* Attaches to O->url instead. */
int bench_daemon_attach(struct bench_daemon *d, const struct bench_opts *o);
/* SIGTERM, wait, remove the temp dir. */
void bench_daemon_stop(struct bench_daemon *d);

/* nginx answering 200 to everything on a free port. */
struct bench_nginx {
    pid_t pid;
    int port;
    char url[128];
    char dir[256];
};
int bench_nginx_start(struct bench_nginx *n, char *err, size_t errlen);
void bench_nginx_stop(struct bench_nginx *n);

/* redis-server (Debian's) with appendonly yes, appendfsync always, on a
 * free port in a temp dir: the durable-append ceiling. */
struct bench_redis {
    pid_t pid;
    int port;
    char url[64]; /* 127.0.0.1:PORT */
    char dir[256];
};
int bench_redis_start(struct bench_redis *rd, char *err, size_t errlen);
void bench_redis_stop(struct bench_redis *rd);

/* Adds each thread's {user_s, sys_s, switches, involuntary_switches} of
 * PID to OUT, summed by thread name (a pool's threads share one; CPU from
 * the task's stat, context switches from its status). */
int bench_proc_threads(pid_t pid, json_t *out);

/* Removes a directory tree. */
void bench_rmtree(const char *dir);

/* ---- load (http.c): persistent connections on one epoll loop ---- */

#define BENCH_PROTO_HTTP 0
#define BENCH_PROTO_RESP 1 /* Redis: XADD <path> * payload <body> */

struct bench_http_req {
    const char *path; /* appended to the base URL */
    const char *body; /* NULL: GET */
    size_t len;
    const char *hdr[4]; /* "Name: value" lines, NULL-terminated */
};

/* Fills the Ith request (borrowed until its done call). */
typedef void (*bench_http_gen)(void *opaque, size_t i, struct bench_http_req *req);
/* Called for each answer: STATUS 0 on a transport error. */
typedef void (*bench_http_done)(void *opaque, size_t i, long status, const char *body, size_t len,
                                int64_t sent_us, int64_t lat_us);

struct bench_http_run {
    const char *base_url;
    size_t n;
    int concurrency;
    double rate; /* requests per second; 0 = as fast as answered */
    bench_http_gen gen;
    bench_http_done done;
    void *opaque;
    volatile int *stop; /* optional: stop issuing when set */
    int proto;          /* BENCH_PROTO_HTTP (0) or BENCH_PROTO_RESP */
    /* out */
    struct bench_hist lat;
    double elapsed_s;
    size_t ok, failed;   /* 2xx (RESP: not an error) / anything else */
    double client_cpu_s; /* CPU the driver's thread spent over the run */
};
/* Runs the requests; 0 or -1. */
int bench_http_load(struct bench_http_run *r);

/* One blocking request; the answer in a malloc'd *BODY (may be NULL).
 * Returns the status, 0 on a transport error. */
long bench_http_get(const char *url, const char *bearer, char **body);
/* One blocking JSON POST of BODY with one more HEADER line (may be NULL). */
long bench_http_post(const char *url, const char *header, const char *body, char **answer);

/* ---- WebSocket clients (ws.c) ---- */

struct bench_ws; /* a set of clients on one lws context, one thread */

/* Told of every event a client receives: its JSON bytes (borrowed for the
 * call) and when it came; on the thread running the clients. */
typedef void (*bench_ws_event_fn)(void *opaque, const char *json, size_t len, int64_t now_us);

/* What each client subscribes to. */
struct bench_ws_spec {
    const char *base_url;    /* http://host:port of omnihubd */
    int n;                   /* clients */
    const char *const *conv; /* client i subscribes to conv[i % nconv]; "*" allowed */
    int nconv;
    int64_t after;     /* subscribe after this seq (0: everything) */
    const char *token; /* agent token for every client */
    /* optional: client i connects with tokens[i % ntokens] instead (the desk's
     * agents), and says PRESENCE ("online") once subscribed */
    const char *const *tokens;
    int ntokens;
    const char *presence;
};

struct bench_ws *bench_ws_new(char *err, size_t errlen);
void bench_ws_free(struct bench_ws *w);
/* Connects SPEC's clients and subscribes each; returns when every client
 * has caught up to the head its "subscribed" announced (or is dead), or
 * after TIMEOUT_S. Returns the number caught up. */
int bench_ws_connect(struct bench_ws *w, const struct bench_ws_spec *spec, int timeout_s);
/* Subscribe-to-caught-up latency of every client so far (borrowed). */
const struct bench_hist *bench_ws_catchup(struct bench_ws *w);
/* Subscribe-to-first-event latency of every client so far (borrowed). */
const struct bench_hist *bench_ws_first(struct bench_ws *w);
/* Counts deliveries of messages "<PREFIX><i>", i < NMSG (PREFIX borrowed). */
void bench_ws_track(struct bench_ws *w, const char *prefix, size_t nmsg);
const unsigned *bench_ws_counts(struct bench_ws *w);
/* Calls FN for each event received from now on (NULL: no more). */
void bench_ws_on_event(struct bench_ws *w, bench_ws_event_fn fn, void *opaque);
/* Services the clients in the calling thread until *STOP or TIMEOUT_MS. */
void bench_ws_run(struct bench_ws *w, volatile int *stop, int timeout_ms);
/* Wakes bench_ws_run from another thread. */
void bench_ws_wake(struct bench_ws *w);
/* Push statistics: latency of events whose text carries "t=<bench_now_us>",
 * events received, gaps and duplicates in seq, closed clients, errors. */
struct bench_ws_stats {
    struct bench_hist push;
    uint64_t events, live, dups, gaps, closed, errors;
};
void bench_ws_stats(struct bench_ws *w, struct bench_ws_stats *out);
void bench_ws_reset_stats(struct bench_ws *w);
/* Events received so far by all clients (readable from another thread). */
uint64_t bench_ws_events(struct bench_ws *w);

/* ---- the report (report.c) ---- */

/* One row of the table; the JSON object carries everything. */
struct bench_row {
    const char *scenario;
    const char *variant;
    const char *unit; /* "msg/s", "payload/s", ... */
    double rate;      /* throughput, <0 n/a */
    const struct bench_hist *lat;
    double ceiling_rate; /* <0 n/a */
    const char *ceiling_name;
    double ratio;       /* omnihub / ceiling (or as the target defines it), <0 n/a */
    const char *target; /* "ratio>=0.5", "p99<=50ms" */
    int pass;           /* 1 met, 0 missed, -1 n/a */
    double cpu_s;       /* daemon, <0 n/a */
    long hwm_kb;
    long acked, found, dups; /* correctness, acked < 0: n/a */
};

void bench_report_init(const struct bench_opts *o);
/* Adds a row; EXTRA (may be NULL) is merged into the row's JSON (stolen). */
void bench_report_row(const struct bench_row *r, json_t *extra);
/* Prints the table and writes the JSON file. Returns 0 when every
 * correctness check held. */
int bench_report_finish(const struct bench_opts *o);

/* ---- history checks (check.c) ---- */

/* Reads the conversations CONVS (NCONV ids) through the REST API and counts
 * how often each message "<PREFIX><i>" (0 <= i < NMSG) appears. Waits up
 * to TIMEOUT_S until every message with ACKED[i] set is there. FOUND counts
 * acknowledged messages present, DUPS extra copies of any message, GAPS
 * seq holes, EVENTS every event read. */
struct bench_check {
    long acked, found, dups, gaps, events;
};
int bench_check_history(const char *base_url, const char *const *convs, size_t nconv,
                        const char *prefix, size_t nmsg, const unsigned char *acked, int timeout_s,
                        struct bench_check *out);

/* ---- message feeds (feed.c): signed deliveries for one channel ---- */

struct bench_feed {
    const char *channel; /* "api" | "whatsapp" */
    char prefix[24];     /* message ids are <prefix><i> */
    char account[40];
    int contacts; /* message i goes to contact i % contacts */
    bool stamp;   /* text carries "t=<bench_now_us()>" set when sent */
    size_t n;
    char **body;
    size_t *len;
    char **sig;           /* the signature header line */
    unsigned char *acked; /* 2xx answers */
    char **conv;          /* per contact, from the acks (api) */
    char **rkey;          /* per contact, the Redis stream the ceiling appends to */
    size_t nacked;
};

/* Prepares N deliveries (built now, or when sent for STAMP). 0 or -1. */
int bench_feed_init(struct bench_feed *f, const char *channel, size_t n, int contacts, bool stamp);
void bench_feed_free(struct bench_feed *f);
/* bench_http_run callbacks; OPAQUE is the feed. */
void bench_feed_gen(void *opaque, size_t i, struct bench_http_req *req);
/* The same payload as an XADD to the contact's Redis stream (BENCH_PROTO_RESP). */
void bench_feed_gen_redis(void *opaque, size_t i, struct bench_http_req *req);
void bench_feed_done(void *opaque, size_t i, long status, const char *body, size_t len,
                     int64_t sent_us, int64_t lat_us);
/* The conversations the feed wrote to (borrowed until free); NULL on error. */
const char *const *bench_feed_convs(struct bench_feed *f, const char *base_url, size_t *n);
/* NCONV conversations made with one message each through WARM (initialized
 * here, freed by the caller), waited for in the store up to WAIT_S seconds;
 * their ids (as bench_feed_convs), or NULL with the reason printed. */
const char *const *bench_feed_warm(struct bench_feed *warm, const char *base_url, int nconv,
                                   int wait_s);

/* ---- scenarios ---- */

int bench_ingest(const struct bench_opts *o, const char *channel);
int bench_normalize(const struct bench_opts *o);
int bench_fanout(const struct bench_opts *o);
int bench_resume(const struct bench_opts *o);
/* REPEAT fresh clients each subscribing to CONV after AFTER; the
 * subscribe-to-last-event latency in H, subscribe-to-first-event in FIRST
 * (may be NULL). Returns the resumes completed without gap or duplicate. */
int bench_resume_ws(const char *url, const char *conv, int64_t after, int repeat,
                    struct bench_hist *h, struct bench_hist *first);
int bench_kafka(const struct bench_opts *o);

/* The resume scenario's ceiling (resume_ceiling.c): a WebSocket server on
 * loopback, on a thread of its own, that answers each subscribe with the K
 * rows of CONV (borrowed) after the subscribe's "after", read from the
 * SQLite file DB or, when DSN is set, from PostgreSQL, framed as the
 * daemon frames events and sent in 64 KiB writes as they are read. Its
 * http://127.0.0.1:port in URL; NULL with ERR. */
struct bench_resume_ceiling;
struct bench_resume_ceiling *bench_resume_ceiling_start(const char *db, const char *dsn,
                                                        const char *conv, int k, char *url,
                                                        size_t urllen, char *err, size_t errlen);
/* Stops it (NULL accepted); the connections it could not serve. */
int bench_resume_ceiling_stop(struct bench_resume_ceiling *c);

/* Ingest -> WebSocket push on one daemon (fanout.c), shared by fanout and
 * kafka. */
struct bench_push_cfg {
    const char *scenario, *variant;
    const char *const *kv; /* daemon config pairs */
    int clients;           /* conversation subscribers */
    int per_conv;          /* subscribers per conversation */
    int agents;            /* "*" subscribers */
    int conversations;     /* when clients == 0 */
    double rate;           /* messages per second, 0: as fast as acknowledged */
    size_t messages;
    int concurrency;
    double p99_target_ms;
    /* out */
    double acked_rate;
    struct bench_hist push;
};
int bench_push_run(const struct bench_opts *o, struct bench_push_cfg *cfg, double ceiling_rate,
                   const char *ceiling_name);
int bench_scale(const struct bench_opts *o);
int bench_desk(const struct bench_opts *o);
/* desk --agents N: inbound -> assigned by the router and SLA breach lateness */
int bench_desk_route(const struct bench_opts *o);
/* Ingest with triage on against off, and the 202 -> enriched delay (triage.c). */
int bench_triage(const struct bench_opts *o);
int bench_kb(const struct bench_opts *o);
/* conn.c: N idle WebSocket connections on one daemon, then pushes. */
int bench_connections(const struct bench_opts *o);
/* kpis.c: GET /v1/reports/kpis over N stored episodes. */
int bench_kpis(const struct bench_opts *o);

/* The source tree (tools/meson.build defines it), for the bench's data. */
#ifndef OH_SOURCE_ROOT
#define OH_SOURCE_ROOT "."
#endif

/* daemon.c: a random run id ("r" + 8 hex), so repeated runs against one daemon never
 * collide. OUT >= 16. */
void bench_run_id(char *out);

/* Agent token of the bench (caller frees). */
char *bench_agent_token(void);

#endif
