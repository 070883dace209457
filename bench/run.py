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
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from lib import (BUILD, BenchError, Procs, Window, Wrk, find_tools, log, machine, tree,
                 tree_cpu_s, tree_ctx_switches, tree_kib, versions, wait_quiet, which)
from servers import (BODY, HTTPS_BODY, NGINX_WORKERS, TLS13_SUITE, Grace, Nginx, make_certs,
                     private_copy, restart, wait_old)

# One row per scenario. kind "rounds": wrk against grace, then nginx, ROUNDS
# times for SECONDS each; kind "restart": restart-under-load, one run of
# SECONDS per server with both loads at once. keepalive, close: connections of
# a wrk that keeps them / opens a new one per request (Connection: close).
# body: what GET / answers, checked before measuring (and, in the restart run,
# in every answer).
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
    Scenario("restart-under-load", "restart", "http",  32,       8,    1,  20, 1,     BODY,
             "a graceful restart every second under load (grace: SIGUSR1 to the serving "
             "process; nginx: SIGHUP to the master, i.e. nginx -s reload)"),
]
EXAMPLES = {"http": "hello", "https": "https"}  # the grace example of each scheme
GROUPS = ("http", "https", "restart")
OLD_EXIT_S = 10.0  # how long old processes may take to exit after the load
QUICK = {"rounds": (1, 1), "restart": (5, 1)}  # BENCH_QUICK=1: seconds, rounds per kind


def group(sc):
    return "restart" if sc.kind == "restart" else sc.scheme


# ---------------------------------------------------------------- servers

def start_server(ctx, kind, sc, tag=""):
    """A fresh grace example or nginx for scenario sc (its scheme; GET / must
    answer its body), pinned to --server-cpu."""
    scheme, body, cpu = sc.scheme, sc.body, ctx.args.server_cpu
    certs = ctx.certs if scheme == "https" else None
    if kind == "nginx":
        return Nginx(ctx.procs, ctx.tmp, "nginx-%s%s" % (scheme, tag), ctx.tools["nginx"],
                     (scheme,), body, certs, cpu)
    exe, facts = private_copy(EXAMPLES[scheme], ctx.tmp)
    ctx.results["binaries"][EXAMPLES[scheme]] = facts
    args = ["--cert", certs.cert, "--key", certs.key] if certs else []
    # hello has no /pid: its admin page's status gives the PID
    pid_path = "/debug/admin/status" if scheme == "http" else "/pid"
    return Grace(ctx.procs, "grace-%s%s" % (scheme, tag), exe, args, scheme, body,
                 certs.tls if certs else None, pid_path, cpu)


def stop_server(ctx, srv):
    ctx.procs.stop([srv.pgid])


def check_alive(srv):
    if not srv.alive():
        raise BenchError("%s died" % srv.name)


# ---------------------------------------------------------------- rounds

def wrk_for(ctx, sc, srv, seconds, check=None, close=None):
    """The wrk command of a scenario against srv (close: a new connection per request)."""
    close = sc.close > 0 if close is None else close
    return Wrk("%s://127.0.0.1:%d/" % (sc.scheme, srv.port),
               (sc.kind == "rounds" and ctx.args.connections) or
               (sc.close if close else sc.keepalive), seconds, close, check,
               (sc.kind == "rounds" and ctx.args.threads) or sc.threads, ctx.args.wrk_timeout,
               ctx.certs.client_conf if sc.scheme == "https" else None)


def wait_for_quiet(ctx):
    """lib.wait_quiet, for 5 s only while the machine was busy at the last
    wait: a machine busy for long is measured busy (other_cpu_s says how
    busy), not waited for run after run."""
    limit = ctx.args.quiet_timeout if ctx.quiet else min(5.0, ctx.args.quiet_timeout)
    ctx.quiet = ctx.args.quiet_timeout <= 0 or wait_quiet(limit)
    return ctx.quiet


def measure(ctx, sc, srv, seconds):
    """One wrk run against srv with the /proc accounting of its tree; repeated
    if other programs used more than 2 x 10 % of a CPU meanwhile, though the
    machine had been quiet before it."""
    a = ctx.args
    for attempt in range(1, a.retries + 2):
        check_alive(srv)
        quiet = wait_for_quiet(ctx)
        w = wrk_for(ctx, sc, srv, seconds)
        cpu0, cs0, win = tree_cpu_s(srv.pgid), tree_ctx_switches(srv.pgid), Window()
        res = w.start(ctx.procs, a.client_cpu).wait()
        cpu1, cs1, other = tree_cpu_s(srv.pgid), tree_ctx_switches(srv.pgid), win.other_s()
        check_alive(srv)
        if "error" in res:
            raise BenchError("%s: %s\n%s" % (res["command"], res["error"], res["output"]))
        del res["output"], res["buckets"], res["bad_ms"]
        r = {"wrk": res, "cpu_s": cpu1 - cpu0, "ctx_switches": cs1 - cs0,
             "rss_kib": tree_kib(srv.pgid, "status", "VmRSS"),
             "pss_kib": tree_kib(srv.pgid, "smaps_rollup", "Pss"),
             "other_cpu_s": other, "quiet_before": quiet, "attempt": attempt}
        if a.quiet_timeout <= 0 or not quiet or other <= 0.2 * seconds or attempt > a.retries:
            return r
        log("%s: other programs used %.2f CPU-s during the run; repeating it"
            % (srv.name, other))


def run_rounds(ctx, sc, pair):
    """Warm-up, then the rounds of sc: grace, then nginx. One record per run."""
    a, runs = ctx.args, []
    seconds, rounds = ctx.plan[sc.name]
    for srv in pair:
        if a.warmup > 0:
            wrk_for(ctx, sc, srv, a.warmup).start(ctx.procs, a.client_cpu).wait()
    for rnd in range(1, rounds + 1):
        for srv in pair:
            r = measure(ctx, sc, srv, seconds)
            r.update(scenario=sc.name, server=srv.kind, round=rnd)
            runs.append(r)
            w = r["wrk"]
            log("%s round %d/%d %-5s %8.0f req/s  p99 %6.2f ms  cpu %5.2f s  %7.0f req/cpu-s  "
                "rss %5.1f MiB  errors %d  other %.2f cpu-s"
                % (sc.name, rnd, rounds, srv.kind, w["requests"] / w["duration_us"] * 1e6,
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


# ---------------------------------------------------------------- TLS

def s_client(ctx, port, conf=False, extra=(), send=b""):
    """`openssl s_client` (with wrk's OpenSSL configuration if conf):
    {protocol, suite, group, handshakes: ["New"|"Reused", ...]}."""
    cmd = [which("openssl") or "openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
           "-servername", "localhost", "-CAfile", ctx.certs.ca] + list(extra)
    env = dict(os.environ, OPENSSL_CONF=ctx.certs.client_conf) if conf else None
    try:
        out = subprocess.run(cmd, input=send, capture_output=True, timeout=15,
                             env=env).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": str(e)}
    hs = re.findall(r"^(New|Reused), (TLSv[\d.]+), Cipher is (\S+)", out, re.M)
    group = re.search(r"^(?:Server|Peer) Temp Key: ([^,\n]+)", out, re.M)
    if not hs:
        return {"error": out.strip()[-300:]}
    return {"protocol": hs[0][1], "suite": hs[0][2], "handshakes": [h[0] for h in hs],
            "group": group.group(1) if group else None}


def tls_check(ctx, pair):
    """What each server negotiates with a default OpenSSL client and with
    wrk's offer, and whether it resumes a TLS 1.3 session on a new connection
    (one GET saving the session, one offering it: "Reused" or "New")."""
    out, req = {}, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    for srv in pair:
        sess = os.path.join(ctx.tmp, "session-%s.pem" % srv.name)
        s_client(ctx, srv.port, True, ["-ign_eof", "-sess_out", sess], req)
        out[srv.kind] = {"default_client": s_client(ctx, srv.port),
                         "wrk_config": s_client(ctx, srv.port, True),
                         "resumption": s_client(ctx, srv.port, True,
                                                ["-ign_eof", "-sess_in", sess], req)}
        w = out[srv.kind]["wrk_config"]
        log("TLS %s with wrk's offer: %s %s %s" % (srv.kind, w.get("protocol"), w.get("suite"),
                                                   w.get("group")))
        if w.get("suite") != TLS13_SUITE:
            log("WARNING: %s did not negotiate %s with wrk's offer" % (srv.kind, TLS13_SUITE))
    return out


# ---------------------------------------------------------------- restart under load

def restart_run(ctx, sc, kind):
    """A fresh server under sc's two checking loads for SECONDS, restarted every
    --restart-interval s from 1 s on; returns the raw record of the run."""
    a, (seconds, _) = ctx.args, ctx.plan[sc.name]
    srv = start_server(ctx, kind, sc, "-restart")
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
    return {"server": kind, "t0_ms": round(t0 * 1e3), "seconds": seconds,
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
                   help="smoke run, not a measurement: 1 round of 1 s, a 5 s restart run")
    p.add_argument("--out", metavar="JSON", help="results file (default "
                   "BUILD/bench-results/DATE.json, and latest.json pointing at it)")
    p.add_argument("--rounds", type=int, help="rounds of each wrk scenario (table: 3)")
    p.add_argument("--duration", type=float, help="seconds per wrk run (table: 5)")
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
    p.add_argument("--perf", metavar="SCENARIO", help="also record grace with perf during "
                   "one more run of this scenario (a report next to the results file)")
    a = p.parse_args(argv)
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
    a.warmup = (0 if a.quick else 1) if a.warmup is None else a.warmup
    a.quiet_timeout = (10 if a.quick else 120) if a.quiet_timeout is None else a.quiet_timeout
    return a


def plan(a):
    """{scenario: (seconds, rounds)} after --quick and the overrides."""
    out = {}
    for s in a.selected:
        seconds, rounds = QUICK[s.kind] if a.quick else (s.seconds, s.rounds)
        if s.kind == "rounds":
            out[s.name] = (a.duration or seconds, a.rounds or rounds)
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
            ctx.results["restart"] += [restart_run(ctx, sc, k) for k in ("grace", "nginx")]
        return
    if name == "https":
        ctx.certs = make_certs(ctx.tmp)
    pair = [start_server(ctx, k, rows[0]) for k in ("grace", "nginx")]
    try:
        if name == "https":
            ctx.results["tls"] = tls_check(ctx, pair)
        for sc in rows:
            ctx.results["runs"] += run_rounds(ctx, sc, pair)
            if ctx.args.perf == sc.name:
                path = os.path.splitext(ctx.out)[0] + "-perf.txt"
                ctx.results["perf"] = perf_run(ctx, sc, pair[0], path)
    finally:
        ctx.procs.stop([s.pgid for s in pair])


def results_path(a):
    if a.out:
        return os.path.abspath(a.out)
    return os.path.join(BUILD, "bench-results", time.strftime("%Y%m%d-%H%M%S.json"))


def save(results, path, link):
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


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    if (os.cpu_count() or 1) < 2:
        log("only one CPU: wrk and the servers share it")
    ctx = argparse.Namespace(args=a, procs=None, tmp=tempfile.mkdtemp(prefix="grace-bench-"),
                             certs=None, out=results_path(a), quiet=True)
    begin = time.monotonic()
    try:
        ctx.tools, ctx.plan, ctx.procs = find_tools("wrk", "nginx", "taskset"), plan(a), Procs()
        ctx.results = {
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "quick": a.quick,
            "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
            "machine": machine(), "versions": versions(ctx.tools["nginx"], ctx.tools["wrk"]),
            "config": {"server_cpu": a.server_cpu, "client_cpu": a.client_cpu,
                       "warmup_s": a.warmup, "nginx_workers": NGINX_WORKERS},
            "scenarios": [dict(s._asdict(), body=s.body.decode(), seconds=ctx.plan[s.name][0],
                               rounds=ctx.plan[s.name][1]) for s in a.selected],
            "binaries": {}, "runs": [], "restart": []}
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
