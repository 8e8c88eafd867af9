/*
 * test_files_api.c: the /v1/files endpoints end to end. The real server runs
 * in-process on a free loopback port with the default route table, a store
 * and blob directory in a temporary data directory, and a small upload cap;
 * libcurl's mime API uploads real files. Checked: the file object, its
 * sha256 against sha256_file, the validation report (gsm8k test: 1319 valid
 * examples; a bad line named with its number), list/get/content/delete,
 * blob dedupe by sha256, 404 for unknown ids, 400 for a missing purpose and
 * 413 for a body over the cap; the start-up sweep of blobs/.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "digest.h"
#include "http.h"
#include "service.h"
#include "store.h"
#include "test.h"
#include "test_server.h"

#define MAX_UPLOAD (2u << 20)

static char dir[] = "/tmp/owlore-files-XXXXXX";
static uint16_t port;

/* One request; the body lands in *out (free it), the status is returned. A
 * non-NULL `file` path uploads it as the `file` part; `purpose` NULL leaves
 * that field out; `big` > 0 uploads that many bytes from memory instead. */
static long call(const char *method, const char *path, const char *file, const char *purpose,
                 size_t big, struct buf *out)
{
    char url[512];
    long status = 0;
    CURL *c = curl_easy_init();
    curl_mime *mime = NULL;
    char *data = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
    memset(out, 0, sizeof *out);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (file || purpose || big) {
        mime = curl_mime_init(c);
        if (purpose) {
            curl_mimepart *p = curl_mime_addpart(mime);
            curl_mime_name(p, "purpose");
            curl_mime_data(p, purpose, CURL_ZERO_TERMINATED);
        }
        curl_mimepart *p = file || big ? curl_mime_addpart(mime) : NULL;
        if (p)
            curl_mime_name(p, "file");
        if (big) {
            data = malloc(big);
            memset(data, '{', big);
            curl_mime_data(p, data, big);
            curl_mime_filename(p, "big.jsonl");
        } else if (file) {
            curl_mime_filedata(p, file);
        }
        curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    }
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_mime_free(mime);
    free(data);
    curl_easy_cleanup(c);
    return status;
}

static json_t *parse(const struct buf *b)
{
    return b->p ? json_loads(b->p, 0, NULL) : NULL;
}

/* Blob files (not temporaries) in the data directory. */
static int count_blobs(void)
{
    char p[512];
    int n = 0;
    snprintf(p, sizeof p, "%s/blobs", dir);
    DIR *d = opendir(p);
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static int error_param(json_t *o, const char *param)
{
    json_t *e = json_object_get(o, "error");
    return e && strcmp(str(e, "param"), param) == 0 && json_string_value(json_object_get(e, "message"));
}

static void test_upload_lifecycle(void)
{
    const char *gsm = test_shared_path("data/datasets/gsm8k/test.jsonl");
    unsigned char d[SHA256_BYTES];
    char hex[SHA256_HEX_LEN], err[256], path[256];
    struct buf b;
    test_begin("files_upload_list_get_content_delete_dedupe");
    CHECK(sha256_file(gsm, d, err, sizeof err) == 0);
    digest_hex(d, sizeof d, hex);

    long st = call("POST", "/v1/files", gsm, "fine-tune", 0, &b);
    json_t *f1 = parse(&b);
    CHECK_MSG(st == 200 && f1, "upload: %ld %s", st, b.p ? b.p : "");
    free(b.p);
    json_t *val = json_object_get(f1, "validation");
    CHECK(strncmp(str(f1, "id"), "file-", 5) == 0);
    CHECK(strcmp(str(f1, "object"), "file") == 0);
    CHECK(strcmp(str(f1, "filename"), "test.jsonl") == 0);
    CHECK(strcmp(str(f1, "purpose"), "fine-tune") == 0);
    CHECK(strcmp(str(f1, "status"), "processed") == 0);
    CHECK(strcmp(str(f1, "sha256"), hex) == 0);
    CHECK(json_integer_value(json_object_get(f1, "bytes")) == 749738);
    CHECK(json_integer_value(json_object_get(f1, "created_at")) > 0);
    CHECK(json_is_true(json_object_get(val, "valid")));
    CHECK_MSG(json_integer_value(json_object_get(val, "examples")) == 1319, "examples %lld",
              (long long)json_integer_value(json_object_get(val, "examples")));
    CHECK(count_blobs() == 1);

    st = call("POST", "/v1/files", gsm, "fine-tune", 0, &b);
    json_t *f2 = parse(&b);
    free(b.p);
    CHECK(st == 200 && strcmp(str(f2, "sha256"), hex) == 0);
    CHECK(strcmp(str(f1, "id"), str(f2, "id")) != 0);
    CHECK_MSG(count_blobs() == 1, "blobs after a duplicate: %d", count_blobs());

    st = call("GET", "/v1/files?limit=1", NULL, NULL, 0, &b);
    json_t *l = parse(&b);
    free(b.p);
    CHECK(st == 200 && strcmp(str(l, "object"), "list") == 0);
    CHECK(json_array_size(json_object_get(l, "data")) == 1);
    CHECK(json_is_true(json_object_get(l, "has_more")));
    CHECK(strcmp(str(json_array_get(json_object_get(l, "data"), 0), "id"), str(f2, "id")) == 0);
    snprintf(path, sizeof path, "/v1/files?after=%s", str(f2, "id"));
    json_decref(l);
    st = call("GET", path, NULL, NULL, 0, &b);
    l = parse(&b);
    free(b.p);
    CHECK(st == 200 && json_array_size(json_object_get(l, "data")) == 1);
    CHECK(json_is_false(json_object_get(l, "has_more")));
    CHECK(strcmp(str(json_array_get(json_object_get(l, "data"), 0), "id"), str(f1, "id")) == 0);
    json_decref(l);

    snprintf(path, sizeof path, "/v1/files/%s", str(f1, "id"));
    st = call("GET", path, NULL, NULL, 0, &b);
    json_t *g = parse(&b);
    free(b.p);
    CHECK(st == 200 && json_equal(g, f1));
    json_decref(g);

    snprintf(path, sizeof path, "/v1/files/%s/content", str(f1, "id"));
    st = call("GET", path, NULL, NULL, 0, &b);
    CHECK(st == 200 && b.n == 749738);
    CHECK(b.p && sha256_buffer(b.p, b.n, d) == 0);
    digest_hex(d, sizeof d, path);
    CHECK_MSG(strcmp(path, hex) == 0, "content digest differs");
    free(b.p);

    snprintf(path, sizeof path, "/v1/files/%s", str(f1, "id"));
    st = call("DELETE", path, NULL, NULL, 0, &b);
    g = parse(&b);
    free(b.p);
    CHECK(st == 200 && json_is_true(json_object_get(g, "deleted")) &&
          strcmp(str(g, "id"), str(f1, "id")) == 0 && strcmp(str(g, "object"), "file") == 0);
    json_decref(g);
    CHECK_MSG(count_blobs() == 1, "the blob went with a file still naming it");
    CHECK(call("GET", path, NULL, NULL, 0, &b) == 404);
    free(b.p);
    snprintf(path, sizeof path, "/v1/files/%s", str(f2, "id"));
    CHECK(call("DELETE", path, NULL, NULL, 0, &b) == 200);
    free(b.p);
    CHECK_MSG(count_blobs() == 0, "the blob outlived its last file");
    json_decref(f1);
    json_decref(f2);
    test_end();
}

static void test_bad_line(void)
{
    char p[512];
    struct buf b;
    test_begin("files_upload_bad_line_reported");
    snprintf(p, sizeof p, "%s/bad.jsonl", dir);
    FILE *f = fopen(p, "w");
    fputs("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
          "{\"role\":\"assistant\",\"content\":\"yo\"}]}\n"
          "{\"messages\": [oops\n", f);
    fclose(f);
    long st = call("POST", "/v1/files", p, "fine-tune", 0, &b);
    json_t *o = parse(&b);
    CHECK_MSG(st == 200, "status %ld %s", st, b.p ? b.p : "");
    free(b.p);
    json_t *val = json_object_get(o, "validation");
    json_t *e0 = json_array_get(json_object_get(val, "errors"), 0);
    CHECK(strcmp(str(o, "status"), "error") == 0);
    CHECK(json_is_false(json_object_get(val, "valid")));
    CHECK(json_integer_value(json_object_get(e0, "line")) == 2);
    CHECK_MSG(strncmp(str(o, "status_details"), "line 2:", 7) == 0, "details '%s'",
              str(o, "status_details"));
    json_decref(o);
    unlink(p);
    test_end();
}

static void test_refusals(void)
{
    const char *gsm = test_shared_path("data/datasets/gsm8k/test.jsonl");
    struct buf b;
    json_t *o;
    test_begin("files_404_400_413");
    int blobs = count_blobs();
    static const char *const unknown[][2] = {{"GET", "/v1/files/file-nope"},
                                              {"GET", "/v1/files/file-nope/content"},
                                              {"DELETE", "/v1/files/file-nope"}};
    for (int i = 0; i < 3; i++) {
        long st = call(unknown[i][0], unknown[i][1], NULL, NULL, 0, &b);
        CHECK_MSG(st == 404, "%s %s: %ld", unknown[i][0], unknown[i][1], st);
        free(b.p);
    }
    CHECK(call("POST", "/v1/files", gsm, NULL, 0, &b) == 400);
    CHECK_MSG((o = parse(&b)) && error_param(o, "purpose"), "%s", b.p ? b.p : "");
    json_decref(o);
    free(b.p);
    CHECK(call("POST", "/v1/files", gsm, "assistants", 0, &b) == 400);
    CHECK((o = parse(&b)) && error_param(o, "purpose"));
    json_decref(o);
    free(b.p);
    CHECK(call("POST", "/v1/files", NULL, "fine-tune", 0, &b) == 400);
    CHECK_MSG((o = parse(&b)) && error_param(o, "file"), "%s", b.p ? b.p : "");
    json_decref(o);
    free(b.p);
    CHECK(call("GET", "/v1/files?limit=0", NULL, NULL, 0, &b) == 400);
    free(b.p);
    long st = call("POST", "/v1/files", NULL, "fine-tune", MAX_UPLOAD + 1, &b);
    CHECK_MSG(st == 413, "oversized: %ld", st);
    free(b.p);
    CHECK_MSG(count_blobs() == blobs, "a refused upload left %d files", count_blobs() - blobs);
    test_end();
}

/* The start-up sweep removes upload temporaries and unreferenced blob files
 * and keeps every blob a file still names. */
static void test_sweep(struct test_server *server)
{
    char path[256], err[256];
    int removed = -1;
    test_begin("files_startup_sweep");
    int before = count_blobs();
    const char *names[] = {"tmp-0123456789abcdef", "deadbeef.file-orphan"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/blobs/%s", dir, names[i]);
        FILE *f = fopen(path, "w");
        CHECK(f && fputs("x", f) >= 0 && fclose(f) == 0);
    }
    CHECK(count_blobs() == before + 2);
    CHECK(service_sweep_blobs(&server->svc, &removed, err, sizeof err) == 0);
    CHECK_MSG(removed == 2, "removed %d", removed);
    CHECK(count_blobs() == before);
    struct buf b;
    CHECK(call("GET", "/v1/files", NULL, NULL, 0, &b) == 200);
    json_t *o = parse(&b);
    json_t *data = json_object_get(o, "data");
    for (size_t i = 0; i < json_array_size(data); i++) {
        char p2[160];
        snprintf(p2, sizeof p2, "/v1/files/%s/content",
                 json_string_value(json_object_get(json_array_get(data, i), "id")));
        struct buf c;
        CHECK(call("GET", p2, NULL, NULL, 0, &c) == 200);
        free(c.p);
    }
    json_decref(o);
    free(b.p);
    test_end();
}

int main(void)
{
    static struct test_server server;
    port = test_server_start(&server, dir, 0, MAX_UPLOAD);
    if (!port)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_upload_lifecycle();
    test_bad_line();
    test_refusals();
    test_sweep(&server);
    curl_global_cleanup();
    test_server_stop(&server, dir);
    return test_finish();
}
