"""TLS session resumption across restarts (issue 12 item 4), black-box, on
examples/https with openssl s_client as the client.

A client keeps its session in a file (s_client -sess_out), the server
restarts, and the client offers the session again (-sess_in): s_client
prints "Reused, TLSv1.x" when the server resumed it, "New, TLSv1.x" after a
full handshake. Every connection sends GET /pid and reads the answer to the
end (-ign_eof): that is when a TLS 1.3 client receives its tickets, and the
PID says which process resumed the session. Both TLS 1.2 (ticket in the
handshake) and TLS 1.3 (tickets after it) are tried.

What is checked: after a graceful restart (and a second one), a rolled-back
restart, a full restart in place, across a master's children (a child that
is gone, a restart of all of them, the master's full restart), every
session resumes on the new process; a server started afresh does not resume
an old session (so the check can fail); the log says where the keys came
from, and never prints one.

No sleep is an assertion: every wait is on a log line or a process.
"""

import os
import re
import shutil
import signal
import sys

import pytest

from restarts import line_re, signal_restart
from test_https import OPENSSL, install, live, pki, s_client, start, tls_servers  # noqa: F401
from test_master import wait_children

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only"),
    pytest.mark.skipif(OPENSSL is None, reason="the openssl command is needed"),
]

VERSIONS = ["tls1_2", "tls1_3"]
PID_GET = b"GET /pid HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
GENERATED = r"TLS session tickets: new keys generated \(a new key every 3600 s, each accepted"
INHERITED = r"TLS session tickets: \d keys? inherited from the process that started this one"


def connect(srv, version, sess_out=None, sess_in=None, port=None):
    """One s_client connection with GET /pid, read to the end. Returns
    ("New" or "Reused", the PID that answered)."""
    args = [f"-{version}"]
    if sess_out is not None:
        args += ["-sess_out", str(sess_out)]
    if sess_in is not None:
        args += ["-sess_in", str(sess_in)]
    rc, out = s_client(port or srv.port, srv.ca, *args, request=PID_GET)
    kinds = re.findall(r"^(New|Reused), (TLSv1\.[23]), Cipher is", out, re.M)
    answer = re.search(r"\r\n\r\n(\d+)\n", out)
    want = "TLSv1.2" if version == "tls1_2" else "TLSv1.3"
    assert rc == 0 and len(kinds) == 1 and kinds[0][1] == want and answer, out
    assert "Verify return code: 0 (ok)" in out, out
    if sess_out is not None:
        assert os.path.getsize(sess_out) > 0, f"no session written\n{out}"
        if version == "tls1_3":
            assert "Post-Handshake New Session Ticket arrived" in out, out
    return kinds[0][0], int(answer.group(1))


def no_key_bytes(srv):
    """The log never holds a ticket key: the lines about them hold no long
    run of hex or base64."""
    for line in srv.stderr().splitlines():
        if "ticket" in line.lower():
            assert not re.search(r"[0-9A-Fa-f]{32}|[A-Za-z0-9+/]{40}", line), line


# ---- self-replacing restarts -----------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_sessions_resume_after_graceful_restarts(start, tmp_path, version):
    srv = start()
    p1 = srv.pid
    srv.wait_for_line(line_re(p1, GENERATED))
    sess = tmp_path / "session.pem"
    assert connect(srv, version, sess_out=sess) == ("New", p1)
    assert connect(srv, version, sess_in=sess) == ("Reused", p1)

    mark = srv.mark()
    p2 = signal_restart(srv)
    srv.wait_for_line(line_re(p2, INHERITED), start=mark)
    assert connect(srv, version, sess_in=sess) == ("Reused", p2)
    assert connect(srv, version, sess_in=sess) == ("Reused", p2)  # a ticket serves again
    assert connect(srv, version) == ("New", p2)  # (no session offered: a full handshake)

    # The new process passes the keys on in turn: the first session still resumes.
    p3 = signal_restart(srv)
    assert connect(srv, version, sess_in=sess) == ("Reused", p3)
    no_key_bytes(srv)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_server_started_afresh_does_not_resume_an_old_session(start, tmp_path, version):
    """The same program, certificate and client, but a fresh start (not a
    restart): its keys are new, the old ticket means nothing to it. This is
    what every restart looked like before the key ring, and it shows that
    the checks above can fail."""
    first = start()
    sess = tmp_path / "session.pem"
    assert connect(first, version, sess_out=sess) == ("New", first.pid)
    assert first.stop() == 0
    second = start()
    second.wait_for_line(line_re(second.pid, GENERATED))
    assert connect(second, version, sess_in=sess) == ("New", second.pid)


def test_a_rolled_back_restart_keeps_the_keys(tls_servers, pki, live, tmp_path):
    """A restart that fails (the new key file matches no certificate) leaves
    the old process serving with its keys; the next restart, with the files
    fixed, still passes them on."""
    srv = tls_servers.start(live.cert, live.key, pki.ca)
    p1 = srv.pid
    sessions = {v: tmp_path / f"{v}.pem" for v in VERSIONS}
    for v, f in sessions.items():
        assert connect(srv, v, sess_out=f) == ("New", p1)
    tmp = live.key.with_name("key.pem.new")
    shutil.copyfile(pki.other_key, tmp)
    os.replace(tmp, live.key)
    mark = srv.mark()
    os.kill(p1, signal.SIGUSR1)
    srv.wait_for_line(line_re(p1, r"restart failed: .*this process keeps serving"), start=mark)
    for v, f in sessions.items():
        assert connect(srv, v, sess_in=f) == ("Reused", p1)
    install(pki.a, live.cert, live.key)
    p2 = signal_restart(srv)
    for v, f in sessions.items():
        assert connect(srv, v, sess_in=f) == ("Reused", p2)


def test_a_full_restart_resumes(start, tmp_path):
    """SIGUSR2: the same PID executes the program afresh and binds its port
    again (port 0: another one); the keys go along through the exec."""
    srv = start()
    p1 = srv.pid
    sessions = {v: tmp_path / f"{v}.pem" for v in VERSIONS}
    for v, f in sessions.items():
        assert connect(srv, v, sess_out=f) == ("New", p1)
    mark = srv.mark()
    srv.send_signal(signal.SIGUSR2)
    srv.wait_for_line(line_re(p1, INHERITED), start=mark)
    m = srv.wait_for_line(
        line_re(p1, r"https server started listening on \[127\.0\.0\.1:(\d+)\]"), start=mark
    )
    srv.ports = [int(m.group(1))]
    for v, f in sessions.items():
        assert connect(srv, v, sess_in=f) == ("Reused", p1)


# ---- a fresh ticket for every TLS 1.3 resumption ----------------------------------


def tickets_1_3(srv, *args):
    """One TLS 1.3 s_client connection with GET /pid, read to the end (so
    the tickets have arrived). Returns ("New" or "Reused", the number of
    session tickets the server sent)."""
    rc, out = s_client(srv.port, srv.ca, "-tls1_3", *args, request=PID_GET)
    kinds = re.findall(r"^(New|Reused), TLSv1\.3, Cipher is", out, re.M)
    assert rc == 0 and len(kinds) == 1 and re.search(r"\r\n\r\n\d+\n", out), out
    return kinds[0], out.count("Post-Handshake New Session Ticket arrived")


def test_a_resumed_tls1_3_session_gets_a_fresh_ticket(start, tmp_path):
    """TLS 1.3 tickets are for one use (RFC 8446 C.4): a client that keeps a
    session cache (wrk, and any OpenSSL client with SSL_SESS_CACHE_CLIENT)
    drops a session once it resumed it. So a resumed connection gets a new
    ticket, as OpenSSL's own keys and nginx give one; without it such a
    client resumed every other connection only (a full handshake in
    between), and a client with Nagle on waited for a delayed ACK before
    its request. A full handshake brings two tickets, a resumption one, and
    each new ticket resumes in turn, also after a restart (sealed with the
    inherited keys)."""
    srv = start()
    s = [tmp_path / f"s{i}.pem" for i in range(5)]
    assert tickets_1_3(srv, "-sess_out", str(s[0])) == ("New", 2)
    assert tickets_1_3(srv, "-sess_in", str(s[0]), "-sess_out", str(s[1])) == ("Reused", 1)
    assert s[1].read_bytes() != s[0].read_bytes()  # (another ticket)
    assert tickets_1_3(srv, "-sess_in", str(s[1]), "-sess_out", str(s[2])) == ("Reused", 1)
    signal_restart(srv)
    assert tickets_1_3(srv, "-sess_in", str(s[2]), "-sess_out", str(s[3])) == ("Reused", 1)
    assert tickets_1_3(srv, "-sess_in", str(s[3]), "-sess_out", str(s[4])) == ("Reused", 1)


# ---- master mode -------------------------------------------------------------------


def test_master_children_share_the_keys(tls_servers, pki, tmp_path):
    """--workers 3: the master makes the keys, every child inherits the
    same ones. A session made on one child resumes on the others: each
    connection reaches whichever child accepts first, and every one of them
    must be a resumption. Then a child is told to stop: once it is gone, its
    sessions resume on the others (and on its replacement, started later).
    Then a restart of every child: the sessions made before still resume."""
    srv = tls_servers.start(pki.a.cert, pki.a.key, pki.ca, "--workers", "3")
    srv.wait_for_line(line_re(srv.pid, GENERATED))
    first = wait_children(srv, 3)
    for c in first:
        srv.wait_for_line(line_re(c, INHERITED))
    sessions = {v: tmp_path / f"{v}.pem" for v in VERSIONS}
    made_on = {}
    for v, f in sessions.items():
        kind, made_on[v] = connect(srv, v, sess_out=f)
        assert kind == "New" and made_on[v] in first
    for v, f in sessions.items():
        for _ in range(6):
            kind, pid = connect(srv, v, sess_in=f)
            assert kind == "Reused" and pid in first, (kind, pid)

    gone = made_on["tls1_3"]
    mark = srv.mark()
    os.kill(gone, signal.SIGTERM)
    srv.wait_for_line(rf": master: child {gone} exited with status 0", start=mark)
    (replacement,) = wait_children(srv, 1, start=mark)
    for v, f in sessions.items():
        for _ in range(6):
            kind, pid = connect(srv, v, sess_in=f)
            assert kind == "Reused" and pid != gone, (kind, pid)
    srv.wait_for_line(line_re(replacement, INHERITED))

    mark = srv.mark()
    os.kill(srv.pid, signal.SIGUSR1)
    srv.wait_for_line(r": master: restarting the children", start=mark)
    news = wait_children(srv, 3, start=mark)
    for c in [*first, replacement]:  # gone: no old child can take a connection
        srv.wait_for_line(rf": master: child {c} exited with status 0")
    for v, f in sessions.items():
        for _ in range(6):
            kind, pid = connect(srv, v, sess_in=f)
            assert kind == "Reused" and pid in news, (kind, pid, news)


def test_master_full_restart_resumes(tls_servers, pki, tmp_path):
    """SIGUSR2 to the master: it executes itself afresh with the keys, and
    its new children resume the sessions made on the old ones."""
    srv = tls_servers.start(pki.a.cert, pki.a.key, pki.ca, "--workers", "2")
    wait_children(srv, 2)
    sessions = {v: tmp_path / f"{v}.pem" for v in VERSIONS}
    for v, f in sessions.items():
        assert connect(srv, v, sess_out=f)[0] == "New"
    mark = srv.mark()
    srv.send_signal(signal.SIGUSR2)
    srv.wait_for_line(line_re(srv.pid, r"master: executing .* afresh"), start=mark)
    srv.wait_for_line(line_re(srv.pid, INHERITED), start=mark)
    m = srv.wait_for_line(
        line_re(srv.pid, r"https server started listening on \[127\.0\.0\.1:(\d+)\]"), start=mark
    )
    srv.ports = [int(m.group(1))]
    news = wait_children(srv, 2, start=mark)
    for v, f in sessions.items():
        kind, pid = connect(srv, v, sess_in=f)
        assert kind == "Reused" and pid in news, (kind, pid, news)
