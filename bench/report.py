#!/usr/bin/python3
"""report.py -- the tables and the restart plot of one results file of bench/run.py.

    bench/report.py RESULTS.json               tables as text; the plot (below)
    bench/report.py --markdown RESULTS.json    the same tables in Markdown
    bench/report.py --plot FILE.png RESULTS.json / --no-plot

Per wrk scenario: the median over the rounds of each figure, for grace and
nginx, and grace/nginx. The figure that counts on a machine where one wrk
thread is as fast as the server is requests per server CPU-second (requests
/ user+sys CPU time of the server's process tree). Then the TLS each server
negotiated, and the restart-under-load run: requests and failures as wrk saw
them (it never sends a request twice), throughput per 100 ms, and the time
from each restart's trigger until a new process answered a new connection.

The plot (matplotlib): one panel per server, good answers/s per 100 ms,
answers that failed the check, restart triggers, and when a new process
first answered. It goes to docs/restart-under-load.png unless the results
come from a --quick run (then only with --plot).
"""

import argparse
import json
import os
import re
import statistics
import sys

from lib import ERRORS, percentile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_PLOT = os.path.join(ROOT, "docs", "restart-under-load.png")

# label, format, better (for the ratio: "higher", "lower" or None), value of one run
METRICS = [
    ("requests/s", "%.0f", "higher",
     lambda r: r["wrk"]["requests"] / r["wrk"]["duration_us"] * 1e6),
    ("p99 latency (ms)", "%.3f", "lower", lambda r: r["wrk"]["latency_us"]["p99"] / 1e3),
    ("RSS (MiB)", "%.1f", "lower", lambda r: r["rss_kib"] / 1024),
    ("PSS (MiB)", "%.1f", "lower", lambda r: r["pss_kib"] / 1024),
    ("server CPU-seconds", "%.2f", None, lambda r: r["cpu_s"]),
    ("**requests/CPU-second**", "%.0f", "higher",
     lambda r: r["wrk"]["requests"] / r["cpu_s"] if r["cpu_s"] > 0 else None),
    ("context switches/request", "%.3f", None,
     lambda r: r["ctx_switches"] / r["wrk"]["requests"] if r["wrk"]["requests"] else None),
    ("other programs CPU-s", "%.2f", None, lambda r: r["other_cpu_s"]),
]


def fmt(f, v):
    return "-" if v is None else f % v


def median(values):
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else None


def render(title, header, rows, markdown, left=1):
    """One table: Markdown, or text in aligned columns (no ** marks). The
    first `left` columns are aligned left, the others right."""
    if markdown:
        out = ["### " + title, ""] if title else []
        out += ["| " + " | ".join(header) + " |",
                "|" + "---|" * left + "--:|" * (len(header) - left)]
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        return "\n".join(out) + "\n"
    cells = [[str(c).replace("**", "") for c in row] for row in
             ([header] if any(header) else []) + rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  " + "  ".join(c.ljust(w) if i < left else c.rjust(w)
                              for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in cells]
    return ("\n" + title + "\n" if title else "") + "\n".join(lines) + "\n"


# ---------------------------------------------------------------- wrk scenarios

def scenario_rows(res, sc):
    """Median of each metric over the rounds, and grace/nginx."""
    runs = {k: [r for r in res["runs"] if r["scenario"] == sc["name"] and r["server"] == k]
            for k in ("grace", "nginx")}
    rows, ratios = [], {}
    for label, f, better, value in METRICS:
        g, n = (median([value(r) for r in runs[k]]) for k in ("grace", "nginx"))
        ratio = g / n if better and g is not None and n else None
        ratios[label] = ratio
        rows.append([label, fmt(f, g), fmt(f, n), "%.2fx (%s is better)" % (ratio, better)
                     if ratio is not None else ""])
    rows.append(["errors (all rounds)"] + [sum(r["wrk"]["failed"] for r in runs[k])
                                           for k in ("grace", "nginx")] + [""])
    rows.append(["rounds measured on a busy machine"] + [sum(not r["quiet_before"] for r in
                                                           runs[k]) for k in ("grace", "nginx")]
                + [""])
    return rows, ratios


def setup_rows(res):
    m, v, c = res["machine"], res["versions"], res["config"]
    rows = [["CPUs", "%s (`nproc`)" % m["nproc"]], ["CPU model", m["cpu_model"]],
            ["kernel", "Linux " + m["kernel"]], ["OS", m["os"]],
            ["memory", "%s MiB" % m["mem_mib"]], ["nginx", "nginx/" + v["nginx"].split("/")[-1]],
            ["wrk", v["wrk"]], ["OpenSSL", v["openssl"]], ["Python", v["python"]]]
    for name, b in sorted(res["binaries"].items()):
        rows.append(["grace (%s)" % name, "`examples/%s`, built %s, sha256 %s..."
                     % (name, b["built"], b["sha256"][:16])])
    rows.append(["setup", "servers on CPU %s, wrk on CPU %s; nginx %d workers; results of %s, "
                 "%s s" % (c["server_cpu"], c["client_cpu"], c["nginx_workers"],
                           res["started"], res.get("took_s", "?"))])
    return rows


def tls_rows(tls):
    def neg(d):
        return "%s %s, %s" % (d.get("protocol"), d.get("suite"), d.get("group")) \
            if "suite" in d else "error: " + d.get("error", "?")[-80:]
    return [[k, neg(r["default_client"]), neg(r["wrk_config"]),
             "yes" if r["resumption"].get("handshakes") == ["Reused"] else "no"]
            for k, r in tls.items()]


# ---------------------------------------------------------------- restart run

def restart_facts(r):
    """What the table and the plot show of one server's restart run: wrk.lua's
    100 ms buckets (of CLOCK_MONOTONIC) that lie wholly within the run."""
    t0, end = r["t0_ms"], r["t0_ms"] + r["seconds"] * 1e3
    n = int(round(r["seconds"] * 10))
    buckets = [0] * n
    for load in r["loads"]:
        for k, count in load["buckets"].items():
            i = int((float(k) - t0) // 100)
            if t0 <= float(k) and float(k) + 100 <= end + 0.5:
                buckets[i] += count
    if buckets and (t0 % 100 or end % 100):  # unaligned t0: a partial bucket at each end
        buckets = buckets[:-1]
    bad = [0] * n
    for load in r["loads"]:
        for ms in load["bad_ms"]:
            i = int((ms - t0) // 100)
            if 0 <= i < n:
                bad[i] += 1
    lat = [x["ms"] for x in r["restarts"]]
    logged = [x["log_ms"] for x in r["restarts"]]
    return {"buckets": buckets, "bad": bad, "rates": [b * 10 for b in buckets],
            "requests": sum(l["requests"] for l in r["loads"]),
            "failed": sum(l["failed"] for l in r["loads"]),
            "by_kind": {e: sum(l[e] for l in r["loads"]) for e in ERRORS},
            "served": sum(1 for x in lat if x is not None),
            "lat": (median(lat), percentile(lat, 95), max([x for x in lat if x] or [None])),
            "log": (median(logged), percentile(logged, 95)),
            "errors": [e for x in r["restarts"] for e in x["errors"]]}


def restart_rows(runs):
    f = {r["server"]: restart_facts(r) for r in runs}
    r = {x["server"]: x for x in runs}
    keys = [k for k in ("grace", "nginx") if k in f]

    def row(label, get):
        return [label] + [get(k) for k in keys]
    kinds = lambda k: ", ".join("%d %s" % (n, e) for e, n in f[k]["by_kind"].items() if n)
    return keys, [
        row("restart trigger", lambda k: r[k]["trigger"]),
        row("restarts triggered", lambda k: len(r[k]["restarts"])),
        row("restarts after which a new process answered", lambda k: f[k]["served"]),
        row("requests (wrk, both loads)", lambda k: f[k]["requests"]),
        row("**failed requests**", lambda k: "**%d**%s" % (
            f[k]["failed"], " (%s)" % kinds(k) if f[k]["failed"] else "")),
        row("requests/s, median of the 100 ms buckets",
            lambda k: fmt("%.0f", median(f[k]["rates"]))),
        row("requests/s, lowest 100 ms bucket", lambda k: min(f[k]["rates"])),
        row("**restart latency** (trigger to the new process answering), median",
            lambda k: "**%s ms**" % fmt("%.1f", f[k]["lat"][0])),
        row("restart latency, p95 / max", lambda k: "%s / %s ms" % (
            fmt("%.1f", f[k]["lat"][1]), fmt("%.1f", f[k]["lat"][2]))),
        row("trigger to the log line \"new process N is serving\", median / p95",
            lambda k: "%s / %s ms" % (fmt("%.1f", f[k]["log"][0]), fmt("%.1f", f[k]["log"][1]))
            if f[k]["log"][0] is not None else "-"),
        row("restart errors", lambda k: len(f[k]["errors"])),
        row("last old process exited, after the load stopped", lambda k: "%.1f s" % r[k][
            "old_gone_s"] if r[k]["old_gone_s"] is not None else "%d left" % r[k]["old_left"]),
        row("CPU-s used by other programs during the run",
            lambda k: "%.2f" % r[k]["other_cpu_s"]),
    ]


def plot(runs, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not found (scripts/deps.sh bench installs it): no plot",
              file=sys.stderr)
        return False
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 3.9 * len(runs)), sharex=True,
                             squeeze=False)
    for ax, r in zip(axes[:, 0], runs):
        f = restart_facts(r)
        x = [(i + 0.5) / 10 for i in range(len(f["rates"]))]
        ax.plot(x, f["rates"], color="tab:blue", lw=1.3, label="good answers/s (per 100 ms)")
        top = max(f["rates"] + [1]) * 1.15
        ax.set_ylim(0, top)
        for i, rec in enumerate(r["restarts"]):
            ax.axvline(rec["t"], color="0.35", ls="--", lw=0.8,
                       label="restart triggered" if i == 0 else None)
        new = [rec["t"] + rec["ms"] / 1e3 for rec in r["restarts"] if rec["ms"] is not None]
        ax.plot(new, [top * 0.97] * len(new), ls="none", marker="v", color="tab:green",
                ms=6, label="a new process answers a new connection")
        bad = [xi for xi, b in zip(x, f["bad"]) if b]
        ax.plot(bad, [top * 0.03] * len(bad), ls="none", marker="x", color="red", ms=8,
                mew=2, label="answers that failed the check")
        lat = f["lat"]
        kinds = ", ".join("%s %d" % (e, n) for e, n in f["by_kind"].items() if n)
        ax.set_title("%s: %s every %g s\n%d requests, %d failed%s; trigger -> new process "
                     "answering: median %s ms, p95 %s ms, max %s ms" % (
                         r["server"], r["trigger"], r["interval_s"], f["requests"], f["failed"],
                         " (%s)" % kinds if kinds else "", fmt("%.1f", lat[0]),
                         fmt("%.1f", lat[1]), fmt("%.1f", lat[2])), fontsize=9.5)
        ax.set_ylabel("good answers/s")
        ax.grid(axis="y", alpha=0.3)
    loads = " + ".join("%d %s" % (l["connections"], "new-connection-per-request" if l["close"]
                                  else "keep-alive") for l in runs[0]["loads"])
    axes[-1, 0].set_xlabel("seconds (wrk: %s connections; failed = wrk's socket errors + "
                           "wrong answers; wrk never resends)" % loads)
    h, l = axes[0, 0].get_legend_handles_labels()
    fig.legend(h, l, loc="upper center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, 0.995),
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- main

def command(cmd, md):
    return ("    " if md else "  ") + re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", cmd) + "\n"


def report(res, md):
    out = [render("Machine" if md else "machine and setup", ["", ""], setup_rows(res), md, 2)]
    summary = []
    for sc in res["scenarios"]:
        if sc["kind"] != "rounds":
            continue
        rows, ratios = scenario_rows(res, sc)
        title = "%s: %s, median of %d rounds of %g s" % (sc["name"], sc["what"], sc["rounds"],
                                                        sc["seconds"])
        out.append(render(title, ["", "grace", "nginx", "grace/nginx"], rows, md))
        summary.append("%s %s" % (sc["name"], fmt("%.2fx", ratios["**requests/CPU-second**"])))
        cmd = next(r["wrk"]["command"] for r in res["runs"] if r["scenario"] == sc["name"])
        out.append(command(cmd, md))
    if res.get("tls"):
        out.append(render("TLS negotiated (openssl s_client)", ["server", "default client",
                   "wrk's offer", "TLS 1.3 session resumed on a new connection"],
                   tls_rows(res["tls"]), md, 4))
    if res["restart"]:
        keys, rows = restart_rows(res["restart"])
        r0 = res["restart"][0]
        out.append(render("restart-under-load: %g s of load, a restart every %g s"
                          % (r0["seconds"], r0["interval_s"]), [""] + keys, rows, md))
        out += [command(l["command"], md) for l in r0["loads"]]
    if summary:
        out.append("grace/nginx, requests per server CPU-second: " + ", ".join(summary) + "\n")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description="Tables and plot of a bench/run.py results file.")
    p.add_argument("results", help="the JSON file bench/run.py wrote")
    p.add_argument("--markdown", action="store_true", help="tables in Markdown")
    p.add_argument("--plot", metavar="PNG", help="where to draw the restart plot (default %s, "
                   "not for --quick results)" % os.path.relpath(DOC_PLOT, ROOT))
    p.add_argument("--no-plot", action="store_true", help="draw no plot")
    a = p.parse_args()
    with open(a.results) as f:
        res = json.load(f)
    sys.stdout.write(report(res, a.markdown))
    path = a.plot or (None if res["quick"] else DOC_PLOT)
    if res["restart"] and path and not a.no_plot and plot(res["restart"], path):
        print("plot: " + os.path.relpath(path), file=sys.stderr)
    elif res["restart"] and res["quick"] and not a.plot:
        print("(quick results: no plot drawn; give --plot FILE)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
