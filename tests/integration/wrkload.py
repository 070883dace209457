"""wrkload.py -- wrk, a real third-party load generator that never sends a request twice,
as a load for the restart tests.

wrk sends request after request on each connection and counts what a
client sees: a connection refused (connect), a connection closed without an
answer (read), a write that failed (write), a request unanswered for
--timeout (timeout). lua/check.lua also checks every answer: a 200 with the
exact expected body, or, for POST, the body sent, byte for byte ("bad"
otherwise). Nothing is resent and no closed connection is hidden: the sum of
those counts is what a user of wrk would call failed requests, and the
restart tests assert that it is zero.

A Wrk runs until stop() (SIGINT: wrk then reports) or max_seconds. While it
runs, progress() is the count of good answers so far (each wrk thread writes
its count to a file every 64 answers), so a test can see that the load flows
before and after a restart.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

LUA = Path(__file__).resolve().parent / "lua" / "check.lua"
WRK = shutil.which("wrk")
TIMEOUT_S = 5  # wrk --timeout: an answer slower than this is a failure


def need_wrk():
    if WRK is None:
        pytest.fail("wrk is not installed (scripts/deps.sh test installs it)")


class Wrk:
    """One wrk process.

    url          http:// or https:// URL (wrk does not check certificates)
    connections  keep-alive connections (with close=True: connections
                 opened one after another, one request each)
    close        send "Connection: close": a new connection per request
    method, body_bytes, expect: see lua/check.lua
    """

    def __init__(self, url, connections=16, close=False, method="GET", body_bytes=0,
                 expect=None, threads=1, max_seconds=120):  # fmt: skip
        need_wrk()
        self.url = url
        self.dir = tempfile.mkdtemp(prefix="grace-wrk-")
        argv = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max_seconds}s",
                f"--timeout={TIMEOUT_S}s", "-s", str(LUA)]  # fmt: skip
        if close:
            argv += ["-H", "Connection: close"]
        exp = "-" if expect is None else (expect.decode() if isinstance(expect, bytes) else expect)
        argv += [url, "--", method, str(body_bytes), exp, self.dir]
        self.argv = argv
        self.label = f"wrk -c{connections}{' close' if close else ''} {method} {url}"
        self.proc = None
        self.result = None
        self.output = ""

    def start(self):
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        return self

    def progress(self):
        n = 0
        for f in os.listdir(self.dir):
            try:
                n += int(Path(self.dir, f).read_text() or 0)
            except (OSError, ValueError):
                pass  # being rewritten: the next look sees it
        return n

    def wait_progress(self, more, timeout=30.0):
        """Wait until `more` good answers were added to what progress() says
        now; fails the test with wrk's output if not within timeout."""
        goal = self.progress() + more
        deadline = time.monotonic() + timeout
        while self.progress() < goal:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode("utf-8", "replace")
                pytest.fail(f"{self.label} exited early:\n{out}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.label}: fewer than {more} good answers in {timeout}s")
            time.sleep(0.02)

    def stop(self):
        """SIGINT (wrk stops and reports), wait, parse. Returns the result
        dict: requests, bad, connect, read, write, status, timeout, sample."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.output = out.decode("utf-8", "replace")
        shutil.rmtree(self.dir, ignore_errors=True)
        for line in self.output.splitlines():
            if line.startswith("WRK_JSON "):
                self.result = json.loads(line[len("WRK_JSON "):])
                return self.result
        pytest.fail(f"{self.label}: no report from wrk (exit {self.proc.returncode}):\n{self.output}")

    def failures(self):
        r = self.result
        return r["bad"] + r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]

    def summary(self):
        r = self.result
        return (f"{self.label}: {r['requests']} requests, bad {r['bad']}, connect {r['connect']}, "
                f"read {r['read']}, write {r['write']}, status {r['status']}, timeout "
                f"{r['timeout']}{', first bad: ' + r['sample'] if r['sample'] else ''}")  # fmt: skip

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Loads:
    """Several Wrk runs started and stopped together; always stopped (even
    when the test fails) when used as a context manager."""

    def __init__(self, *runs):
        self.runs = list(runs)

    def __enter__(self):
        for r in self.runs:
            r.start()
        return self

    def __exit__(self, *exc):
        for r in self.runs:
            r.kill()

    def wait_progress(self, more, timeout=30.0):
        for r in self.runs:
            r.wait_progress(more, timeout)

    def settle(self):
        """Let every request in flight be answered or time out, then stop:
        an answer that never comes counts as a timeout only after wrk's
        --timeout, so the runs go on that long after the last restart."""
        time.sleep(TIMEOUT_S + 1)  # not an assertion: wrk's own timeout must be able to fire
        return self.stop()

    def stop(self):
        for r in self.runs:
            r.stop()
        return self

    def report(self):
        return "\n".join(r.summary() for r in self.runs)

    def failures(self):
        return sum(r.failures() for r in self.runs)

    def requests(self):
        return sum(r.result["requests"] for r in self.runs)
