"""The seed's first example (examples/basic.c): "/", "/pid", "/sleep", the
log lines of start and shutdown, and what SIGTERM does."""

import re
import signal

from conftest import RawConn, http, port_refuses, simple_get

HELLO = "哈喽！\n".encode("utf-8")
LOG_LINE_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} (\d+): "
    r"http server started listening on \[127\.0\.0\.1:(\d+)\]$"
)


def test_root_says_hello_in_utf8(servers):
    srv = servers.start("basic", "--port", "0")
    r = http("GET", srv.url("/"))
    assert r.status_code == 200
    assert r.content == HELLO
    assert r.headers.get("Content-Type")
    assert r.headers.get("Date")
    assert r.headers.get("Server")
    assert r.headers.get("Content-Length") == str(len(HELLO))


def test_pid_is_the_server_pid(servers):
    srv = servers.start("basic", "--port", "0")
    r = http("GET", srv.url("/pid"))
    assert r.status_code == 200
    assert r.content == f"{srv.pid}\n".encode()


def test_unknown_path_is_404(servers):
    srv = servers.start("basic", "--port", "0")
    r = http("GET", srv.url("/no/such/page"))
    assert r.status_code == 404


def test_head_has_length_but_no_body(servers):
    srv = servers.start("basic", "--port", "0")
    with RawConn(srv.port) as c:
        c.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = c.read_response(head=True)
        assert head.status == 200
        assert head.header("Content-Length") == str(len(HELLO))
        # If the server had sent a body after the HEAD answer, those bytes
        # would come before the next status line on this connection.
        c.send(simple_get("/pid"))
        nxt = c.read_response()
        assert head.raw_head.startswith(b"HTTP/1.1 200")
        assert nxt.status == 200, f"bytes after the HEAD answer: {nxt!r}"
        assert nxt.body == f"{srv.pid}\n".encode()


def test_startup_log_line_shape_and_pid(servers):
    srv = servers.start("basic", "--port", "0")
    lines = [l for l in srv.lines if "started listening" in l]
    assert len(lines) == 1, srv.stderr()
    m = LOG_LINE_RE.match(lines[0])
    assert m, f"log line has not the gf shape: {lines[0]!r}"
    assert int(m.group(1)) == srv.pid
    assert int(m.group(2)) == srv.port and srv.port != 0


def test_sigterm_shuts_down_cleanly(servers):
    srv = servers.start("basic", "--port", "0")
    assert http("GET", srv.url("/pid")).status_code == 200
    srv.send_signal(signal.SIGTERM)
    code = srv.wait_exit(timeout=15)
    assert code == 0, f"exit code {code}\n{srv.stderr()}"
    text = srv.lines
    i_down = next((i for i, l in enumerate(text) if "server shutting down" in l), None)
    i_all = next((i for i, l in enumerate(text) if "all servers shutdown" in l), None)
    assert i_down is not None, srv.stderr()
    assert i_all is not None, srv.stderr()
    assert i_down < i_all, srv.stderr()
    # Both lines have the gf shape with this process's PID.
    for i in (i_down, i_all):
        assert re.match(rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{{3}} {srv.pid}: ", text[i])
    assert port_refuses(srv.port, timeout=5), "port still accepts after exit"


def test_keep_alive_connection_serves_many(servers):
    srv = servers.start("basic", "--port", "0")
    with RawConn(srv.port) as c:
        for _ in range(20):
            c.send(simple_get("/"))
            r = c.read_response()
            assert r.status == 200 and r.body == HELLO
            assert not r.closes()
