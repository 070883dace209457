/*
 * fuzz_cidr.c -- libFuzzer harness for the trusted-network parser and
 * matcher (src/cidr.c): grace__cidr_parse, grace__cidr_parse_ip,
 * grace__cidr_contains.
 *
 * Input: the text to parse, up to the first NUL (in a heap block of exactly
 * its length + 1, so ASan catches a read past the terminator); the bytes
 * after that NUL, if any, are 16 bytes of "host bits" for the containment
 * checks (missing bytes are 0x5a).
 *
 * Invariants checked (abort on failure, so libFuzzer keeps the input):
 *   - parse returns 0 or GRACE_EINVAL, and on GRACE_EINVAL leaves *out as it
 *     was;
 *   - it accepts exactly "ADDRESS" or "ADDRESS/DIGITS": ADDRESS one that
 *     inet_pton takes (IPv4 or IPv6), DIGITS one to three decimal digits
 *     whose value is at most the address family's bits;
 *   - a network is AF_INET with a prefix <= 32 and bytes 4..15 zero, or
 *     AF_INET6 with a prefix <= 128 that is not an IPv4-mapped /96 or
 *     longer (those become AF_INET); no host bit is set;
 *   - the network contains its own address, and any address with the same
 *     first prefix bits (host bits from the input); flipping one bit inside
 *     the prefix leaves it; an address of the other family is never in it;
 *   - deterministic: a second parse of a copy elsewhere gives the same bytes;
 *   - round trip: inet_ntop of the address + "/prefix" parses to the same
 *     network;
 *   - parse_ip agrees: it accepts exactly what inet_pton does, gives
 *     AF_INET for a mapped address (bytes 4..15 zero), and a bare address
 *     parsed as a network is the host route containing it.
 *
 * Build and run: see tests/fuzz/README.md.
 */
#include "fuzz.h"
#include "internal.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static bool bit_of(const unsigned char *a, unsigned bit)
{
    return (a[bit / 8] >> (7 - bit % 8)) & 1;
}

static void flip(unsigned char *a, unsigned bit)
{
    a[bit / 8] ^= (unsigned char)(0x80u >> (bit % 8));
}

/* What the parser must accept, written plainly: an address, or an address,
 * '/' and one to three digits of value <= its family's bits. */
static bool reference_accepts(const char *s)
{
    const char *slash = strchr(s, '/');
    const size_t host_len = slash ? (size_t)(slash - s) : strlen(s);
    char host[64];
    if (host_len >= sizeof host)
        return false;
    memcpy(host, s, host_len);
    host[host_len] = '\0';
    unsigned char a[16];
    unsigned max;
    if (inet_pton(AF_INET, host, a) == 1)
        max = 32;
    else if (inet_pton(AF_INET6, host, a) == 1)
        max = 128;
    else
        return false;
    if (slash == NULL)
        return true;
    const char *d = slash + 1;
    size_t n = 0;
    unsigned v = 0;
    while (d[n] >= '0' && d[n] <= '9')
        v = v * 10 + (unsigned)(d[n++] - '0');
    return n >= 1 && n <= 3 && d[n] == '\0' && v <= max;
}

static void check_network(const char *text, const grace__cidr_t *n, const unsigned char host[16])
{
    const unsigned max = n->family == AF_INET ? 32 : 128;
    CHECK(n->family == AF_INET || n->family == AF_INET6);
    CHECK(n->prefix <= max);
    if (n->family == AF_INET)
        CHECK(is_zero(n->addr + 4, 12));
    else
        CHECK(!(n->prefix >= 96 && memcmp(n->addr, v4_mapped, 12) == 0));
    for (unsigned bit = n->prefix; bit < max; bit++)
        CHECK(!bit_of(n->addr, bit)); /* host bits cleared */

    /* Its own address; the same prefix with any host bits; not with one
     * prefix bit flipped; never the other family. */
    CHECK(grace__cidr_contains(n, n->family, n->addr));
    unsigned char a[16];
    memcpy(a, n->addr, 16);
    for (unsigned bit = n->prefix; bit < max; bit++)
        if (bit_of(host, bit))
            flip(a, bit);
    CHECK(grace__cidr_contains(n, n->family, a));
    if (n->prefix > 0) {
        const unsigned bit = host[0] % n->prefix;
        flip(a, bit);
        CHECK(!grace__cidr_contains(n, n->family, a));
        flip(a, bit);
    }
    CHECK(!grace__cidr_contains(n, n->family == AF_INET ? AF_INET6 : AF_INET, a));

    /* Deterministic, also on a copy elsewhere. */
    char *copy = strdup(text);
    grace__cidr_t again;
    memset(&again, 0x5a, sizeof again);
    CHECK(grace__cidr_parse(copy, &again) == 0);
    CHECK(memcmp(&again, n, sizeof again) == 0);
    free(copy);

    /* Round trip through the text inet_ntop writes. */
    char shown[INET6_ADDRSTRLEN + 8];
    CHECK(inet_ntop(n->family, n->addr, shown, INET6_ADDRSTRLEN) != NULL);
    snprintf(shown + strlen(shown), 8, "/%u", n->prefix);
    grace__cidr_t back;
    CHECK(grace__cidr_parse(shown, &back) == 0);
    CHECK(memcmp(&back, n, sizeof back) == 0);
}

static void check_ip(const char *text)
{
    int family = -1;
    unsigned char addr[16];
    memset(addr, 0x5a, sizeof addr);
    const bool ok = grace__cidr_parse_ip(text, &family, addr);
    unsigned char a[16];
    const bool pton = inet_pton(AF_INET, text, a) == 1 || inet_pton(AF_INET6, text, a) == 1;
    CHECK(ok == pton);
    if (!ok) {
        CHECK(family == -1);
        return;
    }
    CHECK(family == AF_INET || family == AF_INET6);
    if (family == AF_INET)
        CHECK(is_zero(addr + 4, 12));
    else
        CHECK(memcmp(addr, v4_mapped, 12) != 0);

    /* A bare address is the host route that contains it (and only it). */
    grace__cidr_t n;
    CHECK(grace__cidr_parse(text, &n) == 0);
    CHECK(n.family == family);
    CHECK(n.prefix == (family == AF_INET ? 32u : 128u));
    CHECK(memcmp(n.addr, addr, 16) == 0);
    CHECK(grace__cidr_contains(&n, family, addr));
    flip(addr, n.prefix - 1);
    CHECK(!grace__cidr_contains(&n, family, addr));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    const size_t len = nul ? (size_t)(nul - data) : size;
    char *text = malloc(len + 1);
    memcpy(text, data, len);
    text[len] = '\0';
    unsigned char host[16];
    memset(host, 0x5a, sizeof host);
    if (nul) {
        const size_t extra = size - len - 1;
        memcpy(host, nul + 1, extra < 16 ? extra : 16);
    }

    grace__cidr_t n;
    memset(&n, 0xa5, sizeof n);
    const grace__cidr_t untouched = n;
    const int r = grace__cidr_parse(text, &n);
    CHECK(r == 0 || r == GRACE_EINVAL);
    CHECK((r == 0) == reference_accepts(text));
    if (r == 0)
        check_network(text, &n, host);
    else
        CHECK(memcmp(&n, &untouched, sizeof n) == 0);
    check_ip(text);
    free(text);
    return 0;
}
