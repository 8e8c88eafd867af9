/*
 * fuzz_webhook_url.c: libFuzzer harness for the webhook SSRF policy
 * (server/webhook_url.h). The first input byte picks the mode:
 *   even: the rest is a URL for webhook_url_check (loopback allowed when
 *         bit 1 is set). Host names never reach DNS (fuzz_resolver.h).
 *         An accepted URL must have a checked address that is public, or
 *         loopback when allowed.
 *   odd:  the next 4 bytes are an IPv4 address for webhook_ip_classify;
 *         its IPv4-mapped, NAT64 and 6to4 IPv6 forms must class the same,
 *         and a "public" verdict must not fall in a well-known non-public
 *         prefix.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_resolver.h"
#include "webhook_url.h"

/* 1 when a is in a prefix that is never public (RFC 6890 and friends). */
static int known_non_public(const unsigned char *a)
{
    return a[0] == 0 || a[0] == 10 || a[0] == 127 || a[0] >= 224 ||
           (a[0] == 169 && a[1] == 254) || (a[0] == 172 && a[1] >= 16 && a[1] < 32) ||
           (a[0] == 192 && a[1] == 168) || (a[0] == 100 && a[1] >= 64 && a[1] < 128) ||
           (a[0] == 192 && a[1] == 0 && a[2] == 2) || (a[0] == 198 && a[1] == 51 && a[2] == 100) ||
           (a[0] == 203 && a[1] == 0 && a[2] == 113) || (a[0] == 198 && (a[1] == 18 || a[1] == 19));
}

static void classify(const unsigned char *v4)
{
    unsigned char v6[16] = {0};
    enum webhook_ip_class c = webhook_ip_classify(AF_INET, v4);
    if (c == WEBHOOK_IP_PUBLIC && known_non_public(v4))
        abort();
    v6[10] = v6[11] = 0xff; /* ::ffff:a.b.c.d */
    memcpy(v6 + 12, v4, 4);
    if (webhook_ip_classify(AF_INET6, v6) != c)
        abort();
    memset(v6, 0, 12); /* 64:ff9b::a.b.c.d */
    v6[1] = 0x64, v6[2] = 0xff, v6[3] = 0x9b;
    if (webhook_ip_classify(AF_INET6, v6) != c)
        abort();
    memset(v6, 0, 16); /* 2002:aabb:ccdd:: */
    v6[0] = 0x20, v6[1] = 0x02;
    memcpy(v6 + 2, v4, 4);
    if (webhook_ip_classify(AF_INET6, v6) != c)
        abort();
}

static void check_url(const char *url, int allow_loopback)
{
    struct webhook_target t;
    char why[512];
    unsigned char a[16];
    if (webhook_url_check(url, allow_loopback, &t, why, sizeof why) != 0)
        return;
    int v6 = strchr(t.addr, ':') != NULL;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, t.addr, a) != 1)
        abort();
    enum webhook_ip_class c = webhook_ip_classify(v6 ? AF_INET6 : AF_INET, a);
    if (c != WEBHOOK_IP_PUBLIC && !(allow_loopback && c == WEBHOOK_IP_LOOPBACK))
        abort();
    if (!t.https && c != WEBHOOK_IP_LOOPBACK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (n < 1)
        return 0;
    if (data[0] & 1) {
        if (n >= 5)
            classify(data + 1);
        return 0;
    }
    char *url = fuzz_cstr(data + 1, n - 1);
    check_url(url, (data[0] >> 1) & 1);
    free(url);
    return 0;
}
