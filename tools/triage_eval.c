/* triage_eval.c - `omnihubctl triage-eval FILE.tsv`: precision, recall and
 * F1 of the triage scorer per label, against a labeled file; `omnihubctl
 * triage`: one text on stdin -> the JSON result. */
#include "triage_eval.h"
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/oh.h"

/* Unescapes a TSV text field in place ("\n", "\t", "\\"); returns its length. */
static size_t unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '\\' && r[1]) {
            r++;
            *w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : *r == 'r' ? '\r' : *r;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static void prf(struct oh_prf *p)
{
    p->precision = p->tp + p->fp ? (double)p->tp / (p->tp + p->fp) : 0;
    p->recall = p->tp + p->fn ? (double)p->tp / (p->tp + p->fn) : 0;
    p->f1 =
        p->precision + p->recall ? 2 * p->precision * p->recall / (p->precision + p->recall) : 0;
}

static void count(struct oh_prf *p, bool expected, bool got)
{
    p->tp += expected && got;
    p->fp += !expected && got;
    p->fn += expected && !got;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int oh_triage_eval_file(const char *path, struct oh_triage_metrics *m, FILE *misses, char *err,
                        size_t errlen)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return OH_EIO;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0, rc = 0;
    while ((got = getline(&line, &cap, f)) > 0) {
        lineno++;
        while (got && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (!got) continue;
        char *col[5];
        int n = 0;
        for (char *p = line; n < 5 && p; n++) {
            col[n] = p;
            p = strchr(p, '\t');
            if (p) *p++ = '\0';
        }
        if (n < 5) {
            snprintf(err, errlen, "%s:%d: expected 5 tab-separated columns", path, lineno);
            rc = OH_EINVAL;
            break;
        }
        int want_p = oh_triage_priority_parse(col[2]);
        if (want_p < 0 || (strcmp(col[1], "0") && strcmp(col[1], "1"))) {
            if (lineno == 1) continue; /* the header */
            snprintf(err, errlen, "%s:%d: bad label", path, lineno);
            rc = OH_EINVAL;
            break;
        }
        bool want_f = col[1][0] == '1', want_h = col[3][0] == '1';
        size_t len = unescape(col[0]);
        struct oh_triage t;
        oh_triage_classify(col[0], len, NULL, &t);
        m->messages++;
        count(&m->frustrated, want_f, t.frustrated);
        count(&m->wants_human, want_h, t.wants_human);
        for (int p = 0; p < 4; p++)
            count(&m->priority[p], want_p == p, (int)t.priority == p);
        m->confusion[want_p][t.priority]++;
        bool lang_ok = !strcmp(col[4], t.language);
        m->language_ok += lang_ok;
        if (misses && (want_f != t.frustrated || want_h != t.wants_human ||
                       want_p != (int)t.priority || !lang_ok)) {
            fprintf(misses, "%d:", lineno);
            if (want_f != t.frustrated) fprintf(misses, " frustrated=%d", t.frustrated);
            if (want_h != t.wants_human) fprintf(misses, " wants_human=%d", t.wants_human);
            if (want_p != (int)t.priority)
                fprintf(misses, " priority=%s(not %s)", oh_triage_priority_name(t.priority),
                        col[2]);
            if (!lang_ok) fprintf(misses, " language=%s(not %s)", t.language, col[4]);
            fprintf(misses, "  %.*s\n", (int)(len > 160 ? 160 : len), col[0]);
        }
    }
    free(line);
    fclose(f);
    if (rc) return rc;
    prf(&m->frustrated);
    prf(&m->wants_human);
    for (int p = 0; p < 4; p++) {
        prf(&m->priority[p]);
        m->priority_macro_f1 += m->priority[p].f1 / 4;
    }
    m->language_accuracy = m->messages ? (double)m->language_ok / m->messages : 0;
    return 0;
}

/* The median CPU time of one oh_triage_classify() over PATH's texts, each
 * text timed over REPEAT calls (the thread's CPU clock, not the wall). */
static int bench(const char *path, int repeat, double *median_us)
{
    FILE *f = fopen(path, "r");
    if (!f) return OH_EIO;
    char *line = NULL;
    size_t cap = 0, n = 0, room = 0;
    double *per = NULL;
    while (getline(&line, &cap, f) > 0) {
        char *tab = strchr(line, '\t');
        if (!tab || !strncmp(line, "text\t", 5)) continue;
        *tab = '\0';
        size_t len = unescape(line);
        struct oh_triage t;
        double t0 = now_us();
        for (int r = 0; r < repeat; r++)
            oh_triage_classify(line, len, NULL, &t);
        double dt = (now_us() - t0) / repeat;
        if (n == room) {
            room = room ? 2 * room : 256;
            double *np = realloc(per, room * sizeof *per);
            if (!np) break;
            per = np;
        }
        per[n++] = dt;
    }
    free(line);
    fclose(f);
    for (size_t i = 1; i < n; i++) /* insertion sort: a few hundred values */
        for (size_t j = i; j > 0 && per[j - 1] > per[j]; j--) {
            double x = per[j];
            per[j] = per[j - 1];
            per[j - 1] = x;
        }
    *median_us = n ? per[n / 2] : 0;
    free(per);
    return n ? 0 : OH_EINVAL;
}

static void row(FILE *out, const char *name, const struct oh_prf *p)
{
    fprintf(out, "  %-12s %9.3f %7.3f %7.3f   (tp %d, fp %d, fn %d)\n", name, p->precision,
            p->recall, p->f1, p->tp, p->fp, p->fn);
}

void oh_triage_metrics_print(const struct oh_triage_metrics *m, FILE *out)
{
    fprintf(out, "messages: %d\n\n  %-12s %9s %7s %7s\n", m->messages, "label", "precision",
            "recall", "F1");
    row(out, "frustrated", &m->frustrated);
    row(out, "wants_human", &m->wants_human);
    for (int p = OH_TRIAGE_URGENT; p >= OH_TRIAGE_LOW; p--)
        row(out, oh_triage_priority_name(p), &m->priority[p]);
    fprintf(out, "\npriority macro-F1: %.3f\n", m->priority_macro_f1);
    fprintf(out, "urgent: recall %.3f at precision %.3f\n", m->priority[OH_TRIAGE_URGENT].recall,
            m->priority[OH_TRIAGE_URGENT].precision);
    fprintf(out, "language accuracy: %.3f (%d/%d)\n", m->language_accuracy, m->language_ok,
            m->messages);
    fprintf(out, "\npriority confusion (rows: expected, columns: scored)\n  %-8s", "");
    for (int p = OH_TRIAGE_URGENT; p >= OH_TRIAGE_LOW; p--)
        fprintf(out, " %7s", oh_triage_priority_name(p));
    fprintf(out, "\n");
    for (int e = OH_TRIAGE_URGENT; e >= OH_TRIAGE_LOW; e--) {
        fprintf(out, "  %-8s", oh_triage_priority_name(e));
        for (int p = OH_TRIAGE_URGENT; p >= OH_TRIAGE_LOW; p--)
            fprintf(out, " %7d", m->confusion[e][p]);
        fprintf(out, "\n");
    }
    if (m->median_us > 0) fprintf(out, "\nCPU per message: median %.2f us\n", m->median_us);
}

int oh_triage_eval_cmd(int argc, char **argv)
{
    static const struct option opts[] = {
        {"misses", no_argument, NULL, 'm'}, {"bench", no_argument, NULL, 'b'}, {NULL, 0, NULL, 0}};
    bool misses = false, timed = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'm')
            misses = true;
        else if (opt == 'b')
            timed = true;
        else
            return 2;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "omnihubctl triage-eval: one FILE.tsv is required\n");
        return 2;
    }
    struct oh_triage_metrics m;
    char err[512];
    if (oh_triage_eval_file(argv[optind], &m, misses ? stdout : NULL, err, sizeof err)) {
        fprintf(stderr, "omnihubctl triage-eval: %s\n", err);
        return 1;
    }
    if (timed && bench(argv[optind], 200, &m.median_us)) {
        fprintf(stderr, "omnihubctl triage-eval: cannot time %s\n", argv[optind]);
        return 1;
    }
    if (misses) printf("\n");
    oh_triage_metrics_print(&m, stdout);
    return 0;
}

int oh_triage_cmd(int argc, char **argv)
{
    static const struct option opts[] = {{"subject", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    const char *subject = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 's')
            subject = optarg;
        else
            return 2;
    }
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, stdin);
    struct oh_triage t;
    oh_triage_classify(buf, len, subject, &t);
    printf("{\"frustrated\":%s,\"sentiment\":%.3f,\"priority\":\"%s\",\"wants_human\":%s,"
           "\"language\":\"%s\"}\n",
           t.frustrated ? "true" : "false", t.sentiment, oh_triage_priority_name(t.priority),
           t.wants_human ? "true" : "false", t.language);
    return 0;
}
