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
"""

import os
import re
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
START_TIMEOUT = 10.0  # seconds for the "started listening" lines
STOP_TIMEOUT = 15.0  # seconds between SIGTERM and SIGKILL
IO_TIMEOUT = 10.0  # default bound on any single network wait

LISTEN_RE = re.compile(r"http server started listening on \[127\.0\.0\.1:(\d+)\]")
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:")

# Never send test traffic through a proxy from the environment.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def example_path(name):
    return BUILD_DIR / "examples" / name


def sanitizer_env():
    """The environment for a server: ours plus sanitizer settings that make
    reports land on stderr and leaks count."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.setdefault("LSAN_OPTIONS", "")
    return env


class Server:
    """One example server process.

    stderr is read line by line by a background thread into self.lines, so
    the pipe never fills and a test can wait for a given line."""

    def __init__(self, name, args=(), n_ports=1, host=True):
        self.name = name
        self.exe = example_path(name)
        self.argv = [str(self.exe)]
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
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=sanitizer_env(),
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

    def start(self, name, *args, n_ports=1, host=True):
        srv = Server(name, args, n_ports=n_ports, host=host)
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
