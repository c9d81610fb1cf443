/* config.c - YAML configuration (libyaml) flattened to dotted keys, checked
 * against the declared key tables, then overridden by OMNIHUB_* variables. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "core/config.h"

extern char **environ;

struct entry {
    const struct oh_config_key *decl;
    char *value;  /* text; NULL when unset */
    char **items; /* OH_CFG_LIST: NULL-terminated */
    size_t nitems;
    bool set;      /* given by file or environment */
    bool from_env; /* the last value came from OMNIHUB_* */
    size_t line;   /* where the file gave it, 0 = not from the file */
};

struct oh_config {
    struct entry *e;
    size_t n;
    char *path; /* the file loaded, or NULL */
};

static struct entry *find(const oh_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->e[i].decl->key, key) == 0) return &cfg->e[i];
    return NULL;
}

static void free_items(struct entry *e)
{
    for (size_t i = 0; i < e->nitems; i++)
        free(e->items[i]);
    free(e->items);
    e->items = NULL;
    e->nitems = 0;
}

void oh_config_free(oh_config *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < cfg->n; i++) {
        free(cfg->e[i].value);
        free_items(&cfg->e[i]);
    }
    free(cfg->e);
    free(cfg->path);
    free(cfg);
}

static int parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return OH_EINVAL;
    *out = v;
    return OH_OK;
}

static int parse_size(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0) return OH_EINVAL;
    int shift = 0;
    switch (tolower((unsigned char)*end)) {
    case '\0': break;
    case 'k':
        shift = 10;
        end++;
        break;
    case 'm':
        shift = 20;
        end++;
        break;
    case 'g':
        shift = 30;
        end++;
        break;
    default: return OH_EINVAL;
    }
    if (*end == 'i' || *end == 'I') end++;
    if (*end == 'b' || *end == 'B') end++;
    if (*end || v > (INT64_MAX >> shift)) return OH_EINVAL;
    *out = (int64_t)v << shift;
    return OH_OK;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = true, OH_OK;
        if (strcasecmp(s, no[i]) == 0) return *out = false, OH_OK;
    }
    return OH_EINVAL;
}

/* Checks VALUE against E's type and stores it. */
static int assign(struct entry *e, const char *value, char *err, size_t errlen)
{
    int64_t i;
    bool b;
    switch (e->decl->type) {
    case OH_CFG_INT:
        if (parse_int(value, &i)) {
            oh_errf(err, errlen, "%s: expected an integer, got \"%s\"", e->decl->key, value);
            return OH_EINVAL;
        }
        break;
    case OH_CFG_SIZE:
        if (parse_size(value, &i)) {
            oh_errf(err, errlen, "%s: expected a size like 512k or 1m, got \"%s\"", e->decl->key,
                    value);
            return OH_EINVAL;
        }
        break;
    case OH_CFG_BOOL:
        if (parse_bool(value, &b)) {
            oh_errf(err, errlen, "%s: expected true or false, got \"%s\"", e->decl->key, value);
            return OH_EINVAL;
        }
        break;
    case OH_CFG_LIST: {
        /* a scalar for a list: comma separated */
        free_items(e);
        char *copy = strdup(value), *save = NULL;
        if (!copy) return OH_ENOMEM;
        size_t cap = 1;
        for (const char *c = value; *c; c++)
            cap += *c == ',';
        e->items = calloc(cap + 1, sizeof *e->items);
        for (char *t = strtok_r(copy, ",", &save); t && e->items; t = strtok_r(NULL, ",", &save)) {
            while (isspace((unsigned char)*t))
                t++;
            if (*t) e->items[e->nitems++] = strdup(t);
        }
        free(copy);
        break;
    }
    default: break;
    }
    char *v = strdup(value);
    if (!v) return OH_ENOMEM;
    free(e->value);
    e->value = v;
    e->set = true;
    return OH_OK;
}

static int add_item(struct entry *e, const char *value)
{
    char **p = realloc(e->items, (e->nitems + 2) * sizeof *p);
    if (!p) return OH_ENOMEM;
    e->items = p;
    e->items[e->nitems++] = strdup(value);
    e->items[e->nitems] = NULL;
    e->set = true;
    return OH_OK;
}

/* Walks the YAML event stream keeping the path of mapping keys. */
static int load_file(oh_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        oh_errf(err, errlen, "%s:0: cannot open: %s", path, strerror(errno));
        return OH_EIO;
    }
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    char keys[16][128];
    bool expect_key[16];
    int depth = -1, rc = OH_OK;
    struct entry *seq = NULL; /* list being filled */
    bool done = false;
    while (!done && rc == OH_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            oh_errf(err, errlen, "%s:%zu: %s", path, p.problem_mark.line + 1,
                    p.problem ? p.problem : "YAML syntax error");
            rc = OH_EINVAL;
            break;
        }
        size_t line = ev.start_mark.line + 1;
        char full[1024];
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = true; break;
        case YAML_MAPPING_START_EVENT:
            if (seq) {
                oh_errf(err, errlen, "%s:%zu: %s: expected a list of strings", path, line,
                        seq->decl->key);
                rc = OH_EINVAL;
            } else if (++depth >= 16) {
                oh_errf(err, errlen, "%s:%zu: nesting too deep", path, line);
                rc = OH_EINVAL;
            } else {
                expect_key[depth] = true;
            }
            break;
        case YAML_MAPPING_END_EVENT:
            depth--;
            if (depth >= 0) expect_key[depth] = true;
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_SCALAR_EVENT:
            if (depth < 0) {
                oh_errf(err, errlen, "%s:%zu: the top level must be a mapping", path, line);
                rc = OH_EINVAL;
                break;
            }
            if (seq && ev.type == YAML_SCALAR_EVENT) {
                rc = add_item(seq, (const char *)ev.data.scalar.value);
                break;
            }
            if (ev.type == YAML_SCALAR_EVENT && expect_key[depth]) {
                snprintf(keys[depth], sizeof keys[depth], "%s", ev.data.scalar.value);
                expect_key[depth] = false;
                break;
            }
            full[0] = '\0';
            for (int d = 0; d <= depth; d++)
                snprintf(full + strlen(full), sizeof full - strlen(full), "%s%s", d ? "." : "",
                         keys[d]);
            struct entry *e = find(cfg, full);
            if (!e) {
                oh_errf(err, errlen, "%s:%zu: unknown key \"%s\"", path, line, full);
                rc = OH_EINVAL;
                break;
            }
            expect_key[depth] = true;
            if (ev.type == YAML_SEQUENCE_START_EVENT) {
                if (e->decl->type != OH_CFG_LIST) {
                    oh_errf(err, errlen, "%s:%zu: %s: a list is not allowed here", path, line,
                            full);
                    rc = OH_EINVAL;
                    break;
                }
                free_items(e);
                seq = e;
                free(e->value);
                e->value = strdup("");
                e->set = true;
            } else {
                char msg[512];
                rc = assign(e, (const char *)ev.data.scalar.value, msg, sizeof msg);
                if (rc) oh_errf(err, errlen, "%s:%zu: %s", path, line, msg);
            }
            e->line = line;
            break;
        case YAML_SEQUENCE_END_EVENT: seq = NULL; break;
        case YAML_ALIAS_EVENT:
            oh_errf(err, errlen, "%s:%zu: aliases are not supported", path, line);
            rc = OH_EINVAL;
            break;
        default: break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}

/* "http.listen" -> "OMNIHUB_HTTP_LISTEN"; LEN > 8 */
static void env_name(const char *key, char *out, size_t len)
{
    memcpy(out, "OMNIHUB_", 8);
    size_t o = 8;
    for (const char *c = key; *c && o + 1 < len; c++)
        out[o++] = *c == '.' ? '_' : (char)toupper((unsigned char)*c);
    out[o] = '\0';
}

static const char *env_lookup(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

oh_config *oh_config_load(const char *path, const struct oh_config_key *const *tables,
                          char *const *envp, char *err, size_t errlen)
{
    oh_config *cfg = calloc(1, sizeof *cfg);
    size_t cap = 0;
    for (size_t t = 0; tables[t]; t++)
        for (const struct oh_config_key *k = tables[t]; k->key; k++)
            cap++;
    if (!cfg || !(cfg->e = calloc(cap ? cap : 1, sizeof *cfg->e))) {
        free(cfg);
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t t = 0; tables[t]; t++)
        for (const struct oh_config_key *k = tables[t]; k->key; k++) {
            if (find(cfg, k->key)) continue;
            struct entry *e = &cfg->e[cfg->n++];
            e->decl = k;
            if (k->def && assign(e, k->def, err, errlen)) {
                oh_config_free(cfg);
                return NULL;
            }
            e->set = false;
        }
    if (path && (!(cfg->path = strdup(path)) || load_file(cfg, path, err, errlen))) {
        if (!cfg->path) oh_errf(err, errlen, "out of memory");
        oh_config_free(cfg);
        return NULL;
    }
    if (!envp) envp = environ;
    for (size_t i = 0; i < cfg->n; i++) {
        char name[256];
        env_name(cfg->e[i].decl->key, name, sizeof name);
        const char *v = env_lookup(envp, name);
        char msg[512];
        if (v && assign(&cfg->e[i], v, msg, sizeof msg)) {
            oh_errf(err, errlen, "environment %s: %s", name, msg);
            oh_config_free(cfg);
            return NULL;
        }
        if (v) cfg->e[i].from_env = true;
    }
    return cfg;
}

void oh_config_where(const oh_config *cfg, const char *key, char *buf, size_t len)
{
    const struct entry *e = find(cfg, key);
    if (e && e->from_env) {
        char env[256];
        env_name(key, env, sizeof env);
        snprintf(buf, len, "environment %s", env);
    } else if (e && e->line && cfg->path) {
        snprintf(buf, len, "%s:%zu", cfg->path, e->line);
    } else {
        snprintf(buf, len, "%s", cfg->path ? cfg->path : "omnihubd");
    }
}

size_t oh_config_line(const oh_config *cfg, const char *key)
{
    const struct entry *e = find(cfg, key);
    return e && !e->from_env && cfg->path ? e->line : 0;
}

/* Variables of the project's own tools and tests, not of the daemon. */
static const char *const tool_vars[] = {"OMNIHUB_BUILD",  "OMNIHUB_VALGRIND", "OMNIHUB_FUZZ_",
                                        "OMNIHUB_TEST_",  "OMNIHUB_BENCH_",   "OMNIHUB_CRASH_",
                                        "OMNIHUB_SOURCE_ROOT"};

/* Edit distance of A and B (both short), for "did you mean". */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[257];
    if (la > 256 || lb > 256) return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t sub = diag + (a[i - 1] != b[j - 1]);
            size_t best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            diag = up;
        }
    }
    return row[lb];
}

size_t oh_config_unknown_env(const oh_config *cfg, char *const *envp,
                             void (*report)(const char *name, const char *suggestion, void *opaque),
                             void *opaque)
{
    size_t n = 0;
    if (!envp) envp = environ;
    for (char *const *v = envp; *v; v++) {
        if (strncmp(*v, "OMNIHUB_", 8) != 0) continue;
        char name[256];
        const char *eq = strchr(*v, '=');
        size_t len = eq ? (size_t)(eq - *v) : strlen(*v);
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, *v, len);
        name[len] = '\0';
        bool known = false;
        for (size_t t = 0; t < OH_ARRAY_SIZE(tool_vars) && !known; t++)
            known = strncmp(name, tool_vars[t], strlen(tool_vars[t])) == 0;
        const char *best = NULL;
        size_t best_d = 4; /* suggest only close matches */
        char env[256];
        for (size_t i = 0; i < cfg->n && !known; i++) {
            env_name(cfg->e[i].decl->key, env, sizeof env);
            size_t d = distance(name, env);
            if (d == 0) known = true;
            if (d < best_d) {
                best_d = d;
                best = cfg->e[i].decl->key;
            }
        }
        if (known) continue;
        if (best) env_name(best, env, sizeof env);
        report(name, best ? env : NULL, opaque);
        n++;
    }
    return n;
}

static struct entry *get(const oh_config *cfg, const char *key)
{
    struct entry *e = cfg ? find(cfg, key) : NULL;
#ifndef NDEBUG
    if (cfg && !e) {
        fprintf(stderr, "omnihub: undeclared config key %s\n", key);
        abort();
    }
#endif
    return e;
}

const char *oh_config_str(const oh_config *cfg, const char *key)
{
    struct entry *e = get(cfg, key);
    return e && e->value && (*e->value || e->decl->type != OH_CFG_SECRET) ? e->value : NULL;
}

int64_t oh_config_int(const oh_config *cfg, const char *key)
{
    struct entry *e = get(cfg, key);
    int64_t v = 0;
    if (!e || !e->value) return 0;
    if (e->decl->type == OH_CFG_SIZE)
        parse_size(e->value, &v);
    else
        parse_int(e->value, &v);
    return v;
}

bool oh_config_bool(const oh_config *cfg, const char *key)
{
    struct entry *e = get(cfg, key);
    bool b = false;
    if (e && e->value) parse_bool(e->value, &b);
    return b;
}

size_t oh_config_list(const oh_config *cfg, const char *key, const char *const **items)
{
    static const char *const none[] = {NULL};
    struct entry *e = get(cfg, key);
    if (!e || !e->nitems) {
        *items = none;
        return 0;
    }
    *items = (const char *const *)e->items;
    return e->nitems;
}

bool oh_config_is_set(const oh_config *cfg, const char *key)
{
    struct entry *e = get(cfg, key);
    return e && e->set;
}

bool oh_config_any_set(const oh_config *cfg, const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < cfg->n; i++)
        if (cfg->e[i].set && strncmp(cfg->e[i].decl->key, prefix, n) == 0) return true;
    return false;
}

int oh_config_set(oh_config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
    struct entry *e = find(cfg, key);
    if (!e) {
        oh_errf(err, errlen, "unknown key \"%s\"", key);
        return OH_EINVAL;
    }
    return assign(e, value, err, errlen);
}

int oh_config_hostport(const oh_config *cfg, const char *key, char *host, size_t hostlen,
                       int *port, char *err, size_t errlen)
{
    const char *v = oh_config_str(cfg, key);
    const char *colon = v ? strrchr(v, ':') : NULL;
    char *end = NULL;
    long p = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || !colon[1] || *end || p <= 0 || p > 65535 ||
        (size_t)(colon - v) >= hostlen || strcspn(v, " \t/") < (size_t)(colon - v)) {
        oh_errf(err, errlen, "%s must be host:port with a port in 1-65535, got \"%s\"", key,
                v ? v : "");
        return OH_EINVAL;
    }
    snprintf(host, hostlen, "%.*s", (int)(colon - v), v);
    *port = (int)p;
    return OH_OK;
}

int oh_config_require(const oh_config *cfg, const char *key, const char *why, char *err,
                      size_t errlen)
{
    const char *v = oh_config_str(cfg, key);
    if (v && *v) return OH_OK;
    char env[256];
    env_name(key, env, sizeof env);
    oh_errf(err, errlen, "%s is required %s (set it in the config file or %s)", key, why, env);
    return OH_EINVAL;
}

static const struct oh_config_key *declared(const struct oh_config_key *keys, const char *key)
{
    for (const struct oh_config_key *k = keys; k->key; k++)
        if (strcmp(k->key, key) == 0) return k;
    return NULL;
}

int oh_config_map(const oh_config *cfg, const struct oh_config_key *keys,
                  const struct oh_config_field *map, void *out)
{
    int rc = OH_OK;
    for (const struct oh_config_field *m = map; m->key; m++) {
        const struct oh_config_key *k = declared(keys, m->key);
        if (!k) return OH_EINVAL;
        void *f = (char *)out + m->offset;
        switch (k->type) {
        case OH_CFG_STR:
        case OH_CFG_SECRET: {
            const char *v = oh_config_str(cfg, k->key);
            char *copy = v ? strdup(v) : NULL;
            if (v && !copy) rc = OH_ENOMEM;
            memcpy(f, &copy, sizeof copy);
            break;
        }
        case OH_CFG_INT:
        case OH_CFG_SIZE: {
            int64_t v = oh_config_int(cfg, k->key);
            memcpy(f, &v, sizeof v);
            break;
        }
        case OH_CFG_BOOL: {
            bool v = oh_config_bool(cfg, k->key);
            memcpy(f, &v, sizeof v);
            break;
        }
        case OH_CFG_LIST: {
            const char *const *items = NULL;
            size_t n = oh_config_list(cfg, k->key, &items);
            char **copy = n ? calloc(n + 1, sizeof *copy) : NULL;
            if (n && !copy) rc = OH_ENOMEM;
            for (size_t i = 0; copy && i < n; i++)
                if (!(copy[i] = strdup(items[i]))) rc = OH_ENOMEM;
            memcpy(f, &copy, sizeof copy);
            break;
        }
        }
    }
    return rc;
}

void oh_config_map_free(const struct oh_config_key *keys, const struct oh_config_field *map,
                        void *out)
{
    if (!out) return;
    for (const struct oh_config_field *m = map; m->key; m++) {
        const struct oh_config_key *k = declared(keys, m->key);
        void *f = (char *)out + m->offset;
        if (k && (k->type == OH_CFG_STR || k->type == OH_CFG_SECRET)) {
            char *s;
            memcpy(&s, f, sizeof s);
            free(s);
            memset(f, 0, sizeof s);
        } else if (k && k->type == OH_CFG_LIST) {
            char **v;
            memcpy(&v, f, sizeof v);
            for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
            free(v);
            memset(f, 0, sizeof v);
        }
    }
}
