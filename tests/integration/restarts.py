"""restarts.py -- what restart tests do to a GraceServer (conftest), for
HTTP and HTTPS servers alike (srv.get() knows the scheme and the CA):
trigger a restart (SIGUSR1, admin URL, the API route of examples/inflight),
wait for its outcome in the log, follow old generations until they exit,
and look at requests in flight through the admin status JSON.

Engine facts these rely on (src/restart.c): the old process logs "server
reloading", the new one "http server reloaded listening on [ADDR]", then
the old one "new process N is serving; ..." and, when drained, "all
servers shutdown". A failed restart logs "restart failed: WHY; this process
keeps serving"; a refused one "restart refused: WHY".
"""

import json
import os
import re
import signal
import time

import pytest

RESTART_TIMEOUT = 40.0  # one restart, start to "new process N is serving"


def line_re(pid, message):
    """A regex for a log line of process pid whose message starts with message
    (a regex)."""
    return rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{{3}} {pid}: {message}"


def log_index(srv, pattern, start=0):
    """Index of the first log line (from start) matching pattern, or None."""
    rx = re.compile(pattern)
    with srv._cond:
        lines = list(srv.lines)
    for k in range(start, len(lines)):
        if rx.search(lines[k]):
            return k
    return None


def get_pid(srv, i=0):
    r = srv.get("/pid", i=i)
    assert r.status_code == 200, r.text
    return int(r.text.strip())


def status(srv, i=0):
    """The admin status JSON of whichever process answers on port i."""
    r = srv.get("/debug/admin/status", i=i)
    assert r.status_code == 200, r.text
    return json.loads(r.text)


def wait_in_flight(srv, pid, n=1, i=0, timeout=10.0):
    """Wait until process pid has n requests in flight besides the status
    request that asks (the admin status counts itself). A status request may
    reach a process that is handing over; only pid's own answer counts."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        st = status(srv, i)
        last = st
        if st["pid"] == pid and sum(s["inflight"] for s in st["servers"]) >= n + 1:
            return
        time.sleep(0.02)
    pytest.fail(f"process {pid} never had {n} requests in flight; last status {last}")


def admin(srv, action="restart", exe=None, i=0, timeout=60.0):
    params = {"newExeFilePath": str(exe)} if exe is not None else None
    return srv.get(f"/debug/admin/{action}", i=i, timeout=timeout, params=params)


def restart_by_url(srv, path, i=0):
    """A graceful restart through a URL that answers "restarted: new pid N"
    (the admin page's, or examples/inflight's /restart, which calls
    grace_restart() itself); returns the new PID, checked against the log."""
    mark = srv.mark()
    r = srv.get(path, i=i, timeout=60.0)
    assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text!r}\n{srv.stderr()}"
    m = re.fullmatch(r"restarted: new pid (\d+)\n?", r.text)
    assert m, f"GET {path} answered {r.text!r}"
    new = int(m.group(1))
    assert srv.wait_restart(mark, timeout=RESTART_TIMEOUT) == new
    return new


def admin_restart(srv, i=0):
    """Graceful restart through the admin page; returns the new PID."""
    return restart_by_url(srv, "/debug/admin/restart", i)


def api_restart(srv, i=0):
    """Graceful restart by grace_restart() in a handler (examples/inflight)."""
    return restart_by_url(srv, "/restart", i)


def signal_restart(srv):
    """Graceful restart by SIGUSR1 to the serving process; returns the new
    PID once it serves."""
    mark = srv.mark()
    os.kill(srv.serving_pid(), signal.SIGUSR1)
    return srv.wait_restart(mark, timeout=RESTART_TIMEOUT)


def wait_gone(srv, pid, timeout=30.0):
    """Wait for generation pid to exit; returns its exit code."""
    code = srv.wait_pid_exit(pid, timeout=timeout)
    assert code is not None, f"process {pid} still runs {timeout}s later\n{srv.stderr()}"
    return code


def finish_load(srv, loads, pids):
    """The end of a load test across restarts (loads: a wrkload.Loads):
    every old generation exited with 0, the load still flows to the last
    one, then wrk stops and reports, and it must have seen no failure. A
    request left unanswered in an old process shows up as a read error when
    that process exits, so nothing in flight escapes the count."""
    for p in pids[:-1]:
        code = wait_gone(srv, p)
        assert code == 0, f"generation {p} exited with {code}\n{srv.stderr()}"
    loads.wait_progress(100)
    loads.stop()
    print("\n" + loads.report())
    assert loads.failures() == 0, loads.report() + "\n" + srv.stderr()
    assert srv.alive_pids() == [pids[-1]], srv.stderr()
