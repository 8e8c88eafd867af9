/*
 * service.c: the process-wide service context (see service.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "service.h"

static struct service *current;

int service_init(struct service *svc, char *err, size_t errlen)
{
    char blobs[4200];
    snprintf(blobs, sizeof blobs, "%s/blobs", svc->data_dir);
    if (mkdir(blobs, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", blobs, strerror(errno));
        return -1;
    }
    current = svc;
    return 0;
}

struct service *service_get(void)
{
    return current;
}
