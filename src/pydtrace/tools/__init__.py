"""The toolkit: opensnoop, execsnoop, syscount, dtruss and the others.

Each tool is a D program shipped as a .d file beside its front end here
(`<name>.d`, `<name>.py`); tool.py says what a front end does, options.py
is the option parser they share, output.py the one output path, decode.py
turns numbers into names. The commands themselves (scripts/, cli/launchers.py) are in
pydtrace.cli.tools, which runs a tool's program through a Session.
docs/tools.md describes every tool.
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# tool name -> its module here (each defines TOOL, a tool.Tool subclass)
TOOLS = {
    "opensnoop": "opensnoop",
    "execsnoop": "execsnoop",
    "syscount": "syscount",
    "errinfo": "errinfo",
    "exitsnoop": "exitsnoop",
    "killsnoop": "killsnoop",
    "statsnoop": "statsnoop",
    "dtruss": "dtruss",
    "iosnoop": "iosnoop",
    "biolatency": "biolatency",
    "runqlat": "runqlat",
    "offcputime": "offcputime",
    "profile": "profile",
    "rwsnoop": "rwsnoop",
    "rwtop": "rwtop",
    "tcpconnect": "tcpconnect",
    "tcpaccept": "tcpaccept",
    "tcplife": "tcplife",
}


def load(name: str) -> Any:
    """The Tool class of a tool named in TOOLS."""
    return import_module(f"pydtrace.tools.{TOOLS[name]}").TOOL
