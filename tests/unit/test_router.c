/*
 * test_router.c -- unit tests of src/router.c: pattern syntax and errors,
 * parameter and wildcard values, the "most specific route wins" order, method
 * filtering with HEAD via GET, and the 404/405 answers with their Allow text.
 *
 * Each route is bound with a distinct tag as its user pointer, so a test
 * checks which route won by comparing tags.
 */
#include "internal.h"
#include "test.h"

static int handler(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)res;
    (void)user;
    return 0;
}

static int other_handler(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)res;
    (void)user;
    return 0;
}

static grace_str_t sv(const char *s)
{
    return (grace_str_t){s, strlen(s)};
}

static int add(grace__router_t *r, const char *pattern)
{
    /* The pattern itself is the tag: it lives in static storage. */
    return grace__router_add(r, pattern, handler, (void *)pattern);
}

static int match(const grace__router_t *r, const char *method, const char *path,
                 grace__route_match_t *m)
{
    return grace__router_match(r, sv(method), sv(path), m);
}

/* The pattern of the route that answered (its tag), or "" for none. */
static const char *winner(const grace__router_t *r, const char *method, const char *path)
{
    grace__route_match_t m;
    if (match(r, method, path, &m) != 200)
        return "";
    return m.user;
}

/* Value of the parameter name in m, or "<absent>". */
static grace_str_t param(const grace__route_match_t *m, const char *name)
{
    for (size_t i = 0; i < m->n_params; i++) {
        if (m->names[i].len == strlen(name) && memcmp(m->names[i].ptr, name, m->names[i].len) == 0)
            return m->values[i];
    }
    return sv("<absent>");
}

static void test_new_free(void)
{
    grace__router_free(NULL);
    grace__router_t *r = grace__router_new();
    EXPECT_TRUE(r != NULL);
    grace__route_match_t m;
    EXPECT_EQ(match(r, "GET", "/", &m), 404);
    EXPECT_STR(sv(m.allow), "");
    grace__router_free(r);
}

static void test_exact_paths(void)
{
    grace__router_t *r = grace__router_new();
    EXPECT_EQ(add(r, "/user/list"), 0);
    EXPECT_EQ(add(r, "/user"), 0);
    EXPECT_EQ(add(r, "/pid"), 0);
    grace__route_match_t m;
    EXPECT_EQ(match(r, "GET", "/user/list", &m), 200);
    EXPECT_TRUE(m.fn == handler);
    EXPECT_STR(sv(m.user), "/user/list");
    EXPECT_EQ(m.n_params, 0);
    EXPECT_STR(sv(winner(r, "GET", "/user")), "/user");
    EXPECT_STR(sv(winner(r, "POST", "/pid")), "/pid");
    EXPECT_EQ(match(r, "GET", "/user/lis", &m), 404);
    EXPECT_EQ(match(r, "GET", "/user/list/x", &m), 404);
    EXPECT_EQ(match(r, "GET", "/User/list", &m), 404); /* paths are case-sensitive */
    EXPECT_EQ(match(r, "GET", "/pi", &m), 404);
    grace__router_free(r);
}

static void test_root(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    EXPECT_EQ(add(r, "/"), 0);
    EXPECT_EQ(add(r, "/a"), 0);
    EXPECT_STR(sv(winner(r, "GET", "/")), "/");
    EXPECT_STR(sv(winner(r, "GET", "/a")), "/a");
    EXPECT_EQ(match(r, "GET", "/b", &m), 404);
    EXPECT_EQ(match(r, "GET", "//", &m), 404);
    EXPECT_EQ(match(r, "GET", "", &m), 404);
    EXPECT_EQ(match(r, "GET", "a", &m), 404);
    EXPECT_EQ(match(r, "OPTIONS", "*", &m), 404);
    EXPECT_EQ(grace__router_match(r, sv("GET"), (grace_str_t){NULL, 0}, &m), 404);
    grace__router_free(r);
}

static void test_trailing_slash(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    EXPECT_EQ(add(r, "/a"), 0);
    EXPECT_EQ(add(r, "/b/"), 0);
    EXPECT_STR(sv(winner(r, "GET", "/a")), "/a");
    EXPECT_EQ(match(r, "GET", "/a/", &m), 404);
    EXPECT_STR(sv(winner(r, "GET", "/b/")), "/b/");
    EXPECT_EQ(match(r, "GET", "/b", &m), 404);
    EXPECT_EQ(add(r, "/a/"), 0); /* a different shape from "/a" */
    EXPECT_STR(sv(winner(r, "GET", "/a/")), "/a/");
    EXPECT_STR(sv(winner(r, "GET", "/a")), "/a");
    grace__router_free(r);
}

static void test_param_braces(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    EXPECT_EQ(add(r, "/user/{id}"), 0);
    EXPECT_EQ(match(r, "GET", "/user/42", &m), 200);
    EXPECT_EQ(m.n_params, 1);
    EXPECT_STR(m.names[0], "id");
    EXPECT_STR(m.values[0], "42");
    EXPECT_EQ(match(r, "GET", "/user/", &m), 404); /* a parameter is never empty */
    EXPECT_EQ(match(r, "GET", "/user", &m), 404);
    EXPECT_EQ(match(r, "GET", "/user/42/x", &m), 404);
    grace__router_free(r);
}

static void test_param_colon(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    EXPECT_EQ(add(r, "/user/:id/profile"), 0);
    EXPECT_EQ(match(r, "GET", "/user/alice/profile", &m), 200);
    EXPECT_EQ(m.n_params, 1);
    EXPECT_STR(m.names[0], "id");
    EXPECT_STR(m.values[0], "alice");
    EXPECT_EQ(match(r, "GET", "/user//profile", &m), 404);
    grace__router_free(r);
}

static void test_several_params(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    const char path[] = "/org/acme/repo/grace/issue/7";
    EXPECT_EQ(add(r, "/org/{org}/repo/:repo/issue/{n_1}"), 0);
    EXPECT_EQ(match(r, "GET", path, &m), 200);
    EXPECT_EQ(m.n_params, 3);
    EXPECT_STR(m.names[0], "org");
    EXPECT_STR(m.names[1], "repo");
    EXPECT_STR(m.names[2], "n_1");
    EXPECT_STR(m.values[0], "acme");
    EXPECT_STR(m.values[1], "grace");
    EXPECT_STR(m.values[2], "7");
    /* Values are views into the path given, not copies. */
    EXPECT_TRUE(m.values[0].ptr == path + 5);
    EXPECT_TRUE(m.values[2].ptr == path + sizeof path - 2);
    grace__router_free(r);
}

static void test_wildcard_named(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    EXPECT_EQ(add(r, "/static/*path"), 0);
    EXPECT_EQ(match(r, "GET", "/static/css/site.css", &m), 200);
    EXPECT_EQ(m.n_params, 1);
    EXPECT_STR(m.names[0], "path");
    EXPECT_STR(m.values[0], "css/site.css");
    EXPECT_EQ(match(r, "GET", "/static/a//b/", &m), 200);
    EXPECT_STR(m.values[0], "a//b/");
    EXPECT_EQ(match(r, "GET", "/statics/a", &m), 404);
    grace__router_free(r);
}

static void test_wildcard_bare(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    EXPECT_EQ(add(r, "/files/*"), 0);
    EXPECT_EQ(match(r, "GET", "/files/x/y", &m), 200);
    EXPECT_EQ(m.n_params, 1);
    EXPECT_STR(m.names[0], "any");
    EXPECT_STR(m.values[0], "x/y");
    grace__router_free(r);
}

static void test_wildcard_empty(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    EXPECT_EQ(add(r, "/static/*path"), 0);
    EXPECT_EQ(match(r, "GET", "/static/", &m), 200);
    EXPECT_STR(m.values[0], "");
    /* The wildcard may be empty with its slash too, as gf's "/{0,1}(.*)". */
    EXPECT_EQ(match(r, "GET", "/static", &m), 200);
    EXPECT_EQ(m.n_params, 1);
    EXPECT_STR(m.values[0], "");
    grace__router_free(r);
}

static void test_wildcard_root(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    EXPECT_EQ(add(r, "/*"), 0);
    EXPECT_EQ(add(r, "/api"), 0);
    EXPECT_EQ(match(r, "GET", "/", &m), 200);
    EXPECT_STR(sv(m.user), "/*");
    EXPECT_STR(m.values[0], "");
    EXPECT_EQ(match(r, "GET", "/x/y", &m), 200);
    EXPECT_STR(m.values[0], "x/y");
    EXPECT_STR(sv(winner(r, "GET", "/api")), "/api");
    EXPECT_STR(sv(winner(r, "GET", "/api/v1")), "/*");
    grace__router_free(r);
}

static void test_specificity_user(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    /* Added least specific first: the order of adding must not matter. */
    EXPECT_EQ(add(r, "/user/*"), 0);
    EXPECT_EQ(add(r, "/user/{id}"), 0);
    EXPECT_EQ(add(r, "/user/list"), 0);
    EXPECT_STR(sv(winner(r, "GET", "/user/list")), "/user/list");
    EXPECT_EQ(match(r, "GET", "/user/7", &m), 200);
    EXPECT_STR(sv(m.user), "/user/{id}");
    EXPECT_STR(param(&m, "id"), "7");
    EXPECT_EQ(match(r, "GET", "/user/7/x", &m), 200);
    EXPECT_STR(sv(m.user), "/user/*");
    EXPECT_STR(param(&m, "any"), "7/x");
    EXPECT_STR(sv(winner(r, "GET", "/user/")), "/user/*");
    EXPECT_STR(sv(winner(r, "GET", "/user")), "/user/*");
    grace__router_free(r);
}

static void test_specificity_first_difference(void)
{
    grace__router_t *r = grace__router_new();
    /* At the first differing segment a literal wins, whatever follows. */
    EXPECT_EQ(add(r, "/{a}/b/c"), 0);
    EXPECT_EQ(add(r, "/a/*"), 0);
    EXPECT_EQ(add(r, "/{x}/{y}"), 0);
    EXPECT_EQ(add(r, "/a/{y}"), 0);
    EXPECT_STR(sv(winner(r, "GET", "/a/b/c")), "/a/*");
    EXPECT_STR(sv(winner(r, "GET", "/z/b/c")), "/{a}/b/c");
    EXPECT_STR(sv(winner(r, "GET", "/a/b")), "/a/{y}");
    EXPECT_STR(sv(winner(r, "GET", "/z/b")), "/{x}/{y}");
    /* Parameter beats wildcard at the first difference. */
    EXPECT_EQ(add(r, "/p/{x}/q/*"), 0);
    EXPECT_EQ(add(r, "/p/*rest"), 0);
    EXPECT_STR(sv(winner(r, "GET", "/p/1/q/2")), "/p/{x}/q/*");
    EXPECT_STR(sv(winner(r, "GET", "/p/1/r/2")), "/p/*rest");
    grace__router_free(r);
}

static void test_exact_beats_empty_wildcard(void)
{
    grace__router_t *r = grace__router_new();
    EXPECT_EQ(add(r, "/static/*p"), 0);
    EXPECT_EQ(add(r, "/static"), 0);
    EXPECT_EQ(add(r, "/static/"), 0);
    EXPECT_STR(sv(winner(r, "GET", "/static")), "/static");
    EXPECT_STR(sv(winner(r, "GET", "/static/")), "/static/");
    EXPECT_STR(sv(winner(r, "GET", "/static/x")), "/static/*p");
    grace__router_free(r);
}

static void test_backtracking(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    /* The literal branch "/a/b" matches two segments, then fails: the walk
     * must come back and try the parameter branch. */
    EXPECT_EQ(add(r, "/a/b/c"), 0);
    EXPECT_EQ(add(r, "/{x}/b/d"), 0);
    EXPECT_EQ(match(r, "GET", "/a/b/d", &m), 200);
    EXPECT_STR(sv(m.user), "/{x}/b/d");
    EXPECT_EQ(m.n_params, 1);
    EXPECT_STR(param(&m, "x"), "a");
    EXPECT_EQ(match(r, "GET", "/a/b/c", &m), 200);
    EXPECT_EQ(m.n_params, 0);
    grace__router_free(r);
}

static void test_method_prefix(void)
{
    grace__router_t *r = grace__router_new();
    EXPECT_EQ(add(r, "POST:/user"), 0);
    EXPECT_EQ(add(r, "get:/user"), 0); /* method names fold to upper case */
    EXPECT_EQ(add(r, "Delete:/user"), 0);
    EXPECT_STR(sv(winner(r, "POST", "/user")), "POST:/user");
    EXPECT_STR(sv(winner(r, "GET", "/user")), "get:/user");
    EXPECT_STR(sv(winner(r, "DELETE", "/user")), "Delete:/user");
    EXPECT_EQ(add(r, "PUT:/x"), 0);
    EXPECT_EQ(add(r, "PATCH:/x"), 0);
    EXPECT_EQ(add(r, "OPTIONS:/x"), 0);
    EXPECT_EQ(add(r, "CONNECT:/x"), 0);
    EXPECT_EQ(add(r, "TRACE:/x"), 0);
    EXPECT_EQ(add(r, "HEAD:/x"), 0);
    EXPECT_STR(sv(winner(r, "TRACE", "/x")), "TRACE:/x");
    EXPECT_STR(sv(winner(r, "CONNECT", "/x")), "CONNECT:/x");
    EXPECT_STR(sv(winner(r, "HEAD", "/x")), "HEAD:/x");
    grace__router_free(r);
}

static void test_all_prefix(void)
{
    grace__router_t *r = grace__router_new();
    EXPECT_EQ(add(r, "ALL:/a"), 0);
    EXPECT_EQ(add(r, "/a"), GRACE_EEXIST); /* both any-method */
    EXPECT_EQ(add(r, "all:/b"), 0);
    EXPECT_STR(sv(winner(r, "PATCH", "/a")), "ALL:/a");
    EXPECT_STR(sv(winner(r, "BREW", "/b")), "all:/b"); /* even a method we do not know */
    grace__router_free(r);
}

static void test_explicit_beats_any(void)
{
    grace__router_t *r = grace__router_new();
    EXPECT_EQ(add(r, "/a"), 0);
    EXPECT_EQ(add(r, "GET:/a"), 0);
    EXPECT_STR(sv(winner(r, "GET", "/a")), "GET:/a");
    EXPECT_STR(sv(winner(r, "HEAD", "/a")), "GET:/a");
    EXPECT_STR(sv(winner(r, "POST", "/a")), "/a");
    /* ...but only among routes of the same shape: specificity comes first. */
    EXPECT_EQ(add(r, "GET:/b/*"), 0);
    EXPECT_EQ(add(r, "/b/{id}"), 0);
    EXPECT_STR(sv(winner(r, "GET", "/b/1")), "/b/{id}");
    grace__router_free(r);
}

static void test_head_via_get(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    EXPECT_EQ(add(r, "GET:/page"), 0);
    EXPECT_STR(sv(winner(r, "HEAD", "/page")), "GET:/page");
    EXPECT_EQ(add(r, "HEAD:/page"), 0); /* an explicit HEAD route takes over */
    EXPECT_STR(sv(winner(r, "HEAD", "/page")), "HEAD:/page");
    EXPECT_STR(sv(winner(r, "GET", "/page")), "GET:/page");
    /* GET does not answer for HEAD the other way round. */
    EXPECT_EQ(add(r, "HEAD:/only-head"), 0);
    EXPECT_EQ(match(r, "GET", "/only-head", &m), 405);
    EXPECT_STR(sv(m.allow), "HEAD");
    grace__router_free(r);
}

static void test_not_found(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    EXPECT_EQ(add(r, "GET:/a/{x}"), 0);
    EXPECT_EQ(add(r, "/b/*"), 0);
    EXPECT_EQ(match(r, "GET", "/c", &m), 404);
    EXPECT_TRUE(m.fn == NULL);
    EXPECT_EQ(m.n_params, 0);
    EXPECT_STR(sv(m.allow), "");
    EXPECT_EQ(match(r, "POST", "/a", &m), 404);
    EXPECT_EQ(match(r, "POST", "/a/x/y", &m), 404);
    grace__router_free(r);
}

static void test_method_not_allowed(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    EXPECT_EQ(add(r, "DELETE:/x"), 0);
    EXPECT_EQ(add(r, "POST:/x"), 0);
    EXPECT_EQ(add(r, "GET:/x"), 0);
    EXPECT_EQ(match(r, "PUT", "/x", &m), 405);
    EXPECT_TRUE(m.fn == NULL);
    EXPECT_STR(sv(m.allow), "GET, HEAD, POST, DELETE");
    EXPECT_EQ(match(r, "DELETE", "/x", &m), 200);
    EXPECT_STR(sv(m.allow), "");
    /* Methods are case-sensitive in requests (RFC 9110). */
    EXPECT_EQ(match(r, "get", "/x", &m), 405);
    EXPECT_EQ(match(r, "PROPFIND", "/x", &m), 405);
    EXPECT_STR(sv(m.allow), "GET, HEAD, POST, DELETE");
    grace__router_free(r);
}

static void test_allow_all_methods(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    static const char *const patterns[] = {
        "TRACE:/x", "CONNECT:/x", "OPTIONS:/x", "PATCH:/x", "DELETE:/x",
        "PUT:/x",   "POST:/x",    "HEAD:/x",    "GET:/x",
    };
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++)
        EXPECT_EQ(add(r, patterns[i]), 0);
    EXPECT_EQ(match(r, "BREW", "/x", &m), 405);
    EXPECT_STR(sv(m.allow), "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT, TRACE");
    grace__router_free(r);
}

static void test_allow_union_of_shapes(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    EXPECT_EQ(add(r, "PATCH:/x/*"), 0);
    EXPECT_EQ(add(r, "PUT:/x/{id}"), 0);
    EXPECT_EQ(add(r, "POST:/x/1"), 0);
    EXPECT_EQ(add(r, "GET:/y/{id}"), 0); /* path does not match: not in the list */
    EXPECT_EQ(match(r, "GET", "/x/1", &m), 405);
    EXPECT_STR(sv(m.allow), "POST, PUT, PATCH");
    EXPECT_EQ(match(r, "GET", "/x/2", &m), 405);
    EXPECT_STR(sv(m.allow), "PUT, PATCH");
    EXPECT_EQ(match(r, "GET", "/x/2/3", &m), 405);
    EXPECT_STR(sv(m.allow), "PATCH");
    EXPECT_STR(sv(winner(r, "PATCH", "/x/1")), "PATCH:/x/*");
    grace__router_free(r);
}

static void test_method_filtered_first(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    /* The most specific path refuses GET, so a less specific route that
     * takes GET answers instead of a 405. */
    EXPECT_EQ(add(r, "POST:/user/{id}"), 0);
    EXPECT_EQ(add(r, "/user/*"), 0);
    EXPECT_EQ(match(r, "GET", "/user/5", &m), 200);
    EXPECT_STR(sv(m.user), "/user/*");
    EXPECT_STR(param(&m, "any"), "5");
    EXPECT_EQ(m.n_params, 1); /* no leftover value from the refused route */
    EXPECT_EQ(match(r, "POST", "/user/5", &m), 200);
    EXPECT_STR(sv(m.user), "POST:/user/{id}");
    EXPECT_STR(param(&m, "id"), "5");
    /* With only explicit methods, the union is the answer. */
    EXPECT_EQ(add(r, "POST:/item/{id}"), 0);
    EXPECT_EQ(add(r, "GET:/item/*"), 0);
    EXPECT_STR(sv(winner(r, "HEAD", "/item/5")), "GET:/item/*");
    EXPECT_EQ(match(r, "DELETE", "/item/5", &m), 405);
    EXPECT_STR(sv(m.allow), "GET, HEAD, POST");
    grace__router_free(r);
}

static void test_duplicates(void)
{
    grace__router_t *r = grace__router_new();
    EXPECT_EQ(add(r, "/user/{id}"), 0);
    EXPECT_EQ(add(r, "/user/{id}"), GRACE_EEXIST);
    EXPECT_EQ(add(r, "/user/:name"), GRACE_EEXIST); /* names do not make a shape */
    EXPECT_EQ(add(r, "ALL:/user/{uid}"), GRACE_EEXIST);
    EXPECT_EQ(add(r, "GET:/user/{id}"), 0);
    EXPECT_EQ(add(r, "get:/user/:x"), GRACE_EEXIST);
    EXPECT_EQ(add(r, "POST:/user/{id}"), 0);
    EXPECT_EQ(add(r, "/files/*"), 0);
    EXPECT_EQ(add(r, "/files/*path"), GRACE_EEXIST);
    EXPECT_EQ(add(r, "/files/{x}"), 0);
    EXPECT_EQ(add(r, "/files/x"), 0);
    EXPECT_EQ(add(r, "/files/x/"), 0);
    EXPECT_EQ(add(r, "/files/x/"), GRACE_EEXIST);
    /* The router still works after refusals. */
    EXPECT_STR(sv(winner(r, "GET", "/user/1")), "GET:/user/{id}");
    EXPECT_STR(sv(winner(r, "PUT", "/user/1")), "/user/{id}");
    grace__router_free(r);
}

static void test_bad_patterns(void)
{
    static const char *const bad[] = {
        "",         "a",          "user/list", "{}",       "/{}",     "/{a",
        "/a}",      "/a/{x}/{x}", "/a/{x}/:x", "/{any}/*", "/*/b",    "/*x/",
        "/a/*/*",   "BOGUS:/a",   "GET:a",     "GET:",     ":/a",     "GET /a",
        "/a/{x}y",  "/a/x{y}",    "/a/{x-y}",  "/a/:",     "/a/:x.y", "/a/*x*",
        "/a/{ x }", "GETT:/a",    "GE:/a",     "GET:: /a", "ALL :/a", " /a",
    };
    grace__router_t *r = grace__router_new();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const int rc = add(r, bad[i]);
        if (rc != GRACE_EBADPATTERN)
            TEST_FAIL_("pattern \"%s\": %d, want GRACE_EBADPATTERN", bad[i], rc);
    }
    EXPECT_EQ(grace__router_add(r, NULL, handler, NULL), GRACE_EINVAL);
    EXPECT_EQ(grace__router_add(r, "/a", NULL, NULL), GRACE_EINVAL);
    EXPECT_EQ(grace__router_add(NULL, "/a", handler, NULL), GRACE_EINVAL);
    /* Refused patterns left nothing behind: every shape is still free. */
    grace__route_match_t m;
    EXPECT_EQ(match(r, "GET", "/a/1/1", &m), 404);
    EXPECT_EQ(add(r, "/a/{x}/{y}"), 0);
    EXPECT_EQ(add(r, "/a/*"), 0);
    grace__router_free(r);
}

static void test_literal_colon_and_star(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    /* ':' and '*' only mean something at the start of a segment. */
    EXPECT_EQ(add(r, "/v1/items:batch"), 0);
    EXPECT_EQ(add(r, "/a*b"), 0);
    EXPECT_EQ(match(r, "POST", "/v1/items:batch", &m), 200);
    EXPECT_EQ(m.n_params, 0);
    EXPECT_EQ(match(r, "GET", "/v1/items", &m), 404);
    EXPECT_STR(sv(winner(r, "GET", "/a*b")), "/a*b");
    EXPECT_EQ(match(r, "GET", "/ab", &m), 404);
    grace__router_free(r);
}

static void test_max_params(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    const char *const ok =
        "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}/{n}/{o}/*p"; /* 16 */
    const char *const too_many =
        "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}/{n}/{o}/{p}/{q}";
    EXPECT_EQ(add(r, too_many), GRACE_EBADPATTERN);
    EXPECT_EQ(add(r, ok), 0);
    EXPECT_EQ(match(r, "GET", "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17", &m), 200);
    EXPECT_EQ(m.n_params, GRACE__MAX_PARAMS);
    EXPECT_STR(param(&m, "a"), "1");
    EXPECT_STR(param(&m, "o"), "15");
    EXPECT_STR(param(&m, "p"), "16/17");
    grace__router_free(r);
}

static void test_decoded_values(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    EXPECT_EQ(add(r, "/file/{name}/*rest"), 0);
    EXPECT_EQ(add(r, "/caf\xc3\xa9/{x}"), 0);
    /* The path comes decoded: spaces, '%', '?', '#', UTF-8 are plain bytes. */
    EXPECT_EQ(match(r, "GET", "/file/a b%.txt?#/x y/\xe2\x82\xac", &m), 200);
    EXPECT_STR(param(&m, "name"), "a b%.txt?#");
    EXPECT_STR(param(&m, "rest"), "x y/\xe2\x82\xac");
    EXPECT_EQ(match(r, "GET", "/caf\xc3\xa9/\xc3\xbc", &m), 200);
    EXPECT_STR(param(&m, "x"), "\xc3\xbc");
    /* A decoded NUL byte is just a byte: the path is a view with a length. */
    const char nul_path[] = "/file/a\0b/c";
    EXPECT_EQ(grace__router_match(r, sv("GET"), (grace_str_t){nul_path, sizeof nul_path - 1}, &m),
              200);
    EXPECT_EQ(param(&m, "name").len, 3);
    EXPECT_TRUE(memcmp(param(&m, "name").ptr, "a\0b", 3) == 0);
    EXPECT_STR(param(&m, "rest"), "c");
    grace__router_free(r);
}

static void test_names_owned_by_router(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    char pattern[] = "GET:/user/{id}/*tail";
    EXPECT_EQ(grace__router_add(r, pattern, other_handler, NULL), 0);
    memset(pattern, 'x', sizeof pattern - 1); /* the router must have copied it */
    EXPECT_EQ(match(r, "GET", "/user/9/a/b", &m), 200);
    EXPECT_TRUE(m.fn == other_handler);
    EXPECT_TRUE(m.user == NULL);
    EXPECT_EQ(m.n_params, 2);
    EXPECT_STR(m.names[0], "id");
    EXPECT_STR(m.names[1], "tail");
    EXPECT_STR(m.values[0], "9");
    EXPECT_STR(m.values[1], "a/b");
    grace__router_free(r);
}

static void test_empty_segments(void)
{
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    EXPECT_EQ(add(r, "/a/{x}/b"), 0);
    EXPECT_EQ(add(r, "/c/*"), 0);
    EXPECT_EQ(match(r, "GET", "/a//b", &m), 404);
    EXPECT_EQ(match(r, "GET", "//a/x/b", &m), 404);
    EXPECT_EQ(match(r, "GET", "/a/x//b", &m), 404);
    EXPECT_EQ(match(r, "GET", "/c//x", &m), 200);
    EXPECT_STR(m.values[0], "/x");
    grace__router_free(r);
}

static void test_many_routes(void)
{
    /* Patterns must outlive the router (they are the tags): keep them here. */
    static char pats[200][3][40];
    grace__router_t *r = grace__router_new();
    grace__route_match_t m;
    for (int i = 0; i < 200; i++) {
        snprintf(pats[i][0], sizeof pats[i][0], "GET:/r%d/list", i);
        snprintf(pats[i][1], sizeof pats[i][1], "/r%d/item/{id}", i);
        snprintf(pats[i][2], sizeof pats[i][2], "POST:/r%d/*", i);
        for (int k = 0; k < 3; k++)
            EXPECT_EQ(add(r, pats[i][k]), 0);
    }
    for (int i = 199; i >= 0; i--) {
        char path[64], id[16];
        snprintf(path, sizeof path, "/r%d/list", i);
        EXPECT_STR(sv(winner(r, "GET", path)), pats[i][0]);
        EXPECT_STR(sv(winner(r, "POST", path)), pats[i][2]);
        EXPECT_EQ(match(r, "DELETE", path, &m), 405);
        EXPECT_STR(sv(m.allow), "GET, HEAD, POST");
        snprintf(id, sizeof id, "%d", i * 7);
        snprintf(path, sizeof path, "/r%d/item/%s", i, id);
        EXPECT_EQ(match(r, "PUT", path, &m), 200);
        EXPECT_STR(sv(m.user), pats[i][1]);
        EXPECT_STR(param(&m, "id"), id);
        snprintf(path, sizeof path, "/r%d/other/x", i);
        EXPECT_EQ(match(r, "POST", path, &m), 200);
        EXPECT_STR(param(&m, "any"), "other/x");
    }
    EXPECT_EQ(match(r, "GET", "/r200/list", &m), 404);
    EXPECT_EQ(match(r, "GET", "/r/list", &m), 404);
    grace__router_free(r);
}

TEST_MAIN(TEST(test_new_free), TEST(test_exact_paths), TEST(test_root), TEST(test_trailing_slash),
          TEST(test_param_braces), TEST(test_param_colon), TEST(test_several_params),
          TEST(test_wildcard_named), TEST(test_wildcard_bare), TEST(test_wildcard_empty),
          TEST(test_wildcard_root), TEST(test_specificity_user),
          TEST(test_specificity_first_difference), TEST(test_exact_beats_empty_wildcard),
          TEST(test_backtracking), TEST(test_method_prefix), TEST(test_all_prefix),
          TEST(test_explicit_beats_any), TEST(test_head_via_get), TEST(test_not_found),
          TEST(test_method_not_allowed), TEST(test_allow_all_methods),
          TEST(test_allow_union_of_shapes), TEST(test_method_filtered_first), TEST(test_duplicates),
          TEST(test_bad_patterns), TEST(test_literal_colon_and_star), TEST(test_max_params),
          TEST(test_decoded_values), TEST(test_names_owned_by_router), TEST(test_empty_segments),
          TEST(test_many_routes))
