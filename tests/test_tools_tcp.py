"""tcpconnect, tcpaccept and tcplife against a program whose TCP connections
are known: it connects to its own loopback servers (IPv4 and, where there
is one, IPv6), moves known bytes, makes one refused attempt, and writes
what it did (its sockets' names) to a file."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest

from conftest import bpf_maps_ok, need
from toolrun import can_run_as_nobody, script, tool

PROGRAM = """\
import json, socket, sys

facts = {"conns": [], "refused": None}
port4 = int(sys.argv[2])
for fam, host, port in ((socket.AF_INET, "127.0.0.1", port4), (socket.AF_INET6, "::1", 0)):
    try:
        s = socket.socket(fam)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
    except OSError:
        continue  # no IPv6 here
    s.listen()
    c = socket.socket(fam)
    c.connect(s.getsockname()[:2])
    a, _ = s.accept()
    c.sendall(b"x" * 5000)
    got = 0
    while got < 5000:
        got += len(a.recv(65536))
    a.sendall(b"y" * 3000)
    got = 0
    while got < 3000:
        got += len(c.recv(65536))
    facts["conns"].append({"ip": 4 if fam == socket.AF_INET else 6,
                           "client": list(c.getsockname()[:2]), "server": list(a.getsockname()[:2])})
    c.close()
    a.close()
    s.close()
r = socket.socket()
r.bind(("127.0.0.1", 0))
closed = r.getsockname()[1]
r.close()
try:
    socket.create_connection(("127.0.0.1", closed))
except ConnectionRefusedError:
    facts["refused"] = closed
json.dump(facts, open(sys.argv[1], "w"))
"""


# the comm of the program run as sys.executable: the name it was exec'd by (a venv's `python`)
COMM = os.path.basename(sys.executable)[:15]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(tmp: Path, name: str, *opts: str) -> tuple[list[dict], dict]:
    need(bpf_maps_ok(), f"{name} needs the eBPF engine")
    facts_file = tmp / "facts.json"
    port = free_port()
    prog = script(tmp, "tcp.py", PROGRAM)
    r = tool(name, "-j", *[o.replace("PORT4", str(port)) for o in opts], "--",
             sys.executable, prog, str(facts_file), str(port))  # fmt: skip
    assert (r.status, r.err) == (0, "")
    facts = json.loads(facts_file.read_text())
    facts["port4"] = port
    assert facts["conns"][0]["server"][1] == port and facts["refused"]
    rows = r.json()
    assert len({e["pid"] for e in rows}) == 1 and {e["comm"] for e in rows} == {COMM}
    return rows, facts


def test_tcpconnect(tmp_path: Path) -> None:
    """One row per connect(), refused attempt included; -P keeps one port's."""
    rows, facts = run(tmp_path, "tcpconnect")
    expect = [(c["ip"], c["client"][0], c["server"][0], c["server"][1]) for c in facts["conns"]]
    expect.append((4, "127.0.0.1", "127.0.0.1", facts["refused"]))
    assert [(e["ip"], e["saddr"], e["daddr"], e["dport"]) for e in rows] == expect
    rows, facts = run(tmp_path, "tcpconnect", "-P", "PORT4")
    assert [(e["ip"], e["daddr"], e["dport"]) for e in rows] == [(4, "127.0.0.1", facts["port4"])]


def test_tcpaccept(tmp_path: Path) -> None:
    """One row per accept(): the client's end as remote, the server's as local."""
    rows, facts = run(tmp_path, "tcpaccept")
    expect = [(c["ip"], *c["client"], *c["server"]) for c in facts["conns"]]
    assert [(e["ip"], e["raddr"], e["rport"], e["laddr"], e["lport"]) for e in rows] == expect
    rows, facts = run(tmp_path, "tcpaccept", "-P", "PORT4")
    assert [(e["ip"], e["lport"]) for e in rows] == [(4, facts["port4"])]


def test_tcplife(tmp_path: Path) -> None:
    """Each connection's both sockets with the bytes each sent and received,
    and the refused attempt (nothing moved); lives in order of closing."""
    rows, facts = run(tmp_path, "tcplife")
    expect = []
    for c in facts["conns"]:  # the client closes first, then the accepted socket
        expect.append((*c["client"], *c["server"], 5000, 3000))
        expect.append((*c["server"], *c["client"], 3000, 5000))
    got = [(e["laddr"], e["lport"], e["raddr"], e["rport"], e["tx"], e["rx"]) for e in rows]
    assert got[:-1] == expect
    refused = rows[-1]
    assert (refused["raddr"], refused["rport"], refused["tx"], refused["rx"]) == (
        "127.0.0.1", facts["refused"], 0, 0)  # fmt: skip
    assert all(0 < e["ns"] < 60e9 and e["ms"] == "%.2f" % (e["ns"] / 1e6) for e in rows)
    assert all(e["tx_kb"] == e["tx"] // 1024 and e["rx_kb"] == e["rx"] // 1024 for e in rows)


@pytest.mark.parametrize("name", ["tcpconnect", "tcpaccept", "tcplife"])
def test_columns(tmp_path: Path, name: str) -> None:
    need(bpf_maps_ok(), f"{name} needs the eBPF engine")
    prog = script(tmp_path, "tcp.py", PROGRAM)
    r = tool(name, "--", sys.executable, prog, str(tmp_path / "f.json"), str(free_port()))
    assert (r.status, r.err) == (0, "")
    head = r.out.splitlines()[0]
    assert (
        head
        == {
            "tcpconnect": "PID     COMM             IP SADDR            DADDR            DPORT",
            "tcpaccept": "PID     COMM             IP RADDR            RPORT LADDR            LPORT",
            "tcplife": "PID     COMM             LADDR            LPORT RADDR            RPORT  TX_KB  RX_KB MS",
        }[name]
    )
    facts = json.loads((tmp_path / "f.json").read_text())
    c = facts["conns"][0]
    row = r.out.splitlines()[1].split()
    if name == "tcpconnect":
        assert row[2:] == ["4", "127.0.0.1", "127.0.0.1", str(c["server"][1])]
    elif name == "tcpaccept":
        assert row[2:] == ["4", "127.0.0.1", str(c["client"][1]), "127.0.0.1", str(c["server"][1])]
    else:
        assert row[2:8] == [
            "127.0.0.1",
            str(c["client"][1]),
            "127.0.0.1",
            str(c["server"][1]),
            "4",
            "2",
        ]


@pytest.mark.parametrize("name", ["tcpconnect", "tcpaccept", "tcplife"])
def test_not_on_ptrace(name: str) -> None:
    """The ptrace engine cannot see the kernel's TCP state: one line saying so."""
    r = tool(name, "--engine", "ptrace", "--", "true")
    assert (r.status, r.out, r.err) == (1, "", (
        f"{name}: needs the eBPF engine: TCP state changes (sock:inet_sock_set_state) happen "
        "inside the kernel's TCP code, which the ptrace engine cannot see\n"))  # fmt: skip


@pytest.mark.skipif(not can_run_as_nobody(), reason="needs root, setpriv and a user nobody")
def test_unprivileged() -> None:
    r = tool("tcplife", "--", "true", user="nobody")
    assert r.status == 1 and r.out == ""
    assert r.err.startswith(
        "tcplife: needs the eBPF engine: TCP state changes (sock:inet_sock_set_state) happen "
        "inside the kernel's TCP code, which the ptrace engine cannot see; this process "
        "cannot use it: "
    ), r.err


def test_bad_port() -> None:
    for v, why in (("0", "not a port number (1-65535)"), ("http", "not a port number")):
        r = tool("tcpconnect", "-P", v)
        assert (r.status, r.out, r.err) == (
            2,
            "",
            f"tcpconnect: invalid value for -P: '{v}': {why}\n",
        )
