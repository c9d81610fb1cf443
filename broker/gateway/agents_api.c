/* agents_api.c - GET /v1/agents: the agents this gateway knows (connected
 * over WebSocket now or since it started), those holding open
 * conversations in the store, and the caller; each with their presence and
 * their load (open conversations assigned to them). An agent known only
 * from the store or their token has no WebSocket here: offline, and their
 * name and teams as far as known. */
#include <stdio.h>
#include <string.h>
#include "core/json_dump.h"
#include "core/presence.h"
#include "gateway/gateway_int.h"

struct listing {
    json_t *agents;
    json_t *load; /* agent id -> open conversations assigned, summed over shards */
    int64_t capacity;
};

static int add_load(void *opaque, const char *agent, int64_t open)
{
    json_t *load = opaque;
    int64_t before = json_integer_value(json_object_get(load, agent));
    return json_object_set_new(load, agent, json_integer(before + open)) == 0 ? OH_OK : OH_ENOMEM;
}

/* A's row, with the load the store gave (taken out of the map: each agent
 * is listed once). */
static int agent_row(void *opaque, const struct oh_agent_info *a)
{
    struct listing *l = opaque;
    json_int_t open = json_integer_value(json_object_get(l->load, a->id));
    json_object_del(l->load, a->id);
    json_t *teams = json_array();
    for (int i = 0; teams && i < a->nteams; i++)
        json_array_append_new(teams, json_string(a->teams[i]));
    char since[32];
    if (a->since_ms) oh_time_rfc3339(since, a->since_ms);
    json_t *o = json_pack("{s:s, s:o, s:o, s:s, s:o, s:I, s:I}", "id", a->id, "name",
                          a->name[0] ? json_string(a->name) : json_null(), "teams",
                          teams ? teams : json_array(), "presence", oh_presence_name(a->status),
                          "presence_since", a->since_ms ? json_string(since) : json_null(),
                          "open_assigned", open, "capacity", (json_int_t)l->capacity);
    return o && json_array_append_new(l->agents, o) == 0 ? OH_OK : OH_ENOMEM;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "id")),
                  json_string_value(json_object_get(*(json_t *const *)b, "id")));
}

/* on a worker: one store read for every agent's load */
static void agents_work(void *opaque)
{
    struct req *r = opaque;
    struct listing l = {json_array(), json_object(),
                        oh_config_int(r->gw->hub->cfg, "routing.capacity")};
    int rc = l.agents && l.load ? oh_store_open_assignees(r->gw->hub->store, add_load, l.load)
                                : OH_ENOMEM;
    if (rc == OH_OK) rc = oh_presence_each(r->gw->presence, agent_row, &l);
    /* the caller, when no WebSocket of theirs is known here: their token's claims */
    struct oh_agent_info me = {.status = OH_PRESENCE_OFFLINE};
    if (rc == OH_OK && oh_presence_get(r->gw->presence, r->who.sub, &me) != OH_OK) {
        snprintf(me.id, sizeof me.id, "%s", r->who.sub);
        snprintf(me.name, sizeof me.name, "%s", r->who.name);
        memcpy(me.teams, r->who.teams, sizeof me.teams);
        me.nteams = r->who.nteams;
        rc = agent_row(&l, &me);
    }
    /* the holders of open conversations seen by no gateway's presence */
    const char *id;
    json_t *n;
    void *tmp;
    json_object_foreach_safe(l.load, tmp, id, n)
    {
        struct oh_agent_info a = {.status = OH_PRESENCE_OFFLINE};
        if (rc != OH_OK) break;
        if (snprintf(a.id, sizeof a.id, "%s", id) >= (int)sizeof a.id) continue;
        rc = agent_row(&l, &a);
    }
    json_decref(l.load);
    if (rc == OH_OK) rc = oh_json_array_sort(l.agents, by_id); /* as the answer lists them */
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
