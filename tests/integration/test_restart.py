"""Graceful restart, full restart, rollback and drain limits (SPEC G1-G5, G7,
G8, B1, B2), black-box, on the example servers (graceful mode is on in every
example; the admin page is at /debug/admin).

A graceful restart hands the listening sockets to a new process, a child of
the old one, which then exits: the new process is re-parented. The session
is a child subreaper (conftest), so every generation comes back to pytest;
the grace_servers fixture follows a server across its generations by the PID
field of its log lines, and at teardown stops, reaps and checks all of them
(exit code 0, no sanitizer report, nothing left running).

No sleep is an assertion and no assertion is about timing: waits are bounded
and fail with what was seen. That a /sleep is in flight is observed, not
assumed: the admin status JSON counts the requests each server is running.
Load comes from loadgen.py, which counts every request and never sends one
twice; test_real_clients.py does the same with wrk and curl. Restart
helpers (and the log lines they rely on) are in restarts.py.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import (
    BUILD_DIR,
    RawConn,
    http,
    is_build_binary,
    proc_descendants,
    proc_stat,
    proc_table,
    simple_get,
    zombie_children,
)
from loadgen import LoadGen, Target, run_errors
from wrkload import Loads, Wrk
from restarts import (
    admin,
    admin_restart,
    get_pid,
    line_re,
    log_index,
    signal_restart,
    wait_gone,
    wait_in_flight,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

HELPERS = BUILD_DIR / "tests" / "helpers"
HELLO = b"Hello, World!"


# ---- helpers -----------------------------------------------------------------


class SlowGet(threading.Thread):
    """GET path on its own connection in the background (e.g. /sleep).
    Afterwards: .response (a conftest Response) or .error (the exception:
    AssertionError when the connection closed before a full response)."""

    def __init__(self, port, path="/sleep", timeout=40.0):
        super().__init__(daemon=True)
        self.port = port
        self.path = path
        self.timeout = timeout
        self.response = None
        self.error = None
        self.sent = threading.Event()
        self.start()

    def run(self):
        try:
            with RawConn(self.port, timeout=self.timeout) as c:
                c.send(simple_get(self.path))
                self.sent.set()
                self.response = c.read_response(timeout=self.timeout)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.sent.set()

    def result(self, timeout=None):
        self.join(self.timeout + 5 if timeout is None else timeout)
        assert not self.is_alive(), f"GET {self.path} did not finish"
        return self.response


def fd_table(pid):
    """{fd: link target} of process pid."""
    out = {}
    base = f"/proc/{pid}/fd"
    for name in os.listdir(base):
        try:
            out[int(name)] = os.readlink(f"{base}/{name}")
        except OSError:
            pass
    return out


def tcp_states():
    """{socket inode: TCP state (hex, "0A" = LISTEN)} of this namespace."""
    states = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    states[parts[9]] = parts[3]
        except OSError:
            pass
    return states


def connection_fds(fds):
    """The fds that are sockets other than TCP listeners: connections (one
    that has closed is in no /proc/net table at all, so unknown counts)."""
    states = tcp_states()
    out = []
    for fd, link in fds.items():
        m = re.fullmatch(r"socket:\[(\d+)\]", link)
        if m and states.get(m.group(1)) != "0A":
            out.append(fd)
    return out


def quiet_fds(pid, timeout=10.0):
    """The fd table of pid once it holds no connection (clients closed):
    waits, bounded, for connections to be closed."""
    deadline = time.monotonic() + timeout
    while True:
        fds = fd_table(pid)
        if not connection_fds(fds) or time.monotonic() > deadline:
            return fds
        time.sleep(0.05)


def wait_released(srv, pid, timeout=10.0):
    """Wait until the old process pid has closed its listening sockets (it
    drops them once each of its event loops has let go, shortly after the
    hand-over): from then on every new connection goes to the new process."""
    deadline = time.monotonic() + timeout
    while srv.pid_alive(pid):
        try:
            fds = fd_table(pid)
        except OSError:
            return  # gone meanwhile
        states = tcp_states()
        listening = [
            fd
            for fd, link in fds.items()
            if (m := re.fullmatch(r"socket:\[(\d+)\]", link)) and states.get(m.group(1)) == "0A"
        ]
        if not listening:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"process {pid} still holds listening sockets {listening}\n{srv.stderr()}")
        time.sleep(0.01)


def fd_kinds(fds):
    """A multiset of what the fds are ("socket", "pipe", "anon_inode:[eventpoll]", paths)."""
    kinds = {}
    for link in fds.values():
        k = re.sub(r":\[\d+\]$", "", link)
        kinds[k] = kinds.get(k, 0) + 1
    return kinds


def get_closing(port, path="/"):
    """One request with Connection: close on a raw connection; waits until the
    server has closed it and closes our end."""
    with RawConn(port) as c:
        c.send(simple_get(path, extra="Connection: close\r\n"))
        r = c.read_response()
        c.wait_closed()
    return r


# ---- 1. the seed's walkthrough -------------------------------------------------


def test_seed_walkthrough_sleep_survives_admin_restart(grace_servers):
    """The seed: /pid, a long /sleep in flight, /debug/admin/restart: the new
    process serves /pid at once while the old one finishes /sleep, then
    exits 0."""
    srv = grace_servers.start("basic", "--port", "0", "--sleep-ms", "10000")
    p1 = get_pid(srv)
    assert p1 == srv.pid

    sleeper = SlowGet(srv.port, "/sleep")
    wait_in_flight(srv, p1)

    mark = srv.mark()
    r = admin(srv, "restart")
    assert r.status_code == 200, f"{r.status_code} {r.text!r}\n{srv.stderr()}"
    m = re.fullmatch(r"restarted: new pid (\d+)\n?", r.text)
    assert m, r.text
    p2 = int(m.group(1))
    assert p2 != p1

    # The log tells the seed's story, in order (the reader of the log may
    # be a moment behind the answer: wait for the last line first).
    assert srv.wait_restart(mark) == p2
    port = srv.port
    i_reloading = log_index(srv, line_re(p1, "server reloading"), mark)
    i_reloaded = log_index(
        srv, line_re(p2, rf"http server reloaded listening on \[127\.0\.0\.1:{port}\]"), mark
    )
    i_serving = log_index(srv, line_re(p1, f"new process {p2} is serving"), mark)
    assert None not in (i_reloading, i_reloaded, i_serving), srv.stderr()
    assert i_reloading < i_reloaded < i_serving, srv.stderr()

    # The new process answers new requests while the old one still sleeps.
    wait_released(srv, p1)
    assert get_pid(srv) == p2
    assert srv.pid_alive(p1), "the old process exited before its /sleep finished"

    # /sleep completes normally: it ran in the old process from start to end.
    resp = sleeper.result()
    assert sleeper.error is None, f"/sleep failed: {sleeper.error!r}\n{srv.stderr()}"
    assert resp.status == 200
    assert resp.body == f"{p1}\n{p1}\n".encode()

    # Then the old process exits 0, having said so.
    assert srv.proc.wait(timeout=30) == 0, srv.stderr()
    srv.wait_for_line(line_re(p1, "all servers shutdown"), start=mark)
    assert get_pid(srv) == p2


# ---- 2. zero failed requests under load ----------------------------------------


def test_no_failed_request_across_20_restarts_under_load(grace_servers):
    """hello under keep-alive and new-connection load, restarted 20 times in
    a row (SIGUSR1 and admin alternately, each waited for): no request fails.
    (A short probation: each old generation is waited for before the next
    restart, and the probation is not what this test is about.)"""
    srv = grace_servers.start("hello", "--port", "0", "--probation-ms", "200")
    gen = LoadGen([Target(srv.port, "/", HELLO)], keepalive=4, fresh=2)
    pids = [srv.pid]
    overlapped = 0
    with gen:
        assert gen.wait_ok(50), run_errors(gen.stats)
        for k in range(20):
            old = pids[-1]
            before = gen.ok_count()
            new = signal_restart(srv) if k % 2 == 0 else admin_restart(srv)
            assert new not in pids
            pids.append(new)
            # The old generation drains and exits 0 before the next restart
            # (so the drain limit never cuts anything: max_draining is
            # tested on its own below).
            code = wait_gone(srv, old)
            assert code == 0, f"process {old} exited with {code}\n{srv.stderr()}"
            overlapped += gen.ok_count() > before
            # The load reaches the new process before the next restart.
            assert gen.wait_ok(50), run_errors(gen.stats)
    stats = gen.stats
    print(f"\nhello x20 restarts: {stats.summary()}; load during {overlapped}/20 restarts")
    assert stats.failed == 0, run_errors(stats) + "\n" + srv.stderr()
    assert stats.ok >= 20 * 50, run_errors(stats)
    assert overlapped >= 10, f"the load ran during only {overlapped} of 20 restarts"
    assert srv.serving_pid() == pids[-1]
    assert srv.alive_pids() == [pids[-1]]
    r = http("GET", srv.url("/"))
    assert r.status_code == 200 and r.content == HELLO


def test_multi_all_ports_restart_together_under_load(grace_servers):
    """multi: two servers, four ports. A restart through the admin URL of the
    first port restarts both servers; the load on all four ports sees no
    failure, and afterwards every port answers from the new process."""
    srv = grace_servers.start("multi", "--ports", "0,0,0,0", n_ports=4)
    names = [b"s1\n", b"s1\n", b"s2\n", b"s2\n"]
    targets = [Target(p, "/", body) for p, body in zip(srv.ports, names)]
    gen = LoadGen(targets, keepalive=8, fresh=4)
    pids = [srv.pid]
    with gen:
        assert gen.wait_ok(100), run_errors(gen.stats)
        for k in range(6):
            old = pids[-1]
            mark = srv.mark()
            new = admin_restart(srv, i=0) if k % 2 == 0 else signal_restart(srv)
            pids.append(new)
            # Every address of both servers was taken over by the new process.
            for p in srv.ports:
                srv.wait_for_line(
                    line_re(new, rf"http server reloaded listening on \[127\.0\.0\.1:{p}\]"),
                    start=mark,
                )
            assert log_index(srv, line_re(new, "http server started"), mark) is None, (
                "the new process bound a port afresh instead of inheriting it\n" + srv.stderr()
            )
            code = wait_gone(srv, old)
            assert code == 0, f"process {old} exited with {code}\n{srv.stderr()}"
            assert gen.wait_ok(100), run_errors(gen.stats)
    stats = gen.stats
    print(f"\nmulti x6 restarts: {stats.summary()}")
    assert stats.failed == 0, run_errors(stats) + "\n" + srv.stderr()
    for t in targets:
        assert stats.ok_by_target.get(repr(t), 0) >= 100, run_errors(stats)
    for i in range(4):
        assert get_pid(srv, i) == pids[-1]
        r = http("GET", srv.url("/", i))
        assert r.status_code == 200 and r.content == names[i]


def test_new_connection_whose_request_comes_after_the_handover_is_answered(grace_servers):
    """A client connects, and its request follows a moment later (a slow
    client, a TLS handshake, a thread that was not scheduled): if a graceful
    restart happens in between, the request must still be answered -- by
    either process: closing the connection unanswered would fail it."""
    srv = grace_servers.start("hello", "--port", "0")
    p1 = srv.pid
    conns = [RawConn(srv.port) for _ in range(3)]
    try:
        p2 = admin_restart(srv)
        got = []
        for c in conns:
            try:
                c.send(simple_get("/"))
                r = c.read_response()
                got.append((r.status, r.body))
            except (AssertionError, OSError) as e:
                got.append(("no answer", repr(e)))
    finally:
        for c in conns:
            c.close()
    assert got == [(200, HELLO)] * 3, f"answers: {got}\n{srv.stderr()}"
    assert wait_gone(srv, p1) == 0
    assert srv.serving_pid() == p2


# ---- 3. rollback -----------------------------------------------------------------


def test_rollback_keeps_the_old_process_serving(grace_servers):
    """A new executable that exits at once, one that never becomes ready, and
    a path that does not exist: each restart fails with an error answer and a
    log line saying why, the old process serves on without a failed request
    and without a zombie, and a normal restart still works afterwards."""
    srv = grace_servers.start(
        "basic",
        "--port", "0",
        "--graceful-timeout-ms", "2000",
        "--admin-allow-dir", str(HELPERS),
    )  # fmt: skip
    p1 = srv.pid
    # (executable, admin status class, the log line that says why)
    cases = [
        (HELPERS / "exit_now", 5, r"restart failed: new process (\d+) exited with status 3"),
        (
            HELPERS / "never_ready",
            5,
            r"restart failed: new process (\d+) was not ready within 2000 ms and was killed",
        ),
        # The admin refuses a path it cannot resolve before any restart
        # starts: a 403 and an "admin: refused" line that says why.
        (
            HELPERS / "no_such_program",
            4,
            r"admin: refused .*newExeFilePath not allowed: cannot resolve it",
        ),
    ]
    for exe, _, _ in cases[:2]:
        assert exe.exists(), f"helper {exe} not built"
    # Light load that checks every answer came from p1: no other process
    # may serve, even for a moment.
    gen = LoadGen([Target(srv.port, "/pid", f"{p1}\n".encode())], keepalive=2, fresh=1)
    with gen:
        assert gen.wait_ok(20), run_errors(gen.stats)
        for exe, klass, why in cases:
            mark = srv.mark()
            r = admin(srv, "restart", exe=exe)
            assert r.status_code // 100 == klass, f"restart to {exe}: {r.status_code} {r.text!r}"
            assert "restart" in r.text or "not allowed" in r.text, r.text
            m = srv.wait_for_line(line_re(p1, why), start=mark)
            assert log_index(srv, r"is serving", mark) is None, srv.stderr()
            # The failed child was reaped by the server: no zombie, no child.
            if m.lastindex and m.group(1) and m.group(1).isdigit():
                child = int(m.group(1))
                st = proc_stat(child)
                assert st is None, f"failed child {child} still exists: {st}"
            assert zombie_children(p1) == [], f"zombies under {p1}"
            assert [p for p in proc_descendants(p1)] == [], "children left under the server"
            assert get_pid(srv) == p1
            assert srv.serving_pid() == p1
            assert gen.wait_ok(20), run_errors(gen.stats)
    stats = gen.stats
    print(f"\nrollback: {stats.summary()}")
    assert stats.failed == 0, run_errors(stats) + "\n" + srv.stderr()

    # No stuck "restarting" state: a normal restart works.
    p2 = admin_restart(srv)
    assert p2 != p1
    assert wait_gone(srv, p1) == 0
    assert get_pid(srv) == p2


def test_new_process_that_crashes_during_probation_gives_the_sockets_back(grace_servers):
    """A new executable that says ready, then aborts 300 ms later: the old
    process, on probation watch, takes its listening sockets back and
    serves on. wrk never meets a refused connection (the kernel queue lived
    on in the old process); only connections the dead process held could
    fail. A normal restart works afterwards."""
    srv = grace_servers.start("basic", "--port", "0", "--admin-allow-dir", str(HELPERS))
    p1 = srv.pid
    loads = Loads(Wrk(srv.url("/"), 8), Wrk(srv.url("/"), 2, close=True))
    with loads:
        loads.wait_progress(200)
        mark = srv.mark()
        r = admin(srv, "restart", exe=HELPERS / "dies_after_ready")
        assert r.status_code == 200, f"{r.status_code} {r.text!r}\n{srv.stderr()}"
        p2 = int(re.fullmatch(r"restarted: new pid (\d+)\n", r.text).group(1))
        srv.wait_for_line(
            line_re(p1, rf"new process {p2} was killed by signal 6 \(Aborted\) \d+ ms after it "
                        r"was ready \(probation 2000 ms\): this process takes its sockets back "
                        r"and keeps serving"),
            start=mark,
        )  # fmt: skip
        srv.expect_exit[p2] = -6
        assert wait_gone(srv, p2) == -6
        for _ in range(20):
            assert get_pid(srv) == p1
        loads.wait_progress(200)
        loads.stop()
    print("\n" + loads.report())
    for run in loads.runs:
        assert run.result["connect"] == 0, loads.report()  # never nothing listening
        assert run.result["timeout"] == 0 and run.result["bad"] == 0, loads.report()
    assert srv.pid_alive(p1)

    p3 = admin_restart(srv)
    assert wait_gone(srv, p1) == 0
    assert get_pid(srv) == p3


# ---- 4. drain limit ----------------------------------------------------------------


def test_drain_limit_cuts_a_request_that_outlives_it(grace_servers):
    """--shutdown-timeout-ms 1500 and a 10 s /sleep in flight: SIGTERM, and
    the process exits after the drain limit, not after the sleep, closing
    the connection without an answer."""
    srv = grace_servers.start(
        "basic", "--port", "0", "--shutdown-timeout-ms", "1500", "--sleep-ms", "10000"
    )
    sleeper = SlowGet(srv.port, "/sleep", timeout=30)
    wait_in_flight(srv, srv.pid)
    mark = srv.mark()
    srv.send_signal(signal.SIGTERM)
    try:
        code = srv.proc.wait(timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 8 s after SIGTERM with a 1.5 s drain limit\n{srv.stderr()}")
    srv.wait_for_line(
        line_re(srv.pid, r"graceful_shutdown_timeout passed: closing 1 remaining connections"),
        start=mark,
    )
    resp = sleeper.result(timeout=10)
    assert resp is None, f"/sleep got a full answer: {resp!r}"
    assert isinstance(sleeper.error, AssertionError), repr(sleeper.error)
    assert code == 0, srv.stderr()


# ---- 5. full restart ---------------------------------------------------------------


def test_full_restart_sigusr2_execs_in_place(grace_servers):
    """SIGUSR2: the in-flight /sleep completes, every server closes, and the
    program runs afresh in the same process, binding its port again."""
    srv = grace_servers.start("basic", "--port", "0", "--sleep-ms", "2000")
    p1 = srv.pid
    sleeper = SlowGet(srv.port, "/sleep")
    wait_in_flight(srv, p1)
    mark = srv.mark()
    srv.send_signal(signal.SIGUSR2)
    resp = sleeper.result()
    assert sleeper.error is None, f"/sleep failed: {sleeper.error!r}\n{srv.stderr()}"
    assert resp.status == 200 and resp.body == f"{p1}\n{p1}\n".encode()

    m = srv.wait_for_line(
        line_re(p1, r"http server started listening on \[127\.0\.0\.1:(\d+)\]"), start=mark
    )
    new_port = int(m.group(1))
    i_restarting = log_index(srv, line_re(p1, "server restarting"), mark)
    i_down = log_index(srv, line_re(p1, "all servers shutdown"), mark)
    i_started = log_index(srv, line_re(p1, "http server started listening"), mark)
    assert None not in (i_restarting, i_down), srv.stderr()
    assert i_restarting < i_down < i_started, srv.stderr()
    assert srv.running(), "the process exited instead of executing itself again"
    assert log_index(srv, r": http server reloaded", mark) is None
    assert srv.log_pids() == [p1], "a full restart must not start another process"

    # The same process serves again (port 0 asked for a free port afresh).
    srv.ports = [new_port]
    assert get_pid(srv) == p1
    r = http("GET", srv.url("/"))
    assert r.status_code == 200


# ---- 6. graceful mode off ----------------------------------------------------------


def test_graceful_off_sigusr1_is_a_full_restart(grace_servers):
    """--no-graceful: the admin's reload (always graceful) is refused with
    409, and SIGUSR1 says graceful restart is off and does a full restart in
    the same process."""
    srv = grace_servers.start("basic", "--port", "0", "--no-graceful")
    p1 = srv.pid
    r = admin(srv, "reload")
    assert r.status_code == 409, f"{r.status_code} {r.text!r}"
    assert get_pid(srv) == p1

    mark = srv.mark()
    srv.send_signal(signal.SIGUSR1)
    srv.wait_for_line(line_re(p1, r"SIGUSR1: graceful restart is off"), start=mark)
    m = srv.wait_for_line(
        line_re(p1, r"http server started listening on \[127\.0\.0\.1:(\d+)\]"), start=mark
    )
    assert log_index(srv, line_re(p1, "server restarting"), mark) is not None
    assert srv.running()
    assert srv.log_pids() == [p1]
    srv.ports = [int(m.group(1))]
    assert get_pid(srv) == p1


# ---- 7. overlapping restarts and max_draining ---------------------------------------


def test_max_draining_refuses_a_restart_and_cuts_nothing(grace_servers):
    """--max-draining 2: two generations each hold a long /sleep, so two
    drain. A third restart would make three: it is refused -- 503 with
    Retry-After, both PIDs and until when, the same in the log -- and both
    /sleep requests complete. Once they have, a restart works again."""
    # The /sleeps must outlast two restarts and their hand-overs: 15 s, and
    # a short probation, since a loaded machine once took 7 s (6 s failed).
    srv = grace_servers.start(
        "basic", "--port", "0", "--sleep-ms", "15000", "--max-draining", "2",
        "--probation-ms", "100",
    )
    p1 = srv.pid
    s1 = SlowGet(srv.port, "/sleep")
    wait_in_flight(srv, p1)
    p2 = admin_restart(srv)
    wait_released(srv, p1)  # the next /sleep must reach P2
    s2 = SlowGet(srv.port, "/sleep")
    wait_in_flight(srv, p2)
    p3 = signal_restart(srv)  # P1 and P2 drain now: two, the limit
    wait_released(srv, p2)

    mark = srv.mark()
    r = admin(srv, "restart")
    assert r.status_code == 503, f"{r.status_code} {r.text!r}\n{srv.stderr()}"
    retry = r.headers.get("Retry-After", "")
    assert retry.isdigit() and 1 <= int(retry) <= 30, r.headers
    why = (
        rf"2 older processes are still draining \(max_draining 2\): {p1} until "
        rf"\d\d:\d\d:\d\d, {p2} until \d\d:\d\d:\d\d; retry in {retry} s"
    )
    assert re.fullmatch(f"restart failed: {why}\n", r.text), r.text
    srv.wait_for_line(line_re(p3, f"restart refused: {why}"), start=mark)
    assert log_index(srv, r"is serving", mark) is None, srv.stderr()
    assert srv.pid_alive(p1) and srv.pid_alive(p2), srv.stderr()

    # Nothing was cut: both long requests complete in their own process.
    for sleeper, pid in ((s1, p1), (s2, p2)):
        resp = sleeper.result()
        assert sleeper.error is None, f"/sleep of {pid} failed: {sleeper.error!r}\n{srv.stderr()}"
        assert resp.status == 200 and resp.body == f"{pid}\n{pid}\n".encode()
    assert srv.proc.wait(timeout=30) == 0, srv.stderr()
    assert wait_gone(srv, p2) == 0
    assert log_index(srv, r"graceful_shutdown_timeout passed") is None, srv.stderr()

    # Below the limit again: the restart that was refused now works.
    p4 = admin_restart(srv)
    assert wait_gone(srv, p3) == 0
    assert get_pid(srv) == p4


def test_old_process_reaps_a_new_process_that_exits_first(grace_servers):
    """P1 drains a long /sleep while P2, the process it started, is itself
    restarted and exits: P1 reaps it at once (no zombie), says so, and does
    not count it as a draining generation."""
    # The /sleep must outlast two restarts (test_max_draining... says why).
    srv = grace_servers.start(
        "basic", "--port", "0", "--sleep-ms", "15000", "--max-draining", "2",
        "--probation-ms", "100",
    )
    p1 = srv.pid
    s1 = SlowGet(srv.port, "/sleep")
    wait_in_flight(srv, p1)
    p2 = signal_restart(srv)
    wait_released(srv, p1)
    mark = srv.mark()
    p3 = signal_restart(srv)
    # P2 had nothing to finish: it exits, and its parent P1 reaps it.
    srv.wait_for_line(
        line_re(p1, rf"process {p2} \(which took over from this one\) exited with status 0"),
        start=mark,
    )
    assert proc_stat(p2) is None, f"process {p2} left as {proc_stat(p2)}"
    assert srv.pid_alive(p1), "P1 must still be draining its /sleep"
    assert zombie_children(p1) == []
    # Only P1 drains: with max_draining 2 this restart is allowed.
    p4 = signal_restart(srv)
    resp = s1.result()
    assert s1.error is None, f"/sleep failed: {s1.error!r}\n{srv.stderr()}"
    assert resp.body == f"{p1}\n{p1}\n".encode()
    assert srv.proc.wait(timeout=30) == 0, srv.stderr()
    assert wait_gone(srv, p3) == 0
    assert get_pid(srv) == p4


# ---- 8. nothing leaks over many restarts --------------------------------------------


def test_no_leaks_after_20_restarts(grace_servers):
    """20 graceful restarts in a row: the 21st process holds exactly the
    descriptors the first one held (none inherited by accident, none left
    from the hand-over), every old generation exited 0 and was reaped, and
    exactly one process of the program is left. (A short probation: each
    old generation is waited for.)"""
    srv = grace_servers.start("hello", "--port", "0", "--probation-ms", "200")
    r = get_closing(srv.port)
    assert r.status == 200 and r.body == HELLO
    base = quiet_fds(srv.pid)
    assert not connection_fds(base), f"connections still open in {srv.pid}: {base}"

    pids = [srv.pid]
    for _ in range(20):
        old = pids[-1]
        pids.append(signal_restart(srv))
        assert wait_gone(srv, old) == 0
    cur = pids[-1]
    r = get_closing(srv.port)
    assert r.status == 200 and r.body == HELLO

    fds = quiet_fds(cur)
    assert not connection_fds(fds), f"connections still open in {cur}: {fds}"
    assert len(fds) == len(base), (
        f"fd count {len(fds)} after 20 restarts, {len(base)} at first\n"
        f"first: {fd_kinds(base)}\nnow:   {fd_kinds(fds)}\n{fds}"
    )
    assert fd_kinds(fds) == fd_kinds(base)

    # Exactly one grace process: the current one; every old one is gone and
    # reaped, and no process under the test is a zombie.
    assert srv.alive_pids() == [cur]
    table = proc_table()
    mine = proc_descendants(os.getpid(), table)
    assert [p for p in mine if is_build_binary(p)] == [cur]
    zombies = [p for p in mine if table[p][0] == "Z" and p in pids]
    assert zombies == [], f"zombie generations: {zombies}"
    assert zombie_children(cur, table) == []
    assert len(set(pids)) == 21
    assert srv.exit_codes.get(srv.pid) == 0
    for p in pids[1:-1]:
        assert srv.exit_codes.get(p, 0) == 0, f"generation {p} exited with {srv.exit_codes[p]}"
