#!/usr/bin/env python3
"""callgraph.py -- which source file of src/ calls functions (or uses data)
defined in which other one, read from the object files themselves:
`nm --defined-only` and `nm -u` on each src/*.c.o of a CMake build.

    scripts/callgraph.py [BUILD_DIR]        (default: build)

Prints one line per file, "file -> files it uses", then every cycle (a
strongly connected group of files), and exits 1 if there is a cycle other
than the loop <-> connection pair engine.h declares on purpose
(workers.c <-> conn.c, conn_pool.c). docs/architecture.md shows its output.
"""
import os
import subprocess
import sys
from pathlib import Path

# The engine (engine.h): loops, accepting, connections and the backends
# call each other through grace__backend_t and the loop <-> connection hooks.
ENGINE = {"workers.c", "accept.c", "conn.c", "conn_io.c", "conn_pool.c", "loop_epoll.c",
          "loop_uring.c"}
ALLOWED = [ENGINE]


def objects(build):
    objs = {}
    for root, _, files in os.walk(build):
        for f in files:
            if f.endswith(".c.o") and "grace_objects.dir" in root and "/src" in root:
                objs[f[:-2]] = os.path.join(root, f)
    return objs


def nm(args, path):
    out = subprocess.run(["nm", *args, path], capture_output=True, text=True, check=True).stdout
    return [l.split()[-1] for l in out.splitlines() if l.strip()]


def graph(build):
    objs = objects(build)
    if not objs:
        sys.exit(f"callgraph: no src/*.c.o under {build} (build it first: make)")
    defined = {}
    for name, path in objs.items():
        for sym in nm(["--defined-only", "-g"], path):
            defined[sym] = name
    edges = {name: set() for name in objs}
    for name, path in objs.items():
        for sym in nm(["-u"], path):
            if sym in defined and defined[sym] != name:
                edges[name].add(defined[sym])
    return edges


def cycles(edges):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    build = Path(sys.argv[1] if len(sys.argv) > 1 else "build")
    edges = graph(build)
    for name in sorted(edges):
        print(f"{name:14} -> {', '.join(sorted(edges[name])) or '(nothing)'}")
    bad = []
    for comp in cycles(edges):
        ok = any(comp <= allowed for allowed in ALLOWED)
        print(f"cycle: {', '.join(sorted(comp))}{'  (allowed: the engine, engine.h)' if ok else ''}")
        if not ok:
            bad.append(comp)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
