/* agents_api.c - GET /v1/agents: the agents this gateway knows (connected
 * over WebSocket now or since it started), their presence, and their load
 * from the store (open conversations assigned to them). */
#include <stdio.h>
#include <string.h>
#include "core/presence.h"
#include "gateway/gateway_int.h"

struct listing {
    struct req *r;
    json_t *agents;
    int64_t capacity;
    int rc;
};

/* on a worker: one store count per agent */
static int agent_row(void *opaque, const struct oh_agent_info *a)
{
    struct listing *l = opaque;
    int64_t open = 0;
    int rc = oh_store_open_assigned(l->r->gw->hub->store, a->id, &open);
    if (rc) return rc;
    json_t *teams = json_array();
    for (int i = 0; teams && i < a->nteams; i++)
        json_array_append_new(teams, json_string(a->teams[i]));
    char since[32];
    oh_time_rfc3339(since, a->since_ms);
    json_t *o = json_pack("{s:s, s:o, s:o, s:s, s:s, s:I, s:I}", "id", a->id, "name",
                          a->name[0] ? json_string(a->name) : json_null(), "teams",
                          teams ? teams : json_array(), "presence", oh_presence_name(a->status),
                          "presence_since", since, "open_assigned", (json_int_t)open, "capacity",
                          (json_int_t)l->capacity);
    return o && json_array_append_new(l->agents, o) == 0 ? OH_OK : OH_ENOMEM;
}

static void agents_work(void *opaque)
{
    struct req *r = opaque;
    struct listing l = {r, json_array(), oh_config_int(r->gw->hub->cfg, "routing.capacity"), 0};
    int rc = l.agents ? oh_presence_each(r->gw->presence, agent_row, &l) : OH_ENOMEM;
    if (rc) {
        json_decref(l.agents);
        gw_reply_store_error(r, rc);
    } else {
        gw_reply_json(r, 200, json_pack("{s:o}", "agents", l.agents));
    }
    gw_complete(r);
}

bool gw_agents_route(struct req *r)
{
    if (strcmp(r->path, "/v1/agents") != 0) return false;
    snprintf(r->route, sizeof r->route, "/v1/agents");
    if (!gw_authenticate(r)) return true;
    if (!oh_auth_is_agent(&r->who))
        gw_reply_error(r, 403, "forbidden", "only agents list agents");
    else if (strcmp(r->method, "GET") != 0)
        gw_reply_error(r, 405, "method_not_allowed", "use GET");
    else
        gw_async(r, agents_work);
    return true;
}
