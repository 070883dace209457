"""Graceful shutdown (SPEC G3, G7, B2): on SIGTERM (and SIGINT, SIGQUIT,
SIGHUP) the server stops accepting, closes idle keep-alive connections,
lets a request in flight finish with its full answer, then exits 0."""

import os
import signal
import threading

import pytest

from conftest import RawConn, http, port_refuses, simple_get
from restarts import wait_in_flight

SLEEP_MS = 3000


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def test_in_flight_request_finishes_after_sigterm(servers):
    srv = servers.start("basic", "--port", "0", "--sleep-ms", str(SLEEP_MS))
    assert children_of(srv.pid) == [], "the server has child processes"

    result = {}
    sleeper_done = threading.Event()
    sleeper_sent = threading.Event()

    def sleeper():
        try:
            with RawConn(srv.port) as c:
                c.send(simple_get("/sleep"))
                sleeper_sent.set()
                r = c.read_response(timeout=30)
                result["response"] = r
                # After its answer the connection is closed: the server is
                # going away, so it must not stay open for another request.
                result["after"] = c.wait_closed(timeout=10)
        except BaseException as e:  # noqa: BLE001 - reported below
            result["error"] = e
        finally:
            sleeper_sent.set()
            sleeper_done.set()

    # An idle keep-alive connection: one request done, then nothing.
    idle = RawConn(srv.port)
    try:
        idle.send(simple_get("/pid"))
        assert idle.read_response().status == 200

        t = threading.Thread(target=sleeper, daemon=True)
        t.start()
        assert sleeper_sent.wait(10)
        wait_in_flight(srv, srv.pid)  # /sleep is inside its handler
        assert not sleeper_done.is_set(), result

        srv.send_signal(signal.SIGTERM)

        # The idle connection is closed once idle for drain_idle_ms (1 s), not
        # after the drain.
        extra = idle.wait_closed(timeout=10)
        assert extra == b"", f"idle connection got {extra!r}"
        assert not sleeper_done.is_set(), "idle connection was closed only after the drain"

        # The listener is closed while /sleep still runs.
        assert port_refuses(srv.port, timeout=10), "still accepting after SIGTERM"
        assert not sleeper_done.is_set(), "listener was closed only after the drain"
    finally:
        idle.close()

    assert sleeper_done.wait(60), "in-flight /sleep never finished"
    t.join(5)
    assert "error" not in result, f"in-flight request failed: {result.get('error')!r}"
    r = result["response"]
    assert r.status == 200, r
    assert r.body == f"{srv.pid}\n{srv.pid}\n".encode(), r
    assert result["after"] == b""

    code = srv.wait_exit(timeout=15)
    assert code == 0, f"exit code {code}\n{srv.stderr()}"
    assert any("server shutting down" in l for l in srv.lines), srv.stderr()
    assert any("all servers shutdown" in l for l in srv.lines), srv.stderr()
    assert not os.path.exists(f"/proc/{srv.pid}"), "process not reaped"


def test_shutdown_with_nothing_in_flight_is_prompt(servers):
    srv = servers.start("basic", "--port", "0")
    with RawConn(srv.port) as c:  # an idle keep-alive connection must not hold it up
        c.send(simple_get("/"))
        assert c.read_response().status == 200
        srv.send_signal(signal.SIGTERM)
        c.wait_closed(timeout=10)
    assert srv.wait_exit(timeout=10) == 0, srv.stderr()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT, signal.SIGHUP])
def test_other_shutdown_signals(servers, sig):
    srv = servers.start("basic", "--port", "0")
    assert http("GET", srv.url("/pid")).status_code == 200
    srv.send_signal(sig)
    code = srv.wait_exit(timeout=15)
    assert code == 0, f"exit code {code} after {sig.name}\n{srv.stderr()}"
    assert any("all servers shutdown" in l for l in srv.lines), srv.stderr()
    assert port_refuses(srv.port, timeout=5)

