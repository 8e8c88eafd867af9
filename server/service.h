/*
 * service.h: the state the endpoint handlers share: the store and the data
 * directory. `owlore serve` (or a test) fills one struct service and
 * publishes it with service_init before the HTTP server starts; handlers
 * read it with service_get. It is set once and never changes while the
 * server runs, so handlers read it without a lock.
 */
#ifndef OWLORE_SERVICE_H
#define OWLORE_SERVICE_H

#include <stddef.h>

#include "chat.h"

struct store;
struct tokenizer;

struct service {
    struct store *store;
    const char *data_dir; /* holds owlore.db, blobs/, models/ and jobs/ */
    const char *default_model; /* the model of a job that names none */
    double memory_limit;       /* bytes a job's planned peak may reach; 0: no limit */
    const char *web_dir;       /* the dashboard's files; NULL: found by h_web.c */
    struct tokenizer *tok;     /* the default model's, for upload token statistics;
                                  NULL: uploads are checked for structure only */
    enum chat_template tmpl;   /* its chat template (raw when it has none) */
    int webhook_allow_loopback; /* webhooks may go to loopback, over http too
                                   (webhook_url.h); for local use and tests */
};

/* Creates <data_dir>/blobs when missing and publishes svc (which must
 * outlive the server). 0, or -1 with a message. */
int service_init(struct service *svc, char *err, size_t errlen);
/* The id of the default model in /v1/models: its file name ("" without one). */
const char *service_default_model_id(const struct service *svc);
/* The model path a job may train: `model` NULL or equal to default_model or
 * to its id gives default_model; a name without '/' is looked up in <data_dir>/models/;
 * any other path must resolve (realpath) to default_model or to something
 * under <data_dir>/models/. 0 with the path in out, or -1 with a message. */
int service_model_path(const struct service *svc, const char *model, char *out, size_t n,
                       char *err, size_t errlen);
/* Start-up sweep of <data_dir>/blobs/ (before the server listens): removes
 * upload temporaries ("tmp-…") and files no blob row references, left by a
 * crash between writing and recording an upload (store.h's blob protocol).
 * *removed counts them. 0, or -1 with a message. */
int service_sweep_blobs(const struct service *svc, int *removed, char *err, size_t errlen);
/* Loads the default model's tokenizer and chat template into svc->tok and
 * svc->tmpl (freed by service_free_tokenizer). 0, or -1 with a message
 * (svc->tok stays NULL). */
int service_load_tokenizer(struct service *svc, char *err, size_t errlen);
void service_free_tokenizer(struct service *svc);
/* The published service; NULL before service_init. */
struct service *service_get(void);

#endif
