"""gracectl (tools/), black-box: the program an operator runs, against real
example servers, checked by what it prints, its exit code, and what the
servers' logs and clients see.

Exit codes (gracectl --help, docs/operations.md): 0 done, 1 failed (rolled
back, a node failed), 2 usage, 3 cannot reach, 4 refused for now (503),
5 not allowed (403).

Local mode drives a program by its PID file (the outcome comes from
PIDFILE.outcome, which grace writes: "ok PID", "refused RETRY WHY" or
"failed WHY", for full restarts too) or by its PID (gracectl watches /proc);
URL mode uses the admin routes with a token; rolling-restart restarts three
instances one after another under wrk, and stops at a node whose deploy is
broken (its executable replaced by one that exits at once, as a failed
copy would leave it), leaving the nodes after it untouched.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import (BUILD_DIR, HOST, SANITIZER_MARKERS, VALGRIND, VALGRIND_SLOWDOWN,
                      proc_descendants, sanitizer_env)  # fmt: skip
from restarts import admin, get_pid, line_re, log_index, wait_gone, wait_in_flight
from test_master import wait_children
from test_restart import SlowGet
from wrkload import Loads, Wrk

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

GRACECTL = BUILD_DIR / "tools" / "gracectl"
HELPERS = BUILD_DIR / "tests" / "helpers"
ROOT = "哈喽！\n".encode()  # what basic answers on /
TOKEN = "s3cr3t-t0ken"
RUN_TIMEOUT = 120 * VALGRIND_SLOWDOWN  # seconds for one gracectl run
RESTARTED_RE = r"restarted: new pid (\d+)"


def ctl(*args, env=None, timeout=RUN_TIMEOUT):
    """Run gracectl; returns the CompletedProcess (stdout, stderr as text).
    Fails the test if gracectl itself has a sanitizer report."""
    if not GRACECTL.exists():
        pytest.fail(f"{GRACECTL} not found: build it first (GRACE_BUILD_DIR={BUILD_DIR})")
    e = sanitizer_env()
    e.pop("GRACECTL_TOKEN", None)
    e.update(env or {})
    r = subprocess.run([str(GRACECTL), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=e, stdin=subprocess.DEVNULL)  # fmt: skip
    for marker in SANITIZER_MARKERS:
        assert marker not in r.stderr, f"gracectl {args}: {marker} report\n{r.stderr}"
    if VALGRIND:  # valgrind's own lines ("==PID== ..."), checked above, are not gracectl's
        r.stderr = "".join(ln for ln in r.stderr.splitlines(True) if not re.match(r"==\d+==", ln))
    return r


def exe_line_re(exe):
    """The status line naming the executable (under valgrind the process
    runs valgrind's tool: only the line is checked)."""
    return r"^executable: +\S" if VALGRIND else rf"^executable: +{re.escape(str(exe))}$"


def runs(pid, exe):
    """True if process pid runs exe (under valgrind: exe is in its argv)."""
    if not VALGRIND:
        return os.readlink(f"/proc/{pid}/exe") == str(exe)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return str(exe).encode() in f.read().split(b"\0")


def out(r):
    return f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


def read_pid(path):
    with open(path) as f:
        return int(f.read())


def admin_url(srv):
    return f"http://{HOST}:{srv.port}/debug/admin"


def outcome_line(pid_file):
    """The line grace wrote to PIDFILE.outcome (without its newline)."""
    text = pid_file.with_name(pid_file.name + ".outcome").read_text()
    assert text.endswith("\n") and text.count("\n") == 1, repr(text)
    return text[:-1]


def wait_outcome(pid_file, pattern, timeout=60.0 * VALGRIND_SLOWDOWN):
    """Wait until PIDFILE.outcome matches pattern (the whole line); returns
    the match. For outcomes no gracectl run waits for."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = outcome_line(pid_file)
        except FileNotFoundError:
            last = None
        m = last and re.fullmatch(pattern, last)
        if m:
            return m
        time.sleep(0.02)
    pytest.fail(f"PIDFILE.outcome never matched {pattern!r}; last {last!r}")


def wait_descendant(srv, exe, timeout=30.0):
    """The PID of a process under srv that runs exe, once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in proc_descendants(srv.pid):
            try:
                if runs(pid, exe):
                    return pid
            except OSError:  # gone meanwhile
                pass
        time.sleep(0.02)
    pytest.fail(f"no process runs {exe}\n{srv.stderr()}")


def served_again(srv, mark):
    """After a full restart (port 0 binds a free port afresh): aim srv at the
    port its PID bound after log line mark."""
    i = log_index(srv, line_re(srv.pid, r"http server started listening on \[127\.0\.0\.1:(\d+)\]"),
                  mark)  # fmt: skip
    assert i is not None, srv.stderr()
    srv.ports = [int(re.search(r":(\d+)\]", srv.lines[i]).group(1))]


# ---- the command line ---------------------------------------------------------------


@pytest.mark.parametrize("command", ["status", "restart", "shutdown", "rolling-restart"])
def test_help_of_every_command(command):
    for argv in ([command, "--help"], [command, "-h"], ["help", command]):
        r = ctl(*argv)
        assert r.returncode == 0, out(r)
        assert r.stdout.startswith(f"usage: gracectl {command}"), out(r)
        assert "Exit status" in r.stdout, out(r)
    r = ctl("--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: gracectl COMMAND"), out(r)
    for code in range(6):
        assert re.search(rf"^  {code}  ", r.stdout, re.M), out(r)


@pytest.mark.parametrize(
    "argv, says",
    [
        ([], "give a command"),
        (["frobnicate"], "unknown command frobnicate"),
        (["status"], "give a target"),
        (["status", "--pid", "1", "--url", "http://127.0.0.1:1"], "one target only"),
        (["status", "--pid", "x1"], "--pid x1: not a PID"),
        (["status", "--pid", "1", "--token", "t"], "--token and --cacert go with --url"),
        (["status", "--pid", "1", "--bogus"], "unknown option --bogus"),
        (["status", "--pid"], "--pid needs a value"),
        (["status", "--pid", "1", "--full"], "--full is not an option of status"),
        (["status", "--pid", "1", "extra"], "unexpected argument extra"),
        (["restart", "--pid", "1", "--exe", "/bin/true"], "--exe needs --pid-file"),
        (["restart", "--url", "http://127.0.0.1:1", "--full"], "--full is local only"),
        (["restart", "--url", "http://127.0.0.1:1", "--exe", "rel/app"], "absolute path"),
        (["restart", "--pid", "1", "--timeout", "-3"], "--timeout -3"),
        (["shutdown", "--url", "ftp://127.0.0.1:1"], "only http:// and https://"),
        (["status", "--url", "http://127.0.0.1:1/debug/admin?token=x"], "no '?'"),
        (["rolling-restart"], "give the nodes' admin URLs"),
        (["rolling-restart", "--parallel", "0", "http://127.0.0.1:1"], "--parallel 0"),
        (["rolling-restart", "--health", "readyz", "http://127.0.0.1:1"], "starting with '/'"),
        (["rolling-restart", "--pid", "1", "http://127.0.0.1:1"], "--pid is not an option"),
    ],
)
def test_bad_command_lines_exit_2(argv, says):
    r = ctl(*argv)
    assert r.returncode == 2, out(r)
    assert says in r.stderr and "--help tells more" in r.stderr, out(r)
    assert r.stdout == "", out(r)


# ---- local: by PID file ---------------------------------------------------------------


def start_local(grace_servers, tmp_path, *extra, master=False):
    pid_file = tmp_path / "app.pid"
    args = ["--port", "0", "--pid-file", str(pid_file), *extra]
    srv = grace_servers.start("basic", *args, *(["--master"] if master else []))
    if master:
        wait_children(srv, 1)
    return srv, pid_file


@pytest.mark.parametrize("master", [False, True], ids=["self-replacing", "master"])
def test_local_status(grace_servers, tmp_path, master):
    srv, pid_file = start_local(grace_servers, tmp_path, master=master)
    r = ctl("status", "--pid-file", pid_file)
    assert r.returncode == 0, out(r)
    assert re.search(rf"^pid: +{srv.pid} \(from {re.escape(str(pid_file))}\), running$",
                     r.stdout, re.M), out(r)  # fmt: skip
    assert re.search(exe_line_re(os.path.realpath(srv.exe)), r.stdout, re.M), out(r)
    assert re.search(r"^uptime: +[\d.]+ s$", r.stdout, re.M), out(r)
    assert re.search(r"^last restart: +none recorded$", r.stdout, re.M), out(r)
    if master:
        child = get_pid(srv)
        assert re.search(r"^mode: +master, 1 child$", r.stdout, re.M), out(r)
        assert re.search(rf"^children: +{child} +up .* serving$", r.stdout, re.M), out(r)
    else:
        assert re.search(r"^mode: +self-replacing, serving$", r.stdout, re.M), out(r)


def test_local_restart_self_replacing_reports_the_new_pid(grace_servers, tmp_path):
    srv, pid_file = start_local(grace_servers, tmp_path)
    p1 = srv.pid
    mark = srv.mark()
    r = ctl("restart", "--pid-file", pid_file)
    assert r.returncode == 0, out(r) + srv.stderr()
    new = int(re.fullmatch(RESTARTED_RE + "\n", r.stdout).group(1))
    assert srv.wait_restart(mark) == new
    assert get_pid(srv) == new and read_pid(pid_file) == new
    assert wait_gone(srv, p1) == 0

    r = ctl("status", "--pid-file", pid_file)
    assert r.returncode == 0, out(r)
    assert re.search(rf"^last restart: .* ago\): restarted, new pid {new}$", r.stdout, re.M), out(r)


def test_local_restart_in_master_mode_reports_the_new_child(grace_servers, tmp_path):
    srv, pid_file = start_local(grace_servers, tmp_path, master=True)
    old = get_pid(srv)
    mark = srv.mark()
    r = ctl("restart", "--pid-file", pid_file)
    assert r.returncode == 0, out(r) + srv.stderr()
    new = int(re.fullmatch(RESTARTED_RE + "\n", r.stdout).group(1))
    srv.wait_for_line(line_re(srv.pid, rf"master: child {new} is serving"), start=mark)
    assert new != old and get_pid(srv) == new
    assert read_pid(pid_file) == srv.pid  # the master's, always


@pytest.mark.parametrize("master", [False, True], ids=["self-replacing", "master"])
def test_local_restart_to_a_broken_executable_fails_old_serves_on(grace_servers, tmp_path,
                                                                  master):  # fmt: skip
    """--exe names a program that exits at once: "restart failed: WHY"
    with grace's reason, exit 1, the old process (or child) serves on, and
    PIDFILE.exe was taken by the restart."""
    srv, pid_file = start_local(grace_servers, tmp_path, master=master)
    before = get_pid(srv)
    r = ctl("restart", "--pid-file", pid_file, "--exe", HELPERS / "exit_now")
    assert r.returncode == 1, out(r) + srv.stderr()
    assert re.fullmatch(r"gracectl: restart failed: new process \d+ exited with status 3 "
                        r"before it was ready\n", r.stderr), out(r)  # fmt: skip
    assert r.stdout == "", out(r)
    assert get_pid(srv) == before and srv.running()
    assert not (tmp_path / "app.pid.exe").exists()
    r = ctl("status", "--pid-file", pid_file)
    assert re.search(r"^last restart: .* ago\): failed: new process \d+ exited with status 3",
                     r.stdout, re.M), out(r)  # fmt: skip


def test_local_restart_to_a_new_executable(grace_servers, tmp_path):
    """--exe to a copy of the program: the new process runs the copy."""
    copy = deploy_copy(tmp_path, "v2")
    srv, pid_file = start_local(grace_servers, tmp_path)
    mark = srv.mark()
    r = ctl("restart", "--pid-file", pid_file, "--exe", copy)
    assert r.returncode == 0, out(r) + srv.stderr()
    new = int(re.fullmatch(RESTARTED_RE + "\n", r.stdout).group(1))
    assert srv.wait_restart(mark) == new
    assert runs(new, copy)


def test_local_full_restart_keeps_the_pid(grace_servers, tmp_path):
    """--full: the program drains and executes itself afresh; once it serves
    again it writes "ok PID" with its own (the same) PID, and that is what
    gracectl reports, exit 0."""
    srv, pid_file = start_local(grace_servers, tmp_path)
    mark = srv.mark()
    r = ctl("restart", "--pid-file", pid_file, "--full")
    assert r.returncode == 0, out(r) + srv.stderr()
    assert r.stdout == f"restarted (full restart): pid {srv.pid} serves again\n", out(r)
    assert r.stderr == "", out(r)
    assert re.fullmatch(rf"\d+ ok {srv.pid}", outcome_line(pid_file))
    srv.wait_for_line(line_re(srv.pid, "executing .* afresh"), start=mark)
    # Served again once gracectl says so.
    served_again(srv, mark)
    assert get_pid(srv) == srv.pid and read_pid(pid_file) == srv.pid

    r = ctl("status", "--pid-file", pid_file)
    assert re.search(rf"^last restart: .* ago\): restarted, new pid {srv.pid}$", r.stdout,
                     re.M), out(r)  # fmt: skip


def test_local_full_restart_of_a_master_to_a_new_executable(grace_servers, tmp_path):
    """Master mode, --full --exe: the master takes PIDFILE.exe, lets its child
    drain, executes the copy afresh (same PID) and starts its children from
    it; once they serve it writes "ok PID", which gracectl reports (exit 0,
    no warning). A full restart to something that is not an executable
    fails at once, before anything stops ("failed", exit 1), and the master
    serves on."""
    copy = deploy_copy(tmp_path, "v2")
    srv, pid_file = start_local(grace_servers, tmp_path, master=True)
    old_child = get_pid(srv)
    mark = srv.mark()
    r = ctl("restart", "--pid-file", pid_file, "--full", "--exe", copy)
    assert r.returncode == 0, out(r) + srv.stderr()
    assert r.stdout == f"restarted (full restart): pid {srv.pid} serves again\n", out(r)
    assert r.stderr == "", out(r)
    assert re.fullmatch(rf"\d+ ok {srv.pid}", outcome_line(pid_file))
    assert not (tmp_path / "app.pid.exe").exists()
    srv.wait_for_line(line_re(srv.pid, f"master: executing {re.escape(str(copy))} afresh"),
                      start=mark)  # fmt: skip
    (child,) = wait_children(srv, 1, start=mark)
    assert runs(srv.pid, copy) and runs(child, copy)
    with open(f"/proc/{child}/environ", "rb") as f:  # the master's own flag stays its own
        assert b"GRACE_FULL_RESTART" not in f.read()
    served_again(srv, mark)
    assert child != old_child and get_pid(srv) == child

    not_exe = tmp_path / "app.pid"  # a file, not an executable
    r = ctl("restart", "--pid-file", pid_file, "--full", "--exe", not_exe)
    assert r.returncode == 1, out(r) + srv.stderr()
    assert r.stderr == f"gracectl: restart failed: {not_exe} is not an executable file\n", out(r)
    assert outcome_line(pid_file).endswith(f" failed {not_exe} is not an executable file")
    assert get_pid(srv) == child and runs(srv.pid, copy)


@pytest.mark.parametrize("master", [False, True], ids=["self-replacing", "master"])
def test_local_shutdown(grace_servers, tmp_path, master):
    srv, pid_file = start_local(grace_servers, tmp_path, master=master)
    r = ctl("shutdown", "--pid-file", pid_file)
    assert r.returncode == 0, out(r) + srv.stderr()
    assert re.fullmatch(rf"shut down: process {srv.pid} has exited \(after [\d.]+ s\)\n",
                        r.stdout), out(r)  # fmt: skip
    assert srv.wait_exit() == 0, srv.stderr()
    assert not pid_file.exists()
    # Nothing left to act on: cannot reach (3).
    for cmd in ("status", "restart", "shutdown"):
        r = ctl(cmd, "--pid-file", pid_file)
        assert r.returncode == 3, out(r)
        assert "cannot read the PID file" in r.stderr, out(r)


def test_local_refused_for_now_exits_4(grace_servers, tmp_path):
    """max_draining 1 and the old process holds a /sleep: a second restart
    would make two drain, so grace refuses it; gracectl says so, with when
    to retry, and exits 4, by PID file and by URL alike."""
    srv, pid_file = start_local(grace_servers, tmp_path, "--max-draining", "1",
                                "--sleep-ms", str(6000 * VALGRIND_SLOWDOWN))  # fmt: skip
    p1 = srv.pid
    sleeper = SlowGet(srv.port, "/sleep")
    wait_in_flight(srv, p1)
    r = ctl("restart", "--pid-file", pid_file)
    assert r.returncode == 0, out(r) + srv.stderr()
    r = ctl("restart", "--pid-file", pid_file)
    assert r.returncode == 4, out(r) + srv.stderr()
    m = re.fullmatch(r"gracectl: refused for now: (1 older processes are still draining "
                     r"\(max_draining 1\): .*; retry in (\d+) s) \(retry after \2 s\)\n",
                     r.stderr)  # fmt: skip
    assert m, out(r)
    assert re.fullmatch(rf"\d+ refused {m.group(2)} {re.escape(m.group(1))}",
                        outcome_line(pid_file))  # fmt: skip
    r = ctl("status", "--pid-file", pid_file)
    assert re.search(r"^last restart: .* ago\): refused: 1 older processes are still draining .*"
                     r" \(retry after \d+ s\)$", r.stdout, re.M), out(r)  # fmt: skip
    r = ctl("restart", "--url", admin_url(srv))
    assert r.returncode == 4, out(r)
    assert re.fullmatch(r"gracectl: refused for now: 1 older processes are still draining .*"
                        r"\(HTTP 503, retry after \d+ s\)\n", r.stderr), out(r)  # fmt: skip
    resp = sleeper.result()
    assert sleeper.error is None and resp.status == 200, sleeper.error


@pytest.mark.parametrize("master", [False, True], ids=["self-replacing", "master"])
def test_local_restart_during_a_full_restart_is_refused(grace_servers, tmp_path, master):
    """A full restart waits for a /sleep in flight; meanwhile another full
    restart, or a graceful one, is refused: "refused 1 ..." in
    PIDFILE.outcome, exit 4 with the reason and the retry. Then the first
    one ends: the /sleep is answered and the program executed afresh
    writes "ok PID"."""
    srv, pid_file = start_local(grace_servers, tmp_path, "--sleep-ms",
                                str(6000 * VALGRIND_SLOWDOWN), master=master)  # fmt: skip
    serving = get_pid(srv)
    sleeper = SlowGet(srv.port, "/sleep")
    wait_in_flight(srv, serving)
    mark = srv.mark()
    srv.send_signal(signal.SIGUSR2)
    srv.wait_for_line(line_re(srv.pid, "received signal 12 .*: full restart"), start=mark)
    why = "a full restart is already in progress"
    for extra in (["--full"], []):
        r = ctl("restart", "--pid-file", pid_file, *extra)
        assert r.returncode == 4, out(r) + srv.stderr()
        assert r.stderr == f"gracectl: refused for now: {why} (retry after 1 s)\n", out(r)
        assert re.fullmatch(rf"\d+ refused 1 {why}", outcome_line(pid_file))

    resp = sleeper.result()
    assert sleeper.error is None and resp.status == 200, sleeper.error
    wait_outcome(pid_file, rf"\d+ ok {srv.pid}")
    served_again(srv, mark)
    assert srv.running() and read_pid(pid_file) == srv.pid


def test_local_restart_while_another_is_under_way_is_refused(grace_servers, tmp_path):
    """A restart through the admin URL to an executable that never says
    ready holds the restart lock (its graceful timeout is long); a restart
    by PID file meanwhile is refused -- "refused 1 a restart is already in
    progress", exit 4. Killing the new process ends the first restart: it
    fails, the old process serves on."""
    srv, pid_file = start_local(grace_servers, tmp_path, "--admin-allow-dir", HELPERS,
                                "--graceful-timeout-ms", str(300000))  # fmt: skip
    mark = srv.mark()
    first = {}

    def restart_by_url():
        first["r"] = admin(srv, "restart", exe=HELPERS / "never_ready", timeout=300.0)

    t = threading.Thread(target=restart_by_url, daemon=True)
    t.start()
    srv.wait_for_line(line_re(srv.pid, "server reloading"), start=mark)
    r = ctl("restart", "--pid-file", pid_file)
    assert r.returncode == 4, out(r) + srv.stderr()
    why = "a restart is already in progress"
    assert r.stderr == f"gracectl: refused for now: {why} (retry after 1 s)\n", out(r)
    assert re.fullmatch(rf"\d+ refused 1 {why}", outcome_line(pid_file))

    new = wait_descendant(srv, HELPERS / "never_ready")
    os.kill(new, signal.SIGKILL)
    t.join(60)
    assert first["r"].status_code == 500, first["r"].text
    wait_outcome(pid_file, rf"\d+ failed new process {new} was killed by signal 9 .*")
    assert get_pid(srv) == srv.pid


# ---- local: by PID only ------------------------------------------------------------------


@pytest.mark.parametrize("master", [False, True], ids=["self-replacing", "master"])
def test_restart_by_pid_without_a_pid_file(grace_servers, master):
    """No PID file, no outcome file: gracectl watches /proc and reports the
    new process once it serves (self-replacing: the old one has let go of
    its sockets; master: the old child has)."""
    srv = grace_servers.start("basic", "--port", "0", *(["--master"] if master else []))
    if master:
        wait_children(srv, 1)
    old = get_pid(srv)
    mark = srv.mark()
    r = ctl("restart", "--pid", srv.pid)
    assert r.returncode == 0, out(r) + srv.stderr()
    new = int(re.match(RESTARTED_RE, r.stdout).group(1))
    if master:
        srv.wait_for_line(line_re(srv.pid, rf"master: child {new} is serving"), start=mark)
    else:
        assert srv.wait_restart(mark) == new
    assert new != old and get_pid(srv) == new

    r = ctl("status", "--pid", srv.pid if master else new)
    assert r.returncode == 0, out(r)
    assert re.search(r"^last restart: +unknown without --pid-file", r.stdout, re.M), out(r)


def deploy_copy(tmp_path, name="app"):
    """A copy of basic in a directory of its own, as a deploy would leave it."""
    exe = tmp_path / name / "basic"
    exe.parent.mkdir()
    shutil.copy2(BUILD_DIR / "examples" / "basic", exe)
    return exe


def break_deploy(exe):
    """Replace exe, as a deploy does (a new file renamed over it), with a
    program that exits at once: the next restart runs it and fails."""
    new = exe.with_suffix(".new")
    shutil.copy2(HELPERS / "exit_now", new)
    os.rename(new, exe)


@pytest.mark.parametrize("master", [False, True], ids=["self-replacing", "master"])
def test_restart_by_pid_of_a_broken_deploy_fails(grace_servers, tmp_path, master):
    """No PID file, and the executable on disk now exits at once: the new
    process dies within a millisecond, the old one (or the master's old
    child) serves on, and gracectl says the restart failed (exit 1) and
    that the reason is in the log."""
    exe = deploy_copy(tmp_path)
    srv = grace_servers.start("basic", "--port", "0", *(["--master"] if master else []), exe=exe)
    if master:
        wait_children(srv, 1)
    before = get_pid(srv)
    break_deploy(exe)
    r = ctl("restart", "--pid", srv.pid, "--timeout", 30 * VALGRIND_SLOWDOWN)
    assert r.returncode == 1, out(r) + srv.stderr()
    assert re.fullmatch(r"gracectl: restart failed: the new (process|children) exited.*; "
                        r"the reason is in the program's log\n", r.stderr), out(r)  # fmt: skip
    assert get_pid(srv) == before


# ---- URL mode -------------------------------------------------------------------------


def test_url_mode_with_a_token(grace_servers):
    srv = grace_servers.start("basic", "--port", "0", "--admin-token", TOKEN)
    bare = f"http://{HOST}:{srv.port}"

    r = ctl("status", "--url", bare, "--token", TOKEN)
    assert r.returncode == 0, out(r)
    assert re.search(rf"^pid: +{srv.pid}$", r.stdout, re.M), out(r)
    assert re.search(exe_line_re(os.path.realpath(srv.exe)), r.stdout, re.M), out(r)
    assert re.search(rf"^servers: +default +running +{HOST}:{srv.port} +in flight 0$",
                     r.stdout, re.M), out(r)  # fmt: skip

    # Without the token, or with a wrong one: not allowed (5).
    for extra in ([], ["--token", "wrong"]):
        r = ctl("status", "--url", bare, *extra)
        assert r.returncode == 5, out(r)
        assert "not allowed: admin token missing or wrong (HTTP 403)" in r.stderr, out(r)
    r = ctl("restart", "--url", bare)
    assert r.returncode == 5, out(r)
    assert srv.log_pids() == [srv.pid]  # nothing restarted

    # The token from the environment; the admin base URL as a whole.
    mark = srv.mark()
    r = ctl("restart", "--url", admin_url(srv) + "/", env={"GRACECTL_TOKEN": TOKEN})
    assert r.returncode == 0, out(r) + srv.stderr()
    new = int(re.fullmatch(RESTARTED_RE + "\n", r.stdout).group(1))
    assert srv.wait_restart(mark) == new and get_pid(srv) == new

    r = ctl("shutdown", "--url", bare, "--token", TOKEN)
    assert r.returncode == 0, out(r) + srv.stderr()
    assert r.stdout.startswith(f"shutting down: {admin_url(srv)}\nshut down: "), out(r)
    assert wait_gone(srv, new) == 0
    r = ctl("status", "--url", bare, "--token", TOKEN)
    assert r.returncode == 3 and "cannot reach" in r.stderr, out(r)


def test_url_restart_failure_and_master_pid(grace_servers):
    """Master mode through the admin URL: status names the master; a restart
    to a broken executable is the admin's 500 with its reason, exit 1."""
    srv = grace_servers.start("basic", "--port", "0", "--master",
                              "--admin-allow-dir", str(HELPERS))  # fmt: skip
    wait_children(srv, 1)
    r = ctl("status", "--url", admin_url(srv))
    assert r.returncode == 0, out(r)
    assert re.search(rf"^master pid: +{srv.pid} ", r.stdout, re.M), out(r)
    before = get_pid(srv)
    r = ctl("restart", "--url", admin_url(srv), "--exe", HELPERS / "exit_now")
    assert r.returncode == 1, out(r)
    assert re.fullmatch(r"gracectl: restart failed: new process \d+ exited with status 3 "
                        r"before it was ready \(HTTP 500\)\n", r.stderr), out(r)  # fmt: skip
    assert get_pid(srv) == before


# ---- rolling restart ---------------------------------------------------------------------


def fleet_config(tmp_path):
    """A config.yaml with a readiness route, for --health /readyz."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text('server:\n  graceful: true\n  readinessPattern: "/readyz"\n')
    return cfg


def summary_rows(stdout):
    """{url: (old, new, result)} from the summary table."""
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"(http://\S+) +(\d+|-) +(\d+|-) +([\d.]+|-) +(.*)$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3), m.group(5))
    return rows


def test_rolling_restart_of_three_nodes_under_load(grace_servers, tmp_path):
    """Three instances, each under wrk: one after another restarted, each
    ready and healthy (/readyz) before the next begins; a summary table;
    zero failed requests."""
    cfg = fleet_config(tmp_path)
    nodes = [grace_servers.start("basic", "--port", "0", "--config", str(cfg)) for _ in range(3)]
    urls = [f"http://{HOST}:{n.port}" for n in nodes]
    olds = [n.pid for n in nodes]
    marks = [n.mark() for n in nodes]
    loads = Loads(*[Wrk(n.url(), 4, expect=ROOT) for n in nodes],
                  *[Wrk(n.url(), 1, close=True, expect=ROOT) for n in nodes])  # fmt: skip
    with loads:
        loads.wait_progress(100)
        r = ctl("rolling-restart", "--health", "/readyz", *urls)
        assert r.returncode == 0, out(r) + "\n".join(n.stderr() for n in nodes)
        news = [n.wait_restart(m) for n, m in zip(nodes, marks)]
        for old, n in zip(olds, nodes):
            assert wait_gone(n, old) == 0
        loads.wait_progress(100)
        loads.stop()
    print("\n" + loads.report())
    assert loads.failures() == 0, loads.report()

    rows = summary_rows(r.stdout)
    for url, old, new in zip(urls, olds, news):
        assert rows[url + "/debug/admin"][:2] == (str(old), str(new)), out(r)
        assert rows[url + "/debug/admin"][2] == "restarted", out(r)
    assert re.search(r"^node +old pid +new pid +seconds +result$", r.stdout, re.M), out(r)
    assert re.search(r"^all 3 nodes restarted in [\d.]+ s$", r.stdout, re.M), out(r)
    # In order: a line per node on stderr, and each node restarted only
    # after the one before it served from its new process.
    done = [f"[{i + 1}/3] {u}/debug/admin: restarted: new pid {p}, serving and healthy after"
            for i, (u, p) in enumerate(zip(urls, news))]  # fmt: skip
    at = [r.stderr.find(d) for d in done]
    assert -1 not in at and at == sorted(at), out(r)
    for prev, (n, m) in zip(nodes, zip(nodes[1:], marks[1:])):
        k = log_index(n, r": server reloading", m)
        served = log_index(prev, r": new process \d+ is serving")
        assert k is not None and served is not None
        assert stamp(prev.lines[served]) <= stamp(n.lines[k])


def stamp(line):
    return line[:23]  # "2026-11-27 11:52:48.703" sorts as text


def test_rolling_restart_stops_at_a_broken_node(grace_servers, tmp_path):
    """Each node runs its own copy of the program, as on separate machines;
    on node 2 the deploy went wrong and left a program that exits at once.
    The rolling restart restarts node 1, fails at node 2 with grace's
    reason (node 2's old process serves on), says so, exits 1, and never
    touches node 3."""
    exes = [deploy_copy(tmp_path, f"node{k}") for k in (1, 2, 3)]
    nodes = [grace_servers.start("basic", "--port", "0", exe=exe) for exe in exes]
    break_deploy(exes[1])  # node 2's deploy went wrong
    urls = [f"http://{HOST}:{n.port}/debug/admin" for n in nodes]
    olds = [n.pid for n in nodes]
    marks = [n.mark() for n in nodes]

    r = ctl("rolling-restart", *urls)
    assert r.returncode == 1, out(r)
    new1 = nodes[0].wait_restart(marks[0])
    assert re.search(rf"gracectl: rolling restart stopped at node 2 of 3 \({re.escape(urls[1])}\): "
                     r"restart failed: new process \d+ exited with status 3 before it was ready "
                     r"\(HTTP 500\); 1 node not restarted", r.stderr), out(r)  # fmt: skip
    rows = summary_rows(r.stdout)
    assert rows[urls[0]] == (str(olds[0]), str(new1), "restarted"), out(r)
    assert rows[urls[1]][:2] == (str(olds[1]), "-"), out(r)
    assert rows[urls[1]][2].startswith("FAILED: restart failed: new process"), out(r)
    assert rows[urls[2]] == ("-", "-", "not restarted"), out(r)

    assert get_pid(nodes[0]) == new1
    assert get_pid(nodes[1]) == olds[1]
    nodes[1].wait_for_line(line_re(olds[1], "restart failed: new process"), start=marks[1])
    assert get_pid(nodes[2]) == olds[2]
    assert log_index(nodes[2], "reloading|restart|admin", marks[2]) is None, nodes[2].stderr()
    assert nodes[2].log_pids() == [olds[2]]


def test_rolling_restart_in_parallel_from_a_file(grace_servers, tmp_path):
    """--file with comments and --parallel 2: every node restarted."""
    nodes = [grace_servers.start("basic", "--port", "0") for _ in range(3)]
    fleet = tmp_path / "fleet.txt"
    fleet.write_text("# the fleet\n" + "".join(
        f"http://{HOST}:{n.port}   # node {i}\n\n" for i, n in enumerate(nodes)))  # fmt: skip
    marks = [n.mark() for n in nodes]
    r = ctl("rolling-restart", "--parallel", "2", "--file", fleet)
    assert r.returncode == 0, out(r)
    rows = summary_rows(r.stdout)
    for n, m in zip(nodes, marks):
        new = n.wait_restart(m)
        assert rows[f"http://{HOST}:{n.port}/debug/admin"] == (str(n.pid), str(new), "restarted")
