/* kb_eval.c - `omnihubctl kb-eval`: Recall@1, Recall@3, MRR and the
 * no-answer rates of the knowledge-base ranker on labeled queries, and its
 * build/query CPU times; `omnihubctl kb-search`: one question, ranked. */
#include "kb_eval.h"
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/oh.h"

oh_kb *oh_kb_load_json(const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
        return NULL;
    }
    json_t *arr = json_is_object(root) ? json_object_get(root, "articles") : root;
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "%s: expected an array of articles", path);
        json_decref(root);
        return NULL;
    }
    size_t n = json_array_size(arr), ntags = 0;
    for (size_t i = 0; i < n; i++)
        ntags += json_array_size(json_object_get(json_array_get(arr, i), "tags"));
    struct oh_kb_article *a = calloc(n ? n : 1, sizeof *a);
    const char **tags = calloc(ntags ? ntags : 1, sizeof *tags);
    oh_kb *kb = NULL;
    if (!a || !tags) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0, t = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i), *tg = json_object_get(o, "tags");
        a[i].id = json_string_value(json_object_get(o, "id"));
        a[i].title = json_string_value(json_object_get(o, "title"));
        a[i].body = json_string_value(json_object_get(o, "body"));
        a[i].locale = json_string_value(json_object_get(o, "locale"));
        a[i].tags = tags + t;
        for (size_t k = 0; k < json_array_size(tg); k++)
            if (json_is_string(json_array_get(tg, k)))
                tags[t + a[i].ntags++] = json_string_value(json_array_get(tg, k));
        t += a[i].ntags;
        if (!a[i].id || !a[i].title || !a[i].body) {
            snprintf(err, errlen, "%s: article %zu: id, title and body are required strings", path,
                     i);
            goto done;
        }
    }
    char e[256] = "";
    if (!(kb = oh_kb_new(a, n, e, sizeof e))) snprintf(err, errlen, "%s: %s", path, e);
done:
    free(a);
    free(tags);
    json_decref(root);
    return kb;
}

/* Unescapes a TSV field in place ("\n", "\t", "\\"); returns its length. */
static size_t unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '\\' && r[1]) {
            r++;
            *w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : *r;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static bool relevant(const char *ids, const char *id)
{
    size_t n = strlen(id);
    for (const char *p = ids; *p;) {
        size_t m = strcspn(p, ",");
        if (m == n && !strncmp(p, id, n)) return true;
        p += m + (p[m] == ',');
    }
    return false;
}

int oh_kb_eval_file(const oh_kb *kb, const char *path, struct oh_kb_metrics *m, FILE *misses,
                    char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return OH_EIO;
    }
    char *line = NULL;
    size_t cap = 0;
    int no = 0, rc = 0;
    double rr = 0;
    int hit1 = 0, hit3 = 0;
    while (getline(&line, &cap, f) > 0) {
        no++;
        line[strcspn(line, "\r\n")] = '\0';
        char *tab = strchr(line, '\t');
        if (!*line) continue;
        if (!tab) {
            snprintf(err, errlen, "%s:%d: expected 'query<TAB>ids'", path, no);
            rc = OH_EINVAL;
            break;
        }
        *tab = '\0';
        const char *ids = tab + 1;
        if (no == 1 && !strcmp(line, "query")) continue;
        size_t len = unescape(line);
        struct oh_kb_hit hits[10];
        size_t n = 0;
        double conf = 0;
        char lang[4];
        if (oh_kb_query(kb, line, len, 10, NULL, hits, &n, &conf, lang)) {
            snprintf(err, errlen, "%s:%d: query failed", path, no);
            rc = OH_ENOMEM;
            break;
        }
        m->queries++;
        bool confident = conf >= OH_KB_ANSWER_THRESHOLD, wrong = false;
        if (!strcmp(ids, "-")) {
            m->unanswerable++;
            m->unans_rejected += !confident;
            wrong = confident;
        } else {
            m->answerable++;
            int rank = 0;
            for (size_t i = 0; i < n && !rank; i++)
                if (relevant(ids, hits[i].id)) rank = (int)i + 1;
            hit1 += rank == 1;
            hit3 += rank && rank <= 3;
            rr += rank ? 1.0 / rank : 0;
            m->ans_confident += confident;
            m->ans_confident_ok += confident && rank == 1;
            wrong = rank != 1 || !confident;
        }
        if (misses && wrong) {
            fprintf(misses, "%s\t[%s] conf %.2f  want %s  got", line, lang, conf, ids);
            for (size_t i = 0; i < n && i < 3; i++)
                fprintf(misses, " %s(%.2f)", hits[i].id, hits[i].score);
            fprintf(misses, "\n");
        }
    }
    free(line);
    fclose(f);
    if (rc) return rc;
    if (!m->queries) {
        snprintf(err, errlen, "%s: no queries", path);
        return OH_EINVAL;
    }
    double a = m->answerable ? m->answerable : 1;
    m->recall1 = hit1 / a;
    m->recall3 = hit3 / a;
    m->mrr = rr / a;
    m->ans_confident_rate = m->ans_confident / a;
    m->answered_precision = m->ans_confident ? (double)m->ans_confident_ok / m->ans_confident : 0;
    m->unans_rejected_rate = m->unanswerable ? (double)m->unans_rejected / m->unanswerable : 0;
    return 0;
}

void oh_kb_metrics_print(const struct oh_kb_metrics *m, FILE *out)
{
    fprintf(out, "queries %d (answerable %d, without an answer %d)\n", m->queries, m->answerable,
            m->unanswerable);
    fprintf(out, "Recall@1 %.3f\nRecall@3 %.3f\nMRR      %.3f\n", m->recall1, m->recall3, m->mrr);
    fprintf(out, "confidence threshold %.2f:\n", OH_KB_ANSWER_THRESHOLD);
    fprintf(out, "  answerable above it   %.3f (%d of %d; first hit right in %.3f of those)\n",
            m->ans_confident_rate, m->ans_confident, m->answerable, m->answered_precision);
    fprintf(out, "  no-answer below it    %.3f (%d of %d)\n", m->unans_rejected_rate,
            m->unans_rejected, m->unanswerable);
}

static double cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Words that look like product names and SKUs, so that a synthetic help
 * center grows its vocabulary as a real one does. */
static void fake_word(char *w, unsigned *seed)
{
    static const char *const syl[] = {"ka",  "lo", "mi", "tor", "zen",
                                      "vex", "ra", "qu", "pel", "sto"};
    int n = 2 + (int)(rand_r(seed) % 3);
    w[0] = '\0';
    for (int i = 0; i < n; i++)
        strcat(w, syl[rand_r(seed) % 10]);
    if (rand_r(seed) % 3 == 0) sprintf(w + strlen(w), "%u", rand_r(seed) % 1000);
}

/* Build and query CPU times with the articles of BASE plus synthetic ones up
 * to N: each made of sentences of random base articles and a few made-up
 * product words, with a unique id. */
static int bench(const char *articles, const char *queries, int n)
{
    json_t *root = json_load_file(articles, 0, NULL);
    json_t *arr = root && json_is_object(root) ? json_object_get(root, "articles") : root;
    size_t nb = json_array_size(arr);
    if (!nb) {
        json_decref(root);
        return OH_EINVAL;
    }
    struct oh_kb_article *a = calloc((size_t)n, sizeof *a);
    char **own = calloc((size_t)n * 3, sizeof *own);
    if (!a || !own) {
        free(a);
        free(own);
        json_decref(root);
        return OH_ENOMEM;
    }
    unsigned seed = 42;
    for (int i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, (size_t)i % nb);
        a[i].title = json_string_value(json_object_get(o, "title"));
        a[i].body = json_string_value(json_object_get(o, "body"));
        a[i].id = json_string_value(json_object_get(o, "id"));
        if ((size_t)i < nb) continue;
        char id[32], word[32];
        snprintf(id, sizeof id, "synthetic-%d", i);
        size_t cap = 4096, len = 0;
        char *body = malloc(cap), *title = malloc(128);
        if (!body || !title) {
            free(body);
            free(title);
            n = i; /* bench what could be made */
            break;
        }
        body[0] = '\0';
        for (int s = 0; s < 6; s++) {
            const char *src =
                json_string_value(json_object_get(json_array_get(arr, rand_r(&seed) % nb), "body"));
            size_t from = rand_r(&seed) % (strlen(src) / 2 + 1);
            while (from && src[from - 1] != ' ')
                from--;
            size_t take = strcspn(src + from, ".") + 1;
            fake_word(word, &seed);
            if (len + take + 40 < cap)
                len += (size_t)snprintf(body + len, cap - len, "%.*s %s ", (int)take, src + from,
                                        word);
        }
        fake_word(word, &seed);
        own[3 * i] = strdup(id);
        own[3 * i + 1] = body;
        snprintf(title, 128, "%s %s", word, a[i].title);
        own[3 * i + 2] = title;
        a[i].id = own[3 * i];
        a[i].body = body;
        a[i].title = title;
    }
    char err[256];
    double t0 = cpu_us();
    oh_kb *kb = oh_kb_new(a, (size_t)n, err, sizeof err);
    double build_ms = (cpu_us() - t0) / 1e3;
    int rc = kb ? 0 : OH_EINVAL;
    FILE *f = kb ? fopen(queries, "r") : NULL;
    double *per = NULL;
    size_t nq = 0, room = 0;
    char *line = NULL;
    size_t lcap = 0;
    while (f && getline(&line, &lcap, f) > 0) {
        char *tab = strchr(line, '\t');
        if (!tab || !strncmp(line, "query\t", 6)) continue;
        *tab = '\0';
        size_t len = unescape(line);
        struct oh_kb_hit hits[5];
        size_t got;
        double conf, t1 = cpu_us();
        oh_kb_query(kb, line, len, 5, NULL, hits, &got, &conf, NULL);
        if (nq == room) {
            room = room ? 2 * room : 256;
            double *np = realloc(per, room * sizeof *np);
            if (!np) break;
            per = np;
        }
        per[nq++] = cpu_us() - t1;
    }
    if (f) fclose(f);
    free(line);
    if (nq) {
        qsort(per, nq, sizeof *per, cmp_double);
        printf("bench: %d articles: build %.1f ms CPU; query p50 %.0f us, p99 %.0f us, max %.0f us "
               "CPU (%zu queries)\n",
               n, build_ms, per[nq / 2], per[nq * 99 / 100], per[nq - 1], nq);
    }
    free(per);
    oh_kb_free(kb);
    for (int i = 0; i < 3 * n; i++)
        free(own[i]);
    free(own);
    free(a);
    json_decref(root);
    return rc;
}

/* helpcenter.json beside QUERIES, else data/kb/helpcenter.json. */
static const char *default_articles(const char *queries, char *buf, size_t len)
{
    const char *slash = strrchr(queries, '/');
    snprintf(buf, len, "%.*shelpcenter.json", slash ? (int)(slash - queries + 1) : 0, queries);
    FILE *f = fopen(buf, "r");
    if (f) {
        fclose(f);
        return buf;
    }
    return "data/kb/helpcenter.json";
}

int oh_kb_eval_cmd(int argc, char **argv)
{
    static const struct option opts[] = {{"articles", required_argument, NULL, 'a'},
                                         {"misses", no_argument, NULL, 'm'},
                                         {"bench", required_argument, NULL, 'b'},
                                         {NULL, 0, NULL, 0}};
    const char *articles = NULL;
    bool misses = false;
    int benchn = 0, opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'a')
            articles = optarg;
        else if (opt == 'm')
            misses = true;
        else if (opt == 'b' && (benchn = atoi(optarg)) > 0)
            ;
        else
            return 2;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "omnihubctl kb-eval: one QUERIES.tsv is required\n");
        return 2;
    }
    char buf[4096], err[512] = "";
    if (!articles) articles = default_articles(argv[optind], buf, sizeof buf);
    double t0 = cpu_us();
    oh_kb *kb = oh_kb_load_json(articles, err, sizeof err);
    double load_ms = (cpu_us() - t0) / 1e3;
    if (!kb) {
        fprintf(stderr, "omnihubctl kb-eval: %s\n", err);
        return 1;
    }
    struct oh_kb_metrics m;
    int rc = oh_kb_eval_file(kb, argv[optind], &m, misses ? stdout : NULL, err, sizeof err);
    if (rc) {
        fprintf(stderr, "omnihubctl kb-eval: %s\n", err);
        oh_kb_free(kb);
        return 1;
    }
    if (misses) printf("\n");
    printf("articles %zu (%s, loaded and indexed in %.1f ms CPU)\n", oh_kb_count(kb), articles,
           load_ms);
    oh_kb_metrics_print(&m, stdout);
    oh_kb_free(kb);
    if (benchn && bench(articles, argv[optind], benchn)) {
        fprintf(stderr, "omnihubctl kb-eval: cannot bench with %s\n", articles);
        return 1;
    }
    return 0;
}

int oh_kb_search_cmd(int argc, char **argv)
{
    static const struct option opts[] = {{"articles", required_argument, NULL, 'a'},
                                         {"limit", required_argument, NULL, 'n'},
                                         {"locale", required_argument, NULL, 'l'},
                                         {NULL, 0, NULL, 0}};
    const char *articles = "data/kb/helpcenter.json", *locale = NULL;
    int limit = 5, opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'a')
            articles = optarg;
        else if (opt == 'n' && (limit = atoi(optarg)) > 0 && limit <= 50)
            ;
        else if (opt == 'l')
            locale = optarg;
        else
            return 2;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "omnihubctl kb-search: one QUESTION is required\n");
        return 2;
    }
    char err[512] = "";
    oh_kb *kb = oh_kb_load_json(articles, err, sizeof err);
    if (!kb) {
        fprintf(stderr, "omnihubctl kb-search: %s\n", err);
        return 1;
    }
    struct oh_kb_hit hits[50];
    size_t n = 0;
    double conf = 0;
    char lang[4] = "";
    const char *q = argv[optind];
    oh_kb_query(kb, q, strlen(q), (size_t)limit, locale, hits, &n, &conf, lang);
    json_t *res = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(res, json_pack("{s:s, s:s, s:f, s:s}", "id", hits[i].id, "title",
                                             hits[i].title, "score", hits[i].score, "snippet",
                                             hits[i].snippet));
    json_t *out = json_pack("{s:s, s:f, s:b, s:o}", "language", lang, "confidence", conf, "answer",
                            conf >= OH_KB_ANSWER_THRESHOLD, "results", res);
    char *s = json_dumps(out, JSON_INDENT(1) | JSON_REAL_PRECISION(4));
    puts(s);
    free(s);
    json_decref(out);
    oh_kb_free(kb);
    return 0;
}
