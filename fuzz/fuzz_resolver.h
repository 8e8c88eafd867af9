/*
 * fuzz_resolver.h: a getaddrinfo that keeps the webhook harnesses off the
 * network. Included by exactly one file of a harness, it replaces libc's
 * for the whole program: numeric hosts are answered as libc answers them,
 * and each host name maps to one address of a fixed list (public, private,
 * loopback, link-local, IPv4-mapped, NAT64, documentation...) chosen by a
 * hash of the name, so the SSRF policy sees every class.
 */
#ifndef OWLORE_FUZZ_RESOLVER_H
#define OWLORE_FUZZ_RESOLVER_H

#include <dlfcn.h>
#include <netdb.h>
#include <stdint.h>
#include <stdlib.h>

typedef int (*fuzz_getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                                   struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static const char *const answers[] = {
        "93.184.216.34", "10.0.0.1",        "127.0.0.1",       "169.254.169.254",
        "::1",           "::ffff:10.1.2.3", "64:ff9b::7f00:1", "2606:4700::1111",
        "100.64.0.1",    "0.0.0.0",         "fd00::1",         "2001:db8::1",
    };
    fuzz_getaddrinfo_fn real = (fuzz_getaddrinfo_fn)(uintptr_t)dlsym(RTLD_NEXT, "getaddrinfo");
    struct addrinfo h = hints ? *hints : (struct addrinfo){0};
    h.ai_flags |= AI_NUMERICHOST;
    if (!real)
        abort();
    if (node && real(node, service, &h, res) == 0)
        return 0;
    uint32_t hash = 2166136261u;
    for (const char *p = node ? node : ""; *p; p++)
        hash = (hash ^ (unsigned char)*p) * 16777619u;
    return real(answers[hash % (sizeof answers / sizeof *answers)], service, &h, res);
}

#endif
