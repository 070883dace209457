"""What every example shares: flags, --help, exit codes, start failure, the
access log; and hello's exact answer (the benchmark's reference)."""

import socket
import subprocess

import pytest

from conftest import HOST, SANITIZER_MARKERS, RawConn, example_path, http, sanitizer_env

EXAMPLES = ["basic", "multi", "hello", "echo", "routes"]
PORT_FLAG = {"multi": "--ports"}


def run(name, *args, timeout=20):
    exe = example_path(name)
    if not exe.exists():
        pytest.fail(f"example binary {exe} not found")
    p = subprocess.run(
        [str(exe), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        env=sanitizer_env(),
    )
    err = p.stderr.decode("utf-8", "replace")
    for marker in SANITIZER_MARKERS:
        assert marker not in err, err
    return p.returncode, p.stdout.decode("utf-8", "replace"), err


@pytest.mark.parametrize("name", EXAMPLES)
def test_help_exits_0_with_usage(name):
    code, out, err = run(name, "--help")
    assert code == 0, err
    assert "usage" in out.lower()
    assert PORT_FLAG.get(name, "--port") in out
    assert "--host" in out


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize(
    "args",
    [
        ["--no-such-flag"],
        ["--host"],  # value missing
        ["--max-body", "lots"],
        ["stray-argument"],
    ],
)
def test_bad_flags_exit_2(name, args):
    code, out, err = run(name, *args)
    assert code == 2, (code, out, err)
    assert err.strip(), "no message on stderr"


@pytest.mark.parametrize("name", ["basic", "hello", "echo", "routes"])
def test_bad_port_exits_2(name):
    code, _, err = run(name, "--port", "65536")
    assert code == 2, err


def test_multi_needs_exactly_four_ports():
    code, _, err = run("multi", "--host", HOST, "--ports", "0,0,0")
    assert code == 2, err
    assert "4" in err


@pytest.fixture
def busy_port():
    """A port held by a listening socket of ours."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    s.listen(1)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


@pytest.mark.parametrize("name", ["basic", "hello", "echo", "routes"])
def test_port_in_use_exits_1(name, busy_port):
    code, _, err = run(name, "--host", HOST, "--port", str(busy_port))
    assert code == 1, err
    assert "address already in use" in err


def test_multi_port_in_use_exits_1(busy_port):
    # s1 starts on two free ports, s2 cannot bind: s1 is shut down again and
    # the process exits 1.
    code, _, err = run("multi", "--host", HOST, "--ports", f"0,0,{busy_port},0")
    assert code == 1, err
    assert "address already in use" in err


def test_hello_is_exactly_13_bytes(servers):
    srv = servers.start("hello", "--port", "0")
    with RawConn(srv.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    assert r.body == b"Hello, World!"
    assert r.header("Content-Length") == "13"


def test_access_log_logs_requests(servers):
    srv = servers.start("basic", "--port", "0", "--access-log")
    n = len(srv.lines)
    assert http("GET", srv.url("/pid?q=access-log-probe")).status_code == 200
    srv.wait_for_line(r"/pid", start=n)


def test_no_access_log_by_default(servers):
    srv = servers.start("basic", "--port", "0")
    n = len(srv.lines)
    for _ in range(3):
        assert http("GET", srv.url("/pid")).status_code == 200
    srv.stop()
    assert not [l for l in srv.lines[n:] if "/pid" in l], srv.stderr()
