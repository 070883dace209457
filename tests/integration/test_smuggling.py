"""Request smuggling and RFC 9112 conformance, black box, against
examples/echo.c (it answers every request with a JSON picture of it).

Every case sends its raw bytes on a fresh connection in one write, never
half-closes, and then reads everything until the server closes. Rejected
cases must get exactly one answer, with the status a strict RFC 9112 server
owes (400 for framing and syntax errors, 413 past the body limit, 414/431
past the head limit, 501 for a transfer coding it does not implement, 505
for an HTTP version it does not speak), with "Connection: close", and the
server must then close by itself without a reset (it lingers). Crucially, a
request smuggled after or inside the body is never answered: the whole byte
stream must parse as exactly the expected number of responses.

Where RFC 9112 lets a server choose, the case asserts grace's documented
choice (src/http1.c, src/internal.h) and says so next to it. The marker
SMUGGLED is in the target of every request that must never be answered.
"""

import json
import re
import socket
import time

import pytest

from conftest import HOST, IO_TIMEOUT, SharedServer

MAX_BODY = 1024
MAX_HEADER_BYTES = 4096

SMUG = b"GET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /p HTTP/1.1\r\nHost: x\r\n"
TE = POST + b"Transfer-Encoding: chunked\r\n"
CLOSE = b"Connection: close\r\n"

# RFC 9112 6.3: when chunked is not the final transfer coding of a request,
# its length cannot be determined, and the server MUST answer 400 and close.
# grace does (src/http1.c); codings before a final chunked ("gzip, chunked")
# are understood framing but an unsupported coding: 501 (RFC 9110 6.1).
TE_LAST_NOT_CHUNKED = 400


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
    yield shared_echo.get()
    shared_echo.check_alive()  # a crash is blamed on the test that caused it


# ---- wire helpers -------------------------------------------------------------


def exchange(port, data, timeout=IO_TIMEOUT, pause_after=None, more=b""):
    """Connect, send data (then, after pause_after seconds, more), read until
    the server closes. Returns the bytes. A reset or a server that does not
    close within timeout fails the test: a reset can destroy an answer the
    client has not read yet (RFC 9112 9.6), so it is never acceptable."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(data)
        if more:
            time.sleep(pause_after)  # ordering only, never an assertion
            sock.sendall(more)
        got = b""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"server did not close within {timeout}s; got {got[:600]!r}")
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                pytest.fail(f"server did not close within {timeout}s; got {got[:600]!r}")
            except ConnectionResetError:
                pytest.fail(f"connection reset by the server after {got[:600]!r}")
            if not chunk:
                return got
            got += chunk
    finally:
        sock.close()


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        vals = [v for n, v in self.headers if n.lower() == name.lower()]
        return vals[0] if vals else None

    def closes(self):
        v = self.header("Connection") or ""
        return "close" in [t.strip().lower() for t in v.split(",")]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return f"<Resp {self.status} {self.headers!r} {self.body[:300]!r}>"


STATUS_LINE = re.compile(rb"^HTTP/1\.1 (\d{3}) [^\r\n]*$")


def parse_responses(data):
    """Split a byte stream into responses; every byte must belong to one
    (grace always frames its answers with Content-Length)."""
    out = []
    while data:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, f"truncated response head {head[:300]!r}"
        lines = head.split(b"\r\n")
        m = STATUS_LINE.match(lines[0])
        assert m, f"bad status line {lines[0]!r}"
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            assert colon, f"bad header line {line!r}"
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        r = Resp(int(m.group(1)), headers, b"")
        if not 100 <= r.status < 200:
            cl = r.header("Content-Length")
            assert cl is not None and cl.isdigit(), f"unframed response {r!r}"
            n = int(cl)
            assert len(data) >= n, f"truncated body: {n} announced, {len(data)} there"
            r.body, data = data[:n], data[n:]
        out.append(r)
    return out


def final(resps):
    """The responses that are not 1xx interim ones."""
    return [r for r in resps if r.status >= 200]


def assert_not_smuggled(resps):
    for r in resps:
        if (r.header("Content-Type") or "").startswith("application/json"):
            j = r.json()
            assert "SMUGGLED" not in j["target"], f"smuggled request answered: {j!r}"


def expect_rejected(srv, raw, status):
    data = exchange(srv.port, raw)
    # The plain count the stream must show: one status line, one answer.
    assert data.count(b"HTTP/1.1 ") == 1, f"wanted exactly one answer, got {data!r}"
    resps = parse_responses(data)
    assert len(resps) == 1, resps
    r = resps[0]
    assert r.status == status, f"wanted {status}, got {r!r}"
    assert r.closes(), f"no 'Connection: close' on {r!r}"


def expect_accepted(srv, raw, n=1):
    """raw holds n requests, the last with Connection: close; all n must be
    answered with 200 (and nothing else), the last saying close."""
    data = exchange(srv.port, raw)
    resps = final(parse_responses(data))
    assert_not_smuggled(resps)
    assert len(resps) == n, f"wanted {n} answers, got {resps!r}"
    for r in resps:
        assert r.status == 200, resps
    assert resps[-1].closes(), resps[-1]
    return [r.json() for r in resps]


# ---- rejected: exactly one error answer, then close ----------------------------------

REJECTED = [
    # -- Content-Length together with Transfer-Encoding (RFC 9112 6.1: MAY
    #    reject, MUST close). grace rejects with 400 whatever the order.
    ("cl_then_te", POST + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n" + SMUG, 400),
    ("te_then_cl", TE + b"Content-Length: 4\r\n\r\n"
     b"5c\r\n" + SMUG + b"\r\n0\r\n\r\n", 400),
    ("te_chunked_cl_0", TE + b"Content-Length: 0\r\n\r\n0\r\n\r\n" + SMUG, 400),
    ("cl_0_te_chunked", POST + b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n" + SMUG, 400),
    ("te_identity_with_cl", POST + b"Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n"
     b"hello" + SMUG, 400),
    # -- Transfer-Encoding obfuscations.
    # Whitespace between field name and colon: MUST be rejected with 400
    # (RFC 9112 5.1).
    ("te_space_before_colon", POST + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUG, 400),
    ("te_tab_before_colon", POST + b"Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n" + SMUG, 400),
    # chunked is not the last coding (see TE_LAST_NOT_CHUNKED above).
    ("te_xchunked", POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUG,
     TE_LAST_NOT_CHUNKED),
    ("te_chunked_identity", POST + b"Transfer-Encoding: chunked, identity\r\n\r\n"
     b"0\r\n\r\n" + SMUG, TE_LAST_NOT_CHUNKED),
    ("te_identity", POST + b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n" + SMUG,
     TE_LAST_NOT_CHUNKED),
    ("te_chunked_then_gzip_field", TE + b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n" + SMUG,
     TE_LAST_NOT_CHUNKED),
    # chunked last, after a coding grace does not implement: 501 (RFC 9112
    # 6.1).
    ("te_gzip_chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + SMUG, 501),
    # chunked listed twice (two fields are one list, RFC 9110 5.3): a sender
    # MUST NOT chunk twice (RFC 9112 7); grace answers 501, as internal.h
    # promises for any coding list other than one final chunked.
    ("te_two_fields_chunked", TE + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUG, 501),
    # obs-fold: grace rejects it everywhere with 400 (RFC 9112 5.2 allows
    # that for a server; it is the safe choice).
    ("te_obs_fold", POST + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + SMUG, 400),
    ("te_obs_fold_list", TE + b" , identity\r\n\r\n0\r\n\r\n" + SMUG, 400),
    ("te_nul_in_name", POST + b"Transfer\x00-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUG, 400),
    ("te_vtab_value", POST + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n" + SMUG, 400),
    ("te_cr_in_value", POST + b"Transfer-Encoding: chunked\r\r\n\r\n0\r\n\r\n" + SMUG, 400),
    # Not a token list (quoted, parameter on chunked, empty): grace's 400.
    ("te_quoted", POST + b"Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n" + SMUG, 400),
    ("te_chunked_param", POST + b"Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n" + SMUG, 400),
    ("te_empty", POST + b"Transfer-Encoding: \r\n\r\n0\r\n\r\n" + SMUG, 400),
    # TE in HTTP/1.0: the message must be treated as faulty (RFC 9112 6.1).
    ("te_http10", b"POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUG, 400),
    # -- Content-Length obfuscations: Content-Length = 1*DIGIT (RFC 9110 8.6).
    ("cl_plus", POST + b"Content-Length: +5\r\n\r\nhello" + SMUG, 400),
    ("cl_minus", POST + b"Content-Length: -5\r\n\r\nhello" + SMUG, 400),
    ("cl_decimal", POST + b"Content-Length: 5.0\r\n\r\nhello" + SMUG, 400),
    ("cl_hex", POST + b"Content-Length: 0x5\r\n\r\nhello" + SMUG, 400),
    ("cl_inner_space", POST + b"Content-Length: 5 5\r\n\r\nhello" + SMUG, 400),
    ("cl_empty", POST + b"Content-Length: \r\n\r\nhello" + SMUG, 400),
    # A list of identical values MAY be accepted (RFC 9110 8.6); grace
    # refuses every list.
    ("cl_list_same", POST + b"Content-Length: 1,1\r\n\r\nh" + SMUG, 400),
    ("cl_list_space", POST + b"Content-Length: 5, 5\r\n\r\nhello" + SMUG, 400),
    ("cl_two_different", POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" + SMUG,
     400),
    ("cl_space_before_colon", POST + b"Content-Length : 5\r\n\r\nhello" + SMUG, 400),
    ("cl_obs_fold", POST + b"Content-Length:\r\n 5\r\n\r\nhello" + SMUG, 400),
    ("cl_vtab", POST + b"Content-Length: 5\x0b\r\n\r\nhello" + SMUG, 400),
    # Past the body limit (1024 here): 413 from the header alone.
    ("cl_over_limit", POST + b"Content-Length: 1025\r\n\r\n" + b"a" * 1025 + SMUG, 413),
    ("cl_int64_max", POST + b"Content-Length: 9223372036854775807\r\n\r\n" + SMUG, 413),
    # Beyond what a 64-bit length holds: an invalid value, 400.
    ("cl_overflow", POST + b"Content-Length: 9223372036854775808\r\n\r\n" + SMUG, 400),
    ("cl_overflow_long", POST + b"Content-Length: 99999999999999999999999\r\n\r\n" + SMUG, 400),
    # -- chunk-size obfuscations: chunk-size = 1*HEXDIG (RFC 9112 7.1).
    ("chunk_0x", TE + b"\r\n0x5\r\nhello\r\n0\r\n\r\n" + SMUG, 400),
    ("chunk_plus", TE + b"\r\n+5\r\nhello\r\n0\r\n\r\n" + SMUG, 400),
    ("chunk_minus", TE + b"\r\n-5\r\nhello\r\n0\r\n\r\n" + SMUG, 400),
    ("chunk_leading_space", TE + b"\r\n 5\r\nhello\r\n0\r\n\r\n" + SMUG, 400),
    # BWS is only allowed before a ';' (chunk-ext); grace refuses whitespace
    # right before the CRLF.
    ("chunk_trailing_space", TE + b"\r\n5 \r\nhello\r\n0\r\n\r\n" + SMUG, 400),
    ("chunk_empty_size", TE + b"\r\n\r\nhello\r\n0\r\n\r\n" + SMUG, 400),
    # The size passes the 1024-byte limit at its third digit: grace checks the
    # limit digit by digit and answers 413 before any overflow can happen.
    ("chunk_overflow", TE + b"\r\nFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n" + SMUG, 413),
    # Leading zeros keep the value small; grace refuses sizes longer than 16
    # hex digits (its guard against overflow, documented in http1.c): 400.
    ("chunk_17_digits", TE + b"\r\n00000000000000005\r\nhello\r\n0\r\n\r\n" + SMUG, 400),
    ("chunk_missing_crlf_after_data", TE + b"\r\n5\r\nhello" + SMUG + b"0\r\n\r\n", 400),
    ("chunk_lf_only_size_line", TE + b"\r\n5\nhello\r\n0\r\n\r\n" + SMUG, 400),
    ("chunk_lf_only_after_data", TE + b"\r\n5\r\nhello\n0\r\n\r\n" + SMUG, 400),
    ("chunk_cr_only_after_data", TE + b"\r\n5\r\nhello\r0\r\n\r\n" + SMUG, 400),
    ("chunk_data_longer_than_size", TE + b"\r\n3\r\nhello\r\n0\r\n\r\n" + SMUG, 400),
    # The last chunk without the empty line that ends the trailer section:
    # the next "request" would be read as a trailer field, and is not one.
    ("chunk_last_without_final_crlf", TE + b"\r\n0\r\n" + SMUG, 400),
    ("chunk_ext_bare_lf", TE + b"\r\n5;a\nb\r\nhello\r\n0\r\n\r\n" + SMUG, 400),
    ("chunk_ext_nul", TE + b"\r\n5;a\x00\r\nhello\r\n0\r\n\r\n" + SMUG, 400),
    ("chunk_trailer_obs_fold", TE + b"\r\n0\r\nX: a\r\n b\r\n\r\n" + SMUG, 400),
    ("chunk_trailer_bare_lf", TE + b"\r\n0\r\nX: a\n\r\n" + SMUG, 400),
    ("chunk_total_over_limit", TE + b"\r\n" + b"200\r\n" + b"c" * 512 + b"\r\n"
     + b"201\r\n" + b"d" * 513 + b"\r\n0\r\n\r\n" + SMUG, 413),
    # -- Request line (RFC 9112 3): method SP request-target SP HTTP-version.
    ("bare_cr_in_request_line", b"GET /\rx HTTP/1.1\r\nHost: x\r\n\r\n" + SMUG, 400),
    ("bare_cr_ends_request_line", b"GET / HTTP/1.1\rHost: x\r\n\r\n" + SMUG, 400),
    ("double_space_after_target", b"GET /  HTTP/1.1\r\nHost: x\r\n\r\n" + SMUG, 400),
    ("double_space_after_method", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n" + SMUG, 400),
    ("trailing_space_after_version", b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n" + SMUG, 400),
    ("tab_separator", b"GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n" + SMUG, 400),
    # HTTP/0.9 (no version): grace speaks 1.x only; the line is malformed.
    ("http09", b"GET /\r\n" + SMUG, 400),
    # A bare LF as line end: RFC 9112 2.2 lets a recipient accept it; grace
    # refuses it (another hop could split the lines differently).
    ("lf_only_request_line", b"GET / HTTP/1.1\nHost: x\r\n\r\n" + SMUG, 400),
    ("lf_only_everywhere", b"GET / HTTP/1.1\nHost: x\n\n" + SMUG, 400),
    ("leading_bare_lf", b"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n" + SMUG, 400),
    ("nul_in_target", b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n" + SMUG, 400),
    ("non_ascii_target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n" + SMUG, 400),
    ("non_token_method", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n" + SMUG, 400),
    # A method longer than the whole head limit: the request line is too
    # long (RFC 9112 3 suggests 501 for an over-long method, a SHOULD; grace
    # bounds the line first and answers 414).
    ("very_long_method", b"A" * (MAX_HEADER_BYTES + 100) + b" / HTTP/1.1\r\nHost: x\r\n\r\n"
     + SMUG, 414),
    ("version_lowercase", b"GET / http/1.1\r\nHost: x\r\n\r\n" + SMUG, 400),
    ("version_two_digit_minor", b"GET / HTTP/1.10\r\nHost: x\r\n\r\n" + SMUG, 400),
    ("version_1_2", b"GET / HTTP/1.2\r\nHost: x\r\n\r\n" + SMUG, 505),
    ("version_2_0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n" + SMUG, 505),
    ("version_0_9", b"GET / HTTP/0.9\r\n\r\n" + SMUG, 505),
    # -- Header fields (RFC 9112 5, RFC 9110 5.5).
    ("bare_cr_in_header_value", b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n" + SMUG, 400),
    ("bare_cr_ends_header", b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n" + SMUG, 400),
    ("header_name_with_space", b"GET / HTTP/1.1\r\nHost: x\r\nX Y: z\r\n\r\n" + SMUG, 400),
    ("header_name_non_token", b"GET / HTTP/1.1\r\nHost: x\r\nX(Y): z\r\n\r\n" + SMUG, 400),
    ("header_name_non_ascii", b"GET / HTTP/1.1\r\nHost: x\r\nX\xc3\xa9: z\r\n\r\n" + SMUG, 400),
    ("header_without_colon", b"GET / HTTP/1.1\r\nHost: x\r\nX-Y\r\n\r\n" + SMUG, 400),
    ("whitespace_before_first_field", b"GET / HTTP/1.1\r\n Host: x\r\n\r\n" + SMUG, 400),
    ("nul_in_header_value", b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n" + SMUG, 400),
    # -- Host (RFC 9112 3.2: 400 when missing in 1.1, repeated or invalid).
    ("host_missing", b"GET / HTTP/1.1\r\nX: y\r\n\r\n" + SMUG, 400),
    ("host_missing_absolute_form", b"GET http://x/ HTTP/1.1\r\n\r\n" + SMUG, 400),
    ("host_duplicate_same", b"GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n" + SMUG, 400),
    ("host_duplicate_different", b"GET / HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n" + SMUG, 400),
    ("host_userinfo", b"GET / HTTP/1.1\r\nHost: user@x\r\n\r\n" + SMUG, 400),
    ("host_list", b"GET / HTTP/1.1\r\nHost: x, y\r\n\r\n" + SMUG, 400),
    ("absolute_form_userinfo", b"GET http://u@x/ HTTP/1.1\r\nHost: x\r\n\r\n" + SMUG, 400),
]


@pytest.mark.parametrize("raw,status", [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
def test_rejected(echo, raw, status):
    expect_rejected(echo, raw, status)


def test_case_ids_are_unique():
    assert len({c[0] for c in REJECTED}) == len(REJECTED)


# ---- accepted: what RFC 9112 allows, answered once, nothing smuggled --------------------

ACCEPTED = [
    # OWS around a field value is not part of it (RFC 9112 5): stripped.
    ("te_trailing_space", b"Transfer-Encoding: chunked \r\n", True),
    ("te_tab", b"Transfer-Encoding:\tchunked\r\n", True),
    ("te_uppercase", b"Transfer-Encoding: CHUNKED\r\n", True),  # case-insensitive
    ("te_empty_list_element", b"Transfer-Encoding: , chunked\r\n", True),  # RFC 9110 5.6.1
    ("cl_leading_ows", b"Content-Length:  \t5\r\n", False),
    ("cl_trailing_ows", b"Content-Length: 5 \r\n", False),
    ("cl_two_same_fields", b"Content-Length: 5\r\nContent-Length: 5\r\n", False),
    ("cl_leading_zeros", b"Content-Length: 005\r\n", False),
]


@pytest.mark.parametrize("field,chunked", [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_accepted_framing(echo, field, chunked):
    body = b"5\r\nhello\r\n0\r\n\r\n" if chunked else b"hello"
    # The bytes after the body are a second request on purpose: framed as
    # written, they are the next (pipelined) request; framed any other way,
    # the answers would show it.
    raw = POST + field + b"\r\n" + body + b"GET /next HTTP/1.1\r\nHost: x\r\n" + CLOSE + b"\r\n"
    j1, j2 = expect_accepted(echo, raw, n=2)
    assert j1["body"] == "hello" and j1["target"] == "/p"
    assert j2["target"] == "/next" and j2["body"] == ""


CHUNK_ACCEPTED = [
    # chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ); grace ignores
    # extensions and checks them only for CTLs and bare CR/LF, so an empty
    # one ("5;") passes too.
    ("chunk_ext_empty", b"5;\r\nhello\r\n0\r\n\r\n"),
    ("chunk_bws_before_ext", b"5\t;ext\r\nhello\r\n0\r\n\r\n"),
    ("chunk_ext_quoted", b"5;a=\"b;c\\\"d\"\r\nhello\r\n0;last\r\n\r\n"),
    ("chunk_hex_upper_lower", b"2\r\nhe\r\n0003\r\nllo\r\n0\r\n\r\n"),
    ("chunk_trailer_fields", b"5\r\nhello\r\n0\r\nX-T: 1\r\nY:\r\n\r\n"),
]


@pytest.mark.parametrize(
    "chunks", [c[1] for c in CHUNK_ACCEPTED], ids=[c[0] for c in CHUNK_ACCEPTED]
)
def test_accepted_chunks(echo, chunks):
    (j,) = expect_accepted(echo, TE + CLOSE + b"\r\n" + chunks)
    assert j["body"] == "hello"


def test_body_holding_a_request_is_body(echo):
    # Content-Length and chunked bodies that look like requests stay bodies.
    raw = POST + b"Content-Length: %d\r\n\r\n" % len(SMUG) + SMUG
    raw += TE + CLOSE + b"\r\n%x\r\n" % len(SMUG) + SMUG + b"\r\n0\r\n\r\n"
    j1, j2 = expect_accepted(echo, raw, n=2)
    assert j1["body"] == SMUG.decode() and j2["body"] == SMUG.decode()


def test_trailer_content_length_does_not_frame(echo):
    # Trailer fields are not merged into the head (RFC 9112 7.1.2): a
    # Content-Length there frames nothing, the next request follows.
    raw = TE + b"\r\n3\r\nabc\r\n0\r\nContent-Length: 40\r\n\r\n"
    raw += b"GET /next HTTP/1.1\r\nHost: x\r\n" + CLOSE + b"\r\n"
    j1, j2 = expect_accepted(echo, raw, n=2)
    assert j1["body"] == "abc" and j2["target"] == "/next"


def test_pipelining_after_chunked_body_with_trailers(echo):
    raw = TE + b"\r\n5;x=y\r\nhello\r\n0\r\nX-Trailer: t\r\nX-More: u\r\n\r\n"
    raw += b"GET /second HTTP/1.1\r\nHost: x\r\n" + CLOSE + b"\r\n"
    j1, j2 = expect_accepted(echo, raw, n=2)
    assert (j1["target"], j1["body"]) == ("/p", "hello")
    assert (j2["target"], j2["body"]) == ("/second", "")


def test_leading_empty_lines_are_ignored(echo):
    # RFC 9112 2.2: a server SHOULD ignore at least one empty line before
    # the request line.
    (j,) = expect_accepted(echo, b"\r\n\r\nGET /lead HTTP/1.1\r\nHost: x\r\n" + CLOSE + b"\r\n")
    assert j["target"] == "/lead"


def test_absolute_form_with_other_host(echo):
    # RFC 9112 3.2.2: the target's authority wins over Host; the answer is
    # for the request as sent.
    (j,) = expect_accepted(
        echo, b"GET http://example.com/abs?q=1 HTTP/1.1\r\nHost: other\r\n" + CLOSE + b"\r\n"
    )
    assert j["target"] == "http://example.com/abs?q=1"
    assert j["path"] == "/abs" and j["query"] == "q=1"


def test_long_method_within_limit(echo):
    # Any token is a method (RFC 9110 9.1); routing decides, and echo takes
    # every method.
    method = b"M" * 200
    (j,) = expect_accepted(echo, method + b" / HTTP/1.1\r\nHost: x\r\n" + CLOSE + b"\r\n")
    assert j["method"] == method.decode()


@pytest.mark.parametrize("chunked", [False, True], ids=["content_length", "chunked"])
def test_expect_100_with_body_sent_before_the_100(echo, chunked):
    # The client sends the body (which looks like a request) without waiting
    # for 100 Continue. It is the body: one final answer, echoing it. grace
    # sends no 100 once body bytes have arrived (RFC 9110 10.1.1 lets a server
    # omit it then); an interim 100 would be harmless, so only final answers
    # are counted.
    head = POST + b"Expect: 100-continue\r\n" + CLOSE
    if chunked:
        raw = head + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(SMUG)
        raw += SMUG + b"\r\n0\r\n\r\n"
    else:
        raw = head + b"Content-Length: %d\r\n\r\n" % len(SMUG) + SMUG
    data = exchange(echo.port, raw)
    resps = parse_responses(data)
    assert all(r.status == 100 for r in resps[:-1]) and len(resps) <= 2, resps
    (r,) = final(resps)
    assert r.status == 200 and r.closes(), r
    assert r.json()["body"] == SMUG.decode()


# ---- Connection: close, then a pipelined request (RFC 9112 9.6) ------------------------


@pytest.mark.parametrize(
    "first",
    [
        b"GET /first HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"POST /first HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nab",
        b"GET /first HTTP/1.0\r\n\r\n",
    ],
    ids=["close_get", "close_post", "http10"],
)
def test_close_then_pipelined_request_is_not_answered(echo, first):
    # A server that sees "close" MUST NOT process further requests on that
    # connection; the first answer must arrive whole, then a clean close (a
    # reset while the discarded request sits unread would destroy it).
    data = exchange(echo.port, first + SMUG)
    (r,) = parse_responses(data)
    assert r.status == 200 and r.closes(), r
    assert r.json()["target"] == "/first"


def test_close_then_large_pipelined_request(echo):
    # The discarded second request is big (far more than socket buffers
    # hold when nobody reads): the server must keep draining it after its
    # answer, or the client's send blocks or the connection is reset.
    second = POST + b"Content-Length: 300000\r\n\r\n" + b"z" * 300000
    data = exchange(echo.port, b"GET /first HTTP/1.1\r\nHost: x\r\n" + CLOSE + b"\r\n" + second)
    (r,) = parse_responses(data)
    assert r.status == 200 and r.json()["target"] == "/first"


def test_close_then_request_while_handler_runs(servers):
    # The second request arrives while the first (Connection: close) is in
    # its handler, so it is still unread in the socket when the answer is
    # done: closing then would make the kernel send a reset. The server
    # must see the pending input and drain it (lingering close).
    srv = servers.start("basic", "--port", "0", "--sleep-ms", "300")
    first = b"GET /sleep HTTP/1.1\r\nHost: x\r\n" + CLOSE + b"\r\n"
    data = exchange(srv.port, first, pause_after=0.1, more=SMUG)
    (r,) = parse_responses(data)
    assert r.status == 200 and r.closes(), r
    assert r.body.count(b"\n") == 2, r  # pid before and after the sleep


def test_connect_is_answered_then_closed(echo):
    """grace never tunnels: after answering CONNECT it closes, so bytes that a
    proxy in front might forward as tunnel data are never read as requests."""
    with socket.create_connection(("127.0.0.1", echo.port), timeout=10) as s:
        s.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n" + SMUG)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.count(b"HTTP/1.1 ") == 1, data
    assert b"Connection: close" in data, data
    assert b"SMUGGLED" not in data, data
