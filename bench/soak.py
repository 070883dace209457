#!/usr/bin/python3
"""soak.py -- `make soak`: graceful restarts under full load, grace beside nginx.

What runs, on 127.0.0.1 only (servers on CPU 0, wrk on CPU 1):
  grace  the release build's examples/inflight (HTTP: GET /pid, POST /echo)
         and examples/https (HTTPS: GET / answers "哈罗！\\n"), both --port 0,
         each restarted --restarts times, one round every --interval s, by
         SIGUSR1 to its serving process. They run from copies made at the
         start, so a rebuild meanwhile cannot change what a new generation runs.
  nginx  one master with 2 workers, an HTTP and an HTTPS listener (same
         certificate) and the same routes -- except that /echo answers "ok":
         nginx cannot echo a body -- reloaded as often by SIGHUP.
Against each, the LOADS below (wrk, 1 thread each, bench/wrk.lua checking
every answer) run the whole time. After the last round the script waits until
every old grace generation (old nginx worker) has exited, lets the load run
1 s more, and stops wrk with SIGINT.

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
  dip                good answers of all loads per 100 ms; for a restart at t,
                     dip = 1 - (smallest bucket within [t, t+1 s)) / (median
                     bucket of the run); median and worst over all restarts.
  restart errors     a restart refused or failed, a probe that failed, an old
                     generation that exited non-zero or did not exit.
Verdict: grace needs 0 failed requests, 0 restart errors and at least
--min-requests requests (default 10000 per restart): exit 0, else 1. nginx is
reported, never judged. Exit 2: setup failed or the watchdog (--timeout)
fired; 130: interrupted.
"""

import argparse
import collections
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from lib import ERRORS, BenchError, Procs, Wrk, find_tools, log, machine, percentile, tree
from servers import (HTTPS_BODY, NGINX_WORKERS, Grace, Nginx, make_certs, private_copy, restart,
                     show, wait_old)

# name, scheme, path, connections, new connection per request, POST body bytes
LOADS = [("HTTP keep-alive GET /pid", "http", "/pid", 16, False, 0),
         ("HTTP new conn GET /pid", "http", "/pid", 4, True, 0),
         ("HTTP keep-alive POST /echo 1KiB", "http", "/echo", 4, False, 1024),
         ("HTTPS keep-alive GET /", "https", "/", 8, False, 0),
         ("HTTPS new conn GET /", "https", "/", 2, True, 0)]
OLD_EXIT_S, WARMUP_S = 40.0, 1.0
ROUTINE_RE = re.compile(r"received signal|server reloading|server (started|reloaded) listening"
                        r"|new process \d+ is serving|all servers shutdown|server shutting down")


def start_watchdog(seconds, tmp):
    """After `seconds`, SIGKILL every descendant, reap them, exit 2."""
    def fire():
        log("watchdog: still running after %g s; killing everything, exit 2 (logs in %s)"
            % (seconds, tmp))
        for _ in range(3):  # a grace restart may fork while we kill
            for pid in tree(os.getpid())[1:]:
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


# ---------------------------------------------------------------- phases

def start_loads(ctx, ports, check_body):
    loads = []
    for name, scheme, path, conns, close, body in LOADS:
        w = Wrk("%s://127.0.0.1:%d%s" % (scheme, ports[scheme], path), conns,
                ctx.args.timeout, close, ("POST" if body else "GET", body,
                                          "-" if check_body else "*"), timeout_s=5)
        loads.append((name, w.start(ctx.procs, 1)))
    return loads


def restart_rounds(args, name, servers):
    recs, t0 = [], time.monotonic()
    for k in range(args.restarts):
        time.sleep(max(0.0, t0 + k * args.interval - time.monotonic()))
        recs.append(restart(servers))
        for e in recs[-1]["errors"]:
            log("%s restart %d: %s" % (name, k + 1, e))
        if (k + 1) % 20 == 0 or k + 1 == args.restarts:
            log("%s: %d restarts done" % (name, k + 1))
    return recs


def old_errors(procs, servers):
    """Errors for old processes that do not exit (or, grace, exit non-zero)."""
    left = wait_old(procs, servers, OLD_EXIT_S)
    errors = ["%d old processes still running %.0f s after the last restart"
              % (left, OLD_EXIT_S)] if left else []
    return errors + ["old generation %d exited with status %d" % (p, procs.exits[p])
                     for s in servers if s.kind == "grace"
                     for p in s.generations if procs.exits.get(p, 0) != 0]


def run_phase(ctx, name, servers, ports, check_body):
    """The loads, the restart rounds, the wait for old processes, 1 s more."""
    log("%s: loads on; %d restarts every %g s" % (name, ctx.args.restarts, ctx.args.interval))
    t_start = time.monotonic()
    loads = start_loads(ctx, ports, check_body)
    try:
        time.sleep(WARMUP_S)
        for _, w in loads:
            if w.proc.poll() is not None:
                raise BenchError("wrk exited at once: %s" % w.command)
        recs = restart_rounds(ctx.args, name, servers)
        end_errors = old_errors(ctx.procs, servers)
        time.sleep(1.0)
        t_end = time.monotonic()
    finally:
        results = [dict(w.stop(), load=name) for name, w in loads]
    return summarize(results, recs, end_errors, t_start, t_end)


def grace_phase(ctx):
    def exe(name):
        path, facts = private_copy(name, ctx.tmp)
        ctx.binaries[name] = "%s sha256 %s" % (facts["source"], facts["sha256"][:16])
        return path
    servers = [Grace(ctx.procs, "inflight", exe("inflight")),
               Grace(ctx.procs, "https", exe("https"), ["--cert", ctx.certs.cert, "--key",
                     ctx.certs.key], "https", HTTPS_BODY, ctx.certs.tls)]
    r = run_phase(ctx, "grace", servers, {"http": servers[0].port, "https": servers[1].port},
                  True)
    r["server"] = "grace: examples/inflight (HTTP) + examples/https (HTTPS), SIGUSR1"
    r["generations"] = [s.generations for s in servers]
    if r["failed"] or r["restart_errors"]:
        r["failure_detail"] = failure_detail(r, servers)
    return r


def nginx_phase(ctx):
    srv = Nginx(ctx.procs, ctx.tmp, "nginx", ctx.nginx, ("http", "https"), HTTPS_BODY,
                ctx.certs)
    r = run_phase(ctx, "nginx", [srv], srv.ports, False)
    r["server"] = "nginx: %d workers, SIGHUP (reload); POST /echo: status checked only" \
        % NGINX_WORKERS
    return r


# ---------------------------------------------------------------- numbers

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


# ---------------------------------------------------------------- main

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


def soak(ctx, begin):
    ctx.wrk, ctx.nginx = find_tools("wrk", "nginx").values()
    ctx.certs = make_certs(ctx.tmp)
    rep = {"restarts": ctx.args.restarts, "machine": machine(),
           "pinning": "servers CPU 0, wrk CPU 1" if ctx.procs.taskset else "none",
           "command": shlex.join([sys.executable] + sys.argv), "servers": {},
           "nginx_version": subprocess.run([ctx.nginx, "-v"], capture_output=True,
                                           text=True).stderr.split(":")[-1].strip()}
    rep["servers"]["grace"] = grace_phase(ctx)
    rep["binaries"] = ctx.binaries
    ctx.procs.stop()
    rep["servers"]["nginx"] = nginx_phase(ctx)
    ctx.procs.stop()
    rep["took_s"] = time.monotonic() - begin
    rep["verdict"] = verdict(ctx.args, rep["servers"]["grace"])
    print_report(rep)
    if ctx.args.json:
        with open(ctx.args.json, "w") as f:
            json.dump(rep, f, indent=1, ensure_ascii=False)
    return rep["verdict"]["ok"]


def main():
    args, begin = parse_args(), time.monotonic()
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    ctx = argparse.Namespace(args=args, procs=Procs(pin=not args.no_pin), binaries={},
                             tmp=tempfile.mkdtemp(prefix="grace-soak-"))
    watchdog, keep = start_watchdog(args.timeout, ctx.tmp), False
    try:
        ok = soak(ctx, begin)
        keep = not ok
        return 0 if ok else 1
    except BenchError as e:
        log("FAILED: %s" % e)
        keep = True
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ctx.procs.stop()
        watchdog.cancel()
        if keep:
            log("logs kept in " + ctx.tmp)
        else:
            shutil.rmtree(ctx.tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
