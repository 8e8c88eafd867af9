/*
 * conn_park.c: parked connections (see conn_park.h). One mutex guards the
 * parked list, the epoch and the timer's state; MHD_suspend_connection and
 * MHD_resume_connection are called with it held, so a connection is never
 * resumed before it was suspended. The timer thread sleeps on a
 * CLOCK_MONOTONIC condition variable until the earliest deadline it knows
 * of; parking a connection with an earlier deadline wakes it to re-plan.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conn_park.h"

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_once_t once;
    pthread_t timer;
    int users;          /* conn_park_start calls not yet stopped */
    int draining;       /* conn_park_drain calls not yet stopped */
    int timer_stop;
    double planned;     /* when the timer thread wakes next */
    uint64_t epoch;
    struct conn_park *head;
} pk = {.mu = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT};

static void init_cv(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&pk.cv, &a);
    pthread_condattr_destroy(&a);
}

double conn_park_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Unlinks p and resumes its connection; the lock is held. */
static void resume_locked(struct conn_park *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        pk.head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
    MHD_resume_connection(p->conn);
}

static void *timer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pk.mu);
    while (!pk.timer_stop) {
        double now = conn_park_now(), next = now + 3600;
        for (struct conn_park *p = pk.head, *n; p; p = n) {
            n = p->next;
            if (p->deadline <= now)
                resume_locked(p);
            else if (p->deadline < next)
                next = p->deadline;
        }
        pk.planned = next;
        struct timespec until = {(time_t)next, (long)((next - (double)(time_t)next) * 1e9)};
        pthread_cond_timedwait(&pk.cv, &pk.mu, &until);
    }
    pthread_mutex_unlock(&pk.mu);
    return NULL;
}

int conn_park_start(char *err, size_t errlen)
{
    pthread_once(&pk.once, init_cv);
    pthread_mutex_lock(&pk.mu);
    int rc = 0;
    if (pk.users == 0) {
        pk.timer_stop = 0;
        pk.planned = 0;
        rc = pthread_create(&pk.timer, NULL, timer_main, NULL);
        if (rc != 0)
            snprintf(err, errlen, "parked connections timer: %s", strerror(rc));
    }
    pk.users += rc == 0;
    pthread_mutex_unlock(&pk.mu);
    return rc == 0 ? 0 : -1;
}

void conn_park_drain(void)
{
    pthread_mutex_lock(&pk.mu);
    pk.draining++;
    while (pk.head)
        resume_locked(pk.head);
    pthread_mutex_unlock(&pk.mu);
}

void conn_park_stop(void)
{
    pthread_mutex_lock(&pk.mu);
    pk.draining--;
    int last = --pk.users == 0;
    if (last) {
        pk.timer_stop = 1;
        pthread_cond_signal(&pk.cv);
    }
    pthread_mutex_unlock(&pk.mu);
    if (last)
        pthread_join(pk.timer, NULL);
}

uint64_t conn_park_epoch(void)
{
    pthread_mutex_lock(&pk.mu);
    uint64_t e = pk.epoch;
    pthread_mutex_unlock(&pk.mu);
    return e;
}

enum conn_park_result conn_park_wait(struct conn_park *p, uint64_t epoch)
{
    enum conn_park_result r = PARK_PARKED;
    pthread_mutex_lock(&pk.mu);
    if (pk.users == 0 || pk.draining) {
        r = PARK_CLOSED;
    } else if (pk.epoch != epoch) {
        r = PARK_RETRY;
    } else {
        p->prev = NULL;
        p->next = pk.head;
        if (pk.head)
            pk.head->prev = p;
        pk.head = p;
        MHD_suspend_connection(p->conn);
        if (p->deadline < pk.planned)
            pthread_cond_signal(&pk.cv);
    }
    pthread_mutex_unlock(&pk.mu);
    return r;
}

void conn_park_wake(const char *key)
{
    pthread_mutex_lock(&pk.mu);
    pk.epoch++;
    for (struct conn_park *p = pk.head, *n; p; p = n) {
        n = p->next;
        if (strcmp(p->key, key) == 0)
            resume_locked(p);
    }
    pthread_mutex_unlock(&pk.mu);
}
