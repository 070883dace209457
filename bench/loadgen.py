#!/usr/bin/python3
"""Load generator with a time series, for bench/run.py's restart-under-load run.

wrk reports totals only; this one counts completed and failed requests per
time bucket (default 100 ms), so throughput and errors can be plotted across
restarts.  Plain HTTP/1.1 on loopback, GET PATH, asyncio, standard library
only.  Two kinds of clients run at once:

  * --keepalive N connections that send request after request on the same
    connection (reconnecting when the server answers "Connection: close");
  * --close M clients that open a new connection for every request
    ("Connection: close").

Failures follow RFC 9112 section 9.3.1: a request sent on a *reused*
keep-alive connection that the server closed before sending any byte of the
response (EOF or reset, on send or on receive) is retried once on a fresh
connection -- what HTTP clients do -- and counted as a retry, not a failure;
only if the retry fails too is it a failure.  Everything else is a failure:
an error on a fresh connection (refused, reset, EOF), a response cut short,
a status other than 200, a body other than --expect-body, or no answer
within --timeout seconds.

Time: the clients start sending at --start-at (a time.monotonic() value:
CLOCK_MONOTONIC, the same clock in every process of the machine) and stop
starting new requests at --start-at + --duration; requests in flight then
get --timeout to finish.  Bucket i covers [start + i*bucket, start +
(i+1)*bucket); a request is counted in the bucket in which it completed (or
failed).  The result is one JSON object on stdout:

  {"start": T0, "bucket_s": 0.1, "buckets": [[ok_keepalive, ok_close,
   failed, retried], ...], "totals": {...}, "failures": [{"t": seconds after
   T0, "kind": "keepalive"|"close", "error": "..."}, ...] (first 200)}

Usage: loadgen.py --port 8080 --keepalive 32 --close 8 --duration 20
"""

import argparse
import asyncio
import json
import math
import re
import sys
import time

CL_RE = re.compile(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*\r?$")
CONN_CLOSE_RE = re.compile(rb"(?im)^connection:[ \t]*close[ \t]*\r?$")


class EarlyClose(Exception):
    """The connection was closed (EOF or reset) before any response byte."""


class BadResponse(Exception):
    pass


class Stats:
    def __init__(self, start, duration, bucket):
        self.start, self.bucket = start, bucket
        self.n = int(math.ceil(duration / bucket)) + 1
        # ok_keepalive, ok_close, failed, retried
        self.buckets = [[0, 0, 0, 0] for _ in range(self.n)]
        self.failures = []
        self.totals = {"ok_keepalive": 0, "ok_close": 0, "failed": 0, "retried": 0,
                       "failed_keepalive": 0, "failed_close": 0, "connections": 0,
                       "late": 0}

    def _slot(self, now):
        i = int((now - self.start) / self.bucket)
        if i >= self.n:  # finished during the drain after the end
            self.totals["late"] += 1
            i = self.n - 1
        return self.buckets[max(i, 0)]

    def ok(self, kind):
        self._slot(time.monotonic())[0 if kind == "keepalive" else 1] += 1
        self.totals["ok_" + kind] += 1

    def fail(self, kind, err):
        now = time.monotonic()
        self._slot(now)[2] += 1
        self.totals["failed"] += 1
        self.totals["failed_" + kind] += 1
        if len(self.failures) < 200:
            self.failures.append({"t": round(now - self.start, 4), "kind": kind,
                                  "error": err})

    def retry(self):
        self._slot(time.monotonic())[3] += 1
        self.totals["retried"] += 1


def describe(e):
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    if isinstance(e, EarlyClose):
        return "closed before response: %s" % e
    name = type(e).__name__
    return "%s: %s" % (name, e) if str(e) else name


class Client:
    def __init__(self, args, stats):
        self.args, self.stats = args, stats
        host = "%s:%d" % (args.host, args.port)
        self.req_ka = ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (args.path, host)).encode()
        self.req_close = ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                          % (args.path, host)).encode()
        self.body = args.expect_body.encode() if args.expect_body is not None else None

    async def connect(self):
        self.stats.totals["connections"] += 1
        return await asyncio.open_connection(self.args.host, self.args.port)

    async def exchange(self, reader, writer, request):
        """Send request, read one response: (keep_open).  EarlyClose if the
        connection ends before any response byte; BadResponse otherwise."""
        try:
            writer.write(request)
            await writer.drain()
            data = await reader.read(65536)
        except (ConnectionResetError, BrokenPipeError) as e:
            raise EarlyClose(type(e).__name__)
        if not data:
            raise EarlyClose("EOF")
        while True:
            head_end = data.find(b"\r\n\r\n")
            if head_end >= 0:
                break
            chunk = await reader.read(65536)
            if not chunk:
                raise BadResponse("EOF inside the response head")
            data += chunk
        head = data[:head_end]
        if not head.startswith(b"HTTP/1.1 200 ") and not head.startswith(b"HTTP/1.0 200 "):
            raise BadResponse("status line %r" % head.split(b"\r\n", 1)[0][:60])
        m = CL_RE.search(head)
        if not m:
            raise BadResponse("no Content-Length")
        need = head_end + 4 + int(m.group(1))
        while len(data) < need:
            chunk = await reader.read(65536)
            if not chunk:
                raise BadResponse("EOF inside the body")
            data += chunk
        if len(data) > need:
            raise BadResponse("extra bytes after the response")
        if self.body is not None and data[head_end + 4:] != self.body:
            raise BadResponse("body %r" % data[head_end + 4:][:60])
        return CONN_CLOSE_RE.search(head) is None

    @staticmethod
    def close(writer):
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass

    async def one(self, reader, writer, request):
        return await asyncio.wait_for(self.exchange(reader, writer, request), self.args.timeout)

    async def keepalive_worker(self, end):
        st = self.stats
        reader = writer = None
        reused = False
        while time.monotonic() < end:
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(self.connect(), self.args.timeout)
                    reused = False
                keep = await self.one(reader, writer, self.req_ka)
                st.ok("keepalive")
                reused = True
                if not keep:
                    self.close(writer)
                    writer = None
                continue
            except EarlyClose as e:
                self.close(writer)
                writer = None
                if not reused:
                    st.fail("keepalive", describe(e))
                    continue
                first = describe(e)
            except Exception as e:  # timeout, refused, reset mid-response, bad response
                self.close(writer)
                writer = None
                st.fail("keepalive", describe(e))
                continue
            # RFC 9112 9.3.1: retry once on a fresh connection
            st.retry()
            try:
                reader, writer = await asyncio.wait_for(self.connect(), self.args.timeout)
                reused = False
                keep = await self.one(reader, writer, self.req_ka)
                st.ok("keepalive")
                reused = True
                if not keep:
                    self.close(writer)
                    writer = None
            except Exception as e:
                self.close(writer)
                writer = None
                st.fail("keepalive", "retry after %s failed: %s" % (first, describe(e)))
        self.close(writer)

    async def close_worker(self, end):
        st = self.stats
        while time.monotonic() < end:
            writer = None
            try:
                reader, writer = await asyncio.wait_for(self.connect(), self.args.timeout)
                await self.one(reader, writer, self.req_close)
                st.ok("close")
            except Exception as e:
                st.fail("close", describe(e))
            finally:
                self.close(writer)


async def main_async(args):
    start = args.start_at if args.start_at is not None else time.monotonic()
    stats = Stats(start, args.duration, args.bucket)
    client = Client(args, stats)
    delay = start - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    end = start + args.duration
    tasks = [asyncio.ensure_future(client.keepalive_worker(end)) for _ in range(args.keepalive)]
    tasks += [asyncio.ensure_future(client.close_worker(end)) for _ in range(args.close)]
    await asyncio.gather(*tasks)
    return {"start": start, "bucket_s": args.bucket, "duration_s": args.duration,
            "keepalive": args.keepalive, "close": args.close,
            "buckets": stats.buckets, "totals": stats.totals, "failures": stats.failures}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--keepalive", type=int, default=32, help="keep-alive connections")
    p.add_argument("--close", type=int, default=8,
                   help="clients opening a new connection per request")
    p.add_argument("--duration", type=float, default=10.0, help="seconds")
    p.add_argument("--start-at", type=float, help="time.monotonic() at which to start")
    p.add_argument("--bucket", type=float, default=0.1, help="bucket width, seconds")
    p.add_argument("--timeout", type=float, default=2.0, help="per request, seconds")
    p.add_argument("--expect-body", help="the body every answer must have")
    a = p.parse_args(argv)
    if a.keepalive < 0 or a.close < 0 or a.keepalive + a.close == 0 or a.duration <= 0:
        p.error("need --keepalive + --close > 0 and --duration > 0")
    return a


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    res = asyncio.run(main_async(args))
    json.dump(res, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
