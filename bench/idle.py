"""idle.py -- the "idle" scenario of bench/run.py: what idle keep-alive
connections cost a server in memory.

One round, against a fresh server: its tree's RSS and PSS (lib.tree_kib);
then this script opens N connections (BATCH at a time, so the listen queue
never overflows), sends one GET / on each and reads the answer, which must
be a 200 with exactly the expected body and no "Connection: close"; then
nothing more is sent. Kept: the server's CPU time for all that, and each
connection's time from connect() to the end of its answer (BATCH at a time,
so a burst, not a latency under steady load); the RSS and PSS right after
the last answer ("answered"), and again after the hold (the scenario's
seconds: "idle"), since a server may free a connection's buffers only once
it has been idle for a while (grace: after IDLE_TRIM_MS, 1 s,
src/engine.h); the server's CPU time while they were idle, and a check that
the server closed none of them. Then it closes them all, waits until the
server's descriptors are back where they were, and takes the RSS and PSS a
last time ("after"): how much of that memory the server gave back.

The client is Python sockets in this process, its main thread pinned to the
client CPU meanwhile. A failure of any connection (refused, reset, closed,
no answer, a wrong answer) is an error (BenchError), never a number.
"""

import errno
import os
import re
import select
import selectors
import socket
import time

from lib import BenchError, cpu_list, log, percentile, tree_cpu_s, tree_fds, tree_kib

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BATCH = 500            # connections opened at once (somaxconn is 4096 here)
ANSWER_TIMEOUT_S = 10  # per batch
SETTLE_S = 0.5         # before each memory reading
CLOSED_TIMEOUT_S = 10  # for the server to close its side after the client closed


def check_answer(buf, body):
    """None while the answer is incomplete, True if it is a 200 with body
    and no Connection: close; else what is wrong with it."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None if len(buf) < 16384 else "no end of the header in 16 KiB"
    head = bytes(buf[:end]).decode("latin-1")
    if not head.startswith("HTTP/1.1 200 "):
        return "answered %r" % head.split("\r\n")[0]
    if re.search(r"^connection:\s*close", head, re.I | re.M):
        return "answered with Connection: close"
    m = re.search(r"^content-length:\s*(\d+)", head, re.I | re.M)
    if m is None:
        return "answered without a Content-Length"
    have, want = len(buf) - end - 4, int(m.group(1))
    if have < want:
        return None
    if have > want or bytes(buf[end + 4:]) != body:
        return "answered the body %r" % bytes(buf[end + 4:])[:40]
    return True


def step(sel, s, mask, bufs, body):
    """One readiness event of a connection being opened: send the request
    once connected, then read the answer. Returns True once it is complete."""
    if mask & selectors.EVENT_WRITE:
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise BenchError("connect: %s" % os.strerror(err))
        if s.send(REQUEST) != len(REQUEST):  # an empty socket buffer takes 35 bytes
            raise BenchError("short send")
        sel.modify(s, selectors.EVENT_READ)
        return False
    try:
        data = s.recv(4096)
    except OSError as e:
        raise BenchError("read: %s" % e.strerror)
    if not data:
        raise BenchError("closed before answering (%d bytes read)" % len(bufs[s]))
    bufs[s] += data
    ok = check_answer(bufs[s], body)
    if ok is None:
        return False
    if ok is not True:
        raise BenchError(ok)
    sel.unregister(s)
    return True


def open_batch(port, n, body, socks, times):
    """n more connections, each answered once; appended to socks, and to
    times the seconds from each one's connect() to the end of its answer."""
    sel, bufs, deadline = selectors.DefaultSelector(), {}, time.monotonic() + ANSWER_TIMEOUT_S
    began = {}
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            socks.append(s)
            began[s] = time.monotonic()
            err = s.connect_ex(("127.0.0.1", port))
            if err not in (0, errno.EINPROGRESS):
                raise BenchError("connect: %s" % os.strerror(err))
            bufs[s] = bytearray()
            sel.register(s, selectors.EVENT_WRITE)
        left = n
        while left:
            events = sel.select(max(0.0, deadline - time.monotonic()))
            if not events:
                raise BenchError("%d of %d connections unanswered after %d s"
                                 % (left, n, ANSWER_TIMEOUT_S))
            for key, mask in events:
                if step(sel, key.fileobj, mask, bufs, body):
                    times.append(time.monotonic() - began[key.fileobj])
                    left -= 1
    finally:
        sel.close()


def open_idle(port, n, body, cpus):
    """n connections to port, each answered once with body, then left idle;
    opened from this thread pinned to cpus, BATCH at a time. Returns (the
    sockets, each one's seconds from connect() to the end of its answer).
    On any failure all are closed and BenchError says how many had been
    answered."""
    socks, times, pinned = [], [], os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, cpus)
        while len(socks) < n:
            open_batch(port, min(BATCH, n - len(socks)), body, socks, times)
        return socks, times
    except BenchError as e:
        close_all(socks)
        raise BenchError("idle connection %d of %d: %s" % (len(socks), n, e))
    finally:
        os.sched_setaffinity(0, pinned)


def count_closed(socks):
    """How many of socks the server closed (or sent anything on)."""
    ep = select.epoll()
    try:
        for s in socks:
            ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        return len(ep.poll(0, len(socks)))
    finally:
        ep.close()


def close_all(socks):
    for s in socks:
        s.close()
    del socks[:]


def memory(srv, mem, when, settle=SETTLE_S):
    """The tree's RSS, PSS and descriptors into mem["rss_kib"][when] etc."""
    time.sleep(settle)
    mem["rss_kib"][when] = tree_kib(srv.pgid, "status", "VmRSS")
    mem["pss_kib"][when] = tree_kib(srv.pgid, "smaps_rollup", "Pss")
    mem["fds"][when] = tree_fds(srv.pgid)


def measure(ctx, sc, srv, n):
    """One round of the idle scenario against srv (fresh): the record."""
    hold = ctx.plan[sc.name][0]
    r = {"connections": n, "batch": BATCH, "hold_s": hold, "rss_kib": {}, "pss_kib": {},
         "fds": {}}
    memory(srv, r, "before")
    t0, cpu_open = time.monotonic(), tree_cpu_s(srv.pgid)
    socks, times = open_idle(srv.port, n, sc.body, cpu_list(ctx.args.client_cpu))
    try:
        r["open_s"], cpu0 = time.monotonic() - t0, tree_cpu_s(srv.pgid)
        r["open_cpu_s"] = cpu0 - cpu_open
        r["answer_ms"] = {"p50": percentile(times, 50) * 1e3, "p99": percentile(times, 99) * 1e3,
                          "max": max(times) * 1e3}
        memory(srv, r, "answered", 0)
        time.sleep(max(0.0, hold - SETTLE_S))
        memory(srv, r, "idle")
        r["idle_cpu_s"], closed = tree_cpu_s(srv.pgid) - cpu0, count_closed(socks)
        if closed:
            raise BenchError("%s closed %d of %d idle connections" % (srv.name, closed, n))
    finally:
        close_all(socks)
    deadline = time.monotonic() + CLOSED_TIMEOUT_S
    while tree_fds(srv.pgid) > r["fds"]["before"] + 16 and time.monotonic() < deadline:
        time.sleep(0.05)
    memory(srv, r, "after")
    rss = r["rss_kib"]
    log("%s: %d connections: RSS %.1f MiB before, %.1f just answered (%.2f KiB each), %.1f "
        "idle %g s later (%.2f KiB each), %.1f after closing them; opened in %.2f s, p99 %.1f "
        "ms to an answer, server CPU %.2f s" % (
            srv.name, n, rss["before"] / 1024, rss["answered"] / 1024,
            (rss["answered"] - rss["before"]) / n, rss["idle"] / 1024, hold,
            (rss["idle"] - rss["before"]) / n, rss["after"] / 1024, r["open_s"],
            r["answer_ms"]["p99"], r["open_cpu_s"]))
    return r
