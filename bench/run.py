#!/usr/bin/python3
"""Side-by-side benchmark of grace and nginx (SPEC B5), plain HTTP and HTTPS,
and a restart-under-load run of both.

HTTP: grace's examples/hello and nginx both answer GET / with the 13-byte body
"Hello, World!" on loopback.  HTTPS: grace's examples/https and nginx (same
certificate, made by scripts/selfsigned.sh) both answer GET / with the
10-byte body of examples/https ("哈罗！\n"), TLS 1.3 with the same cipher
suite: wrk is made to offer only TLS_AES_128_GCM_SHA256 (an OPENSSL_CONF of
its own), and the suite each server picks is checked with `openssl s_client`.
The servers run pinned to one CPU (default 0, via `taskset`, so every thread
and child process inherits the pinning), the load generator wrk runs pinned to
another (default 1).  For every scenario and round, grace runs first, then
nginx, against the same wrk command; per run the script records

  * requests/s, p99 latency and errors from `wrk --latency`,
  * user+sys CPU seconds used by the server's whole process tree
    (/proc/PID/stat utime+stime of the main PID and all its descendants,
    read before and after the run),
  * RSS of the process tree (sum of VmRSS) sampled after the run, and PSS
    (sum of Pss from smaps_rollup: shared pages counted once in total),
  * context switches per request of all the server's threads, and the CPU time
    other programs on the machine used meanwhile,

and prints medians over the rounds and the ratios grace/nginx.  Before each run
it waits (up to --quiet-timeout) until other programs leave the CPUs alone,
and repeats a run (up to --retries times) that they disturbed anyway.

restart-under-load (once per server, --restart-duration s): bench/loadgen.py
(keep-alive connections plus a new connection per request, counted per 100 ms,
RFC 9112 9.3.1 retries counted apart) loads a fresh hello while it is restarted
gracefully every --restart-interval s (SIGUSR1 to the serving PID), then a
fresh nginx while it is reloaded as often (SIGHUP to its master).  Per restart
it measures the time from the trigger to the first request answered by the
new process (a probe on new connections: hello's /debug/admin/status, nginx's
`location = /pid`), and for grace also to its log line "new process N is
serving".  It plots both runs into one PNG (--plot; needs python3-matplotlib).

It never asserts on performance: the exit status is non-zero only if a server
failed to start (or died), wrk or the load generator failed, or the run was
interrupted.

Usage (see --help):
    /usr/bin/python3 bench/run.py                    # 3 rounds x 5 s, all scenarios
    BENCH_QUICK=1 /usr/bin/python3 bench/run.py      # 1 round x 1 s smoke run
    /usr/bin/python3 bench/run.py --only restart     # restart-under-load only
    /usr/bin/python3 bench/run.py --only https --json out.json
    /usr/bin/python3 bench/run.py --json out.json --perf perf.txt

Standard library only (matplotlib, if installed, for the plot).  Adding a
scenario: write a function `scenario_xxx(ctx, server) -> dict` (use
`measure()`), and append a `Scenario(...)` to SCENARIOS with the group of
servers it runs against ("http" or "https").
"""

import argparse
import collections
import ctypes
import hashlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# `make bench` passes GRACE_BUILD_DIR (the release build directory)
BUILD_DIR = os.environ.get("GRACE_BUILD_DIR") or os.path.join(ROOT, "build")
DEFAULT_HELLO = os.path.join(BUILD_DIR, "examples", "hello")
DEFAULT_HTTPS = os.path.join(BUILD_DIR, "examples", "https")
NGINX_TEMPLATE = os.path.join(HERE, "nginx.conf.in")
LOADGEN = os.path.join(HERE, "loadgen.py")
SELFSIGNED = os.path.join(ROOT, "scripts", "selfsigned.sh")
NGINX_WORKERS = 2  # worker_processes in bench/nginx.conf.in
DEFAULT_PLOT = os.path.join(ROOT, "docs", "restart-under-load.png")
BODY = b"Hello, World!"                                   # examples/hello, GET /
HTTPS_BODY = "\u54c8\u7f57\uff01\n".encode("utf-8")    # examples/https, GET /: 哈罗！
# TLS 1.3 suite both servers must use: wrk offers only this one (OPENSSL_CONF)
TLS13_SUITE = "TLS_AES_128_GCM_SHA256"
CLK_TCK = os.sysconf("SC_CLK_TCK")

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class BenchError(Exception):
    """A server failed to start or died, or wrk failed: exit non-zero."""


def log(msg):
    print("[bench] " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- tools

def which(name, extra_dirs=("/usr/sbin", "/sbin", "/usr/local/sbin")):
    path = shutil.which(name)
    if path:
        return path
    for d in extra_dirs:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def find_tools():
    """Locate wrk, nginx and taskset; apt-get install wrk/nginx-light if missing and root."""
    wrk, nginx = which("wrk"), which("nginx")
    if (wrk is None or nginx is None) and os.geteuid() == 0 and which("apt-get"):
        pkgs = [p for p, have in (("wrk", wrk), ("nginx-light", nginx)) if have is None]
        log("installing " + " ".join(pkgs) + " with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        rc = subprocess.call(["apt-get", "install", "-y"] + pkgs, env=env,
                             stdout=sys.stderr)
        if rc != 0:
            subprocess.call(["apt-get", "update"], env=env, stdout=sys.stderr)
            subprocess.call(["apt-get", "install", "-y"] + pkgs, env=env,
                            stdout=sys.stderr)
        wrk, nginx = which("wrk"), which("nginx")
    taskset = which("taskset")
    missing = [n for n, p in (("wrk", wrk), ("nginx", nginx), ("taskset", taskset)) if p is None]
    if missing:
        raise BenchError("missing tools: %s (apt-get install -y wrk nginx-light util-linux)"
                         % ", ".join(missing))
    return {"wrk": wrk, "nginx": nginx, "taskset": taskset}


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


# ---------------------------------------------------------------- /proc

def _read_stat(pid):
    """(ppid, utime+stime ticks, starttime) of one process, or None if gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'
    fields = data[data.rfind(")") + 2:].split()
    # fields[0] is field 3 (state); ppid=4, utime=14, stime=15, starttime=22
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19])


def proc_table():
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _read_stat(int(name))
            if st is not None:
                table[int(name)] = st
    return table


def tree(root):
    """{pid: (ppid, ticks, starttime)} of root and all its descendants."""
    table = proc_table()
    if root not in table:
        return {}
    children = collections.defaultdict(list)
    for pid, (ppid, _, _) in table.items():
        children[ppid].append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in table and pid not in out:
            out[pid] = table[pid]
            todo.extend(children.get(pid, ()))
    return out


def tree_cpu_seconds(root):
    # /proc/PID/stat of a process already includes all of its threads.
    return sum(t for _, t, _ in tree(root).values()) / CLK_TCK


def tree_rss_kib(root):
    total = 0
    for pid in tree(root):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def tree_ctx_switches(root):
    """Voluntary + involuntary context switches of every thread of the tree."""
    total = 0
    for pid in tree(root):
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches:",
                                            "nonvoluntary_ctxt_switches:")):
                            total += int(line.split()[1])
            except OSError:
                pass
    return total


def tree_threads(root):
    n = 0
    for pid in tree(root):
        try:
            n += len(os.listdir("/proc/%d/task" % pid))
        except OSError:
            pass
    return n


def tree_pss_kib(root):
    """Proportional set size of the tree: shared pages are split between the
    processes sharing them, so nginx's master+workers are not counted 3 times."""
    total = 0
    for pid in tree(root):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


# ---------------------------------------------------------------- HTTP probe

def http_get(port, path="/", timeout=2.0, tls=None):
    """Minimal GET over a fresh connection: (status, headers, body).
    tls: an ssl.SSLContext for HTTPS, or None."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if tls is not None:
            s = tls.wrap_socket(s, server_hostname="127.0.0.1")
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
                   % (path, port)).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    break
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


# ---------------------------------------------------------------- servers

class Server:
    """A server process started under `taskset -c CPU` in its own session.

    port: a fixed port, or None to parse it from the log line
    "... listening on [HOST:PORT]" (grace with --port 0).
    kind: "grace" or "nginx" (how it restarts); scheme "http" or "https";
    body: what GET / must answer; tls: the ssl.SSLContext probes use.
    """

    LISTEN_RE = re.compile(r"listening on \[([^\]]*)\]")

    def __init__(self, name, cmd, port, tmpdir, cpu, taskset, label=None, kind="grace",
                 scheme="http", body=BODY, tls=None):
        self.name, self.cmd, self.port = name, cmd, port
        self.label = label or name
        self.kind, self.scheme, self.body, self.tls = kind, scheme, body, tls
        self.tmpdir, self.cpu, self.taskset = tmpdir, cpu, taskset
        self.proc = None
        self.lines = collections.deque(maxlen=200)
        self.line_hooks = []        # f(line, wall time, monotonic time) per output line
        self.current_pid = None     # grace after graceful restarts: the serving process
        self.known_pids = set()     # every grace process seen (restarts), to reap
        self.binary = None          # binary_info() of cmd[0] when started
        self._stopped = False
        self._port_found = threading.Event()
        self._drain = None
        self.logpath = os.path.join(tmpdir, name + ".log")

    @property
    def pid(self):
        return self.proc.pid

    @property
    def main_pid(self):
        """The PID to signal: the serving process (grace, after restarts) or the
        one started (nginx's master)."""
        return self.current_pid or self.proc.pid

    def _drain_output(self):
        with open(self.logpath, "a", errors="replace") as logf:
            for raw in self.proc.stdout:
                wall, mono = time.time(), time.monotonic()
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.lines.append(line)
                logf.write(line + "\n")
                for hook in list(self.line_hooks):
                    try:
                        hook(line, wall, mono)
                    except Exception as e:  # a hook must not stop the draining
                        log("log hook failed: %s" % e)
                if self.port is None:
                    m = self.LISTEN_RE.search(line)
                    if m:
                        host, _, port = m.group(1).rpartition(":")
                        if port.isdigit() and int(port) > 0:
                            self.port = int(port)
                            self._port_found.set()
        self._port_found.set()  # EOF: wake the waiter

    def get(self, path="/", timeout=2.0):
        return http_get(self.port, path, timeout, self.tls)

    def start(self, timeout=15.0):
        full = [self.taskset, "-c", str(self.cpu)] + self.cmd
        log("starting %s: %s" % (self.name, " ".join(shlex.quote(c) for c in full)))
        try:
            self.proc = subprocess.Popen(full, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=self.tmpdir)
        except OSError as e:
            raise BenchError("%s failed to start: %s" % (self.name, e))
        self.known_pids.add(self.proc.pid)
        self.binary = binary_info(self.cmd[0])  # the file as started (it may be rebuilt later)
        self._drain = threading.Thread(target=self._drain_output, daemon=True)
        self._drain.start()
        deadline = time.monotonic() + timeout
        if self.port is None:
            self._port_found.wait(timeout)
            if self.port is None and self.proc.poll() is not None:
                raise BenchError("%s exited with status %s before reporting its port%s"
                                 % (self.name, self.proc.returncode, self._tail()))
            if self.port is None:
                raise BenchError("%s did not report its port within %.0f s%s"
                                 % (self.name, timeout, self._tail()))
        last_err = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("%s exited with status %s%s"
                                 % (self.name, self.proc.returncode, self._tail()))
            try:
                status, headers, body = self.get()
                if status == 200 and body == self.body:
                    # nginx: wait until the workers exist too
                    time.sleep(0.2)
                    log("%s ready on %s://127.0.0.1:%d (pid %d, %d processes)"
                        % (self.name, self.scheme, self.port, self.pid, len(tree(self.pid))))
                    return
                last_err = "GET / answered %d %r" % (status, body[:60])
            except (OSError, ValueError, IndexError) as e:  # ssl.SSLError is an OSError
                last_err = str(e)
            time.sleep(0.05)
        raise BenchError("%s not answering GET / correctly on port %s: %s%s"
                         % (self.name, self.port, last_err, self._tail()))

    def alive(self):
        if self.current_pid is not None:
            return pid_alive(self.current_pid)
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            raise BenchError("%s died (status %s)%s"
                             % (self.name, self.proc.returncode, self._tail()))

    def _tail(self):
        if not self.lines:
            return ""
        return "\n  last output:\n    " + "\n    ".join(list(self.lines)[-10:])

    def reap(self):
        """Collect the exit status of grace processes this script inherited as
        the child subreaper (old processes of graceful restarts)."""
        for pid in list(self.known_pids):
            if self.proc is not None and pid == self.proc.pid:
                self.proc.poll()  # subprocess reaps its own child
                continue
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    self.known_pids.discard(pid)
            except ChildProcessError:  # not ours (yet), or already reaped
                if not pid_alive(pid):
                    self.known_pids.discard(pid)

    def stop(self, timeout=5.0):
        """SIGTERM the main PID, SIGKILL the process group and leftovers after timeout."""
        if self.proc is None or self._stopped:
            return
        self._stopped = True
        self.reap()
        main = self.main_pid
        if main != self.proc.pid and main not in self.known_pids:
            main = self.proc.pid  # already reaped: its PID may belong to another process now
        members = dict(tree(self.proc.pid)) if self.proc.poll() is None else {}
        for pid in self.known_pids:  # not reaped yet: still ours
            if pid != self.proc.pid and pid_alive(pid):
                members.update(tree(pid))
        if (main == self.proc.pid and self.proc.poll() is None) or \
                (main != self.proc.pid and pid_alive(main)):
            try:
                os.kill(main, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while pid_alive(main) and time.monotonic() < deadline:
                if main == self.proc.pid:
                    try:
                        self.proc.wait(0.05)
                    except subprocess.TimeoutExpired:
                        pass
                else:
                    self.reap()
                    time.sleep(0.05)
            if pid_alive(main):
                log("%s did not exit on SIGTERM within %.0f s; SIGKILL" % (self.name, timeout))
        # the server and its children run in their own session/process group
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid, (_, _, start) in members.items():
            st = _read_stat(pid)
            if st is not None and st[2] == start:  # same process, not a reused PID
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 2.0
        while True:
            self.reap()
            if not any(p != self.proc.pid for p in self.known_pids) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if self._drain is not None:
            self._drain.join(2.0)
        if self.proc.stdout:
            self.proc.stdout.close()


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return False
    state = data[data.rfind(b")") + 2:data.rfind(b")") + 3]
    return state not in (b"Z", b"X", b"")


def become_subreaper():
    """prctl(PR_SET_CHILD_SUBREAPER): the old processes of grace's graceful
    restarts (whose parents exit) become this script's children, so it can
    reap them instead of leaving zombies to an init that may not."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def nginx_without_modules(nginx):
    try:
        out = subprocess.run([nginx, "-V"], capture_output=True, text=True).stderr
    except OSError:
        return set()
    return set(re.findall(r"--without-http_(\w+)_module", out))


def nginx_tls_block(cert, key):
    """nginx's TLS settings, matched to grace's (src/tls.c): TLS 1.2 and 1.3,
    the same TLS 1.2 cipher list with server preference, TLS 1.3 pinned to
    TLS13_SUITE (wrk offers only that one anyway), no session tickets and a
    server-side session cache."""
    return "\n".join("        " + l for l in (
        "ssl_certificate %s;" % cert,
        "ssl_certificate_key %s;" % key,
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20;",
        "ssl_prefer_server_ciphers on;",
        "ssl_conf_command Ciphersuites %s;" % TLS13_SUITE,
        "ssl_session_tickets off;",
        "ssl_session_cache shared:SSL:1m;",
    )) + "\n"


def make_nginx(name, ctx, https=False, pid_location=False):
    """nginx from bench/nginx.conf.in: plain HTTP answering BODY, or (https)
    HTTPS with ctx.cert/ctx.key answering HTTPS_BODY; pid_location adds
    `location = /pid { return 200 "$pid"; }`."""
    d = os.path.join(ctx.tmpdir, name)
    os.makedirs(d)
    os.chmod(ctx.tmpdir, 0o755)  # workers may run as an unprivileged user
    os.chmod(d, 0o755)
    port = free_port()
    without = nginx_without_modules(ctx.tools["nginx"])
    temp = ["    client_body_temp_path @DIR@/body;"]
    for mod in ("proxy", "fastcgi", "uwsgi", "scgi"):
        if mod not in without:
            temp.append("    %s_temp_path @DIR@/%s;" % (mod, mod))
    body = HTTPS_BODY if https else BODY
    escaped = body.decode("utf-8").replace("\\", "\\\\").replace('"', '\\"') \
                                  .replace("\n", "\\n")
    locations = ('        location = /pid {\n            return 200 "$pid";\n        }\n'
                 if pid_location else "")
    with open(NGINX_TEMPLATE) as f:
        conf = f.read()
    conf = (conf.replace("@TEMP_PATHS@", "\n".join(temp))
                .replace("@LISTEN_OPTS@", " ssl" if https else "")
                .replace("@TLS@", nginx_tls_block(ctx.cert, ctx.key) if https else "")
                .replace("@BODY@", escaped)
                .replace("@LOCATIONS@", locations)
                .replace("@PORT@", str(port)).replace("@DIR@", d))
    confpath = os.path.join(d, "nginx.conf")
    with open(confpath, "w") as f:
        f.write(conf)
    cmd = [ctx.tools["nginx"], "-p", d + "/", "-e", os.path.join(d, "error.log"),
           "-c", confpath]
    return Server(name, cmd, port, ctx.tmpdir, ctx.args.server_cpu, ctx.tools["taskset"],
                  label="nginx", kind="nginx", scheme="https" if https else "http",
                  body=body, tls=ctx.probe_tls if https else None)


def make_grace(ctx, name="grace", https=False):
    """examples/hello (or, https, examples/https with ctx.cert/ctx.key) on
    127.0.0.1, port 0."""
    spec = ctx.args.grace_cmd
    if spec == "nginx":  # testing the harness: a second nginx stands in for grace
        srv = make_nginx(name, ctx, https=https, pid_location=True)
        srv.label = "nginx (standing in for grace)"
        return srv
    if spec and not https:
        port = None
        if "{port}" in spec:
            port = free_port()
            spec = spec.replace("{port}", str(port))
        return Server(name, shlex.split(spec), port, ctx.tmpdir, ctx.args.server_cpu,
                      ctx.tools["taskset"], label=spec)
    exe = os.path.abspath(ctx.args.https_exe if https else ctx.args.hello)
    if not os.access(exe, os.X_OK):
        raise BenchError("grace example not found: %s (build it first: make)" % exe)
    cmd = [exe, "--host", "127.0.0.1", "--port", "0"]
    if https:
        cmd += ["--cert", ctx.cert, "--key", ctx.key]
    return Server(name, cmd, None, ctx.tmpdir, ctx.args.server_cpu, ctx.tools["taskset"],
                  label=exe, scheme="https" if https else "http",
                  body=HTTPS_BODY if https else BODY, tls=ctx.probe_tls if https else None)


# ---------------------------------------------------------------- wrk

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_COUNT_SUFFIX = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError("bad duration %r" % text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out):
    """Parse `wrk --latency` output into a dict; raises ValueError if incomplete."""
    r = {}
    m = re.search(r"^\s*Requests/sec:\s*([\d.]+)", out, re.M)
    if not m:
        raise ValueError("no Requests/sec line")
    r["rps"] = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", out, re.M)
    if not m:
        raise ValueError("no 'N requests in' line")
    r["requests"] = int(m.group(1))
    r["elapsed_s"] = to_ms(m.group(2)) / 1e3
    lat = dict(re.findall(r"^\s*(50|75|90|99)%\s+([\d.]+\w+)\s*$", out, re.M))
    if "99" not in lat:
        raise ValueError("no 99% latency line (was --latency given?)")
    r["p50_ms"] = to_ms(lat["50"]) if "50" in lat else None
    r["p99_ms"] = to_ms(lat["99"])
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    se = [int(x) for x in m.groups()] if m else [0, 0, 0, 0]
    r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), se))
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    r["non_2xx"] = int(m.group(1)) if m else 0
    r["errors"] = sum(se) + r["non_2xx"]
    return r


def wrk_cmd(ctx, port, duration, extra=(), scheme="http"):
    a = ctx.args
    return ([ctx.tools["taskset"], "-c", str(a.client_cpu), ctx.tools["wrk"],
             "-t%d" % a.threads, "-c%d" % a.connections, "-d%gs" % duration,
             "--timeout", "%gs" % a.wrk_timeout, "--latency"] + list(extra)
            + ["%s://127.0.0.1:%d/" % (scheme, port)])


def wrk_env(ctx, scheme):
    """wrk's environment: for HTTPS, an OpenSSL configuration that makes it
    offer TLS 1.3 with TLS13_SUITE only, so both servers use that suite."""
    if scheme != "https":
        return None
    return dict(os.environ, OPENSSL_CONF=ctx.client_openssl_conf)


def run_wrk(ctx, cmd, duration, env=None):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60,
                           env=env)
    except subprocess.TimeoutExpired:
        raise BenchError("wrk did not finish: " + " ".join(cmd))
    except OSError as e:
        raise BenchError("wrk failed to start: %s" % e)
    if p.returncode != 0:
        raise BenchError("wrk exited %d: %s\n%s%s" % (p.returncode, " ".join(cmd),
                                                      p.stdout, p.stderr))
    try:
        return parse_wrk(p.stdout), p.stdout
    except ValueError as e:
        raise BenchError("cannot parse wrk output (%s):\n%s%s" % (e, p.stdout, p.stderr))


def system_ticks():
    """(busy, steal) clock ticks of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return v[0] + v[1] + v[2] + v[5] + v[6], (v[7] if len(v) > 7 else 0)


def _self_cpu():
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


def wait_quiet(ctx, window=0.5):
    """Wait until nothing else uses the CPUs (other CPU < --quiet-threshold of one
    CPU over `window` s), at most --quiet-timeout s.  Other programs on the machine
    (builds, test suites) would otherwise distort the comparison."""
    a = ctx.args
    if a.quiet_timeout <= 0:
        return True
    deadline = time.monotonic() + a.quiet_timeout
    waited = False
    while True:
        b0, _ = system_ticks()
        s0, _ = _self_cpu()
        time.sleep(window)
        b1, _ = system_ticks()
        s1, _ = _self_cpu()
        other = (b1 - b0) / CLK_TCK - (s1 - s0)
        if other < a.quiet_threshold * window:
            if waited:
                log("machine quiet again")
            return True
        if time.monotonic() >= deadline:
            log("WARNING: machine still busy (%.0f%% of a CPU used by other programs); "
                "measuring anyway" % (100 * other / window))
            return False
        if not waited:
            log("other programs are using %.0f%% of a CPU; waiting up to %.0f s for quiet"
                % (100 * other / window, a.quiet_timeout))
            waited = True


def measure(ctx, server, wrk_extra=()):
    """One wrk run against `server` with CPU/RSS accounting of its process tree.

    A run during which other programs used more than 2 x --quiet-threshold of a
    CPU on average is repeated (at most --retries times; the last one is kept)."""
    a = ctx.args
    for attempt in range(a.retries + 1):
        r = _measure_once(ctx, server, wrk_extra)
        r["attempts"] = attempt + 1
        limit = 2 * a.quiet_threshold * r["elapsed_s"]
        if a.quiet_timeout <= 0 or r["other_cpu_s"] <= limit or attempt == a.retries:
            return r
        log("%s: other programs used %.2f CPU-s during the run (limit %.2f); repeating it"
            % (server.name, r["other_cpu_s"], limit))
    return r


def _measure_once(ctx, server, wrk_extra):
    server.check_alive()
    quiet = wait_quiet(ctx)
    cmd = wrk_cmd(ctx, server.port, ctx.args.duration, wrk_extra, server.scheme)
    nproc_before = len(tree(server.pid))
    cs0 = tree_ctx_switches(server.pid)
    self0, kids0 = _self_cpu()
    busy0, steal0 = system_ticks()
    cpu0 = tree_cpu_seconds(server.pid)
    r, raw = run_wrk(ctx, cmd, ctx.args.duration, wrk_env(ctx, server.scheme))
    cpu1 = tree_cpu_seconds(server.pid)
    busy1, steal1 = system_ticks()
    self1, kids1 = _self_cpu()
    cs1 = tree_ctx_switches(server.pid)
    server.check_alive()
    r["wrk_cpu_s"] = kids1 - kids0
    # CPU time used during the run by everything except the server, wrk and this script
    r["other_cpu_s"] = max(0.0, (busy1 - busy0) / CLK_TCK - (cpu1 - cpu0)
                           - (kids1 - kids0) - (self1 - self0))
    r["steal_s"] = (steal1 - steal0) / CLK_TCK
    r["quiet_before"] = quiet
    r["rss_mib"] = tree_rss_kib(server.pid) / 1024.0
    r["pss_mib"] = tree_pss_kib(server.pid) / 1024.0
    r["cpu_s"] = cpu1 - cpu0
    r["req_per_cpu_s"] = r["requests"] / r["cpu_s"] if r["cpu_s"] > 0 else None
    r["processes"] = max(nproc_before, len(tree(server.pid)))
    r["threads"] = tree_threads(server.pid)
    r["ctxsw_per_req"] = (cs1 - cs0) / r["requests"] if r["requests"] else None
    if ctx.args.verbose:
        log("wrk output:\n" + raw)
    return r


# ---------------------------------------------------------------- scenarios

class Scenario:
    """group: the servers it runs against: "http" (examples/hello and nginx),
    "https" (examples/https and nginx with TLS), or "restart" (its own)."""

    def __init__(self, name, func, description, wrk_extra=(), group="http"):
        self.name, self.func, self.description = name, func, description
        self.wrk_extra = list(wrk_extra)
        self.group = group


def scenario_keepalive(ctx, server):
    return measure(ctx, server)


def scenario_close(ctx, server):
    return measure(ctx, server, ["-H", "Connection: close"])


# kept for anything that imported the old names
scenario_http_keepalive, scenario_http_close = scenario_keepalive, scenario_close

SCENARIOS = [
    Scenario("http-keepalive", scenario_keepalive,
             "HTTP/1.1 keep-alive, GET / -> 13-byte body"),
    Scenario("http-close", scenario_close,
             "new TCP connection per request (Connection: close)",
             ["-H", "Connection: close"]),
    Scenario("https-keepalive", scenario_keepalive,
             "HTTPS keep-alive (TLS 1.3, %s), GET / -> 10-byte body" % TLS13_SUITE,
             group="https"),
    Scenario("https-close", scenario_close,
             "new TCP connection and TLS handshake per request (Connection: close)",
             ["-H", "Connection: close"], group="https"),
    Scenario("restart-under-load", None,
             "graceful restart every second under load (grace: SIGUSR1 to the serving "
             "process; nginx: SIGHUP to the master, i.e. nginx -s reload)",
             group="restart"),
]
GROUPS = ("http", "https", "restart")


# ---------------------------------------------------------------- TLS

CLIENT_OPENSSL_CONF = """\
# wrk's OpenSSL configuration (bench/run.py): offer TLS 1.3 with one suite.
openssl_conf = bench_conf
[bench_conf]
ssl_conf = bench_ssl
[bench_ssl]
system_default = bench_client
[bench_client]
MinProtocol = TLSv1.3
Ciphersuites = %s
""" % TLS13_SUITE


def setup_tls(ctx):
    """A certificate for 127.0.0.1 from scripts/selfsigned.sh, the probes'
    SSLContext trusting its CA, and wrk's OpenSSL configuration."""
    if ctx.cert:
        return
    d = os.path.join(ctx.tmpdir, "certs")
    p = subprocess.run(["bash", SELFSIGNED, d], capture_output=True, text=True)
    if p.returncode != 0:
        raise BenchError("scripts/selfsigned.sh failed: %s%s" % (p.stdout, p.stderr))
    ctx.cert, ctx.key, ctx.ca = (os.path.join(d, f) for f in ("cert.pem", "key.pem", "ca.pem"))
    os.chmod(d, 0o755)  # nginx reads the key as root before dropping privileges
    ctx.probe_tls = ssl.create_default_context(cafile=ctx.ca)
    ctx.client_openssl_conf = os.path.join(ctx.tmpdir, "wrk-openssl.cnf")
    with open(ctx.client_openssl_conf, "w") as f:
        f.write(CLIENT_OPENSSL_CONF)


def s_client(ctx, port, env=None, extra=(), send=b""):
    """`openssl s_client` against 127.0.0.1:port, sending `send`:
    {protocol, suite, group, handshakes: ["New"|"Reused"]}."""
    openssl = which("openssl")
    if openssl is None:
        return {"error": "openssl command not found"}
    cmd = [openssl, "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "localhost",
           "-CAfile", ctx.ca] + list(extra)
    try:
        p = subprocess.run(cmd, input=send, capture_output=True, timeout=15, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": str(e)}
    out = p.stdout.decode("utf-8", "replace")
    r = {}
    m = re.findall(r"^(New|Reused), (TLSv[\d.]+), Cipher is (\S+)", out, re.M)
    if m:
        r["protocol"], r["suite"] = m[0][1], m[0][2]
        r["handshakes"] = [x[0] for x in m]
    m = re.search(r"^(?:Server|Peer) Temp Key: ([^,\n]+)", out, re.M)
    if m:
        r["group"] = m.group(1)
    m = re.search(r"^\s*Verify return code: (\d+)", out, re.M)
    if m:
        r["verify"] = int(m.group(1))
    if "suite" not in r:
        r["error"] = (out + p.stderr.decode("utf-8", "replace")).strip()[-300:]
    return r


def tls_resumption(ctx, port):
    """Does the server resume a TLS 1.3 session (wrk's offer) on a new
    connection?  One GET with -sess_out (reading the answer, so the session
    ticket arrives), then one with -sess_in: "Reused" or "New"."""
    sess = os.path.join(ctx.tmpdir, "tls-session-%d.pem" % port)
    req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    env = wrk_env(ctx, "https")
    first = s_client(ctx, port, env, ["-ign_eof", "-sess_out", sess], req)
    if "error" in first or not os.path.exists(sess):
        return {"error": first.get("error", "no session saved")}
    return s_client(ctx, port, env, ["-ign_eof", "-sess_in", sess], req)


def tls_check(ctx, pair):
    """Which TLS version and suite each server negotiates, with a default
    OpenSSL client and with wrk's configuration; whether sessions resume."""
    out = {"wrk_offer": "TLS 1.3 only, %s only (OPENSSL_CONF)" % TLS13_SUITE,
           "servers": {}}
    for srv in pair:
        out["servers"][srv.name] = {
            "default_client": s_client(ctx, srv.port),
            "wrk_config": s_client(ctx, srv.port, wrk_env(ctx, "https")),
            "resumption": tls_resumption(ctx, srv.port),
        }
    for name, r in out["servers"].items():
        d, w, rs = r["default_client"], r["wrk_config"], r["resumption"]
        log("TLS %s: default client -> %s %s %s; wrk's offer -> %s %s %s; session resumed "
            "on a new connection: %s"
            % (name, d.get("protocol"), d.get("suite"), d.get("group"), w.get("protocol"),
               w.get("suite"), w.get("group"),
               ",".join(rs.get("handshakes", [])) or rs.get("error", "?")))
        if w.get("suite") != TLS13_SUITE:
            log("WARNING: %s did not negotiate %s with wrk's configuration" % (name, TLS13_SUITE))
    return out


# ---------------------------------------------------------------- restart under load

LOG_LINE_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3}) (\d+): (.*)$")


def log_time(date, ms):
    """grace's log timestamp (local time, ms) as a time.time() value."""
    return time.mktime(time.strptime(date, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000.0


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    v = sorted(values)
    return v[max(0, min(len(v) - 1, int(math.ceil(p / 100.0 * len(v))) - 1))]


def lat_stats(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return {"n": 0, "median": None, "p95": None, "max": None, "min": None}
    return {"n": len(vals), "median": statistics.median(vals), "p95": percentile(vals, 95),
            "max": max(vals), "min": min(vals)}


class GraceLog:
    """Restart events from grace's log: "new process N is serving" (with the
    log's own timestamp) and "restart failed/refused"."""

    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def hook(self, line, wall, mono):
        m = LOG_LINE_RE.match(line)
        if not m:
            return
        text, pid = m.group(4), int(m.group(3))
        mm = re.match(r"new process (\d+) is serving", text)
        if mm:
            ev = {"what": "serving", "log_time": log_time(m.group(1), m.group(2)),
                  "old": pid, "new": int(mm.group(1)), "received": mono}
        elif text.startswith(("restart failed", "restart refused")):
            ev = {"what": "failed", "log_time": log_time(m.group(1), m.group(2)),
                  "old": pid, "text": text, "received": mono}
        else:
            return
        with self.cond:
            self.events.append(ev)
            self.cond.notify_all()

    def wait_for(self, old_pid, since, timeout):
        """The first event of process old_pid at or after index since."""
        def find():
            for ev in self.events[since:]:
                if ev["old"] == old_pid:
                    return ev
            return None
        with self.cond:
            return self.cond.wait_for(find, timeout)


def probe_pid(srv):
    """The PID of the process answering a new connection: grace's admin status
    page, nginx's `location = /pid` (the worker's PID)."""
    if srv.kind == "grace":
        status, _, body = srv.get("/debug/admin/status", timeout=1.0)
        if status != 200:
            raise ValueError("status %d" % status)
        return int(json.loads(body)["pid"])
    status, _, body = srv.get("/pid", timeout=1.0)
    if status != 200:
        raise ValueError("status %d" % status)
    return int(body.strip())


def tree_total_ticks(roots):
    """{pid: utime+stime+cutime+cstime} of the processes of the trees under roots
    (cutime/cstime: children that exited and were reaped, e.g. old nginx workers)."""
    out = {}
    for root in roots:
        for pid in tree(root):
            try:
                with open("/proc/%d/stat" % pid, "rb") as f:
                    data = f.read().decode("ascii", "replace")
            except OSError:
                continue
            fields = data[data.rfind(")") + 2:].split()
            out[pid] = sum(int(x) for x in fields[11:15])
    return out


def server_roots(srv):
    if srv.kind == "grace":
        return [p for p in srv.known_pids | {srv.main_pid} if pid_alive(p)]
    return [srv.pid]


def nginx_workers(master):
    return set(tree(master)) - {master}


def trigger_restart(ctx, srv, glog, t0):
    """Restart srv once; wait until a new process answers a new connection.
    Returns this restart's record."""
    a = ctx.args
    rec = {"old_pid": srv.main_pid, "new_pid": None, "served_ms": None, "log_ms": None,
           "admin_ms": None, "probes": 0, "probe_errors": 0, "error": None}
    if srv.kind == "grace":
        old = srv.main_pid
        since = len(glog.events)
        is_new = lambda pid: pid != old
    else:
        old_workers = nginx_workers(srv.pid)
        is_new = lambda pid: pid not in old_workers
    trig_wall, trig = time.time(), time.monotonic()
    rec["t"] = trig - t0
    try:
        if srv.kind == "nginx":
            os.kill(srv.pid, signal.SIGHUP)            # nginx -s reload
        elif a.restart_trigger == "admin":
            status, _, body = srv.get("/debug/admin/restart", timeout=30.0)
            rec["admin_ms"] = (time.monotonic() - trig) * 1e3
            if status != 200:
                rec["error"] = "admin restart answered %d %r" % (status, body[:80])
        else:
            os.kill(old, signal.SIGUSR1)
    except (OSError, ValueError, IndexError) as e:
        rec["error"] = "trigger failed: %s" % e
        return rec
    deadline = trig + max(5.0, a.restart_interval)
    last_err = None
    while True:
        try:
            pid = probe_pid(srv)
            rec["probes"] += 1
            if is_new(pid):
                rec["served_ms"] = (time.monotonic() - trig) * 1e3
                rec["new_pid"] = pid
                break
        except (OSError, ValueError, IndexError, KeyError) as e:
            rec["probe_errors"] += 1
            last_err = str(e)
        if time.monotonic() > deadline:
            rec["error"] = "no new process answered within %.0f s%s" % (
                deadline - trig, (" (last probe error: %s)" % last_err) if last_err else "")
            break
        time.sleep(0.001)
    if srv.kind == "grace":
        ev = glog.wait_for(old, since, 2.0)
        if ev is not None and ev["what"] == "serving":
            rec["log_ms"] = (ev["log_time"] - trig_wall) * 1e3
            rec["new_pid"] = ev["new"]
        elif ev is not None:
            rec["error"] = ev["text"]
        if rec["new_pid"] is not None:
            srv.current_pid = rec["new_pid"]
            srv.known_pids.add(rec["new_pid"])
        srv.reap()
    return rec


def restart_run(ctx, srv):
    """Load srv with bench/loadgen.py for --restart-duration s and restart it
    every --restart-interval s.  srv must not be started yet."""
    a = ctx.args
    glog = GraceLog()
    srv.line_hooks.append(glog.hook)
    srv.start()
    try:
        pid0 = probe_pid(srv)
    except (OSError, ValueError, IndexError, KeyError) as e:
        raise BenchError("%s: cannot probe the serving PID: %s" % (srv.name, e))
    if srv.kind == "grace" and pid0 != srv.pid:
        log("%s: /debug/admin/status says pid %d, started %d" % (srv.name, pid0, srv.pid))
    wait_quiet(ctx)
    dur, interval = a.restart_duration, a.restart_interval
    t0 = time.monotonic() + 1.0  # time for the load generator to start
    cmd = [ctx.tools["taskset"], "-c", str(a.client_cpu), sys.executable, LOADGEN,
           "--port", str(srv.port), "--keepalive", str(a.restart_keepalive),
           "--close", str(a.restart_close), "--duration", "%g" % dur,
           "--start-at", "%.6f" % t0, "--timeout", "%g" % a.wrk_timeout,
           "--expect-body", srv.body.decode("utf-8")]
    log("%s: restart under load for %g s, %s every %g s; %s"
        % (srv.name, dur, trigger_name(ctx, srv), interval,
           " ".join(shlex.quote(c) for c in cmd)))
    busy0, _ = system_ticks()
    self0, kids0 = _self_cpu()
    srv0 = tree_total_ticks(server_roots(srv))
    gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    restarts = []
    try:
        k = 1
        while t0 + k * interval <= t0 + dur - interval / 2 + 1e-9:
            at = t0 + k * interval
            k += 1
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if gen.poll() is not None:
                break
            srv.check_alive()
            rec = trigger_restart(ctx, srv, glog, t0)
            restarts.append(rec)
            log("%s restart %d at %5.2f s: pid %s -> %s, new process answering after %s ms%s%s"
                % (srv.name, len(restarts), rec["t"], rec["old_pid"], rec["new_pid"],
                   fmt("%.1f", rec["served_ms"]),
                   (", 'is serving' logged after %.0f ms" % rec["log_ms"])
                   if rec["log_ms"] is not None else "",
                   (" ERROR: " + rec["error"]) if rec["error"] else ""))
        out, err = gen.communicate(timeout=dur + a.wrk_timeout + 60)
    except BaseException:
        if gen.poll() is None:
            gen.kill()
            gen.wait()
        raise
    srv.reap()
    srv1 = tree_total_ticks(server_roots(srv))
    busy1, _ = system_ticks()
    self1, kids1 = _self_cpu()
    # CPU time of the server, the load generator (and the old grace processes
    # this script reaped: both in kids), this script, and everything else
    server_cpu = sum(t - srv0.get(pid, 0) for pid, t in srv1.items()) / CLK_TCK
    other_cpu = max(0.0, (busy1 - busy0) / CLK_TCK - server_cpu - (kids1 - kids0)
                    - (self1 - self0))
    if gen.returncode != 0:
        raise BenchError("load generator exited %d: %s" % (gen.returncode, err.strip()[-2000:]))
    try:
        lg = json.loads(out)
    except ValueError as e:
        raise BenchError("cannot parse the load generator's output (%s): %r" % (e, out[:300]))
    srv.check_alive()
    # old processes / workers still draining a little after the run
    time.sleep(0.5)
    if srv.kind == "grace":
        srv.reap()
        leftover = len([p for p in srv.known_pids if p != srv.main_pid and pid_alive(p)])
        processes = len(tree(srv.main_pid)) + leftover
    else:  # the master, NGINX_WORKERS current workers, and old ones shutting down
        processes = len(tree(srv.pid))
        leftover = max(0, processes - 1 - NGINX_WORKERS)
    r = summarize_restart(srv, lg, restarts, leftover, processes,
                          (busy1 - busy0) / CLK_TCK, trigger_name(ctx, srv))
    r["other_cpu_s"] = other_cpu
    return r


def trigger_name(ctx, srv):
    if srv.kind == "nginx":
        return "SIGHUP to the master (nginx -s reload)"
    if ctx.args.restart_trigger == "admin":
        return "GET /debug/admin/restart"
    return "SIGUSR1 to the serving process"


def summarize_restart(srv, lg, restarts, leftover, processes, machine_cpu_s, trigger):
    b = lg["bucket_s"]
    n_full = int(round(lg["duration_s"] / b))
    buckets = lg["buckets"]
    rates = [(ka + cl) / b for ka, cl, _, _ in buckets[:n_full]]
    t = lg["totals"]
    ok = t["ok_keepalive"] + t["ok_close"]
    served = [r["served_ms"] for r in restarts]
    return {
        "server": srv.label, "kind": srv.kind,
        "trigger": trigger,
        "duration_s": lg["duration_s"], "bucket_s": b,
        "keepalive_connections": lg["keepalive"], "close_clients": lg["close"],
        "restarts": len(restarts),
        "restarts_served": sum(1 for r in restarts if r["served_ms"] is not None),
        "restart_errors": [r["error"] for r in restarts if r["error"]],
        "requests": ok + t["failed"], "completed": ok, "failed": t["failed"],
        "failed_keepalive": t["failed_keepalive"], "failed_close": t["failed_close"],
        "retried": t["retried"], "connections": t["connections"],
        "ok_keepalive": t["ok_keepalive"], "ok_close": t["ok_close"],
        "rps_mean": ok / lg["duration_s"],
        "rps_median": statistics.median(rates) if rates else None,
        "rps_min": min(rates) if rates else None,
        "served_ms": lat_stats(served),
        "log_ms": lat_stats([r["log_ms"] for r in restarts]),
        "admin_ms": lat_stats([r["admin_ms"] for r in restarts]),
        "probe_errors": sum(r["probe_errors"] for r in restarts),
        "probes": sum(r["probes"] for r in restarts),
        "old_processes_after": leftover, "processes_after": processes,
        "machine_cpu_s": machine_cpu_s,
        "restart_log": restarts, "buckets": buckets, "failures": lg["failures"],
    }


def run_restart(ctx, started):
    """restart-under-load against a fresh grace (hello) and a fresh nginx."""
    results = {}
    for name in ("grace", "nginx"):
        if name == "grace":
            srv = make_grace(ctx, "grace-restart")
            ctx.grace_servers.setdefault(os.path.basename(srv.cmd[0]), srv)
        else:
            srv = make_nginx("nginx-restart", ctx, pid_location=True)
        started.append(srv)
        try:
            results[name] = restart_run(ctx, srv)
        finally:
            srv.stop()
        r = results[name]
        log("restart-under-load %-5s %d requests, %d failed, %d retried; median %.0f req/s; "
            "new process answering after median %s / p95 %s / max %s ms; other programs "
            "used %.2f CPU-s"
            % (name, r["requests"], r["failed"], r["retried"], r["rps_median"] or 0,
               fmt("%.1f", r["served_ms"]["median"]), fmt("%.1f", r["served_ms"]["p95"]),
               fmt("%.1f", r["served_ms"]["max"]), r["other_cpu_s"]))
    return results


def plot_restart(rr, path):
    """Both runs in one PNG, one panel each: completed requests/s per bucket,
    failures (red) and retries (orange) per bucket, restart triggers (dashed)
    and the moment a new process first answered (green)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not found (apt-get install python3-matplotlib); no plot")
        return False
    names = [n for n in ("grace", "nginx") if n in rr["results"]]
    fig, axes = plt.subplots(len(names), 1, figsize=(11, 3.9 * len(names)), sharex=True,
                             squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        r = rr["results"][name]
        b = r["bucket_s"]
        n_full = int(round(r["duration_s"] / b))
        bk = r["buckets"][:n_full]
        x = [(i + 0.5) * b for i in range(len(bk))]
        y = [(ka + cl) / b for ka, cl, _, _ in bk]
        fails = [f for _, _, f, _ in bk]
        retries = [rt for _, _, _, rt in bk]
        ax.plot(x, y, color="tab:blue", lw=1.3, label="completed requests/s (per %g ms)"
                % (b * 1e3))
        ymax = max(y + [1]) * 1.15
        ax.set_ylim(0, ymax)
        for i, rec in enumerate(r["restart_log"]):
            ax.axvline(rec["t"], color="0.35", ls="--", lw=0.8,
                       label="restart triggered" if i == 0 else None)
        st = [rec["t"] + rec["served_ms"] / 1e3 for rec in r["restart_log"]
              if rec["served_ms"] is not None]
        ax.plot(st, [ymax * 0.97] * len(st), ls="none", marker="v", color="tab:green", ms=6,
                label="new process answers")
        ax2 = ax.twinx()
        top = max(fails + retries + [4]) * 1.6
        ax2.bar([xi - b * 0.22 for xi in x], fails, width=b * 0.44, color="red",
                label="failed requests (per bucket)")
        ax2.bar([xi + b * 0.22 for xi in x], retries, width=b * 0.44, color="orange",
                label="retried (RFC 9112 9.3.1)")
        ax2.set_ylim(0, top)
        ax2.set_ylabel("failed / retried per bucket")
        if r["failed"]:
            fx = [xi for xi, f in zip(x, fails) if f]
            ax.plot(fx, [ymax * 0.03] * len(fx), ls="none", marker="x", color="red", ms=8,
                    mew=2)
        ax.set_ylabel("completed requests/s")
        sm = r["served_ms"]
        title = ("%s: %s every %g s\n%d requests, %d failed, %d retried; median %.0f "
                 "req/s; trigger -> new process answering: median %s ms, p95 %s ms, max %s ms"
                 % ("grace (examples/%s)" % os.path.basename(r["server"])
                    if r["kind"] == "grace" else r["server"], r["trigger"], rr["interval_s"], r["requests"], r["failed"], r["retried"],
                    r["rps_median"] or 0, fmt("%.1f", sm["median"]), fmt("%.1f", sm["p95"]),
                    fmt("%.1f", sm["max"])))
        ax.set_title(title, fontsize=9.5)
        ax.grid(axis="y", alpha=0.3)
        if ax is axes[0, 0]:
            h1, l1 = ax.get_legend_handles_labels()
            h2, l2 = ax2.get_legend_handles_labels()
            fig.legend(h1 + h2, l1 + l2, loc="upper center", ncol=5, fontsize=8,
                       bbox_to_anchor=(0.5, 0.995), frameon=False)
    axes[-1, 0].set_xlabel("seconds since the load started (%d keep-alive connections + %d "
                           "clients with a new connection per request; bench/loadgen.py)"
                           % (rr["keepalive"], rr["close"]))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    log("plot written to " + path)
    return True


# ---------------------------------------------------------------- reporting

def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    distro = ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "os": distro, "mem_mib": mem, "python": platform.python_version()}


def binary_info(path):
    """sha256 and mtime of the exact binary measured."""
    info = {"path": path}
    if os.path.isfile(path):
        with open(path, "rb") as f:
            info["sha256"] = hashlib.sha256(f.read()).hexdigest()
        info["mtime"] = time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                      time.gmtime(os.path.getmtime(path)))
    return info


def versions(tools, grace_servers):
    """Tool versions; grace_servers: {name: Server} of the grace programs used."""
    def first_line(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return ((p.stdout or "") + (p.stderr or "")).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"
    v = {"nginx": first_line([tools["nginx"], "-v"]),
         "wrk": first_line([tools["wrk"], "-v"]),
         "python": platform.python_version()}
    openssl = which("openssl")
    v["openssl"] = (first_line([openssl, "version"]).split(" (")[0] if openssl
                    else "unknown")
    v["binaries"] = {}
    for name, srv in grace_servers.items():
        b = srv.binary or binary_info(srv.cmd[0])
        now = binary_info(srv.cmd[0])
        if b.get("sha256") != now.get("sha256"):
            log("WARNING: %s changed on disk during the benchmark (rebuilt?); the sha256 "
                "reported is that of the file when the server started" % srv.cmd[0])
            b = dict(b, changed_during_run=True)
        v["binaries"][name] = dict(b, label=srv.label)
    first = next(iter(v["binaries"].values()), None)
    if first is not None:  # the fields of earlier reports
        v["grace"] = first["label"]
        if "sha256" in first:
            v["grace_sha256"], v["grace_mtime"] = first["sha256"], first["mtime"]
    else:
        v["grace"] = "-"
    m = re.search(r"(wrk \S+)", v["wrk"])
    if m:
        v["wrk"] = m.group(1)
    return v


METRICS = [  # key, label, format, note on the ratio
    ("rps", "requests/s", "%.0f", "higher is better"),
    ("p99_ms", "p99 latency (ms)", "%.3f", "lower is better"),
    ("rss_mib", "RSS (MiB)", "%.1f", "lower is better"),
    ("pss_mib", "PSS (MiB)", "%.1f", "lower is better"),
    ("cpu_s", "server CPU-seconds", "%.2f", ""),
    ("req_per_cpu_s", "requests/CPU-second", "%.0f", "higher is better"),
    ("ctxsw_per_req", "context switches/req", "%.3f", ""),
    ("other_cpu_s", "other programs CPU-s", "%.2f", ""),
]
RATIO_KEYS = ("rps", "req_per_cpu_s", "p99_ms", "rss_mib", "pss_mib")


def median(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarize(runs):
    s = {k: median([r[k] for r in runs]) for k, _, _, _ in METRICS}
    s["errors"] = sum(r["errors"] for r in runs)
    s["requests"] = sum(r["requests"] for r in runs)
    return s


def fmt(f, v):
    return "-" if v is None else f % v


RESTART_ROWS = [  # key, label, format; (key, sub) for latency stats
    ("trigger", "restart trigger", "%s"),
    ("restarts", "restarts triggered", "%d"),
    ("restarts_served", "... after which a new process answered", "%d"),
    ("requests", "requests", "%d"),
    ("failed", "**failed requests**", "%d"),
    ("retried", "retried (RFC 9112 9.3.1, not failures)", "%d"),
    ("rps_median", "requests/s, median of 100 ms buckets", "%.0f"),
    ("rps_min", "requests/s, lowest 100 ms bucket", "%.0f"),
    (("served_ms", "median"), "**restart latency** (trigger -> new process answers), median ms",
     "%.1f"),
    (("served_ms", "p95"), "restart latency, p95 ms", "%.1f"),
    (("served_ms", "max"), "restart latency, max ms", "%.1f"),
    (("log_ms", "median"), "trigger -> log \"new process N is serving\", median ms", "%.1f"),
    (("log_ms", "p95"), "... p95 ms", "%.1f"),
    (("log_ms", "max"), "... max ms", "%.1f"),
    (("admin_ms", "median"), "trigger -> admin page answers \"restarted: new pid N\", "
     "median ms", "%.1f"),
    (("admin_ms", "max"), "... max ms", "%.1f"),
    ("old_processes_after", "old processes still running 0.5 s after the load", "%d"),
    ("other_cpu_s", "CPU-s used by other programs during the run", "%.2f"),
]


def restart_value(r, key):
    if isinstance(key, tuple):
        return r[key[0]][key[1]]
    return r[key]


def print_report(report, out=sys.stdout):
    m, v, c = report["machine"], report["versions"], report["config"]
    w = out.write
    w("\nmachine:  %d CPUs, %s, Linux %s%s\n" % (m["nproc"], m["cpu_model"], m["kernel"],
                                                   (", " + m["os"]) if m["os"] else ""))
    w("versions: %s; %s; %s; grace = %s\n"
      % (v["nginx"], v["wrk"], v.get("openssl", "?"),
         ", ".join(b["label"] for b in v.get("binaries", {}).values()) or v["grace"]))
    w("setup:    servers pinned to CPU %s, wrk pinned to CPU %s; wrk -t%d -c%d -d%gs; "
      "%d round(s), medians; nginx: %d workers\n"
      % (c["server_cpu"], c["client_cpu"], c["threads"], c["connections"], c["duration_s"],
         c["rounds"], NGINX_WORKERS))
    tls = report.get("tls")
    if tls:
        for name, r in tls["servers"].items():
            d, wc = r["default_client"], r["wrk_config"]
            w("TLS:      %-6s default client -> %s %s; wrk's offer -> %s %s (%s); "
              "TLS 1.3 session resumed on a new connection: %s\n"
              % (name, d.get("protocol"), d.get("suite"), wc.get("protocol"), wc.get("suite"),
                 wc.get("group"), "yes" if r["resumption"].get("handshakes") == ["Reused"]
                 else "no"))
    for sc in report["scenarios"]:
        g, n, r = sc["median"]["grace"], sc["median"]["nginx"], sc["ratio"]
        w("\n%s: %s\n" % (sc["name"], sc["description"]))
        w("  %-22s %14s %14s %14s\n" % ("", "grace", "nginx", "grace/nginx"))
        for key, label, f, note in METRICS:
            ratio = ""
            if key in RATIO_KEYS and r.get(key) is not None:
                ratio = "%.2fx" % r[key]
            w("  %-22s %14s %14s %14s  %s\n"
              % (label, fmt(f, g[key]), fmt(f, n[key]), ratio, note if ratio else ""))
        w("  %-22s %14d %14d\n" % ("errors (all rounds)", g["errors"], n["errors"]))
    rr = report.get("restart")
    if rr:
        res = rr["results"]
        w("\nrestart-under-load: %g s, a restart every %g s, %d keep-alive connections + "
          "%d new-connection clients (bench/loadgen.py)\n"
          % (rr["duration_s"], rr["interval_s"], rr["keepalive"], rr["close"]))
        w("  %-62s %14s %14s\n" % ("", "grace", "nginx"))
        for key, label, f in RESTART_ROWS:
            vals = [fmt(f, restart_value(res[n], key)) if n in res else "-"
                    for n in ("grace", "nginx")]
            if key == "trigger":
                w("  trigger: grace = %s; nginx = %s\n" % tuple(vals))
                continue
            if vals == ["-", "-"]:
                continue
            w("  %-62s %14s %14s\n" % (label.replace("**", ""), vals[0], vals[1]))
        for n in ("grace", "nginx"):
            if n in res and res[n]["failures"]:
                w("  %s: first failures: %s\n" % (n, "; ".join(
                    "%.2fs %s %s" % (f["t"], f["kind"], f["error"])
                    for f in res[n]["failures"][:5])))
            if n in res and res[n]["restart_errors"]:
                w("  %s: restart errors: %s\n" % (n, "; ".join(res[n]["restart_errors"][:5])))
        if rr.get("plot"):
            w("  plot: %s\n" % rr["plot"])
    out.flush()


def markdown_tables(report):
    """The machine, versions and one table of medians and ratios per scenario, as Markdown."""
    m, v, c = report["machine"], report["versions"], report["config"]
    out = ["| | |", "|---|---|",
           "| CPUs | %d (`nproc`) |" % m["nproc"],
           "| CPU model | %s |" % m["cpu_model"],
           "| kernel | Linux %s |" % m["kernel"],
           "| OS | %s |" % (m["os"] or "-"),
           "| memory | %s MiB |" % (m["mem_mib"] if m["mem_mib"] is not None else "-"),
           "| nginx | %s |" % v["nginx"],
           "| wrk | %s |" % v["wrk"],
           "| OpenSSL | %s |" % v.get("openssl", "-")]
    for group, b in v.get("binaries", {}).items():
        out.append("| grace (%s) | `%s`%s |" % (group, b["label"], (
            " (built %s, sha256 %s…)" % (b["mtime"], b["sha256"][:16])) if "sha256" in b else ""))
    out += ["| setup | servers on CPU %s, wrk on CPU %s; `wrk -t%d -c%d -d%gs --latency`; "
            "%d rounds, medians |" % (c["server_cpu"], c["client_cpu"], c["threads"],
                                      c["connections"], c["duration_s"], c["rounds"]),
            ""]
    tls = report.get("tls")
    if tls:
        out += ["TLS negotiated (`openssl s_client`): with a default OpenSSL client, and "
                "with wrk's configuration (%s):" % tls["wrk_offer"], "",
                "| server | default client | wrk's offer | TLS 1.3 session resumed on a new "
                "connection (`-sess_out`, `-sess_in`) |",
                "|---|---|---|---|"]
        for name, r in tls["servers"].items():
            d, wc, rs = r["default_client"], r["wrk_config"], r["resumption"]
            out.append("| %s | %s %s, %s | %s %s, %s | %s |"
                       % (name, d.get("protocol"), d.get("suite"), d.get("group"),
                          wc.get("protocol"), wc.get("suite"), wc.get("group"),
                          "yes" if rs.get("handshakes") == ["Reused"] else
                          ("no" if rs.get("handshakes") else rs.get("error", "?"))))
        out.append("")
    for sc in report["scenarios"]:
        g, n, r = sc["median"]["grace"], sc["median"]["nginx"], sc["ratio"]
        out += ["### %s" % sc["name"], "", sc["description"] + ":", "",
                "    " + sc["wrk_command"], "",
                "| median of %d rounds | grace | nginx | grace/nginx |" % c["rounds"],
                "|---|--:|--:|--:|"]
        for key, label, f, note in METRICS:
            rt = ("%.2fx (%s)" % (r[key], note)) if key in RATIO_KEYS and r.get(key) else ""
            out.append("| %s | %s | %s | %s |" % (label, fmt(f, g[key]), fmt(f, n[key]), rt))
        out.append("| errors (all rounds) | %d | %d | |" % (g["errors"], n["errors"]))
        out.append("")
    rr = report.get("restart")
    if rr:
        res = rr["results"]
        out += ["### restart-under-load", "",
                "%g s of load from `bench/loadgen.py` (%d keep-alive connections + %d clients "
                "opening a new connection per request), a restart every %g s:" % (
                    rr["duration_s"], rr["keepalive"], rr["close"], rr["interval_s"]), "",
                "    " + rr["loadgen_command"], "",
                "| | grace | nginx |", "|---|--:|--:|"]
        for key, label, f in RESTART_ROWS:
            vals = [fmt(f, restart_value(res[n], key)) if n in res else "-"
                    for n in ("grace", "nginx")]
            if key == "restarts_served":
                label = "restarts after which a new process answered"
            if key == "trigger":
                vals = [x.replace(" (nginx -s reload)", "") for x in vals]
            if vals == ["-", "-"]:
                continue
            out.append("| %s | %s | %s |" % (label, vals[0], vals[1]))
        out.append("")
        for n in ("grace", "nginx"):
            if n in res and res[n]["failures"]:
                out += ["%s, first failures: %s" % (n, "; ".join(
                    "%.2f s %s: %s" % (f["t"], f["kind"], f["error"])
                    for f in res[n]["failures"][:5])), ""]
            if n in res and res[n]["restart_errors"]:
                out += ["%s, restart errors: %s" % (n, "; ".join(res[n]["restart_errors"][:5])),
                        ""]
        if rr.get("plot"):
            out += ["![restart under load](%s)" % os.path.basename(rr["plot"]), ""]
    return "\n".join(out)


def ratio(a, b):
    return a / b if a is not None and b else None


# ---------------------------------------------------------------- perf

def _perf_lines(text, n=None, keep=lambda l: True):
    out = [re.sub(r"(\s+-)+\s*$", "", l.rstrip())
           for l in text.splitlines() if l.strip() and not l.startswith("#")]
    out = [l for l in out if keep(l)]
    return out[:n] if n else out


def perf_profile(ctx, server, outpath, scenario):
    """perf record -g on the server tree for --duration seconds under `scenario`'s load."""
    perf = which("perf")
    if not perf:
        log("perf not found (apt-get install linux-perf); skipping profile")
        return None
    if subprocess.run([perf, "stat", "-e", "instructions", "true"],
                      capture_output=True).returncode != 0:
        log("perf does not work here; skipping profile")
        return None
    data = os.path.join(ctx.tmpdir, "perf.data")
    dur = ctx.args.duration
    pids = ",".join(str(p) for p in tree(server.pid))
    rec = subprocess.Popen([perf, "record", "-g", "-o", data, "-p", pids,
                            "--", "sleep", "%g" % dur],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        cmd = wrk_cmd(ctx, server.port, dur, scenario.wrk_extra, server.scheme)
        r, _ = run_wrk(ctx, cmd, dur, wrk_env(ctx, server.scheme))
        _, err = rec.communicate(timeout=dur + 60)
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
    if rec.returncode != 0:
        log("perf record failed: " + err.strip())
        return None

    def report(*extra):
        return subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children"]
                              + list(extra), capture_output=True, text=True).stdout

    flat = report("-g", "none", "--sort", "dso,symbol")
    by_dso = report("-g", "none", "--sort", "dso")
    full = report()
    event = re.search(r"of event '([^']+)'", flat)
    top = _perf_lines(flat, 10)
    dsos = _perf_lines(by_dso, 10)
    user = _perf_lines(flat, 10, keep=lambda l: "[k]" not in l)
    wrk_shown = " ".join(shlex.quote(c) for c in cmd)
    with open(outpath, "w") as f:
        f.write("# perf record -g -p <%s process tree> during %s (%.0f req/s; event %s)\n"
                % (server.name, wrk_shown, r["rps"], event.group(1) if event else "?"))
        f.write("\n# top symbols (perf report --stdio --no-children -g none --sort dso,symbol)\n")
        f.write("\n".join(top) + "\n")
        f.write("\n# by shared object (--sort dso)\n" + "\n".join(dsos) + "\n")
        f.write("\n# top user-space symbols\n" + "\n".join(user) + "\n\n")
        f.write(full)
    log("perf profile written to " + outpath)
    return {"scenario": scenario.name, "event": event.group(1) if event else None,
            "rps": r["rps"], "top": top, "by_dso": dsos, "top_user": user,
            "command": wrk_shown}


# ---------------------------------------------------------------- main

class Ctx:
    def __init__(self, args, tools, tmpdir):
        self.args, self.tools, self.tmpdir = args, tools, tmpdir
        self.cert = self.key = self.ca = self.probe_tls = self.client_openssl_conf = None
        self.grace_servers = {}  # group -> the grace Server measured, for versions()


def parse_args(argv):
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    p = argparse.ArgumentParser(
        description="Benchmark grace (examples/hello, examples/https) against nginx, side "
                    "by side, over HTTP and HTTPS; and both under load while restarted.",
        epilog="BENCH_QUICK=1 in the environment: 1 s x 1 round smoke run and a 5 s "
               "restart-under-load run (explicit options still win).")
    p.add_argument("--connections", "-c", type=int, default=50)
    p.add_argument("--duration", "-d", type=float, default=1 if quick else 5,
                   help="seconds per wrk run (default 5; 1 with BENCH_QUICK=1)")
    p.add_argument("--rounds", "-r", type=int, default=1 if quick else 3,
                   help="rounds; medians are reported (default 3; 1 with BENCH_QUICK=1)")
    p.add_argument("--threads", "-t", type=int, default=1, help="wrk threads")
    p.add_argument("--warmup", type=float, default=0 if quick else 1,
                   help="seconds of untimed load per server and scenario before round 1")
    p.add_argument("--wrk-timeout", type=float, default=2.0,
                   help="wrk --timeout seconds (and the load generator's per-request timeout)")
    p.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS),
                   help="comma-separated subset of: " + ", ".join(s.name for s in SCENARIOS))
    p.add_argument("--only", metavar="WHAT",
                   help="run only these (comma-separated) scenarios or groups: %s; e.g. "
                        "--only restart" % ", ".join(GROUPS))
    p.add_argument("--quiet-timeout", type=float, default=10 if quick else 120,
                   help="before each run, wait up to this many seconds for other programs "
                        "to stop using the CPUs (0 = don't wait)")
    p.add_argument("--retries", type=int, default=2,
                   help="repeat a run disturbed by other programs at most this many times")
    p.add_argument("--quiet-threshold", type=float, default=0.10,
                   help="'quiet' = other programs use less than this fraction of one CPU")
    p.add_argument("--server-cpu", default="0", help="CPU list for the servers (taskset -c)")
    p.add_argument("--client-cpu", default="1",
                   help="CPU list for wrk and the load generator (taskset -c)")
    p.add_argument("--hello", default=DEFAULT_HELLO, help="grace example binary (HTTP)")
    p.add_argument("--https-exe", default=DEFAULT_HTTPS,
                   help="grace example binary (HTTPS: examples/https)")
    g = p.add_argument_group("restart-under-load")
    g.add_argument("--restart-duration", type=float, default=5 if quick else 20,
                   help="seconds of load per server (default 20; 5 with BENCH_QUICK=1)")
    g.add_argument("--restart-interval", type=float, default=1.0,
                   help="seconds between restarts (default 1)")
    g.add_argument("--restart-keepalive", type=int, default=32,
                   help="keep-alive connections of the load generator (default 32)")
    g.add_argument("--restart-close", type=int, default=8,
                   help="load generator clients opening a new connection per request "
                        "(default 8)")
    g.add_argument("--restart-trigger", choices=("signal", "admin"), default="signal",
                   help="grace: SIGUSR1 to the serving process (default) or GET "
                        "/debug/admin/restart; nginx always gets SIGHUP")
    g.add_argument("--plot", metavar="PNG",
                   help="where to write the restart-under-load plot (default %s; with "
                        "BENCH_QUICK=1 the temporary directory's, i.e. none kept)"
                        % os.path.relpath(DEFAULT_PLOT, ROOT))
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--markdown", metavar="FILE",
                   help="also write the machine and result tables as Markdown")
    p.add_argument("--perf", metavar="FILE",
                   help="after the runs, perf record -g grace under load (--perf-scenario) "
                        "for --duration seconds and write the report to FILE")
    p.add_argument("--perf-only", action="store_true", help="skip the benchmark (with --perf)")
    p.add_argument("--perf-scenario", default="http-keepalive",
                   choices=[s.name for s in SCENARIOS if s.func is not None],
                   help="load used for --perf")
    p.add_argument("--verbose", "-v", action="store_true", help="show raw wrk output")
    # testing the harness: "nginx" = a second nginx; else a command, {port} = a free port
    p.add_argument("--grace-cmd", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    known = {s.name: s for s in SCENARIOS}
    if a.only:
        names = []
        for w in (x.strip() for x in a.only.split(",")):
            if not w:
                continue
            if w in GROUPS:
                names += [s.name for s in SCENARIOS if s.group == w]
            elif w in known:
                names.append(w)
            else:
                p.error("--only: unknown scenario or group %r (groups: %s; scenarios: %s)"
                        % (w, ", ".join(GROUPS), ", ".join(known)))
    else:
        names = [x.strip() for x in a.scenarios.split(",") if x.strip()]
        bad = [n for n in names if n not in known]
        if bad:
            p.error("unknown scenario(s): %s" % ", ".join(bad))
    # in SCENARIOS order, so each group of servers is started once
    a.selected = [s for s in SCENARIOS if s.name in set(names)]
    if a.rounds < 1 or a.duration <= 0 or a.connections < 1 or a.threads < 1:
        p.error("--rounds, --duration, --connections and --threads must be positive")
    if a.restart_interval <= 0 or a.restart_duration < 2 * a.restart_interval:
        p.error("--restart-duration must be at least twice --restart-interval (> 0)")
    if a.restart_keepalive < 0 or a.restart_close < 0 or \
            a.restart_keepalive + a.restart_close == 0:
        p.error("--restart-keepalive + --restart-close must be positive")
    if a.perf_only and not a.perf:
        p.error("--perf-only needs --perf FILE")
    a.quick = quick
    return a


def start_pair(ctx, group, started):
    """grace and nginx for a group of scenarios ("http" or "https"), started."""
    https = group == "https"
    if https:
        setup_tls(ctx)
    grace = make_grace(ctx, "grace", https=https)
    started.append(grace)
    nginx = make_nginx("nginx-https" if https else "nginx", ctx, https=https)
    nginx.name = "nginx"
    started.append(nginx)
    grace.start()
    nginx.start()
    ctx.grace_servers[os.path.basename(grace.cmd[0])] = grace
    return grace, nginx


def run_pair_scenario(ctx, sc, pair):
    args = ctx.args
    if args.warmup > 0:
        for srv in pair:
            run_wrk(ctx, wrk_cmd(ctx, srv.port, args.warmup, sc.wrk_extra, srv.scheme),
                    args.warmup, wrk_env(ctx, srv.scheme))
    runs = {"grace": [], "nginx": []}
    for rnd in range(1, args.rounds + 1):
        for srv in pair:
            r = sc.func(ctx, srv)
            runs[srv.name].append(r)
            log("%s round %d/%d %-5s %9.0f req/s  p99 %7.3f ms  cpu %5.2f s  "
                "%8.0f req/cpu-s  rss %6.1f MiB  errors %d  other %.2f cpu-s"
                % (sc.name, rnd, args.rounds, srv.name, r["rps"], r["p99_ms"],
                   r["cpu_s"], r["req_per_cpu_s"] or 0, r["rss_mib"], r["errors"],
                   r["other_cpu_s"]))
    med = {k: summarize(v) for k, v in runs.items()}
    scheme = pair[0].scheme
    return {
        "name": sc.name, "description": sc.description,
        "wrk_command": ("OPENSSL_CONF=wrk-openssl.cnf " if scheme == "https" else "") +
                       " ".join(shlex.quote(x) for x in
                                wrk_cmd(ctx, 0, args.duration, sc.wrk_extra, scheme))
                       .replace("127.0.0.1:0", "127.0.0.1:PORT"),
        "runs": runs, "median": med,
        "ratio": {k: ratio(med["grace"][k], med["nginx"][k]) for k in RATIO_KEYS},
    }


def run(args):
    tools = find_tools()
    if (os.cpu_count() or 1) < 2 and args.client_cpu == "1":
        log("only one CPU: wrk shares CPU 0 with the servers")
        args.client_cpu = "0"
    if not become_subreaper():
        log("cannot become the child subreaper; old grace processes are reaped by init")
    tmpdir = tempfile.mkdtemp(prefix="grace-bench-")
    ctx = Ctx(args, tools, tmpdir)
    started = []
    known = {sc.name: sc for sc in SCENARIOS}
    selected = [] if args.perf_only else args.selected
    groups = [g for g in GROUPS if any(sc.group == g for sc in selected)
              or (args.perf and known[args.perf_scenario].group == g)]
    report = {
        "machine": machine_info(),
        "config": {"connections": args.connections, "duration_s": args.duration,
                   "rounds": args.rounds, "threads": args.threads,
                   "warmup_s": args.warmup, "server_cpu": args.server_cpu,
                   "client_cpu": args.client_cpu,
                   "wrk_timeout_s": args.wrk_timeout},
        "scenarios": [],
    }
    try:
        for group in groups:
            if group == "restart":
                rr = report["restart"] = {
                    "duration_s": args.restart_duration, "interval_s": args.restart_interval,
                    "keepalive": args.restart_keepalive, "close": args.restart_close,
                    "loadgen_command": "taskset -c %s python3 bench/loadgen.py --port PORT "
                                       "--keepalive %d --close %d --duration %g --timeout %g"
                                       % (args.client_cpu, args.restart_keepalive,
                                          args.restart_close, args.restart_duration,
                                          args.wrk_timeout),
                }
                rr["results"] = run_restart(ctx, started)
                plot = args.plot or (os.path.join(tmpdir, "restart-under-load.png")
                                     if args.quick else DEFAULT_PLOT)
                rr["plot"] = plot if plot_restart(rr, plot) else None
                if rr["plot"] and plot.startswith(tmpdir + os.sep):
                    log("(BENCH_QUICK: the plot is not kept; give --plot FILE to keep it)")
                    rr["plot"] = None
                continue
            pair = start_pair(ctx, group, started)
            if group == "https":
                report["tls"] = tls_check(ctx, pair)
            for sc in selected:
                if sc.group == group:
                    report["scenarios"].append(run_pair_scenario(ctx, sc, pair))
            if args.perf and known[args.perf_scenario].group == group:
                grace = pair[0]
                pf = report["perf"] = perf_profile(ctx, grace, args.perf,
                                                    known[args.perf_scenario])
                if pf:
                    print("\nperf (%s) of %s under %s load (%.0f req/s), top symbols:"
                          % (pf["event"], grace.name, pf["scenario"], pf["rps"]))
                    print("\n".join(pf["top"]))
                    print("by shared object:\n" + "\n".join(pf["by_dso"]))
                    print("top user-space symbols:\n" + "\n".join(pf["top_user"]))
            for srv in reversed(pair):
                srv.stop()
        report["versions"] = versions(tools, ctx.grace_servers)
        if not args.perf_only:
            print_report(report)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(markdown_tables(report))
            log("tables written to " + args.markdown)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=2)
                f.write("\n")
            log("results written to " + args.json)
        return EXIT_OK
    finally:
        for srv in reversed(started):
            srv.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Ctrl-C works even when started with SIGINT ignored (e.g. `cmd &` in a script)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    try:
        return run(args)
    except BenchError as e:
        log("FAILED: %s" % e)
        return EXIT_FAIL
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
