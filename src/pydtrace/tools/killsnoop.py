"""killsnoop: signals sent with kill(), tkill() and tgkill() (killsnoop.d)."""

from __future__ import annotations

from pydtrace.tools import options as O
from pydtrace.tools.decode import errno_name, signal_name
from pydtrace.tools.output import Column
from pydtrace.tools.tool import Tool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Killsnoop(Tool):
    name = "killsnoop"
    script_file = "killsnoop.d"
    summary = (
        "Trace signals sent by kill(), tkill() and tgkill(): sender pid and name, signal, "
        "target pid (or thread), result."
    )
    options = (*O.SNOOP, O.FAILED, *O.TAIL)

    def inline_values(self) -> dict[str, str]:
        return {**super().inline_values(), "FAILED_ONLY": "1" if self.o.failed else "0"}

    def columns(self) -> list[Column]:
        return [Column("pid", "PID", 7), Column("comm", "COMM", 16), Column("call", "CALL", 7),
                Column("signal_name", "SIG", 9), Column("target", "TPID", 7),
                Column("result", "RESULT")]  # fmt: skip

    def event(self, probe: Any, values: list[Any]) -> dict[str, Any] | None:
        time, pid, comm, call, sig, target, ret, returned = values
        ev: dict[str, Any] = {"time": time, "pid": pid, "comm": comm, "call": call, "signal": sig,
                              "signal_name": signal_name(sig), "target": target,
                              "result": ret if returned else None}  # fmt: skip
        if ret < 0:
            ev["errno"] = errno_name(-ret)
        if not self.rows.json:  # BCC's RESULT: 0 or -errno; "?" for a call that never returned
            ev["result"] = (
                (f"{ret} {errno_name(-ret)}" if ret < 0 else str(ret)) if returned else "?"
            )
        return ev


TOOL = Killsnoop
