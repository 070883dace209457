"""tls.py -- the TLS checks and the handshake scenario of bench/run.py.

tls_check: what each HTTPS server negotiates (`openssl s_client`) with a
default client and with wrk's offer (the OpenSSL configuration of
servers.make_certs: TLS 1.3, TLS13_SUITE only), and whether it resumes a
TLS 1.3 session on a new connection.

handshakes: the "https-resumed" scenario. `openssl s_time` (the same
OpenSSL, with wrk's configuration, so the same offer) pinned to the client
CPU makes one connection after another for SECONDS: with -new each is a
full handshake (certificate, ECDSA signature, X25519), with -reuse each
offers the session of the first (a TLS 1.3 PSK resumption with X25519, no
certificate), and with -www / each sends `GET / HTTP/1.0` and reads the
answer to the end. Per run: connections, the server tree's CPU time
(lib.tree_cpu_s), and how many handshakes s_time saw resumed (it prints
"r" for a resumed one and "*" for a full one). Every connection must have
read the bytes of one good answer (checked once with Python's ssl), and a
-reuse run in which not every handshake resumed is kept but reported as
not resuming, not as a rate.

s_time times nothing per connection, so after each s_time run a second
client, this file run as a script (Python's ssl: the same OpenSSL, the same
configuration, TCP_NODELAY like s_time and wrk, pinned to the client CPU),
makes LATENCY_SAMPLES more connections the same way, one after another, and
times each from connect() to the end of the answer: the p50/p99/max of a
connection with a full or a resumed handshake on an otherwise idle server.
"""

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time

from lib import BenchError, log, percentile, tree_cpu_s, which
from servers import TLS13_SUITE

REQUEST_10 = b"GET / HTTP/1.0\r\n\r\n"  # what s_time -www / sends
LATENCY_SAMPLES = {False: 500, True: 50}  # connections timed per run; {quick: n}


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


def tls_check(ctx, servers, label):
    """What each server negotiates with a default OpenSSL client and with
    wrk's offer, and whether it resumes a TLS 1.3 session on a new connection
    (one GET saving the session, one offering it: "Reused" or "New").
    Keyed by label(server)."""
    out, req = {}, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    for srv in servers:
        sess = os.path.join(ctx.tmp, "session-%s.pem" % srv.name)
        s_client(ctx, srv.port, True, ["-ign_eof", "-sess_out", sess], req)
        r = out[label(srv)] = {"default_client": s_client(ctx, srv.port),
                               "wrk_config": s_client(ctx, srv.port, True),
                               "resumption": s_client(ctx, srv.port, True,
                                                      ["-ign_eof", "-sess_in", sess], req)}
        w = r["wrk_config"]
        log("TLS %s with wrk's offer: %s %s %s; session resumed: %s"
            % (label(srv), w.get("protocol"), w.get("suite"), w.get("group"),
               "yes" if resumes(r) else "NO"))
        if w.get("suite") != TLS13_SUITE:
            log("WARNING: %s did not negotiate %s with wrk's offer" % (srv.name, TLS13_SUITE))
    return out


def resumes(check):
    return check["resumption"].get("handshakes") == ["Reused"]


def answer_bytes(ctx, srv, body):
    """The length of the server's answer to s_time's request, after checking
    it is a 200 with body (Python's ssl, TLS 1.3)."""
    tls = ssl.create_default_context(cafile=ctx.certs.ca)
    tls.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw:
        with tls.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(REQUEST_10)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    head, _, got = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 ") or got != body:
        raise BenchError("%s: GET / HTTP/1.0 answered %r" % (srv.name, data[:200]))
    return len(data)


def s_time_cmd(ctx, srv, mode, seconds):
    return [which("openssl") or "openssl", "s_time", "-connect", "127.0.0.1:%d" % srv.port,
            "-" + mode, "-time", str(seconds), "-CAfile", ctx.certs.ca, "-www", "/"]


def parse_s_time(out):
    """s_time's report: connections, bytes read, and its progress marks
    ("r": resumed, anything else: a full handshake)."""
    m = re.search(r"^(\d+) connections in [\d.]+s; [\d.]+ connections/user sec, bytes read "
                  r"(\d+)$", out, re.M)
    if m is None:
        return None
    marks = "".join(l for l in out.splitlines() if l and re.fullmatch(r"[*rt3]+", l))
    return {"connections": int(m.group(1)), "bytes": int(m.group(2)),
            "resumed": marks.count("r"), "full": len(marks) - marks.count("r")}


def s_time(ctx, srv, mode, seconds, expect_bytes):
    """One s_time run (mode "new" or "reuse") against srv, pinned to the
    client CPU, with the server tree's CPU time meanwhile: the record."""
    cmd = s_time_cmd(ctx, srv, mode, seconds)
    env = dict(os.environ, OPENSSL_CONF=ctx.certs.client_conf)
    cpu0, t0 = tree_cpu_s(srv.pgid), time.monotonic()
    p = ctx.procs.spawn(cmd, ctx.args.client_cpu, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, env=env)
    try:
        out = p.communicate(timeout=seconds + 60)[0].decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        p.kill()
        raise BenchError("%s: s_time -%s did not finish" % (srv.name, mode))
    wall, cpu = time.monotonic() - t0, tree_cpu_s(srv.pgid) - cpu0
    r = parse_s_time(out)
    if p.returncode != 0 or r is None or r["connections"] == 0:
        raise BenchError("%s: s_time -%s failed (exit %s):\n%s"
                         % (srv.name, mode, p.returncode, out[-600:]))
    if r["bytes"] != r["connections"] * expect_bytes:
        raise BenchError("%s: s_time -%s read %d bytes in %d connections; a good answer is %d "
                         "bytes" % (srv.name, mode, r["bytes"], r["connections"], expect_bytes))
    r.update(mode=mode, wall_s=wall, cpu_s=cpu, command="OPENSSL_CONF=wrk-openssl.cnf " +
             " ".join(["openssl"] + cmd[1:]).replace(ctx.certs.ca, "ca.pem"))
    return r


def log_s_time(sc, rnd, rounds, label, r):
    lat = r.get("latency_ms") or {}
    log("%s round %d/%d %-16s -%-5s %6d handshakes (%d resumed)  %6.0f/s  cpu %5.2f s  "
        "%6.0f handshakes/cpu-s  p99 %s ms  other %.2f cpu-s"
        % (sc.name, rnd, rounds, label, r["mode"], r["connections"], r["resumed"],
           r["connections"] / r["wall_s"], r["cpu_s"],
           r["connections"] / r["cpu_s"] if r["cpu_s"] else 0,
           "%.2f" % lat["p99"] if "p99" in lat else "-", r["other_cpu_s"]))


# ---------------------------------------------------------------- latency

def latency(ctx, srv, mode, expect_bytes):
    """The latency sample after an s_time run: this file as a script against
    srv, pinned to the client CPU, with wrk's OpenSSL configuration.
    Returns {connections, resumed, p50, p90, p99, max (ms)}."""
    n = LATENCY_SAMPLES[bool(ctx.args.quick)]
    cmd = [sys.executable, os.path.abspath(__file__), str(srv.port), ctx.certs.ca, mode, str(n),
           str(expect_bytes)]
    p = ctx.procs.spawn(cmd, ctx.args.client_cpu, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        env=dict(os.environ, OPENSSL_CONF=ctx.certs.client_conf))
    try:
        out = p.communicate(timeout=60 + n * 0.1)[0].decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        p.kill()
        raise BenchError("%s: the -%s latency client did not finish" % (srv.name, mode))
    if p.returncode != 0:
        raise BenchError("%s: the -%s latency client failed:\n%s" % (srv.name, mode, out[-600:]))
    r = json.loads(out.strip().splitlines()[-1])
    if r["suite"] != TLS13_SUITE:
        raise BenchError("%s: the latency client negotiated %s, not %s"
                         % (srv.name, r["suite"], TLS13_SUITE))
    ms = [t * 1e3 for t in r.pop("seconds")]
    r.update(p50=percentile(ms, 50), p90=percentile(ms, 90), p99=percentile(ms, 99),
             max=max(ms))
    return r


def latency_client(port, ca, mode, n, expect_bytes):
    """n connections one after another, each a TLS 1.3 handshake (mode
    "new": full; "reuse": offering the session of a first connection) and
    GET / HTTP/1.0 read to the end: {seconds: [per connection], resumed,
    suite}. Any connection whose answer is not expect_bytes long fails."""
    tls = ssl.create_default_context(cafile=ca)
    tls.minimum_version = ssl.TLSVersion.TLSv1_3

    def one(session):
        t = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            # as s_time and wrk do: without it, the request written after the
            # client's Finished waits for that segment's ACK (Nagle)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with tls.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as s:
                s.sendall(REQUEST_10)
                got = 0
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += len(chunk)
                if got != expect_bytes:
                    raise SystemExit("read %d bytes, a good answer is %d" % (got, expect_bytes))
                return time.monotonic() - t, s.session, s.session_reused, s.cipher()[0]
    _, first, _, suite = one(None)
    times, resumed = [], 0
    for _ in range(n):
        dt, _, reused, suite = one(first if mode == "reuse" else None)
        times.append(dt)
        resumed += reused
    return {"connections": n, "seconds": times, "resumed": resumed, "suite": suite}


if __name__ == "__main__":
    # tls.py PORT CA MODE N BYTES: latency_client's answer as one line of JSON
    a = sys.argv[1:]
    print(json.dumps(latency_client(int(a[0]), a[1], a[2], int(a[3]), int(a[4]))))
