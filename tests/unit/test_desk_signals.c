/* test_desk_signals.c - what a customer sees of internal events
 * (visibility.c), the agent presence directory (presence.c), the admin
 * role and the optional claims of tokens (auth.c). */
#include <stdlib.h>
#include <string.h>
#include <jwt.h>
#include "core/auth.h"
#include "core/event.h"
#include "core/json_dump.h"
#include "core/presence.h"
#include "tap.h"

static json_t *sequenced(const char *type, json_t *data)
{
    json_t *ev = oh_event_new(type, "e_1", 1700000000123, data);
    json_object_set_new(ev, "seq", json_integer(7));
    json_object_set_new(ev, "epoch", json_string("ep"));
    return ev;
}

static json_t *message(bool internal, const char *text)
{
    json_t *d =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "conversation_id", "c_1", "channel", "webchat",
                  "account", "a", "direction", "outbound", "kind", "text", "text", text);
    if (internal) json_object_set_new(d, "internal", json_true());
    return sequenced(OH_EV_OUTBOUND, d);
}

static json_t *updated(const char *status, const char *assignee)
{
    json_t *changes = json_object();
    if (status) json_object_set_new(changes, "status", json_string(status));
    if (assignee) json_object_set_new(changes, "assignee", json_string(assignee));
    json_t *d =
        json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:s, s:s}, s:s, s:{s:s, s:s}}", "conversation_id",
                  "c_1", "channel", "webchat", "account", "a", "changes", changes, "state",
                  "status", status ? status : "open", "assignee", "agent-7", "priority", "urgent",
                  "reason", "manual", "author", "kind", "agent", "id", "agent-7");
    return sequenced(OH_EV_UPDATED, d);
}

/* The customer's text of EV, through the stored-text path. */
static char *customer_text(const json_t *ev)
{
    size_t len, outlen;
    char *text = oh_json_dump(ev, &len), *out;
    ck_assert_int_eq(oh_event_customer_text(text, len, &out, &outlen), OH_OK);
    if (!out) return text; /* shown as it is */
    free(text);
    ck_assert_uint_eq(strlen(out), outlen);
    return out;
}

START_TEST(visibility_of_messages_and_notes)
{
    json_t *msg = message(false, "hello");
    ck_assert_int_eq(oh_event_visibility(msg), OH_VIS_ALL);
    ck_assert(!oh_event_internal(msg));
    json_t *same = oh_event_for_customer(msg);
    ck_assert_ptr_eq(same, msg);
    json_decref(same);
    /* a text that quotes the marker costs a parse and is shown whole */
    json_t *quoting = message(false, "say \"internal\":true please");
    char *text = customer_text(quoting);
    ck_assert_ptr_nonnull(strstr(text, "please"));
    free(text);

    json_t *note = message(true, "secret");
    ck_assert_int_eq(oh_event_visibility(note), OH_VIS_INTERNAL);
    json_t *p = oh_event_for_customer(note);
    ck_assert_str_eq(json_string_value(json_object_get(p, "type")), OH_EV_INTERNAL);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "seq")), 7);
    ck_assert_str_eq(json_string_value(json_object_get(p, "epoch")), "ep");
    ck_assert_str_eq(json_string_value(json_object_get(p, "id")), "e_1");
    ck_assert_uint_eq(json_object_size(p), 7);
    ck_assert_ptr_null(json_object_get(p, "data"));
    json_decref(p);
    text = customer_text(note);
    ck_assert_ptr_null(strstr(text, "secret"));
    ck_assert_str_eq(text, "{\"specversion\":\"1.0\",\"id\":\"e_1\",\"type\":\"omnihub.internal\","
                           "\"time\":\"2023-11-14T22:13:20.123Z\",\"subject\":\"c_1\","
                           "\"seq\":7,\"epoch\":\"ep\"}");
    free(text);
    json_decref(msg);
    json_decref(quoting);
    json_decref(note);
}
END_TEST

START_TEST(visibility_of_desk_members)
{
    /* the bot's workings and an agent's suggestion: the message, without them */
    json_t *bot = message(false, "Refunds take five days.");
    json_object_set_new(oh_event_data(bot), "bot",
                        json_pack("{s:s, s:[s], s:f}", "kind", "answer", "article_ids",
                                  "refund-policy", "confidence", 0.9));
    json_t *reply = message(false, "Five days.");
    json_object_set_new(oh_event_data(reply), "suggestion",
                        json_pack("{s:s, s:s}", "id", "e_9", "source", "llm"));
    json_t *plain = message(false, "Five days.");
    ck_assert_int_eq(oh_event_visibility(bot), OH_VIS_DESK);
    ck_assert_int_eq(oh_event_visibility(reply), OH_VIS_DESK);
    ck_assert(!oh_event_internal(bot) && !oh_event_internal(reply)); /* messages still */
    json_t *shown = oh_event_for_customer(reply);
    ck_assert(json_equal(shown, plain));
    ck_assert_ptr_nonnull(json_object_get(oh_event_data(reply), "suggestion")); /* untouched */
    json_decref(shown);
    char *text = customer_text(bot);
    ck_assert_ptr_null(strstr(text, "refund-policy"));
    ck_assert_ptr_null(strstr(text, "confidence"));
    ck_assert_ptr_nonnull(strstr(text, "Refunds take five days."));
    free(text);
    json_decref(bot);
    json_decref(reply);
    json_decref(plain);
}
END_TEST

START_TEST(visibility_of_state_and_other_internal_types)
{
    json_t *resolved = updated("resolved", "agent-7");
    ck_assert_int_eq(oh_event_visibility(resolved), OH_VIS_REDUCED);
    json_t *r = oh_event_for_customer(resolved);
    json_t *d = oh_event_data(r);
    ck_assert_str_eq(oh_event_get_type(r), OH_EV_UPDATED);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "seq")), 7);
    ck_assert_uint_eq(json_object_size(d),
                      5); /* conversation_id, channel, account, changes, state */
    ck_assert_uint_eq(json_object_size(json_object_get(d, "changes")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(d, "changes"), "status")),
                     "resolved");
    ck_assert_uint_eq(json_object_size(json_object_get(d, "state")), 1);
    char *text = customer_text(resolved);
    ck_assert_ptr_null(strstr(text, "agent-7"));
    ck_assert_ptr_null(strstr(text, "urgent"));
    free(text);
    json_decref(r);

    json_t *opened = updated("open", NULL), *pending = updated("pending", NULL);
    json_t *assigned = updated(NULL, "agent-7");
    ck_assert_int_eq(oh_event_visibility(opened), OH_VIS_REDUCED);
    ck_assert_int_eq(oh_event_visibility(pending), OH_VIS_INTERNAL);
    ck_assert_int_eq(oh_event_visibility(assigned), OH_VIS_INTERNAL);
    json_t *enriched =
        sequenced(OH_EV_ENRICHED, json_pack("{s:s, s:s, s:s}", "conversation_id", "c_1", "channel",
                                            "webchat", "account", "a"));
    json_t *merged =
        sequenced("omnihub.contact.merged", json_pack("{s:s, s:s, s:s}", "conversation_id", "c_1",
                                                      "channel", "webchat", "account", "a"));
    ck_assert_int_eq(oh_event_visibility(enriched), OH_VIS_INTERNAL);
    ck_assert_int_eq(oh_event_visibility(merged), OH_VIS_INTERNAL);
    text = customer_text(assigned);
    ck_assert_ptr_nonnull(strstr(text, "\"type\":\"omnihub.internal\""));
    ck_assert_ptr_null(strstr(text, "agent-7"));
    free(text);
    ck_assert(!oh_event_text_maybe_internal("{\"type\":\"omnihub.message.inbound\"}", 33));
    char *out;
    size_t outlen;
    ck_assert_int_eq(oh_event_customer_text("{\"internal\": tru", 16, &out, &outlen), OH_EINVAL);
    json_decref(resolved);
    json_decref(opened);
    json_decref(pending);
    json_decref(assigned);
    json_decref(enriched);
    json_decref(merged);
}
END_TEST

static int collect(void *opaque, const struct oh_agent_info *a)
{
    json_array_append_new(
        opaque, json_pack("{s:s, s:s}", "id", a->id, "status", oh_presence_name(a->status)));
    return 0;
}

START_TEST(presence_aggregates_devices)
{
    oh_presence *p = oh_presence_new(2);
    struct oh_principal bob = {.sub = "bob", .role = OH_ROLE_AGENT, .name = "Bob", .nteams = 1};
    snprintf(bob.teams[0], sizeof bob.teams[0], "billing");
    enum oh_presence_status now;
    struct oh_agent_info a;
    oh_presence_connect(p, &bob, 1000);
    oh_presence_connect(p, &bob, 1001);
    ck_assert_int_eq(oh_presence_get(p, "bob", &a), OH_OK);
    ck_assert_int_eq(a.status, OH_PRESENCE_OFFLINE); /* connected, nothing said yet */
    ck_assert_int_eq(a.devices, 2);
    ck_assert_str_eq(a.name, "Bob");
    ck_assert_str_eq(a.teams[0], "billing");
    /* device 1 online, device 2 away: online; device 1 closes: away */
    ck_assert(
        oh_presence_move(p, "bob", OH_PRESENCE_OFFLINE, OH_PRESENCE_ONLINE, false, 2000, &now));
    ck_assert_int_eq(now, OH_PRESENCE_ONLINE);
    ck_assert(
        !oh_presence_move(p, "bob", OH_PRESENCE_OFFLINE, OH_PRESENCE_AWAY, false, 2001, &now));
    ck_assert(
        oh_presence_move(p, "bob", OH_PRESENCE_ONLINE, OH_PRESENCE_OFFLINE, true, 3000, &now));
    ck_assert_int_eq(now, OH_PRESENCE_AWAY);
    oh_presence_get(p, "bob", &a);
    ck_assert_int_eq(a.since_ms, 3000);
    ck_assert_int_eq(a.devices, 1);
    ck_assert(oh_presence_move(p, "bob", OH_PRESENCE_AWAY, OH_PRESENCE_OFFLINE, true, 4000, &now));
    ck_assert_int_eq(now, OH_PRESENCE_OFFLINE);
    ck_assert_int_eq(oh_presence_get(p, "nobody", &a), OH_ENOTFOUND);
    /* full (2): a third agent takes the place of the one offline longest */
    struct oh_principal amy = {.sub = "amy", .role = OH_ROLE_AGENT};
    struct oh_principal cid = {.sub = "cid", .role = OH_ROLE_ADMIN};
    oh_presence_connect(p, &amy, 5000);
    oh_presence_connect(p, &cid, 6000);
    json_t *all = json_array();
    ck_assert_int_eq(oh_presence_each(p, collect, all), OH_OK);
    char *text = json_dumps(all, JSON_COMPACT);
    ck_assert_str_eq(text, "[{\"id\":\"amy\",\"status\":\"offline\"},"
                           "{\"id\":\"cid\",\"status\":\"offline\"}]");
    free(text);
    json_decref(all);
    enum oh_presence_status s;
    ck_assert_int_eq(oh_presence_parse("away", &s), OH_OK);
    ck_assert_int_eq(s, OH_PRESENCE_AWAY);
    ck_assert_int_eq(oh_presence_parse("busy", &s), OH_EINVAL);
    oh_presence_free(p);
    oh_presence_free(NULL);
}
END_TEST

static void changed(void *opaque, const char *agent, enum oh_presence_status now)
{
    json_array_append_new(opaque,
                          json_pack("{s:s, s:s}", "id", agent, "status", oh_presence_name(now)));
}

/* What other gateways say counts beside this gateway's devices, until it
 * runs out or its gateway says bye; an agent heard of becomes known. */
START_TEST(presence_counts_other_gateways)
{
    oh_presence *p = oh_presence_new(2);
    struct oh_principal bob = {.sub = "bob", .role = OH_ROLE_AGENT};
    struct oh_agent_info w = {
        .id = "bob", .name = "Bob B", .nteams = 1, .here = OH_PRESENCE_ONLINE};
    snprintf(w.teams[0], sizeof w.teams[0], "vip");
    enum oh_presence_status now;
    struct oh_agent_info a;
    /* unknown here: known from gw-b's word, with its name and teams */
    ck_assert(oh_presence_remote(p, "gw-b", &w, 1000, 4000, &now));
    ck_assert_int_eq(now, OH_PRESENCE_ONLINE);
    ck_assert_int_eq(oh_presence_get(p, "bob", &a), OH_OK);
    ck_assert_str_eq(a.name, "Bob B");
    ck_assert_str_eq(a.teams[0], "vip");
    ck_assert_int_eq(a.devices, 0);
    ck_assert_int_eq(a.here, OH_PRESENCE_OFFLINE);
    /* away here, online there: online; the same word again changes nothing */
    oh_presence_connect(p, &bob, 1100);
    ck_assert(
        !oh_presence_move(p, "bob", OH_PRESENCE_OFFLINE, OH_PRESENCE_AWAY, false, 1200, &now));
    ck_assert_int_eq(now, OH_PRESENCE_ONLINE);
    ck_assert(!oh_presence_remote(p, "gw-b", &w, 2000, 5000, &now));
    /* a third gateway says away; gw-b's word runs out at 5000: away */
    w.here = OH_PRESENCE_AWAY;
    ck_assert(!oh_presence_remote(p, "gw-c", &w, 2500, 9000, &now));
    json_t *ch = json_array();
    oh_presence_forget(p, NULL, 4999, changed, ch);
    ck_assert_int_eq(json_array_size(ch), 0);
    oh_presence_forget(p, NULL, 5000, changed, ch);
    char *text = json_dumps(ch, JSON_COMPACT);
    ck_assert_str_eq(text, "[{\"id\":\"bob\",\"status\":\"away\"}]");
    free(text);
    oh_presence_get(p, "bob", &a);
    ck_assert_int_eq(a.status, OH_PRESENCE_AWAY);
    ck_assert_int_eq(a.since_ms, 5000);
    /* gw-c says online, then bye: back to this gateway's away */
    w.here = OH_PRESENCE_ONLINE;
    ck_assert(oh_presence_remote(p, "gw-c", &w, 6000, 9000, &now));
    json_array_clear(ch);
    oh_presence_forget(p, "gw-c", 6100, changed, ch);
    ck_assert_int_eq(json_array_size(ch), 1);
    /* offline there: nothing kept; the device here closes: offline */
    w.here = OH_PRESENCE_OFFLINE;
    ck_assert(!oh_presence_remote(p, "gw-c", &w, 6200, 9000, &now));
    ck_assert(oh_presence_move(p, "bob", OH_PRESENCE_AWAY, OH_PRESENCE_OFFLINE, true, 7000, &now));
    ck_assert_int_eq(now, OH_PRESENCE_OFFLINE);
    /* an agent online elsewhere is never evicted: the directory holds 2 */
    struct oh_agent_info x = {.id = "xan", .here = OH_PRESENCE_ONLINE};
    ck_assert(oh_presence_remote(p, "gw-b", &x, 8000, 60000, &now));
    struct oh_principal yo = {.sub = "yo", .role = OH_ROLE_AGENT};
    oh_presence_connect(p, &yo, 8100); /* bob (offline, no device) makes room */
    ck_assert_int_eq(oh_presence_get(p, "bob", &a), OH_ENOTFOUND);
    ck_assert_int_eq(oh_presence_get(p, "xan", &a), OH_OK);
    ck_assert_int_eq(a.status, OH_PRESENCE_ONLINE);
    json_decref(ch);
    oh_presence_free(p);
}
END_TEST

/* A token of SECRET with the claims of JSON (sub, role, exp added). */
static char *token_with(const char *secret, const char *role, const char *json)
{
    jwt_t *jwt = NULL;
    char *out = NULL;
    ck_assert_int_eq(jwt_new(&jwt), 0);
    jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret));
    jwt_add_grant(jwt, "sub", "u1");
    jwt_add_grant(jwt, "role", role);
    jwt_add_grant_int(jwt, "exp", (long)(oh_now_ms() / 1000 + 60));
    if (json) ck_assert_int_eq(jwt_add_grants_json(jwt, json), 0);
    out = jwt_encode_str(jwt);
    jwt_free(jwt);
    return out;
}

START_TEST(admin_and_claims)
{
    const char *secret = "s3cret";
    char err[128];
    struct oh_principal p;
    oh_auth *a = oh_auth_new(&(struct oh_auth_opts){.secret = secret}, err, sizeof err);
    const char *teams[] = {"billing", "vip"};
    char *tok = oh_auth_issue_claims(secret, "boss", "admin", "d", 60, "Bea", teams, 2);
    ck_assert_int_eq(oh_auth_verify(a, tok, oh_now_ms() / 1000, &p, err, sizeof err), OH_OK);
    ck_assert_int_eq(p.role, OH_ROLE_ADMIN);
    ck_assert(oh_auth_is_agent(&p));
    ck_assert(oh_auth_may_access(&p, "c_any"));
    ck_assert_str_eq(oh_auth_role_name(p.role), "admin");
    ck_assert_str_eq(p.name, "Bea");
    ck_assert_int_eq(p.nteams, 2);
    ck_assert_str_eq(p.teams[1], "vip");
    free(tok);
    tok = token_with(secret, "customer",
                     "{\"email\":\"ann@example.org\",\"phone\":\"+4915112345678\"}");
    ck_assert_int_eq(oh_auth_verify(a, tok, oh_now_ms() / 1000, &p, err, sizeof err), OH_OK);
    ck_assert(!oh_auth_is_agent(&p));
    ck_assert_str_eq(p.email, "ann@example.org");
    ck_assert_str_eq(p.phone, "+4915112345678");
    free(tok);
    static const char *const bad[] = {
        "{\"name\":1}",
        "{\"name\":\"\"}",
        "{\"name\":\"a\\u0001b\"}",
        "{\"teams\":\"t\"}",
        "{\"teams\":[1]}",
        "{\"teams\":[\"\"]}",
        "{\"email\":\"x\"}",
        "{\"email\":\"a@b@c\"}",
        "{\"phone\":\"0049\"}",
        "{\"phone\":\"+1\"}",
        "{\"phone\":[\"+4915\"]}",
        "{\"teams\":[\"a\",\"b\",\"c\",\"d\","
        "\"e\",\"f\",\"g\",\"h\",\"i\",\"j\","
        "\"k\",\"l\",\"m\",\"n\",\"o\",\"p\","
        "\"q\"]}",
    };
    for (size_t i = 0; i < OH_ARRAY_SIZE(bad); i++) {
        tok = token_with(secret, "agent", bad[i]);
        ck_assert_msg(oh_auth_verify(a, tok, oh_now_ms() / 1000, &p, err, sizeof err) == OH_EAUTH,
                      "accepted %s", bad[i]);
        ck_assert_str_eq(p.sub, ""); /* nothing half-filled */
        free(tok);
    }
    tok = token_with(secret, "root", NULL);
    ck_assert_int_eq(oh_auth_verify(a, tok, oh_now_ms() / 1000, &p, err, sizeof err), OH_EAUTH);
    free(tok);
    oh_auth_free(a);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("desk_signals");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, visibility_of_messages_and_notes);
    tcase_add_test(tc, visibility_of_state_and_other_internal_types);
    tcase_add_test(tc, visibility_of_desk_members);
    tcase_add_test(tc, presence_aggregates_devices);
    tcase_add_test(tc, presence_counts_other_gateways);
    tcase_add_test(tc, admin_and_claims);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
