"""The admin interface (src/admin.c; SPEC A1-A3, B4), seen from a client:
the page, the JSON status, and who may use the actions.

Safe by default: only trusted networks (loopback) may use it, unless a token
or an auth hook is configured; the Host must name this server (an IP
address, localhost, or --admin-allow-host), which stops DNS rebinding; the
headers the guard decides by may come only once; newExeFilePath must name an
executable in the running executable's directory or an allowed one, writable
by nobody but its owner; a browser request from another site is refused by
its Fetch Metadata / Origin headers. The tests at the end check the browser
cases, DNS rebinding included, with a real headless Chromium.

Successful restarts are test_restart*.py's subject; here only the
seed-walkthrough check clicks "restart" on the page in Chromium, and the
newExeFilePath permission test restarts once it has put the modes right.
"""

import fcntl
import html.parser
import json
import os
import re
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import (
    HOST,
    IO_TIMEOUT,
    RawConn,
    Server,
    example_path,
    http,
    proc_descendants,
    proc_table,
    sanitizer_env,
    stop_pids,
)

ADMIN = "/debug/admin"


def start_basic(servers, *args):
    return servers.start("basic", "--port", "0", *args)


def start_copy(servers, app_dir, *args):
    """basic, copied into app_dir and run from there, so that a test can put
    files beside the running executable without touching the build dir."""
    exe = app_dir / "basic"
    shutil.copy2(example_path("basic"), exe)
    srv = Server("basic", ["--port", "0", *args])
    srv.exe = exe
    srv.argv[0] = str(exe)
    servers.servers.append(srv)  # stopped and checked by the fixture
    return srv.start()


def get(srv, path, **kw):
    return http("GET", srv.url(path), **kw)


def assert_same_process(srv):
    """The server still runs, as the same process."""
    r = get(srv, "/pid")
    assert r.status_code == 200 and r.text == f"{srv.pid}\n", (r.status_code, r.text)
    assert srv.running()
    assert not [l for l in srv.lines if "server reloading" in l or "shutting down" in l], (
        srv.stderr()
    )


def assert_refused(r, text=None):
    assert r.status_code == 403, (r.status_code, r.text)
    if text is not None:
        assert text in r.text, r.text


class PageParser(html.parser.HTMLParser):
    """Just enough HTML: links, forms and their inputs, text by element id."""

    def __init__(self):
        super().__init__()
        self.links = {}  # text -> href
        self.forms = []  # (action, method, [input names])
        self.by_id = {}
        self.text = []
        self._a = None
        self._id = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a":
            self._a = [a.get("href"), ""]
        elif tag == "form":
            self.forms.append((a.get("action"), a.get("method"), []))
        elif tag == "input" and self.forms:
            self.forms[-1][2].append(a.get("name"))
        if "id" in a:
            self._id = a["id"]
            self.by_id[self._id] = ""

    def handle_endtag(self, tag):
        if tag == "a" and self._a:
            self.links[self._a[1].strip()] = self._a[0]
            self._a = None
        self._id = None

    def handle_data(self, data):
        self.text.append(data)
        if self._a is not None:
            self._a[1] += data
        if self._id is not None:
            self.by_id[self._id] += data


def parse_page(text):
    p = PageParser()
    p.feed(text)
    p.close()
    return p


# ---- The page and the status ------------------------------------------------


def test_page_shows_process_servers_and_links(servers):
    srv = start_basic(servers)
    r = get(srv, ADMIN)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.text.startswith("<!DOCTYPE html>")
    # Never framed (clickjacking), never cached.
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["Cache-Control"] == "no-store"
    page = parse_page(r.text)
    assert page.by_id["pid"] == str(srv.pid)
    assert page.by_id["exe"] == str(srv.exe.resolve())
    text = "".join(page.text)
    assert f"{HOST}:{srv.port}" in text
    assert "default" in text  # the server's name
    for action in ("restart", "reload", "shutdown"):
        assert page.links[action] == f"{ADMIN}/{action}", page.links
    assert page.links["status"] == f"{ADMIN}/status"
    assert (f"{ADMIN}/restart", "get", ["newExeFilePath"]) in page.forms, page.forms


def test_page_and_status_answer_head_and_refuse_post(servers):
    srv = start_basic(servers)
    assert http("HEAD", srv.url(ADMIN)).status_code == 200
    r = http("POST", srv.url(ADMIN))
    assert r.status_code == 405
    assert_same_process(srv)


def test_status_json(servers):
    srv = start_basic(servers)
    r = get(srv, f"{ADMIN}/status")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    st = r.json()
    assert st["pid"] == srv.pid
    assert st["executable"] == str(srv.exe.resolve())
    assert isinstance(st["uptime_ms"], int) and st["uptime_ms"] >= 0
    assert st["graceful"] is True  # every example turns it on
    assert st["server"] == "default"
    assert st["servers"] == [
        {
            "name": "default",
            "running": True,
            "addresses": [f"{HOST}:{srv.port}"],
            "inflight": 1,  # this very request
        }
    ]


def test_status_of_multi_lists_both_servers_from_any_port(servers):
    srv = servers.start("multi", "--ports", "0,0,0,0", n_ports=4)
    seen = set()
    for i in range(4):
        st = http("GET", srv.url(f"{ADMIN}/status", i)).json()
        assert st["pid"] == srv.pid
        assert [s["name"] for s in st["servers"]] == ["s1", "s2"]
        addrs = [a for s in st["servers"] for a in s["addresses"]]
        assert sorted(addrs) == sorted(f"{HOST}:{p}" for p in srv.ports)
        seen.add(st["server"])
    assert seen == {"s1", "s2"}


def test_no_graceful_flag_shows_in_status(servers):
    srv = start_basic(servers, "--no-graceful")
    assert get(srv, f"{ADMIN}/status").json()["graceful"] is False
    # gf v1's reload is always graceful: refused, and the process stays.
    r = get(srv, f"{ADMIN}/reload")
    assert r.status_code == 409, r.text
    assert "graceful restart is off" in r.text
    r = get(srv, f"{ADMIN}/reload", headers={"Accept": "application/json"})
    assert r.status_code == 409 and r.json()["ok"] is False
    r = get(srv, "/pid")
    assert r.text == f"{srv.pid}\n"


def test_shutdown_answers_then_stops_every_server(servers):
    srv = servers.start("multi", "--ports", "0,0,0,0", n_ports=4)
    r = http("GET", srv.url(f"{ADMIN}/shutdown", 3))  # s2's second port
    assert r.status_code == 200 and r.text == "shutting down\n"
    assert srv.wait_exit(timeout=15) == 0, srv.stderr()
    assert any(l.endswith(f"admin: shutdown requested from {HOST}") for l in srv.lines)


def test_actions_refuse_other_methods_and_prefetch(servers):
    srv = start_basic(servers)
    r = http("DELETE", srv.url(f"{ADMIN}/restart"))
    assert r.status_code == 405 and r.headers["Allow"] == "GET, POST"
    assert http("HEAD", srv.url(f"{ADMIN}/shutdown")).status_code == 405
    # A browser fetching a link ahead of time must not shut anything down.
    for h in ({"Sec-Purpose": "prefetch;prerender"}, {"Purpose": "prefetch"}):
        assert_refused(get(srv, f"{ADMIN}/shutdown", headers=h), "prefetch")
    assert_same_process(srv)


def test_bad_admin_flags_refused_at_start():
    for bad in ("10.0.0.0/33", "10.0.0/8", "::1/129", "example.com/8", "10.0.0.0/-1"):
        p = subprocess.run(
            [str(example_path("basic")), "--host", HOST, "--port", "0", "--admin-trusted", bad],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=20,
            env=sanitizer_env(),
        )
        assert p.returncode == 1, (bad, p.stderr)
        assert b"admin" in p.stderr and b"invalid argument" in p.stderr, p.stderr


# ---- Who may use it -----------------------------------------------------------


def test_client_outside_trusted_networks_refused(servers):
    # 127.0.0.1 is not in 10.0.0.0/8: a loopback client counts as remote.
    srv = start_basic(servers, "--admin-trusted", "10.0.0.0/8,fd00::/8")
    for path in (ADMIN, f"{ADMIN}/status", f"{ADMIN}/restart", f"{ADMIN}/reload",
                 f"{ADMIN}/shutdown", f"{ADMIN}/no-such-route"):
        assert_refused(get(srv, path), f"admin access from {HOST} refused")
    assert_refused(http("POST", srv.url(f"{ADMIN}/restart")))
    srv.wait_for_line(rf"admin: refused GET {ADMIN}/restart from {HOST}: admin access")
    assert_same_process(srv)
    # Only the admin routes are guarded.
    assert get(srv, "/").status_code == 200
    assert get(srv, f"{ADMIN}istrator").status_code == 404


def test_trusted_network_containing_the_client_allowed(servers):
    srv = start_basic(servers, "--admin-trusted", "10.0.0.0/8", "--admin-trusted", "127.0.0.1")
    assert get(srv, f"{ADMIN}/status").json()["pid"] == srv.pid


def test_token_required_when_configured(servers):
    token = "s3cret-Tok"
    srv = start_basic(servers, "--admin-token", token)
    # Loopback is not enough once a token is configured.
    for path in (ADMIN, f"{ADMIN}/status", f"{ADMIN}/restart", f"{ADMIN}/shutdown"):
        assert_refused(get(srv, path), "admin token")
    for wrong in ("", "s3cret", "s3cret-Tok2", "S3CRET-TOK"):
        assert_refused(get(srv, f"{ADMIN}/status", headers={"Authorization": f"Bearer {wrong}"}))
        assert_refused(get(srv, f"{ADMIN}/status?token={wrong}"))
    assert_refused(get(srv, f"{ADMIN}/status", headers={"Authorization": f"Basic {token}"}))
    srv.wait_for_line(rf"admin: refused GET {ADMIN}/status from {HOST}: admin token")
    assert_same_process(srv)

    r = get(srv, f"{ADMIN}/status", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["pid"] == srv.pid
    r = get(srv, f"{ADMIN}/status?token={token}")
    assert r.status_code == 200 and r.json()["pid"] == srv.pid
    # A token that came in the URL stays on the page's links and form.
    page = parse_page(get(srv, f"{ADMIN}?token={token}").text)
    assert page.links["restart"] == f"{ADMIN}/restart?token={token}"
    assert page.links["shutdown"] == f"{ADMIN}/shutdown?token={token}"
    assert page.links["status"] == f"{ADMIN}/status?token={token}"
    assert ["newExeFilePath", "token"] in [f[2] for f in page.forms]


def test_token_and_trusted_networks_both_required(servers):
    srv = start_basic(servers, "--admin-token", "t0k", "--admin-trusted", "10.0.0.0/8")
    assert_refused(get(srv, f"{ADMIN}/status", headers={"Authorization": "Bearer t0k"}))
    assert_same_process(srv)


# ---- DNS rebinding: the Host must name this server --------------------------------

REBIND = "does not name this server (DNS rebinding?)"
ACTIONS = (ADMIN, f"{ADMIN}/status", f"{ADMIN}/restart", f"{ADMIN}/reload", f"{ADMIN}/shutdown")


def browser_headers(host):
    """What a browser sends with fetch() from a page of http://HOST: every
    header says same-origin. After DNS rebinding, HOST is the attacker's
    name (evil.example:PORT) resolved to this server's address."""
    return {
        "Host": host,
        "Origin": f"http://{host}",
        "Sec-Fetch-Site": "same-origin",
        "Sec-Fetch-Mode": "cors",
        "Sec-Fetch-Dest": "empty",
    }


def curl(*args):
    """curl -sS ARGS: (status, body). A client we did not write, sending
    what a script would, plus the headers given."""
    p = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        text=True,
    )
    assert p.returncode == 0, (args, p.stderr)
    body, _, code = p.stdout.rpartition("\n")
    return int(code), body


def curl_headers(headers):
    return [x for k, v in headers.items() for x in ("-H", f"{k}: {v}")]


def raw_request(port, head_lines, method="GET", path=f"{ADMIN}/status", version="HTTP/1.1"):
    """One request with exactly these header lines ("Name: value"), which
    requests and curl cannot send (repeated headers, no Host)."""
    lines = [f"{method} {path} {version}", *head_lines, "Connection: close", "", ""]
    with RawConn(port) as c:
        c.send("\r\n".join(lines))
        return c.read_response()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_rebinding_host_refused(servers):
    """A request as a rebound page sends it (Host: evil.example:PORT, same-
    origin Fetch Metadata, a matching Origin, from 127.0.0.1) is refused
    on every admin route, by curl and by requests; the server keeps
    running as the same process and logs each refusal."""
    srv = start_basic(servers)
    evil = f"evil.example:{srv.port}"
    h = browser_headers(evil)
    for path in ACTIONS:
        assert_refused(get(srv, path, headers=h), f"Host '{evil}' {REBIND}")
        assert_refused(http("POST", srv.url(path), headers=h), REBIND)
        code, body = curl(*curl_headers(h), srv.url(path))
        assert code == 403 and f"Host '{evil}' {REBIND}; allowed: IP addresses, localhost" in body
    # The name really resolving to this server, as after the rebinding.
    code, body = curl("--resolve", f"{evil}:{HOST}", *curl_headers({**h, "Host": evil}),
                      f"http://{evil}{ADMIN}/shutdown")  # fmt: skip
    assert code == 403 and REBIND in body, body
    # For programs: the JSON form of the refusal.
    r = get(srv, f"{ADMIN}/restart", headers={**h, "Accept": "application/json"})
    assert r.status_code == 403 and REBIND in r.json()["error"]
    srv.wait_for_line(
        rf"admin: refused GET {ADMIN}/restart from {HOST}: Host 'evil\.example:{srv.port}' "
        r"does not name this server \(DNS rebinding\?\); allowed: IP addresses, localhost, "
        r"and allowed_hosts"
    )
    srv.wait_for_line(rf"admin: refused POST {ADMIN}/shutdown from {HOST}: Host 'evil")
    assert_same_process(srv)
    # Other routes do not care what the Host is.
    assert get(srv, "/", headers={"Host": evil}).status_code == 200


def test_rebinding_host_refused_with_token_too(servers):
    """Authentication does not make a foreign name acceptable: the token is
    the user's, the page that sends it may still be the attacker's."""
    srv = start_basic(servers, "--admin-token", "t0k")
    h = {**browser_headers(f"evil.example:{srv.port}"), "Authorization": "Bearer t0k"}
    assert_refused(get(srv, f"{ADMIN}/restart", headers=h), REBIND)
    h["Host"] = f"{HOST}:{srv.port}"
    h["Origin"] = f"http://{HOST}:{srv.port}"
    assert get(srv, f"{ADMIN}/status", headers=h).json()["pid"] == srv.pid
    assert_same_process(srv)


def test_host_missing_or_only_in_target_refused(servers):
    srv = start_basic(servers)
    # HTTP/1.0 may leave Host out; such a request names no server.
    r = raw_request(srv.port, [], version="HTTP/1.0")
    assert r.status == 403 and b"no Host header" in r.body, r
    r = raw_request(srv.port, [f"Host: {HOST}"], version="HTTP/1.0")
    assert r.status == 200 and json.loads(r.body)["pid"] == srv.pid
    # An absolute-form target's host wins over Host (RFC 9112 3.2.2): it is
    # the name the request is addressed to, and must be this server's.
    r = raw_request(srv.port, [f"Host: {HOST}:{srv.port}"],
                    path=f"http://evil.example:{srv.port}{ADMIN}/restart")  # fmt: skip
    assert r.status == 403 and f"Host 'evil.example:{srv.port}' {REBIND}".encode() in r.body, r
    r = raw_request(srv.port, [f"Host: {HOST}:{srv.port}"],
                    path=f"http://{HOST}:{srv.port}{ADMIN}/status")  # fmt: skip
    assert r.status == 200, r
    srv.wait_for_line(rf"admin: refused GET {ADMIN}/status from {HOST}: no Host header")
    assert_same_process(srv)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_host_naming_this_server_allowed(servers):
    """IP addresses (nothing to resolve: no rebinding) and localhost, with
    or without a port, in any case, with a trailing dot: let through,
    Origin and Fetch Metadata agreeing with them as a browser's would."""
    srv = start_basic(servers)
    port = srv.port
    for host in (f"{HOST}:{port}", HOST, f"localhost:{port}", "localhost", "LOCALHOST",
                 f"LocalHost.:{port}", "localhost.", "192.0.2.7:8080", "[::1]",
                 f"[::ffff:127.0.0.1]:{port}"):  # fmt: skip
        r = get(srv, f"{ADMIN}/status", headers=browser_headers(host))
        assert r.status_code == 200 and r.json()["pid"] == srv.pid, (host, r.text)
    code, body = curl(*curl_headers(browser_headers(f"localhost:{port}")), srv.url(f"{ADMIN}/status"))
    assert code == 200 and json.loads(body)["pid"] == srv.pid
    # Names that only look like these are someone else's.
    for host in ("localhost.evil.example", f"127.0.0.1.evil.example:{port}", "local",
                 "evil.example.", "localhost..", "[localhost]"):  # fmt: skip
        r = get(srv, f"{ADMIN}/status", headers=browser_headers(host))
        assert r.status_code in (400, 403), (host, r.status_code, r.text)
        if r.status_code == 403:
            assert REBIND in r.text, (host, r.text)
    assert_same_process(srv)


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not have_ipv6_loopback(), reason="no IPv6 loopback (cannot bind ::1)")
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_host_ipv6_literal_allowed(servers, monkeypatch):
    """A server on [::1], asked as http://[::1]:PORT/: Host [::1]:PORT."""
    # Server.start() learns the port from a line it looks up in conftest.
    monkeypatch.setitem(Server.start.__globals__, "LISTEN_RE",
                        re.compile(r"http server started listening on \[\[::1\]:(\d+)\]"))  # fmt: skip
    try:
        srv = servers.start("basic", "--host", "::1", "--port", "0", host=False)
    finally:
        monkeypatch.undo()
    here = f"[::1]:{srv.port}"
    r = http("GET", f"http://{here}{ADMIN}/status", headers=browser_headers(here))
    assert r.status_code == 200 and r.json()["pid"] == srv.pid, r.text
    code, body = curl("-g", *curl_headers(browser_headers(here)), f"http://{here}{ADMIN}/status")
    assert code == 200 and json.loads(body)["pid"] == srv.pid, body
    r = http("GET", f"http://{here}{ADMIN}/status", headers=browser_headers(f"evil.example:{srv.port}"))
    assert r.status_code == 403 and REBIND in r.text


def test_allowed_hosts_flag(servers):
    srv = start_basic(servers, "--admin-allow-host", "admin.internal",
                      "--admin-allow-host", "Ops.Example")  # fmt: skip
    port = srv.port
    for host in ("admin.internal", f"admin.internal:{port}", f"ADMIN.Internal:{port}",
                 "ops.example:1", f"{HOST}:{port}", "localhost"):  # fmt: skip
        r = get(srv, f"{ADMIN}/status", headers=browser_headers(host))
        assert r.status_code == 200 and r.json()["pid"] == srv.pid, (host, r.text)
    # Exact names only: no suffix, prefix or trailing-dot variants.
    for host in ("evil.example", f"internal:{port}", "admin.internal.evil.example",
                 "evil.admin.internal", "admin.internal.", "ops.example.com"):  # fmt: skip
        r = get(srv, f"{ADMIN}/restart", headers=browser_headers(host))
        assert_refused(r, f"Host '{host}' {REBIND}")
    assert_same_process(srv)


@pytest.mark.parametrize("bad", ["evil.example:80", "[::1]", "a b", "a/b", ""])
def test_bad_allow_host_refused_at_start(bad):
    p = subprocess.run(
        [str(example_path("basic")), "--host", HOST, "--port", "0", "--admin-allow-host", bad],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=20,
        env=sanitizer_env(),
    )
    if bad == "":
        assert p.returncode == 2, p.stderr  # the flag parser's own check
    else:
        assert p.returncode == 1, (bad, p.stderr)
        assert b"admin" in p.stderr and b"invalid argument" in p.stderr, p.stderr


# ---- Headers that may come only once ---------------------------------------------------


def test_duplicate_headers_refused(servers):
    """Sec-Fetch-Site, Sec-Fetch-Dest, Origin, Referer and Authorization sent
    twice: refused, even when both copies would pass. (Before, the first
    won, so a proxy that judged the last one and the guard disagreed.)"""
    token = "t0k"
    srv = start_basic(servers, "--admin-token", token)
    here = f"http://{HOST}:{srv.port}"
    base = [f"Host: {HOST}:{srv.port}", f"Authorization: Bearer {token}"]
    r = raw_request(srv.port, base)
    assert r.status == 200 and json.loads(r.body)["pid"] == srv.pid, r
    twice = {
        "Sec-Fetch-Site": ["Sec-Fetch-Site: same-origin", "Sec-Fetch-Site: same-origin"],
        "Sec-Fetch-Dest": ["Sec-Fetch-Dest: empty", "sec-fetch-dest: image"],
        "Origin": [f"Origin: {here}", "origin: http://evil.example"],
        "Referer": [f"Referer: {here}{ADMIN}", f"Referer: {here}{ADMIN}"],
        "Authorization": [f"Authorization: Bearer {token}"],  # base has one already
    }
    for name, lines in twice.items():
        for method, path in (("GET", f"{ADMIN}/status"), ("GET", f"{ADMIN}/restart"),
                             ("POST", f"{ADMIN}/shutdown")):  # fmt: skip
            r = raw_request(srv.port, base + lines, method=method, path=path)
            assert r.status == 403, (name, path, r)
            assert f"{name} header sent 2 times".encode() in r.body, (name, r.body)
    # The right token first and a wrong one after it: not "first one wins".
    r = raw_request(srv.port, [base[0], f"Authorization: Bearer {token}", "Authorization: Bearer x"])
    assert r.status == 403 and b"Authorization header sent 2 times" in r.body, r
    # Two Host headers never get this far: the parser answers 400.
    r = raw_request(srv.port, base + [f"Host: evil.example:{srv.port}"])
    assert r.status == 400, r
    srv.wait_for_line(
        rf"admin: refused GET {ADMIN}/restart from {HOST}: admin request refused: "
        r"Origin header sent 2 times \(allowed once\)"
    )
    assert_same_process(srv)


# ---- newExeFilePath -------------------------------------------------------------


@pytest.fixture
def app_dir():
    with tempfile.TemporaryDirectory(prefix="grace-admin-") as d:
        yield Path(d) / "app"


def restart_with(srv, path, **kw):
    return http("GET", srv.url(f"{ADMIN}/restart"), params={"newExeFilePath": path}, **kw)


def test_new_exe_outside_allowed_dirs_refused(servers, app_dir):
    app_dir.mkdir()
    other = app_dir.parent / "other"
    other.mkdir()
    shutil.copy2(example_path("basic"), other / "basic")
    evil = app_dir.parent / "app-evil"  # shares the allowed dir's prefix
    evil.mkdir()
    shutil.copy2(example_path("basic"), evil / "basic")
    srv = start_copy(servers, app_dir, "--admin-allow-dir", str(app_dir.parent / "allowed"))

    for path in ("/bin/true", str(other / "basic"), str(evil / "basic")):
        r = restart_with(srv, path)
        assert_refused(r, "newExeFilePath not allowed: not in the executable's directory")
    # The JSON form of a refusal, for programs.
    r = restart_with(srv, "/bin/true", headers={"Accept": "application/json"})
    assert r.status_code == 403 and r.json()["ok"] is False
    assert "newExeFilePath not allowed" in r.json()["error"]
    srv.wait_for_line(rf"admin: refused GET {ADMIN}/restart from {HOST}: newExeFilePath not")
    assert_same_process(srv)


def test_new_exe_with_dotdot_refused(servers, app_dir):
    app_dir.mkdir()
    srv = start_copy(servers, app_dir)
    # Each resolves to an existing file in the allowed directory, but '..'
    # is refused as such.
    for path in (
        f"{app_dir}/../app/basic",
        f"{app_dir}/../{app_dir.name}/basic",
        "../app/basic",
        f"{app_dir}/..",
    ):
        assert_refused(restart_with(srv, path), "newExeFilePath not allowed: '..'")
    # Encoded in the query string: decoded first, then refused.
    r = get(srv, f"{ADMIN}/restart?newExeFilePath={app_dir}/%2e%2e/app/basic")
    assert_refused(r, "'..'")
    assert_same_process(srv)


def test_new_exe_symlink_out_of_the_directory_refused(servers, app_dir):
    app_dir.mkdir()
    srv = start_copy(servers, app_dir)
    (app_dir / "evil").symlink_to("/bin/true")
    (app_dir / "evil-dir").symlink_to("/bin")
    assert_refused(restart_with(srv, str(app_dir / "evil")), "not in the executable's directory")
    assert_refused(restart_with(srv, str(app_dir / "evil-dir" / "true")), "not in the")
    assert_same_process(srv)


def test_new_exe_must_be_an_executable_file(servers, app_dir):
    app_dir.mkdir()
    srv = start_copy(servers, app_dir)
    (app_dir / "notes.txt").write_text("not a program\n")
    (app_dir / "subdir").mkdir()
    assert_refused(restart_with(srv, str(app_dir / "notes.txt")), "not an executable file")
    assert_refused(restart_with(srv, str(app_dir / "no-such-file")), "cannot resolve")
    assert_refused(restart_with(srv, str(app_dir / "subdir")), "not an executable file")
    assert_same_process(srv)


@pytest.fixture
def releases():
    """An allowed directory with a copy of basic in it, both 0755: the
    state a deploy leaves behind."""
    with tempfile.TemporaryDirectory(prefix="grace-admin-") as d:
        rel = Path(d).resolve() / "releases"
        rel.mkdir()
        shutil.copy2(example_path("basic"), rel / "basic")
        for path in (rel, rel / "basic"):
            os.chmod(path, 0o755)  # whatever the umask
        yield rel


def refusal_with(srv, exe, path, change, undo):
    """The answer to a restart with newExeFilePath=exe while change(path)
    is in effect; undo(path) afterwards, whatever happens."""
    change(path)
    try:
        return restart_with(srv, str(exe), timeout=60)
    finally:
        undo(path)


def test_new_exe_writable_by_others_refused_then_allowed(releases, grace_servers):
    """sudo's and sshd's rule: neither the executable nor its (allowed)
    directory may be writable by anyone but its owner, root or this
    process's user -- else someone else could swap the program. Each
    refusal says which path and why; the process stays. Put right, the
    same request restarts into the new executable."""
    exe = releases / "basic"
    srv = grace_servers.start("basic", "--port", "0", "--admin-allow-dir", str(releases))
    back = lambda p: os.chmod(p, 0o755)  # noqa: E731
    for path in (exe, releases):
        for mode, how in ((0o775, "group-writable"), (0o757, "world-writable"),
                          (0o777, "group- and world-writable"), (0o1757, "world-writable"),
                          (0o2775, "group-writable")):  # fmt: skip
            r = refusal_with(srv, exe, path, lambda p: os.chmod(p, mode), back)
            assert_refused(r, f"newExeFilePath not allowed: {path} is {how}\n")
    if os.geteuid() == 0:  # only root may give a file away
        for path in (exe, releases):
            r = refusal_with(srv, exe, path, lambda p: os.chown(p, 1001, -1),
                             lambda p: os.chown(p, 0, -1))  # fmt: skip
            assert_refused(r, f"newExeFilePath not allowed: {path} is owned by uid 1001\n")
            back(path)  # chown clears set-id bits only; keep the mode exact anyway
    srv.wait_for_line(
        rf"admin: refused GET {ADMIN}/restart from {HOST}: newExeFilePath not allowed: "
        rf"{re.escape(str(releases))} is group-writable$"
    )
    assert_same_process(srv)

    mark = srv.mark()
    r = restart_with(srv, str(exe), timeout=60)
    assert r.status_code == 200, (r.status_code, r.text, srv.stderr())
    m = re.fullmatch(r"restarted: new pid (\d+)\n?", r.text)
    assert m, r.text
    new_pid = int(m.group(1))
    assert srv.wait_restart(mark) == new_pid
    # Once the old process is gone, only the new one can answer. (Right
    # after "new process N is serving" the old one may still accept a
    # connection or two: restart.c logs that line before it stops.)
    assert srv.wait_pid_exit(srv.pid, timeout=30) == 0, srv.stderr()
    st = get(srv, f"{ADMIN}/status").json()
    assert st["pid"] == new_pid and st["executable"] == str(exe), st


# ---- Cross-site requests ----------------------------------------------------------


def test_cross_site_headers_refused(servers):
    srv = start_basic(servers)
    here = f"http://{HOST}:{srv.port}"
    refused = [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://{HOST}:1"},
        {"Origin": f"https://{HOST}:{srv.port}x"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "image"},
        {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "iframe"},
        {"Referer": "http://evil.example/page.html"},
    ]
    for h in refused:
        for path in (f"{ADMIN}/restart", f"{ADMIN}/shutdown", ADMIN):
            assert_refused(get(srv, path, headers=h), "admin request refused")
    srv.wait_for_line(
        rf"admin: refused GET {ADMIN}/restart from {HOST}: "
        r"cross-site admin request refused \(Sec-Fetch-Site: cross-site\)"
    )
    srv.wait_for_line(r"cross-origin admin request refused \(Origin: http://evil\.example\)")
    assert_same_process(srv)

    # What the seeds' own flows send is let through.
    allowed = [
        {},  # curl, scripts
        {"Sec-Fetch-Site": "none", "Sec-Fetch-Dest": "document"},  # typed URL
        {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "document", "Referer": here + ADMIN},
        {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "empty", "Origin": here},  # fetch()
        {"Origin": here},
        {"Referer": here + ADMIN},
    ]
    for h in allowed:
        r = get(srv, f"{ADMIN}/status", headers=h)
        assert r.status_code == 200, (h, r.text)


# ---- A real browser: headless Chromium ----------------------------------------------


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def chromium_exe():
    """Chromium's path; installed with apt-get if missing (scripts/deps.sh
    test has it). Skips only when it cannot be had, and says why."""
    exe = find_chromium()
    if exe:
        return exe
    why = "not on PATH"
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        try:
            for cmd in (["apt-get", "update", "-q"],
                        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]):
                p = subprocess.run(cmd, capture_output=True, timeout=900, env=env)
                if p.returncode != 0:
                    why = f"`{' '.join(cmd)}` failed: {p.stderr.decode(errors='replace')[-300:]}"
                    break
        except (OSError, subprocess.TimeoutExpired) as e:
            why = f"apt-get failed: {e!r}"
        exe = find_chromium()
        if exe:
            return exe
    else:
        why += "; cannot install it (needs root and apt-get)"
    pytest.skip(f"headless Chromium unavailable: {why}")


def is_chromium(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().startswith("chrom")
    except OSError:
        return False


REBOUND_NAME = "evil.example"


class Chromium:
    """Headless Chromium driven through the DevTools protocol over a pipe
    (--remote-debugging-pipe: commands on its fd 3, answers on its fd 4,
    each a JSON text ended by NUL), so no debugging port is opened."""

    def __init__(self, exe):
        self.profile = tempfile.mkdtemp(prefix="grace-chromium-")
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        # Give the child ends numbers above 4 so that bash's redirections
        # to 3 and 4 cannot overwrite one another.
        a = fcntl.fcntl(to_r, fcntl.F_DUPFD_CLOEXEC, 10)
        b = fcntl.fcntl(from_w, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (to_r, from_w):
            os.close(fd)
        args = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--no-proxy-server", "--remote-debugging-pipe",
            # DNS rebinding, as the attacker's DNS server would do it once the
            # page is loaded: evil.example is this machine. No other test
            # uses the name, so every test of the module can share it.
            f"--host-resolver-rules=MAP {REBOUND_NAME} {HOST}",
            f"--user-data-dir={self.profile}", "about:blank",
        ]
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{a} 4>&{b} {a}<&- {b}>&-', exe, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(a, b),
        )
        os.close(a)
        os.close(b)
        self.w, self.r = to_w, from_r
        self.buf = b""
        self.next_id = 0

    def call(self, method, params=None, session=None, timeout=IO_TIMEOUT):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:  # events and other answers are not needed: skipped
            m = self._read(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]

    def _read(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium in time")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                data = os.read(self.r, 1 << 16)
                if not data:
                    raise EOFError("Chromium closed its DevTools pipe")
                self.buf += data
        msg, _, self.buf = self.buf.partition(b"\0")
        return json.loads(msg)

    def new_tab(self):
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        return self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]

    def navigate(self, tab, url):
        self.call("Page.navigate", {"url": url}, session=tab)

    def evaluate(self, tab, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=tab)
        return r["result"].get("value")

    def wait_for(self, tab, expr, timeout=IO_TIMEOUT):
        """Poll expr in the tab until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(tab, expr)
            except RuntimeError as e:  # between documents: not an answer, ask again
                value, last = None, repr(e)
            else:
                last = value
            if value:
                return value
            time.sleep(0.1)
        pytest.fail(f"Chromium: {expr!r} still false after {timeout}s (last: {last!r})")

    def close(self):
        # Chromium's helpers (zygote, crashpad) outlive it for a moment and
        # come to the test process, the session's subreaper (crashpad's
        # handler daemonizes at once): stop and reap them too.
        table = proc_table()
        helpers = proc_descendants(self.proc.pid, table) + [
            p for p, (_, ppid) in table.items() if ppid == os.getpid() and is_chromium(p)
        ]
        try:
            self.call("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError, EOFError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        stop_pids(helpers, timeout=5)
        for fd in (self.w, self.r):
            os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(chromium_exe):
    b = Chromium(chromium_exe)
    try:
        yield b
    finally:
        b.close()


class ForeignSite:
    """Another origin: a tiny HTTP server serving one HTML page."""

    def __init__(self, page):
        body = page.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# The page's own host: "localhost" is another site than 127.0.0.1
# (Sec-Fetch-Site: cross-site); 127.0.0.1 on another port is the same site
# but another origin (same-site). Both must be refused.
@pytest.mark.parametrize("site_host", ["localhost", HOST])
def test_browser_cross_site_link_image_and_frame_refused(servers, browser, site_host):
    srv = start_basic(servers)
    admin = f"http://{HOST}:{srv.port}{ADMIN}"
    site = ForeignSite(
        f"""<!DOCTYPE html><html><body>
<img src="{admin}/restart">
<iframe src="{admin}"></iframe>
<a id="x" href="{admin}/shutdown">win a prize</a>
<script>window.addEventListener("load", () => document.getElementById("x").click());</script>
</body></html>"""
    )
    try:
        tab = browser.new_tab()
        browser.navigate(tab, f"http://{site_host}:{site.port}/")
        # The click navigates the tab to the refusal.
        text = browser.wait_for(
            tab, "location.pathname.endsWith('/shutdown') && document.body.innerText"
        )
        assert "admin request refused" in text, text
        for path in (f"{ADMIN}/restart", ADMIN, f"{ADMIN}/shutdown"):
            srv.wait_for_line(
                rf"admin: refused GET {path} from {HOST}: "
                r"cross-site admin request refused \(Sec-Fetch-Site: (cross|same)-site\)"
            )
        assert_same_process(srv)
    finally:
        site.close()


def test_browser_typed_url_allowed(servers, browser):
    # A URL typed into the address bar (Sec-Fetch-Site: none), as the seeds do.
    srv = start_basic(servers)
    tab = browser.new_tab()
    browser.navigate(tab, f"http://{HOST}:{srv.port}{ADMIN}/status")
    text = browser.wait_for(tab, "document.body && document.body.innerText")
    assert json.loads(text)["pid"] == srv.pid
    browser.navigate(tab, f"http://{HOST}:{srv.port}{ADMIN}")
    pid = browser.wait_for(tab, "document.getElementById('pid') && "
                                "document.getElementById('pid').innerText")
    assert pid == str(srv.pid)


def test_browser_click_restart_link_seed_walkthrough(grace_servers, browser):
    """The seed's steps: open /debug/admin, click "restart", and /pid shows
    the new process's PID; the old one drains and exits 0."""
    srv = grace_servers.start("basic", "--port", "0")
    tab = browser.new_tab()
    browser.navigate(tab, f"http://{HOST}:{srv.port}{ADMIN}")
    browser.wait_for(tab, "document.getElementById('pid') !== null")
    browser.evaluate(tab, "[...document.links].find(a => a.innerText === 'restart').click()")
    text = browser.wait_for(
        tab, "location.pathname.endsWith('/restart') && document.body.innerText", timeout=60
    )
    m = re.fullmatch(r"restarted: new pid (\d+)\n?", text)
    assert m, text
    new_pid = int(m.group(1))
    assert new_pid != srv.pid
    assert get(srv, "/pid").text == f"{new_pid}\n"
    assert srv.wait_pid_exit(srv.pid, timeout=30) == 0, srv.stderr()


ATTACK = [["GET", "status"], ["GET", "restart"], ["POST", "restart"],
          ["GET", "reload"], ["GET", "shutdown"], ["POST", "shutdown"]]  # fmt: skip


def fetch_js(calls):
    """A script that fetch()es the admin actions calls ([method, action])
    one after the other, as an attack would (the restart first, then the
    shutdown), and leaves [[method, action, status, body], ...] in
    window.__results."""
    return """
window.__results = null;
(async () => {
  const out = [];
  for (const [m, a] of %s) {
    try {
      const r = await fetch("%s/" + a, {method: m});
      out.push([m, a, r.status, await r.text()]);
    } catch (e) {
      out.push([m, a, 0, String(e)]);
    }
  }
  window.__results = out;
})();
true
""" % (json.dumps(calls), ADMIN)


def test_browser_dns_rebinding_refused(grace_servers, browser):
    """DNS rebinding in a real browser: evil.example resolves to 127.0.0.1,
    so http://evil.example:PORT/ *is* this server to Chromium, and a page
    there is same-origin with the admin (Sec-Fetch-Site: same-origin, a
    matching Origin, a loopback client). Only the Host header,
    evil.example:PORT, tells: the admin page and every action answer 403,
    nothing restarts, and the log says why."""
    srv = grace_servers.start("basic", "--port", "0")
    evil = f"http://{REBOUND_NAME}:{srv.port}"
    tab = browser.new_tab()
    # The admin page, opened on the rebound name.
    browser.navigate(tab, evil + ADMIN)
    text = browser.wait_for(tab, "location.pathname.endsWith('/admin') && document.body.innerText")
    assert f"Host '{REBOUND_NAME}:{srv.port}' {REBIND}" in text, text
    assert browser.evaluate(tab, "location.origin") == evil
    # A script on a page of that origin, as the attacker's page is once its
    # name points here. (Not on the admin page: a page the admin serves
    # forbids fetch() by its Content-Security-Policy.)
    browser.navigate(tab, evil + "/")
    browser.wait_for(tab, "location.pathname === '/' && document.body !== null")
    browser.evaluate(tab, fetch_js(ATTACK))
    results = browser.wait_for(tab, "window.__results", timeout=90)
    assert [r[:2] for r in results] == ATTACK, results
    for m, a, status, body in results:
        assert status == 403 and REBIND in body, (m, a, status, body, srv.stderr())
    for action in ("status", "restart", "reload", "shutdown"):
        srv.wait_for_line(
            rf"admin: refused (GET|POST) {ADMIN}/{action} from {HOST}: "
            rf"Host '{re.escape(REBOUND_NAME)}:{srv.port}' does not name this server"
        )
    srv.wait_for_line(rf"admin: refused POST {ADMIN}/shutdown from {HOST}: Host")
    assert srv.serving_pid() == srv.pid
    assert_same_process(srv)

    # Control: the same script on the server's own address gets through
    # (status only: the rest would restart and stop the server), so the
    # 403s above came from the name alone.
    browser.navigate(tab, f"http://{HOST}:{srv.port}/")
    browser.wait_for(tab, f"location.host === '{HOST}:{srv.port}' && document.body !== null")
    browser.evaluate(tab, fetch_js([["GET", "status"]]))
    [[_, _, status, body]] = browser.wait_for(tab, "window.__results")
    assert status == 200 and json.loads(body)["pid"] == srv.pid, (status, body)
