/* marks.h - a lossy set of (subject, seq) pairs that one thread marks and
 * another asks about, without locks: a hit means the pair was marked (up to
 * a 64-bit hash collision), a miss means nothing, and the asker then finds
 * out the long way. Sync marks the messages it scored inline, so that the
 * enrich service of the same process skips them without reading them. */
#ifndef OH_MARKS_H
#define OH_MARKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct oh_marks oh_marks;

/* SLOTS is rounded up to a power of two; a later mark that falls on a slot
 * replaces the one there. NULL on allocation failure. */
oh_marks *oh_marks_new(size_t slots);
void oh_marks_free(oh_marks *m);

/* Thread-safe; M may be NULL (nothing is marked). */
void oh_marks_put(oh_marks *m, const char *subject, int64_t seq);
bool oh_marks_has(const oh_marks *m, const char *subject, int64_t seq);

#endif
