/*
 * test_upload_preflight.c: an upload whose declared Content-Length does not
 * fit in the data directory's free space is refused with 507
 * insufficient_storage before any body byte is read. The real server runs
 * in-process with an upload cap above any disk, and a raw socket sends only
 * the headers of a 1 PiB multipart upload: the reply must come at once, with
 * nothing written under blobs/.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"
#include "test_server.h"

static char dir[] = "/tmp/owlore-preflight-XXXXXX";

static int count_blobs(void)
{
    char path[256];
    int n = 0;
    snprintf(path, sizeof path, "%s/blobs", dir);
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

int main(void)
{
    struct test_server srv;
    char req[512], reply[4096];
    uint16_t port = test_server_start(&srv, dir, 0, (size_t)1 << 62);
    if (!port)
        return 1;
    test_begin("upload_preflight_507_before_body");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    int n = snprintf(req, sizeof req,
                     "POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: multipart/form-data; boundary=b0undary\r\n"
                     "Content-Length: %llu\r\n\r\n",
                     1ULL << 50);
    CHECK(write(fd, req, (size_t)n) == n);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t got = 0, r;
    while ((size_t)got < sizeof reply - 1 && (r = read(fd, reply + got, sizeof reply - 1 - got)) > 0)
        got += r;
    reply[got > 0 ? got : 0] = '\0';
    close(fd);
    CHECK_MSG(strncmp(reply, "HTTP/1.1 507", 12) == 0, "reply: %.80s", reply);
    CHECK(strstr(reply, "\"insufficient_storage\"") != NULL);
    CHECK(count_blobs() == 0);
    test_end();
    test_server_stop(&srv, dir);
    return test_finish();
}
