/*
 * fuzz_api_json.c: libFuzzer harness for every JSON request body, sent
 * through the real handlers of an in-process server (fuzz_server.h): the
 * first input byte picks the endpoint (job creation, the planner, webhook
 * registration, the dashboard session), the rest is the body. The literal
 * "file-FUZZ" in a body is replaced by the id of a valid training file
 * uploaded at start-up, so job and plan bodies get past the file checks to
 * the recipe, the model and the planner. Whatever the body, the server must
 * answer, and never with a 5xx.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_resolver.h"
#include "fuzz_server.h"

#define PLACEHOLDER "file-FUZZ"

static char file_id[128];

static void upload_training_file(void)
{
    static const char body[] =
        "--owlore-b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n"
        "--owlore-b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.jsonl\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, "
        "{\"role\": \"assistant\", \"content\": \"Once upon a time.\"}]}\n\r\n--owlore-b--\r\n";
    char *reply;
    int st = fuzz_request("POST", "/v1/files", "multipart/form-data; boundary=owlore-b", body,
                          sizeof body - 1, &reply);
    json_t *j = json_loads(reply, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "id"));
    if (st != 200 || !id) {
        fprintf(stderr, "fuzz_api_json: upload: %d %s\n", st, reply);
        abort();
    }
    snprintf(file_id, sizeof file_id, "%s", id);
    json_decref(j);
    free(reply);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_server_start();
    upload_training_file();
    return 0;
}

/* data with every PLACEHOLDER replaced by file_id; *len gets the size. */
static char *substitute(const uint8_t *data, size_t n, size_t *len)
{
    size_t idn = strlen(file_id), pn = sizeof PLACEHOLDER - 1;
    char *out = malloc(n * (idn > pn ? idn : pn) / pn + idn + 1), *o = out;
    if (!out)
        abort();
    for (size_t i = 0; i < n;) {
        if (n - i >= pn && memcmp(data + i, PLACEHOLDER, pn) == 0) {
            memcpy(o, file_id, idn);
            o += idn, i += pn;
        } else {
            *o++ = (char)data[i++];
        }
    }
    *len = (size_t)(o - out);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    static const char *const paths[] = {"/v1/fine_tuning/jobs", "/v1/fine_tuning/plan",
                                        "/v1/webhooks", "/v1/dashboard/session"};
    size_t len;
    char *reply;
    if (n < 1)
        return 0;
    char *body = substitute(data + 1, n - 1, &len);
    const char *path = paths[data[0] % 4];
    int st = fuzz_request("POST", path, "application/json", body, len, &reply);
    if (st == 0 || st >= 500) {
        fprintf(stderr, "POST %s: status %d: %s\n", path, st, reply);
        abort();
    }
    free(reply);
    free(body);
    return 0;
}
