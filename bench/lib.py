"""lib.py -- what bench/run.py (`make bench`) and bench/soak.py (`make soak`)
share, beside the servers (bench/servers.py).

Processes. Every server and every wrk is started through one Procs, each in
a process group of its own (a server's restarts and workers stay in it) and
pinned with taskset. The script is the child subreaper, so the old processes
of grace's graceful restarts become its children and are reaped. Stopping a
server: SIGTERM to every live process of its group, SIGKILL to what is left
after 5 s.

Load. Wrk runs wrk with bench/wrk.lua, which reports in one line of JSON;
wrk never sends a request twice, so its error counts are what a client saw.

/proc. CPU time, memory and context switches of a process tree; the CPU time
the rest of the machine used meanwhile (Window), and a wait for it to be quiet.
"""

import collections
import ctypes
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("GRACE_BUILD_DIR") or os.path.join(ROOT, "build")
LUA = os.path.join(HERE, "wrk.lua")
CLK_TCK = os.sysconf("SC_CLK_TCK")
STOP_AFTER_S = 5.0
ERRORS = ("bad", "connect", "read", "write", "timeout", "status")  # wrk.lua's failure counts
NAME = os.path.splitext(os.path.basename(sys.argv[0]))[0]


class BenchError(Exception):
    """Setup failed: a tool missing, a server not starting or dying, wrk failing."""


def log(msg):
    print("[%s] %s" % (NAME, msg), file=sys.stderr, flush=True)


def which(name):
    return shutil.which(name) or next(
        (p for p in ("/usr/sbin/" + name, "/sbin/" + name) if os.access(p, os.X_OK)), None)


def find_tools(*names):
    found = {n: which(n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise BenchError("missing: %s (bash scripts/deps.sh bench installs them)"
                         % ", ".join(missing))
    return found


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100), None for no values."""
    v = sorted(x for x in values if x is not None)
    return v[max(0, -(-len(v) * p // 100) - 1)] if v else None


# ---------------------------------------------------------------- /proc

def stat(pid):
    """/proc/PID/stat as {state, ppid, pgrp, cpu: utime+stime+cutime+cstime
    ticks}, or None if the process is gone."""
    try:
        with open("/proc/%s/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    f = data[data.rfind(b")") + 2:].split()  # the name may hold spaces and ')'
    return {"state": f[0].decode(), "ppid": int(f[1]), "pgrp": int(f[2]),
            "cpu": sum(int(x) for x in f[11:15])}


def ps():
    table = {int(n): stat(n) for n in os.listdir("/proc") if n.isdigit()}
    return {pid: st for pid, st in table.items() if st is not None}


def alive(pid):
    st = stat(pid)
    return st is not None and st["state"] not in ("Z", "X")


def tree(root, table=None):
    """root and its descendants (zombies too), [] if root is gone."""
    table = ps() if table is None else table
    kids = collections.defaultdict(list)
    for pid, st in table.items():
        kids[st["ppid"]].append(pid)
    out, todo = [], ([root] if root in table else [])
    while todo:
        out.append(todo.pop())
        todo.extend(kids[out[-1]])
    return out


def tree_cpu_s(root):
    """CPU time of root's tree, counting children its members reaped."""
    table = ps()
    return sum(table[p]["cpu"] for p in tree(root, table)) / CLK_TCK


def tree_kib(root, fname, field):
    """Sum over root's tree of a kB field of /proc/PID/FNAME: VmRSS of status,
    or Pss of smaps_rollup (shared pages split between their users)."""
    total = 0
    for pid in tree(root):
        try:
            with open("/proc/%d/%s" % (pid, fname)) as f:
                total += next((int(l.split()[1]) for l in f if l.startswith(field + ":")), 0)
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
                    total += sum(int(l.split()[1]) for l in f if l.startswith(
                        ("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")))
            except OSError:
                pass
    return total


def own_cpu_s():
    """CPU time of this script and all it started: itself, the children it
    reaped, and its live descendants (with the children they reaped)."""
    t, table, me = os.times(), ps(), os.getpid()
    live = sum(table[p]["cpu"] for p in tree(me, table) if p != me)
    return t.user + t.system + t.children_user + t.children_system + live / CLK_TCK


def machine_busy_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK  # user nice system irq softirq


class Window:
    """From its creation on: the CPU time other programs used (the machine's
    busy time minus this script's and its descendants')."""

    def __init__(self):
        self.busy, self.own = machine_busy_s(), own_cpu_s()

    def other_s(self):
        return max(0.0, machine_busy_s() - self.busy - (own_cpu_s() - self.own))


def tree_fds(root):
    """Open file descriptors of root's tree (sockets, listeners, files)."""
    total = 0
    for pid in tree(root):
        try:
            total += len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            pass
    return total


def wait_quiet(timeout, threshold=0.10, window=0.5):
    """Wait (at most timeout s) until other programs use less than threshold
    of one CPU: builds and test suites would distort the comparison."""
    deadline, waited = time.monotonic() + timeout, False
    while timeout > 0:
        w = Window()
        time.sleep(window)
        other = w.other_s() / window
        if other < threshold:
            if waited:
                log("machine quiet again")
            return True
        if time.monotonic() >= deadline:
            log("WARNING: other programs still use %.0f%% of a CPU; measuring anyway"
                % (100 * other))
            return False
        if not waited:
            log("other programs use %.0f%% of a CPU; waiting up to %.0f s for quiet"
                % (100 * other, timeout))
            waited = True
    return True


def wait_for_quiet(ctx):
    """wait_quiet for a run of bench/run.py: --quiet-timeout s, but only 5 s
    while the machine was busy at the last wait (ctx.quiet): a machine busy
    for long is measured busy (other_cpu_s says how busy), not waited for
    run after run."""
    limit = ctx.args.quiet_timeout if ctx.quiet else min(5.0, ctx.args.quiet_timeout)
    ctx.quiet = ctx.args.quiet_timeout <= 0 or wait_quiet(limit)
    return ctx.quiet


def check_alive(srv):
    if not srv.alive():
        raise BenchError("%s died" % srv.name)


def quiet_run(ctx, srv, seconds, run):
    """One measured run of srv: run() -> its record, after wait_for_quiet;
    the record gets other_cpu_s (CPU time of other programs meanwhile),
    quiet_before and attempt. Repeated (at most --retries times) if other
    programs used more than 20 % of a CPU during its seconds, though the
    machine had been quiet before it."""
    a = ctx.args
    for attempt in range(1, a.retries + 2):
        check_alive(srv)
        quiet = wait_for_quiet(ctx)
        win = Window()
        r = run()
        r.update(other_cpu_s=win.other_s(), quiet_before=quiet, attempt=attempt)
        check_alive(srv)
        if a.quiet_timeout <= 0 or not quiet or r["other_cpu_s"] <= 0.2 * seconds \
                or attempt > a.retries:
            return r
        log("%s: other programs used %.2f CPU-s during the run; repeating it"
            % (srv.name, r["other_cpu_s"]))


# ---------------------------------------------------------------- processes

def raise_nofile():
    """Raise this process's RLIMIT_NOFILE to its hard limit (the servers
    started later inherit it); returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_list(spec):
    """The CPUs of a taskset -c list ("1", "0,2-3") as a set."""
    out = set()
    for part in str(spec).split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


class Procs:
    """Every process a script starts, and the orphans it inherits as the
    child subreaper (reaped, exit status in exits)."""

    def __init__(self, pin=True):
        self.taskset = which("taskset") if pin and (os.cpu_count() or 1) >= 2 else None
        self.popens, self.exits = {}, {}
        if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # CHILD_SUBREAPER
            log("cannot become the child subreaper: old grace processes are left to init")

    def spawn(self, cmd, cpu, **kw):
        """Start cmd in a session of its own, pinned to CPU list cpu (None: not)."""
        if self.taskset and cpu is not None:
            cmd = [self.taskset, "-c", str(cpu)] + cmd  # taskset execs: same PID
        try:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        except OSError as e:
            raise BenchError("cannot start %s: %s" % (cmd[0], e))
        self.popens[p.pid] = p
        return p

    def reap(self):
        for p in self.popens.values():
            if p.poll() is not None:
                self.exits.setdefault(p.pid, p.returncode)
        for pid, st in ps().items():
            if st["ppid"] == os.getpid() and pid not in self.popens:
                try:
                    got, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    continue
                if got == pid:
                    self.exits[pid] = os.waitstatus_to_exitcode(status)

    def stop(self, groups=None):
        """SIGTERM every live process of these process groups (default: all
        started), also those born meanwhile; SIGKILL after STOP_AFTER_S."""
        groups = set(self.popens) if groups is None else set(groups)
        sig, sent, start = signal.SIGTERM, set(), time.monotonic()
        while True:
            self.reap()
            live = {pid for pid, st in ps().items()
                    if st["pgrp"] in groups and st["state"] not in ("Z", "X")}
            if not live or time.monotonic() - start > STOP_AFTER_S + 5:
                return
            if sig == signal.SIGTERM and time.monotonic() - start > STOP_AFTER_S:
                log("still running %.0f s after SIGTERM: SIGKILL %s" % (STOP_AFTER_S, live))
                sig, sent = signal.SIGKILL, set()
            for pid in live - sent:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
                sent.add(pid)
            time.sleep(0.05)


# ---------------------------------------------------------------- wrk

class Wrk:
    """One wrk with wrk.lua: start(), then stop() (SIGINT: wrk reports) or
    wait() for the end of -d. check: None (count only) or (METHOD,
    BODY_BYTES, EXPECT) as wrk.lua takes them. openssl_conf: OPENSSL_CONF."""

    def __init__(self, url, connections, seconds, close=False, check=None, threads=1,
                 timeout_s=2.0, openssl_conf=None):
        self.argv = [which("wrk"), "-t%d" % threads, "-c%d" % connections, "-d%gs" % seconds,
                     "--timeout", "%gs" % timeout_s, "-s", LUA]
        self.argv += (["-H", "Connection: close"] if close else []) + [url]
        self.argv += ["--"] + [str(x) for x in check] if check else []
        self.seconds, self.connections, self.close = seconds, connections, close
        self.env = dict(os.environ, OPENSSL_CONF=openssl_conf) if openssl_conf else None
        self.proc = self.command = None

    def start(self, procs, cpu):
        self.proc = procs.spawn(self.argv, cpu, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=self.env)
        pin = ["taskset", "-c", str(cpu)] if procs.taskset and cpu is not None else []
        self.command = ("OPENSSL_CONF=wrk-openssl.cnf " if self.env else "") + shlex.join(
            pin + ["wrk"] + self.argv[1:]).replace(LUA, "bench/wrk.lua")
        return self

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait(30)

    def wait(self, timeout=None):
        """wrk's report: wrk.lua's fields, failed (the sum of ERRORS),
        command, output (wrk's own text); no report counts as failed."""
        try:
            out = self.proc.communicate(timeout=timeout or self.seconds + 60)[0]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out = self.proc.communicate()[0]
        out = out.decode("utf-8", "replace")
        m = re.search(r"^WRK_JSON (.*)$", out, re.M)
        if m is None:
            return {"requests": 0, "failed": 1, "command": self.command, "output": out,
                    "error": "no WRK_JSON from wrk (exit %s)" % self.proc.returncode}
        r = json.loads(m.group(1))
        r.update(failed=sum(r[k] for k in ERRORS), command=self.command,
                 output=out[:m.start()])
        return r


# ---------------------------------------------------------------- facts

def machine():
    def first(path, prefix):
        try:
            with open(path) as f:
                return next((l.split(prefix, 1)[1].strip() for l in f if l.startswith(prefix)),
                            "?")
        except OSError:
            return "?"
    mem = first("/proc/meminfo", "MemTotal:").split()[0]
    return {"nproc": os.cpu_count(), "cpu_model": first("/proc/cpuinfo", "model name").lstrip(
        ": "), "kernel": platform.release(), "os": first("/etc/os-release", "PRETTY_NAME=")
        .strip('"'), "mem_mib": int(mem) // 1024 if mem.isdigit() else None}


def versions(nginx, wrk):
    def first_line(*cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return {"nginx": first_line(nginx, "-v").split(": ")[-1],
            "wrk": " ".join(first_line(wrk, "-v").split()[:2]),
            "openssl": first_line(which("openssl") or "openssl", "version").split(" (")[0],
            "python": platform.python_version()}


def source_state():
    """The commit of the working tree and its uncommitted files under src/,
    include/ and examples/ (what a build of it contains beyond the commit)."""
    def git(*args):
        try:
            return subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True,
                                  text=True, timeout=10).stdout.rstrip("\n")
        except (OSError, subprocess.TimeoutExpired):
            return ""
    changed = git("status", "--porcelain", "--", "src", "include", "examples")
    return {"commit": git("rev-parse", "--short=12", "HEAD") or "?",
            "uncommitted": [l[3:] for l in changed.splitlines()]}


# ---------------------------------------------------------------- results

def results_path(out):
    """--out, or BUILD/bench-results/DATE.json."""
    if out:
        return os.path.abspath(out)
    return os.path.join(BUILD, "bench-results", time.strftime("%Y%m%d-%H%M%S.json"))


def save(results, path, link):
    """results to path as JSON; if link, latest.json beside it points at it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(path + ".tmp", path)
    if link:
        latest = os.path.join(os.path.dirname(path), "latest.json")
        if os.path.lexists(latest + ".tmp"):
            os.unlink(latest + ".tmp")
        os.symlink(os.path.basename(path), latest + ".tmp")
        os.replace(latest + ".tmp", latest)
