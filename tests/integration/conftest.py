"""Black-box test harness for grace's example servers.

Every test starts real example binaries from $GRACE_BUILD_DIR/examples/NAME
(default: <repo>/build-asan, the ASan+UBSan build), always on 127.0.0.1 with
port 0, and learns the ports from the servers' own log lines:

    2018-05-18 11:02:04.812 11511: http server started listening on [127.0.0.1:PORT]

A Server is stopped on teardown with SIGTERM (graceful shutdown), then
SIGKILL after 15 s, and is always reaped, even when the test failed. Teardown
also checks that it exited with 0 and that its stderr holds no sanitizer
report; the collected stderr is printed when a check fails.

No sleep is an assertion and no assertion is about timing: every wait is
bounded by a generous timeout and fails the test with what was seen.

GRACE_VALGRIND=1 (make test-valgrind, against a build without sanitizers):
every program from BUILD_DIR that a test starts -- the servers, and the runs
of an example that only check its flags -- runs under valgrind's memcheck,
and so does every new process a restart executes (--trace-children). A
memcheck error or a definite leak makes valgrind exit with VALGRIND_EXIT and
print "ERROR SUMMARY: N errors" with N > 0 or "definitely lost: N bytes"; the
usual checks (exit code 0, no report in stderr) fail on either. Timeouts are
VALGRIND_SLOWDOWN times longer, and the few tests in VALGRIND_SKIP are
skipped, each with its reason.
"""

import ctypes
import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("GRACE_BUILD_DIR", REPO / "build-asan"))

HOST = "127.0.0.1"

# ---- Valgrind (GRACE_VALGRIND=1, make test-valgrind) ---------------------------
VALGRIND = os.environ.get("GRACE_VALGRIND", "") not in ("", "0")
VALGRIND_EXIT = 99  # valgrind's exit status when it found an error
VALGRIND_ARGV = [
    "valgrind",
    "--tool=memcheck",
    "--leak-check=full",
    "--errors-for-leak-kinds=definite",
    "--show-leak-kinds=definite",  # possible leaks: worker threads still running at exit
    f"--error-exitcode={VALGRIND_EXIT}",
    "--trace-children=yes",  # restarts exec the program again
    "--child-silent-after-fork=yes",  # nothing from a forked child until it execs
    "--num-callers=40",
]
# Start-up, a request and the leak check at exit all take many times longer.
VALGRIND_SLOWDOWN = 4 if VALGRIND else 1
# "file.py::test" -> why it cannot work under valgrind (README.md says so).
_RESTARTS_TOO_SLOW = (
    "its /sleep must outlast restarts that take seconds each under valgrind "
    "(a new process starting under memcheck)"
)
_FDS_OF_VALGRIND = (
    "valgrind keeps the top descriptors of RLIMIT_NOFILE for itself: it lowers "
    "the limit grace sees and closes an accepted socket the kernel gave one of "
    "them ('invalid file descriptor in syscall accept()'), so the client sees "
    "a close"
)
VALGRIND_SKIP = {
    "test_real_clients.py::test_restart_storm_leaves_no_zombie_no_leftover_no_leaked_fd":
        "counts hand-overs of a 5 s signal storm under wrk (few fit under valgrind) and "
        "compares descriptor lists, which include valgrind's own files, named by PID",
    "test_resources.py::test_out_of_descriptors_does_not_spin_and_recovers": _FDS_OF_VALGRIND,
    "test_resources.py::test_default_max_connections_is_three_quarters_of_the_fd_limit":
        _FDS_OF_VALGRIND,
    "test_resources.py::test_idle_connections_cost_under_half_a_kib_and_memory_comes_back":
        "measures the RSS of the release build's hello with 5,000 connections",
    "test_restart.py::test_max_draining_refuses_a_restart_and_cuts_nothing": _RESTARTS_TOO_SLOW,
    "test_restart.py::test_old_process_reaps_a_new_process_that_exits_first": _RESTARTS_TOO_SLOW,
    "test_master.py::test_seed_walkthrough_in_master_mode":
        "compares the /proc/PID/cmdline of master and child, which under valgrind are "
        "valgrind's own command lines (valgrind.bin OPTIONS PROGRAM ...)",
    "test_master.py::test_child_crashing_at_start_backs_off_without_spinning":
        "measures the master's CPU time, which valgrind multiplies",
    "test_restart.py::test_no_leaks_after_20_restarts":
        "compares the descriptors of the first and the 21st process, which hold "
        "valgrind's own files, named by PID (/tmp/valgrind_proc_PID_cmdline, ...)",
}  # fmt: skip

START_TIMEOUT = 10.0 * VALGRIND_SLOWDOWN  # seconds for the "started listening" lines
STOP_TIMEOUT = 15.0 * VALGRIND_SLOWDOWN  # seconds between SIGTERM and SIGKILL
IO_TIMEOUT = 10.0 * VALGRIND_SLOWDOWN  # default bound on any single network wait

LISTEN_RE = re.compile(r"http server started listening on \[127\.0\.0\.1:(\d+)\]")
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:")
if VALGRIND:
    # Substrings, as the tests check them ("marker in stderr"): N > 0 starts
    # with 1-9. Every valgrind process prints both summaries at exit, with 0
    # when all is well.
    SANITIZER_MARKERS += tuple(
        f"{what}: {d}" for what in ("ERROR SUMMARY", "definitely lost") for d in "123456789"
    )

# Never send test traffic through a proxy from the environment.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def example_path(name):
    return BUILD_DIR / "examples" / name


def is_build_path(path):
    """True if path names a program in BUILD_DIR (an example or a helper)."""
    path = str(path).removesuffix(" (deleted)")
    return path.startswith(str(BUILD_DIR.resolve()) + os.sep) or path.startswith(
        str(BUILD_DIR) + os.sep
    )


if VALGRIND:

    class _ValgrindPopen(subprocess.Popen):
        """subprocess.Popen that runs every BUILD_DIR program under valgrind:
        the servers (Server.start, and the test files' own Popen and run
        calls) get it without each test knowing."""

        def __init__(self, args, *rest, **kw):
            if isinstance(args, (list, tuple)) and args and is_build_path(args[0]):
                args = [*VALGRIND_ARGV, *map(str, args)]
            super().__init__(args, *rest, **kw)

    subprocess.Popen = _ValgrindPopen


def pytest_collection_modifyitems(config, items):
    if not VALGRIND:
        return
    for item in items:
        why = VALGRIND_SKIP.get(f"{item.path.name}::{getattr(item, 'originalname', item.name)}")
        if why:
            item.add_marker(pytest.mark.skip(reason=f"under valgrind: {why}"))


def sanitizer_env(extra=None):
    """The environment for a server: ours plus sanitizer settings that make
    reports land on stderr and leaks count, then extra (a value of None
    removes that variable)."""
    env = dict(os.environ)
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.setdefault("LSAN_OPTIONS", "")
    return env


class Server:
    """One example server process.

    stderr is read line by line by a background thread into self.lines, so
    the pipe never fills and a test can wait for a given line."""

    def __init__(self, name, args=(), n_ports=1, host=True, nofile=None, own_group=False,
                 exe=None, wrap=(), env=None):  # fmt: skip
        self.name = name
        self.env = env  # variables to set (None: unset) for the server, over ours
        self.nofile = nofile  # RLIMIT_NOFILE for the server (None: ours)
        self.own_group = own_group  # a process group of its own (signals to the group)
        self.exe = Path(exe) if exe else example_path(name)
        # wrap: a command that runs the server (systemd-socket-activate ...)
        self.argv = [*wrap, str(self.exe)]
        if host:
            self.argv += ["--host", HOST]
        self.argv += list(args)
        self.n_ports = n_ports
        self.ports = []
        self.lines = []
        self.proc = None
        self.returncode = None
        self._cond = threading.Condition()
        self._eof = False
        self._reader = None

    # ---- life cycle ------------------------------------------------------
    def start(self, timeout=START_TIMEOUT):
        if not self.exe.exists():
            pytest.fail(
                f"example binary {self.exe} not found: build it first "
                f"(GRACE_BUILD_DIR={BUILD_DIR})"
            )
        limit = self.nofile
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=sanitizer_env(self.env),
            preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)))
            if limit
            else None,
            process_group=0 if self.own_group else None,
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                ports = [int(m.group(1)) for m in map(LISTEN_RE.search, self.lines) if m]
                if len(ports) >= self.n_ports:
                    self.ports = ports[: self.n_ports]
                    return self
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
        why = "exited" if self.proc.poll() is not None else "did not log its ports in time"
        self.kill_and_reap()
        pytest.fail(
            f"{self.name} {why} (wanted {self.n_ports} 'started listening' lines, "
            f"exit code {self.returncode}); argv={self.argv}\nstderr:\n{self.stderr()}"
        )

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def pid(self):
        return self.proc.pid

    @property
    def port(self):
        return self.ports[0]

    def url(self, path="/", i=0):
        return f"http://{HOST}:{self.ports[i]}{path}"

    def get(self, path="/", i=0, timeout=IO_TIMEOUT, **kw):
        """GET path on port i with requests (HttpsServer verifies its CA)."""
        return http("GET", self.url(path, i), timeout=timeout, **kw)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        """Send sig to this process (by PID, and only if not yet reaped)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Wait for the process to exit by itself; returns its exit code, or
        None if it is still running after timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join_reader()
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Graceful stop: sig, wait up to timeout, then SIGKILL. Always
        reaps. Returns the exit code (negative: killed by that signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.lines.append(f"[harness] no exit {timeout}s after {sig!r}: SIGKILL")
                self.kill_and_reap()
        self.returncode = self.proc.wait()
        self._join_reader()
        return self.returncode

    def kill_and_reap(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        self.returncode = self.proc.wait()
        self._join_reader()

    def _join_reader(self):
        if self._reader is not None:
            # A child holding the pipe open could keep it from ending.
            self._reader.join(timeout=5)
        if self.proc.stderr is not None and (self._reader is None or not self._reader.is_alive()):
            self.proc.stderr.close()

    # ---- stderr ------------------------------------------------------------
    def stderr(self):
        with self._cond:
            return "\n".join(self.lines)

    def wait_for_line(self, pattern, timeout=IO_TIMEOUT, start=0):
        """Wait until a stderr line (index >= start) matches regex pattern;
        returns the match. Fails the test on timeout or process exit."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
        pytest.fail(f"{self.name}: no stderr line matching {pattern!r}\nstderr:\n{self.stderr()}")

    def wait_until(self, pred, timeout=IO_TIMEOUT):
        """Wait until pred() (say, about stderr()) is true, looking again at
        each new log line; fails the test on timeout or process exit."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred():
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    pytest.fail(f"{self.name}: {pred} never true\nstderr:\n{self.stderr()}")
                self._cond.wait(min(left, 0.5))

    def problems(self):
        """What is wrong with a stopped server: a non-zero exit or a sanitizer
        report. Empty list when all is well."""
        out = []
        if self.returncode != 0:
            out.append(f"{self.name} (pid {self.pid}) exited with {self.returncode}, not 0")
        text = self.stderr()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                out.append(f"{self.name} (pid {self.pid}) stderr has a {marker!r} report")
        return out

    def check_clean(self):
        probs = self.problems()
        assert not probs, "; ".join(probs) + f"\nstderr of {self.name}:\n{self.stderr()}"


class ServerPool:
    """Servers started by one fixture; all stopped and checked at the end."""

    def __init__(self):
        self.servers = []

    def start(self, name, *args, n_ports=1, host=True, nofile=None, own_group=False, exe=None,
              wrap=(), env=None):  # fmt: skip
        srv = Server(name, args, n_ports=n_ports, host=host, nofile=nofile, own_group=own_group,
                     exe=exe, wrap=wrap, env=env)  # fmt: skip
        self.servers.append(srv)
        return srv.start()

    def close(self):
        # Reap everything first, whatever happens, then judge.
        for srv in self.servers:
            try:
                srv.stop()
            except Exception as e:  # noqa: BLE001 - never leave a process behind
                srv.lines.append(f"[harness] stop failed: {e!r}")
                srv.kill_and_reap()
        probs = []
        for srv in self.servers:
            if srv.proc is not None:
                p = srv.problems()
                if p:
                    probs.append("; ".join(p) + f"\nstderr of {srv.name}:\n{srv.stderr()}")
        self.servers = []
        if probs:
            pytest.fail("server teardown:\n" + "\n\n".join(probs), pytrace=False)


class SharedServer:
    """A server shared by the tests of a module (started on first use). If
    it dies during a test, that test fails at teardown with the server's
    stderr, and the next test gets a fresh server: one crash is reported
    once, where it happened, instead of failing every later test."""

    def __init__(self, pool, name, *args, n_ports=1):
        self.pool = pool
        self.name = name
        self.args = args
        self.n_ports = n_ports
        self.current = None

    def get(self):
        if self.current is None or not self.current.running():
            self.current = self.pool.start(self.name, *self.args, n_ports=self.n_ports)
        return self.current

    def check_alive(self):
        srv = self.current
        if srv is None:
            return
        if srv.running():
            # A sanitizer report takes a moment to print before the process
            # dies: probe with a request so that a crash is blamed on the
            # test that caused it, not on the next one.
            try:
                with RawConn(srv.port, timeout=5) as c:
                    c.send(b"GET /__alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    c.read_response(timeout=5)
                return
            except (OSError, AssertionError):
                if srv.wait_exit(timeout=10) is None:
                    srv.lines.append("[harness] liveness probe failed; server still running")
        srv.kill_and_reap()
        self.current = None
        self.pool.servers.remove(srv)
        probs = srv.problems() or [f"{srv.name} exited with {srv.returncode}"]
        pytest.fail(
            f"shared {srv.name} server died during this test: "
            + "; ".join(probs)
            + f"\nstderr of {srv.name}:\n{srv.stderr()}",
            pytrace=False,
        )


@pytest.fixture
def servers():
    """Start example servers for one test: servers.start("basic", "--port", "0")."""
    pool = ServerPool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="module")
def module_servers():
    """Like servers, shared by the tests of a module."""
    pool = ServerPool()
    try:
        yield pool
    finally:
        pool.close()


# ---- HTTP client helpers ----------------------------------------------------


def http(method, url, timeout=IO_TIMEOUT, **kw):
    """One request with requests, never through a proxy."""
    with requests.Session() as s:
        s.trust_env = False
        return s.request(method, url, timeout=timeout, allow_redirects=False, **kw)


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] as received
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        """First value of header name (case-insensitive), or None."""
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def closes(self):
        """True if the response says Connection: close."""
        v = self.header("Connection")
        return v is not None and "close" in [t.strip().lower() for t in v.split(",")]

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} body={self.body[:200]!r}>"


class RawConn:
    """A plain TCP connection for byte-exact HTTP: pipelining, malformed
    requests, chunked bodies, slow clients."""

    def __init__(self, port, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Read more bytes into buf; False at EOF. Raises on timeout."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no data in time; have {self.buf[:300]!r}")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError(f"no data in time; have {self.buf[:300]!r}") from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_response(self, head=False, timeout=IO_TIMEOUT):
        """Read one response. head=True: the request was HEAD (no body).
        Raises AssertionError if the connection closes first."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                raise AssertionError(f"connection closed before a full response; got {self.buf!r}")
        raw_head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        m = re.match(r"^(HTTP/\d\.\d) (\d{3}) ?(.*)$", lines[0])
        assert m, f"bad status line {lines[0]!r}"
        version, status, reason = m.group(1), int(m.group(2)), m.group(3)
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            assert sep, f"bad response header line {line!r}"
            headers.append((name, value.strip()))
        resp = Response(version, status, reason, headers, b"", raw_head)
        if head or 100 <= status < 200 or status in (204, 304):
            return resp
        te = resp.header("Transfer-Encoding")
        cl = resp.header("Content-Length")
        if te is not None and "chunked" in te.lower():
            resp.body = self._read_chunked(deadline)
        elif cl is not None:
            n = int(cl)
            while len(self.buf) < n:
                if not self._fill(deadline):
                    raise AssertionError(f"closed inside a {n}-byte body; got {self.buf!r}")
            resp.body, self.buf = self.buf[:n], self.buf[n:]
        else:  # body until close
            while self._fill(deadline):
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def _read_chunked(self, deadline):
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                if not self._fill(deadline):
                    raise AssertionError("closed inside a chunked body")
            line, _, self.buf = self.buf.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                # trailers up to the empty line
                while True:
                    while b"\r\n" not in self.buf:
                        if not self._fill(deadline):
                            raise AssertionError("closed inside trailers")
                    line, _, self.buf = self.buf.partition(b"\r\n")
                    if line == b"":
                        return body
            while len(self.buf) < size + 2:
                if not self._fill(deadline):
                    raise AssertionError("closed inside a chunk")
            body += self.buf[:size]
            self.buf = self.buf[size + 2 :]

    def wait_closed(self, timeout=IO_TIMEOUT):
        """Wait for the server to close the connection; returns any bytes
        that came first. Fails the test if it stays open for timeout."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except TimeoutError:
            pytest.fail(f"server did not close the connection within {timeout}s; got {self.buf!r}")
        data, self.buf = self.buf, b""
        return data

    def is_open_after(self, wait):
        """True if the server neither closed nor sent anything for wait
        seconds (a probe, never used to assert timing)."""
        try:
            self._fill(time.monotonic() + wait)
        except TimeoutError:
            return True
        return False


def port_refuses(port, timeout=IO_TIMEOUT):
    """Wait until connecting to port is refused; True if it was within
    timeout. Connections that do get accepted are closed at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection((HOST, port), timeout=1)
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        else:
            s.close()
        time.sleep(0.05)
    return False


def simple_get(path="/", host="x", extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode("latin-1")


# ---- Graceful restart: following a server across processes ------------------
#
# After a graceful restart the serving process is a child of the old one,
# which then exits: the new process is re-parented. The test process makes
# itself a child subreaper for the whole session (prctl), so every descendant
# comes back to pytest instead of to init: it can be reaped, its exit status
# read, and it can always be stopped. Everything here finds processes by PID
# only: the PIDs in a server's own log lines ("DATE TIME PID: message") and
# the descendants of the test process that run a binary from BUILD_DIR.

PR_SET_CHILD_SUBREAPER = 36
LOG_LINE_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (\d+): (.*)$")


def become_child_subreaper():
    """Make this process the reaper of its orphaned descendants (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def log_pid(line):
    """The PID field of a grace log line, or None for any other line."""
    m = LOG_LINE_RE.match(line)
    return int(m.group(1)) if m else None


def proc_stat(pid):
    """(state, ppid) of pid from /proc, or None if there is no such process.
    state is the one-letter state: 'Z' for a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("latin-1")
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    rest = data[data.rfind(")") + 2 :].split()  # the name may hold spaces
    return rest[0], int(rest[1])


def proc_table():
    """{pid: (state, ppid)} of every process visible now."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st is not None:
                table[int(name)] = st
    return table


def proc_descendants(root, table=None):
    """PIDs of every descendant of root (children, their children, ...)."""
    table = proc_table() if table is None else table
    kids = {}
    for pid, (_, ppid) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def proc_exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def is_build_binary(pid):
    """True if pid runs a program from BUILD_DIR (an example or a helper);
    under valgrind, if it is a valgrind tool running one."""
    exe = proc_exe(pid)
    if exe is None:
        return False
    if VALGRIND and "/valgrind/" in exe:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode("utf-8", "replace").split("\0")
        except OSError:
            return False
        # valgrind.bin OPTIONS... PROGRAM ARGS...: the first non-option.
        prog = next((a for a in argv[1:] if not a.startswith("-")), "")
        return is_build_path(prog)
    return is_build_path(exe)


def zombie_children(pid, table=None):
    """PIDs of zombies whose parent is pid."""
    table = proc_table() if table is None else table
    return sorted(p for p, (state, ppid) in table.items() if ppid == pid and state == "Z")


def reap_pid(pid):
    """Reap pid if it is our exited child. Returns its exit code (negative:
    killed by that signal), or None if it is not (yet) reapable by us."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if got == 0:
        return None
    return os.waitstatus_to_exitcode(status)


@pytest.fixture(scope="session", autouse=True)
def _child_subreaper():
    """Session-wide: descendants orphaned by a graceful restart come back to
    pytest. At the end of the session any such descendant still running a
    BUILD_DIR binary is stopped and every adopted zombie is reaped."""
    try:
        become_child_subreaper()
    except (OSError, AttributeError):  # not Linux: restart tests will say so
        pass
    yield
    me = os.getpid()
    left = [p for p in proc_descendants(me) if is_build_binary(p)]
    stop_pids(left)
    for pid in zombie_children(me):
        reap_pid(pid)


def stop_pids(pids, sig=signal.SIGTERM, timeout=STOP_TIMEOUT, popen=None):
    """Stop processes by PID: sig, wait up to timeout, then SIGKILL. Only
    descendants of this process are signalled (a PID that is no longer ours
    is left alone). Reaps those that are our children; popen maps a PID to
    its Popen object (reaped through it, never with waitpid).
    Returns {pid: exit code} for the ones reaped here."""
    popen = popen or {}
    codes = {}

    def ours(pid):
        return pid in popen or pid in proc_descendants(os.getpid())

    def gone(pid):
        if pid in popen:
            return popen[pid].poll() is not None
        st = proc_stat(pid)
        if st is None:
            return True
        if st[0] == "Z":
            if st[1] == os.getpid():
                code = reap_pid(pid)
                if code is not None:
                    codes[pid] = code
                    return True
                return False
            return True  # a zombie of another process: it has exited
        return False

    targets = [p for p in dict.fromkeys(pids) if not gone(p) and ours(p)]
    for p in targets:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    left = list(targets)
    while left and time.monotonic() < deadline:
        left = [p for p in left if not gone(p)]
        if left:
            time.sleep(0.02)
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        left = [p for p in left if not gone(p)]
        if left:
            time.sleep(0.02)
    for p, proc in popen.items():
        if proc.poll() is not None:
            codes.setdefault(p, proc.returncode)
    return codes


class GraceServer(Server):
    """A Server followed across graceful restarts.

    Every grace process of the program writes to the same stderr pipe, so
    self.lines holds the log of all generations; the PID field of each line
    says which process wrote it. The process the test started (self.proc,
    self.pid) is only the first generation; serving_pid() is the current one.
    stop() stops every generation still running and every descendant that
    runs a BUILD_DIR binary, reaps them all and records their exit codes
    (self.exit_codes); problems() then also reports a generation that did
    not exit with 0 unless the test said so (self.expect_exit[pid] = code,
    or None for "any")."""

    def __init__(self, name, args=(), n_ports=1, host=True, **kw):
        super().__init__(name, args, n_ports=n_ports, host=host, **kw)
        self.exit_codes = {}
        self.expect_exit = {}
        self.leftovers = []

    # ---- which processes --------------------------------------------------
    def log_pids(self):
        """PIDs that wrote grace log lines, in order of first appearance."""
        with self._cond:
            lines = list(self.lines)
        seen = dict.fromkeys(p for p in map(log_pid, lines) if p is not None)
        return list(seen)

    def serving_pid(self):
        """The PID that serves now: the newest process named by a "new
        process N is serving" line (the first process if none)."""
        pid = self.pid
        with self._cond:
            for line in self.lines:
                m = re.search(r": new process (\d+) is serving", line)
                if m:
                    pid = int(m.group(1))
        return pid

    def mark(self):
        """Index of the next log line (for wait_for_line(start=...))."""
        with self._cond:
            return len(self.lines)

    def lines_of(self, pid, start=0):
        with self._cond:
            return [ln for ln in self.lines[start:] if log_pid(ln) == pid]

    def wait_restart(self, start, timeout=40.0):
        """Wait for the outcome of a graceful restart begun after log line
        start: returns the new PID, or fails the test with the log if the
        restart failed or nothing happened in time."""
        m = self.wait_for_line(
            r": (new process (\d+) is serving|restart failed: .*)", timeout=timeout, start=start
        )
        if m.group(2) is None:
            pytest.fail(f"{self.name}: restart failed: {m.group(0)}\nstderr:\n{self.stderr()}")
        return int(m.group(2))

    def reap(self):
        """Reap generations that have exited and were re-parented to us."""
        for pid in self.log_pids():
            if pid == self.pid or pid in self.exit_codes:
                continue
            st = proc_stat(pid)
            if st is not None and st[0] == "Z" and st[1] == os.getpid():
                code = reap_pid(pid)
                if code is not None:
                    self.exit_codes[pid] = code
        if self.proc is not None and self.proc.poll() is not None:
            self.exit_codes[self.pid] = self.proc.returncode

    def pid_alive(self, pid):
        """True while pid runs (not exited, not a zombie); reaps on the way."""
        self.reap()
        if pid == self.pid:
            return self.proc.poll() is None
        if pid in self.exit_codes:
            return False
        st = proc_stat(pid)
        return st is not None and st[0] != "Z"

    def wait_pid_exit(self, pid, timeout=STOP_TIMEOUT):
        """Wait up to timeout for generation pid to exit. Returns its exit
        code (negative: killed by that signal), or None if it still runs.
        A generation whose parent, an older generation, is still alive is
        reaped by that parent, which logs the exit status: it is read from
        there. If the parent exits first, the zombie comes to us (we are
        the subreaper) and we reap it."""
        deadline = time.monotonic() + timeout
        while self.pid_alive(pid):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)
        rx = re.compile(
            rf": process {pid} \(which took over from this one\) "
            rf"(exited with status (\d+)|was killed by signal (\d+))"
        )
        deadline = time.monotonic() + IO_TIMEOUT
        while pid not in self.exit_codes:
            m = next(filter(None, map(rx.search, self.lines_of_all())), None)
            if m:
                code = int(m.group(2)) if m.group(2) is not None else -int(m.group(3))
                self.exit_codes[pid] = code
                break
            if time.monotonic() >= deadline:
                pytest.fail(f"{self.name}: process {pid} exited, but neither its parent nor we "
                            f"reaped it\n{self.stderr()}")  # fmt: skip
            time.sleep(0.02)
            self.reap()
        return self.exit_codes[pid]

    def lines_of_all(self):
        with self._cond:
            return list(self.lines)

    def alive_pids(self):
        """Generations (log PIDs and the first process) still running."""
        return [p for p in dict.fromkeys([self.pid, *self.log_pids()]) if self.pid_alive(p)]

    def descendants(self):
        """Running or zombie descendants of this test process that belong to
        this server: its generations and everything below them."""
        table = proc_table()
        mine = set(proc_descendants(os.getpid(), table))
        out = set()
        for r in dict.fromkeys([self.pid, *self.log_pids()]):
            if r in mine:
                out.add(r)
                out.update(proc_descendants(r, table))
        return sorted(out)

    # ---- life cycle ------------------------------------------------------
    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        if self.proc is None:
            return None
        try:
            pids = [p for p in self.descendants() if p == self.pid or is_build_binary(p)]
            pids += [p for p in self.alive_pids() if p not in pids]
            codes = stop_pids(pids, sig=sig, timeout=timeout, popen={self.pid: self.proc})
            for p, c in codes.items():
                self.exit_codes.setdefault(p, c)
        finally:
            # Whatever happened, nothing of ours may outlive the test.
            rest = [p for p in self.descendants() if p != self.pid and is_build_binary(p)]
            if rest:
                self.leftovers = rest
                stop_pids(rest, sig=signal.SIGKILL, timeout=5)
            self.reap()
        return super().stop(sig=sig, timeout=timeout)

    def kill_and_reap(self):
        if self.proc is not None:
            pids = [p for p in self.descendants() if p != self.pid and is_build_binary(p)]
            stop_pids(pids, sig=signal.SIGKILL, timeout=5)
            self.reap()
        super().kill_and_reap()

    def problems(self):
        out = super().problems()
        for pid, code in sorted(self.exit_codes.items()):
            if pid == self.pid:
                continue  # judged by super()
            want = self.expect_exit.get(pid, 0)
            if want is not None and code != want:
                out.append(f"{self.name} generation pid {pid} exited with {code}, not {want}")
        if self.leftovers:
            out.append(f"{self.name}: processes still running at teardown: {self.leftovers}")
        return out


class GraceServerPool(ServerPool):
    """A ServerPool of GraceServers."""

    def start(self, name, *args, n_ports=1, host=True, **kw):
        srv = GraceServer(name, args, n_ports=n_ports, host=host, **kw)
        self.servers.append(srv)
        return srv.start()


@pytest.fixture
def grace_servers():
    """Like servers, for tests that restart them: every generation of every
    server is stopped, reaped and checked at the end."""
    pool = GraceServerPool()
    try:
        yield pool
    finally:
        pool.close()
