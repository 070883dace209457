/*
 * fuzz_router.c -- libFuzzer harness for grace__router_add and
 * grace__router_match (src/router.c).
 *
 * Input: lines split at '\n'.
 *   line 1     the request, "METHOD PATH": split at the first space; a line
 *              without one is a path with no method ({NULL,0}). The path is
 *              given as the decoded path would be, any bytes but '\n', in a
 *              heap block of exactly its length (ASan sees reads past it).
 *   line 2..17 patterns for grace__router_add, in order ("/a/{id}",
 *              "POST:/x/:y", "/files/" "*path"); a NUL byte ends one early,
 *              as it ends a C string. Lines after the 17th are ignored.
 * Each pattern's user pointer is its index, so a match says which won.
 *
 * Invariants checked (abort on failure, so libFuzzer keeps the input):
 *   - add returns 0, GRACE_EBADPATTERN, GRACE_EEXIST or GRACE_ENOMEM, and
 *     exactly what a plain reference of grace.h's pattern rules says
 *     (reference_pattern below): GRACE_EBADPATTERN for a malformed pattern,
 *     GRACE_EEXIST when an accepted one has the same method slot and the
 *     same shape (parameters and wildcard whatever their names), else 0;
 *     adding a pattern again returns GRACE_EEXIST if it was accepted or
 *     refused as a duplicate, and GRACE_EBADPATTERN again if malformed;
 *   - match returns 200, 404 or 405, with m->allow empty unless 405;
 *   - 200: the winner is an accepted pattern, n_params <= GRACE__MAX_PARAMS
 *     and equals the winner's parameter and wildcard segments, every name is
 *     non-empty [A-Za-z0-9_], every value is a view inside the given path, a
 *     parameter's value is non-empty without '/', and the winner's path with
 *     its values put in gives back the path exactly (or the path plus "/"
 *     when a trailing wildcard took the empty value: "/files" matching
 *     "/files/" "*path");
 *   - matching is deterministic: again on the same bytes gives the same
 *     result, and on a copy at another address the same result with the
 *     values at the same offsets;
 *   - 404 does not depend on the method (GET, an unknown method and none
 *     all get 404); 405's Allow is a ", "-separated list of known methods in
 *     the router's order, with HEAD whenever GET, and each of them matches
 *     (200); a GET that matches means HEAD matches too;
 *   - every accepted pattern matches its own path with its method (GET when
 *     it has none, or "ALL:"), parameters filled in with "p" and a wildcard
 *     with "w/x"; an exact pattern (no parameter, no wildcard) is then won
 *     by a route of exactly that path, with no parameters.
 *
 * Build and run: see tests/fuzz/README.md.
 */
#include "fuzz.h"
#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_PATTERNS = 16 };

/* The router's methods, in the order of its Allow list. */
static const char *const methods[] = {"GET",   "HEAD",    "POST",    "PUT",  "DELETE",
                                      "PATCH", "OPTIONS", "CONNECT", "TRACE"};
enum { N_METHODS = sizeof methods / sizeof methods[0] };

typedef struct {
    char *text;       /* the pattern as given to add (NUL-terminated) */
    const char *path; /* its path part: text, or just after "METHOD:" */
    char method[16];  /* upper-case method to match with: GET for none / ALL */
    int rc;           /* what add returned */
    int slot;         /* reference: method slot, N_METHODS for none / ALL */
    char *shape;      /* reference: the path, "{}" per parameter, "*" for the wildcard */
} pattern_t;

static pattern_t pats[MAX_PATTERNS];
static size_t n_pats;
static int tags[MAX_PATTERNS]; /* user pointers: &tags[i] is pattern i */

static int handler(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req, (void)res, (void)user;
    return 0;
}

static grace_str_t sv(const char *s)
{
    return (grace_str_t){s, strlen(s)};
}

/* ---- Patterns as the harness reads them ----------------------------------- */

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static bool is_name(grace_str_t n)
{
    if (n.len == 0)
        return false;
    for (size_t i = 0; i < n.len; i++)
        if (!is_name_char(n.ptr[i]))
            return false;
    return true;
}

/* The pattern rules of grace.h ("Routes") written again, plainly: "[METHOD:]
 * /seg/seg...", METHOD one of the nine or ALL in any case; a segment is
 * "{name}" or ":name" (parameter), "*" or "*name" (wildcard, named "any"
 * when bare; last only), or a literal without '{' and '}'; names are
 * [A-Za-z0-9_]+, distinct, at most GRACE__MAX_PARAMS of them. For a valid
 * pattern: true, p->slot and p->shape (malloc'd). */
static bool reference_pattern(pattern_t *p)
{
    const char *path = p->text;
    p->slot = N_METHODS;
    p->shape = NULL;
    if (path[0] != '/') {
        const char *colon = strchr(path, ':');
        if (colon == NULL || colon[1] != '/')
            return false;
        char m[8];
        const size_t len = (size_t)(colon - path);
        if (len == 0 || len >= sizeof m)
            return false;
        for (size_t i = 0; i < len; i++)
            m[i] = (char)(path[i] >= 'a' && path[i] <= 'z' ? path[i] - 'a' + 'A' : path[i]);
        m[len] = '\0';
        int slot = strcmp(m, "ALL") == 0 ? N_METHODS : -1;
        for (int i = 0; i < N_METHODS && slot < 0; i++)
            if (strcmp(m, methods[i]) == 0)
                slot = i;
        if (slot < 0)
            return false;
        p->slot = slot;
        path = colon + 1;
    }

    grace_str_t names[GRACE__MAX_PARAMS];
    size_t n_names = 0;
    char *shape = malloc(2 * strlen(path) + 2);
    size_t w = 0;
    for (const char *s = path + 1;; s++) {
        const size_t len = strcspn(s, "/");
        const bool last = s[len] == '\0';
        grace_str_t name = {NULL, 0};
        shape[w++] = '/';
        if (len > 0 && s[0] == '{') {
            if (len < 2 || s[len - 1] != '}')
                goto bad;
            name = (grace_str_t){s + 1, len - 2};
            memcpy(shape + w, "{}", 2), w += 2;
        } else if (len > 0 && s[0] == ':') {
            name = (grace_str_t){s + 1, len - 1};
            memcpy(shape + w, "{}", 2), w += 2;
        } else if (len > 0 && s[0] == '*') {
            name = len == 1 ? (grace_str_t){"any", 3} : (grace_str_t){s + 1, len - 1};
            if (!last)
                goto bad;
            shape[w++] = '*';
        } else {
            if (memchr(s, '{', len) || memchr(s, '}', len))
                goto bad;
            memcpy(shape + w, s, len), w += len;
        }
        if (name.ptr != NULL) {
            if (!is_name(name) || n_names == GRACE__MAX_PARAMS)
                goto bad;
            for (size_t i = 0; i < n_names; i++)
                if (names[i].len == name.len && memcmp(names[i].ptr, name.ptr, name.len) == 0)
                    goto bad;
            names[n_names++] = name;
        }
        s += len;
        if (last)
            break;
    }
    shape[w] = '\0';
    p->shape = shape;
    return true;
bad:
    free(shape);
    return false;
}

/* Method and path of a pattern the router accepted ("get:/x" -> GET, "/x"). */
static void split_pattern(pattern_t *p)
{
    p->path = p->text;
    strcpy(p->method, "GET");
    if (p->text[0] == '/')
        return;
    const char *colon = strchr(p->text, ':');
    CHECK(colon != NULL && colon[1] == '/' && (size_t)(colon - p->text) < sizeof p->method);
    p->path = colon + 1;
    for (size_t i = 0; p->text + i < colon; i++)
        p->method[i] =
            (char)(p->text[i] >= 'a' && p->text[i] <= 'z' ? p->text[i] - 32 : p->text[i]);
    p->method[colon - p->text] = '\0';
    if (strcmp(p->method, "ALL") == 0)
        strcpy(p->method, "GET");
}

/* Kind of the pattern segment s[0..len): 0 literal, 1 parameter, 2 wildcard
 * (the pattern is one the router accepted, so the first byte tells). */
static int seg_kind(const char *s, size_t len)
{
    if (len > 0 && (s[0] == '{' || s[0] == ':'))
        return 1;
    if (len > 0 && s[0] == '*')
        return 2;
    return 0;
}

static size_t count_params(const char *path)
{
    size_t n = 0;
    for (const char *s = path + 1;; s++) {
        const size_t len = strcspn(s, "/");
        n += seg_kind(s, len) != 0;
        s += len;
        if (*s == '\0')
            return n;
    }
}

/* ---- Checks of one match ---------------------------------------------------- */

static int match(const grace__router_t *r, const char *method, grace_str_t path,
                 grace__route_match_t *m)
{
    memset(m, 0xa5, sizeof *m); /* match must set what it reports */
    return grace__router_match(r, method ? sv(method) : (grace_str_t){NULL, 0}, path, m);
}

static bool inside(grace_str_t v, grace_str_t path)
{
    return v.ptr >= path.ptr && v.ptr <= path.ptr + path.len &&
           v.len <= (size_t)(path.ptr + path.len - v.ptr);
}

/* The winner's path with the values put in must give back the path. */
static void check_rebuild(const pattern_t *p, const grace__route_match_t *m, grace_str_t path)
{
    char *out = malloc(strlen(p->path) + path.len + 2);
    size_t w = 0, k = 0;
    out[w++] = '/';
    bool last_wild_empty = false;
    for (const char *s = p->path + 1;; s++) {
        const size_t len = strcspn(s, "/");
        const int kind = seg_kind(s, len);
        if (kind == 0) {
            memcpy(out + w, s, len);
            w += len;
        } else {
            CHECK(k < m->n_params);
            const grace_str_t v = m->values[k++];
            if (kind == 1)
                CHECK(v.len > 0 && memchr(v.ptr, '/', v.len) == NULL);
            memcpy(out + w, v.ptr, v.len);
            w += v.len;
            last_wild_empty = kind == 2 && v.len == 0;
        }
        s += len;
        if (*s == '\0')
            break;
        out[w++] = '/';
    }
    CHECK(k == m->n_params);
    if (w == path.len + 1 && last_wild_empty)
        CHECK(out[w - 1] == '/' && memcmp(out, path.ptr, path.len) == 0);
    else
        CHECK(w == path.len && memcmp(out, path.ptr, w) == 0);
    free(out);
}

/* Allow: known methods, ", "-separated, in the router's order, HEAD with
 * GET; each one matches. */
static void check_allow(const grace__router_t *r, const char *allow, grace_str_t path)
{
    CHECK(allow[0] != '\0');
    int last = -1;
    bool has_get = false, has_head = false;
    for (const char *a = allow;;) {
        const size_t len = strcspn(a, ",");
        int i = last + 1;
        while (i < N_METHODS && !(strlen(methods[i]) == len && memcmp(a, methods[i], len) == 0))
            i++;
        CHECK(i < N_METHODS); /* known, and after the previous one */
        last = i;
        has_get |= i == 0;
        has_head |= i == 1;
        grace__route_match_t m;
        CHECK(match(r, methods[i], path, &m) == 200);
        a += len;
        if (*a == '\0')
            break;
        CHECK(a[1] == ' ' && a[2] != '\0');
        a += 2;
    }
    CHECK(!has_get || has_head);
}

/* Every invariant of matching (method, path), which gave status st and m. */
static void check_match(const grace__router_t *r, const char *method, grace_str_t path, int st,
                        const grace__route_match_t *m)
{
    CHECK(st == 200 || st == 404 || st == 405);
    CHECK(st == 405 || m->allow[0] == '\0');
    CHECK(memchr(m->allow, '\0', sizeof m->allow) != NULL);

    /* Deterministic, on the same bytes and on a copy elsewhere. */
    grace__route_match_t again;
    CHECK(match(r, method, path, &again) == st);
    char *copy = malloc(path.len ? path.len : 1);
    if (path.len)
        memcpy(copy, path.ptr, path.len);
    const grace_str_t path2 = {path.ptr ? copy : NULL, path.len};
    grace__route_match_t moved;
    CHECK(match(r, method, path2, &moved) == st);
    CHECK(strcmp(again.allow, m->allow) == 0 && strcmp(moved.allow, m->allow) == 0);

    if (st == 200) {
        CHECK(m->fn == handler);
        CHECK(m->user >= (void *)&tags[0] && m->user < (void *)&tags[n_pats]);
        const pattern_t *p = &pats[(int *)m->user - tags];
        CHECK(p->rc == 0);
        CHECK(m->n_params <= GRACE__MAX_PARAMS && m->n_params == count_params(p->path));
        CHECK(again.user == m->user && moved.user == m->user);
        CHECK(again.n_params == m->n_params && moved.n_params == m->n_params);
        for (size_t i = 0; i < m->n_params; i++) {
            CHECK(is_name(m->names[i]));
            for (size_t j = 0; j < i; j++)
                CHECK(m->names[j].len != m->names[i].len ||
                      memcmp(m->names[j].ptr, m->names[i].ptr, m->names[i].len) != 0);
            CHECK(inside(m->values[i], path));
            CHECK(again.values[i].ptr == m->values[i].ptr &&
                  again.values[i].len == m->values[i].len);
            CHECK(moved.values[i].ptr - path2.ptr == m->values[i].ptr - path.ptr);
            CHECK(moved.values[i].len == m->values[i].len);
        }
        check_rebuild(p, m, path);
        grace__route_match_t h;
        if (method && strcmp(method, "GET") == 0)
            CHECK(match(r, "HEAD", path, &h) == 200);
    } else if (st == 404) {
        CHECK(m->n_params == 0);
        grace__route_match_t o;
        CHECK(match(r, "GET", path, &o) == 404);
        CHECK(match(r, "NOPE", path, &o) == 404);
        CHECK(match(r, NULL, path, &o) == 404);
    } else {
        check_allow(r, m->allow, path);
    }
    free(copy);
}

/* ---- Entry point --------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *end = data + size;
    const uint8_t *eol = memchr(data, '\n', size);
    const uint8_t *line_end = eol ? eol : end;

    /* Line 1: the request. */
    const uint8_t *sp = memchr(data, ' ', (size_t)(line_end - data));
    char *method = NULL;
    const uint8_t *path_at = data;
    if (sp != NULL) {
        method = malloc((size_t)(sp - data) + 1);
        memcpy(method, data, (size_t)(sp - data));
        method[sp - data] = '\0';
        path_at = sp + 1;
    }
    const size_t path_len = (size_t)(line_end - path_at);
    char *path_buf = malloc(path_len ? path_len : 1);
    memcpy(path_buf, path_at, path_len);
    const grace_str_t path = {path_buf, path_len};

    /* Lines 2..: the patterns, each added once, then each added again. */
    grace__router_t *r = grace__router_new();
    CHECK(r != NULL);
    n_pats = 0;
    for (const uint8_t *p = eol ? eol + 1 : end; p < end && n_pats < MAX_PATTERNS;) {
        const uint8_t *e = memchr(p, '\n', (size_t)(end - p));
        const size_t len = (size_t)((e ? e : end) - p);
        pattern_t *pt = &pats[n_pats];
        pt->text = malloc(len + 1);
        memcpy(pt->text, p, len);
        pt->text[len] = '\0';
        pt->rc = grace__router_add(r, pt->text, handler, &tags[n_pats]);
        CHECK(pt->rc == 0 || pt->rc == GRACE_EBADPATTERN || pt->rc == GRACE_EEXIST ||
              pt->rc == GRACE_ENOMEM);
        int want = GRACE_EBADPATTERN;
        if (reference_pattern(pt)) {
            want = 0;
            for (size_t j = 0; j < n_pats && want == 0; j++)
                if (pats[j].rc == 0 && pats[j].slot == pt->slot &&
                    strcmp(pats[j].shape, pt->shape) == 0)
                    want = GRACE_EEXIST;
        }
        CHECK(pt->rc == want || pt->rc == GRACE_ENOMEM);
        if (pt->rc == 0)
            split_pattern(pt);
        n_pats++;
        p = e ? e + 1 : end;
    }
    for (size_t i = 0; i < n_pats; i++) {
        const int again = grace__router_add(r, pats[i].text, handler, &tags[i]);
        if (pats[i].rc == 0 || pats[i].rc == GRACE_EEXIST)
            CHECK(again == GRACE_EEXIST);
        else if (pats[i].rc == GRACE_EBADPATTERN)
            CHECK(again == GRACE_EBADPATTERN);
    }

    /* The request. */
    grace__route_match_t m;
    const int st = match(r, method, path, &m);
    check_match(r, method, path, st, &m);

    /* Every accepted pattern matches its own path. */
    for (size_t i = 0; i < n_pats; i++) {
        const pattern_t *p = &pats[i];
        if (p->rc != 0)
            continue;
        char *own = malloc(4 * strlen(p->path) + 4);
        size_t w = 0;
        for (const char *s = p->path;; s++) {
            const size_t len = strcspn(s, "/");
            const int kind = seg_kind(s, len);
            if (kind == 1)
                own[w++] = 'p';
            else if (kind == 2)
                memcpy(own + w, "w/x", 3), w += 3;
            else
                memcpy(own + w, s, len), w += len;
            s += len;
            if (*s == '\0')
                break;
            own[w++] = '/';
        }
        const grace_str_t own_path = {own, w};
        const int st2 = match(r, p->method, own_path, &m);
        CHECK(st2 == 200);
        check_match(r, p->method, own_path, st2, &m);
        if (count_params(p->path) == 0) {
            const pattern_t *won = &pats[(int *)m.user - tags];
            CHECK(m.n_params == 0 && strcmp(won->path, p->path) == 0);
        }
        free(own);
    }

    for (size_t i = 0; i < n_pats; i++) {
        free(pats[i].text);
        free(pats[i].shape);
    }
    grace__router_free(r);
    free(path_buf);
    free(method);
    return 0;
}
