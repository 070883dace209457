/*
 * test_cidr.c -- unit tests of src/cidr.c, the admin's trusted networks:
 * grace__cidr_parse (CIDR text -> network), grace__cidr_parse_ip (a
 * client's address, IPv4-mapped IPv6 as IPv4) and grace__cidr_contains, as
 * tables of inputs, plus every prefix length of both families.
 *
 * A crash or an invariant failure found by tests/fuzz/fuzz_cidr.c becomes a
 * row of parse_cases (tests/fuzz/README.md).
 */
#include "internal.h"
#include "test.h"

#include <arpa/inet.h>
#include <sys/socket.h>

/* The network's address as text, for comparing and for messages. */
static const char *net_text(const grace__cidr_t *n, char *buf, size_t cap)
{
    if (inet_ntop(n->family, n->addr, buf, (socklen_t)cap) == NULL)
        snprintf(buf, cap, "(family %d)", n->family);
    return buf;
}

/* ---- grace__cidr_parse -------------------------------------------------------- */

typedef struct {
    const char *in;
    int family; /* 0: GRACE_EINVAL */
    unsigned prefix;
    const char *addr; /* the network address, host bits cleared, as inet_ntop writes it */
} parse_case_t;

#define BAD 0, 0, NULL

static const parse_case_t parse_cases[] = {
    /* IPv4. */
    {"10.0.0.0/8", AF_INET, 8, "10.0.0.0"},
    {"10.1.2.3/8", AF_INET, 8, "10.0.0.0"}, /* host bits cleared */
    {"192.168.1.77/27", AF_INET, 27, "192.168.1.64"},
    {"1.2.3.5/31", AF_INET, 31, "1.2.3.4"},
    {"1.2.3.4/32", AF_INET, 32, "1.2.3.4"},
    {"127.0.0.1", AF_INET, 32, "127.0.0.1"}, /* bare: a host route */
    {"0.0.0.0/0", AF_INET, 0, "0.0.0.0"},
    {"255.255.255.255/0", AF_INET, 0, "0.0.0.0"},
    {"255.255.255.255/1", AF_INET, 1, "128.0.0.0"},
    {"1.2.3.4/008", AF_INET, 8, "1.0.0.0"}, /* up to three digits, leading zeros too */
    {"1.2.3.4/000", AF_INET, 0, "0.0.0.0"},
    /* IPv6. */
    {"::1", AF_INET6, 128, "::1"},
    {"::1/128", AF_INET6, 128, "::1"},
    {"::/0", AF_INET6, 0, "::"},
    {"ffff::ffff/0", AF_INET6, 0, "::"},
    {"fd00::/8", AF_INET6, 8, "fd00::"},
    {"fd12:3456::1/7", AF_INET6, 7, "fc00::"},
    {"2001:db8::1/64", AF_INET6, 64, "2001:db8::"},
    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/33", AF_INET6, 33, "2001:db8:8000::"},
    {"2001:DB8::1/127", AF_INET6, 127, "2001:db8::"},
    {"::1.2.3.4", AF_INET6, 128, "::1.2.3.4"}, /* IPv4-compatible: not mapped */
    {"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128", AF_INET6, 128,
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, /* 45 bytes: the longest address text */
    /* IPv4-mapped: /96 and longer become the IPv4 network. */
    {"::ffff:10.0.0.0/104", AF_INET, 8, "10.0.0.0"},
    {"::ffff:10.9.8.7/104", AF_INET, 8, "10.0.0.0"},
    {"::ffff:127.0.0.1", AF_INET, 32, "127.0.0.1"},
    {"::ffff:127.0.0.1/128", AF_INET, 32, "127.0.0.1"},
    {"::ffff:7f00:1", AF_INET, 32, "127.0.0.1"}, /* the same address in hex */
    {"::FFFF:127.0.0.1/96", AF_INET, 0, "0.0.0.0"},
    {"::ffff:0:0/96", AF_INET, 0, "0.0.0.0"},
    /* ... shorter prefixes stay IPv6. */
    {"::ffff:1.2.3.4/95", AF_INET6, 95, "::fffe:0:0"},
    {"::ffff:10.0.0.0/33", AF_INET6, 33, "::"},
    /* Malformed. */
    {"", BAD},
    {"/", BAD},
    {"/8", BAD},
    {"10.0.0.0/", BAD},
    {"10.0.0.0/33", BAD},
    {"10.0.0.0/100", BAD},
    {"10.0.0.0/999", BAD},
    {"10.0.0.0/0008", BAD}, /* four digits */
    {"10.0.0.0/1000", BAD},
    {"::1/129", BAD},
    {"::1/200", BAD},
    {"::ffff:10.0.0.0/129", BAD}, /* the IPv6 limit applies before mapping */
    {"10.0.0.0/-1", BAD},
    {"10.0.0.0/+8", BAD},
    {"10.0.0.0/ 8", BAD},
    {"10.0.0.0/8 ", BAD},
    {" 10.0.0.0/8", BAD},
    {"10.0.0.0 /8", BAD},
    {"10.0.0.0/8x", BAD},
    {"10.0.0.0/8/8", BAD},
    {"10.0.0.0/0x8", BAD},
    {"10.0.0.0/8.0", BAD},
    {"10.0.0.0/255.0.0.0", BAD}, /* no netmask form */
    {"10.0.0/8", BAD},
    {"10/8", BAD},
    {"10.0.0.256/8", BAD},
    {"010.0.0.1", BAD}, /* a leading zero: octal to some parsers */
    {"1.2.3.4.5", BAD},
    {"0x7f.0.0.1", BAD},
    {"example.com/8", BAD},
    {"localhost", BAD},
    {"[::1]/128", BAD},
    {"fe80::1%lo", BAD},
    {":::1", BAD},
    {"1::2::3", BAD},
    {"12345::/16", BAD},
    {"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555/128", BAD}, /* 46 bytes */
    {"00000000000000000000000000000000000000000000000000000000000000001/8", BAD},
};

static void test_parse_table(void)
{
    char got[INET6_ADDRSTRLEN + 16];
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const parse_case_t *c = &parse_cases[i];
        grace__cidr_t n, before;
        memset(&n, 0xa5, sizeof n);
        before = n;
        const int r = grace__cidr_parse(c->in, &n);
        if (c->family == 0) {
            if (r != GRACE_EINVAL)
                TEST_FAIL_("parse case %zu (\"%s\"): returned %d, want GRACE_EINVAL", i, c->in, r);
            else if (memcmp(&n, &before, sizeof n) != 0)
                TEST_FAIL_("parse case %zu (\"%s\"): failed but wrote *out", i, c->in);
            continue;
        }
        if (r != 0) {
            TEST_FAIL_("parse case %zu (\"%s\"): returned %d, want 0", i, c->in, r);
            continue;
        }
        net_text(&n, got, sizeof got);
        if (n.family != c->family || n.prefix != c->prefix || strcmp(got, c->addr) != 0)
            TEST_FAIL_("parse case %zu (\"%s\"): got %s %s/%u, want %s %s/%u", i, c->in,
                       n.family == AF_INET ? "IPv4" : "IPv6", got, n.prefix,
                       c->family == AF_INET ? "IPv4" : "IPv6", c->addr, c->prefix);
        /* An IPv4 network leaves the 12 bytes it does not use zero. */
        static const unsigned char zero[12];
        if (n.family == AF_INET && memcmp(n.addr + 4, zero, sizeof zero) != 0)
            TEST_FAIL_("parse case %zu (\"%s\"): IPv4 network with bytes after the fourth", i,
                       c->in);
    }
}

/* Every prefix length of both families, on an all-ones address: exactly
 * `prefix` leading one bits are kept; the network contains the all-ones
 * address, contains the all-zeros one only at /0, and flipping any bit
 * inside the prefix leaves it while flipping any bit after it does not. */
static void check_every_prefix(int family, const char *ones, unsigned max)
{
    for (unsigned p = 0; p <= max; p++) {
        char in[64];
        snprintf(in, sizeof in, "%s/%u", ones, p);
        grace__cidr_t n;
        if (grace__cidr_parse(in, &n) != 0) {
            TEST_FAIL_("\"%s\": refused", in);
            continue;
        }
        EXPECT_EQ(n.family, family);
        EXPECT_EQ(n.prefix, p);
        for (unsigned bit = 0; bit < max; bit++) {
            const bool set = (n.addr[bit / 8] >> (7 - bit % 8)) & 1;
            if (set != (bit < p))
                TEST_FAIL_("\"%s\": bit %u of the network is %d", in, bit, set);
        }
        unsigned char a[16], z[16] = {0};
        memset(a, 0xff, sizeof a);
        if (!grace__cidr_contains(&n, family, a))
            TEST_FAIL_("\"%s\" does not contain %s", in, ones);
        if (grace__cidr_contains(&n, family, z) != (p == 0))
            TEST_FAIL_("\"%s\": contains the zero address: %d", in, !(p == 0));
        for (unsigned bit = 0; bit < max; bit++) {
            a[bit / 8] ^= (unsigned char)(0x80u >> (bit % 8));
            if (grace__cidr_contains(&n, family, a) != (bit >= p))
                TEST_FAIL_("\"%s\" with bit %u flipped: contained %d", in, bit, bit < p);
            a[bit / 8] ^= (unsigned char)(0x80u >> (bit % 8));
        }
        /* The other family never matches, whatever its bytes. */
        if (grace__cidr_contains(&n, family == AF_INET ? AF_INET6 : AF_INET, a))
            TEST_FAIL_("\"%s\" contains an address of the other family", in);
    }
}

static void test_every_prefix(void)
{
    check_every_prefix(AF_INET, "255.255.255.255", 32);
    check_every_prefix(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 128);
}

/* ---- grace__cidr_parse_ip ------------------------------------------------------ */

typedef struct {
    const char *in;
    int family; /* 0: not an address */
    unsigned char addr[16];
} ip_case_t;

static const ip_case_t ip_cases[] = {
    {"127.0.0.1", AF_INET, {127, 0, 0, 1}},
    {"0.0.0.0", AF_INET, {0}},
    {"255.255.255.255", AF_INET, {255, 255, 255, 255}},
    {"::1", AF_INET6, {[15] = 1}},
    {"::", AF_INET6, {0}},
    {"fd00::2", AF_INET6, {0xfd, [15] = 2}},
    {"::ffff:127.0.0.1", AF_INET, {127, 0, 0, 1}}, /* mapped: the IPv4 address */
    {"::ffff:7f00:1", AF_INET, {127, 0, 0, 1}},
    {"::FFFF:10.1.2.3", AF_INET, {10, 1, 2, 3}},
    {"::fffe:127.0.0.1", AF_INET6, {[10] = 0xff, 0xfe, 127, 0, 0, 1}},
    {"::127.0.0.1", AF_INET6, {[12] = 127, 0, 0, 1}}, /* IPv4-compatible stays IPv6 */
    {"1:0:0:0:0:ffff:7f00:1", AF_INET6, {0, 1, [10] = 0xff, 0xff, 127, 0, 0, 1}},
    {"", 0, {0}},
    {"localhost", 0, {0}},
    {"127.0.0.1:80", 0, {0}},
    {"[::1]", 0, {0}},
    {"127.0.0.1/32", 0, {0}},
    {" 127.0.0.1", 0, {0}},
    {"127.1", 0, {0}},
    {"fe80::1%eth0", 0, {0}},
};

static void test_parse_ip_table(void)
{
    for (size_t i = 0; i < sizeof ip_cases / sizeof ip_cases[0]; i++) {
        const ip_case_t *c = &ip_cases[i];
        int family = -1;
        unsigned char addr[16];
        memset(addr, 0xa5, sizeof addr);
        const bool ok = grace__cidr_parse_ip(c->in, &family, addr);
        if (c->family == 0) {
            if (ok || family != -1 || addr[0] != 0xa5)
                TEST_FAIL_("ip case %zu (\"%s\"): accepted, or wrote on failure", i, c->in);
            continue;
        }
        if (!ok || family != c->family || memcmp(addr, c->addr, sizeof addr) != 0)
            TEST_FAIL_("ip case %zu (\"%s\"): ok %d family %d, or wrong bytes", i, c->in, ok,
                       family);
    }
}

/* ---- grace__cidr_contains ------------------------------------------------------ */

typedef struct {
    const char *net;
    const char *ip;
    bool in;
} contains_case_t;

static const contains_case_t contains_cases[] = {
    {"10.0.0.0/8", "10.0.0.0", true},
    {"10.0.0.0/8", "10.255.255.255", true},
    {"10.0.0.0/8", "9.255.255.255", false},
    {"10.0.0.0/8", "11.0.0.0", false},
    {"10.0.0.0/8", "::ffff:10.1.2.3", true}, /* a mapped client is judged as IPv4 */
    {"10.0.0.0/8", "::a01:203", false},      /* IPv4-compatible is not */
    {"127.0.0.0/8", "127.0.0.1", true},
    {"127.0.0.0/8", "::ffff:127.0.0.1", true},
    {"127.0.0.0/8", "::1", false},
    {"::1/128", "::1", true},
    {"::1/128", "::2", false},
    {"::1/128", "127.0.0.1", false},
    {"::1/128", "::ffff:0:1", false},
    {"192.168.1.64/27", "192.168.1.64", true},
    {"192.168.1.64/27", "192.168.1.95", true},
    {"192.168.1.64/27", "192.168.1.96", false},
    {"192.168.1.64/27", "192.168.1.63", false},
    {"1.2.3.4/31", "1.2.3.5", true},
    {"1.2.3.4/31", "1.2.3.6", false},
    {"128.0.0.0/1", "200.0.0.0", true},
    {"128.0.0.0/1", "127.255.255.255", false},
    {"10.1.2.3", "10.1.2.3", true}, /* a bare address: that host only */
    {"10.1.2.3", "10.1.2.4", false},
    {"10.1.2.3", "::ffff:10.1.2.3", true},
    {"0.0.0.0/0", "1.2.3.4", true},
    {"0.0.0.0/0", "::ffff:1.2.3.4", true},
    {"0.0.0.0/0", "::1", false},
    {"::/0", "::1", true},
    {"::/0", "2001:db8::1", true},
    {"::/0", "1.2.3.4", false},        /* IPv6 "everything" is not IPv4 */
    {"::/0", "::ffff:1.2.3.4", false}, /* nor a mapped client, judged as IPv4 */
    {"::ffff:10.0.0.0/104", "10.200.0.1", true},
    {"::ffff:10.0.0.0/104", "::ffff:10.200.0.1", true},
    {"::ffff:10.0.0.0/104", "11.0.0.0", false},
    {"::ffff:0:0/96", "8.8.8.8", true},
    {"::ffff:1.2.3.4/95", "::ffff:1.2.3.4", false}, /* an IPv6 network: no IPv4 client */
    {"fd00::/8", "fdff:ffff::1", true},
    {"fd00::/8", "fc00::1", false},
    {"fd00::/8", "fe00::1", false},
    {"2001:db8::/33", "2001:db8:7fff:ffff::1", true},
    {"2001:db8::/33", "2001:db8:8000::", false},
    {"2001:db8::/33", "2001:db9::", false},
    {"2001:db8::1/127", "2001:db8::", true},
    {"2001:db8::1/127", "2001:db8::2", false},
};

static void test_contains_table(void)
{
    for (size_t i = 0; i < sizeof contains_cases / sizeof contains_cases[0]; i++) {
        const contains_case_t *c = &contains_cases[i];
        grace__cidr_t n;
        int family;
        unsigned char addr[16];
        if (grace__cidr_parse(c->net, &n) != 0 || !grace__cidr_parse_ip(c->ip, &family, addr)) {
            TEST_FAIL_("contains case %zu (%s, %s): does not parse", i, c->net, c->ip);
            continue;
        }
        if (grace__cidr_contains(&n, family, addr) != c->in)
            TEST_FAIL_("contains case %zu: %s %s %s", i, c->net,
                       c->in ? "does not contain" : "contains", c->ip);
    }
}

/* An IPv4 network reads only the 4 bytes of an IPv4 address: a client
 * address given as exactly 4 bytes (no 16-byte buffer) works, for /32 too
 * (ASan would see a read past them). */
static void test_contains_reads_four_bytes(void)
{
    grace__cidr_t n;
    unsigned char *a = malloc(4);
    memcpy(a, (unsigned char[]){10, 1, 2, 3}, 4);
    EXPECT_EQ(grace__cidr_parse("10.1.2.3/32", &n), 0);
    EXPECT_TRUE(grace__cidr_contains(&n, AF_INET, a));
    EXPECT_EQ(grace__cidr_parse("10.1.2.0/31", &n), 0);
    EXPECT_TRUE(grace__cidr_contains(&n, AF_INET, a) == false);
    EXPECT_EQ(grace__cidr_parse("10.1.2.0/30", &n), 0);
    EXPECT_TRUE(grace__cidr_contains(&n, AF_INET, a));
    free(a);
}

TEST_MAIN(TEST(test_parse_table), TEST(test_every_prefix), TEST(test_parse_ip_table),
          TEST(test_contains_table), TEST(test_contains_reads_four_bytes))
