"""What profile and offcputime share: stacks (user and kernel) with a value
per process, printed as BCC prints them (each stack innermost first, then
`-  comm (pid)` and the value, the largest last), as folded lines
(--folded) or as a flame graph (--svg FILE, flamegraph.py), or as JSON.

Frames print as BCC's: the function's name (no module, no offset),
`[unknown]` for an address no symbol holds. A positional argument is the
duration in seconds, as BCC's tools take it; a command goes after --.
"""

from __future__ import annotations

import os

from pydtrace.consume.stacks import StackKey, frame_name, user_frames
from pydtrace.outfiles import OutputFailed, open_output
from pydtrace.tools import flamegraph
from pydtrace.tools import options as O
from pydtrace.tools.tool import Tool, stop_after

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

USER_ONLY = O.Opt("U", "user-stacks-only", "user_only", "show user stacks only (no kernel stacks)")
KERNEL_ONLY = O.Opt("K", "kernel-stacks-only", "kernel_only", "show kernel stacks only (no user stacks)")  # fmt: skip
FOLDED = O.Opt("f", "folded", "folded", "print folded stacks (comm;frame;...;frame value), for flame graphs")  # fmt: skip
SVG = O.Opt(None, "svg", "svg", "write a flame graph (interactive SVG) to FILE", "FILE")
DELIMITED = O.Opt("d", "delimited", "delimited", "put a '-' between the kernel and the user stack")
COMMAND = O.Opt(None, "command", "command", "run CMD; trace it and its children until it ends", "CMD", O.command_words)  # fmt: skip


def short_name(kind: str, pc: int, pid: int) -> str:
    """A frame as BCC names it: the function, else [unknown]."""
    name = frame_name(kind, pc, pid)
    if "`" not in name:
        return "[unknown]"
    func = name.split("`", 1)[1].split("+0x", 1)[0]
    return "[unknown]" if func.startswith("0x") else func


def names(key: Any) -> list[str]:
    """A stack key's frames, innermost first."""
    if not isinstance(key, StackKey):
        return []
    frames = user_frames(key.frames, key.pid) if key.kind == "ustack" else key.frames
    return [short_name(key.kind, pc, key.pid) for pc in frames if pc]


class StackTool(Tool):
    """A tool whose program keeps `@name[pid, execname, ustack(), stack()]`
    (or only one of the stacks, with -U / -K) and prints it at the end."""

    positional = "interval"  # BCC's [duration]
    follow_children = True
    countname = "samples"  # what a value counts (flame graph titles)
    what = ""  # the heading's first words

    @classmethod
    def parse(cls, argv: list[str]) -> O.Parsed:
        o = super().parse(argv)
        o.values.setdefault("pid", None)
        o.values.setdefault("name", None)
        if o.help or o.version:
            return o
        if o.count is not None:
            raise O.UsageError(f"unexpected argument '{o.count}' (one duration in seconds)")
        if o.user_only and o.kernel_only:
            raise O.UsageError("-U and -K cannot be used together")
        if o.folded and o.json:
            raise O.UsageError("-f and -j cannot be used together")
        return o

    def __init__(self, o: O.Parsed) -> None:
        super().__init__(o)
        self.totals: dict[tuple[Any, ...], int] = {}
        self.counts: dict[tuple[Any, ...], int] = {}  # how many samples or times off CPU
        self.svg_fd: int | None = None

    def duration_clause(self) -> str:
        return stop_after(self.o.interval, "duration")

    def stacks_inlines(self) -> dict[str, str]:
        return {"KERNEL_STACKS": "0" if self.o.user_only else "1",
                "USER_STACKS": "0" if self.o.kernel_only else "1"}  # fmt: skip

    # --- output ----------------------------------------------------------------------
    def started(self, session: Any) -> None:
        """Open the --svg file before tracing: a path that cannot be written to
        is one line before anything runs. Opened as outfiles opens every output:
        never through another user's symbolic link or into their file."""
        path = self.o.svg
        if path is None:
            return
        try:
            self.svg_fd = open_output(path, replace=True, mode=0o644)
        except OSError as e:
            raise OutputFailed(path, e) from None

    def heading(self) -> str:
        o = self.o
        who = f"PID {o.pid}" if o.pid is not None else "the command" if o.command else "all threads"
        stacks = "user" if o.user_only else "kernel" if o.kernel_only else "user + kernel"
        end = f" for {o.interval:g} secs." if o.interval is not None else "... Hit Ctrl-C to end."
        return f"{self.what} of {who} by {stacks} stack{end}"

    def begin(self, out: Any) -> None:
        self.rows.out = out
        if self.o.folded or self.rows.json or self.rows.header_done:
            return
        self.rows.header_done = True
        out.write(self.heading() + "\n")
        out.flush()

    def add(self, pid: int, comm: str, ustack: Any, kstack: Any, value: int, n: int = 1) -> None:
        """n more events, value in all, for a (pid, comm, user stack, kernel stack)."""
        key = (pid, comm, ustack, kstack)
        self.totals[key] = self.totals.get(key, 0) + value
        self.counts[key] = self.counts.get(key, 0) + n

    def aggregations(self, aggs: list[Any], interval: bool) -> None:
        for agg in aggs:
            for key in agg.data:
                pid, comm = key[0], key[1]
                stacks = {k.kind: k for k in key[2:] if isinstance(k, StackKey)}
                n = agg.value(key)
                self.add(pid, comm, stacks.get("ustack"), stacks.get("stack"), n, n)

    def report(self) -> None:
        """Print (or write) what was gathered, once, at the end."""
        # stacks whose frames are the same functions are one (their pcs differ)
        merged: dict[tuple[Any, ...], int] = {}
        counts: dict[tuple[Any, ...], int] = {}
        for (pid, comm, ustack, kstack), value in self.totals.items():
            key = (pid, comm, tuple(names(ustack)), tuple(names(kstack)))
            merged[key] = merged.get(key, 0) + value
            counts[key] = counts.get(key, 0) + self.counts[(pid, comm, ustack, kstack)]
        rows = sorted((v, pid, comm, list(u), list(k)) for (pid, comm, u, k), v in merged.items())
        folded = flamegraph.fold(
            (
                [
                    comm,
                    *reversed(u),
                    *(["-"] if self.o.delimited and u and k else []),
                    *reversed(k),
                ],
                v,
            )
            for v, _, comm, u, k in rows
        )
        if self.svg_fd is not None:
            self.write_svg(folded)
        w = self.rows.out.write
        if self.rows.json:
            for v, pid, comm, u, k in reversed(rows):
                n = counts[(pid, comm, tuple(u), tuple(k))]
                self.rows.record({"pid": pid, "comm": comm, "ustack": u, "kstack": k,
                                  self.countname: v, "count": n})  # fmt: skip
        elif self.o.folded:
            w(flamegraph.folded_text(folded))
        elif self.svg_fd is None:
            for v, pid, comm, u, k in rows:
                w("".join(f"    {f}\n" for f in k))
                if self.o.delimited and u and k:
                    w("    --\n")
                w("".join(f"    {f}\n" for f in u))
                w("    %-16s %s (%d)\n        %d\n\n" % ("-", comm, pid, v))

    def write_svg(self, folded: dict[str, int]) -> None:
        assert self.svg_fd is not None
        text = flamegraph.svg(folded, self.svg_title(), self.countname)
        fd, self.svg_fd = self.svg_fd, None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            raise OutputFailed(self.o.svg, e) from None

    def svg_title(self) -> str:
        return self.what

    def hook(self, consumer: Any, rec: Any, item: Any) -> bool:
        done = super().hook(consumer, rec, item)
        if rec.probe.name == "END" and rec.probe.provider == "dtrace" and item is rec.items[-1]:
            self.report()  # END's last item: everything has come in
        return done
