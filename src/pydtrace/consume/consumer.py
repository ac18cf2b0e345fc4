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

from pydtrace.consume.aggprint import _rawbytes
from pydtrace.consume.aggregation import AggPool, Aggregation
from pydtrace.consume.records import Fault, Record
from pydtrace.lang.types import CType

# trace() formats: (non-quiet, quiet) by (size, signed)
_TRACE_INT = {
    (1, True): " %3d", (2, True): " %5d", (4, True): " %10d", (8, True): " %19d",
    (1, False): " %3d", (2, False): " %5d", (4, False): " %10d", (8, False): " %20d",
}  # fmt: skip


# drop kinds counted per CPU: the word before "drop"
_CPU_DROPS = {"DTRACEDROP_PRINCIPAL": "", "DTRACEDROP_AGGREGATION": "aggregation "}
# drop kinds counted for the whole session: (what is counted, what follows the count's plural)
_STATUS_DROPS = {
    "DTRACEDROP_DYNAMIC": ("dynamic variable drop", ""),
    "DTRACEDROP_DYNRINSE": ("dynamic variable drop", " with non-empty rinsing list"),
    "DTRACEDROP_DYNDIRTY": ("dynamic variable drop", " with non-empty dirty list"),
    "DTRACEDROP_SPEC": ("speculative drop", ""),
    "DTRACEDROP_SPECBUSY": ("failed speculation", " (available buffer(s) still busy)"),
    "DTRACEDROP_SPECUNAVAIL": ("failed speculation", " (no speculative buffer available)"),
    "DTRACEDROP_STKSTROVERFLOW": ("jstack()/ustack() string table overflow", ""),
    "DTRACEDROP_DBLERROR": ("error", " in ERROR probe enabling"),
}


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
        self.options = options
        self._pool: AggPool | None = None
        self.aggs = aggs
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.pname = pname
        self.testing = testing
        self.json = json_out
        self.exit_status: int | None = None
        self.header_done = False
        self.records: list[Record] = []  # kept for the Python API
        self.keep = False
        self.current: Record | None = None  # the record being printed (for library errors)
        self.last_cpu = 0  # where aggregation drops are reported
        self._stdout: TextIO | None = None  # the output freopen() replaced
        self.drop_counts: dict[str, int] = {}  # drop kind -> count already reported

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
        self.current = rec
        self.last_cpu = rec.cpu
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
        self.current = None
        self.out.flush()

    def _item(self, item: tuple, quiet: bool) -> None:
        kind = item[0]
        w = self.out.write
        if kind == "trace":
            w(
                format_trace(
                    item[1], item[2], quiet, self._rawbytes(), int(self.options.get("strsize", 256))
                )
            )
        elif kind == "printf":
            from pydtrace.consume.printf import format_printf

            w(format_printf(item[1], item[2]))
        elif kind == "printa":
            from pydtrace.consume.aggprint import format_printa

            aggs = [self.aggs[n] for n in item[2]]
            self._check_agg_drops()
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
        elif kind == "freopen":
            from pydtrace.consume.printf import format_printf

            self._freopen(format_printf(item[1], item[2]) if item[1] is not None else "")
        elif kind == "stack":
            w("\n")
        elif kind == "sym":
            w(" %16x" % (item[2] & 0xFFFFFFFFFFFFFFFF) if not quiet else "%x" % item[2])

    def _rawbytes(self) -> bool:
        return bool(self.options.get("rawbytes"))

    def _setopt(self, name: str, value: str | None) -> None:
        """setopt() as dtrace's consumer applies it: only dynamic options may
        change while tracing; a refusal is reported as an error of the
        clause that asked, and tracing goes on."""
        from pydtrace.cli.options import XoptError, validate_xopt

        shown = "1" if value is None else value  # a bare toggle is passed as "1"
        try:
            key, v = validate_xopt(name, shown, active=True)
        except XoptError as e:
            self.liberr(f'couldn\'t set option "{name}" to "{shown}": {e.reason}\n')
            return
        self.options[key] = v

    def _freopen(self, path: str) -> None:
        """freopen(): later output goes to `path` (appended to); "" restores
        the original output.  A file that cannot be opened is a clause error."""
        if self._stdout is None:
            self._stdout = self.out
        if path == "":
            target = self._stdout
        else:
            try:
                target = open(path, "a", encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
            except OSError as e:
                self.liberr(f'couldn\'t freopen() "{path}": {e.strerror}')
                return
        self.out.flush()
        if self.out is not self._stdout:
            self.out.close()
        self.out = target

    def liberr(self, text: str) -> None:
        """A library-level error of the clause being printed (dt_handle_liberr)."""
        rec = self.current
        if rec is None:
            self.err.write(f"{self.pname}: {text}\n")
        else:
            p = rec.probe
            self.err.write(
                f"{self.pname}: error in dt_clause_{rec.clause} for probe ID {p.id} "
                f"({p.provider}:{p.module}:{p.function}:{p.name}): {text}\n"
            )
        self.err.flush()

    def fault(self, f: Fault) -> None:
        self.err.write(f.message(self.pname) + "\n")
        self.err.flush()

    def notice(self, text: str) -> None:
        """A `pname: text` notice on stderr (suppressed in quiet mode)."""
        if not self.quiet:
            self.err.write(f"{self.pname}: {text}\n")

    def drops(self, what: str, n: int, cpu: int | None = None) -> None:
        """Old interface: `what` is "" (principal) or "aggregation "."""
        self.drop(
            "DTRACEDROP_AGGREGATION" if what.strip() == "aggregation" else "DTRACEDROP_PRINCIPAL",
            n,
            cpu,
        )

    def drop(self, kind: str, n: int, cpu: int | None = None) -> None:
        """Report n new drops of one kind (a DTRACEDROP_* name) as dtrace's
        drop handler does; -xdroptags puts the kind's name in front."""
        if n <= 0:
            return
        tag = f"[{kind}] " if self.options.get("droptags") else ""
        if kind in _CPU_DROPS:
            what = _CPU_DROPS[kind]
            text = f"{n} {what}drop{'s' if n > 1 else ''} on CPU {cpu if cpu is not None else self.last_cpu}"
        else:
            what, tail = _STATUS_DROPS.get(kind, ("drop", ""))
            text = f"{n} {what}{'s' if n > 1 else ''}{tail}"
        self.out.flush()
        self.err.write(f"{self.pname}: {tag}{text}\n")
        self.err.flush()

    def _check_agg_drops(self) -> None:
        """Report aggregation drops not reported yet (dtrace does so when it
        snapshots the aggregation buffers: at printa() and at the end)."""
        pool = self._pool
        if pool is None:
            return
        new = pool.drops - self.drop_counts.get("DTRACEDROP_AGGREGATION", 0)
        self.drop_counts["DTRACEDROP_AGGREGATION"] = pool.drops
        self.drop("DTRACEDROP_AGGREGATION", new)

    # --- aggregations -----------------------------------------------------------------
    @property
    def aggs(self) -> dict[str, Aggregation]:
        return self._aggs

    @aggs.setter
    def aggs(self, aggs: dict[str, Aggregation]) -> None:
        """The engine hands over its aggregations before tracing starts: size
        their shared buffer as dtrace does, refusing one too small for a single entry."""
        self._aggs = aggs
        self._pool = None
        if not aggs:
            return
        strsize = int(self.options.get("strsize", 256))
        aggsize = self.options.get("aggsize")
        pool = AggPool.for_aggs(list(aggs.values()), int(aggsize) if aggsize else None, strsize)
        if pool.capacity == 0:
            from pydtrace.session import CompileError

            raise CompileError("could not enable tracing: Enabling exceeds size of buffer")
        self._pool = pool

    # --- the end ------------------------------------------------------------------
    def finish(self) -> None:
        """Print what dtrace prints once tracing has stopped and END has run."""
        self._check_agg_drops()
        if self.json:
            for a in sorted(self.aggs.values(), key=lambda a: a.spec.id):
                if not a.printed and a.data:
                    self._json_agg(a)
            self.out.flush()
            return
        from pydtrace.consume.aggprint import format_exit

        self.out.write("\n")
        self.out.write(
            format_exit(sorted(self.aggs.values(), key=lambda a: a.spec.id), self.options)
        )
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


def format_trace(
    value: Any, ctype: CType, quiet: bool, rawbytes: bool = False, strsize: int = 256
) -> str:
    """trace()'s output for one datum (dtrace's dt_print_trace).

    Integers print at their type's width, strings as text, and anything else
    (structs, unions, arrays: passed as bytes) as a hex dump; with the rawbytes
    option every datum is dumped, integers in their in-memory (little-endian)
    form and strings as their whole strsize buffer.
    """
    if isinstance(value, (bytes, bytearray)):
        return _rawbytes(bytes(value))
    if isinstance(value, str):
        if rawbytes:
            return _rawbytes(_string_record(value, strsize))
        return value if quiet else "  %-33s" % value
    if ctype.is_int() or ctype.is_pointer():
        size = ctype.int_size() if ctype.is_int() else 8
        if size not in (1, 2, 4, 8):
            size = 8
        if rawbytes:
            return _rawbytes((value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
        signed = ctype.is_signed() if ctype.is_int() else False
        bits = 8 * size
        value &= (1 << bits) - 1
        if signed and value >> (bits - 1):
            value -= 1 << bits
        if quiet:
            return "%d" % value
        return _TRACE_INT.get((size, signed), " %19d") % value
    return str(value)


def _string_record(value: str, size: int) -> bytes:
    """A string as its trace record holds it: the text NUL-padded to strsize."""
    data = value.encode("utf-8", "surrogateescape")[: max(size - 1, 0)]
    return data + b"\0" * max(size - len(data), 1)
