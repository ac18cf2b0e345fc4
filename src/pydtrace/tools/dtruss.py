"""dtruss: every system call of a command or process with its arguments
decoded and its result, as macOS's dtruss prints them (dtruss.d).

The D program records each call's six argument registers and, for the
calls that take strings, the strings (read at the return: see opensnoop.d);
this front end decodes them by the call's prototype (probes/syscalls) as
strace does: flags by name, descriptors, pointers in hex, errnos named.
"""

from __future__ import annotations

import os

from pydtrace.tools import decode
from pydtrace.tools import options as O
from pydtrace.tools.tool import Tool, d_string, stop_after

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# arguments declared `const char *` that hold data, not a string
_DATA = frozenset({("write", "buf"), ("pwrite64", "buf"), ("mq_timedsend", "u_msg_ptr")})
# the calls whose data buffer dtruss.d shows (up to DATA_BYTES bytes, up to a NUL)
DATA_CALLS = {"read": 1, "pread64": 1, "write": 1, "pwrite64": 1}
DATA_BYTES = 32
_CREATES = os.O_CREAT | getattr(os, "O_TMPFILE", 0)


def string_args(call: Any) -> tuple[int, ...]:
    """The arguments of a call (probes.syscalls.Syscall) that are strings dtruss.d reads."""
    return tuple(
        i
        for i, (ctype, name) in enumerate(call.args)
        if ctype == "const char *" and (call.name, name) not in _DATA
    )


def _table() -> Any:
    from pydtrace.probes.syscalls import table

    return table()


FOLLOW = O.Opt("f", "follow", "follow", "follow children (forks) as they are created")
COUNTS = O.Opt("c", "count", "counts", "print the calls counted when tracing ends")
ELAPSED = O.Opt("e", "elapsed", "elapsed", "print the elapsed time of each call (ELAPSD, us)")
RELATIVE = O.Opt("d", "relative", "relative", "print the time since the first call (RELATIVE, us)")
ALL = O.Opt("a", "all", "all", "print all details: PID/TID, RELATIVE and ELAPSD")
ONLY = O.Opt("t", "trace", "only", "trace this system call only", "SYSCALL")
STACKS = O.Opt("s", "stack", "stacks", "print the user stack of each call after it (ustack())")
COMMAND = O.Opt(None, "command", "command", "run CMD and trace it", "CMD", O.command_words)
DURATION = O.Opt(None, "duration", "duration", "trace for SECONDS, then stop", "SECONDS", O.seconds)  # fmt: skip


class Dtruss(Tool):
    name = "dtruss"
    script_file = "dtruss.d"
    summary = (
        "Trace every system call of a command (dtruss [options] command [arg ...]) or of a "
        "process (-p PID): arguments decoded, result or errno, as macOS's dtruss."
    )
    options = (O.PID, O.NAME, FOLLOW, COUNTS, ELAPSED, RELATIVE, ALL, ONLY, STACKS, COMMAND,
               DURATION, O.JSON, *O.TAIL)  # fmt: skip

    @classmethod
    def parse(cls, argv: list[str]) -> O.Parsed:
        o = super().parse(argv)
        targets = o.pid is not None or o.command or o.name is not None
        if not (o.help or o.version or o.print_script or targets):
            raise O.UsageError("give a command, -p PID or -n NAME (see dtruss -h)")
        only = o.values.get("only")
        if only is not None:
            try:
                o.values["only"] = _table().by_name[only].name
            except (KeyError, ValueError):
                raise O.UsageError(f"unknown system call '{only}'") from None
        if o.values.get("all"):
            o.values.update(elapsed=True, relative=True, show_ids=True)
        return o

    def follows(self) -> bool:
        return bool(self.o.follow)

    def selected(self) -> str:
        v = self.o.values
        if v.get("pid") is None and not self.o.command:
            # -n NAME alone: every such process (--print-script alone: as in the .d file)
            name = v.get("name")
            who = "pid == $target" if name is None else f"execname == {d_string(name[:15])}"
        else:
            who = super().selected()
        if v.get("only"):
            who += f' && probefunc == "{v["only"]}"'
        return who

    def inline_values(self) -> dict[str, str]:
        return {**super().inline_values(), "COUNTS": "1" if self.o.counts else "0",
                "STACKS": "1" if self.o.stacks else "0"}  # fmt: skip

    def extra_clauses(self) -> str:
        return stop_after(self.o.values.get("duration"), "--duration")

    # --- rows --------------------------------------------------------------------------
    def __init__(self, o: O.Parsed) -> None:
        super().__init__(o)
        v = o.values
        self.ids = bool(v.get("follow") or v.get("pid") is not None or v.get("show_ids"))
        self.first: int | None = None
        self.calls: dict[str, Any] | None = None
        self.header_done = False
        self.pending: dict[str, Any] | None = None  # -s -j: a call's object, until its stack

    def begin(self, out: Any) -> None:
        if not self.o.json and not self.header_done:
            self.header_done = True
            out.write(self.header())
            out.flush()

    def header(self) -> str:
        h = ""
        if self.ids:
            h += "%-13s " % "PID/TID"
        if self.o.relative:
            h += "%9s " % "RELATIVE"
        if self.o.elapsed:
            h += "%7s " % "ELAPSD"
        return h + "SYSCALL(args) = return\n"

    def hook(self, consumer: Any, rec: Any, item: Any) -> bool:
        out = consumer.out
        kind = item.action.kind
        if kind == "printf":
            p = rec.probe
            if p.provider == "dtrace":
                if p.name == "BEGIN":
                    self.begin(out)
                return True
            self.call(out, p, list(item.values))
            return True
        if kind == "stack":  # -s: the call's user stack, the frames below its line
            frames = self.frames(consumer, item)
            if self.o.json:
                if self.pending is not None:
                    self.pending["ustack"] = frames
                    self.rows.out = out
                    self.rows.record(self.pending)
                    self.pending = None
                return True
            out.write("".join(f"{'':14}{f}\n" for f in frames) + "\n")
            return True
        if kind == "printa":
            (agg,) = [consumer.aggs[n] for n in item.action.aggs]
            agg.printed = True
            self.counts(out, agg)
            return True
        return False

    def call(self, out: Any, probe: Any, values: list[Any]) -> None:
        wall, elapsed, pid, tid, func = values[:5]
        regs = values[5:11]
        returned = probe.name in ("return", "exec-success")  # (an exec into a 32-bit program)
        ret, err = (values[11], values[12]) if returned else (None, 0)
        extras = values[13:] if returned else []
        if self.calls is None:
            try:
                self.calls = {c.name: c for c in _table().calls}
            except ValueError:
                self.calls = {}
        sc = self.calls.get(func)
        name = decode.syscall_name(func)
        texts: dict[int, str] = {}
        if sc is not None and extras:
            where = (DATA_CALLS[func],) if func in DATA_CALLS else string_args(sc)
            texts = dict(zip(where, extras))
        args = []
        if sc is not None:
            for i, (ctype, aname) in enumerate(sc.args):
                if i in texts and func in DATA_CALLS:
                    size = ret if func in ("read", "pread64") else regs[2]
                    args.append(decode.quote(texts[i]) + ("..." if size > DATA_BYTES else ""))
                else:
                    args.append(decode.argument(func, ctype, aname, regs[i], texts.get(i)))
            if func in ("open", "openat") and not regs[sc.nargs - 2] & _CREATES:
                args.pop()  # no O_CREAT: the mode means nothing (strace leaves it out)
        else:
            args = [hex(r) for r in regs]
        result = decode.result(func, ret, err) if returned else "?"
        if self.first is None:
            self.first = wall
        if self.o.json:
            obj: dict[str, Any] = {"time": wall, "pid": pid, "tid": tid, "syscall": name,
                                   "args": args, "ret": ret, "elapsed_ns": elapsed if returned else None}  # fmt: skip
            if err:
                obj["errno"] = decode.errno_name(err)
            if self.o.stacks:  # written with its stack, which comes next
                self.pending = obj
                return
            self.rows.out = out
            self.rows.record(obj)
            return
        line = ""
        if self.ids:
            line += "%-13s " % f"{pid}/{tid}"
        if self.o.relative:
            line += "%9d " % ((wall - self.first) // 1000)
        if self.o.elapsed:
            line += "%7s " % (elapsed // 1000 if returned else "")
        call = f"{name}({', '.join(args)})"
        out.write(f"{line}{call:<39} = {result}\n")

    @staticmethod
    def frames(consumer: Any, item: Any) -> list[str]:
        """A ustack() record's frames as dtrace prints them (module`function+0x12)."""
        from pydtrace.consume.stacks import StackKey, format_stack

        key = item.values[0]
        if not isinstance(key, StackKey):
            return []  # an engine that records no frames
        return [x.strip() for x in format_stack(key, 0).splitlines() if x.strip()]

    def counts(self, out: Any, agg: Any) -> None:
        rows = sorted(((agg.value(k), decode.syscall_name(k[0])) for k in agg.data), key=lambda r: (-r[0], r[1]))  # fmt: skip
        if self.o.json:
            self.rows.out = out
            for n, name in rows:
                self.rows.record({"syscall": name, "count": n})
            return
        out.write("\n%-32s %8s\n" % ("CALL", "COUNT"))
        for n, name in rows:
            out.write("%-32s %8d\n" % (name, n))


TOOL = Dtruss
