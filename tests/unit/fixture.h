/* fixture.h - what the connector unit tests share: recorded payloads in
 * tests/data/<channel>/ checked against their expectations, a fake webhook. */
#ifndef OH_TEST_FIXTURE_H
#define OH_TEST_FIXTURE_H

#include <jansson.h>
#include "core/connector.h"

/* Channel checks run on each fixture's events after the shared ones; OUT is
 * borrowed for the call, NAME is the fixture's file name. */
typedef void (*oh_fixture_each_fn)(const char *channel, const char *name,
                                   const struct oh_event_list *out);

/* Normalizes every tests/data/<channel>/<case><ext> (ext ".json", ".eml")
 * through the connector named CHANNEL with ACCOUNT (may be NULL) and asserts
 * that it succeeds, that every event validates, that the events match
 * <case>.expect.json (one object for one event, or a list) as a subset, that
 * normalizing again gives the same ids and that one payload's ids are
 * distinct; then calls EACH (may be NULL). Returns the number of cases. */
int oh_fixture_check_dir(const char *channel, const char *ext, const char *account,
                         oh_fixture_each_fn each);

/* Asserts every key of EXPECT is in ACTUAL with an equal value, lists
 * element-wise and of equal length; WHERE names the case when it fails. */
void oh_fixture_expect_subset(const json_t *expect, const json_t *actual, const char *where);

/* Normalizes tests/data/<channel>/<name>.json with ACCOUNT (may be NULL)
 * into OUT (caller clears); asserts that it succeeds. */
void oh_fixture_load(const char *channel, const char *name, const char *account,
                     struct oh_event_list *out);

/* The first event of that fixture (caller decrefs); asserts there is one. */
json_t *oh_fixture_first(const char *channel, const char *name, const char *account);

/* The connector C initialized from ENV (NULL-terminated "OMNIHUB_...=v")
 * against its own config keys; asserts success. Free with C->destroy. */
void *oh_fixture_instance(const struct oh_connector *c, char *const *env);

/* Keeps what the core reads from CFG for the webhook_auth of instance CTX
 * of C (for oh_fixture_webhook), as the daemon keeps it in the env. */
void oh_fixture_keep_auth(const struct oh_connector *c, const oh_config *cfg, const void *ctx);

/* Asserts that C's init fails from ENV, naming the key MISSING in its error
 * and leaving no instance behind. */
void oh_fixture_init_fails(const struct oh_connector *c, char *const *env, const char *missing);

/* Calls C's webhook with METHOD on PATH with QUERY, BODY (may be NULL) and
 * one header HNAME (lower case) set to VALUE (may be NULL). REPLY is reset
 * first; the caller frees reply->body. Returns the webhook's result. */
int oh_fixture_webhook(const struct oh_connector *c, void *ctx, const char *method,
                       const char *path, const char *query, const char *body, const char *hname,
                       const char *value, struct oh_event_list *out, struct oh_http_reply *reply);

/* A POST of BODY with header HNAME: VALUE to PATH; asserts the connector left
 * the answer to the daemon (reply status 0) and returns the webhook's result. */
int oh_fixture_post(const struct oh_connector *c, void *ctx, const char *path, const char *body,
                    const char *hname, const char *value, struct oh_event_list *out);

#endif
