/*
 * router.c -- route patterns and the matcher that picks a route's handler for
 * a request path (gf's BindHandler syntax, SPEC S3; see grace.h "Routes").
 *
 * Design: a segment trie. A node is one position in the path; its children
 * are literal segments (sorted, binary-searched), one parameter child and one
 * wildcard child; it holds one route per method plus one any-method route.
 * Matching walks depth-first trying literal, then parameter, then wildcard,
 * so the first route found that accepts the method is the most specific. If
 * none accepts it, the walk has seen every route whose path matches, and the
 * union of their methods is the 405 Allow list.
 *
 * Invariants: grace__router_add runs at start-up on one thread; afterwards the
 * trie is read-only and grace__router_match neither writes nor allocates.
 */
#include "internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Method slots of a node; the order is also the order of the Allow list. */
enum {
    M_GET,
    M_HEAD,
    M_POST,
    M_PUT,
    M_DELETE,
    M_PATCH,
    M_OPTIONS,
    M_CONNECT,
    M_TRACE,
    N_METHODS,
    SLOT_ANY = N_METHODS, /* no method prefix, or "ALL:" */
    N_SLOTS
};

static const grace_str_t method_names[N_METHODS] = {
    {"GET", 3},   {"HEAD", 4},    {"POST", 4},    {"PUT", 3},   {"DELETE", 6},
    {"PATCH", 5}, {"OPTIONS", 7}, {"CONNECT", 7}, {"TRACE", 5},
};

typedef enum { SEG_LITERAL, SEG_PARAM, SEG_WILD } seg_kind_t;

typedef struct {
    seg_kind_t kind;
    grace_str_t name; /* parameter or wildcard name */
} seg_t;

typedef struct {
    grace_handler_cb fn;
    void *user;
    size_t n_params;
    grace_str_t names[GRACE__MAX_PARAMS]; /* point into path or at "any" */
    char *path;                           /* the pattern's path, owned */
} route_t;

typedef struct node node_t;

typedef struct {
    char *text; /* owned; never NULL, even for the empty segment */
    size_t len;
    uint64_t key; /* lit_key(text, len) */
    node_t *child;
} edge_t;

struct node {
    edge_t *lits; /* sorted by (len, bytes) */
    size_t n_lits, cap_lits;
    node_t *param;
    node_t *wild; /* has no children: a wildcard is always last */
    route_t *routes[N_SLOTS];
    unsigned methods; /* bit i set when routes[i] is, i < N_METHODS */
};

struct grace__router {
    node_t root; /* the position before the first segment */
};

/* State of one match; lives on the matching thread's stack. */
typedef struct {
    const char *end; /* end of the path */
    int method;      /* M_*, or -1 for a method no route names */
    size_t n_vals;
    grace_str_t vals[GRACE__MAX_PARAMS];
    unsigned allow; /* methods of path-matching routes that refused */
    const route_t *found;
} walk_t;

/* ---- Patterns ------------------------------------------------------------ */

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static bool is_valid_name(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_name_char(s[i]))
            return false;
    }
    return true;
}

static bool eq_nocase(const char *a, const char *b, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char x = a[i], y = b[i];
        if (x >= 'a' && x <= 'z')
            x = (char)(x - 'a' + 'A');
        if (x != y) /* b is always upper case */
            return false;
    }
    return true;
}

/* Split "METHOD:/path" into a method slot and the path. */
static int parse_method(const char *pattern, int *slot, const char **path)
{
    if (pattern[0] == '/') {
        *slot = SLOT_ANY;
        *path = pattern;
        return 0;
    }
    const char *colon = strchr(pattern, ':');
    if (!colon || colon[1] != '/')
        return GRACE_EBADPATTERN;
    const size_t len = (size_t)(colon - pattern);
    *path = colon + 1;
    if (len == 3 && eq_nocase(pattern, "ALL", 3)) {
        *slot = SLOT_ANY;
        return 0;
    }
    for (int i = 0; i < N_METHODS; i++) {
        if (method_names[i].len == len && eq_nocase(pattern, method_names[i].ptr, len)) {
            *slot = i;
            return 0;
        }
    }
    return GRACE_EBADPATTERN;
}

/* Classify one pattern segment. Braces are refused in literals: "/a/{x}y" or
 * "/x{y}" is far more likely a typo than a path the author means literally.
 * ':' and '*' only mean something at the start of a segment, so "/v1/a:b"
 * stays a literal. */
static int parse_segment(const char *s, size_t len, seg_t *seg)
{
    seg->kind = SEG_LITERAL;
    seg->name = (grace_str_t){NULL, 0};
    if (len > 0 && s[0] == '{') {
        if (len < 2 || s[len - 1] != '}' || !is_valid_name(s + 1, len - 2))
            return GRACE_EBADPATTERN;
        seg->kind = SEG_PARAM;
        seg->name = (grace_str_t){s + 1, len - 2};
    } else if (len > 0 && s[0] == ':') {
        if (!is_valid_name(s + 1, len - 1))
            return GRACE_EBADPATTERN;
        seg->kind = SEG_PARAM;
        seg->name = (grace_str_t){s + 1, len - 1};
    } else if (len > 0 && s[0] == '*') {
        seg->kind = SEG_WILD;
        seg->name = len == 1 ? (grace_str_t){"any", 3} : (grace_str_t){s + 1, len - 1};
        if (!is_valid_name(seg->name.ptr, seg->name.len))
            return GRACE_EBADPATTERN;
    } else if (memchr(s, '{', len) || memchr(s, '}', len)) {
        return GRACE_EBADPATTERN;
    }
    return 0;
}

/* Next segment of a pattern path. *p points just after a '/'; it is moved
 * past the segment and its '/'. Returns true when the segment is the last. */
static bool next_segment(const char **p, const char **s, size_t *len)
{
    *s = *p;
    *len = strcspn(*p, "/");
    const bool last = (*p)[*len] == '\0';
    *p += *len + !last;
    return last;
}

/* Check the whole path and collect its parameter names into rt, before the
 * trie is touched, so a bad pattern leaves no trace. */
static int parse_path(route_t *rt)
{
    const char *p = rt->path + 1, *s;
    size_t len;
    bool last;
    do {
        seg_t seg;
        last = next_segment(&p, &s, &len);
        if (parse_segment(s, len, &seg) < 0)
            return GRACE_EBADPATTERN;
        if (seg.kind == SEG_LITERAL)
            continue;
        if ((seg.kind == SEG_WILD && !last) || rt->n_params == GRACE__MAX_PARAMS)
            return GRACE_EBADPATTERN;
        for (size_t i = 0; i < rt->n_params; i++) {
            if (rt->names[i].len == seg.name.len &&
                memcmp(rt->names[i].ptr, seg.name.ptr, seg.name.len) == 0)
                return GRACE_EBADPATTERN;
        }
        rt->names[rt->n_params++] = seg.name;
    } while (!last);
    return 0;
}

/* ---- Trie ---------------------------------------------------------------- */

/* The first 8 bytes of a segment as a big-endian number, zero-padded: two
 * segments of the same length compare as their keys do, so most steps of the
 * binary search below are one integer compare instead of a memcmp call. */
static uint64_t lit_key(const char *s, size_t len)
{
    uint64_t key = 0;
    for (size_t i = 0; i < 8; i++)
        key = key << 8 | (i < len ? (unsigned char)s[i] : 0u);
    return key;
}

/* Order of literal children: length, then key, then the bytes after 8. */
static int cmp_lit(const edge_t *e, const char *s, size_t len, uint64_t key)
{
    if (e->len != len)
        return e->len < len ? -1 : 1;
    if (e->key != key)
        return e->key < key ? -1 : 1;
    return len > 8 ? memcmp(e->text + 8, s + 8, len - 8) : 0;
}

/* Index of the literal child s (found) or of where it would go. */
static size_t find_lit(const node_t *n, const char *s, size_t len, bool *found)
{
    const uint64_t key = lit_key(s, len);
    size_t lo = 0, hi = n->n_lits;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        const int c = cmp_lit(&n->lits[mid], s, len, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static node_t *new_node(void)
{
    return calloc(1, sizeof(node_t));
}

/* The literal child s of n, created if missing; NULL when out of memory. */
static node_t *lit_child(node_t *n, const char *s, size_t len)
{
    bool found;
    const size_t at = find_lit(n, s, len, &found);
    if (found)
        return n->lits[at].child;
    if (n->n_lits == n->cap_lits) {
        const size_t cap = n->cap_lits ? n->cap_lits * 2 : 4;
        edge_t *lits = realloc(n->lits, cap * sizeof(*lits));
        if (!lits)
            return NULL;
        n->lits = lits;
        n->cap_lits = cap;
    }
    char *text = malloc(len + 1);
    node_t *child = new_node();
    if (!text || !child) {
        free(text);
        free(child);
        return NULL;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    memmove(&n->lits[at + 1], &n->lits[at], (n->n_lits - at) * sizeof(*n->lits));
    n->lits[at] = (edge_t){text, len, lit_key(s, len), child};
    n->n_lits++;
    return child;
}

static node_t *kind_child(node_t **slot)
{
    if (!*slot)
        *slot = new_node();
    return *slot;
}

/* The node for rt's (already checked) path, created as needed. A failure
 * half-way leaves empty nodes behind: harmless, as they hold no route. */
static node_t *insert_path(node_t *n, const route_t *rt)
{
    const char *p = rt->path + 1, *s;
    size_t len;
    bool last;
    do {
        seg_t seg;
        last = next_segment(&p, &s, &len);
        (void)parse_segment(s, len, &seg); /* checked by parse_path */
        if (seg.kind == SEG_LITERAL)
            n = lit_child(n, s, len);
        else if (seg.kind == SEG_PARAM)
            n = kind_child(&n->param);
        else
            n = kind_child(&n->wild);
    } while (n && !last);
    return n;
}

static void free_node(node_t *n, bool is_root)
{
    for (size_t i = 0; i < n->n_lits; i++) {
        free(n->lits[i].text);
        free_node(n->lits[i].child, false);
    }
    free(n->lits);
    if (n->param)
        free_node(n->param, false);
    if (n->wild)
        free_node(n->wild, false);
    for (int i = 0; i < N_SLOTS; i++) {
        if (n->routes[i]) {
            free(n->routes[i]->path);
            free(n->routes[i]);
        }
    }
    if (!is_root)
        free(n);
}

grace__router_t *grace__router_new(void)
{
    return calloc(1, sizeof(grace__router_t));
}

void grace__router_free(grace__router_t *r)
{
    if (!r)
        return;
    free_node(&r->root, true);
    free(r);
}

int grace__router_add(grace__router_t *r, const char *pattern, grace_handler_cb fn, void *user)
{
    if (!r || !pattern || !fn)
        return GRACE_EINVAL;
    int slot, err;
    const char *path;
    if ((err = parse_method(pattern, &slot, &path)) < 0)
        return err;
    if (path[0] != '/')
        return GRACE_EBADPATTERN;

    route_t *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return GRACE_ENOMEM;
    rt->fn = fn;
    rt->user = user;
    const size_t path_len = strlen(path);
    if (!(rt->path = malloc(path_len + 1))) {
        err = GRACE_ENOMEM;
        goto fail;
    }
    memcpy(rt->path, path, path_len + 1);
    if ((err = parse_path(rt)) < 0)
        goto fail;

    node_t *n = insert_path(&r->root, rt);
    if (!n) {
        err = GRACE_ENOMEM;
        goto fail;
    }
    /* Same node = same shape, whatever the parameter names. */
    if (n->routes[slot]) {
        err = GRACE_EEXIST;
        goto fail;
    }
    n->routes[slot] = rt;
    if (slot != SLOT_ANY)
        n->methods |= 1u << slot;
    return 0;
fail:
    free(rt->path);
    free(rt);
    return err;
}

/* ---- Matching ------------------------------------------------------------ */

/* HTTP methods are case-sensitive (RFC 9110 9.1), so no folding here. */
static int method_index(grace_str_t m)
{
    for (int i = 0; i < N_METHODS; i++) {
        if (method_names[i].len == m.len && memcmp(method_names[i].ptr, m.ptr, m.len) == 0)
            return i;
    }
    return -1;
}

/* The route of n that answers the method, if any: an explicit one beats the
 * any-method one, and GET answers HEAD when there is no HEAD route. */
static const route_t *pick_route(const node_t *n, walk_t *w)
{
    const route_t *rt = w->method >= 0 ? n->routes[w->method] : NULL;
    if (!rt && w->method == M_HEAD)
        rt = n->routes[M_GET];
    if (!rt)
        rt = n->routes[SLOT_ANY];
    if (!rt)
        w->allow |= n->methods;
    return rt;
}

/* The wildcard below some node takes the rest of the path, s[0..len). */
static bool try_wild(const node_t *wild, const char *s, size_t len, walk_t *w)
{
    assert(w->n_vals < GRACE__MAX_PARAMS); /* add refuses patterns with more */
    w->vals[w->n_vals++] = (grace_str_t){s, len};
    if ((w->found = pick_route(wild, w)))
        return true;
    w->n_vals--;
    return false;
}

/* Depth-first, most specific first. p is the start of the next segment (just
 * after a '/'), or NULL when the path is used up. Recursion depth is bounded
 * by the depth of the trie, not by the request path. */
static bool walk(const node_t *n, const char *p, walk_t *w)
{
    if (!p) {
        if ((w->found = pick_route(n, w)))
            return true;
        /* So "/static" also matches a wildcard route just under it, with an empty value. */
        return n->wild && try_wild(n->wild, w->end, 0, w);
    }
    /* A plain loop beats memchr here: segments are mostly a few bytes. */
    const char *e = p;
    while (e < w->end && *e != '/')
        e++;
    const size_t len = (size_t)(e - p);
    const char *next = e < w->end ? e + 1 : NULL;

    if (n->n_lits) {
        bool found;
        const size_t at = find_lit(n, p, len, &found);
        if (found && walk(n->lits[at].child, next, w))
            return true;
    }
    if (n->param && len > 0) {
        assert(w->n_vals < GRACE__MAX_PARAMS); /* add refuses patterns with more */
        w->vals[w->n_vals++] = (grace_str_t){p, len};
        if (walk(n->param, next, w))
            return true;
        w->n_vals--;
    }
    return n->wild && try_wild(n->wild, p, (size_t)(w->end - p), w);
}

static void format_allow(unsigned mask, char *out, size_t cap)
{
    (void)cap; /* only the assert reads it */
    if (mask & (1u << M_GET))
        mask |= 1u << M_HEAD;
    size_t len = 0;
    for (int i = 0; i < N_METHODS; i++) {
        if (!(mask & (1u << i)))
            continue;
        /* Every method listed fits: 60 bytes at most, checked below. */
        assert(len + 2 + method_names[i].len < cap);
        if (len) {
            memcpy(out + len, ", ", 2);
            len += 2;
        }
        memcpy(out + len, method_names[i].ptr, method_names[i].len);
        len += method_names[i].len;
    }
    out[len] = '\0';
}

int grace__router_match(const grace__router_t *r, grace_str_t method, grace_str_t path,
                        grace__route_match_t *m)
{
    static_assert(sizeof "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT, TRACE" <=
                      sizeof m->allow,
                  "the Allow list of every method fits in m->allow");
    m->fn = NULL;
    m->user = NULL;
    m->n_params = 0;
    m->allow[0] = '\0';
    if (!path.ptr || path.len == 0 || path.ptr[0] != '/')
        return 404;

    walk_t w;
    w.end = path.ptr + path.len;
    w.method = method.ptr ? method_index(method) : -1;
    w.n_vals = 0;
    w.allow = 0;
    w.found = NULL;
    if (walk(&r->root, path.ptr + 1, &w)) {
        const route_t *rt = w.found;
        assert(w.n_vals == rt->n_params); /* one value per parameter on the way */
        m->fn = rt->fn;
        m->user = rt->user;
        m->n_params = rt->n_params;
        memcpy(m->names, rt->names, rt->n_params * sizeof(rt->names[0]));
        memcpy(m->values, w.vals, w.n_vals * sizeof(w.vals[0]));
        return 200;
    }
    if (!w.allow)
        return 404;
    format_allow(w.allow, m->allow, sizeof m->allow);
    return 405;
}
