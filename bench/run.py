#!/usr/bin/python3
"""run.py -- `make bench`: grace beside nginx, measured; raw results to one JSON file.

Each scenario is a row of SCENARIOS. A "rounds" row runs wrk (bench/wrk.lua,
count only) against grace, then nginx, ROUNDS times for SECONDS each, after an
untimed warm-up; per run it keeps wrk's report (requests, duration, latency
percentiles, errors) and, from /proc, the user+sys CPU time of the server's
process tree, its RSS and PSS after the run, the context switches of all its
threads, and the CPU time other programs used meanwhile. Servers are pinned to
--server-cpu (0), wrk to --client-cpu (1). Before each run the script waits
(at most --quiet-timeout s; 5 s while the machine stays busy) for other
programs to leave the CPUs alone, and repeats (at most --retries times) a run
they disturbed after all.

The "restart" row loads a fresh grace (examples/hello), then a fresh nginx,
with two wrk loads checking every answer (KEEPALIVE connections, and CLOSE
connections with a new connection per request), and restarts it every
--restart-interval s: SIGUSR1 to grace's serving process, SIGHUP to nginx's
master (`nginx -s reload`). wrk never sends a request twice, so every
request the server drops is a failure. Per restart it times the trigger
until a new process answers a new connection (lib.restart).

The "https-resumed" row (kind "handshakes", bench/tls.py) times TLS
handshakes with `openssl s_time`, full (-new) and resumed (-reuse), per
server CPU-second; the "idle" row (bench/idle.py) opens --idle-connections
(10,000) keep-alive connections to a fresh server, each answered once, and
reads the server's RSS and PSS before, with them idle, and after closing
them.

The "https-resumed" row also times, after each s_time run, connections made
the same way by a Python client (tls.latency): p50/p99 per connection.

Backends: every grace server runs with GRACE_BACKEND=BACKEND in its
environment, once per backend run. First each of servers.BACKENDS is
probed: examples/hello started with it, and its log read for the line
saying which backend its event loops run on (servers.probe_backend; a build
without that line is epoll only). By default every backend that runs is
run, and the results say which did not and why; --backends LIST insists,
and one that does not run is an error. Every grace server started later is
checked the same way (servers.check_backend). Runs say which: server
"grace", backend "epoll".

HTTP servers: examples/hello and nginx answer GET / with "Hello, World!".
HTTPS: examples/https and nginx (one certificate from scripts/selfsigned.sh)
answer "哈罗！\\n"; wrk offers TLS 1.3 with one suite only (lib.make_certs),
and what each server negotiates is checked with `openssl s_client`.

Results: --out FILE (default BUILD/bench-results/DATE.json, and latest.json
pointing at it). bench/report.py FILE prints the tables and draws the plot.
Exit status: 0, or 1 if a server failed to start or died or wrk failed (never
on performance), 130 if interrupted.
"""

import argparse
import collections
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import idle
from lib import (BenchError, Procs, Window, Wrk, check_alive, find_tools, log, machine,
                 quiet_run, raise_nofile, results_path, save, source_state, tree, tree_cpu_s,
                 tree_ctx_switches, tree_kib, versions, wait_for_quiet, which)
from servers import (BACKENDS, BODY, HTTPS_BODY, NGINX_CONNECTIONS, NGINX_WORKERS, TLS13_SUITE,
                     Grace, Nginx, check_backend, choose, make_certs, private_copy, restart,
                     wait_old)
from tls import answer_bytes, latency, log_s_time, s_time, tls_check

# One row per scenario. kind "rounds": wrk against grace, then nginx, ROUNDS
# times for SECONDS each; kind "restart": restart-under-load, one run of
# SECONDS per server with both loads at once; kind "handshakes": s_time -new,
# then -reuse, for SECONDS each, ROUNDS times (one connection at a time);
# kind "idle": ROUNDS fresh servers each, KEEPALIVE idle connections held
# SECONDS. keepalive, close: connections of a wrk that keeps them / opens a
# new one per request (Connection: close). body: what GET / answers, checked
# before measuring (and, in the restart run and idle, in every answer).
Scenario = collections.namedtuple(
    "Scenario", "name kind scheme keepalive close threads seconds rounds body what")
SCENARIOS = [
    #        name                  kind       scheme   keepalive close thr  s  rounds body
    Scenario("http-keepalive",     "rounds",  "http",  50,       0,    1,   5, 3,     BODY,
             "HTTP/1.1 keep-alive, GET / answered with the 13-byte body"),
    Scenario("http-close",         "rounds",  "http",  0,        50,   1,   5, 3,     BODY,
             "a new TCP connection for every request (Connection: close)"),
    Scenario("https-keepalive",    "rounds",  "https", 50,       0,    1,   5, 3,     HTTPS_BODY,
             "HTTPS keep-alive, TLS 1.3 with %s, GET / answered with the 10-byte body"
             % TLS13_SUITE),
    Scenario("https-close",        "rounds",  "https", 0,        50,   1,   5, 3,     HTTPS_BODY,
             "a new TCP connection and TLS handshake for every request (Connection: close)"),
    # (5 rounds: one connection at a time, its rounds move by a tenth for
    # every server, and 3 left the grace/nginx ratio at 0.99x-1.13x run to
    # run; 5 and 7 rounds: 1.12x and 1.20x, docs/benchmarks.md)
    Scenario("https-resumed",      "handshakes", "https", 0,     1,    1,   5, 5,     HTTPS_BODY,
             "one connection after another, each a TLS 1.3 handshake and GET / HTTP/1.0: "
             "full (s_time -new) and resumed (s_time -reuse)"),
    Scenario("idle",               "idle",    "http",  10000,    0,    0,   5, 3,     BODY,
             "memory of 10,000 idle keep-alive connections, each answered once"),
    Scenario("restart-under-load", "restart", "http",  32,       8,    1,  20, 1,     BODY,
             "a graceful restart every second under load (grace: SIGUSR1 to the serving "
             "process; nginx: SIGHUP to the master, i.e. nginx -s reload)"),
]
EXAMPLES = {"http": "hello", "https": "https"}  # the grace example of each scheme
GROUPS = ("http", "https", "idle", "restart")
OLD_EXIT_S = 10.0  # how long old processes may take to exit after the load
# BENCH_QUICK=1: seconds, rounds per kind
QUICK = {"rounds": (1, 1), "restart": (5, 1), "handshakes": (1, 1), "idle": (3, 1)}


def group(sc):
    return sc.kind if sc.kind in ("restart", "idle") else sc.scheme


def label(srv):
    """grace (BACKEND) or nginx: the name of a server in logs and tables."""
    return "%s (%s)" % (srv.kind, srv.backend) if srv.backend else srv.kind


# ---------------------------------------------------------------- servers

def start_server(ctx, kind, sc, backend=None, tag=""):
    """A fresh grace example (with GRACE_BACKEND=backend) or nginx for
    scenario sc (its scheme; GET / must answer its body), pinned to
    --server-cpu."""
    scheme, body, cpu = sc.scheme, sc.body, ctx.args.server_cpu
    certs = ctx.certs if scheme == "https" else None
    if kind == "nginx":
        # idle: each worker must be able to hold every connection
        conns = max(NGINX_CONNECTIONS, ctx.args.idle_connections + 256) if sc.kind == "idle" \
            else NGINX_CONNECTIONS
        return Nginx(ctx.procs, ctx.tmp, "nginx-%s%s" % (scheme, tag), ctx.tools["nginx"],
                     (scheme,), body, certs, cpu, conns)
    exe, facts = private_copy(EXAMPLES[scheme], ctx.tmp)
    ctx.results["binaries"][EXAMPLES[scheme]] = facts
    args = ["--cert", certs.cert, "--key", certs.key] if certs else []
    # hello has no /pid: its admin page's status gives the PID
    pid_path = "/debug/admin/status" if scheme == "http" else "/pid"
    srv = Grace(ctx.procs, "grace-%s-%s%s" % (backend, scheme, tag), exe, args, scheme, body,
                certs.tls if certs else None, pid_path, cpu, backend)
    try:
        line = check_backend(srv)  # it runs the backend asked for
    except BenchError:
        stop_server(ctx, srv)
        raise
    ctx.results["backends"].setdefault("logged", {})[srv.name] = line
    return srv


def start_all(ctx, sc, tag=""):
    """Every server of scenario sc: grace per backend, then nginx."""
    servers = []
    try:
        for kind, backend in ctx.servers:
            servers.append(start_server(ctx, kind, sc, backend, tag))
    except BaseException:
        ctx.procs.stop([s.pgid for s in servers])
        raise
    return servers


def stop_server(ctx, srv):
    ctx.procs.stop([srv.pgid])


# ---------------------------------------------------------------- rounds

def wrk_for(ctx, sc, srv, seconds, check=None, close=None):
    """The wrk command of a scenario against srv (close: a new connection per request)."""
    close = sc.close > 0 if close is None else close
    return Wrk("%s://127.0.0.1:%d/" % (sc.scheme, srv.port),
               (sc.kind == "rounds" and ctx.args.connections) or
               (sc.close if close else sc.keepalive), seconds, close, check,
               (sc.kind == "rounds" and ctx.args.threads) or sc.threads, ctx.args.wrk_timeout,
               ctx.certs.client_conf if sc.scheme == "https" else None)


def wrk_run(ctx, sc, srv, seconds):
    """One wrk run against srv with the /proc accounting of its tree."""
    w = wrk_for(ctx, sc, srv, seconds)
    cpu0, cs0 = tree_cpu_s(srv.pgid), tree_ctx_switches(srv.pgid)
    res = w.start(ctx.procs, ctx.args.client_cpu).wait()
    cpu1, cs1 = tree_cpu_s(srv.pgid), tree_ctx_switches(srv.pgid)
    if "error" in res:
        raise BenchError("%s: %s\n%s" % (res["command"], res["error"], res["output"]))
    del res["output"], res["buckets"], res["bad_ms"]
    return {"wrk": res, "cpu_s": cpu1 - cpu0, "ctx_switches": cs1 - cs0,
            "rss_kib": tree_kib(srv.pgid, "status", "VmRSS"),
            "pss_kib": tree_kib(srv.pgid, "smaps_rollup", "Pss")}


def run_rounds(ctx, sc, servers):
    """Warm-up, then the rounds of sc: grace (per backend), then nginx. One
    record per run."""
    a, runs = ctx.args, []
    seconds, rounds = ctx.plan[sc.name]
    for srv in servers:
        if a.warmup > 0:
            wrk_for(ctx, sc, srv, a.warmup).start(ctx.procs, a.client_cpu).wait()
    for rnd in range(1, rounds + 1):
        for srv in servers:
            r = quiet_run(ctx, srv, seconds, lambda: wrk_run(ctx, sc, srv, seconds))
            r.update(scenario=sc.name, server=srv.kind, backend=srv.backend, round=rnd)
            runs.append(r)
            w = r["wrk"]
            log("%s round %d/%d %-16s %8.0f req/s  p99 %6.2f ms  cpu %5.2f s  %7.0f req/cpu-s  "
                "rss %5.1f MiB  errors %d  other %.2f cpu-s"
                % (sc.name, rnd, rounds, label(srv), w["requests"] / w["duration_us"] * 1e6,
                   w["latency_us"]["p99"] / 1e3, r["cpu_s"],
                   w["requests"] / r["cpu_s"] if r["cpu_s"] else 0, r["rss_kib"] / 1024,
                   w["failed"], r["other_cpu_s"]))
    return runs


def perf_run(ctx, sc, srv, path):
    """perf record -g on srv's processes during one wrk run of sc; perf
    report's top symbols and shared objects to path."""
    perf, seconds = which("perf"), ctx.plan[sc.name][0]
    if perf is None:
        log("perf not found (apt-get install linux-perf); no profile")
        return None
    data = os.path.join(ctx.tmp, "perf.data")
    rec = ctx.procs.spawn([perf, "record", "-g", "-o", data, "-p",
                           ",".join(str(p) for p in tree(srv.pgid)), "--", "sleep",
                           "%g" % (seconds + 0.5)], None, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    res = wrk_for(ctx, sc, srv, seconds).start(ctx.procs, ctx.args.client_cpu).wait()
    rec.wait(seconds + 60)
    with open(path, "w") as f:
        f.write("# perf record -g -p <%s> during %s: %.0f req/s\n"
                % (srv.name, res["command"], res["requests"] / res["duration_us"] * 1e6))
        for sort in ("dso,symbol", "dso"):
            p = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children", "-g",
                                "none", "--sort", sort], capture_output=True, text=True)
            f.write("\n# perf report --stdio --no-children -g none --sort %s\n" % sort)
            rows = [re.sub(r"(\s+-)+\s*$", "", l) for l in p.stdout.splitlines()
                    if l.strip() and not l.startswith("#")]
            f.write("\n".join(rows[:40]) + "\n")
    log("perf profile of %s under %s written to %s" % (srv.name, sc.name, path))
    return {"scenario": sc.name, "file": path}


# ---------------------------------------------------------------- handshakes, idle

def run_handshakes(ctx, sc, servers):
    """The rounds of sc: per server, s_time -new, then -reuse (bench/tls.py).
    One record per s_time run."""
    seconds, rounds = ctx.plan[sc.name]
    seconds = max(1, int(round(seconds)))  # s_time -time takes whole seconds
    expect = {srv.name: answer_bytes(ctx, srv, sc.body) for srv in servers}
    runs = []
    for rnd in range(1, rounds + 1):
        for srv in servers:
            for mode in ("new", "reuse"):
                r = quiet_run(ctx, srv, seconds + 1,
                              lambda: timed(ctx, srv, mode, seconds, expect[srv.name]))
                r.update(scenario=sc.name, server=srv.kind, backend=srv.backend, round=rnd)
                runs.append(r)
                log_s_time(sc, rnd, rounds, label(srv), r)
    return runs


def timed(ctx, srv, mode, seconds, expect):
    """One s_time run, then its latency sample (tls.latency), as one run for
    quiet_run: other programs disturbing either repeat both. s_time's record
    has the server's CPU time of the s_time run alone."""
    r = s_time(ctx, srv, mode, seconds, expect)
    r["latency_ms"] = latency(ctx, srv, mode, expect)
    return r


def run_idle(ctx, sc):
    """The rounds of the idle scenario: per round and server, a fresh one
    (bench/idle.py). One record per server and round."""
    rounds, n, runs = ctx.plan[sc.name][1], ctx.args.idle_connections, []
    for rnd in range(1, rounds + 1):
        for kind, backend in ctx.servers:
            srv = start_server(ctx, kind, sc, backend, "-idle%d" % rnd)
            try:
                quiet, win = wait_for_quiet(ctx), Window()
                r = idle.measure(ctx, sc, srv, n)
                check_alive(srv)
            finally:
                stop_server(ctx, srv)
            r.update(scenario=sc.name, server=kind, backend=backend, round=rnd,
                     other_cpu_s=win.other_s(), quiet_before=quiet)
            runs.append(r)
    return runs


# ---------------------------------------------------------------- restart under load

def restart_run(ctx, sc, kind, backend):
    """A fresh server under sc's two checking loads for SECONDS, restarted every
    --restart-interval s from 1 s on; returns the raw record of the run."""
    a, (seconds, _) = ctx.args, ctx.plan[sc.name]
    srv = start_server(ctx, kind, sc, backend, "-restart")
    try:
        wait_for_quiet(ctx)
        check = ("GET", 0, sc.body.decode())
        # wrk stops on SIGINT; -d is only a bound
        loads = [wrk_for(ctx, sc, srv, seconds + 30, check, close) for close in (False, True)]
        win = Window()
        for w in loads:
            w.start(ctx.procs, a.client_cpu)
        # the buckets before t0 are wrk connecting; t0 starts a bucket of wrk.lua's
        t0 = math.ceil((time.monotonic() + 1.0) * 10) / 10
        log("%s: %g s of load, a restart every %g s: %s" % (
            srv.name, seconds, a.restart_interval, " + ".join(w.command for w in loads)))
        recs, k = [], 1
        while k * a.restart_interval <= seconds - a.restart_interval / 2 + 1e-9:
            time.sleep(max(0.0, t0 + k * a.restart_interval - time.monotonic()))
            check_alive(srv)
            recs.append(restart([srv]))
            recs[-1]["t"] -= t0
            log_restart(srv, k, recs[-1])
            k += 1
        time.sleep(max(0.0, t0 + seconds - time.monotonic()))
        results = [w.stop() for w in loads]
        other, t_end = win.other_s(), time.monotonic()
        check_alive(srv)
        left = wait_old(ctx.procs, [srv], OLD_EXIT_S)
        old_s = time.monotonic() - t_end
    finally:
        stop_server(ctx, srv)
    for r, w in zip(results, loads):
        r.update(connections=w.connections, close=w.close)
        if "error" in r:
            raise BenchError("%s: %s\n%s" % (r["command"], r["error"], r["output"]))
        del r["output"]
    return {"server": kind, "backend": backend, "t0_ms": round(t0 * 1e3), "seconds": seconds,
            "interval_s": a.restart_interval, "loads": results, "restarts": recs,
            "old_left": left, "old_gone_s": None if left else old_s, "other_cpu_s": other,
            "trigger": "SIGUSR1 to the serving process" if kind == "grace"
            else "SIGHUP to the master (nginx -s reload)"}


def log_restart(srv, k, rec):
    log("%s restart %d at %5.2f s: new process answering after %s ms%s%s" % (
        srv.name, k, rec["t"], "%.1f" % rec["ms"] if rec["ms"] is not None else "-",
        ", 'is serving' logged after %.0f ms" % rec["log_ms"] if rec["log_ms"] else "",
        "".join(" ERROR: " + e for e in rec["errors"])))


# ---------------------------------------------------------------- main

def parse_args(argv):
    quick_env = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    p = argparse.ArgumentParser(
        description="Benchmark grace against nginx, side by side (SCENARIOS in this file); "
                    "write the raw results as JSON for bench/report.py.",
        epilog="scenarios: %s; groups: %s. BENCH_QUICK=1 in the environment is --quick."
               % (", ".join(s.name for s in SCENARIOS), ", ".join(GROUPS)))
    p.add_argument("--only", metavar="WHAT",
                   help="comma-separated scenarios or groups to run, e.g. --only restart")
    p.add_argument("--quick", action="store_true", default=quick_env,
                   help="smoke run, not a measurement: 1 round of 1 s (idle: 3 s held), "
                   "a 5 s restart run")
    p.add_argument("--out", metavar="JSON", help="results file (default "
                   "BUILD/bench-results/DATE.json, and latest.json pointing at it)")
    p.add_argument("--rounds", type=int, help="rounds of each wrk, s_time and idle scenario "
                   "(table: 3)")
    p.add_argument("--duration", type=float, help="seconds per wrk or s_time run (table: 5)")
    p.add_argument("--connections", type=int, help="connections of each wrk run (table: 50)")
    p.add_argument("--threads", type=int, help="threads of each wrk run (table: 1)")
    p.add_argument("--warmup", type=float, help="untimed seconds of load per server and "
                   "scenario before round 1 (default 1; 0 with --quick)")
    p.add_argument("--restart-seconds", type=float, help="seconds of load per server of "
                   "the restart run (table: 20; 5 with --quick)")
    p.add_argument("--restart-interval", type=float, default=1.0,
                   help="seconds between restarts (default 1)")
    p.add_argument("--wrk-timeout", type=float, default=2.0, help="wrk --timeout seconds")
    p.add_argument("--server-cpu", default="0", help="CPU list of the servers (taskset -c)")
    p.add_argument("--client-cpu", default="1", help="CPU list of wrk (taskset -c)")
    p.add_argument("--quiet-timeout", type=float, help="before each run, wait up to this "
                   "many s for other programs to leave the CPUs (default 120; 10 with --quick)")
    p.add_argument("--retries", type=int, default=2,
                   help="repeat a run disturbed by other programs at most this many times")
    p.add_argument("--backends", metavar="LIST", help="grace's loop backends to run, comma-"
                   "separated (GRACE_BACKEND: %s); an error if one does not run here. "
                   "Default: each that grace runs here (probed)" % ", ".join(BACKENDS))
    p.add_argument("--idle-connections", type=int, default=10000,
                   help="connections of the idle scenario (default 10000)")
    p.add_argument("--perf", metavar="SCENARIO", help="also record grace with perf during "
                   "one more run of this scenario (a report next to the results file)")
    a = p.parse_args(argv)
    check_args(p, a)
    return a


def check_args(p, a):
    """--only into a.selected, defaults, and p.error for what does not fit."""
    names = {s.name for s in SCENARIOS}
    words = [w.strip() for w in (a.only or ",".join(GROUPS)).split(",") if w.strip()]
    for w in words:
        if w not in names and w not in GROUPS:
            p.error("--only: unknown scenario or group %r" % w)
    a.selected = [s for s in SCENARIOS if s.name in words or group(s) in words]
    if a.perf and a.perf not in {s.name for s in a.selected if s.kind == "rounds"}:
        p.error("--perf: %r is not a selected wrk scenario" % a.perf)
    if a.restart_interval <= 0:
        p.error("--restart-interval must be positive")
    if a.idle_connections < 1:
        p.error("--idle-connections must be positive")
    a.backends = [b.strip() for b in a.backends.split(",") if b.strip()] if a.backends else None
    if a.backends == [] or any(b not in BACKENDS for b in a.backends or ()):
        p.error("--backends: a comma-separated list of %s" % ", ".join(BACKENDS))
    a.warmup = (0 if a.quick else 1) if a.warmup is None else a.warmup
    a.quiet_timeout = (10 if a.quick else 120) if a.quiet_timeout is None else a.quiet_timeout


def plan(a):
    """{scenario: (seconds, rounds)} after --quick and the overrides."""
    out = {}
    for s in a.selected:
        seconds, rounds = QUICK[s.kind] if a.quick else (s.seconds, s.rounds)
        if s.kind in ("rounds", "handshakes"):
            out[s.name] = (a.duration or seconds, a.rounds or rounds)
        elif s.kind == "idle":
            out[s.name] = (seconds, a.rounds or rounds)
        else:
            out[s.name] = (a.restart_seconds or seconds, 1)
        if out[s.name][0] <= 0 or out[s.name][1] < 1:
            raise BenchError("durations and rounds must be positive")
    return out


def run_group(ctx, name):
    rows = [s for s in ctx.args.selected if group(s) == name]
    if not rows:
        return
    if name == "restart":
        for sc in rows:
            ctx.results["restart"] += [restart_run(ctx, sc, k, b) for k, b in ctx.servers]
        return
    if name == "idle":
        for sc in rows:
            ctx.results["idle"] += run_idle(ctx, sc)
        return
    if name == "https":
        ctx.certs = make_certs(ctx.tmp)
    servers = start_all(ctx, rows[0])
    try:
        if name == "https":
            ctx.results["tls"] = tls_check(ctx, servers, label)
        for sc in rows:
            if sc.kind == "handshakes":
                ctx.results["handshakes"] += run_handshakes(ctx, sc, servers)
                continue
            ctx.results["runs"] += run_rounds(ctx, sc, servers)
            if ctx.args.perf == sc.name:
                path = os.path.splitext(ctx.out)[0] + "-perf.txt"
                ctx.results["perf"] = perf_run(ctx, sc, servers[0], path)
    finally:
        ctx.procs.stop([s.pgid for s in servers])


def choose_backends(ctx):
    ctx.results["backends"] = choose(ctx.procs, ctx.tmp, ctx.args.backends, ctx.args.server_cpu)
    ctx.servers = [("grace", b) for b in ctx.results["backends"]["run"]] + [("nginx", None)]


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    if (os.cpu_count() or 1) < 2:
        log("only one CPU: wrk and the servers share it")
    ctx = argparse.Namespace(args=a, procs=None, tmp=tempfile.mkdtemp(prefix="grace-bench-"),
                             certs=None, out=results_path(a.out), quiet=True)
    begin = time.monotonic()
    try:
        ctx.tools, ctx.plan, ctx.procs = find_tools("wrk", "nginx", "taskset"), plan(a), Procs()
        nofile = raise_nofile()  # the servers inherit it; idle needs 10,000 and more
        if any(s.kind == "idle" for s in a.selected) and nofile < a.idle_connections + 1024:
            raise BenchError("RLIMIT_NOFILE's hard limit %d is too low for %d idle connections"
                             % (nofile, a.idle_connections))
        ctx.results = {
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "quick": a.quick,
            "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
            "machine": machine(), "versions": versions(ctx.tools["nginx"], ctx.tools["wrk"]),
            "source": source_state(),
            "config": {"server_cpu": a.server_cpu, "client_cpu": a.client_cpu,
                       "warmup_s": a.warmup, "nginx_workers": NGINX_WORKERS,
                       "rlimit_nofile": nofile, "idle_connections": a.idle_connections},
            "scenarios": [dict(s._asdict(), body=s.body.decode(), seconds=ctx.plan[s.name][0],
                               rounds=ctx.plan[s.name][1]) for s in a.selected],
            "binaries": {}, "runs": [], "restart": [], "handshakes": [], "idle": []}
        choose_backends(ctx)
        for name in GROUPS:
            run_group(ctx, name)
        ctx.results["took_s"] = round(time.monotonic() - begin, 1)
        save(ctx.results, ctx.out, not a.out)
        log("results written to %s; tables: bench/report.py %s"
            % (ctx.out, os.path.relpath(ctx.out)))
        return 0
    except BenchError as e:
        log("FAILED: %s" % e)
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if ctx.procs:
            ctx.procs.stop()
        shutil.rmtree(ctx.tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
