"""Restarts as real clients see them (SPEC G1, G9, B2): third-party clients
that never send a request twice -- wrk (keep-alive, a new connection per
request, POST bodies through lua/check.lua) and curl -- run while the
examples restart, and every request must succeed. Zero means zero: wrk's
socket errors (connect, read, write, timeout), non-2xx answers and answers
with the wrong body are all counted, and their sum must be 0.

Triggers: SIGUSR1 to the serving process, the admin URL, and the API
(examples/inflight's /restart calls grace_restart() in its handler).

After the last restart every old generation must have exited (with 0, and
been reaped) and the load must still flow before wrk is stopped
(restarts.finish_load).
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import RawConn, is_build_binary, proc_descendants, proc_table, simple_get
from restarts import (
    admin_restart,
    api_restart,
    finish_load,
    get_pid,
    log_index,
    signal_restart,
    wait_gone,
    wait_in_flight,
)
from test_restart import connection_fds, fd_kinds, get_closing, quiet_fds
from wrkload import Loads, Wrk

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

HELLO = b"Hello, World!"
CURL = "curl"


class Curl(threading.Thread):
    """One curl in the background: argv after "curl -sS"; .code, .out."""

    def __init__(self, *args, timeout=60):
        super().__init__(daemon=True)
        self.argv = [CURL, "-sS", "--max-time", str(timeout), *args]
        self.timeout = timeout
        self.code = None
        self.out = b""
        self.err = b""
        self.start()

    def run(self):
        p = subprocess.run(self.argv, capture_output=True, timeout=self.timeout + 10)
        self.code, self.out, self.err = p.returncode, p.stdout, p.stderr

    def result(self):
        self.join(self.timeout + 15)
        assert not self.is_alive(), f"{self.argv} did not finish"
        return self.code, self.out


# ---- keep-alive and new connections, three triggers -------------------------------


def test_wrk_sees_no_error_across_restarts_of_hello(grace_servers):
    """hello under wrk (16 keep-alive connections, and 4 opening a new
    connection per request), 10 graceful restarts in a row, by SIGUSR1 and
    the admin URL in turn: wrk counts no error."""
    srv = grace_servers.start("hello", "--port", "0")
    loads = Loads(Wrk(srv.url(), 16, expect=HELLO), Wrk(srv.url(), 4, close=True, expect=HELLO))
    pids = [srv.pid]
    with loads:
        loads.wait_progress(500)
        for k in range(10):
            pids.append(signal_restart(srv) if k % 2 == 0 else admin_restart(srv))
            loads.wait_progress(200)  # the load flows between restarts
        finish_load(srv, loads, pids)
    assert loads.requests() >= 10 * 400


def test_basic_restarted_every_second_with_a_sleep_in_flight(grace_servers):
    """The issue's case: basic restarted every second, 10 times (SIGUSR1 and
    admin in turn), under wrk, with the seed's 10 s /sleep in flight (curl):
    wrk sees no error, the /sleep completes in the first process, nothing is
    cut (no drain limit reached, no restart refused)."""
    srv = grace_servers.start("basic", "--port", "0", "--sleep-ms", "10000")
    root = "哈喽！\n".encode()
    p1 = srv.pid
    sleeper = Curl(srv.url("/sleep"))
    wait_in_flight(srv, p1)
    loads = Loads(Wrk(srv.url(), 16, expect=root), Wrk(srv.url(), 4, close=True, expect=root))
    pids = [p1]
    with loads:
        loads.wait_progress(200)
        t0 = time.monotonic()
        for k in range(10):
            pids.append(signal_restart(srv) if k % 2 == 0 else admin_restart(srv))
            # Pace: one restart a second (a restart itself takes a few ms).
            time.sleep(max(0.0, t0 + k + 1 - time.monotonic()))
        code, out = sleeper.result()
        assert code == 0, f"curl /sleep: exit {code} {sleeper.err!r}\n{srv.stderr()}"
        assert out == f"{p1}\n{p1}\n".encode(), out
        finish_load(srv, loads, pids)
    assert log_index(srv, r"restart refused|graceful_shutdown_timeout passed") is None, (
        srv.stderr()
    )


def test_multi_all_four_ports_under_wrk(grace_servers):
    """multi: two servers, four ports, wrk on each; 6 restarts through the
    first port's admin URL and SIGUSR1 in turn: no error on any port."""
    srv = grace_servers.start("multi", "--ports", "0,0,0,0", n_ports=4)
    names = [b"s1\n", b"s1\n", b"s2\n", b"s2\n"]
    runs = [Wrk(srv.url("/", i), 4, expect=names[i]) for i in range(4)]
    runs.append(Wrk(srv.url("/", 3), 2, close=True, expect=names[3]))
    loads = Loads(*runs)
    pids = [srv.pid]
    with loads:
        loads.wait_progress(200)
        for k in range(6):
            pids.append(admin_restart(srv) if k % 2 == 0 else signal_restart(srv))
            loads.wait_progress(100)
        finish_load(srv, loads, pids)
    for i in range(4):
        assert get_pid(srv, i) == pids[-1]


def test_api_restarts_under_wrk(grace_servers):
    """examples/inflight: grace_restart() called by a handler (the API), 6
    times, between SIGUSR1 and admin restarts, under wrk: no error."""
    srv = grace_servers.start("inflight", "--port", "0")
    loads = Loads(Wrk(srv.url("/pid"), 8), Wrk(srv.url("/pid"), 2, close=True))
    pids = [srv.pid]
    triggers = [api_restart, signal_restart, api_restart, admin_restart, api_restart, api_restart]
    with loads:
        loads.wait_progress(200)
        for trigger in triggers:
            pids.append(trigger(srv))
            loads.wait_progress(100)
        finish_load(srv, loads, pids)


# ---- what a client may be in the middle of ------------------------------------------


def test_post_bodies_across_restarts(grace_servers):
    """POST requests (not idempotent: no client sends one twice) with 1 KiB
    and 100 KiB bodies, sent without pause on keep-alive connections and on
    a new connection each, through 9 restarts (API, SIGUSR1, admin): every
    one is answered with its own body, byte for byte."""
    srv = grace_servers.start("inflight", "--port", "0")
    echo = srv.url("/echo")
    loads = Loads(
        Wrk(echo, 8, method="POST", body_bytes=1024),
        Wrk(echo, 4, method="POST", body_bytes=100 * 1024),
        Wrk(echo, 2, close=True, method="POST", body_bytes=1024),
    )
    pids = [srv.pid]
    with loads:
        loads.wait_progress(100)
        for k in range(9):
            pids.append((api_restart, signal_restart, admin_restart)[k % 3](srv))
            loads.wait_progress(50)
        finish_load(srv, loads, pids)


def test_streaming_response_lasts_20_s_across_5_restarts(grace_servers):
    """A chunked response streamed for 20 s (curl -N) while the server is
    restarted 5 times: every line arrives, from the first process, in order,
    and the stream ends normally."""
    srv = grace_servers.start("inflight", "--port", "0")
    p1 = srv.pid
    stream = Curl("-N", srv.url("/stream?seconds=20&interval_ms=100"), timeout=60)
    wait_in_flight(srv, p1)
    pids = [p1]
    t0 = time.monotonic()
    for k in range(5):
        time.sleep(max(0.0, t0 + 3 * (k + 1) - time.monotonic()))  # pace: one every 3 s
        pids.append((signal_restart, admin_restart, api_restart)[k % 3](srv))
    code, out = stream.result()
    assert code == 0, f"curl: exit {code} {stream.err!r}\n{srv.stderr()}"
    lines = out.decode().splitlines()
    assert len(lines) >= 150, f"{len(lines)} lines: {lines[-3:]}"
    ticks = lines[:-1]
    assert ticks == [f"tick {n} pid {p1}" for n in range(len(ticks))], lines[:3] + lines[-3:]
    assert lines[-1] == f"done {len(ticks)}", lines[-3:]
    for p in pids[:-1]:
        assert wait_gone(srv, p) == 0, srv.stderr()
    assert get_pid(srv) == pids[-1]


# ---- a restart storm ------------------------------------------------------------------


def test_restart_storm_leaves_no_zombie_no_leftover_no_leaked_fd(grace_servers):
    """SIGUSR1 five times a second for 5 s under wrk. A signal that comes
    while a restart is under way is refused (and logged); every restart that
    happens hands over. Afterwards: zero failed requests, no zombie among
    the program's processes, exactly one process left, and it holds the
    descriptors the first one held."""
    srv = grace_servers.start("hello", "--port", "0")
    r = get_closing(srv.port)
    assert r.status == 200 and r.body == HELLO
    base = quiet_fds(srv.pid)
    assert not connection_fds(base), base

    loads = Loads(Wrk(srv.url(), 16, expect=HELLO), Wrk(srv.url(), 4, close=True, expect=HELLO))
    with loads:
        loads.wait_progress(300)
        t0 = time.monotonic()
        for k in range(25):
            time.sleep(max(0.0, t0 + 0.2 * k - time.monotonic()))
            os.kill(srv.serving_pid(), signal.SIGUSR1)
        # Every signal was received and had its outcome: a hand-over, or a
        # refusal (a restart was under way, or the process had handed over).
        deadline = time.monotonic() + 40
        while True:
            n_signals = len(re.findall(r": received signal 10 ", srv.stderr()))
            n_done = len(re.findall(r": (new process \d+ is serving|restart refused|restart failed)",
                                    srv.stderr()))  # fmt: skip
            if (n_signals == n_done == 25) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert n_done == n_signals == 25, srv.stderr()
        pids = [srv.pid] + [int(p) for p in re.findall(r": new process (\d+) is serving", srv.stderr())]
        assert log_index(srv, r"restart failed") is None, srv.stderr()
        assert len(pids) >= 10, f"only {len(pids) - 1} of 25 signals restarted\n{srv.stderr()}"
        finish_load(srv, loads, pids)

    cur = pids[-1]
    table = proc_table()
    ours = srv.descendants()  # every generation still known to the kernel, and below
    assert [p for p in ours if table.get(p, ("?",))[0] == "Z"] == [], f"zombies: {ours}"
    mine = proc_descendants(os.getpid(), table)
    assert [p for p in mine if is_build_binary(p)] == [cur]
    r = get_closing(srv.port)
    assert r.status == 200 and r.body == HELLO
    fds = quiet_fds(cur)
    assert fd_kinds(fds) == fd_kinds(base), f"first: {base}\nnow: {fds}"


# ---- drain details -----------------------------------------------------------------


def test_idle_connections_closed_after_drain_idle_ms_busy_ones_answered(grace_servers):
    """--drain-idle-ms 2000. A keep-alive connection used again right after
    the hand-over has its request answered, with "Connection: close", then
    closed; a connection left idle is closed by the old process (a clean
    EOF, no answer owed) only once it has been idle 2 s."""
    srv = grace_servers.start("hello", "--port", "0", "--drain-idle-ms", "2000")
    p1 = srv.pid
    idle = RawConn(srv.port)
    busy = RawConn(srv.port)
    try:
        busy.send(simple_get("/"))
        assert busy.read_response().body == HELLO
        t_idle = time.monotonic()  # the idle connection's last traffic is after this
        idle.send(simple_get("/"))
        assert idle.read_response().body == HELLO
        p2 = admin_restart(srv)
        # The busy one: its next request is answered, with Connection: close.
        busy.send(simple_get("/"))
        r = busy.read_response()
        assert r.status == 200 and r.body == HELLO and r.closes(), r
        assert busy.wait_closed() == b""
        # The idle one: closed by P1, not before it has been idle 2 s.
        assert idle.wait_closed(timeout=10) == b""
        # A lower bound, not a speed test: grace must not close it sooner.
        # (Its clock is CLOCK_MONOTONIC_COARSE: a few ms of granularity.)
        assert time.monotonic() - t_idle >= 1.98
    finally:
        idle.close()
        busy.close()
    assert wait_gone(srv, p1) == 0
    assert srv.alive_pids() == [p2]
