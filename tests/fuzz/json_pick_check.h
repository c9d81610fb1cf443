/* json_pick_check.h - oh_json_pick held against jansson on one text: the
 * same verdict as json_loadb(text, len, 0), the same strings at the same
 * paths. Shared by fuzz_json_pick.c and tests/unit/test_json_pick.c. */
#ifndef OH_JSON_PICK_CHECK_H
#define OH_JSON_PICK_CHECK_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "core/json_pick.h"
#include "core/oh.h"

static const char *const json_pick_check_paths[] = {
    "id",
    "type",
    "subject",
    "data",
    "data.author.kind",
    "data.channel",
    "data.text",
    "data.subject",
    "a",
    "a.b",
    "a.b.c",
    "\xc3\xa9",
    "data.state.priority",
};

#define JSON_PICK_CHECK_N ((int)(sizeof json_pick_check_paths / sizeof *json_pick_check_paths))

/* What jansson finds at PATH in DOC: a string, or NULL. */
static const json_t *json_pick_check_walk(const json_t *doc, const char *path)
{
    char name[64];
    const json_t *v = doc;
    while (v && *path) {
        size_t n = strcspn(path, ".");
        memcpy(name, path, n);
        name[n] = '\0';
        v = json_object_get(v, name);
        path += n + (path[n] == '.');
    }
    return json_is_string(v) ? v : NULL;
}

/* NULL when oh_json_pick agrees with jansson on TEXT (LEN bytes), else what
 * differs. */
static const char *json_pick_check(const char *text, size_t len)
{
    struct oh_json_pick p[JSON_PICK_CHECK_N];
    for (int i = 0; i < JSON_PICK_CHECK_N; i++)
        p[i].path = json_pick_check_paths[i];
    char *buf = malloc(len + 1);
    if (!buf) abort();
    int rc = oh_json_pick(text, len, p, JSON_PICK_CHECK_N, buf);
    json_t *doc = json_loadb(text, len, 0, NULL);
    const char *why = NULL;
    if (!doc && rc == OH_OK)
        why = "picked from a text jansson refuses";
    else if (doc && rc != OH_OK)
        why = "refused a text jansson parses";
    for (int i = 0; !why && i < JSON_PICK_CHECK_N; i++) {
        const json_t *s = doc ? json_pick_check_walk(doc, p[i].path) : NULL;
        if (!s != !p[i].s)
            why = s ? "missed a string jansson has" : "found a string jansson has not";
        else if (s && (json_string_length(s) != p[i].len ||
                       memcmp(json_string_value(s), p[i].s, p[i].len) || p[i].s[p[i].len] != '\0'))
            why = "decoded a string differently";
    }
    json_decref(doc);
    free(buf);
    return why;
}

#endif
