/*
 * webhook_url.h: which URLs the service may send webhooks to (SSRF
 * protection), checked when a webhook is registered and again before each
 * delivery.
 *
 * A URL must be https, or http to a loopback address when the server allows
 * loopback (owlore serve --webhook-allow-loopback, for local receivers and
 * tests); it must carry no user name or password. Its host is resolved
 * (getaddrinfo) and every address it resolves to must be public: private,
 * shared (CGNAT), link-local, loopback (unless allowed), multicast,
 * unspecified, documentation, benchmarking and reserved ranges are refused,
 * and so are IPv6 forms that embed such an IPv4 address (IPv4-mapped,
 * IPv4-compatible, NAT64, 6to4) or hide one (Teredo). The caller then
 * connects to the checked address only (struct webhook_target's resolve
 * entry for CURLOPT_RESOLVE), so a DNS answer that changes between the
 * check and the connection (rebinding) cannot redirect it.
 */
#ifndef OWLORE_WEBHOOK_URL_H
#define OWLORE_WEBHOOK_URL_H

#include <stddef.h>

#include <netinet/in.h>

#define WEBHOOK_URL_MAX 2048

enum webhook_ip_class {
    WEBHOOK_IP_PUBLIC,
    WEBHOOK_IP_LOOPBACK,
    WEBHOOK_IP_PRIVATE,    /* RFC 1918, CGNAT 100.64/10, IPv6 ULA and site-local */
    WEBHOOK_IP_LINK_LOCAL, /* 169.254/16, fe80::/10 */
    WEBHOOK_IP_MULTICAST,
    WEBHOOK_IP_UNSPECIFIED, /* 0.0.0.0/8, :: */
    WEBHOOK_IP_RESERVED,    /* documentation, benchmarking, future use, Teredo... */
};

/* The class of an address: family AF_INET with 4 bytes at addr, or
 * AF_INET6 with 16; any other family is WEBHOOK_IP_RESERVED. A pure
 * function of its arguments. */
enum webhook_ip_class webhook_ip_classify(int family, const unsigned char *addr);
/* "public", "loopback", "private", ... */
const char *webhook_ip_class_name(enum webhook_ip_class c);

/* Where a checked URL may be sent. */
struct webhook_target {
    int https;                       /* 0: plain http (loopback only) */
    char addr[INET6_ADDRSTRLEN];     /* the checked address to connect to */
    char resolve[256 + 8 + INET6_ADDRSTRLEN + 2]; /* "host:port:addr" for
                                        CURLOPT_RESOLVE; "" for an IPv6
                                        literal host, which is not looked up */
};

/* Checks `url` as above: 0 with *t filled, or -1 with the reason, fit for
 * an API error message, in why. Resolves the host, so it may block. */
int webhook_url_check(const char *url, int allow_loopback, struct webhook_target *t,
                      char *why, size_t whylen);

#endif
