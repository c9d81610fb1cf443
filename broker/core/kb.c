/* kb.c - the knowledge-base ranker: BM25F over title, tags and body, Snowball
 * stems, a cross-lingual shop lexicon and cheap typo tolerance (see kb.h). */
#include "core/kb.h"
#include <libstemmer.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/oh.h"
#include "core/triage.h"

#include "core/kb_lex.inc" /* generated from data/kb/ by tools/kb_gen.py */

enum { F_TITLE, F_TAGS, F_BODY, NFIELDS };
/* Title words say what an article is about more than tags, tags more than body. */
static const double field_w[NFIELDS] = {3.0, 2.0, 1.0};
static const double field_b[NFIELDS] = {0.5, 0.3, 0.75};
#define K1        1.2
#define MAXTOK    64  /* longer "words" (URLs, base64) are cut */
#define MAXGROUPS 256 /* distinct query words scored */
#define MAXCAND   12  /* index terms one query word can stand for */
/* Weights of what a query word can match besides itself. */
#define W_TRANSLATED 0.9
#define W_SYNONYM    0.8
#define W_TYPO       0.7
/* confidence = sigmoid(A * (coverage + M * matched) + B): a logistic fit of
 * "the first hit is a right answer" on the development queries (docs/kb.md) */
#define KB_CONF_A 4.94
#define KB_CONF_M 0.2
#define KB_CONF_B (-2.54)

struct posting {
    uint32_t doc;
    uint16_t tf[NFIELDS];
};

struct term {
    char *s;
    uint32_t df, npost, cap;
    struct posting *post;
};

struct doc {
    char *id, *title, *body;
    char lang[4];
    uint32_t len[NFIELDS];
};

/* Open-addressing string -> index map. */
struct strmap {
    uint32_t *slot; /* index + 1, 0 = empty */
    size_t cap;
};

struct lexent {
    const char *stem; /* owned */
    uint8_t lang;
    uint16_t concept;
};

struct delent {
    uint64_t h;
    uint32_t word;
};

struct oh_kb {
    struct doc *docs;
    size_t ndocs;
    double avglen[NFIELDS];
    struct term *terms;
    size_t nterms, capterms;
    struct strmap termmap;
    /* surface words (folded) -> term, for typo tolerance */
    char **words;
    uint32_t *word_term;
    size_t nwords, capwords;
    struct strmap wordmap;
    struct delent *dels; /* one-deletion neighborhood of every surface word, by hash */
    size_t ndels;
    struct lexent *lex; /* data/kb/lexicon.txt, stemmed, sorted by (lang, stem) */
    size_t nlex;
    int32_t *concept_terms; /* per concept: up to 8 term ids, -1 = absent */
};
#define CONCEPT_MAX 8

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* ---- folding and tokenizing ------------------------------------------- */

typedef void (*tok_fn)(void *ctx, const char *w, size_t n, size_t at);

/* Calls FN for every word of P: lower-case ASCII letters and digits, Latin-1
 * letters folded to ASCII, other letters kept as UTF-8 bytes; words of one
 * byte are skipped. AT is the byte offset of the word in P. */
static void tokenize(const char *p, size_t len, tok_fn fn, void *ctx)
{
    char w[MAXTOK + 4];
    size_t n = 0, start = 0, i = 0;
    while (i < len) {
        unsigned c = (unsigned char)p[i];
        size_t k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (i + k > len) break;
        uint32_t cp = k == 4 ? (c & 7u) << 18 | (p[i + 1] & 63u) << 12 | (p[i + 2] & 63u) << 6 |
                                   (p[i + 3] & 63u)
                      : k == 3 ? (c & 15u) << 12 | (p[i + 1] & 63u) << 6 | (p[i + 2] & 63u)
                      : k == 2 ? (c & 31u) << 6 | (p[i + 1] & 63u)
                               : c;
        const char *add = NULL;
        char one[2] = {0, 0};
        if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) {
            one[0] = (char)cp;
            add = one;
        } else if (cp >= 'A' && cp <= 'Z') {
            one[0] = (char)(cp + 32);
            add = one;
        } else if (cp >= 0xC0 && cp <= 0xFF) {
            add = kb_latin1_fold[cp - 0xC0];
            if (*add == ' ') add = NULL;
        } else if (cp == 0x152 || cp == 0x153) {
            add = "oe";
        } else if (cp >= 0x250 && !(cp >= 0x2000 && cp <= 0x2BFF) &&
                   !(cp >= 0x3000 && cp <= 0x303F) && !(cp >= 0xFF00 && cp <= 0xFF20)) {
            /* letters of other scripts: kept as they are */
            if (n + k <= MAXTOK) {
                if (!n) start = i;
                memcpy(w + n, p + i, k);
                n += k;
            }
            i += k;
            continue;
        }
        if (add) {
            if (!n) start = i;
            for (; *add && n < MAXTOK; add++)
                w[n++] = *add;
        } else if (n) {
            if (n >= 2) fn(ctx, w, n, start);
            n = 0;
        }
        i += k;
    }
    if (n >= 2) fn(ctx, w, n, start);
}

static int cmp_word(const void *a, const void *b)
{
    const struct kb_word *x = a, *y = b;
    if (x->lang != y->lang) return (int)x->lang - (int)y->lang;
    return strcmp(x->w, y->w);
}

static bool is_stop(const char *w, int lang)
{
    struct kb_word key = {.w = w, .lang = (uint8_t)lang};
    return bsearch(&key, kb_stopwords, sizeof kb_stopwords / sizeof *kb_stopwords,
                   sizeof *kb_stopwords, cmp_word) != NULL;
}

/* Stems W (N bytes) with ST into OUT (NUL-terminated, at most MAXTOK bytes). */
static void stem(struct sb_stemmer *st, const char *w, size_t n, char *out)
{
    const sb_symbol *s = st ? sb_stemmer_stem(st, (const sb_symbol *)w, (int)n) : NULL;
    size_t m = s ? (size_t)sb_stemmer_length(st) : n;
    if (!s) s = (const sb_symbol *)w;
    if (m > MAXTOK) m = MAXTOK;
    memcpy(out, s, m);
    out[m] = '\0';
}

static int lang_index(const char *code)
{
    for (int l = 0; l < KB_NLANGS; l++)
        if (code && !strncmp(code, kb_lang_names[l], 2)) return l;
    return KB_EN;
}

/* ---- maps -------------------------------------------------------------- */

static int map_grow(struct strmap *m, char **keys, size_t n)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    uint32_t *slot = calloc(cap, sizeof *slot);
    if (!slot) return OH_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t h = hash(keys[i], strlen(keys[i])) & (cap - 1);
        while (slot[h])
            h = (h + 1) & (cap - 1);
        slot[h] = (uint32_t)i + 1;
    }
    free(m->slot);
    m->slot = slot;
    m->cap = cap;
    return 0;
}

/* The index of KEY among KEYS, or -1; with *SLOTP set to where it would go. */
static long map_find(const struct strmap *m, char *const *keys, const char *key, size_t *slotp)
{
    if (!m->cap) return -1;
    size_t h = hash(key, strlen(key)) & (m->cap - 1);
    while (m->slot[h]) {
        if (!strcmp(keys[m->slot[h] - 1], key)) return (long)m->slot[h] - 1;
        h = (h + 1) & (m->cap - 1);
    }
    if (slotp) *slotp = h;
    return -1;
}

/* ---- building ----------------------------------------------------------- */

struct build {
    oh_kb *kb;
    struct sb_stemmer *st;
    int lang, field;
    uint32_t doc;
    int err;
};

static long term_find(const oh_kb *kb, const char *s)
{
    if (!kb->termmap.cap) return -1;
    size_t h = hash(s, strlen(s)) & (kb->termmap.cap - 1);
    for (; kb->termmap.slot[h]; h = (h + 1) & (kb->termmap.cap - 1))
        if (!strcmp(kb->terms[kb->termmap.slot[h] - 1].s, s)) return (long)kb->termmap.slot[h] - 1;
    return -1;
}

static void term_slot(oh_kb *kb, size_t t)
{
    size_t h = hash(kb->terms[t].s, strlen(kb->terms[t].s)) & (kb->termmap.cap - 1);
    while (kb->termmap.slot[h])
        h = (h + 1) & (kb->termmap.cap - 1);
    kb->termmap.slot[h] = (uint32_t)t + 1;
}

/* The term S, created when CREATE; -1 when absent or out of memory. */
static long term_get(oh_kb *kb, const char *s, bool create)
{
    long t = term_find(kb, s);
    if (t >= 0 || !create) return t;
    if (kb->nterms == kb->capterms) {
        size_t cap = kb->capterms ? kb->capterms * 2 : 1024;
        struct term *nt = realloc(kb->terms, cap * sizeof *nt);
        if (!nt) return -1;
        kb->terms = nt;
        kb->capterms = cap;
    }
    struct term *tm = &kb->terms[kb->nterms];
    memset(tm, 0, sizeof *tm);
    if (!(tm->s = strdup(s))) return -1;
    kb->nterms++;
    if (2 * kb->nterms > kb->termmap.cap) {
        if (map_grow(&kb->termmap, NULL, 0)) {
            kb->nterms--;
            free(tm->s);
            return -1;
        }
        for (size_t i = 0; i < kb->nterms; i++)
            term_slot(kb, i);
    } else {
        term_slot(kb, kb->nterms - 1);
    }
    return (long)kb->nterms - 1;
}

static int word_add(oh_kb *kb, const char *w, uint32_t term)
{
    if (map_find(&kb->wordmap, kb->words, w, NULL) >= 0) return 0;
    if (kb->nwords == kb->capwords) {
        size_t cap = kb->capwords ? kb->capwords * 2 : 1024;
        char **nw = realloc(kb->words, cap * sizeof *nw);
        if (!nw) return OH_ENOMEM;
        kb->words = nw;
        uint32_t *nt = realloc(kb->word_term, cap * sizeof *nt);
        if (!nt) return OH_ENOMEM;
        kb->word_term = nt;
        kb->capwords = cap;
    }
    if (!(kb->words[kb->nwords] = strdup(w))) return OH_ENOMEM;
    kb->word_term[kb->nwords++] = term;
    if (2 * kb->nwords > kb->wordmap.cap) return map_grow(&kb->wordmap, kb->words, kb->nwords);
    size_t slot = 0;
    kb->nwords--;
    map_find(&kb->wordmap, kb->words, w, &slot);
    kb->wordmap.slot[slot] = (uint32_t)kb->nwords + 1;
    kb->nwords++;
    return 0;
}

static void index_word(void *ctx, const char *w, size_t n, size_t at)
{
    (void)at;
    struct build *b = ctx;
    char buf[MAXTOK + 1], st[MAXTOK + 1];
    if (b->err) return;
    memcpy(buf, w, n);
    buf[n] = '\0';
    if (is_stop(buf, b->lang)) return;
    stem(b->st, buf, n, st);
    long t = term_get(b->kb, st, true);
    if (t < 0) {
        b->err = OH_ENOMEM;
        return;
    }
    struct term *tm = &b->kb->terms[t];
    if (!tm->npost || tm->post[tm->npost - 1].doc != b->doc) {
        if (tm->npost == tm->cap) {
            uint32_t cap = tm->cap ? tm->cap * 2 : 4;
            struct posting *np = realloc(tm->post, cap * sizeof *np);
            if (!np) {
                b->err = OH_ENOMEM;
                return;
            }
            tm->post = np;
            tm->cap = cap;
        }
        memset(&tm->post[tm->npost], 0, sizeof tm->post[0]);
        tm->post[tm->npost++].doc = b->doc;
        tm->df++;
    }
    struct posting *p = &tm->post[tm->npost - 1];
    if (p->tf[b->field] < UINT16_MAX) p->tf[b->field]++;
    b->kb->docs[b->doc].len[b->field]++;
    if (n >= 4 && word_add(b->kb, buf, (uint32_t)t)) b->err = OH_ENOMEM;
}

static int cmp_del(const void *a, const void *b)
{
    const struct delent *x = a, *y = b;
    return x->h < y->h ? -1 : x->h > y->h;
}

static int cmp_lex(const void *a, const void *b)
{
    const struct lexent *x = a, *y = b;
    if (x->lang != y->lang) return (int)x->lang - (int)y->lang;
    return strcmp(x->stem, y->stem);
}

/* The one-deletion neighborhood of every surface word (SymSpell): a typo at
 * distance 1 shares a key with the word it misspells. */
static int build_typos(oh_kb *kb)
{
    size_t total = 0;
    for (size_t i = 0; i < kb->nwords; i++)
        total += strlen(kb->words[i]) + 1;
    if (!(kb->dels = malloc((total ? total : 1) * sizeof *kb->dels))) return OH_ENOMEM;
    char tmp[MAXTOK + 1];
    for (size_t i = 0; i < kb->nwords; i++) {
        const char *w = kb->words[i];
        size_t n = strlen(w);
        kb->dels[kb->ndels++] = (struct delent){hash(w, n), (uint32_t)i};
        for (size_t j = 0; j < n; j++) {
            memcpy(tmp, w, j);
            memcpy(tmp + j, w + j + 1, n - j - 1);
            kb->dels[kb->ndels++] = (struct delent){hash(tmp, n - 1), (uint32_t)i};
        }
    }
    qsort(kb->dels, kb->ndels, sizeof *kb->dels, cmp_del);
    return 0;
}

static int build_lexicon(oh_kb *kb, char *err, size_t errlen)
{
    size_t n = sizeof kb_lexicon / sizeof *kb_lexicon,
           nc = sizeof kb_concepts / sizeof *kb_concepts;
    if (!(kb->lex = calloc(n, sizeof *kb->lex))) return OH_ENOMEM;
    if (!(kb->concept_terms = malloc(nc * CONCEPT_MAX * sizeof *kb->concept_terms)))
        return OH_ENOMEM;
    struct sb_stemmer *st[KB_NLANGS] = {0};
    int rc = 0;
    for (int l = 0; l < KB_NLANGS && !rc; l++)
        if (!(st[l] = sb_stemmer_new(kb_snowball_names[l], "UTF_8"))) {
            snprintf(err, errlen, "libstemmer has no %s stemmer", kb_snowball_names[l]);
            rc = OH_EINVAL;
        }
    char buf[MAXTOK + 1];
    for (size_t i = 0; i < n && !rc; i++) {
        stem(st[kb_lexicon[i].lang], kb_lexicon[i].w, strlen(kb_lexicon[i].w), buf);
        kb->lex[i] = (struct lexent){strdup(buf), kb_lexicon[i].lang, kb_lexicon[i].concept};
        kb->nlex++;
        if (!kb->lex[i].stem) rc = OH_ENOMEM;
    }
    if (!rc) qsort(kb->lex, kb->nlex, sizeof *kb->lex, cmp_lex);
    for (size_t c = 0; c < nc && !rc; c++) {
        int k = 0;
        const char *p = kb_concepts[c];
        while (*p && k < CONCEPT_MAX) {
            size_t m = strcspn(p, " ");
            stem(st[KB_EN], p, m, buf);
            kb->concept_terms[c * CONCEPT_MAX + k++] = (int32_t)term_get(kb, buf, false);
            p += m + (p[m] == ' ');
        }
        while (k < CONCEPT_MAX)
            kb->concept_terms[c * CONCEPT_MAX + k++] = -1;
    }
    for (int l = 0; l < KB_NLANGS; l++)
        if (st[l]) sb_stemmer_delete(st[l]);
    return rc;
}

oh_kb *oh_kb_new(const struct oh_kb_article *arts, size_t n, char *err, size_t errlen)
{
    oh_kb *kb = calloc(1, sizeof *kb);
    struct sb_stemmer *st[KB_NLANGS] = {0};
    if (!kb || (n && !(kb->docs = calloc(n, sizeof *kb->docs)))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    struct strmap ids = {0};
    char **idv = calloc(n ? n : 1, sizeof *idv);
    int rc = idv ? 0 : OH_ENOMEM;
    for (size_t i = 0; i < n && !rc; i++) {
        const struct oh_kb_article *a = &arts[i];
        if (!a->id || !*a->id) {
            snprintf(err, errlen, "article %zu: empty id", i);
            rc = OH_EINVAL;
            break;
        }
        size_t slot = 0;
        if (map_find(&ids, idv, a->id, &slot) >= 0) {
            snprintf(err, errlen, "article %s: duplicate id", a->id);
            rc = OH_EINVAL;
            break;
        }
        idv[i] = (char *)a->id;
        if (2 * (i + 1) > ids.cap) {
            if (map_grow(&ids, idv, i + 1)) rc = OH_ENOMEM;
        } else {
            ids.slot[slot] = (uint32_t)i + 1;
        }
        struct doc *d = &kb->docs[i];
        int lang = lang_index(a->locale ? a->locale : "en");
        snprintf(d->lang, sizeof d->lang, "%s", kb_lang_names[lang]);
        if (a->locale && *a->locale) snprintf(d->lang, sizeof d->lang, "%.2s", a->locale);
        d->id = strdup(a->id);
        d->title = strdup(a->title ? a->title : "");
        d->body = strdup(a->body ? a->body : "");
        kb->ndocs++;
        if (!d->id || !d->title || !d->body) {
            rc = OH_ENOMEM;
            break;
        }
        if (!st[lang] && !(st[lang] = sb_stemmer_new(kb_snowball_names[lang], "UTF_8"))) {
            snprintf(err, errlen, "libstemmer has no %s stemmer", kb_snowball_names[lang]);
            rc = OH_EINVAL;
            break;
        }
        struct build b = {.kb = kb, .st = st[lang], .lang = lang, .doc = (uint32_t)i};
        if (a->title) {
            b.field = F_TITLE;
            tokenize(a->title, strlen(a->title), index_word, &b);
        }
        b.field = F_TAGS;
        for (size_t t = 0; t < a->ntags; t++)
            if (a->tags[t]) tokenize(a->tags[t], strlen(a->tags[t]), index_word, &b);
        b.field = F_BODY;
        tokenize(d->body, strlen(d->body), index_word, &b);
        rc = b.err;
    }
    free(idv);
    free(ids.slot);
    if (rc == OH_ENOMEM) snprintf(err, errlen, "out of memory");
    if (rc) goto fail;
    for (int f = 0; f < NFIELDS; f++) {
        double sum = 0;
        for (size_t i = 0; i < kb->ndocs; i++)
            sum += kb->docs[i].len[f];
        kb->avglen[f] = kb->ndocs && sum > 0 ? sum / (double)kb->ndocs : 1.0;
    }
    if (build_typos(kb) || build_lexicon(kb, err, errlen)) {
        if (!*err) snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (int l = 0; l < KB_NLANGS; l++)
        if (st[l]) sb_stemmer_delete(st[l]);
    return kb;
fail:
    for (int l = 0; l < KB_NLANGS; l++)
        if (st[l]) sb_stemmer_delete(st[l]);
    oh_kb_free(kb);
    return NULL;
}

void oh_kb_free(oh_kb *kb)
{
    if (!kb) return;
    for (size_t i = 0; i < kb->ndocs; i++) {
        free(kb->docs[i].id);
        free(kb->docs[i].title);
        free(kb->docs[i].body);
    }
    free(kb->docs);
    for (size_t i = 0; i < kb->nterms; i++) {
        free(kb->terms[i].s);
        free(kb->terms[i].post);
    }
    free(kb->terms);
    free(kb->termmap.slot);
    for (size_t i = 0; i < kb->nwords; i++)
        free(kb->words[i]);
    free(kb->words);
    free(kb->word_term);
    free(kb->wordmap.slot);
    free(kb->dels);
    for (size_t i = 0; i < kb->nlex; i++)
        free((char *)kb->lex[i].stem);
    free(kb->lex);
    free(kb->concept_terms);
    free(kb);
}

size_t oh_kb_count(const oh_kb *kb)
{
    return kb ? kb->ndocs : 0;
}

/* ---- querying ----------------------------------------------------------- */

struct cand {
    uint32_t term;
    double w;
};

/* One distinct word of the question and the index terms it may stand for. */
struct group {
    struct cand c[MAXCAND];
    int n;
    double max; /* what a perfect match of this word is worth */
};

struct query {
    const oh_kb *kb;
    struct sb_stemmer *st[KB_NLANGS];
    int lang;
    struct group *g;
    int ng;
    char seen[MAXGROUPS][MAXTOK + 1];
    int nseen;
};

static struct sb_stemmer *stemmer(struct query *q, int lang)
{
    if (!q->st[lang]) q->st[lang] = sb_stemmer_new(kb_snowball_names[lang], "UTF_8");
    return q->st[lang];
}

static double idf(const oh_kb *kb, uint32_t df)
{
    return log(1.0 + ((double)kb->ndocs - df + 0.5) / (df + 0.5));
}

static void cand_add(const oh_kb *kb, struct group *g, long term, double w)
{
    if (term < 0) return;
    for (int i = 0; i < g->n; i++)
        if (g->c[i].term == (uint32_t)term) {
            if (w > g->c[i].w) g->c[i].w = w;
            return;
        }
    if (g->n < MAXCAND) g->c[g->n++] = (struct cand){(uint32_t)term, w};
    (void)kb;
}

/* Adds the English targets of every lexicon entry of LANG whose stem is S. */
static int lexicon_add(const oh_kb *kb, struct group *g, int lang, const char *s, double w)
{
    struct lexent key = {.stem = s, .lang = (uint8_t)lang};
    struct lexent *e = bsearch(&key, kb->lex, kb->nlex, sizeof *kb->lex, cmp_lex);
    if (!e) return 0;
    while (e > kb->lex && !cmp_lex(e - 1, &key))
        e--;
    int hits = 0;
    for (; e < kb->lex + kb->nlex && !cmp_lex(e, &key); e++, hits++)
        for (int k = 0; k < CONCEPT_MAX; k++)
            cand_add(kb, g, kb->concept_terms[e->concept * CONCEPT_MAX + k], w);
    return hits;
}

/* Optimal string alignment distance, stopping past 1. */
static bool within_one(const char *a, size_t n, const char *b, size_t m)
{
    if (n > m + 1 || m > n + 1) return false;
    size_t i = 0;
    while (i < n && i < m && a[i] == b[i])
        i++;
    if (i == n || i == m) return n == m || n + 1 == m || m + 1 == n;
    if (n == m) {
        if (!memcmp(a + i + 1, b + i + 1, n - i - 1)) return true;
        return i + 1 < n && a[i] == b[i + 1] && a[i + 1] == b[i] &&
               !memcmp(a + i + 2, b + i + 2, n - i - 2);
    }
    return n > m ? !memcmp(a + i + 1, b + i, m - i) : !memcmp(a + i, b + i + 1, n - i);
}

/* Index words one edit from W: the most frequent one's term, or -1. */
static long typo_term(const oh_kb *kb, const char *w, size_t n)
{
    char tmp[MAXTOK + 1];
    long best = -1;
    uint32_t bestdf = 0;
    for (size_t j = 0; j <= n; j++) {
        size_t m = n;
        if (j < n) {
            memcpy(tmp, w, j);
            memcpy(tmp + j, w + j + 1, n - j - 1);
            m = n - 1;
        } else {
            memcpy(tmp, w, n);
        }
        struct delent key = {hash(tmp, m), 0};
        struct delent *e = bsearch(&key, kb->dels, kb->ndels, sizeof *kb->dels, cmp_del);
        if (!e) continue;
        while (e > kb->dels && e[-1].h == key.h)
            e--;
        for (; e < kb->dels + kb->ndels && e->h == key.h; e++) {
            const char *cw = kb->words[e->word];
            uint32_t t = kb->word_term[e->word];
            if (within_one(w, n, cw, strlen(cw)) && kb->terms[t].df > bestdf) {
                best = t;
                bestdf = kb->terms[t].df;
            }
        }
    }
    return best;
}

static void query_word(void *ctx, const char *w, size_t n, size_t at)
{
    (void)at;
    struct query *q = ctx;
    const oh_kb *kb = q->kb;
    char buf[MAXTOK + 1], s[MAXTOK + 1];
    memcpy(buf, w, n);
    buf[n] = '\0';
    if (q->ng >= MAXGROUPS || is_stop(buf, KB_EN) || is_stop(buf, q->lang)) return;
    for (int i = 0; i < q->nseen; i++)
        if (!strcmp(q->seen[i], buf)) return;
    memcpy(q->seen[q->nseen++], buf, n + 1);
    struct group *g = &q->g[q->ng];
    memset(g, 0, sizeof *g);
    stem(stemmer(q, KB_EN), buf, n, s);
    cand_add(kb, g, term_find(kb, s), 1.0);
    lexicon_add(kb, g, KB_EN, s, W_SYNONYM);
    if (q->lang != KB_EN) {
        stem(stemmer(q, q->lang), buf, n, s);
        lexicon_add(kb, g, q->lang, s, W_TRANSLATED);
    }
    /* a short question is easily taken for the wrong language */
    for (int l = 1; l < KB_NLANGS && !g->n; l++)
        if (l != q->lang && stemmer(q, l)) {
            stem(q->st[l], buf, n, s);
            lexicon_add(kb, g, l, s, W_TRANSLATED);
        }
    if (!g->n && n >= 4) cand_add(kb, g, typo_term(kb, buf, n), W_TYPO);
    /* a word the index has never seen still counts against a perfect match;
     * less in another language, where the lexicon cannot know every word */
    g->max = (q->lang == KB_EN ? 0.5 : 0.25) * idf(kb, 0);
    for (int i = 0; i < g->n; i++) {
        double v = g->c[i].w * idf(kb, kb->terms[g->c[i].term].df);
        if (i == 0 || v > g->max) g->max = v;
    }
    q->ng++;
}

static double term_score(const oh_kb *kb, const struct posting *p)
{
    const struct doc *d = &kb->docs[p->doc];
    double tf = 0;
    for (int f = 0; f < NFIELDS; f++)
        if (p->tf[f])
            tf +=
                field_w[f] * p->tf[f] / (1.0 - field_b[f] + field_b[f] * d->len[f] / kb->avglen[f]);
    return tf / (K1 + tf);
}

struct sentence_ctx {
    struct query *q;
    const uint32_t *qterms;
    size_t nq;
    int hits;
};

static void sentence_word(void *ctx, const char *w, size_t n, size_t at)
{
    (void)at;
    struct sentence_ctx *c = ctx;
    char buf[MAXTOK + 1], s[MAXTOK + 1];
    memcpy(buf, w, n);
    buf[n] = '\0';
    stem(stemmer(c->q, KB_EN), buf, n, s);
    long t = term_find(c->q->kb, s);
    for (size_t i = 0; t >= 0 && i < c->nq; i++)
        if (c->qterms[i] == (uint32_t)t) c->hits++;
}

/* The body's sentence with the most query terms, and the next one when
 * short, cut on a word boundary to fit OUT. */
static void snippet(struct query *q, const char *body, const uint32_t *qterms, size_t nq,
                    char out[OH_KB_SNIPPET])
{
    size_t len = strlen(body), best = 0, bestlen = 0;
    int besthits = -1;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && !(strchr(".?!\n", body[j]) &&
                            (j + 1 == len || body[j + 1] == ' ' || body[j + 1] == '\n')))
            j++;
        if (j < len) j++;
        struct sentence_ctx c = {q, qterms, nq, 0};
        tokenize(body + i, j - i, sentence_word, &c);
        if (c.hits > besthits) {
            besthits = c.hits;
            best = i;
            bestlen = j - i;
        }
        i = j;
        while (i < len && (body[i] == ' ' || body[i] == '\n'))
            i++;
    }
    if (bestlen < 80 && best + bestlen < len) bestlen = len - best;
    if (bestlen >= OH_KB_SNIPPET) {
        size_t cut = OH_KB_SNIPPET - 4;
        while (cut > 0 && body[best + cut] != ' ')
            cut--;
        if (!cut) cut = OH_KB_SNIPPET - 4;
        while (cut > 0 && ((unsigned char)body[best + cut] & 0xC0) == 0x80)
            cut--;
        memcpy(out, body + best, cut);
        memcpy(out + cut, "\xe2\x80\xa6", 4); /* … */
        return;
    }
    memcpy(out, body + best, bestlen);
    out[bestlen] = '\0';
    while (bestlen && out[bestlen - 1] == ' ')
        out[--bestlen] = '\0';
}

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

int oh_kb_query(const oh_kb *kb, const char *text, size_t len, size_t limit, const char *locale,
                struct oh_kb_hit *out, size_t *nout, double *confidence, char lang[4])
{
    if (!kb || !text || !nout || (limit && !out)) return OH_EINVAL;
    *nout = 0;
    if (confidence) *confidence = 0;
    if (len > OH_KB_MAX_QUERY) {
        len = OH_KB_MAX_QUERY;
        while (len && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--;
    }
    struct oh_triage tr;
    oh_triage_classify(text, len, NULL, &tr);
    struct query q = {.kb = kb, .lang = lang_index(tr.language)};
    if (lang) snprintf(lang, 4, "%s", kb_lang_names[q.lang]);
    double *acc = calloc(kb->ndocs + 1, sizeof *acc);
    double *gbest = calloc(kb->ndocs + 1, sizeof *gbest);
    int *gstamp = calloc(kb->ndocs + 1, sizeof *gstamp);
    uint32_t *touched = malloc((kb->ndocs + 1) * sizeof *touched);
    q.g = malloc(MAXGROUPS * sizeof *q.g);
    int rc = 0;
    if (!acc || !gbest || !gstamp || !touched || !q.g || !stemmer(&q, KB_EN)) {
        rc = OH_ENOMEM;
        goto done;
    }
    tokenize(text, len, query_word, &q);

    size_t loclen = locale ? strcspn(locale, "-_") : 0;
    for (int gi = 0; gi < q.ng; gi++) {
        const struct group *g = &q.g[gi];
        size_t nt = 0;
        for (int ci = 0; ci < g->n; ci++) {
            const struct term *tm = &kb->terms[g->c[ci].term];
            double wi = g->c[ci].w * idf(kb, tm->df);
            for (uint32_t pi = 0; pi < tm->npost; pi++) {
                uint32_t d = tm->post[pi].doc;
                double v = wi * term_score(kb, &tm->post[pi]);
                if (gstamp[d] != gi + 1) {
                    gstamp[d] = gi + 1;
                    gbest[d] = v;
                    touched[nt++] = d;
                } else if (v > gbest[d]) {
                    gbest[d] = v;
                }
            }
        }
        for (size_t i = 0; i < nt; i++)
            acc[touched[i]] += gbest[touched[i]];
    }

    /* top LIMIT (at least one, for the confidence) by partial selection */
    size_t want = limit > 1 ? limit : 1, n = 0;
    uint32_t top[OH_KB_MAX_HITS];
    if (want > OH_KB_MAX_HITS) want = OH_KB_MAX_HITS;
    for (size_t d = 0; d < kb->ndocs; d++) {
        if (acc[d] <= 0) continue;
        if (loclen && strncmp(kb->docs[d].lang, locale, loclen < 2 ? loclen : 2)) continue;
        size_t pos = n < want ? n++ : want;
        if (pos == want) {
            if (acc[d] <= acc[top[want - 1]]) continue;
            pos = want - 1;
        }
        while (pos > 0 && acc[top[pos - 1]] < acc[d]) {
            top[pos] = top[pos - 1];
            pos--;
        }
        top[pos] = (uint32_t)d;
    }

    uint32_t qterms[MAXGROUPS * 2];
    size_t nq = 0;
    for (int gi = 0; gi < q.ng; gi++)
        for (int ci = 0; ci < q.g[gi].n && nq < sizeof qterms / sizeof *qterms; ci++)
            qterms[nq++] = q.g[gi].c[ci].term;
    for (size_t i = 0; i < n && i < limit; i++) {
        out[i].id = kb->docs[top[i]].id;
        out[i].title = kb->docs[top[i]].title;
        out[i].score = acc[top[i]];
        snippet(&q, kb->docs[top[i]].body, qterms, nq, out[i].snippet);
    }
    *nout = n < limit ? n : limit;

    if (confidence && n) {
        /* coverage: how much of the question (by idf) the best article
         * answers, each word capped at what a title-and-body match of it is
         * worth, words the index has never seen counting against it;
         * matched: the share of the question's words it matches at all. The
         * margin to the runner-up was tried and predicted nothing on the dev
         * set (near-duplicates such as warranty / warranty claim are both
         * right). */
        double full = 4.0 / (K1 + 4.0), have = 0, max = 0;
        int nmatched = 0;
        for (int gi = 0; gi < q.ng; gi++) {
            const struct group *g = &q.g[gi];
            double best = 0;
            for (int ci = 0; ci < g->n; ci++) {
                const struct term *tm = &kb->terms[g->c[ci].term];
                for (uint32_t pi = 0; pi < tm->npost; pi++)
                    if (tm->post[pi].doc == top[0]) {
                        double v = g->c[ci].w * idf(kb, tm->df) *
                                   fmin(1.0, term_score(kb, &tm->post[pi]) / full);
                        if (v > best) best = v;
                    }
            }
            have += best;
            max += g->max;
            nmatched += best > 0;
        }
        double coverage = max > 0 ? have / max : 0, matched = q.ng ? (double)nmatched / q.ng : 0;
        *confidence = sigmoid(KB_CONF_A * (coverage + KB_CONF_M * matched) + KB_CONF_B);
    }
done:
    for (int l = 0; l < KB_NLANGS; l++)
        if (q.st[l]) sb_stemmer_delete(q.st[l]);
    free(acc);
    free(gbest);
    free(gstamp);
    free(touched);
    free(q.g);
    return rc;
}
