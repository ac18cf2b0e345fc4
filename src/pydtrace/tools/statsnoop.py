"""statsnoop: stat(), lstat(), fstatat(), statx() and statfs() with their
paths and results (statsnoop.d)."""

from __future__ import annotations

from pydtrace.tools import options as O
from pydtrace.tools.decode import AT_FDCWD, errno_name, syscall_name
from pydtrace.tools.output import Column
from pydtrace.tools.tool import Tool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Statsnoop(Tool):
    name = "statsnoop"
    script_file = "statsnoop.d"
    summary = "Trace the stat family (stat, lstat, fstatat, statx, statfs): pid, command, call, result, path."  # fmt: skip
    options = (*O.SNOOP, O.FAILED, *O.TAIL)

    def inline_values(self) -> dict[str, str]:
        return {**super().inline_values(), "FAILED_ONLY": "1" if self.o.failed else "0"}

    def columns(self) -> list[Column]:
        return [Column("pid", "PID", 7), Column("comm", "COMM", 16), Column("call", "CALL", 10),
                Column("ret", "RET", 3, right=True), Column("err", "ERR", 3, right=True),
                Column("shown", "PATH")]  # fmt: skip

    def event(self, probe: Any, values: list[Any]) -> dict[str, Any] | None:
        time, pid, comm, func, ret, err, dfd, path = values
        ev: dict[str, Any] = {"time": time, "pid": pid, "comm": comm, "call": syscall_name(func),
                              "ret": ret, "err": err, "dfd": dfd, "path": path}  # fmt: skip
        if err:
            ev["errno"] = errno_name(err)
        if not self.rows.json:  # fstat() is fstatat(fd, "", AT_EMPTY_PATH): show the fd
            ev["shown"] = path if path or dfd == AT_FDCWD else f"(fd {dfd})"
        return ev


TOOL = Statsnoop
