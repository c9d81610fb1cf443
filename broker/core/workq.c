/* workq.c - a mutex/condvar FIFO feeding a fixed set of threads, and a
 * list of jobs held until their time (sorted by it, then by submission). */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include "core/workq.h"

struct job {
    struct job *next;
    oh_work_fn fn;
    void *opaque;
    int64_t due_ms; /* CLOCK_MONOTONIC; held jobs only */
};

struct oh_workq {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC: a worker waits for the first held job's time */
    struct job *head, **tail;
    struct job *held; /* by due_ms */
    bool closing;
    int nthreads;
    pthread_t *threads;
};

/* With q->mu held: moves the held jobs that are due (all of them once the
 * queue is closing: freeing runs what is queued) to the FIFO's tail, and
 * wakes the other workers when there is more than the caller's one. */
static void release_due(oh_workq *q)
{
    int64_t now = q->held && !q->closing ? oh_mono_ms() : 0;
    int n = 0;
    for (; q->held && (q->closing || q->held->due_ms <= now); n++) {
        struct job *j = q->held;
        q->held = j->next;
        j->next = NULL;
        *q->tail = j;
        q->tail = &j->next;
    }
    if (n > 1) pthread_cond_broadcast(&q->cv);
}

static void wait_for_work(oh_workq *q)
{
    if (!q->held) {
        pthread_cond_wait(&q->cv, &q->mu);
        return;
    }
    struct timespec ts = {(time_t)(q->held->due_ms / 1000),
                          (long)(q->held->due_ms % 1000) * 1000000};
    pthread_cond_timedwait(&q->cv, &q->mu, &ts);
}

static void *worker(void *arg)
{
    oh_workq *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        release_due(q);
        struct job *j = q->head;
        if (!j) {
            if (q->closing) break;
            wait_for_work(q);
            continue;
        }
        q->head = j->next;
        if (!q->head) q->tail = &q->head;
        pthread_mutex_unlock(&q->mu);
        j->fn(j->opaque);
        free(j);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

oh_workq *oh_workq_new(int threads, const char *name)
{
    oh_workq *q = calloc(1, sizeof *q);
    if (!q || !(q->threads = calloc((size_t)threads, sizeof *q->threads))) {
        free(q);
        return NULL;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv, &ca);
    pthread_condattr_destroy(&ca);
    q->tail = &q->head;
    for (; q->nthreads < threads; q->nthreads++) {
        if (pthread_create(&q->threads[q->nthreads], NULL, worker, q)) break;
        pthread_setname_np(q->threads[q->nthreads], name);
    }
    if (q->nthreads == 0) {
        oh_workq_free(q);
        return NULL;
    }
    return q;
}

void oh_workq_free(oh_workq *q)
{
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->closing = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    free(q->threads);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

int oh_workq_submit_after(oh_workq *q, int delay_ms, oh_work_fn fn, void *opaque)
{
    struct job *j = malloc(sizeof *j);
    if (!j) return OH_ENOMEM;
    *j = (struct job){NULL, fn, opaque, delay_ms > 0 ? oh_mono_ms() + delay_ms : 0};
    pthread_mutex_lock(&q->mu);
    if (q->closing) {
        pthread_mutex_unlock(&q->mu);
        free(j);
        return OH_ECLOSED;
    }
    if (delay_ms <= 0) {
        *q->tail = j;
        q->tail = &j->next;
        pthread_cond_signal(&q->cv);
    } else {
        struct job **at = &q->held;
        while (*at && (*at)->due_ms <= j->due_ms)
            at = &(*at)->next;
        j->next = *at;
        *at = j;
        /* a new first held job: a worker waiting for the old one's time wakes
         * to wait for this one's */
        if (q->held == j) pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return OH_OK;
}

int oh_workq_submit(oh_workq *q, oh_work_fn fn, void *opaque)
{
    return oh_workq_submit_after(q, 0, fn, opaque);
}
