"""Records -> text, the way dtrace(1) prints them.

The consumer knows no engine: it takes Records and Faults in the order they
happened, prints each as dtrace's default or quiet output, applies the
consumer-side actions (exit, setopt, clear, trunc, normalize, printa), and at
the end prints the aggregations not yet printed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from pydtrace.consume.aggregation import AggPool, Aggregation
from pydtrace.consume.records import Fault, Item, Record
from pydtrace.lang.errors import CompileError
from pydtrace.lang.types import CType
from pydtrace.outfiles import GuardedOutput, OutputFailed, opener

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

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
    # pydtrace's own: a record from the kernel too short for its clause's layout
    "PYDTRACEDROP_SHORT": ("unreadable record", " (shorter than its clause's)"),
    # switches the kernel made without firing sched_switch: sched probes missed them
    "PYDTRACEDROP_SWITCH": ("context switch", " the kernel did not report"),
}


def _flow_kind(name: str) -> str:
    """'entry'/'return' for probe names that are, or end in -, entry/return."""
    # Like dtrace, look only at the first occurrence: "entry-entry" is neither.
    for kind in ("entry", "return"):
        at = name.find(kind)
        if at >= 0 and at + len(kind) == len(name) and (at == 0 or name[at - 1] == "-"):
            return kind
    return ""


class FlowState:
    """Flow indentation on one CPU (dtrace keeps it per buffer being read;
    we read records one CPU stream at a time, so it lasts the whole run)."""

    def __init__(self) -> None:
        self.indent = 0
        self.last_probe: int | None = None
        self.last_clause: int | None = None

    def step(self, provider: str, name: str, probe_id: int, clause: int) -> tuple[str, str]:
        """The flow kind ('' = neither) and prefix of the next record; a return
        outdents here, an entry indents after its line is printed."""
        kind = _flow_kind(name)
        # Another clause of the entry probe just shown is not a new call level.
        if kind == "entry" and probe_id == self.last_probe and clause != self.last_clause:
            kind = ""
        self.last_probe, self.last_clause = probe_id, clause
        if kind == "return" and self.indent > 0:
            self.indent -= 2
        if not kind:
            return "", "| "
        arrows = (" => ", " <= ") if provider == "syscall" else (" -> ", " <- ")
        return kind, arrows[0] if kind == "entry" else arrows[1]


_PAGE = 4096
_DBUF_DATA = (
    16  # where a clause's data starts in its output buffer (after size, specid, prid, stid)
)


def record_size(items: list[Item], strsize: int) -> int:
    """Bytes one clause's record takes in the perf ring buffer: an 8-byte
    event header, a 4-byte raw size, the output buffer minus its first 4
    bytes, all padded to 8 bytes."""
    off = _DBUF_DATA
    for item in items:
        for size, align in item.action.layout(strsize):
            off = (off + align - 1) // align * align + size
    return (8 + 4 + (off - 4) + 7) // 8 * 8


def buffer_data_size(bufsize: int) -> int:
    """The perf ring buffer dtrace gets for bufsize: whole pages, a power of 2."""
    pages = max((bufsize + _PAGE - 1) // _PAGE, 1)
    return (1 << (pages - 1).bit_length()) * _PAGE


_FORMAT_PRINTF: Any = None


def _format_printf() -> Any:
    """printf's formatter, imported on first use (start-up stays light)."""
    global _FORMAT_PRINTF
    if _FORMAT_PRINTF is None:
        from pydtrace.consume.printf import format_printf

        _FORMAT_PRINTF = format_printf
    return _FORMAT_PRINTF


class PrincipalBuffer:
    """A model of one CPU's principal buffer under the switch policy.

    We cannot know when dtrace would read the buffer while tracing, so we
    assume it is drained between probe firings; the records of one firing
    (BEGIN's or END's clauses, say) accumulate, and one that does not fit is
    dropped, as the kernel refuses a perf event larger than the free space."""

    def __init__(self) -> None:
        self.used = 0
        self.last: tuple[int, int, int] | None = None  # (cpu, probe id, clause)
        self.drops: dict[int, int] = {}

    def admit(self, rec: Record, options: dict[str, Any]) -> bool:
        policy = options.get("bufpolicy") or "switch"
        bufsize = options.get("bufsize")
        if policy != "switch" or not isinstance(bufsize, int) or bufsize <= 0:
            return True
        here = (rec.cpu, getattr(rec.probe, "id", 0), rec.clause)
        last = self.last
        if last is None or last[:2] != here[:2] or rec.clause <= last[2]:
            self.used = 0  # a new firing: the consumer has read the buffer
        self.last = here
        size = record_size(rec.items, int(options.get("strsize", 256)))
        if self.used + size > buffer_data_size(bufsize) - 1:
            self.drops[rec.cpu] = self.drops.get(rec.cpu, 0) + 1
            return False
        self.used += size
        return True

    def take_drops(self) -> list[tuple[int, int]]:
        out = sorted(self.drops.items())
        self.drops.clear()
        return out


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
        # A failed write (a full disk, a reader gone) is caught on the stream:
        # reported once, the run ends as after Ctrl-C, and the status is 1.
        # A failing stderr is ignored, as dtrace ignores its fprintf(stderr).
        self.output_error: OutputFailed | None = None
        self.on_output_error: Callable[[], None] | None = None  # the session: stop tracing
        self.out: Any = self._guard(out if out is not None else sys.stdout)
        self.err: Any = GuardedOutput(err if err is not None else sys.stderr, on_error=_ignore)
        self.pname = pname
        self.testing = testing
        self.json = json_out
        # the process a bare %A address resolves in: $target under -c/-p, as
        # dtrace does (the session sets it once its targets are known)
        self.target_pid = -1
        self.exit_status: int | None = None
        self.header_done = False
        self.records: list[Record] = []  # kept for the Python API
        self.keep = False
        self.current: Record | None = None  # the record being printed (for library errors)
        self.last_cpu = 0  # where aggregation drops are reported
        self._stdout: Any = None  # the output freopen() replaced
        self.drop_counts: dict[str, int] = {}  # drop kind -> count already reported
        self._flows: dict[int, FlowState] = {}  # -F state per CPU
        self._principal = PrincipalBuffer()
        # An engine with a real kernel buffer (eBPF) drops records itself and
        # hands them over in batches: it turns the model off and flushes the
        # output once per batch (flush()) instead of once per record.
        self.model_buffer = True
        self.autoflush = True
        # A tool's own output (pydtrace.tools): called with (consumer, record, item)
        # for each item before the consumer's formatting; True means the hook
        # printed it. The hook writes through self.out, so failed writes end the
        # run as they do for dtrace's output.
        self.item_hook: Callable[[Consumer, Record, Item], bool] | None = None
        # The Python API's stream (session.py): called with each record the
        # consumer takes, before it is printed; and, every tick_interval
        # seconds or so while tracing, on_tick (engines call tick() from
        # their loops, on the thread that runs them).
        self.record_hook: Callable[[Record], None] | None = None
        self.on_tick: Callable[[], None] | None = None
        self.tick_interval: float | None = None

    @property
    def quiet(self) -> bool:
        return bool(self.options.get("quiet"))

    def prints_text_only(self) -> bool:
        """True when a record's whole effect is its items' text on self.out
        (quiet, no -F, no JSON, no buffer model, records not kept), so an
        engine may format printf-only records itself and write the text."""
        return (
            self.quiet
            and not self.keep
            and not self.json
            and not self.model_buffer
            and not self.options.get("flowindent")
            and self.item_hook is None
            and self.record_hook is None
        )

    def tick(self) -> None:
        """An engine's loop goes round (see on_tick)."""
        if self.on_tick is not None:
            self.on_tick()

    # --- records ----------------------------------------------------------------
    def record(self, rec: Record) -> None:
        if self.keep:
            self.records.append(rec)
        if self.model_buffer and not self._principal.admit(rec, self.options):
            return  # dropped: dtrace never sees it, so it is neither printed nor acted on
        self._report_principal_drops()
        if self.record_hook is not None:
            self.record_hook(rec)
        if self.json:
            self._json_record(rec)
            return
        w = self.out.write
        quiet = self.quiet
        self.current = rec
        self.last_cpu = rec.cpu
        if self.options.get("flowindent"):
            self._flow_prefix(rec)
        elif not quiet:
            self._header(
                "%32s\n" % "FUNCTION:NAME", "%3s %6s %32s\n" % ("CPU", "ID", "FUNCTION:NAME")
            )
            p = rec.probe
            fn = f"{p.function}:{p.name}"
            if self.testing:
                w("%32s " % fn)
            else:
                w("%3d %6d %32s " % (rec.cpu, p.id, fn))
        else:
            self.header_done = True  # dtrace decides on its heading at the first record
        hook = self.item_hook
        for item in rec.items:
            if hook is None or not hook(self, rec, item):
                self._item(item, quiet)
        if not quiet:
            w("\n")
        self.current = None
        if self.autoflush:
            self.out.flush()

    def flush(self) -> None:
        self.out.flush()

    def _header(self, testing: str, normal: str) -> None:
        if not self.header_done:
            self.header_done = True
            self.out.write(testing if self.testing else normal)

    def _flow_prefix(self, rec: Record) -> None:
        """The -F line start (printed even when quiet): the function indented
        by call depth, with an arrow for entry/return probes."""
        self._header("%-41s\n" % "FUNCTION", "%3s %-41s\n" % ("CPU", "FUNCTION"))
        p = rec.probe
        flow = self._flows.setdefault(rec.cpu, FlowState())
        kind, prefix = flow.step(p.provider, p.name, p.id, rec.clause)
        shown = p.function if kind else f"{p.function}:{p.name}"
        name = " " * flow.indent + prefix + shown
        if kind == "entry":
            flow.indent += 2
        if self.testing:
            self.out.write("%-41s " % name)
        else:
            self.out.write("%3d %-41s " % (rec.cpu, name))

    def _item(self, item: Item, quiet: bool) -> None:
        act, vals = item.action, item.values
        kind = act.kind
        w = self.out.write
        if kind == "trace":
            strsize = int(self.options.get("strsize", 256))
            w(format_trace(vals[0], act.data[0].ctype, quiet, self._rawbytes(), strsize))
        elif kind == "printf":
            w(self._format(item))
        elif kind == "printa":
            from pydtrace.consume.aggprint import format_printa

            aggs = [self.aggs[n] for n in act.aggs]
            self._check_agg_drops()
            w(format_printa(act.format, aggs, self.options, self.target_pid))
            for a in aggs:
                a.printed = True
        elif kind == "exit":
            self.exit_status = vals[0]
        elif kind == "setopt":
            self._setopt(vals[0], vals[1] if len(vals) > 1 else None)
        elif kind == "clear":
            self.aggs[act.aggs[0]].clear()
        elif kind == "trunc":
            self.aggs[act.aggs[0]].trunc(vals[0] if vals else None)
        elif kind == "normalize":
            self.aggs[act.aggs[0]].normalize(vals[0])
        elif kind == "denormalize":
            self.aggs[act.aggs[0]].denormalize()
        elif kind == "system":
            cmd = self._format(item) if act.format is not None else ""
            self.out.flush()
            import subprocess

            subprocess.run(["/bin/sh", "-c", cmd], stdout=self.out, check=False)
        elif kind == "freopen":
            self._freopen(self._format(item) if act.format is not None else "")
        elif kind == "print":
            from pydtrace.consume.print import format_print

            size = self.options.get("printsize")
            w(format_print(vals[0], vals[1], act.data[1].ctype, int(size) if size else None))
        elif kind == "stack":
            from pydtrace.consume.stacks import StackKey, format_stack

            if isinstance(vals[0], StackKey):
                indent = self.options.get("stackindent")
                w(format_stack(vals[0], int(indent) if indent is not None else 14))
            else:
                w("\n")  # an engine that records no frames
        elif kind == "sym":
            from pydtrace.consume.stacks import format_symbol

            w("  %-50s" % format_symbol(act.name, vals[0], vals[1]))

    def _format(self, item: Item) -> str:
        """The text of a printf, system or freopen: its format over its values."""
        act = item.action
        return _format_printf()(act.format, list(zip(item.values, act.types)), self.target_pid)

    def _rawbytes(self) -> bool:
        return bool(self.options.get("rawbytes"))

    def _setopt(self, name: str, value: str | None) -> None:
        """setopt() as dtrace's consumer applies it: only dynamic options may
        change while tracing; a refusal is reported as an error of the
        clause that asked, and tracing goes on."""
        from pydtrace.options import XoptError, validate_xopt

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
            try:  # never through another user's name (outfiles.open_output)
                f = open(path, "a", encoding="utf-8", errors="surrogateescape",  # noqa: SIM115
                         opener=opener(replace=False))  # fmt: skip
            except OSError as e:
                self.liberr(f'couldn\'t freopen() "{path}": {e.strerror}')
                return
            target = self._guard(f)
        self.out.flush()
        if self.out is not self._stdout:
            self.out.close()
        self.out = target

    def _guard(self, stream: Any) -> GuardedOutput:
        return GuardedOutput(stream, on_error=self._output_failed)

    def _output_failed(self, failed: OutputFailed) -> None:
        """The first failed write: one line (none for a reader gone), and the
        session stops tracing as on Ctrl-C (END still runs)."""
        if self.output_error is not None:
            return
        self.output_error = failed
        line = failed.line()
        if line is not None:
            self.err.write(f"{self.pname}: {line}\n")
            self.err.flush()
        if self.on_output_error is not None:
            self.on_output_error()

    def status(self) -> int:
        """The run's exit status: 1 after a failed write, else exit()'s (0 without)."""
        if self.output_error is not None:
            return 1
        return self.exit_status if self.exit_status is not None else 0

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
            plural = ("es" if what.endswith("ch") else "s") if n > 1 else ""
            text = f"{n} {what}{plural}{tail}"
        self.out.flush()
        self.err.write(f"{self.pname}: {tag}{text}\n")
        self.err.flush()

    def _report_principal_drops(self) -> None:
        """Report the records the principal buffer could not take since the
        last report (dtrace notices them when it next reads the buffer)."""
        if self._principal.drops:
            for cpu, n in self._principal.take_drops():
                self.drop("DTRACEDROP_PRINCIPAL", n, cpu)

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
            raise CompileError("could not enable tracing: Enabling exceeds size of buffer")
        self._pool = pool

    # --- the end ------------------------------------------------------------------
    def finish(self) -> None:
        """Print what dtrace prints once tracing has stopped and END has run."""
        self._report_principal_drops()
        self._check_agg_drops()
        if self.json:
            for a in sorted(self.aggs.values(), key=lambda a: a.spec.id):
                if not a.printed and a.data:
                    self._json_agg(a)
        else:
            # folded rows only: flame-graph tools read them; a tool prints its own end
            if not self.options.get("folded") and self.item_hook is None:
                self.out.write("\n")
            if any(not a.printed and a.data for a in self.aggs.values()):
                from pydtrace.consume.aggprint import format_exit

                self.out.write(
                    format_exit(sorted(self.aggs.values(), key=lambda a: a.spec.id), self.options)
                )
        self.out.flush()
        if self._stdout is not None and self.out is not self._stdout:
            self.out.close()  # freopen()'s file: its last write errors are reported here
            self.out = self._stdout

    # --- JSON lines ---------------------------------------------------------------------
    def _json_record(self, rec: Record) -> None:
        p = rec.probe
        data: list[Any] = []
        for item in rec.items:
            act, vals = item.action, item.values
            if act.kind == "trace":
                data.append({"action": "trace", "value": vals[0]})
            elif act.kind == "printf":
                data.append({"action": "printf", "text": self._format(item)})
            elif act.kind == "exit":
                self.exit_status = vals[0]
                data.append({"action": "exit", "status": vals[0]})
            elif act.kind == "printa":
                for n in act.aggs:
                    self._json_agg(self.aggs[n])
                    self.aggs[n].printed = True
            else:
                self._item(item, True)
        obj = {"type": "record", "cpu": rec.cpu, "id": p.id,
               "probe": f"{p.provider}:{p.module}:{p.function}:{p.name}", "data": data}  # fmt: skip
        self.out.write(_json_line(obj))

    def _json_agg(self, a: Aggregation) -> None:
        rows = []
        for key, _ in a.data.items():
            rows.append({"key": list(key), "value": _json_value(a, key)})
        obj = {"type": "aggregation", "name": a.spec.name, "function": a.spec.func, "data": rows}
        self.out.write(_json_line(obj))


def _json_line(obj: Any) -> str:
    import json  # -x json only

    return json.dumps(obj) + "\n"


def _hex_dump(data: bytes) -> str:
    """aggprint.hex_dump, imported on first use (start-up stays light)."""
    from pydtrace.consume.aggprint import hex_dump as dump

    return dump(data)


def _ignore(failed: OutputFailed) -> None:
    """A failed write to stderr: nothing more to say, nowhere to say it."""


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
        return _hex_dump(bytes(value))
    if isinstance(value, str):
        if rawbytes:
            return _hex_dump(_string_record(value, strsize))
        return value if quiet else "  %-33s" % value
    if ctype.is_int() or ctype.is_pointer():
        size = ctype.int_size() if ctype.is_int() else 8
        if size not in (1, 2, 4, 8):
            size = 8
        if rawbytes:
            return _hex_dump((value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
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
    """A string as its trace record holds it: up to strsize characters, then
    NUL padding to strsize + 1 bytes (dtrace 2.x keeps room for the NUL)."""
    data = value.encode("utf-8", "surrogateescape")[:size]
    return data + b"\0" * (size + 1 - len(data))
