/* kb_eval.h - `omnihubctl kb-eval` and `omnihubctl kb-search`: the knowledge-
 * base ranker measured on labeled queries, or run on one question. */
#ifndef OH_TOOLS_KB_EVAL_H
#define OH_TOOLS_KB_EVAL_H

#include <stdio.h>
#include "core/kb.h"

struct oh_kb_metrics {
    int queries, answerable, unanswerable;
    double recall1, recall3, mrr; /* over answerable queries */
    int ans_confident;            /* answerable with confidence >= OH_KB_ANSWER_THRESHOLD */
    int ans_confident_ok;         /* ... whose first hit is a relevant article */
    int unans_rejected;           /* unanswerable with confidence < the threshold */
    double ans_confident_rate, unans_rejected_rate, answered_precision;
};

/* Reads the articles of PATH: a JSON array (or {"articles": [...]}) of
 * {id, title, body, locale?, tags?}. Returns an index the caller frees with
 * oh_kb_free(), or NULL with ERR filled. */
oh_kb *oh_kb_load_json(const char *path, char *err, size_t errlen);

/* Runs every query of PATH (columns: query, relevant ids comma-separated or
 * "-" for none; tab-separated; "\n" escaped; a header line is skipped)
 * against KB into M. With MISSES non-NULL, each query whose first hit is not
 * relevant, or whose confidence is on the wrong side of the threshold, is
 * printed there. Returns 0, or OH_EIO / OH_EINVAL with ERR filled. */
int oh_kb_eval_file(const oh_kb *kb, const char *path, struct oh_kb_metrics *m, FILE *misses,
                    char *err, size_t errlen);
void oh_kb_metrics_print(const struct oh_kb_metrics *m, FILE *out);

int oh_kb_eval_cmd(int argc, char **argv);
int oh_kb_search_cmd(int argc, char **argv);

#endif
