"""Install grace into a temporary prefix and build programs against it the
two ways docs/guide.md promises:

  cc app.c $(pkg-config --cflags --libs grace)
  find_package(grace) + target_link_libraries(app grace::grace)

The library is configured from this source tree as a Release build with no
examples and no unit tests, so only libgrace.a/libgrace.so are compiled (a
few seconds on 2 cores); it is built once for the module and removed at the
end. Every step has a timeout, so a hang fails the test instead of the suite.

The consumer program is self-contained: it starts a server on 127.0.0.1
port 0, requests "/" from it over a plain socket, prints what it got, shuts
the server down, waits for it and exits 0."""

import os
import re
import shlex
import shutil
import subprocess
import time

import pytest

from conftest import REPO

STEP_TIMEOUT = 180  # seconds for any one configure/build/run step
RUN_TIMEOUT = 30  # seconds for the consumer program

CONSUMER_C = r"""
#define _POSIX_C_SOURCE 200809L
#include <grace.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define CHECK(call)                                                                    \
    do {                                                                               \
        int rc_ = (call);                                                              \
        if (rc_ < 0) {                                                                 \
            fprintf(stderr, "%s: %s\n", #call, grace_strerror(rc_));                 \
            return 1;                                                                  \
        }                                                                              \
    } while (0)

static int hello(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    return grace_response_write(res, "installed ok", 12);
}

/* GET / over HTTP/1.0 (the server closes after the answer); the whole
 * answer lands in buf. Returns its length, or -1. */
static int fetch(int port, char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    static const char req[] = "GET / HTTP/1.0\r\n\r\n";
    size_t len = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            close(fd);
            return -1;
        }
        if (n == 0 || (len += (size_t)n) == cap - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    return (int)len;
}

int main(void)
{
    if (grace_version() != GRACE_VERSION_HEX) {
        fprintf(stderr, "header %#x, library %#x\n", GRACE_VERSION_HEX, grace_version());
        return 1;
    }
    grace_server_t *s = grace_server("consumer");
    if (s == NULL)
        return 1;
    CHECK(grace_server_bind_handler(s, "/", hello, NULL));
    CHECK(grace_server_add_address(s, "127.0.0.1:0"));
    CHECK(grace_server_start(s));
    int ports[4] = {0};
    size_t n = grace_server_ports(s, ports, 4);
    printf("version %s\n", grace_version_string());
    printf("ports %zu %d\n", n, ports[0]);

    char buf[4096];
    if (fetch(ports[0], buf, sizeof buf) < 0) {
        perror("fetch");
        return 1;
    }
    char *eol = strstr(buf, "\r\n");
    char *body = strstr(buf, "\r\n\r\n");
    printf("status %.*s\n", eol ? (int)(eol - buf) : 0, buf);
    printf("body %s\n", body ? body + 4 : "(none)");
    fflush(stdout);

    CHECK(grace_server_shutdown(s));
    grace_wait();
    printf("running %d\n", (int)grace_server_is_running(s));
    printf("done\n");
    return 0;
}
"""

CONSUMER_CMAKE = """
cmake_minimum_required(VERSION 3.16)
project(grace_consumer LANGUAGES C)
find_package(grace 0.1 REQUIRED)
add_executable(app app.c)
target_link_libraries(app PRIVATE grace::grace)
add_executable(app_static app.c)
target_link_libraries(app_static PRIVATE grace::grace_static)
"""


def header_version():
    text = (REPO / "include" / "grace.h").read_text()
    parts = [
        re.search(rf"#define GRACE_VERSION_{p} +(\d+)", text).group(1)
        for p in ("MAJOR", "MINOR", "PATCH")
    ]
    return ".".join(parts)


def clean_env(**extra):
    """Our environment without what could make a step find another grace or
    preload something; plus extra."""
    env = dict(os.environ)
    for k in (
        "CMAKE_PREFIX_PATH",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
        "LD_LIBRARY_PATH",
        "LD_PRELOAD",
        "grace_DIR",
    ):
        env.pop(k, None)
    env.update(extra)
    return env


def run(argv, cwd=None, env=None, timeout=STEP_TIMEOUT):
    """Run a step; fail the test with its output if it fails."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(
            [str(a) for a in argv],
            cwd=cwd,
            env=env if env is not None else clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{shlex.join(map(str, argv))}: no exit after {timeout}s\n{e.stdout!r}")
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        pytest.fail(
            f"{shlex.join(map(str, argv))} exited {p.returncode} "
            f"after {time.monotonic() - t0:.1f}s\nstdout:\n{out}\nstderr:\n{err}"
        )
    return out, err


def need(tool):
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed")
    return path


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """grace, Release, installed into a fresh prefix (removed afterwards)."""
    need("cmake")
    top = tmp_path_factory.mktemp("install")
    build, pfx = top / "b", top / "prefix"
    try:
        run(
            [
                "cmake",
                "-S",
                REPO,
                "-B",
                build,
                "-DCMAKE_BUILD_TYPE=Release",
                "-DGRACE_EXAMPLES=OFF",
                "-DGRACE_TESTS=OFF",
                f"-DCMAKE_INSTALL_PREFIX={pfx}",
            ]
        )
        # Only the library targets (GRACE_EXAMPLES/TESTS are off anyway).
        run(["cmake", "--build", build, "-j2", "--target", "grace_shared", "grace_static"])
        run(["cmake", "--install", build])
        yield pfx
    finally:
        shutil.rmtree(top, ignore_errors=True)


def find_one(root, pattern):
    hits = sorted(root.glob(pattern))
    assert len(hits) == 1, f"{pattern} under {root}: {hits}"
    return hits[0]


def check_output(out, err):
    """What the consumer program must have printed."""
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert lines.get("version") == header_version(), out
    n, port = lines.get("ports", "0 0").split()
    assert n == "1" and int(port) > 0, out
    assert f"http server started listening on [127.0.0.1:{port}]" in err, err
    assert lines.get("status") == "HTTP/1.1 200 OK", out
    assert lines.get("body") == "installed ok", out
    assert lines.get("running") == "0", out
    assert out.splitlines()[-1] == "done", out


def test_installed_files(prefix):
    assert (prefix / "include" / "grace.h").is_file()
    libdir = find_one(prefix, "lib*/libgrace.so").parent
    assert (libdir / "libgrace.a").is_file()
    assert (libdir / "pkgconfig" / "grace.pc").is_file()
    assert (libdir / "cmake" / "grace" / "graceConfig.cmake").is_file()
    assert (libdir / "cmake" / "grace" / "graceConfigVersion.cmake").is_file()
    so = find_one(libdir, "libgrace.so.*.*.*")
    assert so.name == f"libgrace.so.{header_version()}"
    assert os.path.realpath(libdir / "libgrace.so") == str(so.resolve())


def test_consumer_with_pkg_config(prefix, tmp_path):
    need("pkg-config")
    cc = shutil.which("cc") or need("gcc")
    pc = find_one(prefix, "**/pkgconfig/grace.pc")
    env = clean_env(PKG_CONFIG_PATH=str(pc.parent))
    flags, _ = run(["pkg-config", "--cflags", "--libs", "grace"], env=env)
    version, _ = run(["pkg-config", "--modversion", "grace"], env=env)
    assert version.strip() == header_version()
    assert f"-I{prefix}/include" in flags, flags
    (tmp_path / "app.c").write_text(CONSUMER_C)
    # -std=c11 -Wpedantic -Werror: the public header must be clean C11.
    run(
        [cc, "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "app.c", "-o", "app"]
        + shlex.split(flags),
        cwd=tmp_path,
        env=env,
    )
    out, err = run(
        [tmp_path / "app"],
        cwd=tmp_path,
        env=clean_env(LD_LIBRARY_PATH=str(pc.parent.parent)),
        timeout=RUN_TIMEOUT,
    )
    check_output(out, err)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_consumer_with_find_package(prefix, tmp_path):
    src, build = tmp_path / "src", tmp_path / "build"
    src.mkdir()
    (src / "app.c").write_text(CONSUMER_C)
    (src / "CMakeLists.txt").write_text(CONSUMER_CMAKE)
    run(
        [
            "cmake",
            "-S",
            src,
            "-B",
            build,
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_PREFIX_PATH={prefix}",
        ]
    )
    cache = (build / "CMakeCache.txt").read_text()
    m = re.search(r"^grace_DIR:PATH=(.*)$", cache, re.M)
    assert m and m.group(1).startswith(str(prefix)), f"found another grace: {m and m.group(1)}"
    run(["cmake", "--build", build, "-j2"])
    # No LD_LIBRARY_PATH: CMake's build-tree RPATH points at the prefix.
    for exe in ("app", "app_static"):
        out, err = run([build / exe], cwd=build, timeout=RUN_TIMEOUT)
        check_output(out, err)
    shutil.rmtree(tmp_path, ignore_errors=True)
