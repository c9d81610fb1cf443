/* triage_eval.h - `omnihubctl triage-eval` and `omnihubctl triage`: the
 * triage scorer measured on a labeled TSV file, or run on one text. */
#ifndef OH_TOOLS_TRIAGE_EVAL_H
#define OH_TOOLS_TRIAGE_EVAL_H

#include <stdio.h>
#include "core/triage.h"

struct oh_prf {
    int tp, fp, fn;
    double precision, recall, f1;
};

struct oh_triage_metrics {
    int messages;
    struct oh_prf frustrated, wants_human, priority[4]; /* indexed by enum oh_triage_priority */
    double priority_macro_f1;
    int language_ok;
    double language_accuracy;
    int confusion[4][4]; /* [expected][got] */
    double median_us;    /* CPU per message, when measured */
};

/* Reads PATH (columns: text, frustrated 0/1, priority, wants_human 0/1,
 * language; tab-separated, "\n" "\t" "\\" escaped in the text; a header line
 * is skipped) and scores every message into M. With MISSES non-NULL, each
 * wrongly scored message is printed there. Returns 0, or OH_EIO / OH_EINVAL
 * with ERR filled. */
int oh_triage_eval_file(const char *path, struct oh_triage_metrics *m, FILE *misses, char *err,
                        size_t errlen);
void oh_triage_metrics_print(const struct oh_triage_metrics *m, FILE *out);

int oh_triage_eval_cmd(int argc, char **argv);
int oh_triage_cmd(int argc, char **argv);

#endif
