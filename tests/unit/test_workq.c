/* test_workq.c - the worker pool of core/workq.h: a job held for its time
 * does not occupy a worker, held jobs run in the order of their time and
 * never before it, a job may hold itself again, and freeing the pool runs
 * what it still holds at once. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include "core/oh.h"
#include "core/workq.h"
#include "tap.h"

struct trace {
    pthread_mutex_t mu;
    char order[64];
    int64_t ran_ms[64];
    int n;
};

struct step {
    struct trace *t;
    char name;
};

static void note(void *opaque)
{
    struct step *s = opaque;
    pthread_mutex_lock(&s->t->mu);
    s->t->ran_ms[s->t->n] = oh_mono_ms();
    s->t->order[s->t->n++] = s->name;
    pthread_mutex_unlock(&s->t->mu);
}

static int ran(struct trace *t)
{
    pthread_mutex_lock(&t->mu);
    int n = t->n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

static void wait_for(struct trace *t, int n)
{
    for (int i = 0; i < 3000 && ran(t) < n; i++)
        usleep(10000);
    ck_assert_int_eq(ran(t), n);
}

/* One thread: a job held for 300 ms, then one to run now: the second runs
 * first (the held one occupies no worker), the first not before its time. */
START_TEST(held_job_leaves_the_worker_free)
{
    struct trace t = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct step a = {&t, 'a'}, b = {&t, 'b'};
    oh_workq *q = oh_workq_new(1, "t-workq");
    ck_assert_ptr_nonnull(q);
    int64_t t0 = oh_mono_ms();
    ck_assert_int_eq(oh_workq_submit_after(q, 300, note, &a), OH_OK);
    ck_assert_int_eq(oh_workq_submit(q, note, &b), OH_OK);
    wait_for(&t, 2);
    ck_assert_str_eq(t.order, "ba");
    ck_assert_int_ge(t.ran_ms[1] - t0, 300);
    oh_workq_free(q);
}
END_TEST

/* Held jobs submitted out of order run by their time; equal times in the
 * order submitted. */
START_TEST(held_jobs_run_by_their_time)
{
    struct trace t = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct step s[5] = {{&t, 'c'}, {&t, 'a'}, {&t, 'b'}, {&t, 'd'}, {&t, 'e'}};
    int delay[5] = {600, 200, 400, 600, 600}; /* gaps a stalled submitter cannot close */
    oh_workq *q = oh_workq_new(1, "t-workq");
    ck_assert_ptr_nonnull(q);
    int64_t t0 = oh_mono_ms();
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(oh_workq_submit_after(q, delay[i], note, &s[i]), OH_OK);
    wait_for(&t, 5);
    ck_assert_str_eq(t.order, "abcde");
    ck_assert_int_ge(t.ran_ms[0] - t0, 200);
    ck_assert_int_ge(t.ran_ms[1] - t0, 400);
    ck_assert_int_ge(t.ran_ms[4] - t0, 600);
    oh_workq_free(q);
}
END_TEST

/* A job that waits for something by holding itself again, as a read that
 * waits for sync does (gateway/conversation.c): with one thread, another
 * job still gets through meanwhile. */
struct poller {
    oh_workq *q;
    struct trace *t;
    atomic_int rounds;
    atomic_bool done;
};

static void poll_job(void *opaque)
{
    struct poller *p = opaque;
    if (atomic_fetch_add(&p->rounds, 1) < 20 && oh_workq_submit_after(p->q, 5, poll_job, p) == 0)
        return;
    atomic_store(&p->done, true);
}

/* Another job: notes whether the poller had finished when it ran. */
struct bystander {
    struct step step;
    struct poller *p;
    atomic_bool poller_done;
};

static void bystander_job(void *opaque)
{
    struct bystander *b = opaque;
    atomic_store(&b->poller_done, atomic_load(&b->p->done));
    note(&b->step);
}

START_TEST(job_holds_itself_again)
{
    struct trace t = {.mu = PTHREAD_MUTEX_INITIALIZER};
    oh_workq *q = oh_workq_new(1, "t-workq");
    ck_assert_ptr_nonnull(q);
    struct poller p = {.q = q, .t = &t};
    struct bystander b = {.step = {&t, 'b'}, .p = &p};
    ck_assert_int_eq(oh_workq_submit(q, poll_job, &p), OH_OK);
    usleep(20000);
    ck_assert_int_eq(oh_workq_submit(q, bystander_job, &b), OH_OK);
    wait_for(&t, 1);
    ck_assert(!atomic_load(&b.poller_done)); /* b ran while the poller was still waiting */
    for (int i = 0; i < 3000 && !atomic_load(&p.done); i++)
        usleep(10000);
    ck_assert(atomic_load(&p.done));
    ck_assert_int_eq(atomic_load(&p.rounds), 21);
    oh_workq_free(q);
}
END_TEST

/* Freeing runs the held jobs at once, and refuses new ones meanwhile: a
 * job that tries to hold itself again is told the pool is closing. */
static void try_again(void *opaque)
{
    struct poller *p = opaque;
    atomic_fetch_add(&p->rounds, 1);
    atomic_store(&p->done, oh_workq_submit_after(p->q, 5, try_again, p) == OH_ECLOSED);
}

START_TEST(free_runs_held_jobs_at_once)
{
    oh_workq *q = oh_workq_new(2, "t-workq");
    ck_assert_ptr_nonnull(q);
    struct poller p = {.q = q};
    ck_assert_int_eq(oh_workq_submit_after(q, 600000, try_again, &p), OH_OK);
    int64_t t0 = oh_mono_ms();
    oh_workq_free(q);
    ck_assert_int_eq(atomic_load(&p.rounds), 1);
    ck_assert(atomic_load(&p.done));
    ck_assert_int_lt(oh_mono_ms() - t0, 5000); /* not the job's ten minutes */
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("workq");
    TCase *t = tcase_create("workq");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, held_job_leaves_the_worker_free);
    tcase_add_test(t, held_jobs_run_by_their_time);
    tcase_add_test(t, job_holds_itself_again);
    tcase_add_test(t, free_runs_held_jobs_at_once);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
