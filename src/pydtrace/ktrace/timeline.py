"""kdump --timeline: a ktrace file as a Trace Event Format timeline (the JSON
that Perfetto's UI and chrome://tracing open).

One track per thread (the event's pid and tid), named after its command.
Each system call is a complete slice ("ph": "X") from its CALL record to its
RET record, named after the call, its arguments (kdump's CALL text), result
(kdump's RET text, and the number or errno) and what was recorded while it
ran (paths, structures, I/O, exec arguments) in "args". Signals (PSIG),
exec (ARGS), fork, exit, USER records and lost events are instant events
("ph": "i", scope thread).

Every slice is closed: a call that never returned (exit_group, a thread
killed, the end of the trace) ends at the last record of its thread, with
"returned": false; a RET whose CALL came before the trace began is a slice
of no length with "call_seen": false. Events are written in time order per
track: what happens during a call (a signal's PSIG) is held back and written
after the call's slice, whose "ts" is the call's start.

Timestamps ("ts", "dur") are microseconds since the trace's first record
(the Trace Event Format's unit); otherData.start_ns holds that record's
CLOCK_REALTIME time in nanoseconds. The file is written as it is read
(constant memory but for the calls under way) through outfiles.open_output.
"""

from __future__ import annotations

import json

from pydtrace.ktrace import decode as D
from pydtrace.ktrace import format as F
from pydtrace.ktrace.kdump import BAD_INPUT, DecoderBug, Options, Printer
from pydtrace.lang.dataclass import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

# records that belong to the call under way, kept in its slice's args
_DURING = {F.NAMEI: "paths", F.STRUCT: "structs", F.GENIO: "io", F.EXECENV: "env"}


@dataclass
class _Call:
    ns: int
    name: str
    args: dict[str, Any]
    held: list[dict[str, Any]] = field(default_factory=list)  # instants during the call


class TimelinePrinter(Printer):
    """A Printer whose output is Trace Event Format JSON."""

    def __init__(self, opts: Options, out: BinaryIO) -> None:
        super().__init__(opts, out)
        self.base: int | None = None
        self.calls: dict[tuple[int, int], _Call] = {}  # the call under way per thread
        self.last: dict[tuple[int, int], int] = {}  # the time of each thread's last record
        self.names: dict[tuple[int, int], str] = {}  # each track's name written so far
        self.count = 0  # events written (the file's head goes before the first)

    # --- events --------------------------------------------------------------------
    def _us(self, ns: int) -> float:
        return round((ns - (self.base or 0)) / 1000, 3)

    def _emit(self, ev: dict[str, Any]) -> None:
        self.out.write((b",\n" if self.count else b'{"traceEvents": [\n') + json.dumps(ev).encode())
        self.count += 1

    def _instant(self, rec: F.Record, name: str, args: dict[str, Any]) -> None:
        ev = {"name": name, "ph": "i", "s": "t", "ts": self._us(rec.time_ns), "pid": rec.pid,
              "tid": rec.tid, "args": args}  # fmt: skip
        call = self.calls.get((rec.pid, rec.tid))
        if call is not None:
            call.held.append(ev)  # written after the call's slice (which starts before it)
        else:
            self._emit(ev)

    def _close(self, key: tuple[int, int], end_ns: int, ret: dict[str, Any] | None) -> None:
        call = self.calls.pop(key)
        args = call.args
        if ret is None:
            args["returned"] = False
        else:
            args.update(ret)
        self._emit({"name": call.name, "cat": "syscall", "ph": "X", "ts": self._us(call.ns),
                    "dur": round(max(0, end_ns - call.ns) / 1000, 3), "pid": key[0],
                    "tid": key[1], "args": args})  # fmt: skip
        for ev in call.held:
            self._emit(ev)

    def _name_tracks(self, rec: F.Record) -> None:
        key = (rec.pid, rec.tid)
        if self.names.get(key) == rec.comm:
            return
        self.names[key] = rec.comm
        meta = {"ph": "M", "pid": rec.pid, "tid": rec.tid, "args": {"name": rec.comm}}
        if rec.pid == rec.tid:
            self._emit({"name": "process_name", **meta})
        self._emit({"name": "thread_name", **meta})

    # --- records -------------------------------------------------------------------
    def record(self, rec: F.Record) -> None:
        if rec.type == F.START:
            self.start_session(rec)
            return
        if not self.wanted(rec):
            return
        if self.base is None:
            self.base = rec.time_ns
        self._name_tracks(rec)
        key = (rec.pid, rec.tid)
        ns = rec.time_ns
        if rec.lost:
            self._instant(rec, "events lost", {"lost": rec.lost})
        try:
            self._record(rec, key, ns)
        except BAD_INPUT:
            self._instant(rec, "invalid record", {"type": rec.type, "offset": rec.offset})
        except Exception as e:
            raise DecoderBug(rec, e) from e
        self.last[key] = max(ns, self.last.get(key, ns))

    def _record(self, rec: F.Record, key: tuple[int, int], ns: int) -> None:
        t, p, d = rec.type, rec.payload, self.decoder
        if t == F.SYSCALL:
            if key in self.calls:  # a call whose RET never came (lost): it ends here
                self._close(key, ns, None)
            code, args = F.parse_syscall(p)
            name = d.name(code) or f"[{code}]"
            self.calls[key] = _Call(ns, name, {"call": d.call(code, args), "code": code})
        elif t == F.SYSRET:
            code, error, retval = F.parse_sysret(p)
            ret: dict[str, Any] = {"ret": d.ret(code, error, retval)}
            if error:
                ret["errno"] = D.errname(error)
            else:
                ret["retval"] = retval
            call = self.calls.get(key)
            if call is None or call.args["code"] != code:
                if call is not None:
                    self._close(key, ns, None)
                name = d.name(code) or f"[{code}]"  # called before the trace began
                self.calls[key] = _Call(ns, name, {"code": code, "call_seen": False})
            self._close(key, ns, ret)
        elif t in _DURING and key in self.calls:
            text = self.fields(rec)
            text.pop("data", None)
            self.calls[key].args.setdefault(_DURING[t], []).append(self._during(t, text, rec))
        elif t == F.EXECARGS:
            strings, _ended = _exec_strings(p)
            self._instant(rec, "exec", {"argv": strings, "comm": rec.comm})
        elif t == F.PSIG:
            signo, code, handler, mask, si = F.parse_psig(p)
            self._instant(rec, D.signame(signo), {"text": d.psig(signo, code, handler, mask, si)})
        elif t == F.FORK:
            pid, tid, flags = F.parse_fork(p)
            thread = bool(flags & 0x10000)
            self._instant(rec, "thread" if thread else "fork", {"tid" if thread else "pid": tid if thread else pid})  # fmt: skip
        elif t == F.EXIT:
            if key in self.calls:  # exit_group never returns
                self._close(key, ns, None)
            self._instant(rec, "exit", {"text": D.exit_text(F.parse_exit(p))})
        elif t == F.USER:
            label, data = F.parse_user(p)
            self._instant(rec, label, {"len": len(data)})
        elif t in _DURING:  # outside a call
            self._instant(rec, F.TAGS[t].strip(), self._during(t, self.fields(rec), rec))
        # CSW (context switches) have no place on a syscall timeline

    def _during(self, t: int, fields: dict[str, Any], rec: F.Record) -> Any:
        if t == F.NAMEI:
            return fields["path"]
        if t == F.STRUCT:
            return fields["text"]
        if t == F.GENIO:
            return f"fd {fields['fd']} {fields['rw']} {fields['len']} bytes"
        strings, _ended = _exec_strings(rec.payload)
        return strings

    def finish(self, partial: bool = False) -> None:
        """Close the calls still under way, and the JSON (partial: the input was
        damaged; nothing is written if nothing came before)."""
        if partial and not self.count:
            return
        for key in list(self.calls):
            self._close(key, self.last.get(key, self.calls[key].ns), None)
        other = {"source": "pydtrace kdump --timeline", "start_ns": self.base}
        tail = {"displayTimeUnit": "ns", "otherData": other}
        head = b"\n" if self.count else b'{"traceEvents": [\n'
        self.out.write(head + b"], " + json.dumps(tail)[1:].encode() + b"\n")


def _exec_strings(payload: bytes) -> tuple[list[str], bool]:
    """ARGS/ENV strings, decoded (undecodable bytes as \\x escapes)."""
    if not payload:
        return [], False
    parts = payload.split(b"\0")
    ended = payload.endswith(b"\0")
    if ended:
        parts.pop()
    return [s.decode("utf-8", "backslashreplace") for s in parts], ended
