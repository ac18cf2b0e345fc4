"""tcpconnect, tcpaccept and tcplife: TCP connections as the kernel's TCP code
sees them (sock:inet_sock_set_state; tcpconnect.d, tcpaccept.d, tcplife.d).

They run on the eBPF engine only: a connection's state changes inside the
kernel (a SYN sent, a handshake completed, a FIN acknowledged), where a
ptrace tracer sees nothing.
"""

from __future__ import annotations

from pydtrace.tools import options as O
from pydtrace.tools.output import Column
from pydtrace.tools.tool import Tool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def port(text: str) -> int:
    try:
        n = int(text, 10)
    except ValueError:
        raise ValueError("not a port number") from None
    if not 0 < n < 65536:
        raise ValueError("not a port number (1-65535)")
    return n


class TcpTool(Tool):
    kernel_only = True
    kernel_only_why = (
        "needs the eBPF engine: TCP state changes (sock:inet_sock_set_state) happen inside "
        "the kernel's TCP code, which the ptrace engine cannot see"
    )


REMOTE_PORT = O.Opt("P", "port", "port", "this remote port only", "PORT", port)
LOCAL_PORT = O.Opt("P", "port", "port", "this local port only", "PORT", port)


class Tcpconnect(TcpTool):
    name = "tcpconnect"
    script_file = "tcpconnect.d"
    summary = "Trace active TCP opens (connect()): pid, command, IP version, source and destination address, destination port."  # fmt: skip
    options = (*O.SNOOP, REMOTE_PORT, *O.TAIL)

    def inline_values(self) -> dict[str, str]:
        return {**super().inline_values(), "PORT": str(self.o.port or 0)}

    def columns(self) -> list[Column]:
        return [Column("pid", "PID", 7), Column("comm", "COMM", 16), Column("ip", "IP", 2, right=True),
                Column("saddr", "SADDR", 16), Column("daddr", "DADDR", 16),
                Column("dport", "DPORT", 5, right=True)]  # fmt: skip

    def event(self, probe: Any, values: list[Any]) -> dict[str, Any] | None:
        time, pid, comm, ip, saddr, daddr, dport = values
        return {"time": time, "pid": pid, "comm": comm, "ip": ip, "saddr": saddr,
                "daddr": daddr, "dport": dport}  # fmt: skip


class Tcpaccept(TcpTool):
    name = "tcpaccept"
    script_file = "tcpaccept.d"
    summary = "Trace passive TCP opens (accept()): pid, command, IP version, remote address and port, local address and port."  # fmt: skip
    options = (*O.SNOOP, LOCAL_PORT, *O.TAIL)

    def inline_values(self) -> dict[str, str]:
        return {**super().inline_values(), "PORT": str(self.o.port or 0)}

    def columns(self) -> list[Column]:
        return [Column("pid", "PID", 7), Column("comm", "COMM", 16), Column("ip", "IP", 2, right=True),
                Column("raddr", "RADDR", 16), Column("rport", "RPORT", 5, right=True),
                Column("laddr", "LADDR", 16), Column("lport", "LPORT", 5, right=True)]  # fmt: skip

    def event(self, probe: Any, values: list[Any]) -> dict[str, Any] | None:
        time, pid, comm, ip, raddr, rport, laddr, lport = values
        return {"time": time, "pid": pid, "comm": comm, "ip": ip, "raddr": raddr,
                "rport": rport, "laddr": laddr, "lport": lport}  # fmt: skip


class Tcplife(TcpTool):
    name = "tcplife"
    script_file = "tcplife.d"
    summary = "Trace TCP connections' lives, printed as each closes: pid, command, both ends, KB sent and received, milliseconds lived."  # fmt: skip
    options = (*O.SNOOP, *O.TAIL)

    def columns(self) -> list[Column]:
        return [Column("pid", "PID", 7), Column("comm", "COMM", 16),
                Column("laddr", "LADDR", 16), Column("lport", "LPORT", 5, right=True),
                Column("raddr", "RADDR", 16), Column("rport", "RPORT", 5, right=True),
                Column("tx_kb", "TX_KB", 6, right=True), Column("rx_kb", "RX_KB", 6, right=True),
                Column("ms", "MS")]  # fmt: skip

    def event(self, probe: Any, values: list[Any]) -> dict[str, Any] | None:
        time, pid, comm, laddr, lport, raddr, rport, tx, rx, ns = values
        return {"time": time, "pid": pid, "comm": comm, "laddr": laddr, "lport": lport,
                "raddr": raddr, "rport": rport, "tx": tx, "rx": rx, "tx_kb": tx // 1024,
                "rx_kb": rx // 1024, "ns": ns, "ms": "%.2f" % (ns / 1e6)}  # fmt: skip
