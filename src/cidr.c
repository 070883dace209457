/*
 * cidr.c -- networks in CIDR notation ("10.0.0.0/8", "::1/128", a bare
 * address as a host route) and the test whether an address is inside one:
 * the admin's trusted networks (admin.c, SPEC A3).
 *
 * IPv4-mapped IPv6 (::ffff:a.b.c.d) is the one subtlety. A client that
 * reaches an IPv6 socket over IPv4 has a mapped address; grace reports and
 * judges it as the IPv4 address it is (grace__cidr_parse_ip), and a mapped
 * network of /96 or longer is likewise turned into the IPv4 network it
 * covers, so "::ffff:10.0.0.0/104" and "10.0.0.0/8" are the same thing. A
 * shorter IPv6 prefix stays IPv6 and so matches no IPv4 client.
 *
 * Pure functions (inet_pton, no state, no system call), unit-tested
 * (tests/unit/test_cidr.c) and fuzzed (tests/fuzz/fuzz_cidr.c).
 */
#include "internal.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

/* The first 12 bytes of an IPv4-mapped IPv6 address, ::ffff:a.b.c.d. */
static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_v4_mapped(const unsigned char addr[16])
{
    return memcmp(addr, v4_mapped, sizeof v4_mapped) == 0;
}

int grace__cidr_parse(const char *s, grace__cidr_t *out)
{
    const char *slash = strchr(s, '/');
    size_t host_len = slash ? (size_t)(slash - s) : strlen(s);
    char host[INET6_ADDRSTRLEN];
    if (host_len == 0 || host_len >= sizeof host)
        return GRACE_EINVAL;
    memcpy(host, s, host_len);
    host[host_len] = '\0';
    grace__cidr_t n = {0};
    unsigned max;
    if (inet_pton(AF_INET, host, n.addr) == 1) {
        n.family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, n.addr) == 1) {
        n.family = AF_INET6;
        max = 128;
    } else {
        return GRACE_EINVAL;
    }
    n.prefix = max;
    if (slash) {
        /* One to three decimal digits, nothing after them, at most max:
         * no sign, no space, no "/". */
        const char *p = slash + 1;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 3 || p[digits] != '\0')
            return GRACE_EINVAL;
        unsigned prefix = 0;
        for (size_t i = 0; i < digits; i++)
            prefix = prefix * 10 + (unsigned)(p[i] - '0');
        if (prefix > max)
            return GRACE_EINVAL;
        n.prefix = prefix;
    }
    if (n.family == AF_INET6 && n.prefix >= 96 && is_v4_mapped(n.addr)) {
        memmove(n.addr, n.addr + 12, 4);
        memset(n.addr + 4, 0, 12);
        n.family = AF_INET;
        n.prefix -= 96;
        max = 32;
    }
    for (unsigned bit = n.prefix; bit < max; bit++)
        n.addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
    *out = n;
    return 0;
}

bool grace__cidr_parse_ip(const char *s, int *family, unsigned char addr[16])
{
    unsigned char a[16] = {0};
    if (inet_pton(AF_INET, s, a) == 1) {
        *family = AF_INET;
    } else if (inet_pton(AF_INET6, s, a) == 1) {
        *family = AF_INET6;
        if (is_v4_mapped(a)) {
            memmove(a, a + 12, 4);
            memset(a + 4, 0, 12);
            *family = AF_INET;
        }
    } else {
        return false;
    }
    memcpy(addr, a, sizeof a);
    return true;
}

bool grace__cidr_contains(const grace__cidr_t *n, int family, const unsigned char *addr)
{
    if (n->family != family)
        return false;
    /* prefix is at most 32 (IPv4) or 128 (IPv6), so addr[full] is read only
     * when rest > 0, that is inside the 4 or 16 bytes. */
    unsigned full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(n->addr, addr, full) != 0)
        return false;
    unsigned char mask = (unsigned char)(0xff00u >> rest);
    return rest == 0 || ((addr[full] ^ n->addr[full]) & mask) == 0;
}
