"""Blocking handlers never stall the server (SPEC S3): with 50 /sleep
requests sleeping in their handlers, /pid still answers at once."""

import os
import re
import threading
import time

from conftest import RawConn, http, simple_get
from restarts import wait_in_flight

SLEEPERS = 50
SLEEP_MS = 5000


def test_fifty_sleepers_do_not_block_pid(servers):
    srv = servers.start("basic", "--port", "0", "--sleep-ms", str(SLEEP_MS))
    expected = f"{srv.pid}\n{srv.pid}\n".encode()

    sent = threading.Semaphore(0)
    done = []  # (index, status, body) or (index, exception)
    done_lock = threading.Lock()

    def sleeper(i):
        try:
            with RawConn(srv.port, timeout=10) as c:
                c.send(simple_get("/sleep"))
                sent.release()
                # 50 sleepers may run in a few rounds if grace caps its
                # worker threads; the bound leaves room for that.
                r = c.read_response(timeout=120)
                res = (i, r.status, r.body)
        except Exception as e:  # noqa: BLE001 - reported below
            sent.release()
            res = (i, e)
        with done_lock:
            done.append(res)

    threads = [threading.Thread(target=sleeper, args=(i,), daemon=True) for i in range(SLEEPERS)]
    for t in threads:
        t.start()
    for _ in range(SLEEPERS):
        assert sent.acquire(timeout=20), "could not send all /sleep requests"
    with done_lock:
        assert not done, f"a sleeper ended before /pid was asked: {done[:3]}"

    # All 50 are inside their handlers (the admin status counts requests in
    # flight), so /pid below competes with 50 blocked handlers.
    wait_in_flight(srv, srv.pid, n=SLEEPERS, timeout=30)

    r = http("GET", srv.url("/pid"), timeout=5)
    with done_lock:
        finished_before_pid = list(done)
    assert r.status_code == 200
    assert r.content == f"{srv.pid}\n".encode()
    # /pid was answered while the sleepers were still sleeping: it did not
    # queue behind them.
    assert not finished_before_pid, (
        f"/pid answered only after sleepers ended: {finished_before_pid[:3]}"
    )

    for t in threads:
        t.join(timeout=150)
    assert not any(t.is_alive() for t in threads), "sleepers still running"
    assert len(done) == SLEEPERS
    bad = [d for d in done if len(d) != 3 or d[1] != 200 or d[2] != expected]
    assert not bad, f"{len(bad)} bad /sleep answers, e.g. {bad[:3]}"


def test_after_a_handoff_the_loop_serves_what_it_had(servers):
    """One event loop: a keep-alive connection is open and has been served;
    a handler then blocks long enough (300 ms) for its loop to be handed to
    another thread, and when it is over the thread that ran it has nothing
    to do (a spare). The connection opened before the hand-off, and new
    ones, are still answered at once: with io_uring, the requests that
    thread submitted (the connection's receive, the listener's accept) can
    complete only in that thread."""
    srv = servers.start("basic", "--port", "0", "--sleep-ms", "300", env={"GRACE_LOOPS": "1"})
    expected_pid = f"{srv.pid}\n".encode()
    with RawConn(srv.port, timeout=5) as before:
        before.send(simple_get("/pid"))
        assert before.read_response().body == expected_pid
        with RawConn(srv.port, timeout=5) as sleeper:
            sleeper.send(simple_get("/sleep"))
            assert sleeper.read_response(timeout=10).status == 200
        for _ in range(3):
            before.send(simple_get("/pid"))
            r = before.read_response(timeout=5)
            assert (r.status, r.body) == (200, expected_pid)
        r = http("GET", srv.url("/pid"), timeout=5)
        assert (r.status_code, r.content) == (200, expected_pid)


def thread_wakeups():
    """{tid: voluntary context switches} of every thread of pid."""

    def of(pid):
        out = {}
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    m = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", f.read(), re.M)
                out[int(tid)] = int(m.group(1))
            except FileNotFoundError:  # (a thread that just exited)
                pass
        return out

    return of


def test_after_a_handoff_the_old_thread_sleeps(servers):
    """One event loop, a keep-alive connection served, then a handler blocks
    long enough (300 ms) for the loop to go to another thread. Afterwards,
    400 requests on that connection wake none of the threads that were
    there before (the monitor aside, which wakes on its own clock): with
    io_uring the requests the old loop thread had submitted (the
    connection's multishot receive, the listener's accept) completed
    through that thread -- woken for every request, a fifth of the loop's
    CPU -- until the new owner submitted them again."""
    srv = servers.start("basic", "--port", "0", "--sleep-ms", "300", env={"GRACE_LOOPS": "1"})
    wakeups = thread_wakeups()
    expected_pid = f"{srv.pid}\n".encode()
    with RawConn(srv.port, timeout=5) as c:
        c.send(simple_get("/pid"))
        assert c.read_response().body == expected_pid
        before = wakeups(srv.pid)
        with RawConn(srv.port, timeout=5) as sleeper:
            sleeper.send(simple_get("/sleep"))
            assert sleeper.read_response(timeout=10).status == 200
        assert len(wakeups(srv.pid)) > len(before), "no thread took the loop over"
        # The monitor: the old thread that wakes while nothing happens.
        a = wakeups(srv.pid)
        time.sleep(0.3)
        b = wakeups(srv.pid)
        ticking = {t for t in before if b.get(t, 0) - a.get(t, 0) >= 10}
        assert len(ticking) == 1, (a, b)
        start = wakeups(srv.pid)
        for _ in range(400):
            c.send(simple_get("/pid"))
            r = c.read_response(timeout=5)
            assert (r.status, r.body) == (200, expected_pid)
        end = wakeups(srv.pid)
    woken = {t: end.get(t, 0) - start.get(t, 0) for t in before if t not in ticking}
    assert max(woken.values()) < 100, f"threads from before the hand-off woken: {woken}"
