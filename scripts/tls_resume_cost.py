#!/usr/bin/env python3
"""tls_resume_cost.py -- what TLS session resumption across a restart saves
the server, measured (docs/https.md, "Session resumption and key rotation").

    scripts/tls_resume_cost.py [--build build-gcc] [--n 2000] [--rsa]

Starts BUILD/examples/https on 127.0.0.1 with a test certificate
(scripts/selfsigned.sh, ECDSA P-256; --rsa: a self-signed RSA-2048 one,
whose signature costs a full handshake more), and for TLS 1.2 and TLS 1.3:

  1. one client connection gets a session (ticket), GET /pid;
  2. graceful restart (SIGUSR1), wait for "new process N is serving";
  3. N connections to the new process offering that session: resumed;
  4. N connections offering no session: full handshakes;
  5. a server started afresh (keys of its own), N connections offering the
     same session: what every client did after a restart before the key
     ring (the ticket is refused, a full handshake follows).

Each connection is a new TCP connection (TCP_NODELAY, as browsers and curl
set it), a handshake, GET / and the answer, then a close. The figure is the
server's CPU time (utime + stime of the serving process, /proc/PID/stat)
during the N connections, less what the process uses idle over the same
time (its monitor thread; measured for 3 s first), divided by N: the
client's own cost is not counted. 200 connections warm the new process up
first. Use a build without sanitizers. Python's ssl module is the client.
"""

import argparse
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, exe, cert, key):
        self.proc = subprocess.Popen(
            [exe, "--host", "127.0.0.1", "--port", "0", "--cert", cert, "--key", key],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines, self.cond = [], threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.port = int(self.wait(r"https server started listening on \[127\.0\.0\.1:(\d+)\]"))
        self.pid = self.proc.pid

    def _read(self):
        for raw in self.proc.stderr:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace"))
                self.cond.notify_all()

    def wait(self, pattern, start=0, timeout=30):
        deadline = time.monotonic() + timeout
        with self.cond:
            while time.monotonic() < deadline:
                for line in self.lines[start:]:
                    if m := re.search(pattern, line):
                        return m.group(1)
                self.cond.wait(0.2)
        sys.exit(f"no line matching {pattern!r}:\n{''.join(self.lines)}")

    def restart(self):
        mark = len(self.lines)
        os.kill(self.pid, signal.SIGUSR1)
        self.pid = int(self.wait(r"new process (\d+) is serving", start=mark))

    def stop(self):
        os.kill(self.pid, signal.SIGTERM)
        if self.pid != self.proc.pid:  # the first process exits by itself once drained
            deadline = time.monotonic() + 30
            while os.path.exists(f"/proc/{self.pid}") and time.monotonic() < deadline:
                time.sleep(0.05)
        self.proc.wait(timeout=30)


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def connect(port, ctx, session=None):
    """One connection, GET /, read to the end. Returns (reused, session)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        # Without it the request waits for the ACK of the client's last
        # handshake message, 40 ms after a resumed TLS 1.2 handshake.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            while s.recv(65536):
                pass
            return s.session_reused, s.session


def idle_rate(pid, seconds=3.0):
    """CPU seconds per second that pid uses with no client."""
    before = cpu_s(pid)
    time.sleep(seconds)
    return (cpu_s(pid) - before) / seconds


def run(srv, ctx, n, session, idle):
    """n connections; returns (server CPU ms per connection, resumed count)."""
    before, t0, reused = cpu_s(srv.pid), time.monotonic(), 0
    for _ in range(n):
        reused += connect(srv.port, ctx, session)[0]
    busy = cpu_s(srv.pid) - before - idle * (time.monotonic() - t0)
    return busy * 1000 / n, reused


def warm_up(srv, ctx):
    for _ in range(200):
        connect(srv.port, ctx)
    return idle_rate(srv.pid)


def rsa_certificate(d):
    """A self-signed RSA-2048 certificate for localhost: (cert, key, ca)."""
    cert, key = d / "rsa-cert.pem", d / "rsa-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return str(cert), str(key), str(cert)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=str(REPO / "build-gcc"))
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rsa", action="store_true", help="an RSA-2048 certificate")
    a = ap.parse_args()
    exe = str(Path(a.build) / "examples" / "https")
    certs = Path(tempfile.mkdtemp(prefix="grace-tls-cost-"))
    if a.rsa:
        cert, key, ca = rsa_certificate(certs)
    else:
        subprocess.run([REPO / "scripts" / "selfsigned.sh", certs], check=True,
                       stderr=subprocess.DEVNULL)
        cert, key, ca = str(certs / "cert.pem"), str(certs / "key.pem"), str(certs / "ca.pem")
    print(f"{a.n} connections each; server CPU per connection (handshake + GET / + close)")
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.minimum_version = ctx.maximum_version = version
        srv = Server(exe, cert, key)
        _, session = connect(srv.port, ctx)
        srv.restart()
        idle = warm_up(srv, ctx)
        resumed = run(srv, ctx, a.n, session, idle)
        full = run(srv, ctx, a.n, None, idle)
        srv.stop()
        fresh = Server(exe, cert, key)  # keys of its own: the old ticket is refused
        refused = run(fresh, ctx, a.n, session, warm_up(fresh, ctx))
        fresh.stop()
        print(f"(idle: {idle * 1000:.1f} ms of CPU per second)")
        name = version.name.replace("v", " ").replace("_", ".")
        for what, (ms, n_reused) in (("after a restart, ticket resumed", resumed),
                                     ("after a restart, no ticket (full)", full),
                                     ("fresh server, ticket refused (full)", refused)):
            print(f"{name}  {what:38s} {ms:6.3f} ms  ({n_reused}/{a.n} resumed)")


if __name__ == "__main__":
    main()
