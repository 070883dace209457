"""servers.py -- the servers bench/run.py and bench/soak.py start and restart.

Grace runs a private copy of an example of the release build (a rebuild
meanwhile cannot change what a new generation executes) and follows the log
all its generations share: its port, the serving PID, the outcome of each
restart. Nginx runs nginx from bench/nginx.conf.in, with TLS settings matched
to grace's. Both answer a PID probe (who_answers), so restart() can time a
restart from outside: from the trigger (SIGUSR1 to grace's serving process,
SIGHUP to nginx's master) to the first answer, on a new connection, from a
process that was not serving before.
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from types import SimpleNamespace

from lib import BUILD, HERE, ROOT, BenchError, alive, log, ps

NGINX_TEMPLATE = os.path.join(HERE, "nginx.conf.in")
SELFSIGNED = os.path.join(ROOT, "scripts", "selfsigned.sh")
BODY = b"Hello, World!"                              # examples/hello, GET /
HTTPS_BODY = "\u54c8\u7f57\uff01\n".encode("utf-8")  # examples/https, GET /: 哈罗！
TLS13_SUITE = "TLS_AES_128_GCM_SHA256"  # the one TLS 1.3 suite wrk offers in run.py
NGINX_WORKERS = 2
NGINX_CONNECTIONS = 4096  # worker_connections, unless a scenario needs more (idle)
BACKENDS = ("epoll", "io_uring")  # grace's loop backends: GRACE_BACKEND values


def get(port, path, tls=None, timeout=2.0):
    """GET on a new connection: (status, body)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls, timeout=timeout) \
        if tls else http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def wait_until(check, what, timeout=15.0):
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, ValueError, KeyError, http.client.HTTPException) as e:
            last = e
        time.sleep(0.05)
    raise BenchError("%s: not ready within %.0f s (%s)" % (what, timeout, last))


def who_answers(srv, timeout=1.0):
    """The PID of the process answering a new connection (srv.pid_path
    answers a bare PID, or grace's admin status its JSON)."""
    scheme = "http" if "http" in srv.ports else "https"
    status, body = get(srv.ports[scheme], srv.pid_path, srv.tls if scheme == "https" else None,
                       timeout)
    if status != 200:
        raise ValueError("GET %s answered %d" % (srv.pid_path, status))
    return int(json.loads(body)["pid"]) if body[:1] == b"{" else int(body)


def private_copy(example, tmp):
    """Copy BUILD/examples/EXAMPLE into tmp: (path, facts about the binary)."""
    src, exe = os.path.join(BUILD, "examples", example), os.path.join(tmp, example)
    if not os.access(src, os.X_OK):
        raise BenchError("%s missing: build first (make)" % src)
    if not os.path.exists(exe):
        shutil.copy2(src, exe)
    with open(exe, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return exe, {"source": src, "sha256": digest, "built": time.strftime(
        "%Y-%m-%d %H:%M:%S UTC", time.gmtime(os.path.getmtime(exe)))}


LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3}) (\d+): (.*)$")
LISTEN_RE = re.compile(r"server started listening on \[127\.0\.0\.1:(\d+)\]")
SERVING_RE = re.compile(r"new process (\d+) is serving")


class Grace:
    """One grace example (exe: a private copy) and all its generations,
    followed through the log they share. body: what GET / must answer before
    it counts as started (None: not checked); pid_path: its PID probe."""

    kind = "grace"

    def __init__(self, procs, name, exe, args=(), scheme="http", body=None, tls=None,
                 pid_path="/pid", cpu=0, backend=None):
        self.name, self.scheme, self.tls, self.pid_path = name, scheme, tls, pid_path
        self.lines, self.events, self.eof, self.cond = [], [], False, threading.Condition()
        self.backend = backend  # GRACE_BACKEND in its environment (None: not set)
        env = dict(os.environ, GRACE_BACKEND=backend) if backend else None
        self.proc = procs.spawn([exe, "--host", "127.0.0.1", "--port", "0"] + list(args), cpu,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        self.pgid = self.serving = self.proc.pid
        self.generations = [self.proc.pid]
        self.ports = {}
        threading.Thread(target=self._follow, args=(exe + "-" + name + ".log",),
                         daemon=True).start()
        if not self.wait(lambda: self.ports or self.eof, 15.0) or not self.ports:
            raise BenchError("%s did not report its port:\n%s" % (name, show(self.tail(10))))
        self.port = self.ports[scheme]
        wait_until(lambda: who_answers(self) == self.serving, name)
        if body is not None:
            wait_until(lambda: get(self.port, "/", tls) == (200, body), name + ": GET /")

    def _follow(self, logpath):
        with open(logpath, "w") as f:
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                f.write(line + "\n")
                with self.cond:
                    self.lines.append((time.monotonic(), line))
                    self._parse(line)
                    self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def _parse(self, line):
        m = LOG_RE.match(line)
        if not m:
            return
        when = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1e3
        pid, text = int(m.group(3)), m.group(4)
        listen, serving = LISTEN_RE.search(text), SERVING_RE.match(text)
        if listen and not self.ports:
            self.ports[self.scheme] = int(listen.group(1))
        elif serving:
            self.events.append((pid, "serving", int(serving.group(1)), when))
        elif text.startswith(("restart refused", "restart failed")):
            self.events.append((pid, "failed", text, when))

    def wait(self, pred, timeout):
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def _outcome(self, token):
        old, mark = token
        return next((ev for ev in self.events[mark:] if ev[0] == old), None)

    def tail(self, n=30, keep=lambda t, line: True):
        """The last n log lines (of those keep(receive time, line) accepts)."""
        with self.cond:
            return [(t, line) for t, line in self.lines if keep(t, line)][-n:]

    def alive(self):
        return alive(self.serving)

    def leftovers(self):
        """Old generations still running."""
        return len([p for p in self.generations if p != self.serving and alive(p)])

    def restart(self):
        """SIGUSR1 to the serving process; returns the token of this restart."""
        token = (self.serving, len(self.events))
        os.kill(self.serving, signal.SIGUSR1)
        return token

    def is_new(self, token):
        return lambda pid: pid != token[0]

    def given_up(self, token):
        with self.cond:
            ev = self._outcome(token)
        return ev is not None and ev[1] == "failed"

    def settle(self, token, timeout=10.0):
        """Wait for the restart's outcome in the log: (error or None, wall
        time of the log line "new process N is serving" or None)."""
        ev = self.wait(lambda: self._outcome(token), timeout)
        if ev is None:
            return "no outcome of restarting %d logged within %.0f s" % (token[0], timeout), None
        if ev[1] == "failed":
            return ev[2], None
        self.serving = ev[2]
        self.generations.append(ev[2])
        return None, ev[3]


# The backend a grace process runs, from the one line it logs when its event
# loops start (the io_uring work of issue 12, src/workers.c choose_backend):
#     "2 event loops on io_uring (GRACE_BACKEND=io_uring)"
#     "2 event loops on epoll (GRACE_BACKEND=epoll)"
#     "2 event loops on epoll: io_uring cannot run here: WHY"   (GRACE_BACKEND unset)
# and, for a forced io_uring that cannot run (the process then exits):
#     "GRACE_BACKEND=io_uring, but io_uring cannot run here: WHY"
# A build without that line (main before io_uring) has one loop, epoll, and
# ignores GRACE_BACKEND: NO_LINE_BACKEND. Change these two if the wording does.
BACKEND_LINE_RE = re.compile(r"\d+ event loops? on (epoll|io_uring)\b")
NO_LINE_BACKEND = "epoll"


def logged_backend(lines):
    """(backend, its log line) from the first line of grace's log that says
    which backend runs, or (None, None)."""
    for line in lines:
        m = BACKEND_LINE_RE.search(line)
        if m:
            return m.group(1), LOG_RE.sub(r"\4", line)
    return None, None


def probe_backend(procs, tmp, backend, cpu):
    """Does grace run this loop backend here? Decided from what grace does:
    starts a private copy of examples/hello with GRACE_BACKEND=backend, waits
    for its first answer and reads its log. Yes if it logs that its event
    loops run on backend, or, for a build that logs no backend line, if
    backend is NO_LINE_BACKEND. Returns {available, why, line: the backend
    line or None}."""
    exe = private_copy("hello", tmp)[0]
    try:
        srv = Grace(procs, "grace-probe-" + backend, exe, (), "http", BODY, None,
                    "/debug/admin/status", cpu, backend)
    except BenchError as e:
        named = [l.strip() for l in str(e).splitlines() if backend in l]
        return {"available": False, "line": None, "why": "examples/hello did not start with "
                "GRACE_BACKEND=%s: %s" % (backend, LOG_RE.sub(r"\4", named[-1]) if named
                                          else str(e)[:300])}
    try:
        # the line comes before the listening line; a moment more, in case
        srv.wait(lambda: logged_backend(l for _, l in srv.lines)[0], 0.3)
        runs, line = logged_backend(l for _, l in srv.tail(200))
    finally:
        procs.stop([srv.pgid])
    if runs is None:
        if backend == NO_LINE_BACKEND:
            why = ("this build logs no backend line: it has the %s loop only and ignores "
                   "GRACE_BACKEND" % NO_LINE_BACKEND)
        else:
            why = ("this build has no %s backend (examples/hello, started with GRACE_BACKEND=%s, "
                   "logs no \"event loops on %s\" line)" % (backend, backend, backend))
        return {"available": backend == NO_LINE_BACKEND, "line": None, "why": why}
    return {"available": runs == backend, "line": line, "why": "examples/hello with "
            "GRACE_BACKEND=%s logged: %s" % (backend, line)}


def check_backend(srv):
    """After a grace server started: that it runs the backend it was asked
    for (srv.backend), if its build logs one. Returns the log line or None."""
    if srv.backend is None:
        return None
    srv.wait(lambda: logged_backend(l for _, l in srv.lines)[0], 0.3)
    runs, line = logged_backend(l for _, l in srv.tail(200))
    if (runs or NO_LINE_BACKEND) != srv.backend:
        raise BenchError("%s was started with GRACE_BACKEND=%s but %s" % (
            srv.name, srv.backend, "logged: " + line if line else "logs no backend line (%s "
            "only)" % NO_LINE_BACKEND))
    return line


def choose(procs, tmp, asked, cpu):
    """The grace backends to run: asked (--backends), or by default every
    backend of BACKENDS that grace runs here (probe_backend: each is tried).
    One asked for that does not run is an error. Returns {asked, run:
    [names], probe: {name: probe_backend's answer}, note: what was left out
    and why, or None}."""
    probe = {}
    for b in BACKENDS:
        probe[b] = probe_backend(procs, tmp, b, cpu)
        log("backend %s: %s (%s)" % (b, "runs" if probe[b]["available"] else "does NOT run",
                                     probe[b]["why"]))
    names = asked or [b for b in BACKENDS if probe[b]["available"]]
    bad = [b for b in names if not probe[b]["available"]]
    if bad:
        raise BenchError("; ".join("--backends %s: grace does not run %s here: %s"
                                   % (",".join(names), b, probe[b]["why"]) for b in bad))
    if not names:
        raise BenchError("grace runs none of its backends here: " + "; ".join(
            "%s: %s" % (b, p["why"]) for b, p in probe.items()))
    left = [b for b in BACKENDS if b not in names]
    note = "; ".join("%s not run: %s" % (b, "not asked for (--backends)" if probe[b]["available"]
                                         else probe[b]["why"]) for b in left) or None
    if note:
        log("grace backends run: %s; %s" % (", ".join(names), note))
    return {"asked": asked or "default", "run": names, "probe": probe, "note": note}


def nginx_tls(certs):
    """nginx's TLS settings, matched to grace's (src/tls.c): TLS 1.2 and 1.3,
    the same TLS 1.2 cipher list with server preference, TLS 1.3 pinned to
    TLS13_SUITE, session tickets (stateless; nginx's keys are made at start
    and shared by its workers, grace's come from its key ring, src/tickets.c)
    and a server-side session cache."""
    return "".join("        %s;\n" % l for l in (
        "ssl_certificate %s" % certs.cert, "ssl_certificate_key %s" % certs.key,
        "ssl_protocols TLSv1.2 TLSv1.3", "ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20",
        "ssl_prefer_server_ciphers on", "ssl_conf_command Ciphersuites %s" % TLS13_SUITE,
        "ssl_session_tickets on", "ssl_session_cache shared:SSL:1m"))


def free_ports(n):
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(n)]
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Nginx:
    """One nginx master with NGINX_WORKERS workers in tmp/name, listening on
    127.0.0.1 for each scheme in schemes ("http", "https": certs needed),
    answering GET / with body; scheme is the one PID probes and load use;
    connections: each worker's worker_connections."""

    kind = "nginx"
    pid_path = "/pid"
    backend = None

    def __init__(self, procs, tmp, name, nginx, schemes=("http",), body=BODY, certs=None,
                 cpu=0, connections=NGINX_CONNECTIONS):
        d = os.path.join(tmp, name)
        os.makedirs(d)
        os.chmod(tmp, 0o755)  # as root, the workers run as an unprivileged user
        os.chmod(d, 0o755)
        self.name, self.scheme, self.tls = name, schemes[0], certs.tls if certs else None
        self.ports = dict(zip(schemes, free_ports(len(schemes))))
        self.port = self.ports[self.scheme]
        without = subprocess.run([nginx, "-V"], capture_output=True, text=True).stderr
        temp = ["    client_body_temp_path @DIR@/body;"] + [
            "    %s_temp_path @DIR@/%s;" % (m, m) for m in ("proxy", "fastcgi", "uwsgi", "scgi")
            if "--without-http_%s_module" % m not in without]
        listen = "".join("        listen 127.0.0.1:%d%s;\n" % (p, " ssl" if s == "https" else "")
                         for s, p in self.ports.items())
        with open(NGINX_TEMPLATE) as f:
            conf = f.read()
        escaped = body.decode().replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        for k, v in (("TEMP_PATHS", "\n".join(temp)), ("LISTEN", listen.rstrip("\n")),
                     ("TLS", nginx_tls(certs) if "https" in schemes else ""),
                     ("BODY", escaped), ("WORKERS", NGINX_WORKERS), ("DIR", d),
                     ("CONNECTIONS", connections), ("NOFILE", 2 * connections)):
            conf = conf.replace("@%s@" % k, str(v))
        with open(d + "/nginx.conf", "w", encoding="utf-8") as f:
            f.write(conf)
        with open(d + "/stderr.log", "w") as out:
            self.proc = procs.spawn([nginx, "-p", d + "/", "-e", d + "/error.log",
                                     "-c", d + "/nginx.conf"], cpu, stdout=out, stderr=out)
        self.pgid = self.master = self.proc.pid
        wait_until(lambda: who_answers(self) > 0 and len(self.workers()) == NGINX_WORKERS and all(
            get(p, "/", self.tls if s == "https" else None) == (200, body)
            for s, p in self.ports.items()), name)

    def workers(self):
        return {pid for pid, st in ps().items()
                if st["ppid"] == self.master and st["state"] not in ("Z", "X")}

    def alive(self):
        return alive(self.master)

    def leftovers(self):
        """Old workers still running."""
        return max(0, len(self.workers()) - NGINX_WORKERS)

    def restart(self):
        """SIGHUP to the master (what `nginx -s reload` does)."""
        token = self.workers()
        os.kill(self.master, signal.SIGHUP)
        return token

    def is_new(self, token):
        return lambda pid: pid not in token

    def given_up(self, token):
        return not alive(self.master)

    def settle(self, token, timeout=10.0):
        return None, None


def restart(servers, timeout=10.0):
    """One restart round: restart every server at once; probe the first (a
    new connection every ~1 ms) until a process that was not serving before
    answers; then each one's outcome. Returns {t: monotonic time of the
    trigger, ms: until the new process answered, log_ms: grace's "is
    serving" log line, errors: [...] (failed probes and restarts)}."""
    first, t, wall = servers[0], time.monotonic(), time.time()
    rec = {"t": t, "ms": None, "log_ms": None, "errors": []}
    tokens = []
    for s in servers:
        try:
            tokens.append(s.restart())
        except ProcessLookupError:
            rec["errors"].append("%s: the serving process is gone" % s.name)
            return rec
    is_new = first.is_new(tokens[0])
    while time.monotonic() - t < timeout:
        try:
            if is_new(who_answers(first)):
                rec["ms"] = (time.monotonic() - t) * 1e3
                break
        except (OSError, ValueError, KeyError, http.client.HTTPException) as e:
            rec["errors"].append("probe: %s" % (str(e) or type(e).__name__))
        if first.given_up(tokens[0]):
            break
        time.sleep(0.001)
    else:
        rec["errors"].append("%s: no new process answered within %.0f s" % (first.name, timeout))
    for s, token in zip(servers, tokens):
        err, when = s.settle(token)
        if err:
            rec["errors"].append("%s: %s" % (s.name, err))
        if s is first and when is not None:
            rec["log_ms"] = (when - wall) * 1e3
    return rec


def wait_old(procs, servers, timeout):
    """Wait (at most timeout s) until the old processes of servers have
    exited, reaping them; returns how many are left."""
    deadline = time.monotonic() + timeout
    while sum(s.leftovers() for s in servers) and time.monotonic() < deadline:
        procs.reap()
        time.sleep(0.05)
    procs.reap()
    return sum(s.leftovers() for s in servers)


def show(lines):
    return "\n".join("    " + line for _, line in lines) or "    (none)"


# ---------------------------------------------------------------- TLS

CLIENT_OPENSSL_CONF = """\
# wrk's OpenSSL configuration (bench/lib.py): offer TLS 1.3 with one suite.
openssl_conf = bench_conf
[bench_conf]
ssl_conf = bench_ssl
[bench_ssl]
system_default = bench_client
[bench_client]
MinProtocol = TLSv1.3
Ciphersuites = %s
""" % TLS13_SUITE


def make_certs(tmp):
    """A certificate for 127.0.0.1 from scripts/selfsigned.sh, an SSLContext
    trusting its CA, and an OpenSSL configuration that makes a client (wrk,
    openssl s_client) offer TLS 1.3 with TLS13_SUITE only."""
    d = os.path.join(tmp, "certs")
    p = subprocess.run(["bash", SELFSIGNED, d], capture_output=True, text=True)
    if p.returncode != 0:
        raise BenchError("scripts/selfsigned.sh failed: %s%s" % (p.stdout, p.stderr))
    os.chmod(d, 0o755)  # nginx reads the key as root before dropping privileges
    conf = os.path.join(tmp, "wrk-openssl.cnf")
    with open(conf, "w") as f:
        f.write(CLIENT_OPENSSL_CONF)
    return SimpleNamespace(cert=d + "/cert.pem", key=d + "/key.pem", ca=d + "/ca.pem",
                           tls=ssl.create_default_context(cafile=d + "/ca.pem"),
                           client_conf=conf)
