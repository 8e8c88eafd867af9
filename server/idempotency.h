/*
 * idempotency.h: the Idempotency-Key header on POST requests. A client that
 * retries a POST with the same key gets the first response replayed instead
 * of a second file or job.
 *
 * When a POST carries the header, the HTTP core calls idem_begin just before
 * the handler runs. The key (1..IDEM_KEY_MAX printable ASCII characters,
 * else 400) is reserved for (tenant, key) together with a hash of the
 * request: method, path and, for gathered bodies, the body (an upload's
 * multipart body is streamed to disk and not hashed: its key covers method
 * and path). Outcomes:
 *   - first use: the handler runs; reply.c hands its JSON reply to
 *     idem_record, which stores it (a 5xx is not stored: the reservation is
 *     dropped, so a retry runs again);
 *   - a stored reply for the same request: replayed with the header
 *     Idempotent-Replayed: true, the handler does not run;
 *   - the same key with a different request: 422 idempotency_key_reused;
 *   - the first request still running: 409 idempotency_key_in_use.
 * A request that ends without a reply (the client went away) drops its
 * reservation in idem_abandon. Records older than IDEM_TTL_S are pruned.
 * Without a service (service_get() NULL) the header is ignored.
 */
#ifndef OWLORE_IDEMPOTENCY_H
#define OWLORE_IDEMPOTENCY_H

#include <stddef.h>

#include <microhttpd.h>

struct http_request;

#define IDEM_KEY_MAX 255
#define IDEM_TTL_S (24 * 3600)

/* For a POST with the header: MHD_YES with req->idem_reserved set when the
 * handler must run, else a queued reply (req->replied set) that ends the
 * request. */
enum MHD_Result idem_begin(struct http_request *req);
/* Called by reply.c with each JSON reply of a reserved request. */
void idem_record(struct http_request *req, unsigned status, const char *body, size_t len);
/* Called when a request ends: drops a reservation that got no reply. */
void idem_abandon(struct http_request *req);

#endif
