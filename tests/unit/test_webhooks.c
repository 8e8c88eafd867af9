/*
 * test_webhooks.c: webhooks end to end. The real server runs in-process
 * (test_server.h, with the job worker and stories260K) with loopback
 * webhooks allowed and the delivery worker on short retry delays; a small
 * libmicrohttpd receiver on 127.0.0.1 records every delivery. Checked: the
 * IP classifier on a table of addresses; registrations that are refused
 * (private, link-local and, when not allowed, loopback addresses, ftp, a
 * URL with user:pass@, unknown fields, bad types and event types) with
 * param naming the field; create / list / get / delete, with the secret
 * shown only when created; another tenant gets 404; a short job with
 * checkpoints delivers running, checkpoint.created and succeeded, every
 * signature verifying with the create reply's secret and none with
 * another; a receiver answering 500 first gets the same message again;
 * one always answering 500 gets max_attempts tries and the row is kept
 * failed; deliveries queued while the worker is stopped are sent once it
 * runs again.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "store_webhooks.h"
#include "test.h"
#include "test_server.h"
#include "webhook_url.h"
#include "webhooks.h"

static char dir[] = "/tmp/owlore-webhooks-XXXXXX";
static struct test_server server;
static uint16_t port, rx_port;
static char key_a[STORE_KEY_LEN], key_b[STORE_KEY_LEN];

#define MAX_ATTEMPTS 3

/* ---- the receiver -------------------------------------------------------- */

struct delivery {
    char path[32];
    char id[64];
    char timestamp[32];
    char signature[128];
    char *body;
    int status; /* what the receiver answered */
};

static struct {
    pthread_mutex_t mu;
    struct delivery v[512];
    int n;
} rx = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* 1 when a delivery with this webhook-id already reached `path`. */
static int seen_locked(const char *path, const char *id)
{
    for (int i = 0; i < rx.n; i++)
        if (!strcmp(rx.v[i].path, path) && !strcmp(rx.v[i].id, id))
            return 1;
    return 0;
}

/* /ok answers 200, /flaky 500 to the first try of each message and then
 * 200, /down always 500. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **state)
{
    (void)cls, (void)method, (void)version;
    struct buf *b = *state;
    if (!b) {
        *state = calloc(1, sizeof *b);
        return *state ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        on_body((char *)upload, 1, *upload_size, b);
        *upload_size = 0;
        return MHD_YES;
    }
    const char *id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-id");
    const char *ts = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-timestamp");
    const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-signature");
    unsigned status = 200;
    pthread_mutex_lock(&rx.mu);
    if (!strcmp(url, "/down") || (!strcmp(url, "/flaky") && !seen_locked(url, id ? id : "")))
        status = 500;
    if (rx.n < (int)(sizeof rx.v / sizeof rx.v[0])) {
        struct delivery *d = &rx.v[rx.n++];
        snprintf(d->path, sizeof d->path, "%s", url);
        snprintf(d->id, sizeof d->id, "%s", id ? id : "");
        snprintf(d->timestamp, sizeof d->timestamp, "%s", ts ? ts : "");
        snprintf(d->signature, sizeof d->signature, "%s", sig ? sig : "");
        d->body = b->p ? b->p : strdup("");
        b->p = NULL;
        d->status = (int)status;
    }
    pthread_mutex_unlock(&rx.mu);
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    struct buf *b = *state;
    if (b)
        free(b->p);
    free(b);
    *state = NULL;
}

static struct MHD_Daemon *receiver_start(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
        on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    const union MHD_DaemonInfo *info = d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    rx_port = info ? info->port : 0;
    return d;
}

/* Deliveries to `path` of event `type` (NULL: any), counted. */
static int count(const char *path, const char *type)
{
    int n = 0;
    pthread_mutex_lock(&rx.mu);
    for (int i = 0; i < rx.n; i++) {
        if (strcmp(rx.v[i].path, path) != 0)
            continue;
        json_t *p = json_loads(rx.v[i].body, 0, NULL);
        n += !type || !strcmp(str(p, "type"), type);
        json_decref(p);
    }
    pthread_mutex_unlock(&rx.mu);
    return n;
}

/* ---- Standard Webhooks verification, written apart from webhook_sign.c -- */

/* 1 when `signature` ("v1,<base64>", possibly several space-separated) is
 * HMAC-SHA256 of id.timestamp.body under the key of `secret`. */
static int verify(const char *secret, const char *id, const char *timestamp, const char *body,
                  const char *signature)
{
    unsigned char key[64], mac[32];
    char msg[65536], expect[64];
    unsigned mac_len = 0;
    if (strncmp(secret, "whsec_", 6) != 0 || strlen(secret + 6) != 44)
        return 0;
    if (EVP_DecodeBlock(key, (const unsigned char *)secret + 6, 44) != 33)
        return 0; /* 32 bytes and one of padding */
    int n = snprintf(msg, sizeof msg, "%s.%s.%s", id, timestamp, body);
    if (n < 0 || (size_t)n >= sizeof msg ||
        !HMAC(EVP_sha256(), key, 32, (const unsigned char *)msg, (size_t)n, mac, &mac_len))
        return 0;
    memcpy(expect, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)expect + 3, mac, (int)mac_len);
    for (const char *p = signature; *p;) {
        size_t len = strcspn(p, " ");
        if (len == strlen(expect) && !memcmp(p, expect, len))
            return 1;
        p += len;
        p += strspn(p, " ");
    }
    return 0;
}

/* ---- cases ------------------------------------------------------------------ */

static long call(const char *key, const char *method, const char *path, const char *json,
                 json_t **out)
{
    return test_call(port, method, path, key, json, NULL, out);
}

static const char *error_param(json_t *o)
{
    return str(json_object_get(o, "error"), "param");
}

static void test_ip_classifier(void)
{
    static const struct {
        const char *ip;
        enum webhook_ip_class want;
    } cases[] = {
        {"8.8.8.8", WEBHOOK_IP_PUBLIC},
        {"1.1.1.1", WEBHOOK_IP_PUBLIC},
        {"172.32.0.1", WEBHOOK_IP_PUBLIC},
        {"100.128.0.1", WEBHOOK_IP_PUBLIC},
        {"127.0.0.1", WEBHOOK_IP_LOOPBACK},
        {"127.255.0.9", WEBHOOK_IP_LOOPBACK},
        {"10.0.0.1", WEBHOOK_IP_PRIVATE},
        {"172.16.0.1", WEBHOOK_IP_PRIVATE},
        {"172.31.255.255", WEBHOOK_IP_PRIVATE},
        {"192.168.1.1", WEBHOOK_IP_PRIVATE},
        {"100.64.0.1", WEBHOOK_IP_PRIVATE},
        {"100.127.255.254", WEBHOOK_IP_PRIVATE},
        {"169.254.169.254", WEBHOOK_IP_LINK_LOCAL},
        {"0.0.0.0", WEBHOOK_IP_UNSPECIFIED},
        {"0.1.2.3", WEBHOOK_IP_UNSPECIFIED},
        {"224.0.0.1", WEBHOOK_IP_MULTICAST},
        {"239.255.255.250", WEBHOOK_IP_MULTICAST},
        {"255.255.255.255", WEBHOOK_IP_RESERVED},
        {"240.0.0.1", WEBHOOK_IP_RESERVED},
        {"192.0.2.1", WEBHOOK_IP_RESERVED},
        {"198.18.0.1", WEBHOOK_IP_RESERVED},
        {"203.0.113.5", WEBHOOK_IP_RESERVED},
        {"2606:4700:4700::1111", WEBHOOK_IP_PUBLIC},
        {"2a00:1450:4001:80b::200e", WEBHOOK_IP_PUBLIC},
        {"::ffff:8.8.8.8", WEBHOOK_IP_PUBLIC},
        {"::", WEBHOOK_IP_UNSPECIFIED},
        {"::1", WEBHOOK_IP_LOOPBACK},
        {"::ffff:127.0.0.1", WEBHOOK_IP_LOOPBACK},
        {"::ffff:10.0.0.1", WEBHOOK_IP_PRIVATE},
        {"::ffff:169.254.169.254", WEBHOOK_IP_LINK_LOCAL},
        {"::ffff:0.0.0.0", WEBHOOK_IP_UNSPECIFIED},
        {"::127.0.0.1", WEBHOOK_IP_RESERVED},
        {"64:ff9b::10.0.0.1", WEBHOOK_IP_PRIVATE},
        {"64:ff9b::8.8.8.8", WEBHOOK_IP_PUBLIC},
        {"2002:7f00:1::", WEBHOOK_IP_LOOPBACK},
        {"2002:a9fe:a9fe::1", WEBHOOK_IP_LINK_LOCAL},
        {"fc00::1", WEBHOOK_IP_PRIVATE},
        {"fd12:3456::1", WEBHOOK_IP_PRIVATE},
        {"fec0::1", WEBHOOK_IP_PRIVATE},
        {"fe80::1", WEBHOOK_IP_LINK_LOCAL},
        {"febf::1", WEBHOOK_IP_LINK_LOCAL},
        {"ff02::1", WEBHOOK_IP_MULTICAST},
        {"2001:db8::1", WEBHOOK_IP_RESERVED},
        {"2001::1", WEBHOOK_IP_RESERVED},
        {"100::1", WEBHOOK_IP_RESERVED},
    };
    test_begin("webhooks_ip_classifier");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char a[16];
        int family = strchr(cases[i].ip, ':') ? AF_INET6 : AF_INET;
        CHECK_MSG(inet_pton(family, cases[i].ip, a) == 1, "inet_pton %s", cases[i].ip);
        enum webhook_ip_class got = webhook_ip_classify(family, a);
        CHECK_MSG(got == cases[i].want, "%s: %s, expected %s", cases[i].ip,
                  webhook_ip_class_name(got), webhook_ip_class_name(cases[i].want));
    }
    test_end();
}

/* POST /v1/webhooks with `body` as tenant A must be 400 naming `param`. */
static void refused(const char *body, const char *param)
{
    json_t *r;
    long st = call(key_a, "POST", "/v1/webhooks", body, &r);
    CHECK_MSG(st == 400 && !strcmp(error_param(r), param), "%s: %ld, param '%s'", body, st,
              error_param(r));
    json_decref(r);
}

static void test_refusals(void)
{
    char body[512];
    test_begin("webhooks_register_refusals");
    refused("{\"url\": \"http://10.0.0.1/\"}", "url");
    refused("{\"url\": \"https://10.0.0.1/\"}", "url");
    refused("{\"url\": \"http://169.254.169.254/latest/meta-data/\"}", "url");
    refused("{\"url\": \"https://[::ffff:169.254.169.254]/\"}", "url");
    refused("{\"url\": \"https://192.168.0.1:8443/hook\"}", "url");
    refused("{\"url\": \"ftp://example.com/hook\"}", "url");
    refused("{\"url\": \"gopher://127.0.0.1/\"}", "url");
    refused("{\"url\": \"not a url\"}", "url");
    refused("{\"url\": 42}", "url");
    refused("{}", "url");
    snprintf(body, sizeof body, "{\"url\": \"http://user:pass@127.0.0.1:%u/ok\"}", rx_port);
    refused(body, "url");
    snprintf(body, sizeof body, "{\"url\": \"http://127.0.0.1:%u/ok\", \"bogus\": 1}", rx_port);
    refused(body, "bogus");
    snprintf(body, sizeof body, "{\"url\": \"http://127.0.0.1:%u/ok\", \"events\": \"all\"}",
             rx_port);
    refused(body, "events");
    snprintf(body, sizeof body,
             "{\"url\": \"http://127.0.0.1:%u/ok\", \"events\": [\"fine_tuning.job.exploded\"]}",
             rx_port);
    refused(body, "events");
    snprintf(body, sizeof body, "{\"url\": \"http://127.0.0.1:%u/ok\", \"events\": []}", rx_port);
    refused(body, "events");
    snprintf(body, sizeof body, "{\"url\": \"http://127.0.0.1:%u/ok\", \"description\": 7}",
             rx_port);
    refused(body, "description");
    /* loopback only when the server allows it (no delivery runs meanwhile) */
    server.svc.webhook_allow_loopback = 0;
    refused("{\"url\": \"https://[::1]/\"}", "url");
    refused("{\"url\": \"https://127.0.0.1/\"}", "url");
    snprintf(body, sizeof body, "{\"url\": \"http://127.0.0.1:%u/ok\"}", rx_port);
    refused(body, "url");
    server.svc.webhook_allow_loopback = 1;
    json_t *r;
    CHECK(call(key_a, "GET", "/v1/webhooks", NULL, &r) == 200);
    CHECK(json_array_size(json_object_get(r, "data")) == 0);
    json_decref(r);
    test_end();
}

struct hook {
    char id[64];
    char secret[128];
};
static struct hook ok_hook, flaky_hook, down_hook;

/* Registers http://127.0.0.1:<rx_port><path> for tenant A. */
static void create(struct hook *h, const char *path, const char *events)
{
    char body[512];
    json_t *r;
    snprintf(body, sizeof body, "{\"url\": \"http://127.0.0.1:%u%s\"%s%s%s}", rx_port, path,
             events ? ", \"events\": " : "", events ? events : "",
             events ? ", \"description\": \"test\"" : "");
    long st = call(key_a, "POST", "/v1/webhooks", body, &r);
    CHECK_MSG(st == 200, "create %s: %ld", path, st);
    CHECK(!strcmp(str(r, "object"), "webhook"));
    CHECK(!strncmp(str(r, "id"), "wh_", 3));
    CHECK_MSG(!strncmp(str(r, "secret"), "whsec_", 6) && strlen(str(r, "secret")) == 6 + 44,
              "secret '%s'", str(r, "secret"));
    CHECK(json_integer_value(json_object_get(r, "created_at")) > 0);
    snprintf(h->id, sizeof h->id, "%s", str(r, "id"));
    snprintf(h->secret, sizeof h->secret, "%s", str(r, "secret"));
    json_decref(r);
}

static void test_create_list_get(void)
{
    char path[128];
    json_t *r;
    test_begin("webhooks_create_list_get");
    create(&ok_hook, "/ok", NULL);
    create(&flaky_hook, "/flaky",
           "[\"fine_tuning.job.running\", \"fine_tuning.job.succeeded\", "
           "\"fine_tuning.job.succeeded\"]");
    create(&down_hook, "/down", "[\"fine_tuning.job.succeeded\"]");
    CHECK(strcmp(ok_hook.secret, flaky_hook.secret) != 0);

    snprintf(path, sizeof path, "/v1/webhooks/%s", ok_hook.id);
    CHECK(call(key_a, "GET", path, NULL, &r) == 200);
    CHECK(!strcmp(str(r, "id"), ok_hook.id));
    CHECK(json_object_get(r, "secret") == NULL);
    CHECK(json_array_size(json_object_get(r, "events")) == 6);
    CHECK(json_is_null(json_object_get(r, "description")));
    json_decref(r);

    snprintf(path, sizeof path, "/v1/webhooks/%s", flaky_hook.id);
    CHECK(call(key_a, "GET", path, NULL, &r) == 200);
    CHECK_MSG(json_array_size(json_object_get(r, "events")) == 2, "repeats are dropped");
    CHECK(!strcmp(str(r, "description"), "test"));
    json_decref(r);

    CHECK(call(key_a, "GET", "/v1/webhooks", NULL, &r) == 200);
    json_t *data = json_object_get(r, "data");
    CHECK(json_array_size(data) == 3 && json_is_false(json_object_get(r, "has_more")));
    CHECK(!strcmp(str(json_array_get(data, 0), "id"), down_hook.id)); /* newest first */
    CHECK(json_object_get(json_array_get(data, 0), "secret") == NULL);
    json_decref(r);
    CHECK(call(key_a, "GET", "/v1/webhooks?limit=2", NULL, &r) == 200);
    CHECK(json_array_size(json_object_get(r, "data")) == 2 &&
          json_is_true(json_object_get(r, "has_more")));
    json_decref(r);
    CHECK(call(key_a, "GET", "/v1/webhooks/wh_nope", NULL, &r) == 404);
    json_decref(r);
    test_end();
}

static void test_other_tenant(void)
{
    char path[128];
    json_t *r;
    test_begin("webhooks_other_tenant_404");
    snprintf(path, sizeof path, "/v1/webhooks/%s", ok_hook.id);
    CHECK(call(key_b, "GET", path, NULL, &r) == 404);
    json_decref(r);
    CHECK(call(key_b, "DELETE", path, NULL, &r) == 404);
    json_decref(r);
    CHECK(call(key_b, "GET", "/v1/webhooks", NULL, &r) == 200);
    CHECK(json_array_size(json_object_get(r, "data")) == 0);
    json_decref(r);
    CHECK(call(key_a, "GET", path, NULL, &r) == 200); /* still there */
    json_decref(r);
    CHECK(call(NULL, "GET", "/v1/webhooks", NULL, &r) == 401);
    json_decref(r);
    test_end();
}

/* Polls the job until it is finished (or 120 s without progress); its
 * status, or "". */
static void wait_job(const char *id, char *status, size_t n)
{
    json_t *j = test_wait_job(port, key_a, id, TEST_JOB_FINAL, 1200);
    snprintf(status, n, "%s", j ? str(j, "status") : "");
    json_decref(j);
}

/* Waits up to 30 s for cond() to hold. */
static int eventually(int (*cond)(void))
{
    for (int i = 0; i < 300; i++) {
        if (cond())
            return 1;
        usleep(100000);
    }
    return cond();
}

/* Every delivery of the job is done: sent, or given up and recorded. */
static int job_deliveries_done(void)
{
    char err[256];
    int64_t failed = -1, pending = -1;
    return count("/ok", "fine_tuning.job.succeeded") == 1 &&
           count("/flaky", "fine_tuning.job.succeeded") == 2 &&
           count("/down", NULL) == MAX_ATTEMPTS &&
           store_outbox_count(server.st, "failed", &failed, err, sizeof err) == STORE_OK &&
           store_outbox_count(server.st, "pending", &pending, err, sizeof err) == STORE_OK &&
           failed == 1 && pending == 0;
}

/* Checks every delivery to `path`: signed with h's secret (and not with
 * `other`'s), webhook-id = payload id, a fresh timestamp, the job's id. */
static void check_signed(const char *path, const struct hook *h, const struct hook *other,
                         const char *job_id)
{
    int64_t now = time(NULL);
    pthread_mutex_lock(&rx.mu);
    for (int i = 0; i < rx.n; i++) {
        struct delivery *d = &rx.v[i];
        if (strcmp(d->path, path) != 0)
            continue;
        json_t *p = json_loads(d->body, 0, NULL);
        CHECK_MSG(verify(h->secret, d->id, d->timestamp, d->body, d->signature),
                  "%s: signature of %s does not verify", path, d->id);
        CHECK_MSG(!verify(other->secret, d->id, d->timestamp, d->body, d->signature),
                  "%s: signature of %s verifies with another secret", path, d->id);
        CHECK_MSG(!verify(h->secret, d->id, "1", d->body, d->signature),
                  "%s: signature of %s verifies with another timestamp", path, d->id);
        CHECK(!strcmp(str(p, "id"), d->id) && !strncmp(d->id, "evt_", 4));
        CHECK(llabs(atoll(d->timestamp) - now) < 300);
        CHECK(json_integer_value(json_object_get(p, "created_at")) > 0);
        CHECK(!strcmp(str(json_object_get(p, "data"), "id"), job_id));
        json_decref(p);
    }
    pthread_mutex_unlock(&rx.mu);
}

static char file_id[64];

static void test_job_deliveries(void)
{
    char body[1024], job_id[64], status[32];
    json_t *r;
    test_begin("webhooks_job_events_signed_retried");
    long st = test_upload(port, key_a, "data/datasets/alpaca/alpaca_tiny.json", file_id,
                          sizeof file_id);
    CHECK_MSG(st == 200, "upload %ld", st);
    snprintf(body, sizeof body,
             "{\"training_file\": \"%s\", \"method\": {\"type\": \"lisa\", \"lisa\": "
             "{\"hyperparameters\": {\"sequence_length\": 128, \"batch_size\": 4, "
             "\"n_epochs\": 1, \"max_steps\": 6, \"save_every\": 3, \"gamma\": 1, "
             "\"learning_rate\": 0.001}}}}",
             file_id);
    st = call(key_a, "POST", "/v1/fine_tuning/jobs", body, &r);
    CHECK_MSG(st == 200, "create job %ld", st);
    snprintf(job_id, sizeof job_id, "%s", str(r, "id"));
    json_decref(r);
    wait_job(job_id, status, sizeof status);
    CHECK_MSG(!strcmp(status, "succeeded"), "job %s", status[0] ? status : "timed out");

    CHECK_MSG(eventually(job_deliveries_done), "ok %d, flaky %d, down %d", count("/ok", NULL),
              count("/flaky", NULL), count("/down", NULL));
    CHECK_MSG(count("/ok", "fine_tuning.job.running") == 1, "running %d",
              count("/ok", "fine_tuning.job.running"));
    CHECK_MSG(count("/ok", "fine_tuning.job.checkpoint.created") == 2, "checkpoints %d",
              count("/ok", "fine_tuning.job.checkpoint.created"));
    CHECK(count("/ok", NULL) == 4);
    /* flaky: running and succeeded, each refused once and sent again */
    CHECK_MSG(count("/flaky", NULL) == 4, "flaky %d", count("/flaky", NULL));
    CHECK(count("/flaky", "fine_tuning.job.checkpoint.created") == 0);

    pthread_mutex_lock(&rx.mu);
    int retried_same_id = 0;
    for (int i = 0; i < rx.n; i++)
        for (int j = i + 1; j < rx.n; j++)
            retried_same_id += !strcmp(rx.v[i].path, "/flaky") &&
                               !strcmp(rx.v[j].path, "/flaky") &&
                               !strcmp(rx.v[i].id, rx.v[j].id) && rx.v[i].status == 500 &&
                               rx.v[j].status == 200;
    for (int i = 0; i < rx.n; i++) {
        json_t *p = json_loads(rx.v[i].body, 0, NULL), *data = json_object_get(p, "data");
        const char *type = str(p, "type");
        if (!strcmp(rx.v[i].path, "/ok") && !strcmp(type, "fine_tuning.job.checkpoint.created")) {
            long step = (long)json_integer_value(json_object_get(data, "step"));
            CHECK_MSG(step == 3 || step == 6, "checkpoint step %ld", step);
            CHECK(strlen(str(data, "sha256")) == 64);
            CHECK(!strncmp(str(data, "checkpoint_id"), "ftckpt-", 7));
            CHECK(!strcmp(str(data, "status"), "running"));
        }
        if (!strcmp(type, "fine_tuning.job.succeeded"))
            CHECK(!strcmp(str(data, "status"), "succeeded"));
        json_decref(p);
    }
    pthread_mutex_unlock(&rx.mu);
    CHECK_MSG(retried_same_id == 2, "%d retries with the same webhook-id", retried_same_id);

    check_signed("/ok", &ok_hook, &flaky_hook, job_id);
    check_signed("/flaky", &flaky_hook, &ok_hook, job_id);
    check_signed("/down", &down_hook, &ok_hook, job_id);

    char err[256];
    int64_t failed = -1, pending = -1;
    CHECK(store_outbox_count(server.st, "failed", &failed, err, sizeof err) == STORE_OK);
    CHECK(store_outbox_count(server.st, "pending", &pending, err, sizeof err) == STORE_OK);
    CHECK_MSG(failed == 1 && pending == 0, "failed %lld, pending %lld", (long long)failed,
              (long long)pending);
    test_end();
}

static int cancelled_delivered(void)
{
    return count("/ok", "fine_tuning.job.cancelled") == 1;
}

static struct webhooks_config wcfg;

/* The outbox outlives the worker: what is queued while it is stopped is
 * sent when it runs again. */
static void test_pending_after_restart(void)
{
    char body[512], path[128], id[64];
    json_t *r;
    test_begin("webhooks_pending_sent_after_restart");
    webhooks_stop();
    snprintf(body, sizeof body,
             "{\"training_file\": \"%s\", \"method\": {\"type\": \"lisa\", \"lisa\": "
             "{\"hyperparameters\": {\"sequence_length\": 128, \"batch_size\": 4}}}}",
             file_id);
    CHECK(call(key_a, "POST", "/v1/fine_tuning/jobs", body, &r) == 200);
    snprintf(id, sizeof id, "%s", str(r, "id"));
    json_decref(r);
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/cancel", id);
    CHECK(call(key_a, "POST", path, NULL, &r) == 200);
    json_decref(r);
    char status[32];
    wait_job(id, status, sizeof status);
    CHECK_MSG(!strcmp(status, "cancelled"), "job %s", status);
    usleep(300000);
    CHECK_MSG(count("/ok", "fine_tuning.job.cancelled") == 0, "sent while stopped");
    int64_t pending = 0;
    char err[256];
    CHECK(store_outbox_count(server.st, "pending", &pending, err, sizeof err) == STORE_OK &&
          pending >= 1);
    CHECK(webhooks_start(&server.svc, &wcfg, err, sizeof err) == 0);
    CHECK_MSG(eventually(cancelled_delivered), "cancelled never delivered");
    test_end();
}

static void test_delete(void)
{
    char path[128], err[256];
    json_t *r;
    test_begin("webhooks_delete");
    snprintf(path, sizeof path, "/v1/webhooks/%s", down_hook.id);
    CHECK(call(key_a, "DELETE", path, NULL, &r) == 200);
    CHECK(!strcmp(str(r, "id"), down_hook.id));
    CHECK(!strcmp(str(r, "object"), "webhook.deleted"));
    CHECK(json_is_true(json_object_get(r, "deleted")));
    json_decref(r);
    CHECK(call(key_a, "GET", path, NULL, &r) == 404);
    json_decref(r);
    CHECK(call(key_a, "DELETE", path, NULL, &r) == 404);
    json_decref(r);
    int64_t failed = -1;
    CHECK(store_outbox_count(server.st, "failed", &failed, err, sizeof err) == STORE_OK);
    CHECK_MSG(failed == 0, "the deleted webhook's rows stay: %lld", (long long)failed);
    test_end();
}

int main(void)
{
    char err[256];
    struct store_key k;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct MHD_Daemon *receiver = receiver_start();
    port = test_server_start(&server, dir, 1, 0);
    if (!port || !receiver || !rx_port) {
        fprintf(stderr, "could not start the server or the receiver\n");
        return 1;
    }
    server.svc.webhook_allow_loopback = 1;
    if (store_key_create(server.st, "tenant-a", "a", key_a, &k, err, sizeof err) != STORE_OK)
        return 1;
    store_key_clear(&k);
    if (store_key_create(server.st, "tenant-b", "b", key_b, &k, err, sizeof err) != STORE_OK)
        return 1;
    store_key_clear(&k);
    webhooks_config_defaults(&wcfg);
    wcfg.poll_ms = 50;
    wcfg.timeout_s = 5;
    wcfg.max_attempts = MAX_ATTEMPTS;
    wcfg.n_backoff = 2;
    wcfg.backoff_ms[0] = 100;
    wcfg.backoff_ms[1] = 200;
    if (webhooks_start(&server.svc, &wcfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    test_ip_classifier();
    test_refusals();
    test_create_list_get();
    test_other_tenant();
    test_job_deliveries();
    test_pending_after_restart();
    test_delete();

    webhooks_stop();
    test_server_stop(&server, dir);
    MHD_stop_daemon(receiver);
    for (int i = 0; i < rx.n; i++)
        free(rx.v[i].body);
    curl_global_cleanup();
    return test_finish();
}
