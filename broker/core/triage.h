/* triage.h - scores one inbound message: frustration, sentiment, priority,
 * "wants a human" and language, from compiled-in cue lists (data/triage/). */
#ifndef OH_CORE_TRIAGE_H
#define OH_CORE_TRIAGE_H

#include <stdbool.h>
#include <stddef.h>

/* Ordered: a conversation's priority is raised to the highest seen. */
enum oh_triage_priority { OH_TRIAGE_LOW, OH_TRIAGE_NORMAL, OH_TRIAGE_HIGH, OH_TRIAGE_URGENT };

struct oh_triage {
    bool frustrated;
    bool wants_human;
    enum oh_triage_priority priority;
    double sentiment; /* [-1, 1], negative = unhappy */
    char language[4]; /* BCP 47: en, es, de, pt, fr, ja or ru; en when unsure */
};

/* Bytes of the customer's own text that are read; the rest of a longer
 * message is ignored (the mood and the asks are in its beginning). */
#define OH_TRIAGE_MAX_TEXT 8192

/* Scores TEXT (LEN bytes of UTF-8, need not be NUL-terminated) and the
 * optional SUBJECT (an email's, NUL-terminated, or NULL) into OUT. Quoted
 * earlier mail (lines starting with '>', everything after an "On ... wrote:"
 * line and its translations) is not the customer's and is skipped; the
 * subject counts for priority and language only. Pure: no allocation, no
 * I/O, no shared state; callable from any thread. Returns 0, or OH_EINVAL
 * when TEXT or OUT is NULL. */
int oh_triage_classify(const char *text, size_t len, const char *subject, struct oh_triage *out);

/* "urgent", "high", "normal", "low". */
const char *oh_triage_priority_name(enum oh_triage_priority p);
/* The priority named S, or -1. */
int oh_triage_priority_parse(const char *s);

#endif
