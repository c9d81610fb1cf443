/* kpi_api.c - GET /v1/reports/kpis: FRT, NRT, handle and resolution times,
 * SLA-met ratio and bot involvement over the episodes resolved in [from,
 * to), grouped by agent, team, channel or not at all, from the rows the kpi
 * service keeps in the store. An agent sees the figures of their own
 * episodes, an admin everyone's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/event.h"
#include "gateway/gateway_int.h"

#define KPI_TO_MAX 253402300800000LL /* 10000-01-01: no upper bound given */

struct kpi_req {
    struct oh_store_kpi_query q;
    char group_by[16];
    char agent[128];
    json_t *rows;
};

static void kpi_free(void *state)
{
    struct kpi_req *k = state;
    json_decref(k->rows);
    free(k);
}

static json_t *ratio(int64_t sum, int64_t n, double scale)
{
    return n > 0 ? json_real((double)sum / (double)n / scale) : json_null();
}

static int kpi_row(void *opaque, const struct oh_store_kpi_row *w)
{
    json_t *rows = opaque;
    json_t *o = json_pack(
        "{s:o, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I}", "key",
        w->key_null ? json_null() : json_string(w->key), "episodes_resolved",
        (json_int_t)w->episodes, "frt_avg_s", ratio(w->frt_sum_ms, w->frt_n, 1000.0), "frt_p50_s",
        w->frt_p50_ms >= 0 ? json_real((double)w->frt_p50_ms / 1000.0) : json_null(), "frt_p90_s",
        w->frt_p90_ms >= 0 ? json_real((double)w->frt_p90_ms / 1000.0) : json_null(), "nrt_avg_s",
        ratio(w->nrt_sum_ms, w->nrt_n, 1000.0), "aht_avg_s", ratio(w->aht_sum_ms, w->aht_n, 1000.0),
        "resolution_avg_s", ratio(w->resolution_sum_ms, w->episodes, 1000.0), "sla_met_ratio",
        ratio(w->sla_met, w->episodes, 1.0), "bot_involved", (json_int_t)w->bot_involved,
        "bot_resolved", (json_int_t)w->bot_resolved);
    return o && json_array_append_new(rows, o) == 0 ? 0 : OH_ENOMEM;
}

/* on a worker */
static void kpi_work(void *opaque)
{
    struct req *r = opaque;
    struct kpi_req *k = r->state;
    int rc = oh_store_kpi_report(r->gw->hub->store, &k->q, kpi_row, k->rows);
    if (rc) {
        gw_reply_store_error(r, rc);
    } else {
        gw_reply_json(r, 200, json_pack("{s:O}", "rows", k->rows));
    }
    gw_complete(r);
}

/* The query's parameters: each known, given once, valid; false after
 * answering 400. */
static bool kpi_params(struct req *r, struct kpi_req *k)
{
    static const char *const known[] = {"from", "to", "group_by", "access_token"};
    if (!gw_query_once(r, known, OH_ARRAY_SIZE(known), true)) return false;
    char v[64];
    k->q.from_ms = 0;
    k->q.to_ms = KPI_TO_MAX;
    if (gw_query_has(r, "from") &&
        (!gw_query(r, "from", v, sizeof v) || oh_time_parse(v, &k->q.from_ms))) {
        gw_reply_error(r, 400, "bad_request", "from must be an RFC 3339 time");
        return false;
    }
    if (gw_query_has(r, "to") &&
        (!gw_query(r, "to", v, sizeof v) || oh_time_parse(v, &k->q.to_ms))) {
        gw_reply_error(r, 400, "bad_request", "to must be an RFC 3339 time");
        return false;
    }
    if (k->q.from_ms >= k->q.to_ms) {
        gw_reply_error(r, 400, "bad_request", "from must be before to");
        return false;
    }
    snprintf(k->group_by, sizeof k->group_by, "none");
    if (gw_query_has(r, "group_by")) {
        if (!gw_query(r, "group_by", v, sizeof v) || (strcmp(v, "agent") && strcmp(v, "team") &&
                                                      strcmp(v, "channel") && strcmp(v, "none"))) {
            gw_reply_error(r, 400, "bad_request", "group_by must be agent, team, channel or none");
            return false;
        }
        snprintf(k->group_by, sizeof k->group_by, "%s", v);
    }
    k->q.group_by = k->group_by;
    return true;
}

bool gw_kpi_route(struct req *r)
{
    if (strcmp(r->path, "/v1/reports/kpis") != 0) return false;
    snprintf(r->route, sizeof r->route, "/v1/reports/kpis");
    if (!gw_authenticate(r)) return true;
    if (!oh_auth_is_agent(&r->who)) {
        gw_reply_error(r, 403, "forbidden", "reports are for agents and admins");
        return true;
    }
    if (strcmp(r->method, "GET") != 0) {
        gw_reply_error(r, 405, "method_not_allowed", "use GET");
        return true;
    }
    struct kpi_req *k = gw_state_new(r, sizeof *k, kpi_free);
    if (!k) return true;
    if (!(k->rows = json_array())) {
        gw_reply_error(r, 500, "internal", "out of memory");
        return true;
    }
    if (!kpi_params(r, k)) return true;
    /* an agent's own episodes; an admin's, everyone's */
    if (r->who.role != OH_ROLE_ADMIN) {
        snprintf(k->agent, sizeof k->agent, "%s", r->who.sub);
        k->q.agent = k->agent;
    }
    k->q.reopen_window_ms = oh_config_int(r->gw->hub->cfg, "bot.reopen_window_s") * 1000;
    gw_async(r, kpi_work); /* answers 503 itself when it cannot */
    return true;
}
