/*
 * test_auth.c: API keys and tenants end to end, on the real server
 * in-process (stories260K as the default model). Checked: with no key in
 * the store requests act for the local tenant; once keys exist a request
 * without a key, with an unknown key or with another scheme is 401 with
 * WWW-Authenticate; /healthz stays public; each tenant sees only its own
 * files and jobs, another tenant's ids answering 404 on every endpoint
 * (and 400 as a training_file); a revoked key is 401 at once; and the
 * `owlore keys` command creates, lists and revokes keys.
 */
#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "test.h"
#include "test_server.h"

static char dir[] = "/tmp/owlore-auth-XXXXXX";
static uint16_t port;
static struct test_server srv;
static char key_a[STORE_KEY_LEN], key_b[STORE_KEY_LEN], key_a_id[STORE_ID_LEN];

static const char *error_code(json_t *o)
{
    return str(json_object_get(o, "error"), "code");
}

static void test_no_keys_local(void)
{
    json_t *r;
    test_begin("auth_no_keys_acts_for_local_tenant");
    long st = test_call(port, "GET", "/v1/files", NULL, NULL, NULL, &r);
    CHECK_MSG(st == 200, "status %ld", st);
    json_decref(r);
    test_end();
}

static void make_keys(void)
{
    struct store_key k;
    char err[256];
    int ok = store_key_create(srv.st, "alice", "a", key_a, &k, err, sizeof err) == STORE_OK;
    snprintf(key_a_id, sizeof key_a_id, "%s", ok ? k.id : "");
    store_key_clear(&k);
    ok &= store_key_create(srv.st, "bob", NULL, key_b, &k, err, sizeof err) == STORE_OK;
    store_key_clear(&k);
    if (!ok)
        fprintf(stderr, "key create: %s\n", err);
}

static void test_keys_required(void)
{
    json_t *r;
    test_begin("auth_keys_required_once_configured");
    long st = test_call(port, "GET", "/v1/files", NULL, NULL, NULL, &r);
    CHECK_MSG(st == 401 && !strcmp(error_code(r), "invalid_api_key"), "no key %ld", st);
    json_decref(r);
    st = test_call(port, "GET", "/v1/fine_tuning/jobs", "sk-owl-notakey", NULL, NULL, &r);
    CHECK_MSG(st == 401, "bad key %ld", st);
    json_decref(r);
    char longkey[200];
    memset(longkey, 'x', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    st = test_call(port, "GET", "/v1/models", longkey, NULL, NULL, &r);
    CHECK_MSG(st == 401, "long key %ld", st);
    json_decref(r);
    st = test_call(port, "GET", "/healthz", NULL, NULL, NULL, &r);
    CHECK_MSG(st == 200, "healthz %ld", st);
    json_decref(r);
    test_end();
}

/* GET `fmt` (with one %s for the id) as bob: must be 404. */
static int bob_404(const char *method, const char *fmt, const char *id)
{
    char path[256];
    json_t *r;
    snprintf(path, sizeof path, fmt, id);
    long st = test_call(port, method, path, key_b, NULL, NULL, &r);
    json_decref(r);
    if (st != 404)
        fprintf(stderr, "%s %s as another tenant: %ld\n", method, path, st);
    return st == 404;
}

static void test_tenants_isolated(void)
{
    json_t *r;
    char file[64] = "", job[64] = "", body[512];
    test_begin("auth_tenants_see_only_their_own");
    long st = test_call(port, "POST", "/v1/files", key_a, NULL,
                        test_shared_path("data/datasets/alpaca/alpaca_tiny.json"), &r);
    CHECK_MSG(st == 200, "upload %ld", st);
    snprintf(file, sizeof file, "%s", str(r, "id"));
    json_decref(r);
    snprintf(body, sizeof body,
             "{\"training_file\": \"%s\", \"method\": {\"type\": \"lisa\", \"lisa\": "
             "{\"hyperparameters\": {\"sequence_length\": 64, \"batch_size\": 2, "
             "\"max_steps\": 2, \"gamma\": 1}}}}",
             file);
    st = test_call(port, "POST", "/v1/fine_tuning/jobs", key_a, body, NULL, &r);
    CHECK_MSG(st == 200, "create %ld", st);
    snprintf(job, sizeof job, "%s", str(r, "id"));
    CHECK(!strcmp(str(r, "organization_id"), "alice"));
    json_decref(r);

    CHECK(bob_404("GET", "/v1/files/%s", file));
    CHECK(bob_404("GET", "/v1/files/%s/content", file));
    CHECK(bob_404("DELETE", "/v1/files/%s", file));
    CHECK(bob_404("GET", "/v1/fine_tuning/jobs/%s", job));
    CHECK(bob_404("GET", "/v1/fine_tuning/jobs/%s/events", job));
    CHECK(bob_404("GET", "/v1/fine_tuning/jobs/%s/events?stream=true", job));
    CHECK(bob_404("GET", "/v1/fine_tuning/jobs/%s/checkpoints", job));
    CHECK(bob_404("POST", "/v1/fine_tuning/jobs/%s/cancel", job));
    CHECK(bob_404("POST", "/v1/fine_tuning/jobs/%s/pause", job));
    CHECK(bob_404("POST", "/v1/fine_tuning/jobs/%s/resume", job));

    st = test_call(port, "GET", "/v1/files", key_b, NULL, NULL, &r);
    CHECK(st == 200 && json_array_size(json_object_get(r, "data")) == 0);
    json_decref(r);
    st = test_call(port, "GET", "/v1/fine_tuning/jobs", key_b, NULL, NULL, &r);
    CHECK(st == 200 && json_array_size(json_object_get(r, "data")) == 0);
    json_decref(r);
    st = test_call(port, "GET", "/v1/files", key_a, NULL, NULL, &r);
    CHECK(st == 200 && json_array_size(json_object_get(r, "data")) == 1);
    json_decref(r);
    /* bob may not train on alice's file */
    snprintf(body, sizeof body, "{\"training_file\": \"%s\"}", file);
    st = test_call(port, "POST", "/v1/fine_tuning/jobs", key_b, body, NULL, &r);
    CHECK_MSG(st == 400 && !strcmp(str(json_object_get(r, "error"), "param"), "training_file"),
              "foreign file %ld", st);
    json_decref(r);
    /* the local tenant of the keyless days is not reachable without a key */
    st = test_call(port, "GET", "/v1/fine_tuning/jobs", NULL, NULL, NULL, &r);
    CHECK(st == 401);
    json_decref(r);
    test_end();
}

static void test_revoked(void)
{
    json_t *r;
    char err[256];
    test_begin("auth_revoked_key_refused");
    CHECK(store_key_revoke(srv.st, key_a_id, err, sizeof err) == STORE_OK);
    long st = test_call(port, "GET", "/v1/files", key_a, NULL, NULL, &r);
    CHECK_MSG(st == 401, "revoked %ld", st);
    json_decref(r);
    st = test_call(port, "GET", "/v1/files", key_b, NULL, NULL, &r);
    CHECK(st == 200);
    json_decref(r);
    test_end();
}

/* Runs cmd_keys with the NULL-terminated arguments after "owlore keys". */
static int keys(const char *a0, const char *a1, const char *a2, const char *a3,
                const char *a4, const char *a5)
{
    char *argv[9] = {"owlore", "keys", (char *)a0, (char *)a1, (char *)a2, (char *)a3,
                     (char *)a4, (char *)a5, NULL};
    int argc = 2;
    while (argv[argc])
        argc++;
    fflush(stdout);
    return cmd_keys(argc, argv);
}

static void test_keys_command(void)
{
    char kdir[] = "/tmp/owlore-keys-XXXXXX", db[128], err[256], cmd[160];
    struct store_key *v = NULL;
    size_t n = 0;
    test_begin("auth_keys_command");
    CHECK(mkdtemp(kdir) != NULL);
    CHECK(keys("create", "--owner", "team-1", "--name", "ci", "--data-dir") == 2);
    CHECK(keys("create", "--owner", "bad/owner", "--data-dir", kdir, NULL) == 2);
    CHECK(keys("create", "--owner", "team-1", "--data-dir", kdir, NULL) == 0);
    CHECK(keys("create", "--data-dir", kdir, NULL, NULL, NULL) == 0);
    CHECK(keys("frobnicate", NULL, NULL, NULL, NULL, NULL) == 2);
    snprintf(db, sizeof db, "%s/owlore.db", kdir);
    struct store *st = store_open(db, err, sizeof err);
    CHECK(st && store_key_list(st, &v, &n, err, sizeof err) == STORE_OK && n == 2);
    /* both were made within one second: their order is the ids' */
    int team = n == 2 && strcmp(v[0].owner, "team-1") != 0;
    CHECK(n == 2 && !strcmp(v[team].owner, "team-1") && !strncmp(v[!team].owner, "org-", 4));
    char id[STORE_ID_LEN] = "";
    if (n == 2)
        snprintf(id, sizeof id, "%s", v[team].id);
    store_key_list_free(v, n);
    store_close(st);
    CHECK(keys("revoke", id, "--data-dir", kdir, NULL, NULL) == 0);
    CHECK(keys("revoke", id, "--data-dir", kdir, NULL, NULL) == 1);
    st = store_open(db, err, sizeof err);
    CHECK(st && store_key_list(st, &v, &n, err, sizeof err) == STORE_OK && n == 1);
    store_key_list_free(v, n);
    store_close(st);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", kdir);
    CHECK(system(cmd) == 0);
    test_end();
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    port = test_server_start(&srv, dir, 1, 0);
    if (!port)
        return 1;
    test_no_keys_local();
    make_keys();
    test_keys_required();
    test_tenants_isolated();
    test_revoked();
    test_keys_command();
    test_server_stop(&srv, dir);
    curl_global_cleanup();
    return test_finish();
}
