/* kafka.c - the kafka scenario: ingest -> timeline -> WebSocket push with
 * log.backend=kafka on librdkafka's mock cluster (3 brokers), side by side
 * with the embedded log in the same run; acknowledged messages per second
 * and push latency, as fast as acknowledgements allow. */
#include <stdio.h>
#include <string.h>
#include "bench.h"

int bench_kafka(const struct bench_opts *o)
{
    size_t n = o->messages > 0 ? (size_t)o->messages : 10000;
    struct bench_push_cfg emb = {.scenario = "kafka",
                                 .variant = "embedded",
                                 .kv = NULL,
                                 .clients = 100,
                                 .per_conv = 1,
                                 .agents = 1,
                                 .rate = 0,
                                 .messages = n,
                                 .concurrency = o->concurrency};
    int bad = bench_push_run(o, &emb, -1, NULL);
    if (o->url) /* a given daemon runs one backend: measured once above */
        return bad;
    const char *kv[] = {"log.backend", "kafka", "kafka.mock_brokers", "3", NULL};
    struct bench_push_cfg kf = emb;
    kf.variant = "kafka-mock3";
    kf.kv = kv;
    bad |=
        bench_push_run(o, &kf, emb.acked_rate, "embedded log, same run (ratio = kafka/embedded)");
    return bad;
}
