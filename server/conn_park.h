/*
 * conn_park.h: connections that wait for something without holding a
 * thread: a response's content reader with nothing to send parks its
 * connection (MHD_suspend_connection) under a key and returns 0; the
 * connection is resumed by conn_park_wake(key), at its deadline, or when the
 * server stops. One timer thread serves every deadline.
 *
 * No lost wake-ups: read conn_park_epoch() before looking for work, and pass
 * it to conn_park_wait; any conn_park_wake since then answers PARK_RETRY
 * instead of parking, so look again.
 *
 * Life: http_server_start calls conn_park_start, http_server_stop calls
 * conn_park_drain before MHD_stop_daemon (every parked connection is resumed
 * and no new one parks: MHD must not be stopped with suspended connections)
 * and conn_park_stop after it. Several servers in one process share the
 * timer; while any of them stops, parking is refused everywhere.
 *
 * A parked connection is not processed by MHD, so it cannot be closed while
 * parked: the caller's struct conn_park, which lives with the response,
 * stays valid for as long as it is parked.
 */
#ifndef OWLORE_CONN_PARK_H
#define OWLORE_CONN_PARK_H

#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

struct conn_park {
    struct MHD_Connection *conn;
    char key[64];
    double deadline; /* CLOCK_MONOTONIC seconds (conn_park_now) */
    /* private: the parked list */
    struct conn_park *prev, *next;
};

enum conn_park_result {
    PARK_PARKED, /* suspended: return 0 from the reader */
    PARK_RETRY,  /* a wake-up came since the epoch: look for work again */
    PARK_CLOSED, /* the server is stopping (or parking never started): end */
};

/* 0, or -1 with a message when the timer thread cannot start. */
int conn_park_start(char *err, size_t errlen);
/* Resumes every parked connection and refuses parking until conn_park_stop. */
void conn_park_drain(void);
/* Ends one conn_park_start; the last one stops the timer thread. */
void conn_park_stop(void);

/* The current CLOCK_MONOTONIC time in seconds. */
double conn_park_now(void);
/* The wake-up counter, to read before looking for work. */
uint64_t conn_park_epoch(void);
/* Parks p->conn under p->key until p->deadline; must run inside the
 * connection's content reader. */
enum conn_park_result conn_park_wait(struct conn_park *p, uint64_t epoch);
/* Resumes every connection parked under `key`. */
void conn_park_wake(const char *key);

#endif
