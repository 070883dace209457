"""Two named servers in one process, two ports each (examples/multi.c, the
seed's "多服务及多端口" example): s1 on the first two ports, s2 on the last two;
one signal shuts every server down."""

import re
import signal

from conftest import http, port_refuses


def start_multi(servers):
    return servers.start("multi", "--ports", "0,0,0,0", n_ports=4)


def test_each_server_answers_on_its_two_ports(servers):
    srv = start_multi(servers)
    assert len(set(srv.ports)) == 4, srv.ports
    names = {}
    for i, port in enumerate(srv.ports):
        r = http("GET", srv.url("/", i))
        assert r.status_code == 200
        names[port] = r.text
        r = http("GET", srv.url("/pid", i))
        assert r.status_code == 200 and r.text == f"{srv.pid}\n"
    # grace_server_start() logs its addresses before it returns, and multi
    # starts s1 before s2: the first two logged ports are s1's.
    assert [names[p] for p in srv.ports] == ["s1\n", "s1\n", "s2\n", "s2\n"], names


def test_sigterm_shuts_all_servers_down(servers):
    srv = start_multi(servers)
    for i in range(4):
        assert http("GET", srv.url("/", i)).status_code == 200
    srv.send_signal(signal.SIGTERM)
    code = srv.wait_exit(timeout=15)
    assert code == 0, f"exit code {code}\n{srv.stderr()}"
    assert any("server shutting down" in l for l in srv.lines), srv.stderr()
    last = [l for l in srv.lines if "all servers shutdown" in l]
    assert len(last) == 1, srv.stderr()
    assert re.search(rf" {srv.pid}: all servers shutdown$", last[0]), last[0]
    for port in srv.ports:
        assert port_refuses(port, timeout=5), f"port {port} still accepts"
