/*
 * fuzz_server.h: the real HTTP service started once, in-process, for the
 * harnesses that fuzz request bodies through their handlers: a fresh data
 * folder, stories260K from the shared data as the default model (its
 * tokenizer gives uploads token statistics), no training worker (created
 * jobs stay queued), no API keys (every request is the default tenant),
 * webhooks to loopback allowed. fuzz_request sends one raw HTTP/1.1 request
 * over loopback and returns the status (0 when no reply came) with the
 * reply body. Everything is stopped and removed at exit.
 */
#ifndef OWLORE_FUZZ_SERVER_H
#define OWLORE_FUZZ_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "fuzz_common.h"
#include "http.h"
#include "service.h"
#include "store.h"

static struct {
    char dir[64];
    char model[4096];
    struct store *st;
    struct service svc;
    struct http_server *srv;
    uint16_t port;
} fuzz_srv;

static inline void fuzz_server_stop(void)
{
    char cmd[128];
    http_server_stop(fuzz_srv.srv);
    service_free_tokenizer(&fuzz_srv.svc);
    store_close(fuzz_srv.st);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_srv.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", fuzz_srv.dir);
}

static inline void fuzz_server_start(void)
{
    char err[512], db[128];
    struct http_config cfg;
    /* OpenSSL loads its configuration here, on the main thread, and
       registers its exit handler before ours (so it runs after the server
       threads are gone): loaded lazily by a server thread, that thread's
       error state outlives OpenSSL's cleanup and LeakSanitizer reports it */
    OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL);
    snprintf(fuzz_srv.dir, sizeof fuzz_srv.dir, "/tmp/owlore-fuzz-srv-XXXXXX");
    if (!mkdtemp(fuzz_srv.dir))
        abort();
    snprintf(db, sizeof db, "%s/owlore.db", fuzz_srv.dir);
    snprintf(fuzz_srv.model, sizeof fuzz_srv.model, "%s",
             fuzz_shared_path("data/models/stories260K/stories260K.bin"));
    fuzz_srv.st = store_open(db, err, sizeof err);
    fuzz_srv.svc = (struct service){.store = fuzz_srv.st,
                                    .data_dir = fuzz_srv.dir,
                                    .default_model = fuzz_srv.model,
                                    .webhook_allow_loopback = 1};
    if (!fuzz_srv.st || service_init(&fuzz_srv.svc, err, sizeof err) != 0 ||
        service_load_tokenizer(&fuzz_srv.svc, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz server: %s\n", err);
        abort();
    }
    http_config_defaults(&cfg);
    cfg.port = 0;
    cfg.threads = 2;
    cfg.max_upload = 1 << 20;
    fuzz_srv.srv = http_server_start(&cfg, err, sizeof err);
    if (!fuzz_srv.srv) {
        fprintf(stderr, "fuzz server: %s\n", err);
        abort();
    }
    fuzz_srv.port = http_server_port(fuzz_srv.srv);
    atexit(fuzz_server_stop);
}

/* Sends `method` `path` with Content-Type ct (NULL: none) and the n bytes
 * of body; the reply body (NUL-terminated, malloc'd) goes to *reply when
 * reply is not NULL. Returns the status, 0 when no well-formed reply came. */
/* Sends all n bytes, retrying interrupted calls; 0, or -1 when the peer
 * stopped reading. */
static inline int fuzz_send_all(int fd, const void *p, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = send(fd, (const char *)p + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

static inline int fuzz_request(const char *method, const char *path, const char *ct,
                               const void *body, size_t n, char **reply)
{
    char head[1024];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(fuzz_srv.port)};
    struct timeval tv = {.tv_sec = 20};
    int status = 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;
    /* libFuzzer's timeout timer (SIGALRM) interrupts blocking calls */
    while (fd >= 0 && (rc = connect(fd, (struct sockaddr *)&a, sizeof a)) != 0 &&
           (errno == EINTR || errno == EALREADY || errno == EINPROGRESS))
        ;
    if (fd < 0 || (rc != 0 && errno != EISCONN))
        abort();
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int h = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "%s%s%sContent-Length: %zu\r\n\r\n",
                     method, path, ct ? "Content-Type: " : "", ct ? ct : "", ct ? "\r\n" : "",
                     n);
    if (h < 0 || (size_t)h >= sizeof head)
        abort();
    size_t cap = 4096, len = 0;
    char *in = malloc(cap);
    if (!in)
        abort();
    /* the server may answer and close before reading the whole body */
    if (fuzz_send_all(fd, head, (size_t)h) == 0)
        fuzz_send_all(fd, body, n);
    ssize_t r;
    while ((r = recv(fd, in + len, cap - len - 1, 0)) > 0 || (r < 0 && errno == EINTR)) {
        if (r < 0)
            continue;
        len += (size_t)r;
        if (cap - len < 2) {
            char *bigger = realloc(in, cap *= 2);
            if (!bigger)
                abort();
            in = bigger;
        }
    }
    int recv_errno = r < 0 ? errno : 0;
    close(fd);
    in[len] = '\0';
    if (len > 12 && strncmp(in, "HTTP/1.1 ", 9) == 0)
        status = atoi(in + 9);
    if (reply && status == 0) { /* say why, for the harness's abort message */
        char why[160];
        snprintf(why, sizeof why, "no reply after %zu bytes: %s", len,
                 recv_errno ? strerror(recv_errno) : "connection closed");
        *reply = fuzz_cstr((const uint8_t *)why, strlen(why));
    } else if (reply) {
        const char *b = strstr(in, "\r\n\r\n");
        *reply = fuzz_cstr((const uint8_t *)(b ? b + 4 : ""), b ? strlen(b + 4) : 0);
    }
    free(in);
    return status;
}

#endif
