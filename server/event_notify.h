/*
 * event_notify.h: tells whoever listens that a job has a new event.
 *
 * The store calls event_notify_committed after every transaction that
 * appended a job event has committed (store_event_append,
 * store_job_transition with an event, outside its lock; start-up recovery,
 * which runs before anything listens, inside it).
 * One process-wide listener may be set (the server-sent events code sets one
 * to wake the streams of that job); without one, a notification does
 * nothing. The listener runs on the committing thread, so it must be short
 * and must not call the store.
 */
#ifndef OWLORE_EVENT_NOTIFY_H
#define OWLORE_EVENT_NOTIFY_H

typedef void (*event_notify_fn)(const char *job_id);

/* Sets the listener (NULL: none); later calls replace it. */
void event_notify_listen(event_notify_fn fn);
/* Job `job_id` has a new committed event: calls the listener, if any. */
void event_notify_committed(const char *job_id);

#endif
