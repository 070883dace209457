"""Life under supervisors (SPEC B3), black-box, as far as a machine without
systemd as PID 1 allows: systemd's notification socket played by a datagram
socket the test binds ($NOTIFY_SOCKET), socket activation by
systemd-socket-activate (Debian's systemd package), the PID file, and the
master as PID 1 of a PID namespace (unshare, util-linux).
"""

import os
import re
import shutil
import signal
import socket
import sys
import time

import pytest

from conftest import HOST, RawConn, example_path, proc_stat, proc_table, simple_get
from restarts import admin, admin_restart, get_pid, signal_restart, wait_gone
from test_master import wait_children

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


class Notify:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, tmp_path):
        self.path = str(tmp_path / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def next(self, timeout=30.0):
        """The next message, as a dict of its KEY=VALUE lines."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096).decode()
        except socket.timeout:
            pytest.fail(f"no notification within {timeout}s; had {self.messages}")
        msg = dict(line.split("=", 1) for line in data.strip().split("\n"))
        self.messages.append(msg)
        return msg

    def close(self):
        self.sock.close()


@pytest.fixture
def notify(tmp_path, monkeypatch):
    n = Notify(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", n.path)  # the servers inherit the environment
    yield n
    n.close()


def read_pid_file(path):
    with open(path) as f:
        return int(f.read())


# ---- notifications and the PID file, self-replacing ---------------------------------------


def test_notify_and_pid_file_across_restart_rollback_and_shutdown(grace_servers, notify,
                                                                    tmp_path):  # fmt: skip
    """Start: READY=1 with MAINPID; a restart: RELOADING=1 (with
    MONOTONIC_USEC), then MAINPID of the new process and READY=1; a failed
    restart: RELOADING=1 then READY=1 with the reason; shutdown: STOPPING=1.
    The PID file holds the serving process's PID after each, and is gone at
    the end."""
    pid_file = tmp_path / "app.pid"
    helpers = example_path("basic").parent.parent / "tests" / "helpers"
    srv = grace_servers.start("basic", "--port", "0", "--pid-file", str(pid_file),
                              "--admin-allow-dir", str(helpers))  # fmt: skip
    m = notify.next()
    assert m["READY"] == "1" and int(m["MAINPID"]) == srv.pid
    assert read_pid_file(pid_file) == srv.pid

    p2 = signal_restart(srv)
    m = notify.next()
    assert m["RELOADING"] == "1" and int(m["MONOTONIC_USEC"]) > 0, m
    m = notify.next()
    assert int(m["MAINPID"]) == p2 and m["READY"] == "1", m
    assert read_pid_file(pid_file) == p2
    assert wait_gone(srv, srv.pid) == 0

    r = admin(srv, "restart", exe=helpers / "exit_now")
    assert r.status_code == 500, r.text
    m = notify.next()
    assert m["RELOADING"] == "1", m
    m = notify.next()
    assert m["READY"] == "1" and "restart failed" in m["STATUS"], m
    assert read_pid_file(pid_file) == p2
    for pid in [p for p in srv.log_pids() if p not in (srv.pid, p2)]:
        srv.expect_exit[pid] = None  # exit_now fails on purpose

    os.kill(p2, signal.SIGTERM)
    m = notify.next()
    assert m["STOPPING"] == "1", m
    assert wait_gone(srv, p2) == 0
    assert not pid_file.exists()


def test_notify_and_pid_file_in_master_mode(grace_servers, notify, tmp_path):
    """The master speaks for the service: READY=1 with its own PID once the
    child serves, RELOADING=1 then READY=1 around a restart, STOPPING=1 on
    shutdown; the children never notify; the PID file holds the master's PID
    throughout."""
    pid_file = tmp_path / "app.pid"
    srv = grace_servers.start("basic", "--port", "0", "--master", "--pid-file", str(pid_file))
    m = notify.next()
    assert m["READY"] == "1" and int(m["MAINPID"]) == srv.pid
    assert read_pid_file(pid_file) == srv.pid
    (c1,) = wait_children(srv, 1)
    c2 = admin_restart_master(srv)
    assert c2 != c1
    m = notify.next()
    assert m["RELOADING"] == "1", m
    m = notify.next()
    assert m["READY"] == "1", m
    assert read_pid_file(pid_file) == srv.pid
    srv.send_signal(signal.SIGTERM)
    m = notify.next()
    assert m["STOPPING"] == "1", m
    assert srv.wait_exit() == 0, srv.stderr()
    assert not pid_file.exists()
    assert len(notify.messages) == 4, notify.messages


def admin_restart_master(srv):
    r = admin(srv, "restart")
    assert r.status_code == 200, f"{r.status_code} {r.text!r}\n{srv.stderr()}"
    return int(re.fullmatch(r"restarted: new pid (\d+)\n", r.text).group(1))


# ---- socket activation ---------------------------------------------------------------


ACTIVATE = shutil.which("systemd-socket-activate")


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("mode", ["self-replacing", "master"])
def test_socket_activation(grace_servers, mode):
    """systemd-socket-activate binds the port and passes the socket (fd 3,
    LISTEN_FDS=1): the server takes it instead of binding, says so, serves,
    and keeps serving on it across a graceful restart."""
    if ACTIVATE is None:
        pytest.fail("systemd-socket-activate is not installed (scripts/deps.sh test installs it)")
    port = free_port()
    extra = ["--master"] if mode == "master" else []
    srv = grace_servers.start("basic", "--port", str(port), *extra, n_ports=0,
                              wrap=[ACTIVATE, "-l", f"{HOST}:{port}"])  # fmt: skip
    # It listens, and starts the program at the first connection: this one,
    # which waits in the socket's queue and is answered by the program.
    srv.wait_for_line(rf"Listening on 127\.0\.0\.1:{port} as 3")
    first = RawConn(port)
    first.send(simple_get("/"))
    srv.wait_for_line(rf"http server started listening on \[127\.0\.0\.1:{port}\] "
                      r"\(socket from systemd\)")  # fmt: skip
    assert first.read_response().status == 200
    first.close()
    srv.ports = [port]
    assert srv.port == port
    if mode == "master":
        (c1,) = wait_children(srv, 1)
        assert get_pid(srv) == c1
        c2 = admin_restart_master(srv)
        assert get_pid(srv) == c2
    else:
        assert get_pid(srv) == srv.pid
        p2 = admin_restart(srv)
        assert get_pid(srv) == p2
        assert wait_gone(srv, srv.pid) == 0
        assert get_pid(srv) == p2


# ---- the master as PID 1 ----------------------------------------------------------------


UNSHARE = shutil.which("unshare")


def test_master_as_pid_1_reaps_orphans(grace_servers):
    """unshare --pid --fork --mount-proc: the master is PID 1 of a new PID
    namespace with its own /proc (a container; without it, /proc would
    show the host's PIDs and LeakSanitizer, which reads /proc/self/task at
    exit, would read another process's). A handler starts a process that outlives its parent; killed,
    it is reaped by the master (no zombie); a restart works; SIGTERM stops
    everything with exit 0."""
    if UNSHARE is None:
        pytest.fail("unshare is not installed (util-linux)")
    srv = grace_servers.start("inflight", "--port", "0", "--master",
                              wrap=[UNSHARE, "--pid", "--fork", "--kill-child", "--mount-proc"])  # fmt: skip
    master_log_pid = srv.log_pids()[0]
    assert master_log_pid == 1, srv.stderr()  # PID 1 inside the namespace
    (c1,) = wait_children(srv, 1)
    orphan_ns = int(srv.get("/orphan").text)
    host_pid = host_pid_of(srv.pid, orphan_ns)
    st = proc_stat(host_pid)
    assert st is not None and st[0] != "Z"
    os.kill(host_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while proc_stat(host_pid) is not None:
        assert time.monotonic() < deadline, f"orphan {host_pid} not reaped: {proc_stat(host_pid)}"
        time.sleep(0.02)
    c2 = admin_restart_master(srv)
    assert c2 != c1
    # unshare forwards no signal: the master (its child) gets SIGTERM, drains
    # the children and exits 0, and so does unshare, with its status.
    (master,) = [p for p, (st, ppid) in proc_table().items() if ppid == srv.pid]
    os.kill(master, signal.SIGTERM)
    assert srv.wait_exit(timeout=30) == 0, srv.stderr()


def host_pid_of(root, ns_pid):
    """The host PID of the process that is ns_pid inside root's namespace."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        pids = [int(x) for x in line.split()[1:]]
                        if len(pids) > 1 and pids[-1] == ns_pid and is_below(int(name), root):
                            return int(name)
        except OSError:
            pass
    pytest.fail(f"no process with namespace PID {ns_pid} below {root}")


def is_below(pid, root):
    while pid > 1:
        st = proc_stat(pid)
        if st is None:
            return False
        if st[1] == root:
            return True
        pid = st[1]
    return False
