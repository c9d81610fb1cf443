/* kb_api.c - the knowledge base's routes: articles (GET agents; PUT and
 * DELETE admins, who manage the knowledge base), search, canned responses,
 * and the dispatch of the desk's AI routes (suggest_api.c). A change is
 * stored, then the index is rebuilt from the store and swapped in before
 * the answer (core/kbase.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/gateway_int.h"
#include "core/kbase.h"
#include "gateway/kb_int.h"

#define MAX_KB_ID     128
#define MAX_TITLE     512
#define MAX_BODY      65536
#define MAX_LOCALE    16
#define MAX_TAGS      32
#define MAX_TAG       64
#define MAX_CANNED    1000
#define MAX_CANNED_TX 4096
#define MAX_LIMIT     50

/* ---- the rebuilds: one at a time per index, each covering every change
 * stored before it began; a writer waits for one that began after its
 * write (runs on workers) ---- */

struct rebuild {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t asked, built;
    bool running;
    int rc;
};

static void rebuild_init(struct rebuild *b)
{
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
}

static void rebuild_free(struct rebuild *b)
{
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
}

/* After a change of the store: returns once an index that holds it is in. */
static int rebuild_after_write(struct oh_gateway *gw, struct rebuild *b, bool canned)
{
    pthread_mutex_lock(&b->mu);
    uint64_t mine = ++b->asked;
    while (b->running && b->built < mine)
        pthread_cond_wait(&b->cv, &b->mu);
    if (b->built >= mine) {
        int rc = b->rc;
        pthread_mutex_unlock(&b->mu);
        return rc;
    }
    b->running = true;
    while (b->built < b->asked) {
        uint64_t target = b->asked;
        pthread_mutex_unlock(&b->mu);
        char err[256];
        int rc = oh_hub_kb_reload(gw->hub, canned, err, sizeof err);
        if (rc) OH_WARN("kb", "rebuilding the %s index: %s", canned ? "canned" : "article", err);
        pthread_mutex_lock(&b->mu);
        b->built = target;
        b->rc = rc;
        pthread_cond_broadcast(&b->cv);
    }
    b->running = false;
    int rc = b->rc;
    pthread_mutex_unlock(&b->mu);
    return rc;
}

struct gw_kb {
    struct rebuild articles, canned;
};

int gw_kb_init(struct oh_gateway *gw, char *err, size_t errlen)
{
    struct gw_kb *k = calloc(1, sizeof *k);
    if (!k) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    rebuild_init(&k->articles);
    rebuild_init(&k->canned);
    gw->kb = k;
    int rc = gw_suggest_init(gw, err, errlen);
    return rc;
}

void gw_kb_drain(struct oh_gateway *gw)
{
    gw_suggest_drain(gw);
}

void gw_kb_free(struct oh_gateway *gw)
{
    if (!gw->kb) return;
    gw_suggest_drain(gw);
    rebuild_free(&gw->kb->articles);
    rebuild_free(&gw->kb->canned);
    free(gw->kb);
    gw->kb = NULL;
}

/* ---- helpers ---- */

static bool id_valid(const char *s, size_t n)
{
    if (n == 0 || n > MAX_KB_ID) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

static bool locale_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > MAX_LOCALE) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

/* A string member of 1..MAX bytes, or absent when OPTIONAL. */
static bool str_ok(const json_t *v, size_t max, bool optional)
{
    if (!v) return optional;
    return json_is_string(v) && json_string_length(v) >= 1 && json_string_length(v) <= max;
}

static bool json_body(struct req *r, json_t **out)
{
    json_error_t e;
    *out = r->body ? json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e) : NULL;
    if (!*out || !json_is_object(*out)) {
        gw_reply_error(r, 400, "bad_request", "body must be a JSON object%s%s", *out ? "" : ": ",
                       *out ? "" : (r->body ? e.text : "empty body"));
        json_decref(*out);
        *out = NULL;
        return false;
    }
    return true;
}

static void reply_store_error(struct req *r, int rc)
{
    if (rc == OH_ENOTFOUND)
        gw_reply_error(r, 404, "not_found", "no such %s",
                       strncmp(r->path, "/v1/canned", 10) == 0 ? "canned response" : "article");
    else
        gw_reply_store_error(r, rc);
}

/* ---- articles ---- */

struct art_req {
    char id[MAX_KB_ID + 1];
    json_t *body;
};

static void art_req_free(void *p)
{
    struct art_req *a = p;
    json_decref(a->body);
    free(a);
}

static json_t *article_json(const struct oh_store_article *a)
{
    char when[32];
    oh_time_rfc3339(when, a->updated_ms);
    json_t *tags = json_loads(a->tags, 0, NULL);
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:o, s:s}", "id", a->id, "version",
                     (json_int_t)a->version, "title", a->title, "body", a->body, "locale",
                     a->locale, "tags", json_is_array(tags) ? tags : json_array(), "updated_at",
                     when);
}

static int article_out(void *opaque, const struct oh_store_article *a)
{
    *(json_t **)opaque = article_json(a);
    return 1;
}

static void article_get_work(void *opaque)
{
    struct req *r = opaque;
    struct art_req *a = r->state;
    json_t *o = NULL;
    int rc = oh_store_article_get(r->gw->hub->store, a->id, article_out, &o);
    if (rc == OH_OK && o)
        gw_reply_json(r, 200, o);
    else
        reply_store_error(r, rc ? rc : OH_ENOMEM);
    gw_complete(r);
}

static int nothing_row(void *opaque, const struct oh_store_article *a)
{
    (void)opaque;
    (void)a;
    return 1;
}

static void article_put_work(void *opaque)
{
    struct req *r = opaque;
    struct art_req *a = r->state;
    oh_hub *hub = r->gw->hub;
    const json_t *b = a->body;
    /* a new id must fit under kb.max_articles */
    void *ref;
    const oh_kb *idx = oh_kbase_get(hub->kb, &ref);
    size_t have = idx ? oh_kb_count(idx) : 0;
    oh_kbase_put(ref);
    int rc = OH_OK;
    if ((int64_t)have >= oh_config_int(hub->cfg, "kb.max_articles") &&
        (rc = oh_store_article_get(hub->store, a->id, nothing_row, NULL)) == OH_ENOTFOUND) {
        gw_reply_error(r, 409, "conflict", "the knowledge base holds kb.max_articles articles");
        gw_complete(r);
        return;
    }
    const json_t *tv = json_object_get(b, "tags");
    char *tags = tv ? json_dumps(tv, JSON_COMPACT) : NULL;
    const char *locale = json_string_value(json_object_get(b, "locale"));
    struct oh_store_article art = {
        .id = a->id,
        .title = json_string_value(json_object_get(b, "title")),
        .body = json_string_value(json_object_get(b, "body")),
        .locale = locale ? locale : "en",
        .tags = tags ? tags : "[]",
        .updated_ms = oh_now_ms(),
    };
    int64_t version = 0;
    rc = oh_store_article_put(hub->store, &art, &version);
    free(tags);
    if (rc == OH_OK) rc = rebuild_after_write(r->gw, &r->gw->kb->articles, false);
    if (rc)
        gw_reply_error(r, 503, "unavailable", "%s", oh_strerror(rc));
    else
        gw_reply_json(r, 200, json_pack("{s:s, s:I}", "id", a->id, "version", (json_int_t)version));
    gw_complete(r);
}

static void article_del_work(void *opaque)
{
    struct req *r = opaque;
    struct art_req *a = r->state;
    int rc = oh_store_article_del(r->gw->hub->store, a->id);
    if (rc == OH_OK) rc = rebuild_after_write(r->gw, &r->gw->kb->articles, false);
    if (rc)
        reply_store_error(r, rc);
    else
        gw_reply_json(r, 200, json_pack("{s:s, s:b}", "id", a->id, "deleted", 1));
    gw_complete(r);
}

/* Checks an article's PUT body: 0 or answers 400. */
static bool article_body_ok(struct req *r, const json_t *b)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)b, k, v)
    {
        if (strcmp(k, "title") && strcmp(k, "body") && strcmp(k, "locale") && strcmp(k, "tags")) {
            gw_reply_error(r, 400, "bad_request", "unknown member \"%.64s\"", k);
            return false;
        }
    }
    if (!str_ok(json_object_get(b, "title"), MAX_TITLE, false)) {
        gw_reply_error(r, 400, "bad_request", "title must be a string of 1..%d bytes", MAX_TITLE);
        return false;
    }
    if (!str_ok(json_object_get(b, "body"), MAX_BODY, false)) {
        gw_reply_error(r, 400, "bad_request", "body must be a string of 1..%d bytes", MAX_BODY);
        return false;
    }
    const json_t *loc = json_object_get(b, "locale");
    if (loc && (!json_is_string(loc) || !locale_valid(json_string_value(loc)))) {
        gw_reply_error(r, 400, "bad_request", "locale must be a BCP 47 tag such as \"en\"");
        return false;
    }
    const json_t *tags = json_object_get(b, "tags");
    size_t i;
    if (tags && (!json_is_array(tags) || json_array_size(tags) > MAX_TAGS)) {
        gw_reply_error(r, 400, "bad_request", "tags must be an array of at most %d strings",
                       MAX_TAGS);
        return false;
    }
    json_array_foreach(tags, i, v) if (!str_ok(v, MAX_TAG, false))
    {
        gw_reply_error(r, 400, "bad_request", "tags[%zu] must be a string of 1..%d bytes", i,
                       MAX_TAG);
        return false;
    }
    return true;
}

static void route_article(struct req *r, const char *id)
{
    snprintf(r->route, sizeof r->route, "/v1/kb/articles/{id}");
    if (!id_valid(id, strlen(id))) {
        gw_reply_error(r, 404, "not_found", "no such article");
        return;
    }
    bool put = strcmp(r->method, "PUT") == 0, get = strcmp(r->method, "GET") == 0,
         del = strcmp(r->method, "DELETE") == 0;
    if (!put && !get && !del) {
        gw_reply_error(r, 405, "method_not_allowed", "use GET, PUT or DELETE");
        return;
    }
    if ((put || del) && r->who.role != OH_ROLE_ADMIN) {
        gw_reply_error(r, 403, "forbidden", "only admins write the knowledge base");
        return;
    }
    struct art_req *a = gw_state_new(r, sizeof *a, art_req_free);
    if (!a) return;
    snprintf(a->id, sizeof a->id, "%s", id);
    if (put && (!json_body(r, &a->body) || !article_body_ok(r, a->body))) return;
    gw_async(r, put ? article_put_work : get ? article_get_work : article_del_work);
}

/* ---- search ---- */

struct search_req {
    char q[OH_KB_MAX_QUERY + 1];
    char locale[MAX_LOCALE + 1];
    size_t limit;
};

static void search_work(void *opaque)
{
    struct req *r = opaque;
    struct search_req *s = r->state;
    struct oh_kb_hit hits[MAX_LIMIT];
    size_t n = 0;
    double conf = 0;
    char lang[4] = "";
    void *ref;
    const oh_kb *idx = oh_kbase_get(r->gw->hub->kb, &ref);
    int rc = idx ? oh_kb_query(idx, s->q, strlen(s->q), s->limit, s->locale[0] ? s->locale : NULL,
                               hits, &n, &conf, lang)
                 : OH_OK;
    if (rc == OH_OK) {
        json_t *res = gw_kb_hits_json(hits, n);
        gw_reply_json(r, 200,
                      json_pack("{s:o, s:f, s:s}", "results", res ? res : json_array(),
                                "confidence", conf, "language", lang[0] ? lang : "en"));
    } else {
        gw_reply_error(r, 500, "internal", "search: %s", oh_strerror(rc));
    }
    oh_kbase_put(ref); /* after the answer: the hits borrow the index's strings */
    gw_complete(r);
}

/* POST /v1/kb/search's body {q, limit?, locale?} into S and LIM/LOCALE as
 * the query string would give them: false after answering 400. */
static bool search_body(struct req *r, struct search_req *s, char *lim, size_t limlen, bool *has_q)
{
    json_t *b;
    if (!json_body(r, &b)) return false;
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v) if (strcmp(k, "q") && strcmp(k, "limit") && strcmp(k, "locale"))
    {
        gw_reply_error(r, 400, "bad_request", "unknown member \"%.64s\"", k);
        json_decref(b);
        return false;
    }
    const json_t *q = json_object_get(b, "q"), *l = json_object_get(b, "limit"),
                 *loc = json_object_get(b, "locale");
    if ((q && !json_is_string(q)) || (l && !json_is_integer(l)) || (loc && !json_is_string(loc))) {
        gw_reply_error(r, 400, "bad_request", "q and locale must be strings, limit an integer");
        json_decref(b);
        return false;
    }
    if (q) {
        /* the first OH_KB_MAX_QUERY bytes, cut at a character */
        size_t n = json_string_length(q);
        const char *t = json_string_value(q);
        if (n > OH_KB_MAX_QUERY) {
            n = OH_KB_MAX_QUERY;
            while (n > 0 && ((unsigned char)t[n] & 0xC0) == 0x80)
                n--;
        }
        memcpy(s->q, t, n);
        s->q[n] = '\0';
        *has_q = true;
    }
    if (l) snprintf(lim, limlen, "%lld", (long long)json_integer_value(l));
    if (loc)
        snprintf(s->locale, sizeof s->locale, "%.*s", (int)sizeof s->locale - 1,
                 json_string_value(loc));
    if (loc && json_string_length(loc) >= sizeof s->locale) s->locale[1] = '!'; /* invalid */
    json_decref(b);
    return true;
}

static void route_search(struct req *r)
{
    snprintf(r->route, sizeof r->route, "/v1/kb/search");
    bool post = strcmp(r->method, "POST") == 0;
    if (!post && strcmp(r->method, "GET") != 0) {
        gw_reply_error(r, 405, "method_not_allowed", "use GET (or POST for a long question)");
        return;
    }
    struct search_req *s = gw_state_new(r, sizeof *s, free);
    char lim[24] = "";
    if (!s) return;
    bool has_q = false, has_locale;
    if (post) {
        if (!search_body(r, s, lim, sizeof lim, &has_q)) return;
        has_locale = s->locale[0] != '\0';
    } else {
        static const char *const params[] = {"q", "limit", "locale"};
        if (!gw_query_once(r, params, OH_ARRAY_SIZE(params), false)) return;
        has_q = gw_query(r, "q", s->q, sizeof s->q);
        /* a value too long for its buffer is given, and invalid */
        if (!gw_query(r, "limit", lim, sizeof lim))
            snprintf(lim, sizeof lim, "%s", gw_query_has(r, "limit") ? "!" : "");
        has_locale = gw_query_has(r, "locale");
        if (has_locale && !gw_query(r, "locale", s->locale, sizeof s->locale))
            snprintf(s->locale, sizeof s->locale, "!");
    }
    const char *p = s->q;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    s->limit = 5;
    if (!has_q || !*p) {
        gw_reply_error(r, 400, "bad_request",
                       "q must be a non-empty question (a long one: POST {\"q\": ...})");
    } else if (!oh_utf8_valid(s->q, strlen(s->q))) {
        gw_reply_error(r, 400, "bad_request", "q must be UTF-8");
    } else if (lim[0] && (atoi(lim) < 1 || atoi(lim) > MAX_LIMIT ||
                          strspn(lim, "0123456789") != strlen(lim))) {
        gw_reply_error(r, 400, "bad_request", "limit must be 1..%d", MAX_LIMIT);
    } else if (has_locale && s->locale[0] && !locale_valid(s->locale)) {
        gw_reply_error(r, 400, "bad_request", "locale must be a BCP 47 tag such as \"en\"");
    } else {
        if (lim[0]) s->limit = (size_t)atoi(lim);
        gw_async(r, search_work);
    }
}

/* ---- canned responses (kv namespace OH_CANNED_NS) ---- */

static void canned_get_work(void *opaque)
{
    struct req *r = opaque;
    struct art_req *a = r->state;
    char buf[2 * MAX_CANNED_TX + 1024];
    int rc = oh_store_kv_get(r->gw->hub->store, OH_CANNED_NS, a->id, buf, sizeof buf);
    json_t *o = rc == OH_OK ? json_loads(buf, 0, NULL) : NULL;
    if (o)
        gw_reply_json(r, 200, o);
    else
        reply_store_error(r, rc ? rc : OH_EIO);
    gw_complete(r);
}

static void canned_put_work(void *opaque)
{
    struct req *r = opaque;
    struct art_req *a = r->state;
    oh_hub *hub = r->gw->hub;
    void *ref;
    const oh_kb *idx = oh_kbase_get(hub->canned, &ref);
    size_t have = idx ? oh_kb_count(idx) : 0;
    oh_kbase_put(ref);
    char buf[2 * MAX_CANNED_TX + 1024];
    int rc = OH_OK;
    if (have >= MAX_CANNED &&
        (rc = oh_store_kv_get(hub->store, OH_CANNED_NS, a->id, buf, sizeof buf)) == OH_ENOTFOUND) {
        gw_reply_error(r, 409, "conflict", "there are %d canned responses already", MAX_CANNED);
        gw_complete(r);
        return;
    }
    char when[32];
    oh_time_rfc3339(when, oh_now_ms());
    const char *title = json_string_value(json_object_get(a->body, "title"));
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "id", a->id, "title", title ? title : "", "text",
                          json_string_value(json_object_get(a->body, "text")), "updated_at", when);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    rc = text ? oh_store_kv_put(hub->store, OH_CANNED_NS, a->id, text) : OH_ENOMEM;
    free(text);
    if (rc == OH_OK) rc = rebuild_after_write(r->gw, &r->gw->kb->canned, true);
    if (rc) {
        json_decref(o);
        gw_reply_error(r, 503, "unavailable", "%s", oh_strerror(rc));
    } else {
        gw_reply_json(r, 200, o);
    }
    gw_complete(r);
}

static void canned_del_work(void *opaque)
{
    struct req *r = opaque;
    struct art_req *a = r->state;
    oh_store *st = r->gw->hub->store;
    char buf[2 * MAX_CANNED_TX + 1024];
    int rc = oh_store_kv_get(st, OH_CANNED_NS, a->id, buf, sizeof buf);
    if (rc == OH_OK || rc == OH_ETOOBIG) rc = oh_store_kv_del(st, OH_CANNED_NS, a->id);
    if (rc == OH_OK) rc = rebuild_after_write(r->gw, &r->gw->kb->canned, true);
    if (rc)
        reply_store_error(r, rc);
    else
        gw_reply_json(r, 200, json_pack("{s:s, s:b}", "id", a->id, "deleted", 1));
    gw_complete(r);
}

static int canned_row(void *opaque, const char *key, const char *value)
{
    (void)key;
    json_t *o = json_loads(value, 0, NULL);
    if (o) json_array_append_new(opaque, o);
    return json_array_size(opaque) >= MAX_CANNED;
}

static void canned_list_work(void *opaque)
{
    struct req *r = opaque;
    json_t *list = json_array();
    int rc = list ? oh_store_kv_scan(r->gw->hub->store, OH_CANNED_NS, canned_row, list) : OH_ENOMEM;
    if (rc) {
        json_decref(list);
        reply_store_error(r, rc);
    } else {
        gw_reply_json(r, 200, json_pack("{s:o}", "canned", list));
    }
    gw_complete(r);
}

static void route_canned(struct req *r, const char *id)
{
    bool put = strcmp(r->method, "PUT") == 0, get = strcmp(r->method, "GET") == 0,
         del = strcmp(r->method, "DELETE") == 0;
    if (!id) {
        snprintf(r->route, sizeof r->route, "/v1/canned");
        if (!get)
            gw_reply_error(r, 405, "method_not_allowed", "use GET");
        else
            gw_async(r, canned_list_work);
        return;
    }
    snprintf(r->route, sizeof r->route, "/v1/canned/{id}");
    if (!id_valid(id, strlen(id))) {
        gw_reply_error(r, 404, "not_found", "no such canned response");
        return;
    }
    if (!put && !get && !del) {
        gw_reply_error(r, 405, "method_not_allowed", "use GET, PUT or DELETE");
        return;
    }
    struct art_req *a = gw_state_new(r, sizeof *a, art_req_free);
    if (!a) return;
    snprintf(a->id, sizeof a->id, "%s", id);
    if (put) {
        const char *k;
        json_t *v;
        if (!json_body(r, &a->body)) return;
        json_object_foreach(a->body, k, v) if (strcmp(k, "title") && strcmp(k, "text"))
        {
            gw_reply_error(r, 400, "bad_request", "unknown member \"%.64s\"", k);
            return;
        }
        if (!str_ok(json_object_get(a->body, "text"), MAX_CANNED_TX, false) ||
            !str_ok(json_object_get(a->body, "title"), MAX_TITLE, true)) {
            gw_reply_error(r, 400, "bad_request",
                           "text must be a string of 1..%d bytes, title (optional) of 1..%d",
                           MAX_CANNED_TX, MAX_TITLE);
            return;
        }
    }
    gw_async(r, put ? canned_put_work : get ? canned_get_work : canned_del_work);
}

/* ---- the routes ---- */

/* "/v1/conversations/{id}/suggestions": the id in CONV. */
static bool suggestions_path(const char *p, char conv[OH_ID_MAX])
{
    static const char pre[] = "/v1/conversations/", suf[] = "/suggestions";
    size_t n = strlen(p);
    if (strncmp(p, pre, sizeof pre - 1) != 0 || n < sizeof pre - 1 + sizeof suf - 1 + 1 ||
        strcmp(p + n - (sizeof suf - 1), suf) != 0)
        return false;
    size_t idlen = n - (sizeof pre - 1) - (sizeof suf - 1);
    const char *id = p + sizeof pre - 1;
    if (memchr(id, '/', idlen) || !oh_id_valid(id, idlen)) return false;
    snprintf(conv, OH_ID_MAX, "%.*s", (int)idlen, id);
    return true;
}

bool gw_kb_route(struct req *r)
{
    const char *p = r->path;
    char conv[OH_ID_MAX];
    bool kb = strncmp(p, "/v1/kb/", 7) == 0,
         canned = strncmp(p, "/v1/canned", 10) == 0 && (p[10] == '\0' || p[10] == '/'),
         report = strcmp(p, "/v1/reports/bot") == 0, sugg = suggestions_path(p, conv);
    if (!kb && !canned && !report && !sugg) return false;
    snprintf(r->route, sizeof r->route, "/v1/kb");
    if (!gw_authenticate(r)) return true;
    if (!oh_auth_is_agent(&r->who)) {
        gw_reply_error(r, 403, "forbidden", "the knowledge base and the desk are for agents");
        return true;
    }
    if (!r->gw->hub->store || !r->gw->kb) {
        gw_reply_error(r, 503, "unavailable", "no store in this process");
        return true;
    }
    if (sugg)
        gw_suggestions(r, conv);
    else if (report)
        gw_report_bot(r);
    else if (canned)
        route_canned(r, p[10] == '/' && p[11] ? p + 11 : NULL);
    else if (strcmp(p, "/v1/kb/search") == 0)
        route_search(r);
    else if (strncmp(p, "/v1/kb/articles/", 16) == 0)
        route_article(r, p + 16);
    else
        gw_reply_error(r, 404, "not_found", "no route for %s", p);
    return true;
}
