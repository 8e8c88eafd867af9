/*
 * h_web.h: the browser dashboard's static files (web/): GET / and
 * GET /web/{name.}, public routes (the pages hold no data; they call the
 * API, which authenticates). Where web/ is found: h_web.c.
 */
#ifndef OWLORE_H_WEB_H
#define OWLORE_H_WEB_H

#include <microhttpd.h>

struct http_request;

/* GET /: web/index.html. */
enum MHD_Result web_index(struct http_request *req);
/* GET /web/{name.}: web/<name>, for .html, .css, .js, .svg and .png. */
enum MHD_Result web_file(struct http_request *req);

#endif
