"""tcpconnect: see tcp.py (tcpconnect.d)."""

from pydtrace.tools.tcp import Tcpconnect

TOOL = Tcpconnect
