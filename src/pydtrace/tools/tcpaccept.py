"""tcpaccept: see tcp.py (tcpaccept.d)."""

from pydtrace.tools.tcp import Tcpaccept

TOOL = Tcpaccept
