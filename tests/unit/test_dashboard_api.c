/*
 * test_dashboard_api.c: the server side of the browser dashboard, on the
 * real server in-process (stories260K as the default model). Checked: the
 * router's file-name parameters ("{name.}") take "app.js" and refuse
 * traversal, hidden names, two dots, upper-case extensions and overlong
 * names; GET / and GET /web/<name> serve the web directory
 * (the service's web_dir) with their Content-Type, an ETag that answers 304, and
 * never a symbolic link or an unlisted extension; POST
 * /v1/fine_tuning/plan predicts without creating a job and refuses exactly
 * what job creation refuses; the session cookie: sign-in sets it HttpOnly
 * and SameSite=Strict, it stands for the key, a write with it needs
 * X-Owlore-CSRF, and sign-out or revoking the key ends it.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "routes.h"
#include "test.h"
#include "test_server.h"

static char dir[] = "/tmp/owlore-dash-XXXXXX";
static char web[] = "/tmp/owlore-web-XXXXXX";
static uint16_t port;
static struct test_server srv;

struct reply {
    long status;
    struct buf body;
    char headers[4096];
};

/* One request with up to two extra headers (NULL: none) and a JSON body
 * (NULL: none); the reply with its raw headers. Free r->body.p. */
static void request(const char *method, const char *path, const char *h1, const char *h2,
                    const char *json, struct reply *r)
{
    struct buf head = {0};
    memset(r, 0, sizeof *r);
    r->status = test_fetch(port, method, path, NULL, h1, h2, json, NULL, &r->body, &head, NULL);
    snprintf(r->headers, sizeof r->headers, "%s", head.p ? head.p : "");
    free(head.p);
}

static long status_of(const char *method, const char *path)
{
    struct reply r;
    request(method, path, NULL, NULL, NULL, &r);
    free(r.body.p);
    return r.status;
}

static void test_file_params(void)
{
    static const struct route table[] = {
        {"GET", "/web/{name.}", NULL, 0, NULL, 1},
        {NULL, NULL, NULL, 0, NULL, 0},
    };
    static const char *const bad[] = {
        "/web/..", "/web/.hidden.js", "/web/a.b.js", "/web/app.JS", "/web/app.", "/web/.js",
        "/web/a%2F.js", "/web/app",
        "/web/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.js",
        "/web/app.toolongext",
    };
    struct route_match m;
    test_begin("dashboard_file_name_parameters");
    CHECK(route_match(table, "GET", "/web/app.js", &m) == ROUTE_FOUND &&
          !strcmp(route_param(&m, "name"), "app.js"));
    CHECK(route_match(table, "GET", "/web/my_file-2.png", &m) == ROUTE_FOUND);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum route_status st = route_match(table, "GET", bad[i], &m);
        CHECK_MSG(st == ROUTE_BAD_PARAM && !strcmp(m.bad_param, "name"), "%s: %d", bad[i], st);
    }
    CHECK(route_match(table, "GET", "/web/a/b.js", &m) == ROUTE_NOT_FOUND);
    test_end();
}

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", web, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_static(void)
{
    struct reply r;
    char v[256], etag[128], inm[160], link[256];
    test_begin("dashboard_static_files");
    request("GET", "/", NULL, NULL, NULL, &r);
    CHECK_MSG(r.status == 200 && r.body.p && strstr(r.body.p, "<title>t</title>"), "%ld",
              r.status);
    CHECK(test_header(r.headers, "Content-Type", v, sizeof v) == 0 && !strncmp(v, "text/html", 9));
    CHECK(test_header(r.headers, "Cache-Control", v, sizeof v) == 0 && !strcmp(v, "no-cache"));
    CHECK(test_header(r.headers, "Content-Security-Policy", v, sizeof v) == 0);
    CHECK(test_header(r.headers, "ETag", etag, sizeof etag) == 0 && etag[0] == '"');
    free(r.body.p);
    snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
    request("GET", "/web/index.html", inm, NULL, NULL, &r);
    CHECK_MSG(r.status == 304, "If-None-Match: %ld", r.status);
    free(r.body.p);
    request("GET", "/web/app.js", NULL, NULL, NULL, &r);
    CHECK(r.status == 200 && test_header(r.headers, "Content-Type", v, sizeof v) == 0 &&
          !strncmp(v, "text/javascript", 15));
    free(r.body.p);
    request("GET", "/web/style.css", NULL, NULL, NULL, &r);
    CHECK(r.status == 200 && test_header(r.headers, "Content-Type", v, sizeof v) == 0 &&
          !strncmp(v, "text/css", 8));
    free(r.body.p);
    snprintf(link, sizeof link, "%s/link.js", web);
    CHECK(access(link, F_OK) == 0);
    CHECK(status_of("GET", "/web/notes.txt") == 404); /* exists, extension not served */
    CHECK(status_of("GET", "/web/link.js") == 404);   /* a symbolic link */
    CHECK(status_of("GET", "/web/missing.js") == 404);
    CHECK(status_of("GET", "/web/../owlore.db") == 404);
    CHECK(status_of("GET", "/web/%2e%2e.js") == 400);
    CHECK(status_of("POST", "/web/app.js") == 405);
    test_end();
}

static char file_id[64];

static void test_plan(void)
{
    json_t *r, *j;
    char body[512];
    test_begin("dashboard_plan_preview");
    long st = test_upload(port, NULL, "data/datasets/alpaca/alpaca_tiny.json", file_id,
                          sizeof file_id);
    CHECK_MSG(st == 200, "upload %ld", st);
    snprintf(body, sizeof body,
             "{\"training_file\": \"%s\", \"method\": {\"type\": \"lisa\", \"lisa\": "
             "{\"hyperparameters\": {\"sequence_length\": 64, \"batch_size\": 4, "
             "\"n_epochs\": 2}}}}", file_id);
    st = test_call(port, "POST", "/v1/fine_tuning/plan", NULL, body, NULL, &r);
    json_t *mem = json_object_get(r, "memory");
    CHECK_MSG(st == 200 && !strcmp(str(r, "object"), "fine_tuning.plan"), "plan %ld", st);
    CHECK(json_integer_value(json_object_get(mem, "total_peak")) > 0 &&
          json_integer_value(json_object_get(mem, "weights")) > 0);
    /* 100 examples, 4 a step, 2 epochs */
    CHECK_MSG(json_integer_value(json_object_get(r, "steps")) == 50, "steps %lld",
              (long long)json_integer_value(json_object_get(r, "steps")));
    CHECK(json_integer_value(json_object_get(r, "tokens")) == 50 * 4 * 64);
    CHECK(json_real_value(json_object_get(r, "tokens_per_s")) > 0);
    CHECK(!strcmp(str(json_object_get(r, "method"), "type"), "lisa"));
    json_decref(r);
    st = test_call(port, "GET", "/v1/fine_tuning/jobs", NULL, NULL, NULL, &r);
    CHECK_MSG(st == 200 && json_array_size(json_object_get(r, "data")) == 0, "a job was made");
    json_decref(r);
    /* refused exactly as creation refuses */
    static const char *const refused[] = {
        "{\"training_file\": \"%s\", \"method\": {\"type\": \"lisa\", \"lisa\": "
        "{\"hyperparameters\": {\"gamma\": 99}}}}",
        "{\"training_file\": \"%s\", \"bogus\": 1}",
        "{\"training_file\": \"file-nope%.0s\"}",
        "{\"training_file\": \"%s\", \"model\": \"missing.bin\"}",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(body, sizeof body, refused[i], file_id);
        long a = test_call(port, "POST", "/v1/fine_tuning/plan", NULL, body, NULL, &r);
        long b = test_call(port, "POST", "/v1/fine_tuning/jobs", NULL, body, NULL, &j);
        json_t *ea = json_object_get(r, "error"), *eb = json_object_get(j, "error");
        CHECK_MSG(a == b && a == 400 && !strcmp(str(ea, "message"), str(eb, "message")) &&
                      !strcmp(str(ea, "param"), str(eb, "param")),
                  "case %zu: %ld %ld '%s' '%s'", i, a, b, str(ea, "message"), str(eb, "message"));
        json_decref(r);
        json_decref(j);
    }
    CHECK(test_call(port, "POST", "/v1/fine_tuning/plan", NULL, "[1]", NULL, &r) == 400);
    json_decref(r);
    test_end();
}

static void test_sessions(void)
{
    char key[STORE_KEY_LEN], err[256], auth[128], cookie[160], v[512], body[256];
    struct store_key k;
    struct reply r;
    json_t *o;
    test_begin("dashboard_sessions");
    request("GET", "/v1/dashboard/session", NULL, NULL, NULL, &r);
    o = r.body.p ? json_loads(r.body.p, 0, NULL) : NULL;
    CHECK(r.status == 200 && json_is_false(json_object_get(o, "login_required")) &&
          !strcmp(str(o, "owner"), "local"));
    json_decref(o);
    free(r.body.p);
    CHECK(store_key_create(srv.st, "carol", NULL, key, &k, err, sizeof err) == STORE_OK);
    char key_id[STORE_ID_LEN];
    snprintf(key_id, sizeof key_id, "%s", k.id);
    store_key_clear(&k);
    request("GET", "/v1/dashboard/session", NULL, NULL, NULL, &r);
    o = r.body.p ? json_loads(r.body.p, 0, NULL) : NULL;
    CHECK(r.status == 200 && json_is_true(json_object_get(o, "login_required")));
    json_decref(o);
    free(r.body.p);
    CHECK(status_of("POST", "/v1/dashboard/session") == 401);
    request("POST", "/v1/dashboard/session", "Authorization: Bearer sk-owl-wrong", NULL, NULL, &r);
    CHECK(r.status == 401);
    free(r.body.p);

    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    request("POST", "/v1/dashboard/session", auth, NULL, NULL, &r);
    CHECK_MSG(r.status == 200, "sign-in %ld", r.status);
    CHECK(test_header(r.headers, "Set-Cookie", v, sizeof v) == 0 && strstr(v, "HttpOnly") &&
          strstr(v, "SameSite=Strict") && !strstr(v, key) && !strncmp(v, "owlore_session=", 15));
    snprintf(cookie, sizeof cookie, "Cookie: %.*s", (int)strcspn(v, ";"), v);
    free(r.body.p);

    request("GET", "/v1/fine_tuning/jobs", cookie, NULL, NULL, &r);
    CHECK_MSG(r.status == 200, "cookie GET %ld", r.status);
    free(r.body.p);
    request("GET", "/v1/dashboard/session", cookie, NULL, NULL, &r);
    o = r.body.p ? json_loads(r.body.p, 0, NULL) : NULL;
    CHECK(r.status == 200 && !strcmp(str(o, "owner"), "carol") &&
          !strcmp(str(o, "auth"), "cookie") && json_integer_value(json_object_get(o, "expires_at")) > 0);
    json_decref(o);
    free(r.body.p);
    snprintf(body, sizeof body, "{\"training_file\": \"file-nope\"}");
    request("POST", "/v1/fine_tuning/plan", cookie, NULL, body, &r);
    CHECK_MSG(r.status == 403 && strstr(r.body.p, "csrf_header_missing"), "no CSRF %ld",
              r.status);
    free(r.body.p);
    request("POST", "/v1/fine_tuning/plan", cookie, "X-Owlore-CSRF: 1", body, &r);
    CHECK_MSG(r.status == 400, "with CSRF %ld", r.status); /* carol has no such file */
    free(r.body.p);
    request("GET", "/v1/fine_tuning/jobs", "Cookie: owlore_session=0123", NULL, NULL, &r);
    CHECK(r.status == 401);
    free(r.body.p);

    request("DELETE", "/v1/dashboard/session", cookie, NULL, NULL, &r);
    CHECK(r.status == 403); /* a cookie write without the header */
    free(r.body.p);
    request("DELETE", "/v1/dashboard/session", cookie, "X-Owlore-CSRF: 1", NULL, &r);
    CHECK(r.status == 200 && test_header(r.headers, "Set-Cookie", v, sizeof v) == 0 &&
          strstr(v, "Max-Age=0"));
    free(r.body.p);
    request("GET", "/v1/fine_tuning/jobs", cookie, NULL, NULL, &r);
    CHECK_MSG(r.status == 401, "after sign-out %ld", r.status);
    free(r.body.p);

    /* revoking the key ends its sessions (another key keeps auth on) */
    CHECK(store_key_create(srv.st, "dave", NULL, v, &k, err, sizeof err) == STORE_OK);
    store_key_clear(&k);
    request("POST", "/v1/dashboard/session", auth, NULL, NULL, &r);
    CHECK(test_header(r.headers, "Set-Cookie", v, sizeof v) == 0);
    snprintf(cookie, sizeof cookie, "Cookie: %.*s", (int)strcspn(v, ";"), v);
    free(r.body.p);
    CHECK(status_of("GET", "/healthz") == 200);
    CHECK(store_key_revoke(srv.st, key_id, err, sizeof err) == STORE_OK);
    request("GET", "/v1/fine_tuning/jobs", cookie, NULL, NULL, &r);
    CHECK_MSG(r.status == 401, "after revocation %ld", r.status);
    free(r.body.p);
    test_end();
}

int main(void)
{
    char link[256], cmd[600];
    if (!mkdtemp(web))
        return 1;
    write_file("index.html", "<!doctype html><title>t</title>");
    write_file("app.js", "export {};\n");
    write_file("style.css", "body {}\n");
    write_file("notes.txt", "secret\n");
    snprintf(link, sizeof link, "%s/link.js", web);
    if (symlink("/etc/hostname", link) != 0)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    port = test_server_start(&srv, dir, 1, 0);
    if (!port)
        return 1;
    srv.svc.web_dir = web; /* read at the first request for a page */
    test_file_params();
    test_static();
    test_plan();
    test_sessions();
    test_server_stop(&srv, dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", web);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", web);
    curl_global_cleanup();
    return test_finish();
}
