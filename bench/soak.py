#!/usr/bin/python3
"""soak.py -- `make soak`: graceful restarts under full load, grace beside nginx.

What runs, on 127.0.0.1 only:
  grace  the release build's examples/inflight (HTTP: GET /pid, POST /echo)
         and examples/https (HTTPS: GET / answers "哈罗！\\n"), both --port 0,
         each restarted --restarts times, one round every --interval s, by
         SIGUSR1 to its serving process (the PID of the latest "new process N
         is serving" log line). They run from copies made at the start, so
         a rebuild during the run cannot change what a new generation runs.
  nginx  one master with 2 workers, an HTTP and an HTTPS listener (same
         certificate) and the same routes -- except that /echo answers "ok":
         nginx cannot echo a body -- reloaded as often by SIGHUP.
Against each, five wrk loads (1 thread each, bench/soak.lua) run the whole
time: HTTP keep-alive GET /pid (-c16), HTTP new connection per request
(-c4), HTTP keep-alive POST /echo with 1 KiB (-c4; grace's answer must be the
body, byte for byte), HTTPS keep-alive GET / (-c8), HTTPS new connection
(-c2). After the last round the script waits until every old grace
generation (old nginx worker) has exited, lets the load run 1 s more, and
stops wrk with SIGINT.

Reading the report:
  requests, failed   per load, as wrk saw them; failed = bad answers (not 200,
                     or an echo that differs) + wrk's connect, read, write,
                     timeout and status errors (so a non-200 counts twice). wrk
                     never resends: a request a server dropped is a read error.
  restart latency    p50/p99 ms from the signal until a new connection's GET
                     /pid (HTTP) is answered by the new process (grace) or by a
                     worker that did not exist before the reload (nginx),
                     probed every 1 ms by this script (so it includes the
                     probe's own wait for a CPU: both are busy).
  dip                good answers of all five loads per 100 ms; for a restart
                     at t, dip = 1 - (smallest bucket within [t, t+1 s)) /
                     (median bucket of the run); median and worst over all
                     restarts. Windows overlap when restarts are < 1 s apart.
  restart errors     a restart refused or failed, a probe that failed, an old
                     generation that exited non-zero or did not exit.
Verdict: grace needs 0 failed requests, 0 restart errors and at least
--min-requests requests (default 10000 per restart: 1000000 for 100): exit 0,
else 1. nginx is reported, never judged.
Exit 2: setup failed or the watchdog (--timeout) fired; 130: interrupted.
"""

import argparse, collections, ctypes, hashlib, http.client, json, os, platform, re, shlex
import shutil, signal, socket, ssl, statistics, subprocess, sys, tempfile, threading, time
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("GRACE_BUILD_DIR") or os.path.join(ROOT, "build")
LUA = os.path.join(HERE, "soak.lua")
HELLO = "\u54c8\u7f57\uff01\n".encode("utf-8")  # examples/https, GET /
LOG_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (\d+): (.*)$")
LISTEN_RE = re.compile(r"https? server started listening on \[127\.0\.0\.1:(\d+)\]")
SERVING_RE = re.compile(r"new process (\d+) is serving")
ROUTINE_RE = re.compile(r"received signal|server reloading|server (started|reloaded) listening"
                        r"|new process \d+ is serving|all servers shutdown|server shutting down")
# name, scheme, path, connections, new connection per request, POST body bytes
LOADS = [("HTTP keep-alive GET /pid", "http", "/pid", 16, False, 0),
         ("HTTP new conn GET /pid", "http", "/pid", 4, True, 0),
         ("HTTP keep-alive POST /echo 1KiB", "http", "/echo", 4, False, 1024),
         ("HTTPS keep-alive GET /", "https", "/", 8, False, 0),
         ("HTTPS new conn GET /", "https", "/", 2, True, 0)]
ERRORS = ("bad", "connect", "read", "write", "timeout", "status")
NGINX_WORKERS, STOP_AFTER_S, OLD_EXIT_S, WARMUP_S = 2, 15.0, 40.0, 1.0
NGINX_CONF = """daemon off; master_process on; worker_processes %d;
pid @DIR@/nginx.pid; error_log @DIR@/error.log warn;
events { worker_connections 4096; }
http {
    access_log off; default_type text/plain; keepalive_requests 1000000000;
    @TEMP_PATHS@
    server {
        listen 127.0.0.1:@HTTP@; listen 127.0.0.1:@HTTPS@ ssl;
        ssl_certificate @CERT@; ssl_certificate_key @KEY@; ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets off; ssl_session_cache shared:SSL:1m;
        location = / { return 200 "@HELLO@\\n"; }
        location = /pid { return 200 "$pid\\n"; }
        location = /echo { client_body_buffer_size 16k; return 200 "ok\\n"; }
    }
}
""" % NGINX_WORKERS


class SoakError(Exception):
    """Setup failed (a tool missing, a server not starting): exit 2."""


def log(msg):
    print("[soak] " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

def stat(pid):
    """(state, ppid) of a process, or None if it is gone."""
    try:
        with open("/proc/%s/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()  # the name may hold spaces
    return fields[0].decode(), int(fields[1])


def ps():
    """{pid: (state, ppid)} of every process."""
    table = {int(name): stat(name) for name in os.listdir("/proc") if name.isdigit()}
    return {pid: st for pid, st in table.items() if st is not None}


def alive(pid):
    st = stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def descendants(root):
    table, out, todo = ps(), [], [root]
    while todo:
        parent = todo.pop()
        kids = [pid for pid, (_, ppid) in table.items() if ppid == parent]
        out += kids
        todo += kids
    return out


def live_children(parent):
    return {pid for pid, (state, ppid) in ps().items()
            if ppid == parent and state not in ("Z", "X")}


class Procs:
    """Every process this script starts. As the child subreaper it also
    inherits the orphans among their descendants (old grace generations),
    reaps them and keeps their exit status in exits."""

    def __init__(self, taskset):
        self.taskset, self.popens, self.exits = taskset, {}, {}

    def spawn(self, cmd, cpu, **kw):
        if self.taskset:
            cmd = [self.taskset, "-c", str(cpu)] + cmd  # taskset execs: same PID
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        self.popens[p.pid] = p
        return p

    def reap(self):
        for p in self.popens.values():
            if p.poll() is not None:
                self.exits.setdefault(p.pid, p.returncode)
        for pid, (_, ppid) in ps().items():
            if ppid == os.getpid() and pid not in self.popens:
                try:
                    got, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    continue
                if got == pid:
                    self.exits[pid] = os.waitstatus_to_exitcode(status)

    def stop_all(self):
        """SIGTERM every live descendant (also those born meanwhile), SIGKILL
        what is left after STOP_AFTER_S, reap them all."""
        sig, sent, start = signal.SIGTERM, set(), time.monotonic()
        while True:
            self.reap()
            live = [p for p in descendants(os.getpid()) if alive(p)]
            if not live or time.monotonic() - start > STOP_AFTER_S + 5:
                return
            if sig == signal.SIGTERM and time.monotonic() - start > STOP_AFTER_S:
                log("still running %.0f s after SIGTERM: SIGKILL %s" % (STOP_AFTER_S, live))
                sig, sent = signal.SIGKILL, set()
            for pid in set(live) - sent:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
                sent.add(pid)
            time.sleep(0.05)


def start_watchdog(seconds, tmp):
    """After `seconds`, SIGKILL every descendant, reap them, exit 2."""
    def fire():
        log("watchdog: still running after %g s; killing everything, exit 2 (logs in %s)"
            % (seconds, tmp))
        for _ in range(3):  # a grace restart may fork while we kill
            for pid in descendants(os.getpid()):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        for _ in range(100):  # reap them all: no zombie left behind
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    time.sleep(0.02)
            except ChildProcessError:
                break
        os._exit(2)
    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


# ---------------------------------------------------------------- servers

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
        except (OSError, ValueError, http.client.HTTPException) as e:
            last = e
        time.sleep(0.05)
    raise SoakError("%s: not ready within %.0f s (%s)" % (what, timeout, last))


class Grace:
    """One grace example and all its generations, followed through the
    stderr they share: the port, the serving PID, restart outcomes."""

    def __init__(self, procs, name, cmd, logpath):
        self.name, self.lines, self.events, self.port, self.eof = name, [], [], None, False
        self.cond = threading.Condition()
        self.proc = procs.spawn(cmd, 0, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.serving, self.generations = self.proc.pid, [self.proc.pid]
        threading.Thread(target=self._follow, args=(logpath,), daemon=True).start()
        if not self.wait(lambda: self.port is not None or self.eof, 15.0) or self.port is None:
            raise SoakError("%s did not report its port:\n%s" % (name, show(self.tail(10))))

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
        pid, text = int(m.group(1)), m.group(2)
        listen, serving = LISTEN_RE.match(text), SERVING_RE.match(text)
        if listen and self.port is None:
            self.port = int(listen.group(1))
        elif serving:
            self.events.append((pid, "serving", int(serving.group(1))))
        elif text.startswith(("restart refused", "restart failed")):
            self.events.append((pid, "failed", text))

    def wait(self, pred, timeout):
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def outcome(self, old, mark):
        """The first restart outcome logged by process old after events[mark]."""
        with self.cond:
            return next((ev for ev in self.events[mark:] if ev[0] == old), None)

    def tail(self, n=30, keep=lambda t, line: True):
        """The last n log lines (of those keep(receive time, line) accepts)."""
        with self.cond:
            lines = [(t, line) for t, line in self.lines if keep(t, line)]
        return lines[-n:]


# ---------------------------------------------------------------- load

def start_loads(ctx, ports, check_body):
    loads = []
    for name, scheme, path, conns, close, body in LOADS:
        cmd = [ctx.wrk, "-t1", "-c%d" % conns, "-d%ds" % ctx.args.timeout, "--timeout", "5s",
               "-s", LUA] + (["-H", "Connection: close"] if close else []) + [
               "%s://127.0.0.1:%d%s" % (scheme, ports[scheme], path), "--",
               "POST" if body else "GET", str(body), "1" if check_body else "0"]
        proc = ctx.procs.spawn(cmd, 1, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        loads.append({"load": name, "command": shlex.join(cmd), "proc": proc})
    return loads


def stop_loads(loads):
    """SIGINT every wrk (it then reports), parse each SOAK_JSON line."""
    for l in loads:
        if l["proc"].poll() is None:
            l["proc"].send_signal(signal.SIGINT)
    for l in loads:
        p = l.pop("proc")
        try:
            out = p.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            p.kill()
            out = p.communicate()[0]
        l["output"] = out.decode("utf-8", "replace")
        m = re.search(r"^SOAK_JSON (.*)$", l["output"], re.M)
        if m is None:  # no report: counts as failed, never as clean
            l.update(requests=0, failed=1, error="no SOAK_JSON from wrk (exit %s)" % p.returncode)
            continue
        l.update(json.loads(m.group(1)), output=l["output"][:m.start()])  # wrk's own summary
        l["failed"] = sum(l[k] for k in ERRORS)
    return loads


# ---------------------------------------------------------------- restarts

def probe(port, is_new, t0, gave_up, timeout=10.0):
    """GET /pid on a new connection every 1 ms until is_new(pid).
    Returns (ms since t0 or None, [probe errors], error or None)."""
    errors = []
    while time.monotonic() - t0 < timeout:
        try:
            status, body = get(port, "/pid")
            if status != 200:
                raise ValueError("GET /pid answered %d" % status)
            if is_new(int(body)):
                return (time.monotonic() - t0) * 1e3, errors, None
        except (OSError, ValueError, http.client.HTTPException) as e:
            errors.append("probe: %s" % (str(e) or type(e).__name__))
        if gave_up():
            return None, errors, None
        time.sleep(0.001)
    return None, errors, "no new process answered GET /pid within %.0f s" % timeout


def grace_round(servers):
    """SIGUSR1 to the serving process of both servers; the latency of the
    first (HTTP); then both outcomes from the logs."""
    olds, marks, errors = [s.serving for s in servers], [len(s.events) for s in servers], []
    t = time.monotonic()
    for s, old in zip(servers, olds):
        try:
            os.kill(old, signal.SIGUSR1)
        except ProcessLookupError:
            return {"t": t, "ms": None, "errors": ["%s: process %d is gone" % (s.name, old)]}
    refused = lambda: (servers[0].outcome(olds[0], marks[0]) or (0, ""))[1] == "failed"
    ms, errors, err = probe(servers[0].port, lambda pid: pid != olds[0], t, refused)
    errors += [err] if err else []
    for s, old, mark in zip(servers, olds, marks):
        ev = s.wait(lambda: s.outcome(old, mark), 10.0)
        if ev is None:
            errors.append("%s: no outcome of restarting %d logged within 10 s" % (s.name, old))
        elif ev[1] == "serving":
            s.serving = ev[2]
            s.generations.append(ev[2])
        else:
            errors.append("%s: %s" % (s.name, ev[2]))
    return {"t": t, "ms": ms, "errors": errors}


def nginx_round(master, port):
    """SIGHUP to the master; the latency until a new worker answers."""
    before = live_children(master)
    t = time.monotonic()
    os.kill(master, signal.SIGHUP)
    ms, errors, err = probe(port, lambda pid: pid not in before, t, lambda: not alive(master))
    return {"t": t, "ms": ms, "errors": errors + ([err] if err else [])}


def restart_rounds(args, name, do_round):
    recs, t0 = [], time.monotonic()
    for k in range(args.restarts):
        time.sleep(max(0.0, t0 + k * args.interval - time.monotonic()))
        recs.append(do_round())
        for e in recs[-1]["errors"]:
            log("%s restart %d: %s" % (name, k + 1, e))
        if (k + 1) % 20 == 0 or k + 1 == args.restarts:
            log("%s: %d restarts done" % (name, k + 1))
    return recs


def wait_old_generations(procs, servers):
    """Errors for old grace generations that do not exit, or exit non-zero."""
    old = [p for s in servers for p in s.generations if p != s.serving]
    deadline = time.monotonic() + OLD_EXIT_S
    while any(alive(p) for p in old) and time.monotonic() < deadline:
        procs.reap()
        time.sleep(0.05)
    procs.reap()
    errors = ["old generation %d still running %.0f s after the last restart" % (p, OLD_EXIT_S)
              for p in old if alive(p)]
    return errors + ["old generation %d exited with status %d" % (p, procs.exits[p])
                     for p in old if procs.exits.get(p, 0) != 0]


def wait_old_workers(master):
    deadline = time.monotonic() + OLD_EXIT_S
    while len(live_children(master)) > NGINX_WORKERS and time.monotonic() < deadline:
        time.sleep(0.05)
    n = len(live_children(master)) - NGINX_WORKERS
    return ["%d old workers still running %.0f s after the last reload" % (n, OLD_EXIT_S)] \
        if n > 0 else []


# ---------------------------------------------------------------- phases

def run_phase(ctx, name, ports, check_body, do_round, wait_old):
    """The loads, the restart rounds, the wait for old processes, 1 s more."""
    log("%s: loads on; %d restarts every %g s" % (name, ctx.args.restarts, ctx.args.interval))
    t_start = time.monotonic()
    loads = start_loads(ctx, ports, check_body)
    try:
        time.sleep(WARMUP_S)
        for l in loads:
            if l["proc"].poll() is not None:
                raise SoakError("wrk exited at once: %s" % l["command"])
        recs = restart_rounds(ctx.args, name, do_round)
        end_errors = wait_old()
        time.sleep(1.0)
        t_end = time.monotonic()
    finally:
        loads = stop_loads(loads)
    return summarize(loads, recs, end_errors, t_start, t_end)


def grace_phase(ctx):
    def cmd(name, *extra):
        """A private copy of the example: a rebuild of BUILD during the run
        must not change what the next generation executes."""
        src, exe = os.path.join(BUILD, "examples", name), os.path.join(ctx.tmp, name)
        if not os.access(src, os.X_OK):
            raise SoakError("%s missing: build first (make)" % src)
        shutil.copy2(src, exe)
        with open(exe, "rb") as f:
            ctx.binaries[name] = "%s sha256 %s" % (src, hashlib.sha256(f.read()).hexdigest()[:16])
        return [exe, "--host", "127.0.0.1", "--port", "0"] + list(extra)
    servers = [Grace(ctx.procs, "inflight", cmd("inflight"), ctx.tmp + "/inflight.log"),
               Grace(ctx.procs, "https", cmd("https", "--cert", ctx.cert, "--key", ctx.key),
                     ctx.tmp + "/https.log")]
    wait_until(lambda: get(servers[0].port, "/pid") == (200, b"%d\n" % servers[0].serving),
               "inflight")
    wait_until(lambda: get(servers[1].port, "/", ctx.tls) == (200, HELLO), "https")
    r = run_phase(ctx, "grace", {"http": servers[0].port, "https": servers[1].port}, True,
                  lambda: grace_round(servers), lambda: wait_old_generations(ctx.procs, servers))
    r["server"] = "grace: examples/inflight (HTTP) + examples/https (HTTPS), SIGUSR1"
    r["generations"] = [s.generations for s in servers]
    if r["failed"] or r["restart_errors"]:
        r["failure_detail"] = failure_detail(r, servers)
    return r


def nginx_phase(ctx):
    d = os.path.join(ctx.tmp, "nginx")
    os.makedirs(d)
    os.chmod(ctx.tmp, 0o755)  # as root, the workers run as an unprivileged user
    os.chmod(d, 0o755)
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]  # two free ports
    http_port, https_port = (s.getsockname()[1] for s in socks)
    for s in socks:
        s.close()
    without = subprocess.run([ctx.nginx, "-V"], capture_output=True, text=True).stderr
    temp = ["client_body_temp_path @DIR@/body;"] + [
        "%s_temp_path @DIR@/%s;" % (m, m) for m in ("proxy", "fastcgi", "uwsgi", "scgi")
        if "--without-http_%s_module" % m not in without]
    conf = NGINX_CONF.replace("@TEMP_PATHS@", "\n    ".join(temp))
    for k, v in (("DIR", d), ("HTTP", http_port), ("HTTPS", https_port), ("CERT", ctx.cert),
                 ("KEY", ctx.key), ("HELLO", HELLO.decode().strip())):
        conf = conf.replace("@%s@" % k, str(v))
    with open(d + "/nginx.conf", "w", encoding="utf-8") as f:
        f.write(conf)
    with open(d + "/stderr.log", "w") as out:
        master = ctx.procs.spawn([ctx.nginx, "-p", d + "/", "-e", d + "/error.log",
                                  "-c", d + "/nginx.conf"], 0, stdout=out, stderr=out).pid
    wait_until(lambda: get(http_port, "/pid")[0] == 200 and len(live_children(master)) ==
               NGINX_WORKERS and get(https_port, "/", ctx.tls) == (200, HELLO), "nginx")
    r = run_phase(ctx, "nginx", {"http": http_port, "https": https_port}, False,
                  lambda: nginx_round(master, http_port), lambda: wait_old_workers(master))
    r["server"] = "nginx: %d workers, SIGHUP (reload); POST /echo: status checked only" \
        % NGINX_WORKERS
    return r


# ---------------------------------------------------------------- numbers

def percentile(values, p):
    v = sorted(values)
    return v[max(0, -(-len(v) * p // 100) - 1)] if v else None  # nearest rank


def dips(buckets, times, t_start, t_end):
    """Per restart: 1 - smallest 100 ms bucket within [t, t+1 s) / median bucket.
    Only whole buckets of the run count (the first 0.5 s is wrk connecting)."""
    lo, hi = int(t_start * 1e3 + 500) // 100 * 100 + 100, int(t_end * 1e3) // 100 * 100
    med = statistics.median([buckets.get(b, 0) for b in range(lo, hi, 100)] or [0])
    out = []
    for t in times:
        first = int(t * 1e3) // 100 * 100  # the bucket t falls in
        win = [buckets.get(b, 0) for b in range(first, int(t * 1e3 + 1e3), 100) if lo <= b < hi]
        if med > 0 and win:
            out.append(1 - min(win) / med)
    return med, out


def summarize(loads, recs, end_errors, t_start, t_end):
    merged = collections.Counter()
    for l in loads:
        merged.update({int(k): n for k, n in l.pop("buckets", {}).items()})
    lat = [r["ms"] for r in recs if r["ms"] is not None]
    med, d = dips(merged, [r["t"] for r in recs], t_start, t_end)
    return {"loads": loads, "requests": sum(l["requests"] for l in loads),
            "failed": sum(l["failed"] for l in loads), "restarts": len(recs),
            "latency_ms": {"p50": percentile(lat, 50), "p99": percentile(lat, 99),
                           "measured": len(lat)},
            "median_bucket": med,
            "dip_pct": {"median": 100 * statistics.median(d) if d else None,
                        "worst": 100 * max(d) if d else None},
            "restart_errors": [e for r in recs for e in r["errors"]] + end_errors,
            "duration_s": round(t_end - t_start, 1),
            "rounds": [{"t_s": round(r["t"] - t_start, 3), "ms": r["ms"], "errors": r["errors"]}
                       for r in recs],
            "buckets": {str(k): merged[k] for k in sorted(merged)}}


def failure_detail(r, servers):
    """What wrk saw, and the grace log around it, for a failed grace run."""
    out, bad_ms = [], []
    for l in (l for l in r["loads"] if l["failed"]):
        out.append("wrk, %s: %s (first bad answer: %r)\n    %s\n%s" % (
            l["load"], l.get("error", ""), l.get("sample"), l["command"], l["output"].rstrip()))
        bad_ms += l.get("bad_ms", [])
    shown = []
    for ms in sorted(bad_ms):  # the log of both servers within 1 s of bad answers
        if len(shown) < 3 and (not shown or ms - shown[-1] > 2000):
            shown.append(ms)
            near = lambda t, line: abs(t * 1e3 - ms) <= 1000
            lines = sorted(x for s in servers for x in s.tail(40, near))
            out.append("log within 1 s of a bad answer:\n" + show(lines))
    for s in servers:  # wrk's socket errors have no time: all that is not routine
        odd = s.tail(40, lambda t, line: not ROUTINE_RE.search(line))
        out.append("%s log, unusual lines:\n%s" % (s.name, show(odd)))
        out.append("%s log, last lines:\n%s" % (s.name, show(s.tail())))
    return out


def show(lines):
    return "\n".join("    " + line for _, line in lines) or "    (none)"


# ---------------------------------------------------------------- report

def fmt(v, spec="%.1f"):
    return "-" if v is None else spec % v


def print_report(rep):
    print("\n==== grace soak: %d graceful restarts under load, beside nginx ===="
          % rep["restarts"])
    for r in rep["servers"].values():
        print("\n%s\n  %-34s %10s %8s  %s" % (r["server"], "load", "requests", "failed",
                                            " ".join("%7s" % e for e in ERRORS)))
        for l in r["loads"]:
            print("  %-34s %10d %8d  %s" % (l["load"], l["requests"], l["failed"],
                                            " ".join("%7s" % l.get(e, "-") for e in ERRORS)))
        print("  %-34s %10d %8d" % ("total", r["requests"], r["failed"]))
        lat = r["latency_ms"]
        print("  restart latency (signal -> a new process answers GET /pid): p50 %s ms, p99 %s ms"
              " (%d of %d)" % (fmt(lat["p50"]), fmt(lat["p99"]), lat["measured"], r["restarts"]))
        print("  throughput: median %s good answers per 100 ms; dip within 1 s of a restart: "
              "median %s%%, worst %s%%" % (fmt(r["median_bucket"], "%.0f"),
                                          fmt(r["dip_pct"]["median"]), fmt(r["dip_pct"]["worst"])))
        print("  restart errors: %d%s\n  %.1f s of load" % (len(r["restart_errors"]), "".join(
            "\n    " + e for e in r["restart_errors"][:20]), r["duration_s"]))
        for text in r.get("failure_detail", []):
            print("  " + text)
    m = rep["machine"]
    print("\nmachine: %d CPUs, %s, Linux %s; pinning: %s" % (m["nproc"], m["cpu_model"],
                                                             m["kernel"], rep["pinning"]))
    print("grace: %s (copies run)\nnginx: %s\ncommand: %s\ntook %.0f s\n%s" % (
        "; ".join(rep["binaries"].values()), rep["nginx_version"], rep["command"],
        rep["took_s"], rep["verdict"]["line"]))


def verdict(args, g):
    problems = [what for bad, what in (
        (g["failed"], "%d failed requests" % g["failed"]),
        (g["requests"] < args.min_requests, "fewer than %d requests" % args.min_requests),
        (g["restart_errors"], "%d restart errors" % len(g["restart_errors"]))) if bad]
    line = "VERDICT: %s -- grace: %d failed requests (must be 0); %d requests (%s %d); " \
           "%d restart errors" % ("FAIL" if problems else "PASS", g["failed"], g["requests"],
                                  ">=" if g["requests"] >= args.min_requests else "<",
                                  args.min_requests, len(g["restart_errors"]))
    return {"ok": not problems, "problems": problems, "line": line}


def machine():
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release()}


# ---------------------------------------------------------------- main

def setup(args, procs, tmp):
    """What the phases share: options, processes, tools, a certificate."""
    wrk = shutil.which("wrk")
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None)
    if not wrk or not nginx:
        raise SoakError("wrk and nginx are needed (scripts/deps.sh bench installs them)")
    certs = os.path.join(tmp, "certs")
    p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "selfsigned.sh"), certs],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SoakError("scripts/selfsigned.sh failed: " + p.stderr)
    os.chmod(certs, 0o755)
    return SimpleNamespace(args=args, procs=procs, tmp=tmp, wrk=wrk, nginx=nginx, binaries={},
                           cert=certs + "/cert.pem", key=certs + "/key.pem",
                           tls=ssl.create_default_context(cafile=certs + "/ca.pem"))


def parse_args():
    p = argparse.ArgumentParser(description="Graceful restarts under load: grace beside nginx.")
    p.add_argument("--restarts", type=int, default=100, help="restart rounds (default 100)")
    p.add_argument("--interval", type=float, default=0.4, help="seconds between rounds (0.4)")
    p.add_argument("--min-requests", type=int,
                   help="grace must answer at least this many requests (default 1000000, "
                        "scaled to --restarts: 100000 with --restarts 10)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.add_argument("--no-pin", action="store_true", help="no CPU pinning with taskset")
    p.add_argument("--timeout", type=int, default=900,
                   help="watchdog: kill everything and exit 2 after this many s (default 900)")
    a = p.parse_args()
    if a.restarts < 1 or a.interval <= 0 or a.timeout < 1:
        p.error("--restarts, --interval and --timeout must be positive")
    if a.min_requests is None:
        a.min_requests = 10000 * a.restarts
    return a


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main():
    args, begin = parse_args(), time.monotonic()
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        log("cannot become the child subreaper: old generations may be missed")
    taskset = shutil.which("taskset")
    pin = taskset if taskset and not args.no_pin and os.cpu_count() >= 2 else None
    procs, tmp = Procs(pin), tempfile.mkdtemp(prefix="grace-soak-")
    watchdog, keep = start_watchdog(args.timeout, tmp), False
    try:
        ctx = setup(args, procs, tmp)
        rep = {"restarts": args.restarts, "machine": machine(),
               "pinning": "servers CPU 0, wrk CPU 1" if pin else "none",
               "command": shlex.join([sys.executable] + sys.argv), "servers": {},
               "nginx_version": subprocess.run([ctx.nginx, "-v"], capture_output=True,
                                               text=True).stderr.split(":")[-1].strip()}
        rep["servers"]["grace"] = grace_phase(ctx)
        rep["binaries"] = ctx.binaries
        procs.stop_all()
        rep["servers"]["nginx"] = nginx_phase(ctx)
        procs.stop_all()
        rep["took_s"] = time.monotonic() - begin
        rep["verdict"] = verdict(args, rep["servers"]["grace"])
        print_report(rep)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rep, f, indent=1, ensure_ascii=False)
        keep = not rep["verdict"]["ok"]
        return 0 if rep["verdict"]["ok"] else 1
    except SoakError as e:
        log("FAILED: %s" % e)
        keep = True
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.stop_all()
        watchdog.cancel()
        if keep:
            log("logs kept in " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
