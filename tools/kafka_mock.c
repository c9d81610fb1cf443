/* kafka_mock.c - `omnihubctl kafka-mock`: a mock Kafka cluster (librdkafka's,
 * through the log's kafka.mock_brokers) serving until SIGTERM, driven on stdin. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/daemon.h"
#include "kafka_mock.h"
#include "log/log.h"

static volatile sig_atomic_t km_stop;

static void km_on_signal(int sig)
{
    km_stop = sig;
}

static void km_usage(FILE *out)
{
    fprintf(out, "usage: omnihubctl kafka-mock [--brokers N] [--partitions N] [--prefix P]\n"
                 "\n"
                 "Starts librdkafka's mock cluster of N brokers (default 3) on loopback, creates\n"
                 "<prefix>events and <prefix>timeline with N partitions (default 6; prefix\n"
                 "default omnihub.), prints the bootstrap list as the first line of stdout and\n"
                 "serves until SIGTERM or SIGINT. Commands on stdin, one a line, each answered\n"
                 "with one line (\"ok ...\" or \"error ...\"):\n"
                 "  down ID   take broker ID (1..N) down (connections refused)\n"
                 "  up ID     bring broker ID back\n"
                 "  leader TOPIC PARTITION ID\n"
                 "            make broker ID the leader of PARTITION of TOPIC\n"
                 "  rtt ID MS delay each answer of broker ID by MS milliseconds (0: none)\n");
}

/* Answers one stdin command line on stdout. */
static void km_command(oh_log *log, char *line)
{
    line[strcspn(line, "\r\n")] = '\0';
    char verb[16] = "", topic[256] = "";
    int id = 0, part = 0, rc;
    if (!line[0]) return;
    if (sscanf(line, "%15s", verb) != 1) verb[0] = '\0';
    if ((!strcmp(verb, "down") || !strcmp(verb, "up")) && sscanf(line, "%*s %d", &id) == 1) {
        rc = oh_log_kafka_mock_broker(log, id, verb[0] == 'u');
        if (rc)
            printf("error %s %d: %s\n", verb, id, oh_strerror(rc));
        else
            printf("ok %s %d\n", verb, id);
    } else if (!strcmp(verb, "leader") &&
               sscanf(line, "%*s %255s %d %d", topic, &part, &id) == 3) {
        rc = oh_log_kafka_mock_leader(log, topic, part, id);
        if (rc)
            printf("error leader %s %d %d: %s\n", topic, part, id, oh_strerror(rc));
        else
            printf("ok leader %s %d %d\n", topic, part, id);
    } else if (!strcmp(verb, "rtt") && sscanf(line, "%*s %d %d", &id, &part) == 2) {
        rc = oh_log_kafka_mock_rtt(log, id, part);
        if (rc)
            printf("error rtt %d %d: %s\n", id, part, oh_strerror(rc));
        else
            printf("ok rtt %d %d\n", id, part);
    } else {
        printf("error unknown command \"%s\" (down ID | up ID | leader TOPIC PARTITION ID | "
               "rtt ID MS)\n",
               line);
    }
    fflush(stdout);
}

int oh_kafka_mock_cmd(int argc, char **argv)
{
    static const struct option opts[] = {{"brokers", required_argument, NULL, 'b'},
                                         {"partitions", required_argument, NULL, 'p'},
                                         {"prefix", required_argument, NULL, 'x'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *brokers = "3", *parts = "6", *prefix = "omnihub.";
    int opt;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'b':
            brokers = optarg;
            break;
        case 'p':
            parts = optarg;
            break;
        case 'x':
            prefix = optarg;
            break;
        case 'h':
            km_usage(stdout);
            return 0;
        default:
            km_usage(stderr);
            return 2;
        }
    }
    if (optind < argc || atoi(brokers) < 1 || atoi(parts) < 1) {
        km_usage(stderr);
        return 2;
    }
    char err[1024] = "";
    char *const noenv[] = {NULL}; /* OMNIHUB_* variables of the caller do not apply */
    oh_config *cfg = oh_config_load(NULL, oh_config_tables(), noenv, err, sizeof err);
    const char *const kv[] = {"log.backend",
                              "kafka",
                              "kafka.mock_brokers",
                              brokers,
                              "kafka.partitions",
                              parts,
                              "kafka.topic_prefix",
                              prefix,
                              "kafka.replication",
                              "1",
                              NULL};
    for (int i = 0; cfg && kv[i]; i += 2)
        if (oh_config_set(cfg, kv[i], kv[i + 1], err, sizeof err)) {
            fprintf(stderr, "omnihubctl kafka-mock: %s\n", err);
            oh_config_free(cfg);
            return 2;
        }
    oh_log *log = cfg ? oh_log_open(cfg, err, sizeof err) : NULL;
    if (!log) {
        fprintf(stderr, "omnihubctl kafka-mock: %s\n", err);
        oh_config_free(cfg);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = km_on_signal; /* no SA_RESTART: poll() returns on a signal */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("%s\n", oh_log_bootstrap(log));
    fflush(stdout);
    /* read(2), not stdio: poll() must see every line that is not handled yet */
    bool input = true;
    char buf[1024];
    size_t used = 0;
    while (!km_stop) {
        struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
        if (poll(&pfd, input ? 1 : 0, 500) <= 0 || !input) continue;
        ssize_t got = read(STDIN_FILENO, buf + used, sizeof buf - 1 - used);
        if (got <= 0) {
            if (got < 0 && errno == EINTR) continue;
            input = false; /* stdin closed: keep serving until a signal */
            continue;
        }
        used += (size_t)got;
        buf[used] = '\0';
        char *nl, *at = buf;
        while ((nl = strchr(at, '\n'))) {
            *nl = '\0';
            km_command(log, at);
            at = nl + 1;
        }
        used -= (size_t)(at - buf);
        memmove(buf, at, used);
        if (used == sizeof buf - 1) used = 0; /* an endless line: drop it */
    }
    oh_log_close(log);
    oh_config_free(cfg);
    return 0;
}
