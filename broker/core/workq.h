/* workq.h - a fixed pool of threads for blocking work (store reads, media
 * fetches) that must stay off the HTTP service thread. */
#ifndef OH_WORKQ_H
#define OH_WORKQ_H

#include "core/oh.h"

typedef struct oh_workq oh_workq;
typedef void (*oh_work_fn)(void *opaque);

/* Caller frees with oh_workq_free(), which runs what is queued first. */
oh_workq *oh_workq_new(int threads, const char *name);
void oh_workq_free(oh_workq *q);
/* Queues FN(OPAQUE) to run on a pool thread. OH_ECLOSED after free began. */
int oh_workq_submit(oh_workq *q, oh_work_fn fn, void *opaque);
/* The same, FN run DELAY_MS from now at the earliest (a job that waits for
 * something without holding a thread: it submits itself again). Jobs held
 * for their time run at once when the queue is freed. */
int oh_workq_submit_after(oh_workq *q, int delay_ms, oh_work_fn fn, void *opaque);

#endif
