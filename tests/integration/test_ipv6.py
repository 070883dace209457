"""IPv6 listening: one IPv6 address (--host ::1), and every address (no
--host: one dual-stack socket, gf's ":PORT") answering IPv4 and IPv6 alike.

The harness learns ports from "started listening on [127.0.0.1:PORT]" lines;
these tests start servers that log other addresses, so they swap in their own
pattern for the line while the server starts. Only loopback addresses are
ever connected to, even when the server listens on all of them."""

import re
import socket

import pytest

from conftest import Server, http

V6_LOOPBACK_LINE = r"http server started listening on \[\[::1\]:(\d+)\]"
ALL_ADDRESSES_LINE = r"http server started listening on \[:(\d+)\]"


def have_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(
    not have_ipv6_loopback(), reason="no IPv6 loopback (cannot bind ::1)"
)


@pytest.fixture
def start_server(servers, monkeypatch):
    """start_server(listen_line_regex, name, *args): start an example without
    --host 127.0.0.1, learning its port from a "started listening" line that
    matches listen_line_regex."""

    def start(line_regex, name, *args):
        # Server.start() looks its pattern up in conftest's globals.
        monkeypatch.setitem(Server.start.__globals__, "LISTEN_RE", re.compile(line_regex))
        try:
            return servers.start(name, *args, host=False)
        finally:
            monkeypatch.undo()

    return start


def url6(port, path="/"):
    return f"http://[::1]:{port}{path}"


def url4(port, path="/"):
    return f"http://127.0.0.1:{port}{path}"


@needs_ipv6
def test_listen_on_ipv6_loopback(start_server):
    srv = start_server(V6_LOOPBACK_LINE, "hello", "--host", "::1", "--port", "0")
    assert any(f"[[::1]:{srv.port}]" in line for line in srv.lines), srv.stderr()
    r = http("GET", url6(srv.port))
    assert r.status_code == 200
    assert r.content == b"Hello, World!"


@needs_ipv6
def test_ipv6_client_address(start_server):
    srv = start_server(V6_LOOPBACK_LINE, "routes", "--host", "::1", "--port", "0")
    r = http("GET", url6(srv.port, "/client"))
    assert r.status_code == 200
    assert r.content == b"::1 1"


@needs_ipv6
def test_bracketed_host_flag(start_server):
    """--host [::1] (already bracketed) means the same address."""
    srv = start_server(V6_LOOPBACK_LINE, "hello", "--host", "[::1]", "--port", "0")
    assert http("GET", url6(srv.port)).content == b"Hello, World!"


def test_all_addresses_dual_stack(start_server):
    srv = start_server(ALL_ADDRESSES_LINE, "hello", "--port", "0")
    line = next(x for x in srv.lines if "started listening" in x)
    assert line.endswith(f"http server started listening on [:{srv.port}]"), line
    r4 = http("GET", url4(srv.port))
    assert r4.status_code == 200 and r4.content == b"Hello, World!"
    if not have_ipv6_loopback():
        pytest.skip("no IPv6 loopback: only the IPv4 half was checked")
    r6 = http("GET", url6(srv.port))
    assert r6.status_code == 200 and r6.content == b"Hello, World!"


def test_all_addresses_client_ip_is_not_v4_mapped(start_server):
    """On a dual-stack socket an IPv4 client arrives as ::ffff:127.0.0.1; the
    API promises plain "127.0.0.1"."""
    srv = start_server(ALL_ADDRESSES_LINE, "routes", "--port", "0")
    assert http("GET", url4(srv.port, "/client")).content == b"127.0.0.1 1"
    if not have_ipv6_loopback():
        pytest.skip("no IPv6 loopback: only the IPv4 half was checked")
    assert http("GET", url6(srv.port, "/client")).content == b"::1 1"
