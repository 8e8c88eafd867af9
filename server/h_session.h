/*
 * h_session.h: POST, GET and DELETE /v1/dashboard/session: sign the
 * dashboard in with an API key (a session cookie, session.h), say who a
 * request acts for, sign out. The rules: h_session.c.
 */
#ifndef OWLORE_H_SESSION_H
#define OWLORE_H_SESSION_H

#include <microhttpd.h>

struct http_request;

enum MHD_Result session_post(struct http_request *req);
enum MHD_Result session_get(struct http_request *req);
enum MHD_Result session_delete(struct http_request *req);

#endif
