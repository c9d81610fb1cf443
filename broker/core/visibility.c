/* visibility.c - what a customer may see of an event: internal events
 * (state changes, triage, contacts, private notes) become placeholders in
 * their history and on their WebSocket, so their seq stays dense; messages
 * lose the desk's members (the bot's workings, an agent's suggestion). */
#include <stdlib.h>
#include <string.h>
#include "core/event.h"
#include "core/json_dump.h"

#define CONV_PREFIX "omnihub.conversation."

static const char *const desk_members[] = {OH_DESK_MEMBERS};

static bool has_desk_members(const json_t *data)
{
    for (size_t i = 0; i < OH_ARRAY_SIZE(desk_members); i++)
        if (json_object_get(data, desk_members[i])) return true;
    return false;
}

/* A status change customers are told of: to open or resolved. */
static bool status_change_shown(const json_t *data)
{
    const char *st = json_string_value(json_object_get(json_object_get(data, "changes"), "status"));
    return st && (strcmp(st, "open") == 0 || strcmp(st, "resolved") == 0);
}

enum oh_visibility oh_event_visibility(const json_t *ev)
{
    const char *type = oh_event_get_type(ev);
    const json_t *data = oh_event_data(ev);
    if (!type) return OH_VIS_INTERNAL; /* nothing a customer could read anyway */
    if (json_is_true(json_object_get(data, "internal"))) return OH_VIS_INTERNAL;
    if (strcmp(type, OH_EV_UPDATED) == 0)
        return status_change_shown(data) ? OH_VIS_REDUCED : OH_VIS_INTERNAL;
    if (strncmp(type, CONV_PREFIX, sizeof CONV_PREFIX - 1) == 0 ||
        strcmp(type, OH_EV_ENRICHED) == 0 ||
        strncmp(type, OH_EV_CONTACT_PREFIX, sizeof OH_EV_CONTACT_PREFIX - 1) == 0)
        return OH_VIS_INTERNAL;
    return has_desk_members(data) ? OH_VIS_DESK : OH_VIS_ALL;
}

bool oh_event_internal(const json_t *ev)
{
    enum oh_visibility v = oh_event_visibility(ev);
    return v == OH_VIS_REDUCED || v == OH_VIS_INTERNAL;
}

/* EV's attributes (every member but data), copied. */
static json_t *envelope(const json_t *ev)
{
    json_t *o = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ev, k, v)
    {
        if (o && strcmp(k, "data") != 0) json_object_set(o, k, v);
    }
    return o;
}

static json_t *reduced(const json_t *ev)
{
    static const char *const keep[] = {"conversation_id", "channel", "account"};
    const json_t *data = oh_event_data(ev);
    json_t *status = json_object_get(json_object_get(data, "changes"), "status");
    json_t *o = envelope(ev), *d = json_object();
    for (size_t i = 0; d && i < OH_ARRAY_SIZE(keep); i++) {
        json_t *v = json_object_get(data, keep[i]);
        if (v) json_object_set(d, keep[i], v);
    }
    json_object_set_new(d, "changes", json_pack("{s:O}", "status", status));
    json_object_set_new(d, "state", json_pack("{s:O}", "status", status));
    if (!o || !d || json_object_set_new(o, "data", d)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* EV with its data's desk members left out (copies of the two objects;
 * the members' values are shared). */
static json_t *without_desk(const json_t *ev)
{
    json_t *o = json_copy((json_t *)ev), *d = json_copy((json_t *)oh_event_data(ev));
    if (!o || !d) {
        json_decref(o);
        json_decref(d);
        return NULL;
    }
    for (size_t i = 0; i < OH_ARRAY_SIZE(desk_members); i++)
        json_object_del(d, desk_members[i]);
    if (json_object_set_new(o, "data", d)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *placeholder(const json_t *ev)
{
    /* in the contract's order; only the attributes the original has */
    static const char *const keep[] = {"specversion", "id",  "type", "time",
                                       "subject",     "seq", "epoch"};
    json_t *o = json_object();
    for (size_t i = 0; o && i < OH_ARRAY_SIZE(keep); i++) {
        json_t *v = strcmp(keep[i], "type") == 0 ? json_string(OH_EV_INTERNAL)
                                                 : json_incref(json_object_get(ev, keep[i]));
        if (v && json_object_set_new(o, keep[i], v)) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

json_t *oh_event_for_customer(const json_t *ev)
{
    switch (oh_event_visibility(ev)) {
    case OH_VIS_ALL: return json_incref((json_t *)ev);
    case OH_VIS_DESK: return without_desk(ev);
    case OH_VIS_REDUCED: return reduced(ev);
    default: return placeholder(ev);
    }
}

bool oh_event_text_maybe_internal(const char *json, size_t len)
{
    /* every internal event carries one of these, whatever the spacing; a
     * customer's text holding one only costs a parse (quotes in a string
     * are escaped, so a text never makes a real "internal" member); so
     * does every message with desk members (the bot's own messages are
     * parsed for their "bot" author) */
    static const char *const marks[] = {
        "\"" CONV_PREFIX, "\"" OH_EV_ENRICHED "\"", "\"" OH_EV_CONTACT_PREFIX, "\"internal\"",
        "\"bot\"",        "\"suggestion\""};
    for (size_t i = 0; i < OH_ARRAY_SIZE(marks); i++)
        if (memmem(json, len, marks[i], strlen(marks[i]))) return true;
    return false;
}

int oh_event_customer_text(const char *json, size_t len, char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (!oh_event_text_maybe_internal(json, len)) return OH_OK;
    json_t *ev = json_loadb(json, len, 0, NULL);
    if (!json_is_object(ev)) {
        json_decref(ev);
        return OH_EINVAL;
    }
    if (oh_event_visibility(ev) == OH_VIS_ALL) {
        json_decref(ev);
        return OH_OK;
    }
    json_t *shown = oh_event_for_customer(ev);
    json_decref(ev);
    *out = shown ? oh_json_dump(shown, outlen) : NULL;
    json_decref(shown);
    return *out ? OH_OK : OH_ENOMEM;
}
