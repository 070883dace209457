"""Master mode (SPEC G6, B3, B6), black-box: the examples with --master. The
process the test starts is the master; it owns the ports, runs no handler,
keeps its PID, and supervises children (the same program with
--grace-child) that serve. Log lines of every process go to the same
stderr, so GraceServer (conftest) follows them all and stops them all.

Master events in the log (src/master.c): "master: child N is serving (EXE)",
"master: child N exited with status S" (or "was killed by signal ..."),
"master: restarting the children", "master: restart failed: WHY; the
children serve on".
"""

import os
import re
import signal
import sys
import time

import pytest

from conftest import BUILD_DIR, proc_descendants, proc_stat, proc_table
from restarts import admin, get_pid, line_re, wait_in_flight
from test_restart import SlowGet
from wrkload import Loads, Wrk

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

HELLO = b"Hello, World!"
HELPERS = BUILD_DIR / "tests" / "helpers"
SERVING_RE = r": master: child (\d+) is serving"


def children(srv):
    """The master's live children, from /proc."""
    table = proc_table()
    return sorted(p for p, (st, ppid) in table.items() if ppid == srv.pid and st != "Z")


def serving_children(srv, start=0):
    """Children the master said are serving (after log line start), in order."""
    return [int(m) for m in re.findall(SERVING_RE, "\n".join(srv.lines[start:]))]


def wait_children(srv, n, start=0, timeout=30.0):
    """Wait until n children were announced serving after log line start."""
    deadline = time.monotonic() + timeout
    while len(serving_children(srv, start)) < n:
        if time.monotonic() > deadline:
            pytest.fail(f"fewer than {n} children served\n{srv.stderr()}")
        time.sleep(0.02)
    return serving_children(srv, start)[:n]


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[:-1]


def signal_master_restart(srv, workers=1):
    """SIGUSR1 to the master; returns the new children's PIDs once they serve
    and the old ones have been told to drain."""
    mark = srv.mark()
    os.kill(srv.pid, signal.SIGUSR1)
    srv.wait_for_line(r": master: restarting the children", start=mark)
    return wait_children(srv, workers, start=mark)


def wait_gone_child(srv, pid, timeout=30.0):
    """A child exits and the master reaps it (it logs the status)."""
    m = srv.wait_for_line(rf": master: child {pid} (exited with status (\d+)|was killed)",
                          timeout=timeout)  # fmt: skip
    assert proc_stat(pid) is None, f"child {pid} left as {proc_stat(pid)}"
    return int(m.group(2)) if m.group(2) is not None else None


def no_zombies(srv):
    table = proc_table()
    mine = [srv.pid, *proc_descendants(srv.pid, table)]
    return [p for p in mine if table.get(p, ("?",))[0] == "Z"]


# ---- the seed's walkthrough ----------------------------------------------------------


def test_seed_walkthrough_in_master_mode(grace_servers):
    """/pid answers a child's PID; a 10 s-style /sleep is in flight; the admin
    page restarts; the /sleep completes in the old child, /pid shows a new
    child, and the master's PID is the same. ps shows the master and the
    child with its flag."""
    srv = grace_servers.start("basic", "--port", "0", "--master", "--sleep-ms", "3000")
    (c1,) = wait_children(srv, 1)
    assert get_pid(srv) == c1 != srv.pid
    st = srv.get("/debug/admin/status").json()
    assert (st["pid"], st["master_pid"]) == (c1, srv.pid)
    assert b"--grace-child" not in cmdline(srv.pid)
    assert cmdline(c1) == cmdline(srv.pid) + [b"--grace-child"]

    sleeper = SlowGet(srv.port, "/sleep")
    wait_in_flight(srv, c1)
    mark = srv.mark()
    r = admin(srv, "restart")
    assert r.status_code == 200, f"{r.status_code} {r.text!r}\n{srv.stderr()}"
    c2 = int(re.fullmatch(r"restarted: new pid (\d+)\n", r.text).group(1))
    assert wait_children(srv, 1, mark) == [c2]  # (the log line may come a moment later)
    srv.wait_for_line(line_re(srv.pid, r"master: graceful restart asked by child " + str(c1)),
                      start=mark)  # fmt: skip

    resp = sleeper.result()
    assert sleeper.error is None, f"/sleep failed: {sleeper.error!r}\n{srv.stderr()}"
    assert resp.status == 200 and resp.body == f"{c1}\n{c1}\n".encode()
    assert wait_gone_child(srv, c1) == 0
    assert get_pid(srv) == c2
    assert srv.running() and children(srv) == [c2]


# ---- restarts under load ----------------------------------------------------------------


def test_20_restarts_of_two_children_under_wrk(grace_servers):
    """workers = 2, 20 graceful restarts by SIGUSR1 to the master under wrk
    (keep-alive and a new connection per request): zero failed requests, the
    master's PID constant, no zombie, two children left."""
    srv = grace_servers.start("hello", "--port", "0", "--workers", "2")
    first = wait_children(srv, 2)
    loads = Loads(Wrk(srv.url(), 16, expect=HELLO), Wrk(srv.url(), 4, close=True, expect=HELLO))
    olds = list(first)
    with loads:
        loads.wait_progress(300)
        for _ in range(20):
            news = signal_master_restart(srv, workers=2)
            olds += news
            loads.wait_progress(100)
        current = olds[-2:]
        for p in olds[:-2]:
            assert wait_gone_child(srv, p) == 0
        loads.wait_progress(100)
        loads.stop()
    print("\n" + loads.report())
    assert loads.failures() == 0, loads.report() + "\n" + srv.stderr()
    assert srv.running() and sorted(children(srv)) == sorted(current)
    assert no_zombies(srv) == []


def test_child_killed_under_load_is_replaced(grace_servers):
    """kill -9 of the only child under load: the master starts a new one. No
    connection is ever refused (the master holds the socket); only requests
    the dead child held can fail, at most one per connection; once the new
    child serves, nothing fails."""
    srv = grace_servers.start("hello", "--port", "0", "--master")
    (c1,) = wait_children(srv, 1)
    conns = 8
    loads = Loads(Wrk(srv.url(), conns, expect=HELLO))
    with loads:
        loads.wait_progress(200)
        mark = srv.mark()
        os.kill(c1, signal.SIGKILL)
        srv.wait_for_line(rf": master: child {c1} was killed by signal 9 \(Killed\); a new one "
                          r"starts in \d+ ms", start=mark)  # fmt: skip
        (c2,) = wait_children(srv, 1, start=mark)
        loads.wait_progress(200)
        loads.stop()
    r = loads.runs[0].result
    print("\n" + loads.report())
    assert r["connect"] == 0 and r["timeout"] == 0 and r["bad"] == 0, loads.report()
    assert r["read"] + r["write"] <= conns, loads.report()
    after = Loads(Wrk(srv.url(), conns, expect=HELLO), Wrk(srv.url(), 2, close=True, expect=HELLO))
    with after:
        after.wait_progress(500)
        after.stop()
    assert after.failures() == 0, after.report()
    assert children(srv) == [c2]


def test_child_crashing_at_start_backs_off_without_spinning(servers):
    """A program whose children crash at once: the master logs each failure
    and waits longer each time (100, 200, 400, 800 ms ...), using almost no
    CPU; SIGTERM still stops it, with exit 0."""
    srv = servers.start("crash_child", "--port", "0", exe=HELPERS / "crash_child")
    srv.wait_for_line(r"trying again in 800 ms", timeout=20)
    pauses = [int(x) for x in re.findall(r"trying again in (\d+) ms", srv.stderr())]
    assert pauses[:4] == [100, 200, 400, 800], pauses
    assert "exited" in srv.stderr() or "killed by signal" in srv.stderr()
    with open(f"/proc/{srv.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    assert cpu < 0.5, f"the master used {cpu:.2f} s of CPU while children crashed"
    assert srv.stop() == 0, srv.stderr()


def test_restart_to_a_broken_executable_rolls_back(grace_servers):
    """A restart to an executable whose children never become ready is rolled
    back: the admin answers 500 with the reason, the old child serves on."""
    srv = grace_servers.start("basic", "--port", "0", "--master", "--graceful-timeout-ms", "2000",
                              "--admin-allow-dir", str(HELPERS))  # fmt: skip
    (c1,) = wait_children(srv, 1)
    mark = srv.mark()
    r = admin(srv, "restart", exe=HELPERS / "never_ready")
    assert r.status_code == 500, f"{r.status_code} {r.text!r}"
    assert re.search(r"restart failed: new process \d+ was not ready within 2000 ms", r.text), r.text
    srv.wait_for_line(line_re(srv.pid, r"master: restart failed: new process \d+ was not ready"),
                      start=mark)  # fmt: skip
    assert get_pid(srv) == c1
    assert children(srv) == [c1]


# ---- signals -------------------------------------------------------------------------


def test_ctrl_c_stops_the_master_and_every_child(grace_servers):
    """SIGINT to the whole foreground process group (what Ctrl-C does) after
    a restart: the children leave it to the master, which drains them and
    exits 0; nothing is left."""
    srv = grace_servers.start("hello", "--port", "0", "--workers", "2", own_group=True)
    first = wait_children(srv, 2)
    news = signal_master_restart(srv, workers=2)
    for p in first:
        wait_gone_child(srv, p)
    pgid = os.getpgid(srv.pid)
    assert pgid != os.getpgid(0), "the server must have a process group of its own"
    os.killpg(pgid, signal.SIGINT)
    assert srv.wait_exit(timeout=30) == 0, srv.stderr()
    for p in news:
        assert proc_stat(p) is None, f"child {p} left"
    assert "ignored (the master decides)" in srv.stderr()


def test_sigusr2_is_a_full_restart_keeping_the_master_pid(grace_servers):
    """SIGUSR2 to the master: the child drains and exits, the master executes
    itself afresh in place (same PID), binds its port again and starts a new
    child, which serves."""
    srv = grace_servers.start("basic", "--port", "0", "--master")
    (c1,) = wait_children(srv, 1)
    mark = srv.mark()
    srv.send_signal(signal.SIGUSR2)
    srv.wait_for_line(line_re(srv.pid, r"master: executing .* afresh"), start=mark)
    m = srv.wait_for_line(line_re(srv.pid, r"http server started listening on \[127\.0\.0\.1:(\d+)\]"),
                          start=mark)  # fmt: skip
    srv.ports = [int(m.group(1))]
    (c2,) = wait_children(srv, 1, start=mark)
    assert c2 != c1 and proc_stat(c1) is None
    assert srv.running()
    assert get_pid(srv) == c2
