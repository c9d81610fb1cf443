/* omnihubctl.c - the command-line companion of omnihubd: normalize provider
 * payloads offline, mint tokens, sign bodies, tail the stream, watch lag,
 * add store shards, measure the triage scorer. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/auth.h"
#include "core/connector.h"
#include "core/crypto.h"
#include "core/daemon.h"
#include "core/http_client.h"
#include "kafka_mock.h"
#include "lag.h"
#include "log/log.h"
#include "scaffold.h"
#include "store/store.h"
#include "triage_eval.h"
#include "kb_eval.h"
#include "kpi.h"

#define CTL_MAX_INPUT (16u << 20)

/* Each command's synopsis (first line) and what it does, for `omnihubctl
 * --help` and `omnihubctl COMMAND --help`. */
static const struct {
    const char *name, *synopsis, *help;
} helps[] = {
    {"normalize", "normalize --channel CH [--account A]",
     "A raw provider payload on stdin (the webhook body of a chat channel, one\n"
     "RFC 5322 message for email) -> the normalized events on stdout, one JSON\n"
     "object a line, without a running daemon. Bad input: one line on stderr,\n"
     "exit 2. CH is a channel below or api:<name>; A the account (default: the\n"
     "one in the payload)."},
    {"token",
     "token --secret S --sub ID [--role customer|agent|admin] [--device D] [--ttl SECONDS]\n"
     "      [--name NAME] [--team T]...",
     "Prints an HS256 bearer token signed with S (the daemon's auth.jwt_secret)\n"
     "for user or agent ID; the role defaults to customer, the lifetime to 3600 s\n"
     "(--ttl: whole seconds, negative for a token already expired). Bad usage:\n"
     "exit 2."},
    {"sign", "sign --secret S",
     "Body on stdin -> sha256=<hex HMAC-SHA256(S, body)>, the X-Omnihub-Signature\n"
     "of POST /v1/inbound (S is api.inbound_secret)."},
    {"tail", "tail [-c FILE] [--timeline] [--from-beginning]",
     "Follows the events topic (or the timeline) of the log FILE configures, one\n"
     "JSON line per event, until interrupted. Never creates a log: a missing one\n"
     "is an error. With kafka.mock_brokers it reads the mock cluster inside the\n"
     "running omnihubd (its bootstrap list from GET /readyz on FILE's listener;\n"
     "OMNIHUB_KAFKA_BROKERS overrides it); no answer: exit 2."},
    {"lag",
     "lag [-c FILE] [--group G]... [--json] [--samples N] [--interval MS]\n"
     "    [--stop-after SECONDS]",
     "Per group and partition: committed offset, log-end offset, lag, time lag\n"
     "(the age of the oldest unconsumed record, seconds) and a status: OK, WARN\n"
     "(the lag grows while committing), STALL (no commit while records wait),\n"
     "STOP (no commit and the oldest unconsumed record waited over SECONDS,\n"
     "default 60, also for a group that never committed). N samples (default\n"
     "3), MS apart (default 1000). Never creates a log; reads a\n"
     "kafka.mock_brokers cluster inside the running omnihubd, as tail does.\n"
     "Exit status, for cron and Nagios-style checks: 0 OK, 1 WARN, 2 STALL or\n"
     "STOP, 3 error (usage, unreadable log)."},
    {"kpi",
     "kpi [--from RFC3339] [--to RFC3339] [--group-by agent|team|channel|none]\n"
     "    [--url URL] [--token T] [--json]",
     "Asks the daemon at URL (default http://127.0.0.1:8080) for GET\n"
     "/v1/reports/kpis with token T (default $OMNIHUB_TOKEN; an agent sees their\n"
     "own episodes, an admin everyone's) and prints the rows as a table: episodes\n"
     "resolved in [from, to), FRT average, p50 and p90, NRT, handle and\n"
     "resolution averages (seconds), SLA-met ratio, bot involvement. Exit 0, 1\n"
     "when the daemon refused, 2 on usage errors or no answer."},
    {"shard", "shard add NAME DSN [-c FILE] | shard list [-c FILE]",
     "add: makes the PostgreSQL database at DSN a shard of the store FILE\n"
     "configures (store.backend=postgres), while the daemons run: applies the\n"
     "migrations to it, marks it as shard NAME ([a-z0-9_-], at most 31) and records\n"
     "it on shard 0. Every process reads the shard list within a second and places\n"
     "new conversations on it too after 5 s; existing conversations stay where\n"
     "they are. Repeating it with the same NAME and DSN does nothing.\n"
     "list: one line per shard: index, name, ring position or \"added\", and\n"
     "whether it takes new conversations.\n"
     "Exit status: 0 done, 1 refused or failed, 2 usage."},
    {"kafka-mock", "kafka-mock [--brokers N] [--partitions N]",
     "Hosts librdkafka's in-process mock cluster and prints its bootstrap list\n"
     "(for tests and trials without a Kafka cluster)."},
    {"new-connector", "new-connector NAME [--root DIR]",
     "In omnihub's source tree (DIR, default .): connectors/NAME/ with its vtable\n"
     "and key table, a fixture in tests/data/NAME/, tests/unit/test_NAME.c and the\n"
     "registration lines, from tools/templates/connector/. NAME matches\n"
     "[a-z][a-z0-9_]{1,30} and is not taken; nothing is written if a file exists.\n"
     "Exit status: 0 created, 1 failed, 2 usage, bad or taken name."},
    {"triage-eval", "triage-eval [--misses] [--bench] FILE.tsv",
     "Scores every message of FILE.tsv (columns: text, frustrated 0/1, priority\n"
     "urgent|high|normal|low, wants_human 0/1, language; tab-separated, \"\\n\" in\n"
     "the text for a newline; a header line is skipped) with the triage scorer\n"
     "and prints precision, recall and F1 per label, the priority macro-F1, the\n"
     "language accuracy and the priority confusion matrix. --misses lists each\n"
     "wrongly scored message first; --bench adds the median CPU time per message.\n"
     "Exit status: 0 scored, 1 unreadable or malformed file, 2 usage."},
    {"triage", "triage [--subject S]",
     "One message text on stdin (and the email subject S) -> the triage result as\n"
     "JSON: {frustrated, sentiment, priority, wants_human, language}."},
    {"kb-eval", "kb-eval [--articles FILE.json] [--misses] [--bench N] QUERIES.tsv",
     "Ranks the articles of FILE.json (default: helpcenter.json beside QUERIES.tsv,\n"
     "else data/kb/helpcenter.json; a JSON array of {id, title, body, locale?,\n"
     "tags?}) for every query of QUERIES.tsv (columns: query, relevant article ids\n"
     "comma-separated or \"-\" when the help center has no answer; tab-separated;\n"
     "a header line is skipped) and prints Recall@1, Recall@3 and MRR over the\n"
     "answerable queries, the share of them whose confidence reaches the answer\n"
     "threshold, and the share of the unanswerable ones below it. --misses lists\n"
     "each wrong first hit or confidence first; --bench N adds the index build and\n"
     "query CPU times with N articles (the file's plus synthetic ones).\n"
     "Exit status: 0 measured, 1 unreadable or malformed file, 2 usage."},
    {"kb-search", "kb-search [--articles FILE.json] [--limit N] [--locale LANG] QUESTION",
     "The articles of FILE.json (default data/kb/helpcenter.json) ranked for\n"
     "QUESTION, as JSON: {language, confidence, answer, results: [{id, title,\n"
     "score, snippet}]}; answer is whether the confidence reaches the bot's threshold."},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: omnihubctl COMMAND [options]   (omnihubctl COMMAND --help for more)\n\n");
    for (size_t i = 0; i < OH_ARRAY_SIZE(helps); i++)
        fprintf(out, "  %s\n", helps[i].synopsis);
    fprintf(out, "\nChannels for normalize:");
    for (const struct oh_connector *const *c = oh_connectors; *c; c++)
        if ((*c)->normalize) fprintf(out, " %s", (*c)->name);
    fprintf(out, "\n");
}

/* `omnihubctl CMD --help`: true when ARGV asks for it (and it was printed). */
static bool command_help(const char *cmd, int argc, char **argv)
{
    bool asked = false;
    for (int i = 1; i < argc; i++)
        asked |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
    if (!asked) return false;
    for (size_t i = 0; i < OH_ARRAY_SIZE(helps); i++)
        if (!strcmp(helps[i].name, cmd)) {
            printf("usage: omnihubctl %s\n\n%s\n", helps[i].synopsis, helps[i].help);
            return true;
        }
    return false;
}

static char *read_stdin(size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) return NULL;
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
        if (n == cap) {
            if (cap >= CTL_MAX_INPUT) {
                free(buf);
                errno = EFBIG;
                return NULL;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int cmd_normalize(int argc, char **argv)
{
    static const struct option opts[] = {{"channel", required_argument, NULL, 'C'},
                                         {"account", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    const char *channel = NULL, *account = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'C')
            channel = optarg;
        else if (opt == 'a')
            account = optarg;
        else
            return 2;
    }
    if (!channel) {
        fprintf(stderr, "omnihubctl normalize: --channel is required\n");
        return 2;
    }
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(channel, ":"), channel);
    const struct oh_connector *c = oh_connector_find(name);
    if (!c || !c->normalize) {
        fprintf(stderr, "omnihubctl normalize: unknown channel \"%s\"\n", channel);
        return 2;
    }
    size_t len;
    char *body = read_stdin(&len);
    if (!body) {
        fprintf(stderr, "omnihubctl normalize: cannot read stdin (over %u bytes?)\n", CTL_MAX_INPUT);
        return 2;
    }
    struct oh_event_list out = {0};
    struct oh_norm_ctx nc = {account, oh_now_ms()};
    char err[512] = "";
    int rc = c->normalize(&nc, (const uint8_t *)body, len, &out, err, sizeof err);
    free(body);
    if (rc) {
        fprintf(stderr, "omnihubctl normalize: %s\n", err[0] ? err : oh_strerror(rc));
        oh_event_list_clear(&out);
        return 2;
    }
    for (size_t i = 0; i < out.n; i++) {
        char *s = json_dumps(out.ev[i], JSON_COMPACT);
        if (s) puts(s);
        free(s);
    }
    oh_event_list_clear(&out);
    return 0;
}

static int cmd_token(int argc, char **argv)
{
    static const struct option opts[] = {
        {"secret", required_argument, NULL, 's'}, {"sub", required_argument, NULL, 'u'},
        {"role", required_argument, NULL, 'r'},   {"device", required_argument, NULL, 'd'},
        {"ttl", required_argument, NULL, 't'},    {"name", required_argument, NULL, 'n'},
        {"team", required_argument, NULL, 'T'},   {NULL, 0, NULL, 0}};
    const char *secret = NULL, *sub = NULL, *role = "customer", *device = NULL, *name = NULL;
    const char *teams[OH_AUTH_TEAMS_MAX];
    int nteams = 0;
    long ttl = 3600;
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 's': secret = optarg; break;
        case 'u': sub = optarg; break;
        case 'r': role = optarg; break;
        case 'd': device = optarg; break;
        case 't': {
            /* a typo must not mint a token that is expired on arrival; the
             * bound (100 years either way) keeps now + ttl from overflowing */
            char *end;
            errno = 0;
            ttl = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || ttl > 3155760000L || ttl < -3155760000L) {
                fprintf(stderr, "omnihubctl token: --ttl must be a whole number of seconds "
                                "(at most 100 years)\n");
                return 2;
            }
            break;
        }
        case 'n': name = optarg; break;
        case 'T':
            if (nteams == OH_AUTH_TEAMS_MAX) {
                fprintf(stderr, "omnihubctl token: at most %d --team\n", OH_AUTH_TEAMS_MAX);
                return 2;
            }
            teams[nteams++] = optarg;
            break;
        default: return 2;
        }
    }
    if (!secret || !*secret || !sub || !*sub) {
        fprintf(stderr, "omnihubctl token: --secret and --sub are required\n");
        return 2;
    }
    if (strcmp(role, "customer") && strcmp(role, "agent") && strcmp(role, "admin")) {
        fprintf(stderr, "omnihubctl token: --role must be customer, agent or admin\n");
        return 2;
    }
    char *tok = oh_auth_issue_claims(secret, sub, role, device, ttl, name, teams, nteams);
    if (!tok) {
        fprintf(stderr, "omnihubctl token: cannot issue a token\n");
        return 1;
    }
    puts(tok);
    free(tok);
    return 0;
}

static int cmd_sign(int argc, char **argv)
{
    static const struct option opts[] = {{"secret", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    const char *secret = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 's')
            secret = optarg;
        else
            return 2;
    }
    if (!secret || !*secret) {
        fprintf(stderr, "omnihubctl sign: --secret is required\n");
        return 2;
    }
    size_t len;
    char *body = read_stdin(&len);
    if (!body) {
        fprintf(stderr, "omnihubctl sign: cannot read stdin\n");
        return 2;
    }
    char sig[72];
    oh_sig_make_hex(secret, body, len, sig);
    puts(sig);
    free(body);
    return 0;
}

/* The daemon's configuration, for reading its log: never creates one. */
static oh_config *load(const char *path)
{
    char err[1024];
    oh_config *cfg = oh_config_load(path, oh_config_tables(), NULL, err, sizeof err);
    if (!cfg)
        fprintf(stderr, "%s\n", err);
    else
        oh_config_set(cfg, "log.local.create", "false", err, sizeof err);
    return cfg;
}

/* kafka.mock_brokers: the mock cluster lives inside omnihubd and dies with
 * it, so a cluster of our own would be a new, empty one. CFG is pointed at
 * the daemon's instead: OMNIHUB_KAFKA_BROKERS when given, else the bootstrap
 * list the daemon of CFG (http.admin_listen, else http.listen) reports in GET
 * /readyz. Nothing to do for other logs. Fails with a reason in ERR. */
static int use_daemons_cluster(oh_config *cfg, char *err, size_t errlen)
{
    const char *backend = oh_config_str(cfg, "log.backend");
    if (!backend || strcmp(backend, "kafka") || oh_config_int(cfg, "kafka.mock_brokers") <= 0)
        return OH_OK;
    char where[256], host[256], url[300], why[256] = "";
    oh_config_where(cfg, "kafka.brokers", where, sizeof where);
    if (!strncmp(where, "environment ", 12))
        return oh_config_set(cfg, "kafka.mock_brokers", "0", err, errlen);
    const char *admin = oh_config_str(cfg, "http.admin_listen");
    const char *key = admin && *admin ? "http.admin_listen" : "http.listen";
    int port;
    if (oh_config_hostport(cfg, key, host, sizeof host, &port, err, errlen)) return OH_EINVAL;
    const char *to = host; /* a wildcard listener answers on loopback */
    if (!host[0] || !strcmp(host, "0.0.0.0"))
        to = "127.0.0.1";
    else if (!strcmp(host, "::") || !strcmp(host, "[::]"))
        to = "[::1]";
    bool v6 = strchr(to, ':') && to[0] != '[';
    snprintf(url, sizeof url, "http://%s%s%s:%d/readyz", v6 ? "[" : "", to, v6 ? "]" : "", port);
    struct oh_http_request req = {
        .method = "GET", .url = url, .timeout_ms = 3000, .max_response = 65536};
    struct oh_http_response resp = {0};
    json_t *ready = NULL;
    const char *boot = NULL;
    if (oh_http_do(&req, &resp, why, sizeof why) == OH_OK) {
        ready = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL);
        json_t *log = json_object_get(ready, "log");
        const char *kind = json_string_value(json_object_get(log, "backend"));
        boot = json_string_value(json_object_get(log, "bootstrap"));
        if (!boot || !*boot || !kind || strcmp(kind, "kafka")) {
            snprintf(why, sizeof why, "HTTP %ld without a Kafka bootstrap list", resp.status);
            boot = NULL;
        }
    }
    int rc = boot ? oh_config_set(cfg, "kafka.brokers", boot, err, errlen) : OH_EIO;
    if (rc == OH_OK) rc = oh_config_set(cfg, "kafka.mock_brokers", "0", err, errlen);
    if (!boot)
        oh_errf(err, errlen,
                "kafka.mock_brokers: the mock cluster lives inside omnihubd, and GET %s did not "
                "give its bootstrap list (%s); start omnihubd, or set OMNIHUB_KAFKA_BROKERS to "
                "the bootstrap list of the cluster to read",
                url, why);
    json_decref(ready);
    oh_http_response_free(&resp);
    return rc;
}

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    stop = sig;
}

static int cmd_tail(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"timeline", no_argument, NULL, 't'},
                                         {"from-beginning", no_argument, NULL, 'b'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    bool timeline = false, beginning = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': timeline = true; break;
        case 'b': beginning = true; break;
        default: return 2;
        }
    }
    oh_config *cfg = load(path);
    if (!cfg) return 2;
    char err[768] = "";
    if (use_daemons_cluster(cfg, err, sizeof err)) {
        fprintf(stderr, "omnihubctl tail: %s\n", err);
        oh_config_free(cfg);
        return 2;
    }
    oh_log *log = oh_log_open(cfg, err, sizeof err);
    oh_log_consumer *c =
        log ? oh_log_consumer_new(log, NULL, timeline ? OH_TOPIC_TIMELINE : OH_TOPIC_EVENTS, NULL,
                                  err, sizeof err)
            : NULL;
    if (!c || (!beginning && oh_log_seek_end(c))) {
        fprintf(stderr, "omnihubctl tail: %s\n", err[0] ? err : "cannot read the log");
        oh_log_consumer_close(c);
        oh_log_close(log);
        oh_config_free(cfg);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, on_signal);
    struct oh_log_record recs[256];
    while (!stop) {
        int n = oh_log_poll(c, recs, 256, 500);
        for (int i = 0; i < n && !stop; i++) {
            fwrite(recs[i].value, 1, recs[i].len, stdout);
            fputc('\n', stdout);
        }
        if (n > 0 && fflush(stdout) != 0) break;
    }
    oh_log_consumer_close(c);
    oh_log_close(log);
    oh_config_free(cfg);
    return 0;
}

static int print_shard(void *opaque, const struct oh_store_shard *sh)
{
    (void)opaque;
    char ring[16] = "added";
    if (sh->ring >= 0) snprintf(ring, sizeof ring, "ring %d", sh->ring);
    printf("%d\t%s\t%s\t%s\n", sh->index, sh->name, ring, sh->placing ? "placing" : "waiting");
    return 0;
}

static int cmd_shard(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (opt != 'c') return 2;
        path = optarg;
    }
    bool add = optind < argc && !strcmp(argv[optind], "add");
    bool list = optind < argc && !strcmp(argv[optind], "list");
    if ((add && argc - optind != 3) || (list && argc - optind != 1) || (!add && !list)) {
        fprintf(stderr, "usage: omnihubctl shard add NAME DSN [-c FILE] | shard list [-c FILE]\n");
        return 2;
    }
    oh_config *cfg = load(path);
    if (!cfg) return 2;
    char err[1024] = "";
    int rc = 1;
    oh_store *st = oh_store_open(cfg, err, sizeof err);
    if (!st)
        fprintf(stderr, "omnihubctl shard: %s\n", err);
    else if (add && oh_store_shard_add(st, argv[optind + 1], argv[optind + 2], err, sizeof err))
        fprintf(stderr, "omnihubctl shard add: %s\n", err);
    else if (list && oh_store_shards(st, print_shard, NULL))
        fprintf(stderr, "omnihubctl shard list: the store has no shards or cannot be read\n");
    else
        rc = 0;
    if (rc == 0 && add) printf("shard %s added\n", argv[optind + 1]);
    oh_store_close(st);
    oh_config_free(cfg);
    return rc;
}

static int cmd_lag(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"group", required_argument, NULL, 'g'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"samples", required_argument, NULL, 's'},
                                         {"interval", required_argument, NULL, 'i'},
                                         {"stop-after", required_argument, NULL, 'S'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL, *groups[16];
    struct oh_lag_opts o = {.groups = groups, .samples = 3, .interval_ms = 1000};
    int stop_after = OH_LAG_STOP_AFTER_MS / 1000;
    int opt;
    /* exit codes of a monitoring check: 0 OK, 1 WARN, 2 STALL/STOP, 3 error */
    enum { EXIT_ERROR = 3 };
    while ((opt = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 'g':
            if (o.ngroups < 16) groups[o.ngroups++] = optarg;
            break;
        case 'j': o.json = true; break;
        case 's': o.samples = atoi(optarg); break;
        case 'i': o.interval_ms = atoi(optarg); break;
        case 'S': stop_after = atoi(optarg); break;
        default: return EXIT_ERROR;
        }
    }
    if (o.samples < 1 || o.interval_ms < 0 || stop_after < 1 || stop_after > 86400) {
        fprintf(stderr, "omnihubctl lag: --samples must be >= 1, --interval >= 0 and "
                        "--stop-after 1..86400\n");
        return EXIT_ERROR;
    }
    o.stop_after_ms = (int64_t)stop_after * 1000;
    oh_config *cfg = load(path);
    if (!cfg) return EXIT_ERROR;
    char err[768] = "";
    oh_log *log =
        use_daemons_cluster(cfg, err, sizeof err) ? NULL : oh_log_open(cfg, err, sizeof err);
    enum oh_lag_status worst = OH_LAG_OK;
    int rc = EXIT_ERROR;
    if (!log)
        fprintf(stderr, "omnihubctl lag: %s\n", err);
    else if (oh_lag_cmd(log, &o, stdout, &worst) == 0)
        rc = worst == OH_LAG_OK ? 0 : worst == OH_LAG_WARN ? 1 : 2;
    else
        fprintf(stderr, "omnihubctl lag: cannot read the log\n");
    oh_log_close(log);
    oh_config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("omnihubctl %s\n", OH_VERSION);
        return 0;
    }
    oh_slog_set_level(OH_LVL_WARN);
    const char *cmd = argv[1];
    argv[1] = argv[0];
    argc--;
    argv++;
    if (command_help(cmd, argc, argv)) return 0;
    if (!strcmp(cmd, "normalize")) return cmd_normalize(argc, argv);
    if (!strcmp(cmd, "token")) return cmd_token(argc, argv);
    if (!strcmp(cmd, "sign")) return cmd_sign(argc, argv);
    if (!strcmp(cmd, "tail")) return cmd_tail(argc, argv);
    if (!strcmp(cmd, "lag")) return cmd_lag(argc, argv);
    if (!strcmp(cmd, "shard")) return cmd_shard(argc, argv);
    if (!strcmp(cmd, "kpi")) return oh_kpi_cmd(argc, argv);
    if (!strcmp(cmd, "kafka-mock")) return oh_kafka_mock_cmd(argc, argv);
    if (!strcmp(cmd, "new-connector")) return oh_scaffold_cmd(argc, argv);
    if (!strcmp(cmd, "triage-eval")) return oh_triage_eval_cmd(argc, argv);
    if (!strcmp(cmd, "kb-eval")) return oh_kb_eval_cmd(argc, argv);
    if (!strcmp(cmd, "kb-search")) return oh_kb_search_cmd(argc, argv);
    if (!strcmp(cmd, "triage")) return oh_triage_cmd(argc, argv);
    fprintf(stderr, "omnihubctl: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
