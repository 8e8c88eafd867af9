/*
 * test_sse_clients.c: many server-sent event streams at once. The real
 * server runs in-process (two HTTP threads, the job worker, stories260K)
 * and libcurl's multi interface drives every client from this one thread.
 * Checked: 100 clients that open the stream of one training job while it
 * is queued or training each receive the event ids 1..N without gap or
 * duplicate, ending with the terminal event, N being the JSON list's count;
 * a client that drops the connection mid-way and reconnects with
 * Last-Event-ID gets every event exactly once, in order; an idle stream gets
 * a ": ping" after 15 s and is woken by its job's cancel, ending with the
 * cancelled event; stopping the server with streams open (idle and live)
 * returns promptly and closes them.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "test_server.h"

#define CLIENTS 100
#define STEPS 60
#define DROP_AFTER 5 /* complete events before the reconnecting client drops */
#define MAX_IDS 4096

static char dir[] = "/tmp/owlore-sse-XXXXXX";
static uint16_t port;
static char file_id[64];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A JSON request (json NULL: no body); the parsed reply lands in *out. */
static long call(const char *method, const char *path, const char *json, const char *file,
                 json_t **out)
{
    return test_call(port, method, path, NULL, json, file, out);
}

/* Creates a job of `steps` training steps into id; 0 on success. */
static int create_job(char *id, size_t n, int steps)
{
    char body[1024];
    json_t *r;
    snprintf(body, sizeof body,
             "{\"training_file\": \"%s\", \"method\": {\"type\": \"lisa\", \"lisa\": "
             "{\"hyperparameters\": {\"sequence_length\": 64, \"batch_size\": 1, "
             "\"n_epochs\": 1000, \"max_steps\": %d, \"save_every\": 100000, \"gamma\": 1, "
             "\"learning_rate\": 0.001}}}}",
             file_id, steps);
    long st = call("POST", "/v1/fine_tuning/jobs", body, NULL, &r);
    snprintf(id, n, "%s", str(r, "id"));
    json_decref(r);
    return st == 200 ? 0 : -1;
}

/* POST /v1/fine_tuning/jobs/<id>/<action>; the new status into status. */
static long job_action(const char *id, const char *action, char *status, size_t n)
{
    char path[256];
    json_t *r;
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/%s", id, action);
    long st = call("POST", path, NULL, NULL, &r);
    snprintf(status, n, "%s", str(r, "status"));
    json_decref(r);
    return st;
}

/* The number of events of job id in its JSON list (-1 on errors). */
static long event_count(const char *id)
{
    char path[256];
    json_t *r;
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/events?limit=1000", id);
    long st = call("GET", path, NULL, NULL, &r);
    long n = st == 200 && !json_is_true(json_object_get(r, "has_more"))
                 ? (long)json_array_size(json_object_get(r, "data"))
                 : -1;
    json_decref(r);
    return n;
}

/* The complete events ("\n\n"-terminated blocks) of an SSE body: their ids
 * in order, the data of the last one, and the number of pings. */
struct parsed {
    long ids[MAX_IDS];
    int n, pings;
    char last_data[512];
};

static void parse_sse(const char *text, struct parsed *p)
{
    p->n = p->pings = 0;
    p->last_data[0] = '\0';
    for (const char *blk = text; blk && *blk;) {
        const char *end = strstr(blk, "\n\n");
        if (!end)
            break;
        for (const char *l = blk; l < end; l = strchr(l, '\n') + 1) {
            if (strncmp(l, "id: ", 4) == 0 && p->n < MAX_IDS)
                p->ids[p->n++] = strtol(l + 4, NULL, 10);
            else if (strncmp(l, "data: ", 6) == 0)
                snprintf(p->last_data, sizeof p->last_data, "%.*s",
                         (int)strcspn(l + 6, "\n"), l + 6);
            else if (strncmp(l, ": ping", 6) == 0)
                p->pings++;
        }
        blk = end + 2;
    }
}

/* One streaming client of the multi handle. */
struct client {
    CURL *h;
    struct curl_slist *hdrs;
    struct buf b;
    int drop_after; /* >0: drop the connection after this many complete events */
    int dropped;
    int done;
    CURLcode rc;
    long status;
    double done_at;
};

static struct parsed scratch;

static size_t client_body(char *p, size_t sz, size_t n, void *ud)
{
    struct client *c = ud;
    size_t got = on_body(p, sz, n, &c->b);
    if (c->drop_after && !c->dropped) {
        parse_sse(c->b.p, &scratch);
        if (scratch.n >= c->drop_after) {
            c->dropped = 1;
            return 0; /* abort the transfer: the client goes away */
        }
    }
    return got;
}

/* Starts client c on the event stream of job id (last_id > 0: resumes). */
static void client_open(CURLM *m, struct client *c, const char *id, long last_id)
{
    char url[512], hdr[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/fine_tuning/jobs/%s/events",
             (unsigned)port, id);
    c->h = curl_easy_init();
    c->hdrs = curl_slist_append(NULL, "Accept: text/event-stream");
    if (last_id > 0) {
        snprintf(hdr, sizeof hdr, "Last-Event-ID: %ld", last_id);
        c->hdrs = curl_slist_append(c->hdrs, hdr);
    }
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, client_body);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
    c->done = 0;
    curl_multi_add_handle(m, c->h);
}

static void client_close(CURLM *m, struct client *c)
{
    if (c->h) {
        curl_multi_remove_handle(m, c->h);
        curl_easy_cleanup(c->h);
    }
    curl_slist_free_all(c->hdrs);
    c->h = NULL;
    c->hdrs = NULL;
}

/* Runs the transfers for up to `wait_s` seconds (at least one pass); marks
 * finished clients done. */
static void pump(CURLM *m, double wait_s)
{
    double until = now_s() + wait_s;
    do {
        int running, left;
        curl_multi_perform(m, &running);
        for (CURLMsg *msg; (msg = curl_multi_info_read(m, &left));) {
            struct client *c;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &c->status);
            c->rc = msg->data.result;
            c->done = 1;
            c->done_at = now_s();
        }
        curl_multi_poll(m, NULL, 0, 50, NULL);
    } while (now_s() < until);
}

/* The ids of complete events in c's body. */
static const struct parsed *parsed_of(const struct client *c, struct parsed *p)
{
    parse_sse(c->b.p ? c->b.p : "", p);
    return p;
}

static struct client clients[CLIENTS];

static void test_many_clients(void)
{
    char job[64], idle[64], status[32];
    struct client drop = {.drop_after = DROP_AFTER}, again = {0}, beat = {0};
    static struct parsed p, q;
    test_begin("sse_100_clients");
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    int bad = create_job(job, sizeof job, STEPS) || create_job(idle, sizeof idle, STEPS);
    CHECK_MSG(!bad, "create");
    /* the worker is busy with `job`, so `idle` is still queued: paused at once */
    CHECK(job_action(idle, "pause", status, sizeof status) == 200 &&
          !strcmp(status, "paused"));
    double t0 = now_s();
    for (int i = 0; i < CLIENTS; i++)
        client_open(m, &clients[i], job, 0);
    client_open(m, &drop, job, 0);
    client_open(m, &beat, idle, 0);

    /* until every client of `job` is done, reconnecting the dropped one */
    double deadline = t0 + 120;
    int all_done = 0;
    while (!all_done && now_s() < deadline) {
        pump(m, 0.05);
        if (drop.done && !again.h) {
            parse_sse(drop.b.p ? drop.b.p : "", &p);
            client_open(m, &again, job, p.n ? p.ids[p.n - 1] : 0);
        }
        all_done = again.done;
        for (int i = 0; i < CLIENTS; i++)
            all_done = all_done && clients[i].done;
    }
    double t_first = deadline, t_last = 0;
    for (int i = 0; i < CLIENTS; i++) {
        if (clients[i].done_at > t_last)
            t_last = clients[i].done_at;
        if (clients[i].done_at < t_first)
            t_first = clients[i].done_at;
    }
    printf("     %d clients on one %d-step job: streams ended %.2f s to %.2f s after they "
           "were opened\n", CLIENTS, STEPS, t_first - t0, t_last - t0);
    CHECK_MSG(all_done, "not every stream ended within 120 s");
    /* a lost wake-up of the terminal event would leave a stream waiting for
     * its 15 s heartbeat */
    CHECK_MSG(t_last - t_first < 10, "streams ended %.2f s apart", t_last - t_first);

    long n = event_count(job);
    CHECK_MSG(n >= STEPS + 2, "the job has %ld events", n);
    int ok = 0;
    for (int i = 0; i < CLIENTS; i++) {
        const struct client *c = &clients[i];
        parsed_of(c, &p);
        int seq = p.n == n;
        for (int k = 0; seq && k < p.n; k++)
            seq = p.ids[k] == k + 1;
        if (c->rc == CURLE_OK && c->status == 200 && seq &&
            strstr(p.last_data, "successfully completed"))
            ok++;
        else if (i - ok < 3) /* a few details, not a hundred */
            CHECK_MSG(0, "client %d: curl %d, status %ld, %d events (of %ld), last '%.80s'",
                      i, (int)c->rc, c->status, p.n, n, p.last_data);
    }
    CHECK_MSG(ok == CLIENTS, "%d of %d clients got the full sequence", ok, CLIENTS);

    /* the dropped client and its reconnection: 1..n exactly once, in order */
    parsed_of(&drop, &p);
    parsed_of(&again, &q);
    int seq = drop.dropped && p.n >= DROP_AFTER && again.rc == CURLE_OK && p.n + q.n == n;
    for (int k = 0; seq && k < p.n + q.n; k++)
        seq = (k < p.n ? p.ids[k] : q.ids[k - p.n]) == k + 1;
    CHECK_MSG(seq, "reconnect: %d events before the drop, %d after (of %ld), curl %d", p.n,
              q.n, n, (int)again.rc);

    /* the idle stream: a ping after 15 s, then woken and ended by the cancel */
    while (!beat.done && parsed_of(&beat, &p)->pings == 0 && now_s() < t0 + 40)
        pump(m, 0.2);
    CHECK_MSG(p.pings > 0 && !beat.done, "idle stream: %d pings, done %d", p.pings, beat.done);
    CHECK(job_action(idle, "cancel", status, sizeof status) == 200);
    double t_cancel = now_s();
    while (!beat.done && now_s() < t_cancel + 10)
        pump(m, 0.05);
    parsed_of(&beat, &p);
    long bn = event_count(idle);
    seq = beat.done && beat.rc == CURLE_OK && p.n == bn && strstr(p.last_data, "cancelled");
    for (int k = 0; seq && k < p.n; k++)
        seq = p.ids[k] == k + 1;
    CHECK_MSG(seq, "idle stream after cancel: done %d (%.2f s), %d events of %ld, last '%.80s'",
              beat.done, now_s() - t_cancel, p.n, bn, p.last_data);

    for (int i = 0; i < CLIENTS; i++) {
        client_close(m, &clients[i]);
        free(clients[i].b.p);
    }
    struct client *rest[] = {&drop, &again, &beat};
    for (int i = 0; i < 3; i++) {
        client_close(m, rest[i]);
        free(rest[i]->b.p);
    }
    curl_multi_cleanup(m);
    test_end();
}

/* Streams open (some parked on a queued job, some live on a training one)
 * when the server stops: the stop returns promptly and the streams end. */
static void test_stop_with_streams(struct test_server *server)
{
    char live[64], queued[64];
    struct client c[10] = {{0}};
    test_begin("sse_server_stop");
    CURLM *m = curl_multi_init();
    int bad = create_job(live, sizeof live, 100000) || create_job(queued, sizeof queued, 10);
    CHECK_MSG(!bad, "create");
    for (int i = 0; i < 10; i++)
        client_open(m, &c[i], i < 5 ? queued : live, 0);
    pump(m, 1.0);
    int open = 0;
    for (int i = 0; i < 10; i++)
        open += !c[i].done && c[i].b.n > 0;
    CHECK_MSG(open == 10, "%d of 10 streams open before the stop", open);
    double t0 = now_s();
    test_server_stop(server, dir);
    double took = now_s() - t0;
    printf("     server stop with 10 open streams: %.2f s\n", took);
    CHECK_MSG(took < 10, "stop took %.2f s", took);
    double until = now_s() + 10;
    int done = 0;
    while (done < 10 && now_s() < until) {
        pump(m, 0.05);
        done = 0;
        for (int i = 0; i < 10; i++)
            done += c[i].done;
    }
    CHECK_MSG(done == 10, "%d of 10 streams ended after the stop", done);
    for (int i = 0; i < 10; i++) {
        client_close(m, &c[i]);
        free(c[i].b.p);
    }
    curl_multi_cleanup(m);
    test_end();
}

int main(void)
{
    static struct test_server server;
    test_server_max_per_ip = 4 * CLIENTS;
    test_timeout_s = 60;
    port = test_server_start(&server, dir, 1, 0);
    if (!port)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    long code = test_upload(port, NULL, "data/datasets/alpaca/alpaca_tiny.json", file_id,
                            sizeof file_id);
    if (code != 200) {
        fprintf(stderr, "upload: %ld\n", code);
        return 1;
    }
    test_many_clients();
    test_stop_with_streams(&server);
    curl_global_cleanup();
    return test_finish();
}
