#!/usr/bin/python3
"""report.py -- the tables and the restart plot of one results file of bench/run.py.

    bench/report.py RESULTS.json               tables as text; the plot (below)
    bench/report.py --markdown RESULTS.json    the same tables in Markdown
    bench/report.py --plot FILE.png RESULTS.json / --no-plot

Per wrk scenario: the median over the rounds of each figure, for grace (one
column per loop backend run) and nginx, and grace/nginx. The figure that
counts on a machine where one wrk thread is as fast as the server is
requests per server CPU-second (requests / user+sys CPU time of the server's
process tree). Then the TLS each server negotiated; TLS handshakes per
server CPU-second, full and resumed (https-resumed, openssl s_time); the
memory of idle connections (idle); and the restart-under-load run: requests
and failures as wrk saw them (it never sends a request twice), throughput
per 100 ms, and the time from each restart's trigger until a new process
answered a new connection. Last, a summary: every scenario in one table,
the figure that counts per server CPU-second (idle: also the memory of
10,000 idle connections) and the p99 latency, per server, with grace/nginx,
and which grace backends ran (and why not the others).

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


def run_label(r):
    """grace (BACKEND) or nginx; results of before the backends: grace."""
    return "%s (%s)" % (r["server"], r["backend"]) if r.get("backend") else r["server"]


def columns(runs):
    """{column: its runs}: grace per backend, then nginx."""
    cols = []
    for r in runs:
        if run_label(r) not in cols:
            cols.append(run_label(r))
    cols.sort(key=lambda c: c == "nginx")
    return {c: [r for r in runs if run_label(r) == c] for c in cols}


def medians(by, value):
    """{column: the median of value(run) over its runs}."""
    return {c: median([value(r) for r in rs]) for c, rs in by.items()}


def compare(runs, metrics):
    """A table of runs: per metric (label, format, better, value of a run)
    the median per server (grace's backends, then nginx) and each grace
    column / nginx. Returns (header, rows, {label: first grace/nginx ratio},
    {column: its runs})."""
    by = columns(runs)
    cols = list(by)
    graces = [c for c in cols if c != "nginx"] if "nginx" in cols else []
    header = [""] + cols + ["%s/nginx" % g for g in graces]
    rows, ratios = [], {}
    for label, f, better, value in metrics:
        med = medians(by, value)
        rat = [med[g] / med["nginx"] if better and med[g] is not None and med["nginx"] else None
               for g in graces]
        ratios[label] = rat[0] if rat else None
        rows.append([label] + [fmt(f, med[c]) for c in cols] +
                    ["%.2fx (%s is better)" % (x, better) if x is not None else "" for x in rat])
    return header, rows, ratios, by


def count_rows(by, n_ratios, items):
    """Rows of totals over the rounds: (label, value of a server's runs)."""
    return [[label] + [get(runs) for runs in by.values()] + [""] * n_ratios
            for label, get in items]


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
    header, rows, ratios, by = compare([r for r in res["runs"] if r["scenario"] == sc["name"]],
                                       METRICS)
    rows += count_rows(by, len(header) - 1 - len(by), [
        ("errors (all rounds)", lambda runs: sum(r["wrk"]["failed"] for r in runs)),
        ("rounds measured on a busy machine", busy)])
    return header, rows, ratios


def busy(runs):
    return sum(not r["quiet_before"] for r in runs)


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
    src = res.get("source")
    if src:
        rows.append(["source", "commit %s%s" % (src["commit"], ", with uncommitted changes to "
                                                 "%s" % ", ".join(src["uncommitted"])
                                                 if src["uncommitted"] else "")])
    if res.get("backends"):
        rows.append(["grace backends", backends_text(res["backends"])])
    return rows


def backends_text(b):
    run = ", ".join("%s (GRACE_BACKEND=%s)" % (k, k) for k in b["run"])
    others = ["%s: %s" % (k, "available, not asked for" if p["available"] else
                          "**not available**: " + p["why"])
              for k, p in b["probe"].items() if k not in b["run"]]
    return "; ".join(["run: " + run] + others)


def tls_rows(tls):
    def neg(d):
        return "%s %s, %s" % (d.get("protocol"), d.get("suite"), d.get("group")) \
            if "suite" in d else "error: " + d.get("error", "?")[-80:]
    return [[k, neg(r["default_client"]), neg(r["wrk_config"]),
             "yes" if r["resumption"].get("handshakes") == ["Reused"] else "no"]
            for k, r in tls.items()]


# ---------------------------------------------------------------- handshakes, idle

def per_cpu(r, mode):
    """Handshakes per server CPU-second of an s_time run; None for a -reuse
    run in which not every handshake was resumed (not a resumption rate)."""
    if r["mode"] != mode or r["cpu_s"] <= 0 or (mode == "reuse" and
                                                 r["resumed"] < r["connections"]):
        return None
    return r["connections"] / r["cpu_s"]


def hs_metrics():
    out = []
    for mode, what in (("new", "full"), ("reuse", "resumed")):
        out += [
            ("**%s handshakes/CPU-second**" % what, "%.0f", "higher",
             lambda r, m=mode: per_cpu(r, m)),
            ("%s handshakes/s (one connection at a time)" % what, "%.0f", "higher",
             lambda r, m=mode: r["connections"] / r["wall_s"] if r["mode"] == m else None),
            ("%s: ms per connection (s_time's work included)" % what, "%.3f", "lower",
             lambda r, m=mode: r["wall_s"] * 1e3 / r["connections"] if r["mode"] == m else None),
            ("%s: server CPU-seconds" % what, "%.2f", None,
             lambda r, m=mode: r["cpu_s"] if r["mode"] == m else None),
            ("%s: p50 latency (ms), latency client" % what, "%.3f", "lower",
             lambda r, m=mode: hs_latency(r, m, "p50")),
            ("**%s: p99 latency (ms)**, latency client" % what, "%.3f", "lower",
             lambda r, m=mode: hs_latency(r, m, "p99"))]
    return out


def hs_latency(r, mode, q):
    """A percentile of the latency sample after an s_time run (tls.latency);
    None for a -reuse sample in which not every handshake resumed."""
    lat = r.get("latency_ms")
    if r["mode"] != mode or not lat or (mode == "reuse" and
                                        lat["resumed"] < lat["connections"]):
        return None
    return lat[q]


def handshake_rows(res, sc):
    runs = [r for r in res["handshakes"] if r["scenario"] == sc["name"]]
    header, rows, ratios, by = compare(runs, hs_metrics())

    def resumed(rs):
        rs = [r for r in rs if r["mode"] == "reuse"]
        got, n = sum(r["resumed"] for r in rs), sum(r["connections"] for r in rs)
        return "%d of %d%s" % (got, n, "" if got == n else ": **does not resume**")
    rows += count_rows(by, len(header) - 1 - len(by), [
        ("s_time -reuse: handshakes resumed (all rounds)", resumed),
        ("s_time -new: handshakes resumed (all rounds; must be 0)",
         lambda rs: sum(r["resumed"] for r in rs if r["mode"] == "new")),
        ("latency client: connections timed per run", lambda rs: next(
            (r["latency_ms"]["connections"] for r in rs if r.get("latency_ms")), "-")),
        ("latency client -reuse: resumed (all rounds)", lambda rs: resumed_lat(rs)),
        ("other programs CPU-s, median", lambda rs: fmt("%.2f", median(
            [r["other_cpu_s"] for r in rs]))),
        ("runs measured on a busy machine", busy)])
    return header, rows, ratios


def resumed_lat(rs):
    lat = [r["latency_ms"] for r in rs if r["mode"] == "reuse" and r.get("latency_ms")]
    if not lat:
        return "-"
    got, n = sum(x["resumed"] for x in lat), sum(x["connections"] for x in lat)
    return "%d of %d%s" % (got, n, "" if got == n else ": **does not resume**")


def mib(what, when):
    return lambda r: r[what][when] / 1024


def per_conn(what, when):
    return lambda r: (r[what][when] - r[what]["before"]) / r["connections"]


def given_back(r):
    rss = r["rss_kib"]
    grown = max(rss["answered"], rss["idle"]) - rss["before"]
    return 100.0 * (max(rss["answered"], rss["idle"]) - rss["after"]) / grown if grown > 0 \
        else None


def per_10k(what, when):
    """MiB the server grew by, scaled to 10,000 connections."""
    return lambda r: (r[what][when] - r[what]["before"]) / 1024 * 10000 / r["connections"]


def idle_per_cpu(r):
    cpu = r.get("open_cpu_s")
    return r["connections"] / cpu if cpu else None


def answer_ms(q):
    return lambda r: (r.get("answer_ms") or {}).get(q)


IDLE_METRICS = [
    ("**memory of 10,000 idle connections: RSS growth (MiB)**", "%.2f", "lower",
     per_10k("rss_kib", "idle")),
    ("memory of 10,000 idle connections: PSS growth (MiB)", "%.2f", "lower",
     per_10k("pss_kib", "idle")),
    ("RSS before (MiB)", "%.1f", None, mib("rss_kib", "before")),
    ("RSS just after the last answer (MiB)", "%.1f", "lower", mib("rss_kib", "answered")),
    ("RSS per connection just answered (KiB)", "%.2f", "lower", per_conn("rss_kib", "answered")),
    ("RSS with them idle (MiB)", "%.1f", "lower", mib("rss_kib", "idle")),
    ("PSS with them idle (MiB)", "%.1f", "lower", mib("pss_kib", "idle")),
    ("**RSS per idle connection (KiB)**", "%.2f", "lower", per_conn("rss_kib", "idle")),
    ("PSS per idle connection (KiB)", "%.2f", "lower", per_conn("pss_kib", "idle")),
    ("RSS after closing them (MiB)", "%.1f", "lower", mib("rss_kib", "after")),
    ("memory given back (% of the RSS growth)", "%.0f %%", None, given_back),
    ("server CPU-s while they were idle", "%.3f", None, lambda r: r["idle_cpu_s"]),
    ("s to open them and get each answer", "%.2f", None, lambda r: r["open_s"]),
    ("server CPU-s to accept and answer them", "%.3f", None, lambda r: r.get("open_cpu_s")),
    ("**connections accepted and answered/CPU-second**", "%.0f", "higher", idle_per_cpu),
    ("connect to answer, p50 (ms)", "%.2f", "lower", answer_ms("p50")),
    ("**connect to answer, p99 (ms)**", "%.2f", "lower", answer_ms("p99")),
    ("other programs CPU-s", "%.2f", None, lambda r: r["other_cpu_s"]),
]


def idle_rows(res, sc):
    header, rows, ratios, by = compare(
        [r for r in res["idle"] if r["scenario"] == sc["name"]], IDLE_METRICS)
    rows += count_rows(by, len(header) - 1 - len(by),
                       [("rounds measured on a busy machine", busy)])
    return header, rows, ratios


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
    f = {run_label(r): restart_facts(r) for r in runs}
    r = {run_label(x): x for x in runs}
    keys = sorted(f, key=lambda k: k == "nginx")

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
                         run_label(r), r["trigger"], r["interval_s"], f["requests"], f["failed"],
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


def wrk_table(res, sc, md, summary):
    header, rows, ratios = scenario_rows(res, sc)
    title = "%s: %s, median of %d rounds of %g s" % (sc["name"], sc["what"], sc["rounds"],
                                                    sc["seconds"])
    by = columns([r for r in res["runs"] if r["scenario"] == sc["name"]])
    summary.append((sc["name"], "requests/CPU-second", "%.0f", medians(by, METRICS[5][3]),
                    medians(by, METRICS[1][3])))
    cmd = next(r["wrk"]["command"] for r in res["runs"] if r["scenario"] == sc["name"])
    return [render(title, header, rows, md), command(cmd, md)]


def handshake_table(res, sc, md, summary):
    header, rows, ratios = handshake_rows(res, sc)
    title = "%s: %s, median of %d rounds of %g s each" % (sc["name"], sc["what"], sc["rounds"],
                                                         sc["seconds"])
    by = columns([r for r in res["handshakes"] if r["scenario"] == sc["name"]])
    for mode, what in (("new", "full"), ("reuse", "resumed")):
        summary.append(("%s, %s handshake" % (sc["name"], what), "handshakes/CPU-second", "%.0f",
                        medians(by, lambda r, m=mode: per_cpu(r, m)),
                        medians(by, lambda r, m=mode: hs_latency(r, m, "p99"))))
    cmds = []
    for mode in ("new", "reuse"):
        cmds += [command(r["command"], md) for r in res["handshakes"]
                 if r["scenario"] == sc["name"] and r["mode"] == mode][:1]
    return [render(title, header, rows, md)] + cmds


def idle_table(res, sc, md, summary):
    header, rows, ratios = idle_rows(res, sc)
    runs = [r for r in res["idle"] if r["scenario"] == sc["name"]]
    n = runs[0]["connections"] if runs else 0
    batch = runs[0].get("batch", 500) if runs else 0
    title = "%s: %d keep-alive connections, opened %d at a time, each answered once (GET /), " \
        "then idle for %g s; median of %d rounds, a fresh server each" % (
            sc["name"], n, batch, sc["seconds"], sc["rounds"])
    by = columns(runs)
    summary.append((sc["name"], "connections accepted and answered/CPU-second", "%.0f",
                    medians(by, idle_per_cpu), medians(by, answer_ms("p99"))))
    summary.append((sc["name"], "memory of 10,000 idle connections, MiB of RSS (PSS)",
                    "%.2f", medians(by, per_10k("rss_kib", "idle")), None,
                    medians(by, per_10k("pss_kib", "idle"))))
    return [render(title, header, rows, md)]


TABLES = {"rounds": wrk_table, "handshakes": handshake_table, "idle": idle_table}


def tls_table(res, md):
    return [render("TLS negotiated (openssl s_client)", ["server", "default client",
                   "wrk's offer", "TLS 1.3 session resumed on a new connection"],
                   tls_rows(res["tls"]), md, 4)]


def report(res, md):
    out = [render("Machine" if md else "machine and setup", ["", ""], setup_rows(res), md, 2)]
    summary, tls_done = [], not res.get("tls")
    for sc in res["scenarios"]:
        if sc["kind"] not in TABLES:
            continue
        if sc["kind"] == "handshakes" and not tls_done:
            out += tls_table(res, md)
            tls_done = True
        out += TABLES[sc["kind"]](res, sc, md, summary)
    if not tls_done:
        out += tls_table(res, md)
    if res["restart"]:
        keys, rows = restart_rows(res["restart"])
        r0 = res["restart"][0]
        out.append(render("restart-under-load: %g s of load, a restart every %g s"
                          % (r0["seconds"], r0["interval_s"]), [""] + keys, rows, md))
        out += [command(l["command"], md) for l in r0["loads"]]
    if summary:
        out.append(summary_table(summary, res, md))
    return "\n".join(out)


def summary_table(summary, res, md):
    """Every scenario in one table: the figure that counts (per server
    CPU-second; for idle also memory) and p99 latency, per server, and each
    grace column / nginx; then which backends ran."""
    cols = []
    for item in summary:
        cols += [c for c in item[3] if c not in cols]
    cols.sort(key=lambda c: c == "nginx")
    graces = [c for c in cols if c != "nginx"] if "nginx" in cols else []
    header = ["scenario", "figure"] + cols + ["%s/nginx" % g for g in graces] + \
        ["p99 ms: %s" % c for c in cols] + ["p99 %s/nginx" % g for g in graces]

    def ratio(med, g):
        return "%.2fx" % (med[g] / med["nginx"]) if med.get(g) is not None and med.get("nginx") \
            else "-"
    rows = []
    for item in summary:
        name, what, f, med, p99 = item[:5]
        other = item[5] if len(item) > 5 else None
        vals = [fmt(f, med.get(c)) + (" (%s)" % fmt(f, other.get(c)) if other else "")
                for c in cols]
        rows.append([name, what] + vals + [ratio(med, g) for g in graces] +
                    ([fmt("%.2f", p99.get(c)) for c in cols] + [ratio(p99, g) for g in graces]
                     if p99 else [""] * (len(cols) + len(graces))))
    if res["restart"]:
        f = {run_label(r): restart_facts(r) for r in res["restart"]}
        rows.append(["restart-under-load", "failed requests"] +
                    [str(f[c]["failed"]) if c in f else "-" for c in cols] + ["-"] * len(graces) +
                    ["restart: %s" % fmt("%.1f", f[c]["lat"][0]) if c in f else "-"
                     for c in cols] + ["-"] * len(graces))
    b = res.get("backends") or {}
    note = ("grace backends run: %s%s" % (", ".join(b.get("run", [])), "; " + b["note"]
                                           if b.get("note") else "")) if b else ""
    title = "summary: medians; per CPU-second and memory figures as measured, p99 of each " \
        "scenario's latency (restart-under-load: median restart latency), grace/nginx"
    return render(title, header, rows, md, 2) + ("\n" + note + "\n" if note else "")


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
