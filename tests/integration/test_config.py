"""The configuration file (SPEC B7), black-box: examples started with
--config FILE. Every key changes what a client or the log sees; every kind
of mistake stops the program with one line naming the file, the line, the
key, the value and what is expected; a restart rereads the file, so a
changed file goes live with zero failed requests -- or, when it is bad, is
rolled back with its message.
"""

import os
import re
import signal
import socket
import subprocess
import textwrap
import time

import pytest

from conftest import HOST, RawConn, example_path, http, sanitizer_env, simple_get
from restarts import admin, get_pid, line_re, signal_restart, wait_gone, wait_in_flight
from test_master import children, signal_master_restart, wait_children, wait_gone_child
from test_restart import SlowGet
from wrkload import Loads, Wrk

HELPERS = example_path("basic").parent.parent / "tests" / "helpers"


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def start(pool, tmp_path, text, example="basic", *args, name="config.yaml"):
    """Start an example from a config (its address from a free port)."""
    port = free_port()
    path = write(tmp_path, text.replace("PORT", str(port)), name)
    srv = pool.start(example, "--config", str(path), *args)
    assert srv.port == port, srv.stderr()
    return srv, path, port


# ---- every key ------------------------------------------------------------------------


def test_server_keys_change_what_clients_see(servers, tmp_path):
    """address (two ports), serverAgent, maxHeaderBytes, maxHeaders,
    clientMaxBodySize, readTimeout, idleTimeout, accessLogEnabled,
    readinessPattern, livenessPattern, all in one file."""
    second = free_port()
    srv, _, port = start(servers, tmp_path, f"""
        server:
          address: "{HOST}:PORT,{HOST}:{second}"
          serverAgent: "from-config"
          maxHeaderBytes: "1KB"
          maxHeaders: 10
          clientMaxBodySize: "100B"
          readTimeout: "1s"
          idleTimeout: "1500ms"
          accessLogEnabled: true
          readinessPattern: "/readyz"
          livenessPattern: "/livez"
        """, "echo")  # fmt: skip
    r = http("GET", f"http://{HOST}:{second}/x")
    assert r.status_code == 200 and r.headers["Server"] == "from-config"
    assert http("GET", srv.url("/x"), headers={"X-Big": "a" * 1100}).status_code == 431
    # (requests sends 5 headers of its own, and Content-Length with a body)
    assert http("GET", srv.url("/x"), headers={f"X-{i}": "1" for i in range(6)}).status_code == 431
    assert http("GET", srv.url("/x"), headers={f"X-{i}": "1" for i in range(4)}).status_code == 200
    assert http("POST", srv.url("/x"), data=b"a" * 101).status_code == 413
    assert http("POST", srv.url("/x"), data=b"a" * 100).status_code == 200
    with RawConn(srv.port) as c:  # readTimeout: a request not finished in 1 s
        c.send(b"GET /slow HTTP/1.1\r\n")
        assert c.wait_closed(timeout=10).startswith(b"HTTP/1.1 408 ")
    with RawConn(srv.port) as c:  # idleTimeout: closed after 1.5 s idle
        c.send(simple_get("/idle"))
        c.read_response()
        t0 = time.monotonic()
        assert c.wait_closed(timeout=10) == b""
        assert time.monotonic() - t0 >= 1.4  # a lower bound: not sooner than configured
    srv.wait_for_line(r': 200 "GET http 127\.0\.0\.1:\d+ /x HTTP/1\.1"')  # accessLogEnabled
    assert http("GET", srv.url("/readyz")).text == "ready\n"
    assert http("GET", srv.url("/livez")).text == "alive\n"


def test_write_timeout(servers, tmp_path):
    """writeTimeout: an answer the client does not read is given up after 1 s:
    the client that reads at last gets less than the whole echoed body."""
    srv, _, _ = start(servers, tmp_path, """
        server:
          address: "127.0.0.1:PORT"
          writeTimeout: "1s"
          clientMaxBodySize: "64MB"
        """, "inflight")  # fmt: skip
    body = b"x" * (32 << 20)  # more than the socket buffers of both ends can hold
    s = socket.create_connection((HOST, srv.port), timeout=10)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    time.sleep(3)  # not reading: the server's write stalls past its 1 s (not an assertion)
    got = 0
    try:
        while (chunk := s.recv(1 << 20)):
            got += len(chunk)
    except ConnectionResetError:
        pass
    s.close()
    assert got < len(body), f"the whole {got} bytes arrived: the write timeout did not act"


def test_connection_limit_and_error_log(servers, tmp_path):
    """maxConnections answers 503 beyond its count; errorLogEnabled: false
    keeps a client's bad request out of the log."""
    srv, _, _ = start(servers, tmp_path, """
        server:
          address: "127.0.0.1:PORT"
          maxConnections: 2
          errorLogEnabled: false
        """, "echo")  # fmt: skip
    held = [RawConn(srv.port) for _ in range(2)]
    try:
        for c in held:
            c.send(simple_get("/"))
            c.read_response()
        extra = socket.create_connection((HOST, srv.port), timeout=10)
        extra.settimeout(10)
        assert extra.recv(100).startswith(b"HTTP/1.1 503 ")
        extra.close()
    finally:
        for c in held:
            c.close()
    # (The server sees the closes a moment later: until then a new
    # connection could still be over the limit.)
    srv.wait_for_line(r": server default: below max_connections again")
    with RawConn(srv.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n")
        assert c.read_response().status == 400
    assert "bad request from" not in srv.stderr()


def test_admin_keys(servers, tmp_path):
    """adminPattern, adminToken, adminAllowedHosts (and the page answers
    there only), on a program that enables no admin page itself."""
    srv, _, _ = start(servers, tmp_path, """
        server:
          address: "127.0.0.1:PORT"
          adminPattern: "/ops/admin"
          adminToken: "t0k3n"
          adminAllowedHosts: ["app.example"]
        """, "echo")  # fmt: skip
    auth = {"Authorization": "Bearer t0k3n"}
    r = http("GET", srv.url("/ops/admin/status"), headers=auth)
    assert r.status_code == 200 and r.json()["pid"] == srv.pid
    assert http("GET", srv.url("/ops/admin/status")).status_code == 403
    host = {**auth, "Host": f"app.example:{srv.port}"}
    assert http("GET", srv.url("/ops/admin/status"), headers=host).status_code == 200
    host = {**auth, "Host": f"other.example:{srv.port}"}
    assert http("GET", srv.url("/ops/admin/status"), headers=host).status_code == 403


def test_admin_networks_and_exe_dirs(grace_servers, tmp_path):
    """adminTrustedNetworks: loopback not in the list is refused;
    adminAllowedExeDirs: a restart to an executable there is allowed."""
    srv, _, _ = start(grace_servers, tmp_path, f"""
        server:
          address: "127.0.0.1:PORT"
          graceful: true
          gracefulTimeout: "2s"
          adminTrustedNetworks: ["127.0.0.0/8"]
          adminAllowedExeDirs: ["{HELPERS}"]
        """)  # fmt: skip
    r = admin(srv, "restart", exe=HELPERS / "exit_now")
    assert r.status_code == 500 and "exited with status 3" in r.text, r.text
    for pid in [p for p in srv.log_pids() if p != srv.pid]:
        srv.expect_exit[pid] = None
    srv2, _, _ = start(grace_servers, tmp_path, """
        server:
          address: "127.0.0.1:PORT"
          adminTrustedNetworks: ["10.0.0.0/8"]
        """, name="other.yaml")  # fmt: skip
    assert admin(srv2, "status").status_code == 403


def test_process_keys(grace_servers, tmp_path):
    """graceful, gracefulTimeout, probation, maxDraining, pidFile, master,
    workers."""
    pid_file = tmp_path / "app.pid"
    srv, _, _ = start(grace_servers, tmp_path, f"""
        server:
          address: "127.0.0.1:PORT"
          graceful: true
          gracefulShutdownTimeout: "20s"
          maxDraining: 3
          probation: "500ms"
          pidFile: "{pid_file}"
          master: true
          workers: 2
        """)  # fmt: skip
    kids = wait_children(srv, 2)
    assert sorted(children(srv)) == sorted(kids)
    assert int(pid_file.read_text()) == srv.pid


def test_graceful_off_and_drain_keys(grace_servers, tmp_path):
    """graceful: false makes SIGUSR1 a full restart; gracefulShutdownTimeout
    cuts a drain; drainIdleTimeout and shutdownDelay show in the log."""
    srv, _, _ = start(grace_servers, tmp_path, """
        server:
          address: "127.0.0.1:PORT"
          graceful: false
          gracefulShutdownTimeout: "1s"
          shutdownDelay: "300ms"
        """, "basic", "--sleep-ms", "5000")  # fmt: skip
    mark = srv.mark()
    srv.send_signal(signal.SIGUSR1)
    srv.wait_for_line(line_re(srv.pid, "SIGUSR1: graceful restart is off"), start=mark)
    m = srv.wait_for_line(line_re(srv.pid, r"http server started listening on \[127\.0\.0\.1:(\d+)\]"),
                          start=mark)  # fmt: skip
    srv.ports = [int(m.group(1))]
    sleeper = SlowGet(srv.port, "/sleep")
    wait_in_flight(srv, srv.pid)
    srv.send_signal(signal.SIGTERM)
    srv.wait_for_line(r"serving 300 ms more before draining")
    srv.wait_for_line(r"graceful_shutdown_timeout passed: closing 1 remaining connections")
    assert sleeper.result(timeout=20) is None


# ---- mistakes -------------------------------------------------------------------------

BAD = [
    ("server:\n  readTimeout: \"6O s\"\n", 2,
     r'server\.readTimeout: "6O s" is not a duration \(like "60s", "500ms", "1m30s"\)'),
    ("server:\n  readTimout: 60s\n", 2, r"server\.readTimout: unknown key \(did you mean readTimeout\?\)"),
    ("server:\n  clientMaxBodySize: 8 MB\n", 2, r'server\.clientMaxBodySize: "8 MB" is not a size'),
    ("server:\n  graceful: maybe\n", 2, r'server\.graceful: "maybe" is not true or false'),
    ("server:\n  maxConnections: -3\n", 2, r'server\.maxConnections: "-3" is not a whole number'),
    ("server:\n  address:\n    - a\n", 3, r"server\.address: a list where a string is expected"),
    ("server:\n  s1:\n    master: true\n", 3,
     r"server\.s1\.master: master is for the whole process: give it in the server section"),
    ("server:\n  workers: 2\n", 2, r"server\.workers: workers needs master: true"),
    ("server:\n  address: \"127.0.0.1:99999\"\n", 2, r'server\.address: "127\.0\.0\.1:99999": bad listen address'),
    ("server:\n  httpsCertPath: /x.pem\n", 2, r"server\.httpsCertPath: httpsCertPath and httpsKeyPath go together"),
    ("serve:\n  address: :1\n", 1, r"serve: unknown section"),
    ("server: [\n", 2, r"not YAML"),
]


@pytest.mark.parametrize("text,line,message", BAD, ids=[b[2][:30] for b in BAD])
def test_mistakes_stop_the_program_with_file_line_key(tmp_path, text, line, message):
    path = write(tmp_path, text)
    p = subprocess.run([str(example_path("basic")), "--config", str(path)], capture_output=True,
                       timeout=30, env=sanitizer_env())  # fmt: skip
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert re.search(rf"^\S*basic: {re.escape(str(path))}:{line}: {message}", err, re.M), err


def test_unreadable_file(tmp_path):
    path = tmp_path / "missing.yaml"
    p = subprocess.run([str(example_path("basic")), "--config", str(path)], capture_output=True,
                       timeout=30, env=sanitizer_env())  # fmt: skip
    assert p.returncode == 2
    assert f"{path}: cannot read it: No such file or directory" in p.stderr.decode()


def test_search_order_environment_then_working_directory(tmp_path):
    """No --config: $GRACE_CONFIG, else ./config.yaml (checked by the
    mistake it holds)."""
    (tmp_path / "config.yaml").write_text("server:\n  nonsense: 1\n")
    env = sanitizer_env()
    env.pop("GRACE_CONFIG", None)
    # The examples read a file only when given --config; the library's own
    # search is what grace_config_load(NULL) does: tested through a tiny
    # program in tests/helpers (config_probe).
    probe = HELPERS / "config_probe"
    p = subprocess.run([str(probe)], cwd=tmp_path, capture_output=True, timeout=30, env=env)
    assert "config.yaml:2: server.nonsense: unknown key" in p.stdout.decode(), p
    other = write(tmp_path, "server:\n  other: 1\n", "other.yaml")
    env["GRACE_CONFIG"] = str(other)
    p = subprocess.run([str(probe)], cwd=tmp_path, capture_output=True, timeout=30, env=env)
    assert f"{other}:2: server.other: unknown key" in p.stdout.decode(), p
    (tmp_path / "config.yaml").unlink()
    env.pop("GRACE_CONFIG")
    p = subprocess.run([str(probe)], cwd=tmp_path, capture_output=True, timeout=30, env=env)
    assert p.stdout.decode().startswith("0 "), p


# ---- a restart rereads the file ------------------------------------------------------------


def test_changed_config_goes_live_on_restart_under_load(grace_servers, tmp_path):
    """Under wrk on the port that stays: a port added, a port removed, a
    timeout and the Server header changed, all by editing the file and
    SIGUSR1: zero failed requests; the removed port refuses connections,
    the added one answers, the new values are in force."""
    keep, drop, add = free_port(), free_port(), free_port()
    path = write(tmp_path, f"""
        server:
          address: "{HOST}:{keep},{HOST}:{drop}"
          graceful: true
          serverAgent: "before"
          readTimeout: "60s"
        """)  # fmt: skip
    srv = grace_servers.start("hello", "--config", str(path), n_ports=2)
    loads = Loads(Wrk(f"http://{HOST}:{keep}/", 8, expect=b"Hello, World!"),
                  Wrk(f"http://{HOST}:{keep}/", 2, close=True, expect=b"Hello, World!"))  # fmt: skip
    with loads:
        loads.wait_progress(200)
        write(tmp_path, f"""
            server:
              address: "{HOST}:{keep},{HOST}:{add}"
              graceful: true
              serverAgent: "after"
              readTimeout: "1s"
            """)  # fmt: skip
        p2 = signal_restart(srv)
        srv.wait_for_line(line_re(p2, rf"http server started listening on \[127\.0\.0\.1:{add}\]"))
        assert wait_gone(srv, srv.pid) == 0
        loads.wait_progress(200)
        loads.stop()
    assert loads.failures() == 0, loads.report() + "\n" + srv.stderr()
    assert http("GET", f"http://{HOST}:{add}/").headers["Server"] == "after"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, drop), timeout=5)
    with RawConn(keep) as c:
        c.send(b"GET / HTTP/1.1\r\n")
        assert c.wait_closed(timeout=10).startswith(b"HTTP/1.1 408 ")


def master_file(tmp_path, *ports):
    return write(tmp_path, f"""
        server:
          address: "{",".join(f"{HOST}:{p}" for p in ports)}"
          graceful: true
          master: true
          workers: 2
        """)  # fmt: skip


def test_master_mode_port_added_and_removed_by_the_file_under_load(grace_servers, tmp_path):
    """Master mode, two children, wrk on the port that stays: the file gains
    a port (the first new child binds it and hands it to the master, the
    second inherits it), then a second restart (whose children inherit it
    from the master), then the file drops the first port: zero failed
    requests; the added port answers from each generation; the dropped one
    refuses connections once the old children are gone -- it does not
    queue them for nobody."""
    keep, drop, add = free_port(), free_port(), free_port()
    path = master_file(tmp_path, keep, drop)
    srv = grace_servers.start("hello", "--config", str(path), n_ports=2)
    wait_children(srv, 2)
    loads = Loads(Wrk(f"http://{HOST}:{keep}/", 8, expect=b"Hello, World!"),
                  Wrk(f"http://{HOST}:{keep}/", 2, close=True, expect=b"Hello, World!"))  # fmt: skip
    olds = children(srv)
    with loads:
        loads.wait_progress(200)
        master_file(tmp_path, keep, drop, add)
        for _ in range(2):  # bound by a child, then passed on by the master
            news = signal_master_restart(srv, workers=2)
            for pid in olds:
                wait_gone_child(srv, pid)
            olds = news
            assert http("GET", f"http://{HOST}:{add}/").text == "Hello, World!"
            loads.wait_progress(200)
        master_file(tmp_path, keep, add)
        mark = srv.mark()
        news = signal_master_restart(srv, workers=2)
        srv.wait_for_line(line_re(srv.pid, rf"master: closed \[127\.0\.0\.1:{drop}\] of server "
                                  r"default: its children no longer listen there"), start=mark)
        for pid in olds:
            wait_gone_child(srv, pid)
        loads.wait_progress(200)
        loads.stop()
    assert loads.failures() == 0, loads.report() + "\n" + srv.stderr()
    assert sorted(children(srv)) == sorted(news)
    assert http("GET", f"http://{HOST}:{add}/").text == "Hello, World!"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, drop), timeout=5)


def test_master_mode_rolled_back_restart_keeps_no_port_it_bound(grace_servers, tmp_path):
    """The file gains two ports, the second one taken by another program:
    the new child binds the first, hands it to the master, then cannot bind
    the second; the restart rolls back and the master closes the first
    (it refuses connections), while the children serve on."""
    keep, add = free_port(), free_port()
    busy = socket.socket()
    busy.bind((HOST, 0))
    busy.listen()
    try:
        path = master_file(tmp_path, keep)
        srv = grace_servers.start("hello", "--config", str(path))
        olds = wait_children(srv, 2)
        master_file(tmp_path, keep, add, busy.getsockname()[1])
        mark = srv.mark()
        os.kill(srv.pid, signal.SIGUSR1)
        m = srv.wait_for_line(line_re(srv.pid, r"master: restart failed: new process (\d+) "
                                      r"(exited with status 1|cannot start)"), start=mark)
        srv.expect_exit[int(m.group(1))] = None
        assert sorted(children(srv)) == sorted(olds)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((HOST, add), timeout=5)
        assert http("GET", f"http://{HOST}:{keep}/").text == "Hello, World!"
    finally:
        busy.close()


def test_bad_config_on_restart_rolls_back_with_its_message(grace_servers, tmp_path):
    srv, path, _ = start(grace_servers, tmp_path, """
        server:
          address: "127.0.0.1:PORT"
          graceful: true
        """)  # fmt: skip
    path.write_text(path.read_text() + "  readTimeout: \"6O s\"\n")
    line = path.read_text().count("\n")  # the line just added
    mark = srv.mark()
    srv.send_signal(signal.SIGUSR1)
    m = srv.wait_for_line(line_re(srv.pid, r"restart failed: new process (\d+) cannot start: "
                                  + re.escape(f"{path}:{line}: ") + r"server\.readTimeout: \"6O s\" is "
                                  r"not a duration"), start=mark)  # fmt: skip
    srv.expect_exit[int(m.group(1))] = None
    assert get_pid(srv) == srv.pid
    assert os.path.exists(path)


# ---- probes and shutdownDelay ------------------------------------------------------------


def test_readiness_turns_false_the_moment_a_drain_starts(grace_servers, tmp_path):
    """A keep-alive connection to the old process asks /readyz right after a
    hand-over: "503 draining" (with Connection: close); the new process says
    ready; /livez is alive in both."""
    srv, _, _ = start(grace_servers, tmp_path, """
        server:
          address: "127.0.0.1:PORT"
          graceful: true
          readinessPattern: "/readyz"
          livenessPattern: "/livez"
        """)  # fmt: skip
    with RawConn(srv.port) as old:
        old.send(simple_get("/readyz"))
        r = old.read_response()
        assert (r.status, r.body) == (200, b"ready\n")
        p1 = srv.pid
        signal_restart(srv)
        old.send(simple_get("/readyz"))
        r = old.read_response()
        assert (r.status, r.body) == (503, b"draining\n") and r.closes(), r
    assert http("GET", srv.url("/readyz")).text == "ready\n"
    assert http("GET", srv.url("/livez")).text == "alive\n"
    assert wait_gone(srv, p1) == 0


def test_shutdown_delay_keeps_accepting_while_readiness_says_draining(grace_servers, tmp_path):
    """shutdownDelay 2s: after SIGTERM, /readyz says draining at once while
    new connections are still accepted and answered; then the drain, and the
    port refuses."""
    srv, _, port = start(grace_servers, tmp_path, """
        server:
          address: "127.0.0.1:PORT"
          shutdownDelay: "2s"
          readinessPattern: "/readyz"
        """)  # fmt: skip
    mark = srv.mark()
    srv.send_signal(signal.SIGTERM)
    srv.wait_for_line(r"serving 2000 ms more before draining", start=mark)
    r = http("GET", srv.url("/readyz"))
    assert (r.status_code, r.text) == (503, "draining\n")
    r = http("GET", srv.url("/"))  # a new connection, accepted and served
    assert r.status_code == 200
    assert srv.wait_exit(timeout=20) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=5)
