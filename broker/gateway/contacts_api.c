/* contacts_api.c - one person across channels (CONTRACT part 2, Contacts):
 * GET /v1/contacts/{id}, GET /v1/contacts?identifier=, GET .../events (their
 * history across conversations), POST .../merge and .../unmerge (agents),
 * DELETE /v1/contacts/{id} (admins: erasure). Reads run on workers over the
 * store's contact directory; changes are contact commands that sync decides
 * (desk_api.c waits for their outcome). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/contacts.h"
#include "gateway/gateway_int.h"

#define EVENTS_MAX 200 /* events of one history page across conversations */

static void contact_work(void *opaque)
{
    struct req *r = opaque;
    gw_contact_reply(r, r->path + strlen("/v1/contacts/"));
}

void gw_contact_reply(struct req *r, const char *id)
{
    struct oh_contact_dir d;
    json_t *o = NULL;
    oh_store_contact_dir(r->gw->hub->store, &d);
    int rc = oh_contact_get(&d, id, &o);
    if (rc == OH_ENOTFOUND)
        gw_reply_error(r, 404, "not_found", "no such contact");
    else if (rc)
        gw_reply_store_error(r, rc);
    else
        gw_reply_json(r, 200, o);
    gw_complete(r);
}

static void find_work(void *opaque)
{
    struct req *r = opaque;
    char q[OH_CONTACT_VALUE_MAX + 72], root[OH_ID_MAX];
    struct oh_contact_dir d;
    if (!gw_query(r, "identifier", q, sizeof q) || !strchr(q, ':')) {
        gw_reply_error(r, 400, "bad_request", "identifier=<type>:<value> is required");
        gw_complete(r);
        return;
    }
    char *value = strchr(q, ':');
    *value++ = '\0';
    /* a "+" left unencoded in the query reads as a space */
    if (strcmp(q, "phone") == 0 && value[0] == ' ') value[0] = '+';
    oh_store_contact_dir(r->gw->hub->store, &d);
    int rc = oh_contact_find(&d, q, value,
                             oh_config_str(r->gw->hub->cfg, "contacts.default_region"), root);
    json_t *list = json_array(), *o = NULL;
    if (rc == OH_EINVAL) {
        json_decref(list);
        gw_reply_error(r, 400, "bad_request", "identifier does not normalize (type %.32s)", q);
        gw_complete(r);
        return;
    }
    if (rc == 0 && (rc = oh_contact_get(&d, root, &o)) == 0) json_array_append_new(list, o);
    if (rc && rc != OH_ENOTFOUND) {
        json_decref(list);
        gw_reply_store_error(r, rc);
    } else {
        gw_reply_json(r, 200, json_pack("{s:o}", "contacts", list));
    }
    gw_complete(r);
}

struct page {
    json_t *events;
    int rc;
};

static int page_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    struct page *p = opaque;
    json_t *ev = json_loadb(json, len, 0, NULL);
    if (ev) json_array_append_new(p->events, ev);
    return 0;
}

static int by_time(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = strcmp(json_string_value(json_object_get(x, "time")),
                   json_string_value(json_object_get(y, "time")));
    if (c) return c;
    c = strcmp(oh_event_subject(x), oh_event_subject(y));
    if (c) return c;
    int64_t sx = json_integer_value(json_object_get(x, "seq")),
            sy = json_integer_value(json_object_get(y, "seq"));
    return sx < sy ? -1 : sx > sy;
}

/* The person's history across every conversation of theirs, oldest first:
 * each conversation's first LIMIT events, merged by time, cut to LIMIT
 * (the events carry their subject: the conversation to page on with
 * GET /v1/conversations/{id}/events). */
static void events_work(void *opaque)
{
    struct req *r = opaque;
    char id[OH_ID_MAX], num[16];
    const char *p = r->path + strlen("/v1/contacts/");
    snprintf(id, sizeof id, "%.*s", (int)strcspn(p, "/"), p);
    int limit = 100;
    if (gw_query_has(r, "limit")) limit = gw_query(r, "limit", num, sizeof num) ? atoi(num) : 0;
    if (limit < 1 || limit > EVENTS_MAX) {
        gw_reply_error(r, 400, "bad_request", "limit must be 1..%d", EVENTS_MAX);
        gw_complete(r);
        return;
    }
    struct oh_contact_dir d;
    json_t *o = NULL;
    oh_store_contact_dir(r->gw->hub->store, &d);
    int rc = oh_contact_get(&d, id, &o);
    if (rc) {
        gw_reply_error(r, rc == OH_ENOTFOUND ? 404 : 503,
                       rc == OH_ENOTFOUND ? "not_found" : "unavailable", "%s",
                       rc == OH_ENOTFOUND ? "no such contact" : oh_strerror(rc));
        gw_complete(r);
        return;
    }
    struct page pg = {json_array(), 0};
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(o, "conversations"), i, c)
    {
        rc = oh_store_history(r->gw->hub->store, json_string_value(c), 0, limit, page_row, &pg);
        if (rc && rc != OH_ENOTFOUND) break;
        rc = 0;
    }
    if (rc) {
        json_decref(pg.events);
        json_decref(o);
        gw_reply_store_error(r, rc);
        gw_complete(r);
        return;
    }
    size_t n = json_array_size(pg.events);
    json_t **v = malloc((n ? n : 1) * sizeof *v), *out = json_array();
    for (size_t k = 0; v && k < n; k++)
        v[k] = json_array_get(pg.events, k);
    if (v) qsort(v, n, sizeof *v, by_time);
    for (size_t k = 0; v && k < n && k < (size_t)limit; k++)
        json_array_append(out, v[k]);
    free(v);
    json_decref(pg.events);
    gw_reply_json(
        r, 200,
        json_pack("{s:O, s:o}", "contact_id", json_object_get(o, "contact_id"), "events", out));
    json_decref(o);
    gw_complete(r);
}

/* A merge or unmerge body, checked before anything is appended. */
static void change(struct req *r, const char *id, const char *op)
{
    json_error_t e;
    char why[160];
    json_t *body = r->body ? json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e) : NULL;
    if (!body) {
        gw_reply_error(r, 400, "bad_request", "body must be a JSON object: %s",
                       r->body ? e.text : "empty body");
        return;
    }
    if (oh_contact_check(op, body, why, sizeof why)) {
        json_decref(body);
        gw_reply_error(r, 400, "bad_request", "%s", why);
        return;
    }
    gw_desk_contact(r, id, op, body);
}

bool gw_contacts_route(struct req *r)
{
    static const char *const find_params[] = {"identifier"};
    static const char *const events_params[] = {"limit"};
    if (strncmp(r->path, "/v1/contacts", 12) != 0 || (r->path[12] && r->path[12] != '/'))
        return false;
    const char *rest = r->path[12] ? r->path + 13 : "";
    size_t idlen = strcspn(rest, "/");
    const char *sub = rest[idlen] ? rest + idlen + 1 : NULL;
    snprintf(r->route, sizeof r->route, "/v1/contacts%s%s", *rest ? "/{id}" : "",
             sub ? (strcmp(sub, "merge") == 0     ? "/merge"
                    : strcmp(sub, "unmerge") == 0 ? "/unmerge"
                    : strcmp(sub, "events") == 0  ? "/events"
                                                  : "/?")
                 : "");
    if (!gw_authenticate(r)) return true;
    bool get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;
    char id[OH_ID_MAX];
    if (!oh_auth_is_agent(&r->who)) {
        gw_reply_error(r, 403, "forbidden", "contacts are for agents");
    } else if (!r->gw->hub->store) {
        gw_reply_error(r, 503, "unavailable", "no store in this process");
    } else if (!oh_config_bool(r->gw->hub->cfg, "contacts.enabled")) {
        gw_reply_error(r, 404, "not_found", "contacts are off (contacts.enabled)");
    } else if (!*rest) {
        if (!get)
            gw_reply_error(r, 405, "method_not_allowed", "use GET");
        else if (gw_query_once(r, find_params, OH_ARRAY_SIZE(find_params), false))
            gw_async(r, find_work);
    } else if (idlen >= OH_ID_MAX || !oh_id_valid(rest, idlen) ||
               (sub && (strchr(sub, '/') || !*sub))) {
        gw_reply_error(r, 404, "not_found", "no such contact");
    } else if (!sub) {
        snprintf(id, sizeof id, "%.*s", (int)idlen, rest);
        if (get) {
            gw_async(r, contact_work);
        } else if (strcmp(r->method, "DELETE") == 0) {
            if (r->who.role != OH_ROLE_ADMIN)
                gw_reply_error(r, 403, "forbidden", "only admins erase a contact");
            else
                gw_desk_contact(r, id, "erase", json_object());
        } else {
            gw_reply_error(r, 405, "method_not_allowed", "use GET or DELETE");
        }
    } else if (strcmp(sub, "events") == 0) {
        if (!get)
            gw_reply_error(r, 405, "method_not_allowed", "use GET");
        else if (gw_query_once(r, events_params, OH_ARRAY_SIZE(events_params), false))
            gw_async(r, events_work);
    } else if (strcmp(sub, "merge") == 0 || strcmp(sub, "unmerge") == 0) {
        snprintf(id, sizeof id, "%.*s", (int)idlen, rest);
        if (!post)
            gw_reply_error(r, 405, "method_not_allowed", "use POST");
        else
            change(r, id, sub);
    } else {
        gw_reply_error(r, 404, "not_found", "no such route");
    }
    return true;
}
