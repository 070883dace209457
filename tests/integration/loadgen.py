"""loadgen.py -- a bounded HTTP/1.1 load generator for the restart tests.

Standard library only (threads and raw sockets), so that every byte is
accounted for. Two kinds of workers run until stop() (or max_seconds):

  keep-alive workers  one connection each, request after request on it,
                      like a browser or a connection pool;
  fresh workers       a new connection per request ("Connection: close").

Every request is counted exactly once, as ok or failed, and none is ever
sent twice: like wrk, a load balancer or a client sending a POST, this
client never sends a request twice.

  ok        200 with exactly the expected body;
  failed    anything else: refused, reset, timeout, EOF before or inside a
            response (on a new or a reused connection alike), wrong status,
            wrong body, unsolicited bytes.

A connection is reused until an answer says "Connection: close" (then the
worker opens a new one, as every client does); a reused connection that the
server closed under the client is found only by sending on it, and the
request sent is a failure. That is the promise the restart tests check
(SPEC G9): a server that drains keeps a connection in use open and answers
its next request with "Connection: close".
"""

import socket
import threading
import time

HOST = "127.0.0.1"


class Target:
    """One endpoint: port, path and the exact body a 200 must carry."""

    def __init__(self, port, path="/", body=b"", host=HOST):
        self.port = port
        self.path = path
        self.body = body
        self.host = host

    def request(self, close):
        extra = "Connection: close\r\n" if close else ""
        return (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"User-Agent: grace-loadgen\r\n{extra}\r\n"
        ).encode("latin-1")

    def __repr__(self):
        return f"{self.host}:{self.port}{self.path}"


class NoResponse(Exception):
    """The connection ended before any byte of the response arrived."""


class BrokenResponse(Exception):
    """The connection ended (or timed out) inside a response."""


def _send_all(sock, data):
    """sendall; a send that fails because the peer closed raises NoResponse
    (nothing of the answer can have arrived yet)."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError) as e:
        raise NoResponse(f"send failed: {e!r}") from None


def read_response(sock, deadline):
    """Read one response from sock. Returns (status, headers, body) with
    headers a dict of lower-case names. Raises NoResponse, BrokenResponse or
    TimeoutError."""
    buf = b""

    def fill():
        nonlocal buf
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete response in time; got {buf[:200]!r}")
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            raise TimeoutError(f"no complete response in time; got {buf[:200]!r}") from None
        except ConnectionResetError:
            if not buf:
                raise NoResponse("reset before any byte of the response") from None
            raise BrokenResponse(f"reset inside a response; got {buf[:200]!r}") from None
        if not data:
            if not buf:
                raise NoResponse("EOF before any byte of the response")
            raise BrokenResponse(f"EOF inside a response; got {buf[:200]!r}")
        buf += data

    while b"\r\n\r\n" not in buf:
        fill()
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise BrokenResponse(f"bad status line {lines[0]!r}")
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BrokenResponse(f"bad header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    buf = rest
    te = headers.get("transfer-encoding", "").lower()
    if "chunked" in te:
        body = b""
        while True:
            while b"\r\n" not in buf:
                fill()
            line, _, buf = buf.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            while len(buf) < size + 2:
                fill()
            body += buf[:size]
            buf = buf[size + 2 :]
            if size == 0:
                break  # (no trailers from grace; the CRLF was consumed above)
        extra = buf
    elif "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            fill()
        body, extra = buf[:n], buf[n:]
    else:  # body until the server closes
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no end of a close-delimited body in time; got {buf[:200]!r}")
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no end of a close-delimited body in time") from None
            except ConnectionResetError:
                raise BrokenResponse("reset inside a close-delimited body") from None
            if not data:
                break
            buf += data
        body, extra = buf, b""
    if extra:
        raise BrokenResponse(f"unsolicited bytes after the response: {extra[:200]!r}")
    return status, headers, body


def _closes(headers):
    return "close" in [t.strip().lower() for t in headers.get("connection", "").split(",")]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.failed = 0
        self.connections = 0
        self.failures = []  # first few failure descriptions
        self.ok_by_target = {}

    def add_ok(self, target):
        with self.lock:
            self.ok += 1
            self.ok_by_target[repr(target)] = self.ok_by_target.get(repr(target), 0) + 1

    def add_failed(self, target, kind, why):
        with self.lock:
            self.failed += 1
            if len(self.failures) < 50:
                now = time.time()
                stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
                self.failures.append(f"{stamp} {target!r} [{kind}] {why}")

    def add(self, field, n=1):
        with self.lock:
            setattr(self, field, getattr(self, field) + n)

    def summary(self):
        with self.lock:
            return (
                f"ok={self.ok} failed={self.failed} connections={self.connections} "
                f"by_target={self.ok_by_target}"
            )


class LoadGen:
    """Keep-alive and fresh-connection workers against targets until stop().

    keepalive: number of keep-alive workers (spread over the targets);
    fresh: number of fresh-connection workers (each cycles over the targets);
    timeout: bound on one request (connect to last byte);
    max_seconds: the workers stop by themselves after this long."""

    def __init__(self, targets, keepalive=4, fresh=2, timeout=10.0, max_seconds=150.0):
        self.targets = list(targets)
        self.keepalive = keepalive
        self.fresh = fresh
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.stats = Stats()
        self._stop = threading.Event()
        self._threads = []

    # ---- control ----------------------------------------------------------
    def start(self):
        self._t0 = time.monotonic()
        for i in range(self.keepalive):
            t = self.targets[i % len(self.targets)]
            self._threads.append(threading.Thread(target=self._keepalive, args=(t,), daemon=True))
        for i in range(self.fresh):
            self._threads.append(threading.Thread(target=self._fresh, args=(i,), daemon=True))
        for th in self._threads:
            th.start()
        return self

    def stop(self):
        self._stop.set()
        for th in self._threads:
            th.join(timeout=self.timeout + 5)
        stuck = [th for th in self._threads if th.is_alive()]
        if stuck:
            self.stats.add_failed("-", "harness", f"{len(stuck)} workers did not stop")
        return self.stats

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def ok_count(self):
        with self.stats.lock:
            return self.stats.ok

    def wait_ok(self, n, timeout=20.0):
        """Wait until n more requests succeeded than now (proof that the load
        flows); returns True if they did within timeout."""
        goal = self.ok_count() + n
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ok_count() >= goal:
                return True
            if self._stop.is_set():
                return False
            time.sleep(0.01)
        return False

    def _running(self):
        return not self._stop.is_set() and time.monotonic() - self._t0 < self.max_seconds

    # ---- one request ------------------------------------------------------
    def _connect(self, target, deadline):
        sock = socket.create_connection(
            (target.host, target.port), timeout=max(0.1, deadline - time.monotonic())
        )
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stats.add("connections")
        return sock

    def _judge(self, target, status, body):
        if status == 200 and body == target.body:
            self.stats.add_ok(target)
        else:
            self.stats.add_failed(target, "answer", f"status {status} body {body[:200]!r}")

    # ---- workers ----------------------------------------------------------
    def _keepalive(self, target):
        sock = None
        reused = False
        while self._running():
            deadline = time.monotonic() + self.timeout
            if sock is None:
                try:
                    sock = self._connect(target, deadline)
                except OSError as e:
                    self.stats.add_failed(target, "keep-alive connect", repr(e))
                    time.sleep(0.01)
                    continue
                reused = False
            try:
                _send_all(sock, target.request(close=False))
                status, headers, body = read_response(sock, deadline)
            except (NoResponse, BrokenResponse, TimeoutError, OSError) as e:
                kind = "keep-alive reused" if reused else "keep-alive new"
                self.stats.add_failed(target, kind, f"{type(e).__name__}: {e}")
                sock.close()
                sock = None
                time.sleep(0.01)
                continue
            self._judge(target, status, body)
            if _closes(headers) or status != 200:
                sock.close()
                sock = None
            else:
                reused = True
        if sock is not None:
            sock.close()

    def _fresh(self, i):
        k = i
        while self._running():
            target = self.targets[k % len(self.targets)]
            k += 1
            deadline = time.monotonic() + self.timeout
            sock = None
            try:
                sock = self._connect(target, deadline)
                _send_all(sock, target.request(close=True))
                status, headers, body = read_response(sock, deadline)
            except (NoResponse, BrokenResponse, TimeoutError, OSError) as e:
                self.stats.add_failed(target, "fresh", f"{type(e).__name__}: {e}")
                time.sleep(0.01)
                continue
            finally:
                if sock is not None:
                    sock.close()
            self._judge(target, status, body)


def run_errors(stats):
    """A readable report of a run's failures."""
    return stats.summary() + ("\nfailures:\n  " + "\n  ".join(stats.failures) if stats.failures else "")
