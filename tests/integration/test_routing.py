"""Route patterns and middleware, against examples/routes.c:

  /user/list -> "list"          /user/{id} -> "user <id>"
  /user/:id/profile -> "profile <id>"          /files/*path -> "files <path>"
  POST:/form -> "posted <body>"                GET:/only-get -> "get"
  /private/data -> "data" behind a "/private" middleware (403 without
  "X-Token: secret"); a global middleware adds "X-Mw: 1" to every answer."""

import pytest

from conftest import RawConn, SharedServer, http, simple_get


@pytest.fixture(scope="module")
def shared_routes(module_servers):
    return SharedServer(module_servers, "routes", "--port", "0")


@pytest.fixture
def routes(shared_routes):
    yield shared_routes.get()
    shared_routes.check_alive()


def get(srv, path, method="GET", **kw):
    return http(method, srv.url(path), **kw)


@pytest.mark.parametrize(
    "path,body",
    [
        ("/user/list", "list\n"),  # exact beats {id}
        ("/user/42", "user 42\n"),
        ("/user/list2", "user list2\n"),
        ("/user/42/profile", "profile 42\n"),
        ("/user/list/profile", "profile list\n"),
        ("/user/a%20b", "user a b\n"),  # parameters are percent-decoded
        ("/user/%E5%93%88", "user 哈\n"),
        ("/files/a.txt", "files a.txt\n"),
        ("/files/a/b/c.txt", "files a/b/c.txt\n"),  # the wildcard takes slashes
        ("/files/dir%2Fx%20y", "files dir/x y\n"),
    ],
)
def test_route_answers(routes, path, body):
    r = get(routes, path)
    assert r.status_code == 200, (path, r.status_code, r.content)
    assert r.content.decode("utf-8") == body
    assert r.headers.get("X-Mw") == "1"


def test_wildcard_may_be_empty(routes):
    r = get(routes, "/files/")
    assert r.status_code == 200
    assert r.content == b"files \n"


def test_query_string_is_not_part_of_the_route(routes):
    r = get(routes, "/user/7?tab=x")
    assert r.status_code == 200 and r.content == b"user 7\n"


@pytest.mark.parametrize("path", ["/nope", "/user", "/user/1/2", "/user/1/profile/x", "/form/x"])
def test_unrouted_is_404(routes, path):
    r = get(routes, path)
    assert r.status_code == 404, (path, r.content)
    assert r.headers.get("X-Mw") == "1"  # global middleware runs for 404 too


def test_post_only_route(routes):
    r = get(routes, "/form", method="POST", data=b"hello there")
    assert r.status_code == 200
    assert r.content == b"posted hello there\n"


def test_get_on_post_route_is_405_with_allow(routes):
    r = get(routes, "/form")
    assert r.status_code == 405
    assert r.headers.get("Allow") == "POST"
    assert r.headers.get("X-Mw") == "1"


def test_post_on_get_route_is_405_with_allow(routes):
    r = get(routes, "/only-get", method="POST", data=b"x")
    assert r.status_code == 405
    allow = [m.strip() for m in r.headers.get("Allow", "").split(",")]
    assert sorted(allow) == ["GET", "HEAD"], r.headers.get("Allow")


def test_get_route_answers_get(routes):
    r = get(routes, "/only-get")
    assert r.status_code == 200 and r.content == b"get\n"


def test_head_on_get_route(routes):
    with RawConn(routes.port) as c:
        c.send(b"HEAD /only-get HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response(head=True)
        assert r.status == 200, r
        assert r.header("Content-Length") == "4"
        # No body bytes: the next answer follows the HEAD answer directly.
        c.send(simple_get("/user/list"))
        nxt = c.read_response()
        assert nxt.status == 200 and nxt.body == b"list\n", nxt


def test_private_needs_token(routes):
    r = get(routes, "/private/data")
    assert r.status_code == 403
    assert r.content == b"forbidden\n"
    assert r.headers.get("X-Mw") == "1"
    r = get(routes, "/private/data", headers={"X-Token": "wrong"})
    assert r.status_code == 403


def test_private_with_token(routes):
    r = get(routes, "/private/data", headers={"X-Token": "secret"})
    assert r.status_code == 200
    assert r.content == b"data\n"
    assert r.headers.get("X-Mw") == "1"


def test_private_middleware_covers_unrouted_paths_under_prefix(routes):
    # Middleware runs for unrouted requests too: no token, 403 before 404.
    assert get(routes, "/private/other").status_code == 403
    assert get(routes, "/private/other", headers={"X-Token": "secret"}).status_code == 404


def test_prefix_is_a_path_prefix_not_a_string_prefix(routes):
    # "/privateer" is not under "/private": no 403, just 404.
    r = get(routes, "/privateer")
    assert r.status_code == 404
