"""What a handler can do with a response, as a client sees it, against the
response routes of examples/routes.c:

  /stream          "part 1\\n", flush, "part 2\\n", flush, "part 3\\n"
  /stream-len      Content-Length: 12; "hello ", flush, "world\\n"
  /json            201 {"ok":true}
  /json-string?s=  s as a JSON string literal
  /query?a=&b=     "a=<a>|b=<b>|missing=<len of an absent parameter>"
  /status/{code}   that status, body "x" (none for 204/304)
  /fail            handler returns -1 having written nothing
  /headers         X-One, two Set-Cookie, X-Rep set twice, a CRLF value refused
  /close           Connection: close
  /client          "<client ip> <http minor>"

Framing is checked byte-exactly with raw sockets, and where it matters by
sending a second request on the same connection: if a response had one byte
too many or too few, the second answer would not parse."""

import email.utils
import json
import re
import time

import pytest

from conftest import RawConn, SharedServer, http, simple_get

STREAM_BODY = b"part 1\npart 2\npart 3\n"

IMF_FIXDATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d{2}:\d{2}:\d{2} GMT$"
)


@pytest.fixture(scope="module")
def shared_routes(module_servers):
    return SharedServer(module_servers, "routes", "--port", "0")


@pytest.fixture
def routes(shared_routes):
    yield shared_routes.get()
    shared_routes.check_alive()


def get(srv, path, method="GET", **kw):
    return http(method, srv.url(path), **kw)


def read_until(conn, marker, timeout=10.0):
    """Read from a RawConn until marker is in its buffer; returns (and
    consumes) everything up to and including the marker."""
    deadline = time.monotonic() + timeout
    while marker not in conn.buf:
        if not conn._fill(deadline):
            raise AssertionError(f"connection closed before {marker!r}; got {conn.buf!r}")
    i = conn.buf.index(marker) + len(marker)
    data, conn.buf = conn.buf[:i], conn.buf[i:]
    return data


def parse_head(raw_head):
    """Status line and [(name, value)] of a raw head (without the blank line)."""
    lines = raw_head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        assert sep, f"bad header line {line!r}"
        headers.append((name.lower(), value.strip()))
    return lines[0], headers


def decode_chunks(data):
    """Strictly decode a complete chunked body (no trailers expected); returns
    the list of chunks and whatever follows the terminating 0 chunk."""
    chunks = []
    while True:
        line, sep, data = data.partition(b"\r\n")
        assert sep, f"chunk size line not terminated: {line!r}"
        assert re.fullmatch(rb"[0-9a-fA-F]+", line), f"bad chunk size line {line!r}"
        size = int(line, 16)
        if size == 0:
            assert data[:2] == b"\r\n", f"no empty line after the last chunk: {data[:20]!r}"
            return chunks, data[2:]
        assert data[size : size + 2] == b"\r\n", f"chunk of {size} not followed by CRLF: {data!r}"
        chunks.append(data[:size])
        data = data[size + 2 :]


def assert_next_request_works(conn, minor=1):
    """The connection is still in sync: a second request gets its own answer."""
    if minor == 1:
        conn.send(simple_get("/client"))
    else:
        conn.send("GET /client HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    r = conn.read_response()
    assert r.status == 200, r
    assert r.body == f"127.0.0.1 {minor}".encode(), r


# ---- Streaming --------------------------------------------------------------


def test_stream_http11_is_chunked_and_keeps_the_connection(routes):
    with RawConn(routes.port) as c:
        c.send(simple_get("/stream"))
        raw_head = read_until(c, b"\r\n\r\n")[:-4]
        status, headers = parse_head(raw_head)
        assert status == "HTTP/1.1 200 OK", raw_head
        names = [n for n, _ in headers]
        assert ("transfer-encoding", "chunked") in headers, raw_head
        assert "content-length" not in names, raw_head
        assert names.count("transfer-encoding") == 1, raw_head
        body = read_until(c, b"0\r\n\r\n")
        assert body.endswith(b"\r\n0\r\n\r\n"), body
        chunks, rest = decode_chunks(body)
        assert rest == b""
        assert b"".join(chunks) == STREAM_BODY, chunks
        # Each flush sent what was written since: more than one chunk.
        assert len(chunks) >= 2, chunks
        assert all(chunks), f"empty chunk before the end: {chunks!r}"
        assert_next_request_works(c)


def test_stream_via_requests(routes):
    r = get(routes, "/stream")
    assert r.status_code == 200
    assert r.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in r.headers
    assert r.content == STREAM_BODY


@pytest.mark.parametrize("extra", ["", "Connection: keep-alive\r\n"])
def test_stream_http10_is_close_delimited(routes, extra):
    """HTTP/1.0 has no chunked coding: the body ends where the connection
    does, so the server must close it even if keep-alive was asked for."""
    with RawConn(routes.port) as c:
        c.send(f"GET /stream HTTP/1.0\r\n{extra}\r\n")
        r = c.read_response()  # no length, no chunked: reads until close
        assert r.status == 200, r
        assert r.header("Transfer-Encoding") is None, r
        assert r.header("Content-Length") is None, r
        assert r.body == STREAM_BODY, r
        assert c.eof, "body not ended by the server closing the connection"
        assert r.header("Connection") is None or r.closes(), r


def test_stream_with_content_length_is_not_chunked(routes):
    with RawConn(routes.port) as c:
        c.send(simple_get("/stream-len"))
        r = c.read_response()
        assert r.status == 200, r
        assert r.header_all("Content-Length") == ["12"], r
        assert r.header("Transfer-Encoding") is None, r
        assert r.body == b"hello world\n"
        assert_next_request_works(c)


def test_stream_with_content_length_via_requests(routes):
    r = get(routes, "/stream-len")
    assert r.status_code == 200
    assert r.headers.get("Content-Length") == "12"
    assert "Transfer-Encoding" not in r.headers
    assert r.content == b"hello world\n"


def test_stream_with_content_length_http10_keep_alive(routes):
    with RawConn(routes.port) as c:
        c.send("GET /stream-len HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello world\n", r
        assert r.header("Content-Length") == "12", r
        if not r.closes():
            assert_next_request_works(c, minor=0)


@pytest.mark.parametrize("path", ["/stream", "/stream-len", "/json", "/status/418", "/client"])
def test_head_has_no_body(routes, path):
    """HEAD gets the head only; a second request on the connection proves
    no body bytes followed."""
    with RawConn(routes.port) as c:
        c.send(f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response(head=True)
        assert r.status in (200, 201, 418), r
        assert_next_request_works(c)


def test_pipelined_requests_around_a_stream(routes):
    """A streaming answer between two pipelined ones keeps its place."""
    with RawConn(routes.port) as c:
        c.send(simple_get("/query?a=1") + simple_get("/stream") + simple_get("/query?a=3"))
        bodies = [c.read_response().body for _ in range(3)]
        assert bodies == [b"a=1|b=|missing=0", STREAM_BODY, b"a=3|b=|missing=0"]


# ---- JSON -------------------------------------------------------------------


def test_json(routes):
    r = get(routes, "/json")
    assert r.status_code == 201
    assert r.headers.get("Content-Type") == "application/json"
    assert r.content == b'{"ok":true}'
    assert r.headers.get("Content-Length") == "11"
    assert r.json() == {"ok": True}


@pytest.mark.parametrize(
    "query,expected",
    [
        ("s=plain", "plain"),
        ("", ""),  # absent: an empty string
        ("s=say+%22hi%22", 'say "hi"'),
        ("s=back%5Cslash%5C", "back\\slash\\"),
        ("s=%01%1F%7F", "\x01\x1f\x7f"),
        ("s=%00nul", "\x00nul"),
        ("s=line%0Anext%0D%0Atab%09", "line\nnext\r\ntab\t"),
        ("s=%E4%BD%A0%E5%A5%BD%F0%9F%98%80", "你好😀"),
        ("s=%FF", "\ufffd"),
        ("s=a%FFb%FEc", "a\ufffdb\ufffdc"),
        ("s=%C3%28", "\ufffd("),  # lead byte without its continuation
        ("s=%80", "\ufffd"),  # lone continuation byte
        ("s=%ED%A0%80", "\ufffd\ufffd\ufffd"),  # a UTF-16 surrogate
        ("s=%F4%90%80%80", "\ufffd\ufffd\ufffd\ufffd"),  # past U+10FFFF
    ],
)
def test_json_string(routes, query, expected):
    r = get(routes, "/json-string?" + query)
    assert r.status_code == 200, r.content
    assert r.headers.get("Content-Type") == "application/json"
    text = r.content.decode("utf-8")  # strict: the output must be valid UTF-8
    assert json.loads(text) == expected, text  # strict: no raw control characters


@pytest.mark.parametrize(
    "query",
    ["s=%C0%AF", "s=%E0%80%AF", "s=%E4%BDx", "s=%F0%9F%98x"],  # overlong, truncated
)
def test_json_string_invalid_utf8_becomes_replacement(routes, query):
    """How many U+FFFD an invalid sequence becomes is not specified; that it
    becomes only U+FFFD (and the valid rest stays) is."""
    r = get(routes, "/json-string?" + query)
    assert r.status_code == 200
    s = json.loads(r.content.decode("utf-8"))
    tail = "x" if query.endswith("x") else ""
    assert re.fullmatch("\ufffd+" + tail, s), repr(s)


# ---- Query parameters ---------------------------------------------------------


@pytest.mark.parametrize(
    "query,expected",
    [
        ("a=x+y%21&b=%E4%BD%A0", "a=x y!|b=你|missing=0"),
        ("b=2&a=1", "a=1|b=2|missing=0"),
        ("a=first&a=second", "a=first|b=|missing=0"),  # the first occurrence wins
        ("a=%2B%26%3D&b=", "a=+&=|b=|missing=0"),  # encoded separators are data
        ("a=%41%62", "a=Ab|b=|missing=0"),
        ("aa=no&a=yes", "a=yes|b=|missing=0"),  # names match exactly
        ("a=%00x&b=y%00", "a=\x00x|b=y\x00|missing=0"),  # a decoded NUL is data
        ("a&b=", "a=|b=|missing=0"),  # present without a value
    ],
)
def test_query(routes, query, expected):
    r = get(routes, "/query?" + query)
    assert r.status_code == 200
    assert r.content.decode("utf-8") == expected


# ---- Status codes -------------------------------------------------------------


@pytest.mark.parametrize("code,reason", [(204, "No Content"), (304, "Not Modified")])
def test_status_without_body(routes, code, reason):
    with RawConn(routes.port) as c:
        c.send(simple_get(f"/status/{code}"))
        raw_head = read_until(c, b"\r\n\r\n")[:-4]
        status, headers = parse_head(raw_head)
        assert status == f"HTTP/1.1 {code} {reason}", raw_head
        names = [n for n, _ in headers]
        assert "content-length" not in names, raw_head
        assert "transfer-encoding" not in names, raw_head
        # Had the "x" been sent, it would prefix the next status line.
        assert_next_request_works(c)


def test_status_418(routes):
    with RawConn(routes.port) as c:
        c.send(simple_get("/status/418"))
        r = c.read_response()
        assert r.status == 418
        assert r.reason == "I'm a teapot"
        assert r.body == b"x"
        assert r.header("Content-Length") == "1"


def test_status_418_via_requests(routes):
    r = get(routes, "/status/418")
    assert r.status_code == 418 and r.reason == "I'm a teapot" and r.content == b"x"


@pytest.mark.parametrize("code", [100, 101])
def test_informational_status_is_never_the_final_answer(routes, code):
    with RawConn(routes.port) as c:
        c.send(simple_get(f"/status/{code}"))
        r = c.read_response()
        assert r.status >= 200, r


def test_205_has_no_content_but_is_framed(routes):
    with RawConn(routes.port) as c:
        c.send(simple_get("/status/205") + simple_get("/status/418"))
        r = c.read_response()
        assert r.status == 205 and r.body == b"" and r.header("Content-Length") == "0", r
        r2 = c.read_response()
        assert r2.status == 418, r2


def test_failing_handler_is_500(routes):
    r = get(routes, "/fail")
    assert r.status_code == 500
    assert r.reason == "Internal Server Error"


# ---- Headers --------------------------------------------------------------------


def test_headers_set_add_replace_and_injection(routes):
    with RawConn(routes.port) as c:
        c.send(simple_get("/headers"))
        r = c.read_response()
    assert r.status == 200, r
    assert r.header_all("Set-Cookie") == ["a=1", "b=2"], r.headers
    assert r.header_all("X-Rep") == ["new"], r.headers
    assert r.header_all("X-One") == ["1"], r.headers
    assert r.body == b"einval=1"
    assert r.header("Injected") is None, r.headers
    assert r.header("X-Bad") is None, r.headers
    assert b"Injected" not in r.raw_head, r.raw_head


def test_connection_close_from_handler(routes):
    with RawConn(routes.port) as c:
        c.send(simple_get("/close"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"bye", r
        assert r.closes(), r.headers
        assert c.wait_closed() == b"", "data after a Connection: close answer"


def test_connection_close_via_requests(routes):
    r = get(routes, "/close")
    assert r.headers.get("Connection") == "close"


@pytest.mark.parametrize(
    "request_bytes,head",
    [
        (simple_get("/client"), False),  # 200 buffered
        (simple_get("/nope"), False),  # 404
        (simple_get("/fail"), False),  # 500
        (simple_get("/stream"), False),  # streamed head
        (simple_get("/status/204"), False),
        (b"HEAD /json HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET /client HTTP/1.0\r\n\r\n", False),
    ],
)
def test_date_and_server_headers(routes, request_bytes, head):
    with RawConn(routes.port) as c:
        c.send(request_bytes)
        r = c.read_response(head=head)
    dates = r.header_all("Date")
    assert len(dates) == 1, r.headers
    assert IMF_FIXDATE.match(dates[0]), dates[0]
    # A sanity check of the clock, not a timing assertion: a day's slack.
    when = email.utils.parsedate_to_datetime(dates[0]).timestamp()
    assert abs(when - time.time()) < 86400, dates[0]
    assert r.header_all("Server") == ["grace"], r.headers


# ---- Client information -----------------------------------------------------------


def test_client_ip_and_version(routes):
    r = get(routes, "/client")
    assert r.content == b"127.0.0.1 1"
    with RawConn(routes.port) as c:
        c.send("GET /client HTTP/1.0\r\n\r\n")
        assert c.read_response().body == b"127.0.0.1 0"
