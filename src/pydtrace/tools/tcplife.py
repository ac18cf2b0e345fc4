"""tcplife: see tcp.py (tcplife.d)."""

from pydtrace.tools.tcp import Tcplife

TOOL = Tcplife
