/* workq.c - a mutex/condvar FIFO feeding a fixed set of threads. */
#include <pthread.h>
#include <stdlib.h>
#include "core/workq.h"

struct job {
    struct job *next;
    oh_work_fn fn;
    void *opaque;
};

struct oh_workq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, **tail;
    bool closing;
    int nthreads;
    pthread_t *threads;
};

static void *worker(void *arg)
{
    oh_workq *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->closing)
            pthread_cond_wait(&q->cv, &q->mu);
        struct job *j = q->head;
        if (!j) break;
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
    pthread_cond_init(&q->cv, NULL);
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

int oh_workq_submit(oh_workq *q, oh_work_fn fn, void *opaque)
{
    struct job *j = malloc(sizeof *j);
    if (!j) return OH_ENOMEM;
    *j = (struct job){NULL, fn, opaque};
    pthread_mutex_lock(&q->mu);
    if (q->closing) {
        pthread_mutex_unlock(&q->mu);
        free(j);
        return OH_ECLOSED;
    }
    *q->tail = j;
    q->tail = &j->next;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return OH_OK;
}
