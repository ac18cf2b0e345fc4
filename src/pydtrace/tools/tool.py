"""What every tool is: a D program shipped as a .d file, and a thin front end.

The .d file runs as it is (`pydtrace -qs opensnoop.d`): it prints its own
header and rows. Its first lines hold the settings a front end may change,
as D inline definitions:

    inline int SELECTED = pid != $pid;     /* which processes */
    inline int FAILED_ONLY = 0;            /* -x */

The front end turns options into those values (SELECTED becomes a predicate:
`pid == 1234`, `progenyof($target)`, `execname == "ls"`), appends a clause for
-d and for an interval, and runs the result through a pydtrace Session. Its
item hook takes each record's data as the D program recorded it (raw numbers
and strings, not the printf text) and prints it through one output path
(output.Rows): BCC-like columns, or JSON lines with -j. `--print-script`
prints the exact text that runs.
"""

from __future__ import annotations

import os

from pydtrace.tools import options as O
from pydtrace.tools.output import Column, Rows

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def d_string(text: str) -> str:
    """A D string literal holding text."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20:
            out.append("\\%03o" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def source(name: str) -> str:
    """The text of a tool's D program, installed beside this module (read
    directly: importlib.resources costs a tool's start-up zipfile and more)."""
    with open(os.path.join(os.path.dirname(__file__), name), encoding="utf-8") as f:
        return f.read()


def _word(text: str) -> bool:
    return text.replace("_", "a").isalnum() and text.isascii()


def set_inlines(text: str, values: dict[str, str]) -> str:
    """text with each `inline TYPE NAME = VALUE;` line's VALUE replaced (a line
    by line reading, not a regex: re is 3-5 ms of every tool's start)."""
    seen: set[str] = set()
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.startswith("inline") or not line[6:7].isspace():
            continue
        left, eq, right = line.partition("=")
        words = left.split()  # inline, the type's words, the name
        _, semi, rest = right.partition(";")  # (the value replaced: up to the first ";")
        if not eq or not semi or len(words) < 3 or not all(_word(w) for w in words):
            continue
        name = words[-1]
        if name not in values:
            continue
        seen.add(name)
        pad = right[: len(right) - len(right.lstrip())]  # the spaces after "="
        lines[i] = f"{left}={pad}{values[name]};{rest}"
    missing = set(values) - seen
    if missing:  # a front end and its .d file disagree: a bug, not a user error
        raise AssertionError(f"no inline definition of {', '.join(sorted(missing))}")
    return "\n".join(lines)


class Tool:
    """A tool's front end. Subclasses say which .d file, which options, how
    options become inline values, and how a record becomes a row."""

    name = ""
    script_file = ""
    summary = ""
    options: tuple[O.Opt, ...] = ()
    positional = "command"  # "command", "interval" (summaries) or "none"
    kernel_only = False  # probes only the eBPF engine fires (no -p/command on ptrace)
    kernel_only_why = ""  # a kernel_only tool's own reason, said instead of the general one
    follow_children = True  # a command's children are traced too (progenyof)

    def __init__(self, o: O.Parsed) -> None:
        self.o = o
        self.rows = Rows(self.columns(), bool(o.values.get("json")), self.stamp())

    # --- options -> D ----------------------------------------------------------------
    @classmethod
    def parse(cls, argv: list[str]) -> O.Parsed:
        return O.parse(cls.name, argv, cls.options, cls.positional)

    @classmethod
    def usage(cls) -> str:
        return O.usage(cls.name, cls.summary, cls.options, cls.positional)

    def stamp(self) -> str | None:
        v = self.o.values
        return "rel" if v.get("time") else "wall" if v.get("walltime") else None

    def selected(self) -> str:
        """The predicate choosing the processes traced, from -p, a command and -n."""
        v = self.o.values
        if v.get("pid") is not None:
            who = f"progenyof({v['pid']})" if self.follows() else f"pid == {v['pid']}"
        elif self.o.command:
            who = "progenyof($target)" if self.follows() else "pid == $target"
        else:
            who = "pid != $pid"  # everyone but the tool itself
        name = v.get("name")
        if name is not None:
            who += f" && execname == {d_string(name[:15])}"  # execname holds 15 characters
        return who

    def follows(self) -> bool:
        """Are a traced process's children traced too? With a command, yes."""
        return self.follow_children and self.o.values.get("pid") is None

    def inline_values(self) -> dict[str, str]:
        return {"SELECTED": self.selected()}

    def settings(self) -> list[tuple[str, Any]]:
        """dtrace options (-x name=value) the tool's run needs."""
        size = self.o.values.get("bufsize")
        return [] if size is None else [("bufsize", size)]

    def extra_clauses(self) -> str:
        """Clauses appended to the program: -d's end, a summary's interval."""
        return stop_after(self.o.values.get("duration"), "-d")

    def script(self) -> str:
        return set_inlines(source(self.script_file), self.inline_values()) + self.extra_clauses()

    # --- records -> rows ----------------------------------------------------------------
    def columns(self) -> list[Column]:
        return []

    def event(self, probe: Any, values: list[Any]) -> dict[str, Any] | None:
        """The row of one printf record outside BEGIN (None: no row)."""
        return None

    def aggregations(self, aggs: list[Any], interval: bool) -> None:
        """A printa() of these aggregations (snapshots: .data, .value(key));
        interval: printed by an interval's clause, not by END."""

    def started(self, session: Any) -> None:
        """Called once the targets exist, before tracing starts."""

    def begin(self, out: Any) -> None:
        """Print the header (once): when BEGIN's record comes (tracing has begun)
        or, with a command, before it runs (its output must not come first)."""
        self.rows.out = out
        self.rows.header()

    def unseen_switch_ins(self, consumer: Any, item: Any, lost: tuple[str, str]) -> bool:
        """Take printa(@unseen), the count offcputime.d and runqlat keep of the
        switch-ins the kernel did not report, and say it on stderr; lost: what
        follows for (one, several). False for any other item."""
        if item.action.kind != "printa" or item.action.aggs != ("@unseen",):
            return False
        a = consumer.aggs["@unseen"]
        a.printed = True
        n = sum(a.value(k) for k in a.data)
        if n:
            consumer.err.write(f"{self.name}: {n} switch-in{'s' if n > 1 else ''} the kernel "
                               f"did not report: {lost[n > 1]}\n")  # fmt: skip
            consumer.err.flush()
        return True

    def hook(self, consumer: Any, rec: Any, item: Any) -> bool:
        """Consumer.item_hook: print what the D program recorded our way."""
        self.rows.out = consumer.out
        kind = item.action.kind
        if kind == "printf":
            if rec.probe.provider == "dtrace" and rec.probe.name == "BEGIN":
                self.begin(consumer.out)  # the .d file's own header: ours instead
                return True
            ev = self.event(rec.probe, list(item.values))
            if ev is not None:
                self.rows.row(ev)
            return True
        if kind == "printa":
            aggs = [consumer.aggs[n] for n in item.action.aggs]
            self.aggregations(aggs, rec.probe.name != "END")
            for a in aggs:
                a.printed = True
            return True
        return False


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def stop_after(seconds: float | None, option: str) -> str:
    """The clause ending a run after `seconds` (given by `option`), or none."""
    if seconds is None:
        return ""
    return (
        f"\n/* {option} {seconds:g}: stop after {seconds:g} seconds */\n"
        f"profile:::tick-{_ms(seconds)}ms\n{{\n\texit(0);\n}}\n"
    )


def every(interval: float, count: int | None, what: str, body: str) -> str:
    """The clause running `body` (D statements, each line ending in a newline)
    every `interval` seconds, and the one ending the run after `count` of them."""
    ms = _ms(interval)
    text = f"\n/* every {interval:g} seconds: {what} */\nprofile:::tick-{ms}ms\n{{\n{body}}}\n"
    if count is not None:
        text += f"\n/* ... {count} times */\nprofile:::tick-{ms}ms\n/++intervals == {count}/\n{{\n\texit(0);\n}}\n"  # fmt: skip
    return text
