/* main.c - omnihub-bench: runs benchmark scenarios against an omnihubd it
 * starts itself (or one given by URL), next to this machine's ceiling. */
#include <curl/curl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"
#include "core/oh.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: omnihub-bench SCENARIO [options]\n"
            "\n"
            "scenarios:\n"
            "  ingest      signed deliveries (--channel api|whatsapp) vs nginx answering 200\n"
            "              and Redis XADD with appendfsync always, --rounds alternating (3)\n"
            "  normalize   parser throughput per channel vs jansson parse + dump\n"
            "  fanout      N WebSocket clients, push latency at a fixed message rate\n"
            "  resume      K missed events over WebSocket vs the same rows read from the\n"
            "              store and sent over loopback, --rounds alternating (3)\n"
            "  kafka       ingest -> WebSocket push, Kafka (mock cluster) and embedded\n"
            "  scale       a large store vs an empty one: history, resume, ingest\n"
            "  desk        the inbox list (filters, q) and claims on a large PostgreSQL\n"
            "              store vs an empty one (--conversations, --events, --pg-dsn)\n"
            "  triage      ingest with triage on vs off (--messages, default 10000), and\n"
            "              the delay 202 -> enriched event at --rate for --seconds\n"
            "  kb          knowledge-base search over N articles (--conversations N,\n"
            "              default 10000), suggestions without an LLM, bot answer latency\n"
            "  kpis        GET /v1/reports/kpis over --episodes N stored episodes\n"
            "              (1000000; SQLite, or PostgreSQL with --pg-dsn), --repeat each\n"
            "  connections --connections N idle WebSocket connections (100000) on one\n"
            "              omnihubd from --sources S loopback addresses, subscribed to\n"
            "              --conversations C (10000); then --rate R msg/s for --seconds:\n"
            "              accept time, daemon RSS per connection, push latency\n"
            "  standard    the standard set (tools/dev bench; under five minutes)\n"
            "\n"
            "options:\n"
            "  --daemon PATH         omnihubd to start (default: next to this binary)\n"
            "  --url URL             use a running omnihubd (started with the bench's\n"
            "                        secrets; see docs/performance.md) instead\n"
            "  --json FILE           write the JSON report\n"
            "  --channel CH          ingest: api (default) or whatsapp\n"
            "  --messages N          ingest / kafka: deliveries (20000)\n"
            "  --rounds N            ingest, resume: alternating rounds (3)\n"
            "  --concurrency N       HTTP connections (32)\n"
            "  --clients N           fanout: WebSocket clients (10000)\n"
            "  --per-conv N          fanout: subscribers per conversation (1)\n"
            "  --rate N              fanout, triage: messages per second (1000)\n"
            "  --seconds N           fanout, triage: measured seconds (10)\n"
            "  --events N            resume: missed events (1000); scale: events in the store\n"
            "  --repeat N            resume: repetitions per side and round (50)\n"
            "  --conversation ID     resume --url: resume ID (holding --events events), no feed\n"
            "  --connections N       connections: WebSocket connections (100000)\n"
            "  --sources S           connections: source addresses 127.0.0.2.. (N / 20000)\n"
            "  --conversations N     scale: conversations in the store\n"
            "  --episodes N          kpis: finished episodes in the store (1000000)\n"
            "  --store S             scale: sqlite (default) or postgres (a throwaway\n"
            "                        PostgreSQL 15 the driver starts, see docs/performance.md)\n"
            "  --pg-dsn DSN          scale: use this PostgreSQL server instead (a role\n"
            "                        allowed to create databases; implies --store postgres)\n"
            "  --preload M           scale: materialize (the store's write path) or bulk\n"
            "                        (COPY, postgres only; the default there)\n"
            "  --pg-cluster          scale: CLUSTER history USING history_pkey after the\n"
            "                        preload (an operator's maintenance; postgres only)\n"
            "  --settle SECONDS      scale: leave the stores idle that long before measuring\n"
            "  --no-ceiling          skip the reference measurements\n"
            "  --agents N            desk: N agents online; measures inbound -> assigned by\n"
            "                        the router and SLA breach lateness at --rate for\n"
            "                        --seconds (instead of the inbox scenario)\n");
}

static void default_daemon(struct bench_opts *o, const char *argv0)
{
    static char path[PATH_MAX];
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        snprintf(self, sizeof self, "%s", argv0);
    else
        self[n] = '\0';
    snprintf(path, sizeof path, "%s/../broker/omnihubd", dirname(self));
    o->daemon_bin = path;
}

static int standard(struct bench_opts *o)
{
    /* sized so that the whole set stays under five minutes on 2 cores */
    int bad = 0;
    struct bench_opts s = *o;
    s.messages = o->messages > 0 ? o->messages : 20000;
    bad |= bench_ingest(&s, "api");
    bad |= bench_ingest(&s, "whatsapp");
    bad |= bench_normalize(&s);
    s.events = o->events > 0 ? o->events : 1000;
    bad |= bench_resume(&s);
    bad |= bench_fanout(&s);
    s.messages = o->messages > 0 ? o->messages : 10000;
    bad |= bench_kafka(&s);
    s.conversations = o->conversations > 0 ? o->conversations : 20000;
    s.scale_events = o->scale_events > 0 ? o->scale_events : 200000;
    bad |= bench_scale(&s);
    return bad;
}

int main(int argc, char **argv)
{
    struct bench_opts o = {.data_root = OH_SOURCE_ROOT "/tests/data",
                           .channel = "api",
                           .concurrency = 32,
                           .clients = 10000,
                           .per_conv = 1,
                           .rate = 1000,
                           .seconds = 10,
                           .repeat = 50,
                           .normalize_s = 1.0};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *scenario = argv[1];
    default_daemon(&o, argv[0]);
    static const struct option opts[] = {{"daemon", required_argument, NULL, 'd'},
                                         {"url", required_argument, NULL, 'u'},
                                         {"json", required_argument, NULL, 'j'},
                                         {"channel", required_argument, NULL, 'C'},
                                         {"messages", required_argument, NULL, 'm'},
                                         {"concurrency", required_argument, NULL, 'c'},
                                         {"clients", required_argument, NULL, 'n'},
                                         {"per-conv", required_argument, NULL, 'p'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"seconds", required_argument, NULL, 's'},
                                         {"events", required_argument, NULL, 'e'},
                                         {"repeat", required_argument, NULL, 'R'},
                                         {"conversations", required_argument, NULL, 'v'},
                                         {"data", required_argument, NULL, 'D'},
                                         {"episodes", required_argument, NULL, 'E'},
                                         {"store", required_argument, NULL, 'S'},
                                         {"pg-dsn", required_argument, NULL, 'P'},
                                         {"preload", required_argument, NULL, 'L'},
                                         {"pg-cluster", no_argument, NULL, 'K'},
                                         {"settle", required_argument, NULL, 'T'},
                                         {"no-ceiling", no_argument, NULL, 'N'},
                                         {"agents", required_argument, NULL, 'A'},
                                         {"connections", required_argument, NULL, 'X'},
                                         {"sources", required_argument, NULL, 'Y'},
                                         {"rounds", required_argument, NULL, 'O'},
                                         {"conversation", required_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'd': o.daemon_bin = optarg; break;
        case 'u': o.url = optarg; break;
        case 'j': o.json_path = optarg; break;
        case 'C': o.channel = optarg; break;
        case 'm': o.messages = atol(optarg); break;
        case 'c': o.concurrency = atoi(optarg); break;
        case 'n': o.clients = atoi(optarg); break;
        case 'p': o.per_conv = atoi(optarg); break;
        case 'r': o.rate = atoi(optarg); break;
        case 's': o.seconds = atoi(optarg); break;
        case 'e':
            o.events = atoi(optarg);
            o.scale_events = atol(optarg);
            break;
        case 'R': o.repeat = atoi(optarg); break;
        case 'v': o.conversations = atol(optarg); break;
        case 'D': o.data_root = optarg; break;
        case 'E': o.episodes = atol(optarg); break;
        case 'S': o.store = optarg; break;
        case 'P': o.pg_dsn = optarg; break;
        case 'L': o.preload = optarg; break;
        case 'K': o.pg_cluster = true; break;
        case 'T': o.settle = atoi(optarg); break;
        case 'N': o.no_ceiling = true; break;
        case 'A': o.agents = atoi(optarg); break;
        case 'X': o.connections = atoi(optarg); break;
        case 'Y': o.sources = atoi(optarg); break;
        case 'O': o.rounds = atoi(optarg); break;
        case 'V': o.conversation = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (o.concurrency < 1 || o.clients < 1 || o.per_conv < 1 || o.rate < 1 || o.seconds < 1) {
        fprintf(stderr, "omnihub-bench: counts must be positive\n");
        return 2;
    }
    if (!o.url && access(o.daemon_bin, X_OK) != 0) {
        fprintf(stderr, "omnihub-bench: %s is not executable (build first, or --daemon)\n",
                o.daemon_bin);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    bench_raise_nofile(); /* before any daemon is spawned: it inherits the limit */
    curl_global_init(CURL_GLOBAL_ALL);
    oh_slog_set_level(OH_LVL_ERROR); /* fixture payloads make connectors warn */
    bench_report_init(&o);
    int bad;
    if (strcmp(scenario, "ingest") == 0)
        bad = bench_ingest(&o, o.channel);
    else if (strcmp(scenario, "normalize") == 0)
        bad = bench_normalize(&o);
    else if (strcmp(scenario, "fanout") == 0)
        bad = bench_fanout(&o);
    else if (strcmp(scenario, "resume") == 0)
        bad = bench_resume(&o);
    else if (strcmp(scenario, "kafka") == 0)
        bad = bench_kafka(&o);
    else if (strcmp(scenario, "scale") == 0)
        bad = bench_scale(&o);
    else if (strcmp(scenario, "desk") == 0)
        bad = o.agents > 0 ? bench_desk_route(&o) : bench_desk(&o);
    else if (strcmp(scenario, "triage") == 0)
        bad = bench_triage(&o);
    else if (strcmp(scenario, "kb") == 0)
        bad = bench_kb(&o);
    else if (strcmp(scenario, "kpis") == 0)
        bad = bench_kpis(&o);
    else if (strcmp(scenario, "connections") == 0)
        bad = bench_connections(&o);
    else if (strcmp(scenario, "standard") == 0)
        bad = standard(&o);
    else {
        fprintf(stderr, "omnihub-bench: unknown scenario \"%s\"\n", scenario);
        usage(stderr);
        return 2;
    }
    bad |= bench_report_finish(&o);
    curl_global_cleanup();
    return bad ? 1 : 0;
}
