/*
 * fuzz_multipart.c: libFuzzer harness for file uploads, sent through the
 * real upload route of an in-process server (fuzz_server.h): libmicrohttpd's
 * post processor, server/upload.c's part handling, hashing and streaming
 * validation, and server/h_files.c's replies. The first input line is the
 * Content-Type header, the rest the body. The server must answer, never
 * with a 5xx; a file it accepts is deleted again so the data folder stays
 * small.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_server.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_server_start();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    char *reply, path[256];
    const uint8_t *nl = memchr(data, '\n', n);
    if (!nl)
        return 0;
    char *ct = fuzz_cstr(data, (size_t)(nl - data));
    if (strpbrk(ct, "\r") || strlen(ct) != (size_t)(nl - data)) {
        free(ct); /* not one header line */
        return 0;
    }
    int st = fuzz_request("POST", "/v1/files", ct, nl + 1, n - (size_t)(nl - data) - 1, &reply);
    if (st == 0 || st >= 500) {
        fprintf(stderr, "POST /v1/files: status %d: %s\n", st, reply);
        abort();
    }
    if (st == 200) {
        json_t *j = json_loads(reply, 0, NULL);
        const char *id = json_string_value(json_object_get(j, "id"));
        snprintf(path, sizeof path, "/v1/files/%.64s", id ? id : "");
        if (!id || fuzz_request("DELETE", path, NULL, "", 0, NULL) != 200)
            abort();
        json_decref(j);
    }
    free(reply);
    free(ct);
    return 0;
}
