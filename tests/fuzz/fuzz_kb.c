/* fuzz_kb.c - knowledge-base retrieval over what customers and admins
 * write: the bytes as a question (a customer's message, a search's q) ranked
 * against the shipped help center (data/kb/helpcenter.json), and, after a
 * first "\0\0", as an article of its own ("title\nbody") indexed beside two
 * others and asked the question. Hits come best first, within the limit,
 * with a snippet that is valid UTF-8 whenever the article's body is. */
#include <jansson.h>
#include <stdio.h>
#include "core/event.h"
#include "core/kb.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

static oh_kb *shipped;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_error_t e;
    json_t *all = json_load_file(FUZZ_KB_ARTICLES, 0, &e);
    size_t n = json_array_size(all), i;
    struct oh_kb_article *a = calloc(n ? n : 1, sizeof *a);
    const char **tags = calloc(n * 16 + 1, sizeof *tags);
    json_t *v;
    if (!all || !a || !tags) {
        fprintf(stderr, "fuzz_kb: %s: %s\n", FUZZ_KB_ARTICLES, e.text);
        abort();
    }
    json_array_foreach(all, i, v)
    {
        const json_t *t = json_object_get(v, "tags");
        a[i] = (struct oh_kb_article){json_string_value(json_object_get(v, "id")),
                                      json_string_value(json_object_get(v, "title")),
                                      json_string_value(json_object_get(v, "body")),
                                      json_string_value(json_object_get(v, "locale")),
                                      tags + i * 16,
                                      json_array_size(t) < 16 ? json_array_size(t) : 16};
        for (size_t k = 0; k < a[i].ntags; k++)
            tags[i * 16 + k] = json_string_value(json_array_get(t, k));
    }
    char err[256] = "";
    if (!(shipped = oh_kb_new(a, n, err, sizeof err))) {
        fprintf(stderr, "fuzz_kb: %s\n", err);
        abort();
    }
    free(tags);
    free(a);
    json_decref(all);
    return 0;
}

static void ask(const oh_kb *kb, const char *q, size_t len, size_t limit, const char *locale,
                bool bodies_valid)
{
    static const char *const langs[] = {"en", "es", "de", "pt", "fr"};
    struct oh_kb_hit hits[OH_KB_MAX_HITS + 1];
    size_t n = 99;
    double conf = -1;
    char lang[4] = "";
    if (oh_kb_query(kb, q, len, limit, locale, hits, &n, &conf, lang) != 0) abort();
    bool known = false;
    for (size_t i = 0; i < sizeof langs / sizeof *langs; i++)
        known |= strcmp(lang, langs[i]) == 0;
    if (!known || n > limit || n > OH_KB_MAX_HITS || !(conf >= 0 && conf <= 1) || (n && conf == 0))
        abort();
    for (size_t i = 0; i < n; i++) {
        size_t sl = strnlen(hits[i].snippet, OH_KB_SNIPPET);
        if (sl == OH_KB_SNIPPET || !hits[i].id || !hits[i].title || !(hits[i].score > 0) ||
            (i && hits[i].score > hits[i - 1].score) ||
            (bodies_valid && !oh_utf8_valid(hits[i].snippet, sl)))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const locales[] = {NULL, "", "en", "es-MX", "de", "x"};
    const uint8_t *sep = size >= 2 ? memmem(data, size, "\0\0", 2) : NULL;
    size_t len = sep ? (size_t)(sep - data) : size;
    char *q = malloc(len ? len : 1); /* exactly as long as it is */
    if (!q) abort();
    memcpy(q, data, len);
    size_t limit = size ? data[size - 1] % 12 : 5; /* the API asks for a few */
    ask(shipped, q, len, limit, locales[size % 6], true);
    if (sep) {
        /* an admin's article: a title line, then the body */
        char *art = fuzz_cstr(sep + 2, size - len - 2), *body = strchr(art, '\n');
        if (body) *body++ = '\0';
        const char *tags[] = {art, "shipping"};
        struct oh_kb_article a[3] = {{"fuzzed", art, body, len % 2 ? "es" : NULL, tags, 2},
                                     {"returns", "Returns",
                                      "Return anything within 30 days. Refunds take 5 days.", "en",
                                      NULL, 0},
                                     {"envios",
                                      "Env\xc3\xad"
                                      "os",
                                      "Los env\xc3\xad"
                                      "os tardan 3 d\xc3\xad"
                                      "as.",
                                      "es", NULL, 0}};
        char err[256];
        oh_kb *kb = oh_kb_new(a, 3, err, sizeof err);
        if (!kb) abort();
        bool valid = !body || oh_utf8_valid(body, strlen(body));
        ask(kb, q, len, limit, locales[size % 6], valid);
        ask(kb, art, strlen(art), OH_KB_MAX_HITS, NULL, valid);
        oh_kb_free(kb);
        free(art);
    }
    free(q);
    return 0;
}
