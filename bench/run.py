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
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        s = tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw
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
    """

    LISTEN_RE = re.compile(r"listening on \[([^\]]*)\]")

    def __init__(self, name, cmd, port, tmpdir, cpu, taskset, label=None):
        self.name, self.cmd, self.port = name, cmd, port
        self.label = label or name
        self.tmpdir, self.cpu, self.taskset = tmpdir, cpu, taskset
        self.proc = None
        self.lines = collections.deque(maxlen=200)
        self._port_found = threading.Event()
        self._drain = None
        self.logpath = os.path.join(tmpdir, name + ".log")

    @property
    def pid(self):
        return self.proc.pid

    def _drain_output(self):
        with open(self.logpath, "a", errors="replace") as logf:
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.lines.append(line)
                logf.write(line + "\n")
                if self.port is None:
                    m = self.LISTEN_RE.search(line)
                    if m:
                        host, _, port = m.group(1).rpartition(":")
                        if port.isdigit() and int(port) > 0:
                            self.port = int(port)
                            self._port_found.set()
        self._port_found.set()  # EOF: wake the waiter

    def start(self, timeout=15.0):
        full = [self.taskset, "-c", str(self.cpu)] + self.cmd
        log("starting %s: %s" % (self.name, " ".join(shlex.quote(c) for c in full)))
        try:
            self.proc = subprocess.Popen(full, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=self.tmpdir)
        except OSError as e:
            raise BenchError("%s failed to start: %s" % (self.name, e))
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
                status, headers, body = http_get(self.port)
                if status == 200 and body == BODY:
                    # nginx: wait until the workers exist too
                    time.sleep(0.2)
                    log("%s ready on 127.0.0.1:%d (pid %d, %d processes)"
                        % (self.name, self.port, self.pid, len(tree(self.pid))))
                    return
                last_err = "GET / answered %d %r" % (status, body[:60])
            except (OSError, ValueError, IndexError) as e:
                last_err = str(e)
            time.sleep(0.05)
        raise BenchError("%s not answering GET / correctly on port %s: %s%s"
                         % (self.name, self.port, last_err, self._tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            raise BenchError("%s died (status %s)%s"
                             % (self.name, self.proc.returncode, self._tail()))

    def _tail(self):
        if not self.lines:
            return ""
        return "\n  last output:\n    " + "\n    ".join(list(self.lines)[-10:])

    def stop(self, timeout=5.0):
        """SIGTERM the main PID, SIGKILL the process group and leftovers after timeout."""
        if self.proc is None:
            return
        members = tree(self.proc.pid) if self.alive() else {}
        if self.alive():
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
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
        if self._drain is not None:
            self._drain.join(2.0)
        if self.proc.stdout:
            self.proc.stdout.close()


def nginx_without_modules(nginx):
    try:
        out = subprocess.run([nginx, "-V"], capture_output=True, text=True).stderr
    except OSError:
        return set()
    return set(re.findall(r"--without-http_(\w+)_module", out))


def make_nginx(name, ctx):
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
    with open(NGINX_TEMPLATE) as f:
        conf = f.read()
    conf = (conf.replace("@TEMP_PATHS@", "\n".join(temp))
                .replace("@PORT@", str(port)).replace("@DIR@", d))
    confpath = os.path.join(d, "nginx.conf")
    with open(confpath, "w") as f:
        f.write(conf)
    cmd = [ctx.tools["nginx"], "-p", d + "/", "-e", os.path.join(d, "error.log"),
           "-c", confpath]
    return Server(name, cmd, port, ctx.tmpdir, ctx.args.server_cpu, ctx.tools["taskset"],
                  label="nginx")


def make_grace(ctx):
    spec = ctx.args.grace_cmd
    if spec == "nginx":  # testing the harness: a second nginx stands in for grace
        srv = make_nginx("grace", ctx)
        srv.label = "nginx (standing in for grace)"
        return srv
    if spec:
        port = None
        if "{port}" in spec:
            port = free_port()
            spec = spec.replace("{port}", str(port))
        return Server("grace", shlex.split(spec), port, ctx.tmpdir, ctx.args.server_cpu,
                      ctx.tools["taskset"], label=spec)
    hello = os.path.abspath(ctx.args.hello)
    if not os.access(hello, os.X_OK):
        raise BenchError("grace example not found: %s (build it first: make)" % hello)
    return Server("grace", [hello, "--host", "127.0.0.1", "--port", "0"], None,
                  ctx.tmpdir, ctx.args.server_cpu, ctx.tools["taskset"], label=hello)


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


def wrk_cmd(ctx, port, duration, extra=()):
    a = ctx.args
    return ([ctx.tools["taskset"], "-c", str(a.client_cpu), ctx.tools["wrk"],
             "-t%d" % a.threads, "-c%d" % a.connections, "-d%gs" % duration,
             "--timeout", "%gs" % a.wrk_timeout, "--latency"] + list(extra)
            + ["http://127.0.0.1:%d/" % port])


def run_wrk(ctx, cmd, duration):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
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
    cmd = wrk_cmd(ctx, server.port, ctx.args.duration, wrk_extra)
    nproc_before = len(tree(server.pid))
    cs0 = tree_ctx_switches(server.pid)
    self0, kids0 = _self_cpu()
    busy0, steal0 = system_ticks()
    cpu0 = tree_cpu_seconds(server.pid)
    r, raw = run_wrk(ctx, cmd, ctx.args.duration)
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
    def __init__(self, name, func, description, wrk_extra=()):
        self.name, self.func, self.description = name, func, description
        self.wrk_extra = list(wrk_extra)


def scenario_http_keepalive(ctx, server):
    return measure(ctx, server)


def scenario_http_close(ctx, server):
    return measure(ctx, server, ["-H", "Connection: close"])


SCENARIOS = [
    Scenario("http-keepalive", scenario_http_keepalive,
             "HTTP/1.1 keep-alive, GET / -> 13-byte body"),
    Scenario("http-close", scenario_http_close,
             "new TCP connection per request (Connection: close)",
             ["-H", "Connection: close"]),
    # Later: "https-keepalive", "restart-under-load", ...
]


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


def versions(tools, grace):
    def first_line(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return ((p.stdout or "") + (p.stderr or "")).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"
    v = {"nginx": first_line([tools["nginx"], "-v"]),
         "wrk": first_line([tools["wrk"], "-v"]),
         "grace": grace.label}
    exe = grace.cmd[0]
    if os.path.isfile(exe):  # identify the exact binary measured
        with open(exe, "rb") as f:
            v["grace_sha256"] = hashlib.sha256(f.read()).hexdigest()
        v["grace_mtime"] = time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                         time.gmtime(os.path.getmtime(exe)))
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


def print_report(report, out=sys.stdout):
    m, v, c = report["machine"], report["versions"], report["config"]
    w = out.write
    w("\nmachine:  %d CPUs, %s, Linux %s%s\n" % (m["nproc"], m["cpu_model"], m["kernel"],
                                                   (", " + m["os"]) if m["os"] else ""))
    w("versions: %s; %s; grace = %s\n" % (v["nginx"], v["wrk"], v["grace"]))
    w("setup:    servers pinned to CPU %s, wrk pinned to CPU %s; wrk -t%d -c%d -d%gs; "
      "%d round(s), medians; nginx: 2 workers\n"
      % (c["server_cpu"], c["client_cpu"], c["threads"], c["connections"], c["duration_s"],
         c["rounds"]))
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
           "| grace | `%s`%s |" % (v["grace"], (" (built %s, sha256 %s…)"
                                                  % (v["grace_mtime"], v["grace_sha256"][:16]))
                                   if "grace_sha256" in v else ""),
           "| setup | servers on CPU %s, wrk on CPU %s; `wrk -t%d -c%d -d%gs --latency`; "
           "%d rounds, medians |" % (c["server_cpu"], c["client_cpu"], c["threads"],
                                     c["connections"], c["duration_s"], c["rounds"]),
           ""]
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
        cmd = wrk_cmd(ctx, server.port, dur, scenario.wrk_extra)
        r, _ = run_wrk(ctx, cmd, dur)
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


def parse_args(argv):
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    p = argparse.ArgumentParser(
        description="Benchmark grace (examples/hello) against nginx, side by side.",
        epilog="BENCH_QUICK=1 in the environment: 1 s x 1 round smoke run "
               "(explicit --duration/--rounds still win).")
    p.add_argument("--connections", "-c", type=int, default=50)
    p.add_argument("--duration", "-d", type=float, default=1 if quick else 5,
                   help="seconds per wrk run (default 5; 1 with BENCH_QUICK=1)")
    p.add_argument("--rounds", "-r", type=int, default=1 if quick else 3,
                   help="rounds; medians are reported (default 3; 1 with BENCH_QUICK=1)")
    p.add_argument("--threads", "-t", type=int, default=1, help="wrk threads")
    p.add_argument("--warmup", type=float, default=0 if quick else 1,
                   help="seconds of untimed load per server and scenario before round 1")
    p.add_argument("--wrk-timeout", type=float, default=2.0, help="wrk --timeout seconds")
    p.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS),
                   help="comma-separated subset of: " + ", ".join(s.name for s in SCENARIOS))
    p.add_argument("--quiet-timeout", type=float, default=10 if quick else 120,
                   help="before each run, wait up to this many seconds for other programs "
                        "to stop using the CPUs (0 = don't wait)")
    p.add_argument("--retries", type=int, default=2,
                   help="repeat a run disturbed by other programs at most this many times")
    p.add_argument("--quiet-threshold", type=float, default=0.10,
                   help="'quiet' = other programs use less than this fraction of one CPU")
    p.add_argument("--server-cpu", default="0", help="CPU list for the servers (taskset -c)")
    p.add_argument("--client-cpu", default="1", help="CPU list for wrk (taskset -c)")
    p.add_argument("--hello", default=DEFAULT_HELLO, help="grace example binary")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--markdown", metavar="FILE",
                   help="also write the machine and result tables as Markdown")
    p.add_argument("--perf", metavar="FILE",
                   help="after the runs, perf record -g grace under load (--perf-scenario) "
                        "for --duration seconds and write the report to FILE")
    p.add_argument("--perf-only", action="store_true", help="skip the benchmark (with --perf)")
    p.add_argument("--perf-scenario", default="http-keepalive",
                   choices=[s.name for s in SCENARIOS], help="load used for --perf")
    p.add_argument("--verbose", "-v", action="store_true", help="show raw wrk output")
    # testing the harness: "nginx" = a second nginx; else a command, {port} = a free port
    p.add_argument("--grace-cmd", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    names = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    known = {s.name: s for s in SCENARIOS}
    bad = [n for n in names if n not in known]
    if bad:
        p.error("unknown scenario(s): %s" % ", ".join(bad))
    a.selected = [known[n] for n in names]
    if a.rounds < 1 or a.duration <= 0 or a.connections < 1 or a.threads < 1:
        p.error("--rounds, --duration, --connections and --threads must be positive")
    if a.perf_only and not a.perf:
        p.error("--perf-only needs --perf FILE")
    return a


def run(args):
    tools = find_tools()
    if (os.cpu_count() or 1) < 2 and args.client_cpu == "1":
        log("only one CPU: wrk shares CPU 0 with the servers")
        args.client_cpu = "0"
    tmpdir = tempfile.mkdtemp(prefix="grace-bench-")
    ctx = Ctx(args, tools, tmpdir)
    servers = []
    try:
        grace = make_grace(ctx)
        servers.append(grace)
        nginx = make_nginx("nginx", ctx)
        servers.append(nginx)
        grace.start()
        nginx.start()
        report = {
            "machine": machine_info(),
            "versions": versions(tools, grace),
            "config": {"connections": args.connections, "duration_s": args.duration,
                       "rounds": args.rounds, "threads": args.threads,
                       "warmup_s": args.warmup, "server_cpu": args.server_cpu,
                       "client_cpu": args.client_cpu,
                       "wrk_timeout_s": args.wrk_timeout},
            "scenarios": [],
        }
        pair = (grace, nginx)
        for sc in ([] if args.perf_only else args.selected):
            if args.warmup > 0:
                for srv in pair:
                    run_wrk(ctx, wrk_cmd(ctx, srv.port, args.warmup, sc.wrk_extra),
                            args.warmup)
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
            report["scenarios"].append({
                "name": sc.name, "description": sc.description,
                "wrk_command": " ".join(shlex.quote(x) for x in
                                        wrk_cmd(ctx, 0, args.duration, sc.wrk_extra))
                               .replace("127.0.0.1:0", "127.0.0.1:PORT"),
                "runs": runs, "median": med,
                "ratio": {k: ratio(med["grace"][k], med["nginx"][k]) for k in RATIO_KEYS},
            })
        if not args.perf_only:
            print_report(report)
        if args.perf:
            known = {sc.name: sc for sc in SCENARIOS}
            pf = report["perf"] = perf_profile(ctx, grace, args.perf,
                                                known[args.perf_scenario])
            if pf:
                print("\nperf (%s) of %s under %s load (%.0f req/s), top symbols:"
                      % (pf["event"], grace.name, pf["scenario"], pf["rps"]))
                print("\n".join(pf["top"]))
                print("by shared object:\n" + "\n".join(pf["by_dso"]))
                print("top user-space symbols:\n" + "\n".join(pf["top_user"]))
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
        for srv in reversed(servers):
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
