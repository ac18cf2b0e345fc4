"""Records -> text, the way dtrace(1) prints them.

The consumer knows no engine: it takes Records and Faults in the order they
happened, prints each as dtrace's default or quiet output, applies the
consumer-side actions (exit, setopt, clear, trunc, normalize, printa), and at
the end prints the aggregations not yet printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, TextIO

from pydtrace.consume.aggregation import Aggregation
from pydtrace.consume.records import Fault, Record
from pydtrace.lang.types import CType

# trace() formats: (non-quiet, quiet) by (size, signed)
_TRACE_INT = {
    (1, True): " %3d", (2, True): " %5d", (4, True): " %10d", (8, True): " %19d",
    (1, False): " %3d", (2, False): " %5d", (4, False): " %10d", (8, False): " %20d",
}  # fmt: skip


class Consumer:
    def __init__(
        self,
        aggs: dict[str, Aggregation],
        options: dict[str, Any],
        out: TextIO | None = None,
        err: TextIO | None = None,
        pname: str = "pydtrace",
        testing: bool = False,
        json_out: bool = False,
    ) -> None:
        self.aggs = aggs
        self.options = options
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.pname = pname
        self.testing = testing
        self.json = json_out
        self.exit_status: int | None = None
        self.header_done = False
        self.records: list[Record] = []  # kept for the Python API
        self.keep = False

    @property
    def quiet(self) -> bool:
        return bool(self.options.get("quiet"))

    # --- records ----------------------------------------------------------------
    def record(self, rec: Record) -> None:
        if self.keep:
            self.records.append(rec)
        if self.json:
            self._json_record(rec)
            return
        w = self.out.write
        quiet = self.quiet
        if not quiet:
            if not self.header_done:
                self.header_done = True
                if self.testing:
                    w("%32s\n" % "FUNCTION:NAME")
                else:
                    w("%3s %6s %32s\n" % ("CPU", "ID", "FUNCTION:NAME"))
            p = rec.probe
            fn = f"{p.function}:{p.name}"
            if self.testing:
                w("%32s " % fn)
            else:
                w("%3d %6d %32s " % (rec.cpu, p.id, fn))
        for item in rec.items:
            self._item(item, quiet)
        if not quiet:
            w("\n")
        self.out.flush()

    def _item(self, item: tuple, quiet: bool) -> None:
        kind = item[0]
        w = self.out.write
        if kind == "trace":
            w(format_trace(item[1], item[2], quiet))
        elif kind == "printf":
            from pydtrace.consume.printf import format_printf

            w(format_printf(item[1], item[2]))
        elif kind == "printa":
            from pydtrace.consume.aggprint import format_printa

            aggs = [self.aggs[n] for n in item[2]]
            w(format_printa(item[1], aggs, self.options))
            for a in aggs:
                a.printed = True
        elif kind == "exit":
            self.exit_status = item[1]
        elif kind == "setopt":
            self._setopt(item[1], item[2])
        elif kind == "clear":
            self.aggs[item[1]].clear()
        elif kind == "trunc":
            self.aggs[item[1]].trunc(item[2])
        elif kind == "normalize":
            self.aggs[item[1]].normalize(item[2])
        elif kind == "denormalize":
            self.aggs[item[1]].denormalize()
        elif kind == "system":
            from pydtrace.consume.printf import format_printf

            cmd = format_printf(item[1], item[2]) if item[1] is not None else ""
            self.out.flush()
            subprocess.run(["/bin/sh", "-c", cmd], stdout=self.out, check=False)
        elif kind == "stack":
            w("\n")
        elif kind == "sym":
            w(" %16x" % (item[2] & 0xFFFFFFFFFFFFFFFF) if not quiet else "%x" % item[2])

    def _setopt(self, name: str, value: str | None) -> None:
        self.options[name] = True if value is None else value

    def fault(self, f: Fault) -> None:
        self.err.write(f.message(self.pname) + "\n")
        self.err.flush()

    def notice(self, text: str) -> None:
        """A `pname: text` notice on stderr (suppressed in quiet mode)."""
        if not self.quiet:
            self.err.write(f"{self.pname}: {text}\n")

    def drops(self, what: str, n: int, cpu: int | None = None) -> None:
        if n <= 0:
            return
        s = "s" if n > 1 else ""
        where = f" on CPU {cpu}" if cpu is not None else ""
        self.err.write(f"{self.pname}: {n} {what}drop{s}{where}\n")

    # --- the end ------------------------------------------------------------------
    def finish(self) -> None:
        """Print what dtrace prints once tracing has stopped and END has run."""
        if self.json:
            for a in sorted(self.aggs.values(), key=lambda a: a.spec.id):
                if not a.printed and a.data:
                    self._json_agg(a)
            self.out.flush()
            return
        from pydtrace.consume.aggprint import format_exit

        self.out.write("\n")
        self.out.write(format_exit(sorted(self.aggs.values(), key=lambda a: a.spec.id), self.options))
        self.out.flush()

    # --- JSON lines ---------------------------------------------------------------------
    def _json_record(self, rec: Record) -> None:
        from pydtrace.consume.printf import format_printf

        p = rec.probe
        data: list[Any] = []
        for item in rec.items:
            kind = item[0]
            if kind == "trace":
                data.append({"action": "trace", "value": item[1]})
            elif kind == "printf":
                data.append({"action": "printf", "text": format_printf(item[1], item[2])})
            elif kind == "exit":
                self.exit_status = item[1]
                data.append({"action": "exit", "status": item[1]})
            elif kind == "printa":
                for n in item[2]:
                    self._json_agg(self.aggs[n])
                    self.aggs[n].printed = True
            else:
                self._item(item, True)
        obj = {"type": "record", "cpu": rec.cpu, "id": p.id,
               "probe": f"{p.provider}:{p.module}:{p.function}:{p.name}", "data": data}  # fmt: skip
        self.out.write(json.dumps(obj) + "\n")

    def _json_agg(self, a: Aggregation) -> None:
        rows = []
        for key, _ in a.data.items():
            rows.append({"key": list(key), "value": _json_value(a, key)})
        obj = {"type": "aggregation", "name": a.spec.name, "function": a.spec.func, "data": rows}
        self.out.write(json.dumps(obj) + "\n")


def _json_value(a: Aggregation, key: tuple) -> Any:
    if a.spec.func in ("quantize", "lquantize", "llquantize"):
        return list(a.data[key]) if isinstance(a.data[key], list) else a.data[key]
    return a.value(key)


def format_trace(value: Any, ctype: CType, quiet: bool) -> str:
    """trace()'s output for one datum (dtrace's dt_print_trace widths)."""
    if isinstance(value, str):
        return value if quiet else "  %-33s" % value
    if ctype.is_int() or ctype.is_pointer():
        size = ctype.int_size() if ctype.is_int() else 8
        signed = ctype.is_signed()
        if quiet:
            return "%d" % value
        return _TRACE_INT.get((size, signed), " %19d") % value
    return str(value)
