/*
 * webhook_url.c: the webhook URL policy (see webhook_url.h): libcurl's URL
 * parser splits the URL exactly as the delivery will read it, getaddrinfo
 * resolves the host, and webhook_ip_classify judges every address.
 */
#include "webhook_url.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>

static enum webhook_ip_class classify_v4(const unsigned char *a)
{
    if (a[0] == 0)
        return WEBHOOK_IP_UNSPECIFIED;
    if (a[0] == 127)
        return WEBHOOK_IP_LOOPBACK;
    if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
        (a[0] == 100 && (a[1] & 0xc0) == 64))
        return WEBHOOK_IP_PRIVATE;
    if (a[0] == 169 && a[1] == 254)
        return WEBHOOK_IP_LINK_LOCAL;
    if (a[0] >= 224 && a[0] < 240)
        return WEBHOOK_IP_MULTICAST;
    if (a[0] >= 240 ||                                       /* future use, broadcast */
        (a[0] == 192 && a[1] == 0 && (a[2] == 0 || a[2] == 2)) || /* IETF, TEST-NET-1 */
        (a[0] == 192 && a[1] == 88 && a[2] == 99) ||             /* 6to4 relays */
        (a[0] == 198 && (a[1] & 0xfe) == 18) ||                  /* benchmarking */
        (a[0] == 198 && a[1] == 51 && a[2] == 100) ||            /* TEST-NET-2 */
        (a[0] == 203 && a[1] == 0 && a[2] == 113))               /* TEST-NET-3 */
        return WEBHOOK_IP_RESERVED;
    return WEBHOOK_IP_PUBLIC;
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static enum webhook_ip_class classify_v6(const unsigned char *b)
{
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (all_zero(b, 16))
        return WEBHOOK_IP_UNSPECIFIED;
    if (all_zero(b, 15) && b[15] == 1)
        return WEBHOOK_IP_LOOPBACK;
    if (all_zero(b, 10) && b[10] == 0xff && b[11] == 0xff) /* ::ffff:a.b.c.d */
        return classify_v4(b + 12);
    if (all_zero(b, 12)) /* ::a.b.c.d, deprecated IPv4-compatible */
        return WEBHOOK_IP_RESERVED;
    if (memcmp(b, nat64, 12) == 0) /* 64:ff9b::a.b.c.d */
        return classify_v4(b + 12);
    if (b[0] == 0x20 && b[1] == 0x02) /* 6to4: 2002:aabb:ccdd::/48 */
        return classify_v4(b + 2);
    if ((b[0] & 0xfe) == 0xfc)
        return WEBHOOK_IP_PRIVATE; /* fc00::/7 unique local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return WEBHOOK_IP_LINK_LOCAL; /* fe80::/10 */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return WEBHOOK_IP_PRIVATE; /* fec0::/10 site-local, deprecated */
    if (b[0] == 0xff)
        return WEBHOOK_IP_MULTICAST;
    if ((b[0] & 0xe0) != 0x20)
        return WEBHOOK_IP_RESERVED; /* outside global unicast 2000::/3 (64:ff9b:1::/48...) */
    if (b[0] == 0x20 && b[1] == 0x01 && (b[2] < 0x02 || (b[2] == 0x0d && b[3] == 0xb8)))
        return WEBHOOK_IP_RESERVED; /* 2001::/23 (Teredo, ORCHID...), 2001:db8::/32 */
    return WEBHOOK_IP_PUBLIC;
}

enum webhook_ip_class webhook_ip_classify(int family, const unsigned char *addr)
{
    if (family == AF_INET)
        return classify_v4(addr);
    if (family == AF_INET6)
        return classify_v6(addr);
    return WEBHOOK_IP_RESERVED;
}

const char *webhook_ip_class_name(enum webhook_ip_class c)
{
    switch (c) {
    case WEBHOOK_IP_PUBLIC: return "public";
    case WEBHOOK_IP_LOOPBACK: return "loopback";
    case WEBHOOK_IP_PRIVATE: return "private";
    case WEBHOOK_IP_LINK_LOCAL: return "link-local";
    case WEBHOOK_IP_MULTICAST: return "multicast";
    case WEBHOOK_IP_UNSPECIFIED: return "unspecified";
    case WEBHOOK_IP_RESERVED: break;
    }
    return "reserved";
}

/* 1 for a DNS name of ASCII letters, digits, '-' and '.' (no IDN: libcurl
 * would look up its punycode form, not the name checked here), or a
 * bracketed IPv6 literal. */
static int host_chars_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253)
        return 0;
    if (h[0] == '[')
        return n > 2 && h[n - 1] == ']' && strspn(h + 1, "0123456789abcdefABCDEF:.") == n - 2;
    return strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == n;
}

/* The parts of the URL the policy needs; 0, or -1 with why. */
static int split_url(const char *url, int *https, char *host, size_t hostlen, char *port,
                     size_t portlen, char *why, size_t whylen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *user = NULL, *pass = NULL, *zone = NULL, *h = NULL, *p = NULL;
    int rc = -1;
    if (!u) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK) {
        snprintf(why, whylen, "'url' is not a valid absolute URL.");
        goto out;
    }
    *https = strcmp(scheme, "https") == 0;
    if (!*https && strcmp(scheme, "http") != 0) {
        snprintf(why, whylen, "'url' must use https.");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) != CURLUE_NO_USER ||
        curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) != CURLUE_NO_PASSWORD) {
        snprintf(why, whylen, "'url' must not contain a user name or password.");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_ZONEID, &zone, 0) != CURLUE_NO_ZONEID || !host_chars_ok(h)) {
        snprintf(why, whylen, "'url' has a host name this server does not send to.");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        snprintf(why, whylen, "'url' has no usable port.");
        goto out;
    }
    if (h[0] == '[') /* the lookup takes the literal without brackets */
        snprintf(host, hostlen, "%.*s", (int)strlen(h) - 2, h + 1);
    else
        snprintf(host, hostlen, "%s", h);
    snprintf(port, portlen, "%s", p);
    rc = 0;
out:
    curl_free(scheme);
    curl_free(user);
    curl_free(pass);
    curl_free(zone);
    curl_free(h);
    curl_free(p);
    curl_url_cleanup(u);
    return rc;
}

/* The class of a resolved address, with its text in buf. */
static enum webhook_ip_class classify_sockaddr(const struct sockaddr *sa, char *buf, size_t n)
{
    const void *a = NULL;
    if (sa->sa_family == AF_INET)
        a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (!a || !inet_ntop(sa->sa_family, a, buf, (socklen_t)n)) {
        snprintf(buf, n, "?");
        return WEBHOOK_IP_RESERVED;
    }
    return webhook_ip_classify(sa->sa_family, a);
}

int webhook_url_check(const char *url, int allow_loopback, struct webhook_target *t,
                      char *why, size_t whylen)
{
    char host[256], port[8], addr[INET6_ADDRSTRLEN];
    memset(t, 0, sizeof *t);
    if (!url[0] || strlen(url) > WEBHOOK_URL_MAX) {
        snprintf(why, whylen, "'url' must be 1 to %d characters long.", WEBHOOK_URL_MAX);
        return -1;
    }
    if (split_url(url, &t->https, host, sizeof host, port, sizeof port, why, whylen) != 0)
        return -1;
    if (!t->https && !allow_loopback) {
        snprintf(why, whylen, "'url' must use https.");
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0 || !res) {
        snprintf(why, whylen, "The host of 'url' could not be resolved: %s.",
                 gai ? gai_strerror(gai) : "no address");
        return -1;
    }
    int rc = 0;
    for (struct addrinfo *ai = res; ai && rc == 0; ai = ai->ai_next) {
        enum webhook_ip_class c = classify_sockaddr(ai->ai_addr, addr, sizeof addr);
        if (c == WEBHOOK_IP_LOOPBACK ? !allow_loopback : c != WEBHOOK_IP_PUBLIC) {
            snprintf(why, whylen, "The host of 'url' resolves to a %s address (%s): webhooks "
                     "are only sent to public addresses.", webhook_ip_class_name(c), addr);
            rc = -1;
        } else if (!t->https && c != WEBHOOK_IP_LOOPBACK) {
            snprintf(why, whylen, "'url' must use https (plain http is only allowed to "
                     "loopback addresses).");
            rc = -1;
        }
    }
    if (rc == 0) {
        classify_sockaddr(res->ai_addr, t->addr, sizeof t->addr);
        if (!strchr(host, ':'))
            snprintf(t->resolve, sizeof t->resolve,
                     res->ai_family == AF_INET6 ? "%s:%s:[%s]" : "%s:%s:%s", host, port, t->addr);
    }
    freeaddrinfo(res);
    return rc;
}
