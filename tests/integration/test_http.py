"""HTTP/1.1 on the wire, against examples/echo.c (which answers every request
with a JSON picture of what grace parsed): persistent connections,
pipelining, bodies (Content-Length and chunked), Expect: 100-continue,
limits (413, 414, 431), malformed input (400, 501, 505: answered with
Connection: close, then closed) and timeouts (idle, slow clients)."""

import base64
import json
import select
import socket
import time

import pytest

from conftest import HOST, RawConn, SharedServer, http, simple_get

MAX_BODY = 1024
MAX_HEADER_BYTES = 4096


@pytest.fixture(scope="module")
def shared_echo(module_servers):
    return SharedServer(
        module_servers,
        "echo",
        "--port",
        "0",
        "--max-body",
        str(MAX_BODY),
        "--max-header-bytes",
        str(MAX_HEADER_BYTES),
    )


@pytest.fixture
def echo(shared_echo):
    """One echo server with small limits, shared by the tests below that do
    not need their own timeouts (restarted if a test made it die)."""
    yield shared_echo.get()
    shared_echo.check_alive()


def parsed(resp):
    assert resp.status == 200, resp
    assert (resp.header("Content-Type") or "").startswith("application/json"), resp
    return json.loads(resp.body.decode("utf-8"))


def assert_still_serving(srv):
    r = http("GET", srv.url("/still-serving?ok=1"))
    assert r.status_code == 200
    assert r.json()["target"] == "/still-serving?ok=1"


# ---- what a handler sees ----------------------------------------------------


def test_echo_shows_the_request_exactly(echo):
    with RawConn(echo.port) as c:
        c.send(
            b"GET /a%20b/c?x=1&y=%41+z HTTP/1.1\r\n"
            b"Host: h.example\r\n"
            b"X-B: 1\r\n"
            b"x-a:   two words  \r\n"
            b"X-B: again\r\n"
            b"\r\n"
        )
        j = parsed(c.read_response())
    assert j["method"] == "GET"
    assert j["target"] == "/a%20b/c?x=1&y=%41+z"
    assert j["path"] == "/a b/c"
    assert j["query"] == "x=1&y=%41+z"
    assert j["headers"] == [
        ["Host", "h.example"],
        ["X-B", "1"],
        ["x-a", "two words"],
        ["X-B", "again"],
    ]
    assert j["body"] == "" and j["body_b64"] == ""


def test_root_and_no_query(echo):
    r = http("GET", echo.url("/"))
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    j = r.json()
    assert j["path"] == "/" and j["target"] == "/" and j["query"] == ""


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_every_method_reaches_the_handler(echo, method):
    r = http(method, echo.url("/m"), data=b"x" if method in ("POST", "PUT", "PATCH") else None)
    assert r.status_code == 200
    assert r.json()["method"] == method


def test_content_length_body_is_byte_exact(echo):
    body = bytes(range(256))
    with RawConn(echo.port) as c:
        c.send(
            b"POST /bin HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        j = parsed(c.read_response())
    assert base64.b64decode(j["body_b64"]) == body
    assert "\ufffd" in j["body"]  # invalid UTF-8 shown as U+FFFD


def test_absolute_form_target_overrides_host(echo):
    """RFC 9112 3.2.2: a request whose target is in absolute form is for the
    target's authority; the Host header is ignored (but still listed)."""
    with RawConn(echo.port) as c:
        c.send(b"GET http://a.example:81/x?y=1 HTTP/1.1\r\nHost: b.example\r\n\r\n")
        j = parsed(c.read_response())
    assert j["host"] == "a.example:81"
    assert (j["path"], j["query"]) == ("/x", "y=1")
    assert ["Host", "b.example"] in j["headers"]
    with RawConn(echo.port) as c:
        c.send(b"GET /x HTTP/1.1\r\nHost: b.example\r\n\r\n")
        assert parsed(c.read_response())["host"] == "b.example"


def test_obs_text_in_header_values_comes_back_byte_exact(echo):
    """Bytes 0x80-0xFF in a header value (obs-text, RFC 9110 5.5) are shown
    by echo as the same code points (Latin-1): the exact bytes come back."""
    value = b"caf\xe9 \xc3\xa9 \xff"
    with RawConn(echo.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Obs: " + value + b"\r\n\r\n")
        j = parsed(c.read_response())
    got = dict(j["headers"])["X-Obs"]
    assert got.encode("latin-1") == value


def test_body_sent_in_pieces(echo):
    with RawConn(echo.port) as c:
        c.send(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-")
        c.send(b"Length: 11\r\n\r\nhello")
        c.send(b" world")
        j = parsed(c.read_response())
    assert j["body"] == "hello world"


@pytest.mark.parametrize(
    "pieces",
    [
        [b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", b"hello world"],
        [b"POST /p HTTP/1.1\r\nHost: x\r\nCont", b"ent-Length: 11\r\n\r\nhello", b" world"],
    ],
    ids=["head-then-body", "split-head-then-body"],
)
def test_new_connection_whose_request_comes_in_pauses(echo, pieces):
    """The first piece reaches the server alone (the pause is longer than
    the server takes to read it), so the rest must be waited for: a server
    that read the first piece on accept and then stopped listening (the
    io_uring backend did) never answers."""
    with RawConn(echo.port) as c:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(0.2)
            c.send(piece)
        j = parsed(c.read_response())
    assert j["body"] == "hello world"


def test_body_at_the_limit_is_accepted(echo):
    body = b"b" * MAX_BODY
    r = http("POST", echo.url("/limit"), data=body)
    assert r.status_code == 200
    assert base64.b64decode(r.json()["body_b64"]) == body


def test_chunked_body_with_extensions_and_trailer(echo):
    with RawConn(echo.port) as c:
        c.send(
            b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;name=value\r\nhello\r\n"
            b"6;a=1;b=\"q\"\r\n w\x00\xffld\r\n"
            b"A\r\n0123456789\r\n"
            b"0\r\nX-Trailer: t\r\nX-More: u\r\n\r\n"
        )
        j = parsed(c.read_response())
        assert base64.b64decode(j["body_b64"]) == b"hello w\x00\xffld0123456789"
        # The trailer was consumed: the connection goes on with the next request.
        c.send(simple_get("/after-chunked"))
        assert parsed(c.read_response())["target"] == "/after-chunked"


# ---- persistent connections and pipelining ------------------------------------


def test_keep_alive_two_requests_one_connection(echo):
    with RawConn(echo.port) as c:
        c.send(simple_get("/first"))
        r1 = c.read_response()
        assert not r1.closes()
        c.send(simple_get("/second"))
        r2 = c.read_response()
    assert parsed(r1)["target"] == "/first"
    assert parsed(r2)["target"] == "/second"


def test_connection_idle_long_enough_to_be_trimmed_still_serves(echo):
    # After a second between requests the server frees the connection's
    # buffers (grace__conn_trim); the next request must not notice. The wait
    # sets up that state; nothing is asserted about time.
    with RawConn(echo.port) as c:
        c.send(b"POST /a HTTP/1.1\r\nHost: x\r\nX-One: 1\r\nContent-Length: 3\r\n\r\nabc")
        r1 = c.read_response()
        time.sleep(1.6)
        c.send(b"POST /b HTTP/1.1\r\nHost: x\r\nX-Two: 2\r\nContent-Length: 4\r\n\r\nwxyz")
        r2 = c.read_response()
        time.sleep(1.6)
        c.send(simple_get("/c"))
        r3 = c.read_response()
    assert (parsed(r1)["target"], parsed(r1)["body"]) == ("/a", "abc")
    j2 = parsed(r2)
    assert (j2["target"], j2["body"]) == ("/b", "wxyz")
    assert ["X-Two", "2"] in j2["headers"] and ["X-One", "1"] not in j2["headers"]
    assert parsed(r3)["target"] == "/c"


def test_pipelined_requests_answered_in_order(echo):
    with RawConn(echo.port) as c:
        c.send(
            simple_get("/p1")
            + b"POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            + b"POST /p3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"2\r\nde\r\n0\r\n\r\n"
            + simple_get("/p4")
        )
        got = [parsed(c.read_response()) for _ in range(4)]
    assert [j["target"] for j in got] == ["/p1", "/p2", "/p3", "/p4"]
    assert [j["body"] for j in got] == ["", "abc", "de", ""]


def test_http10_closes_after_response(echo):
    with RawConn(echo.port) as c:
        c.send(b"GET /old HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert parsed(r)["target"] == "/old"
        assert (r.header("Connection") or "").lower() != "keep-alive"
        c.wait_closed()


def test_http10_keep_alive_stays_open(echo):
    with RawConn(echo.port) as c:
        c.send(b"GET /ka1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert parsed(r)["target"] == "/ka1"
        assert (r.header("Connection") or "").lower() == "keep-alive", r
        assert r.header("Content-Length") is not None
        c.send(b"GET /ka2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert parsed(c.read_response())["target"] == "/ka2"


def test_connection_close_is_honoured(echo):
    with RawConn(echo.port) as c:
        c.send(simple_get("/bye", extra="Connection: close\r\n"))
        r = c.read_response()
        assert parsed(r)["target"] == "/bye"
        assert r.closes()
        c.wait_closed()


def test_expect_100_continue(echo):
    with RawConn(echo.port) as c:
        c.send(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = c.read_response()
        assert interim.status == 100, interim
        assert interim.raw_head.startswith(b"HTTP/1.1 100")
        c.send(b"hello")
        assert parsed(c.read_response())["body"] == "hello"


def test_expect_100_continue_too_big_gets_413_without_100(echo):
    with RawConn(echo.port) as c:
        c.send(
            b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
            % (MAX_BODY + 1)
        )
        r = c.read_response()
        assert r.status == 413, r
        c.wait_closed()


# ---- limits --------------------------------------------------------------------


def expect_error(srv, request, status, timeout=10):
    """Send request on a new connection; the answer must be status with
    Connection: close, then the server closes; and it goes on serving."""
    with RawConn(srv.port) as c:
        c.send(request)
        r = c.read_response(timeout=timeout)
        assert r.status == status, f"wanted {status}, got {r!r}"
        assert r.closes(), f"no 'Connection: close' on {r!r}"
        c.wait_closed()
    assert_still_serving(srv)


def test_413_content_length_answered_without_reading_body(echo):
    # The body is never sent: the server must answer from the headers alone.
    expect_error(
        echo,
        b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
        413,
    )


def test_413_chunked_too_big(echo):
    # Only the first 1100 bytes of a 2048-byte chunk are sent: past the
    # 1024-byte limit, the server must not wait for the rest.
    expect_error(
        echo,
        b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n"
        + b"a" * (MAX_BODY + 76),
        413,
    )


def test_413_chunked_many_small_chunks(echo):
    chunks = b"".join(b"100\r\n" + b"c" * 256 + b"\r\n" for _ in range(5))  # 1280 bytes
    expect_error(
        echo,
        b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks,
        413,
    )


def test_431_headers_too_large(echo):
    pad = b"".join(b"X-Pad-%02d: %s\r\n" % (i, b"a" * 180) for i in range(23))
    assert MAX_HEADER_BYTES < len(pad) < MAX_HEADER_BYTES + 400
    expect_error(echo, b"GET / HTTP/1.1\r\nHost: x\r\n" + pad + b"\r\n", 431)


def test_431_too_many_headers(echo):
    # 150 small fields (default limit 100), well under the byte limit.
    many = b"".join(b"X-H%d: 1\r\n" % i for i in range(150))
    assert len(many) < MAX_HEADER_BYTES - 200
    expect_error(echo, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", 431)


def test_414_request_line_too_long(echo):
    target = b"/" + b"u" * (MAX_HEADER_BYTES + 100)
    expect_error(echo, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414)


# ---- malformed requests ---------------------------------------------------------

MALFORMED = [
    (
        "content_length_and_transfer_encoding",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
        400,
    ),
    (
        "two_different_content_lengths",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    ),
    ("bad_content_length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello", 400),
    ("negative_content_length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    (
        "bad_chunk_size",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    ("obs_fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n", 400),
    ("bare_lf", b"GET / HTTP/1.1\nHost: x\n\n", 400),
    ("nul_in_header", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    ("missing_host_http11", b"GET / HTTP/1.1\r\nX-A: a\r\n\r\n", 400),
    ("two_hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("space_before_colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("double_space_in_request_line", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("garbage_request_line", b"HELLO\r\n\r\n", 400),
    (
        "transfer_encoding_gzip",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        400,
    ),
    ("http_2_0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
]


@pytest.mark.parametrize(
    "request_bytes,status", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_request(echo, request_bytes, status):
    expect_error(echo, request_bytes, status)


def test_malformed_after_good_request_on_same_connection(echo):
    with RawConn(echo.port) as c:
        c.send(simple_get("/good"))
        assert parsed(c.read_response())["target"] == "/good"
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n")
        r = c.read_response()
        assert r.status == 400 and r.closes(), r
        c.wait_closed()
    assert_still_serving(echo)


# ---- timeouts ---------------------------------------------------------------------


def test_idle_keep_alive_connection_is_closed(servers):
    srv = servers.start("echo", "--port", "0", "--idle-timeout-ms", "1000")
    with RawConn(srv.port) as c:
        c.send(simple_get("/idle"))
        r = c.read_response()
        assert parsed(r)["target"] == "/idle" and not r.closes()
        extra = c.wait_closed(timeout=10)
        assert extra == b"", f"sent {extra!r} on an idle connection"
    assert_still_serving(srv)


def test_connection_without_request_is_closed(servers):
    srv = servers.start(
        "echo", "--port", "0", "--idle-timeout-ms", "1000", "--read-timeout-ms", "1000"
    )
    with RawConn(srv.port) as c:
        data = c.wait_closed(timeout=10)
        # Nothing was asked, so nothing is answered: a plain close.
        assert data == b"", data


def test_slow_request_is_cut_while_others_are_served(servers):
    srv = servers.start("echo", "--port", "0", "--read-timeout-ms", "1000")
    with RawConn(srv.port) as slow:
        slow.send(b"GET /slow HTTP/1.1\r\n")
        # The half-sent request blocks nothing.
        assert_still_serving(srv)
        data = slow.wait_closed(timeout=10)
        assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), data
    assert_still_serving(srv)


def test_trickling_clients_are_cut_and_do_not_block(servers):
    """20 slowloris clients: each sends one byte of a header every 200 ms,
    never finishing the request. The read timeout covers the whole request,
    so each is closed although it keeps sending; meanwhile others are served."""
    srv = servers.start("echo", "--port", "0", "--read-timeout-ms", "1000")
    socks = []
    try:
        for _ in range(20):
            s = socket.create_connection((HOST, srv.port), timeout=5)
            s.sendall(b"GET /trickle HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        assert_still_serving(srv)

        received = {s: b"" for s in socks}
        open_socks = set(socks)
        deadline = time.monotonic() + 15
        while open_socks and time.monotonic() < deadline:
            for s in list(open_socks):
                try:
                    s.send(b"a")
                except OSError:  # EPIPE / ECONNRESET: the server closed it
                    open_socks.discard(s)
            readable, _, _ = select.select(list(open_socks), [], [], 0.2)
            for s in readable:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if data:
                    received[s] += data
                else:
                    open_socks.discard(s)
        assert not open_socks, f"{len(open_socks)} of 20 trickling connections open after 15 s"
        for data in received.values():
            # Each got its 408 (then a FIN; the server drains what it still
            # sends, so no reset destroys the answer).
            assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), data
        assert_still_serving(srv)
    finally:
        for s in socks:
            s.close()
