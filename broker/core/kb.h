/* kb.h - knowledge-base retrieval: an in-memory BM25F index over help-center
 * articles, queried in en/es/de/pt/fr with stemming, typo tolerance and a
 * compiled-in shop lexicon (data/kb/), with a calibrated answer confidence. */
#ifndef OH_CORE_KB_H
#define OH_CORE_KB_H

#include <stddef.h>

typedef struct oh_kb oh_kb;

/* One article as given to oh_kb_new(); all strings borrowed for the call. */
struct oh_kb_article {
    const char *id;     /* unique, non-empty */
    const char *title;  /* UTF-8 */
    const char *body;   /* UTF-8, plain text */
    const char *locale; /* BCP 47 ("en", "es-MX"), NULL = "en" */
    const char *const *tags;
    size_t ntags;
};

/* Snippet bytes, NUL included: one or two sentences of the body. */
#define OH_KB_SNIPPET 240

struct oh_kb_hit {
    const char *id;    /* borrowed from the index: valid until oh_kb_free() */
    const char *title; /* same */
    double score;      /* BM25F, comparable within one query only */
    char snippet[OH_KB_SNIPPET];
};

/* Below this confidence the best article is probably not an answer: the bot
 * must not answer from it (it hands off or asks again). Calibrated on the
 * development set; see docs/kb.md for the rates on both sets. */
#define OH_KB_ANSWER_THRESHOLD 0.7

/* Hits one query returns at most. */
#define OH_KB_MAX_HITS 64

/* Bytes of a query that are read; a longer message is cut (UTF-8 safe). */
#define OH_KB_MAX_QUERY 8192

/* Builds an index over the N articles of ARTS (copied: ARTS may be freed
 * after the call). Returns the index, which the caller frees with
 * oh_kb_free(), or NULL with ERR filled (duplicate or empty id, no memory,
 * a stemmer missing from libstemmer). */
oh_kb *oh_kb_new(const struct oh_kb_article *arts, size_t n, char *err, size_t errlen);
void oh_kb_free(oh_kb *kb);
size_t oh_kb_count(const oh_kb *kb);

/* Ranks the articles for the question TEXT (LEN bytes of UTF-8), best first,
 * into OUT[0..LIMIT): *NOUT is set to the number of hits (articles that match
 * at least one query word; at most OH_KB_MAX_HITS). LOCALE, when non-NULL and non-empty, keeps only
 * articles of that language ("es" matches "es-MX"). CONFIDENCE, when
 * non-NULL, receives how likely the first hit answers the question, in [0,1]
 * (0 without hits); compare with OH_KB_ANSWER_THRESHOLD. LANG, when non-NULL
 * (4 bytes), receives the detected language of the question.
 * Read-only on KB: any number of threads may query one index at once.
 * Returns 0, or OH_EINVAL (NULL kb/text/out/nout), OH_ENOMEM. */
int oh_kb_query(const oh_kb *kb, const char *text, size_t len, size_t limit, const char *locale,
                struct oh_kb_hit *out, size_t *nout, double *confidence, char lang[4]);

#endif
