"""The two event-loop backends (epoll, io_uring), black-box.

grace runs io_uring when the kernel allows it and epoll otherwise, with one
log line saying which and why; GRACE_BACKEND=epoll|io_uring forces one (the
whole suite runs once with each, `make test`). Here: the line; the fallback
when io_uring is forbidden -- for real, by a seccomp filter on
io_uring_setup(2) (tests/helpers/no_io_uring.c), as a container's profile
does -- and a forced io_uring that cannot run; and graceful restarts from
one backend to the other and back under wrk, which must see no failure
(the listening sockets are plain descriptors either way).

The new process of a restart runs with the environment of the old one, so
a restart that changes backend goes to a new executable: a two-line shell
script beside a private copy of hello that sets GRACE_BACKEND and execs it
(an operator would change the unit's environment the same way).
"""

import re
import shutil
import sys

import pytest

from conftest import VALGRIND, BUILD_DIR, GraceServer, RawConn, example_path, simple_get
from restarts import admin, finish_load, signal_restart
from wrkload import Loads, Wrk

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

HELLO = b"Hello, World!"
NO_IO_URING = BUILD_DIR / "tests" / "helpers" / "no_io_uring"
LINE = r"(\d+): (\d+) event loops on (epoll|io_uring)(.*)$"


def io_uring_available():
    """Whether this machine lets a process use io_uring, as grace finds out
    (a server started without GRACE_BACKEND says which it took)."""
    srv = GraceServer("hello", ["--port", "0"], env={"GRACE_BACKEND": None})
    srv.start()
    try:
        return backend_of(srv, srv.pid)[0] == "io_uring"
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def have_io_uring():
    if VALGRIND:
        pytest.skip("valgrind runs io_uring_enter(2) as a call that never blocks (Makefile)")
    if not io_uring_available():
        pytest.skip("io_uring is not available to processes here (grace runs epoll)")


def backend_of(srv, pid):
    """(backend, rest of the line) from pid's "event loops on" line."""
    m = srv.wait_for_line(rf" {pid}: \d+ event loops on (epoll|io_uring)(.*)$")
    return m.group(1), m.group(2)


def served(srv):
    with RawConn(srv.port) as c:
        c.send(simple_get("/"))
        r = c.read_response()
    assert r.status == 200 and r.body == HELLO, r
    return r


# ---- which backend, and why --------------------------------------------------------


@pytest.mark.parametrize("backend", ["epoll", "io_uring"])
def test_grace_backend_forces_one_and_says_so(grace_servers, backend, request):
    if backend == "io_uring":
        request.getfixturevalue("have_io_uring")
    srv = grace_servers.start("hello", "--port", "0", env={"GRACE_BACKEND": backend})
    assert backend_of(srv, srv.pid) == (backend, f" (GRACE_BACKEND={backend})")
    served(srv)


def test_unknown_backend_refuses_to_start(tmp_path):
    srv = GraceServer("hello", ["--port", "0"], env={"GRACE_BACKEND": "kqueue"})
    with pytest.raises(pytest.fail.Exception):
        srv.start(timeout=10)
    assert re.search(r": GRACE_BACKEND=kqueue: not a backend \(epoll, io_uring or auto\)",
                     srv.stderr()), srv.stderr()  # fmt: skip
    assert srv.returncode not in (0, None), srv.stderr()


@pytest.mark.parametrize("errno_name,text", [("EPERM", "Operation not permitted"),
                                             ("ENOSYS", "Function not implemented")])  # fmt: skip
def test_falls_back_to_epoll_when_io_uring_is_forbidden(grace_servers, errno_name, text):
    """Under a seccomp filter that fails io_uring_setup (EPERM, as Docker's
    default profile; ENOSYS, as a kernel without it), a server left to
    choose runs epoll and says why; it serves, and so does the new process
    of a restart (which inherits the filter)."""
    srv = grace_servers.start("hello", "--port", "0", wrap=(str(NO_IO_URING), "--errno", errno_name),
                              env={"GRACE_BACKEND": None})  # fmt: skip
    backend, why = backend_of(srv, srv.pid)
    assert (backend, why) == ("epoll", f": io_uring cannot run here: io_uring_setup: {text}"), (
        srv.stderr()
    )
    served(srv)
    new = signal_restart(srv)
    assert backend_of(srv, new)[0] == "epoll"
    served(srv)


def test_forced_io_uring_refuses_to_start_when_forbidden(tmp_path):
    """GRACE_BACKEND=io_uring where io_uring is forbidden: no quiet epoll,
    the server does not start, and says why."""
    srv = GraceServer("hello", ["--port", "0"], wrap=(str(NO_IO_URING),),
                      env={"GRACE_BACKEND": "io_uring"})  # fmt: skip
    with pytest.raises(pytest.fail.Exception):
        srv.start(timeout=10)
    assert re.search(r": GRACE_BACKEND=io_uring, but io_uring cannot run here: io_uring_setup: "
                     r"Operation not permitted", srv.stderr()), srv.stderr()  # fmt: skip
    assert srv.returncode not in (0, None), srv.stderr()


# ---- restarts from one backend to the other ----------------------------------------


def app_with_wrappers(tmp_path):
    """A private copy of hello and, beside it (the admin page restarts only
    into its own directory), hello-epoll and hello-io_uring: scripts that
    exec it with GRACE_BACKEND set."""
    app = tmp_path / "app"
    app.mkdir(mode=0o755)
    exe = app / "hello"
    shutil.copy2(example_path("hello"), exe)
    for backend in ("epoll", "io_uring"):
        script = app / f"hello-{backend}"
        script.write_text(f'#!/bin/sh\nGRACE_BACKEND={backend} exec "$(dirname "$0")/hello" "$@"\n')
        script.chmod(0o755)
    return exe


def restart_into(srv, exe):
    """A graceful restart into exe through the admin page; the new PID."""
    mark = srv.mark()
    r = admin(srv, "restart", exe=exe)
    assert r.status_code == 200, f"{r.status_code} {r.text!r}\n{srv.stderr()}"
    new = int(re.fullmatch(r"restarted: new pid (\d+)\n?", r.text).group(1))
    assert srv.wait_restart(mark) == new
    return new


@pytest.mark.parametrize("first", ["epoll", "io_uring"])
def test_restarts_between_backends_lose_nothing_under_wrk(grace_servers, tmp_path, first,
                                                          have_io_uring):  # fmt: skip
    """hello under wrk (16 keep-alive connections, 4 opening a new connection
    per request), restarted from one backend to the other and back, three
    times each way: every generation runs the backend it was given, and
    wrk counts no failure at all."""
    exe = app_with_wrappers(tmp_path)
    other = "io_uring" if first == "epoll" else "epoll"
    srv = grace_servers.start("hello", "--port", "0", exe=exe, env={"GRACE_BACKEND": first})
    assert backend_of(srv, srv.pid)[0] == first
    loads = Loads(Wrk(srv.url(), 16, expect=HELLO), Wrk(srv.url(), 4, close=True, expect=HELLO))
    pids = [srv.pid]
    with loads:
        loads.wait_progress(500)
        for k in range(6):
            backend = other if k % 2 == 0 else first
            pids.append(restart_into(srv, exe.parent / f"hello-{backend}"))
            assert backend_of(srv, pids[-1])[0] == backend
            loads.wait_progress(300)  # the load flows through the new backend
        finish_load(srv, loads, pids)
    assert loads.requests() >= 6 * 600
