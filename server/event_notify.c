/*
 * event_notify.c: the one listener for committed job events (see
 * event_notify.h), kept in an atomic pointer so the store's threads can
 * notify while another thread sets it.
 */
#include <stdatomic.h>

#include "event_notify.h"

static _Atomic(event_notify_fn) listener;

void event_notify_listen(event_notify_fn fn)
{
    atomic_store(&listener, fn);
}

void event_notify_committed(const char *job_id)
{
    event_notify_fn fn = atomic_load(&listener);
    if (fn)
        fn(job_id);
}
