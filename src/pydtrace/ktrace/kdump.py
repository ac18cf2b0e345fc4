"""kdump: print the records of a ktrace file, OpenBSD's line layout.

Every record is one line (GIO/USER data, ARGS/ENV strings follow on lines
of their own):

     pid[/tid ] comm     [time ]TAG   body

`%6d` pid, with -H `/%-7d` tid, ` %-8s ` comm (long names are not cut),
with -T/-R/-TR `%d.%06d ` seconds, the four-letter tag, two spaces, the body
(decode.py). docs/kdump.md has the options and examples.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import struct
import sys
import time
from collections.abc import Iterable, Iterator

from pydtrace.ktrace import decode as D
from pydtrace.ktrace import format as F
from pydtrace.lang.dataclass import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

JSON_TYPES = {t: tag.strip() for t, tag in F.TAGS.items()}


class KdumpError(Exception):
    """A user error: shown as `kdump: <message>`, exit status 1."""


class DecoderBug(Exception):
    """The decoder failed on a record otherwise than its bytes explain: a bug
    of ours, shown as `kdump: internal error: <message>`, exit status 70."""

    def __init__(self, rec: F.Record, e: Exception) -> None:
        tag = F.TAGS.get(rec.type, f"UNKNOWN({rec.type})").strip()
        super().__init__(
            f"decoding the {tag} record at offset {rec.offset}: {type(e).__name__}: {e}"
        )


# What a payload the record's format rules out raises (too short, a bad
# length or value): it is shown as `invalid record`; anything else is a bug.
BAD_INPUT = (struct.error, ValueError)


@dataclass
class Options:
    decimal: bool = False  # -d
    tids: bool = False  # -H
    follow: bool = False  # -l
    fancy: bool = True  # -n turns decoding off
    absolute: bool = False  # -T
    relative: bool = False  # -R (with -T: since the first record)
    hexmode: int = 0  # 0 vis-escaped text, 1 -x hex, 2 -X hex + ASCII
    maxdata: int | None = None  # -m: at most this many data bytes per record
    pid: int | None = None  # -p: only this process (or thread)
    types: frozenset[int] | None = None  # -t: only these record types
    json: bool = False  # --json: one object per record
    timeline: str | None = None  # --timeline FILE: Trace Event Format JSON there (timeline.py)
    width: int = 80  # screen width for data lines


def trace_types(trstr: str) -> frozenset[int]:
    """Record types for -t letters (`+` = the default set of ktrace)."""
    out: set[int] = set()
    for ch in trstr:
        if ch == "+":
            letters = F.DEFAULT_POINTS
        elif ch in F.POINTS:
            letters = ch
        else:
            raise KdumpError(f"unknown trace point '{ch}' in {trstr}")
        for letter in letters:
            out.update(F.POINTS[letter])
    return frozenset(out)


def screen_width() -> int:
    """OpenBSD: the terminal width of stderr when it is more than 8, else 80."""
    try:
        cols = os.get_terminal_size(2).columns
    except OSError:
        return 80
    return cols if cols > 8 else 80


# --- data dumps (OpenBSD's showbuf) -----------------------------------------------------
# Each yields its text a block at a time: a record's data may be 16 MiB (F.MAX_PAYLOAD),
# which kdump prints without ever holding all of its text.
BLOCK = 1 << 16  # data bytes per piece of text


def show_data(data: bytes, hexmode: int, width: int) -> Iterator[str]:
    if hexmode == 1:
        return _hex(data, width)
    if hexmode == 2:
        return _hex_ascii(data, width)
    return _text(data, width)


def _text(data: bytes, width: int) -> Iterator[str]:
    """7 spaces and a quote, then vis-escaped text; a real newline starts the
    next line with a TAB; long lines break with backslash-newline-TAB."""
    out = ['       "']
    col = 8
    n = len(data)
    table = D.vis_table(D.VIS_CSTYLE)
    for i, c in enumerate(data):
        v = table[c] if c else D.vis_char(c, data[i + 1] if i + 1 < n else 0, D.VIS_CSTYLE)
        if col == 0:
            out.append("\t")
            col = 8
        if v == "\n":
            col = 0
            out.append("\n")
            continue
        w = 8 - (col & 7) if v == "\t" else len(v)
        if col + w > width - 2:
            out.append("\\\n\t")
            col = 8
        col += w
        out.append(v)
        if len(out) >= BLOCK:
            yield "".join(out)
            out.clear()
    if col == 0:
        out.append("       ")
    out.append('"\n')
    yield "".join(out)


def _hex(data: bytes, width: int) -> Iterator[str]:
    """Hex bytes after a TAB, as many a line as fit in the width (24 in 80 columns)."""
    per_line = max(1, (width - 11) // 3 + 1)
    step = per_line * max(1, BLOCK // per_line)
    if not data:
        yield "\t\n"
    for off in range(0, len(data), step):
        block = data[off : off + step]
        yield "".join(
            "\t" + block[i : i + per_line].hex(" ") + "\n" for i in range(0, len(block), per_line)
        )


_PRINTABLE = bytes(c if 0x20 <= c < 0x7F else 0x2E for c in range(256))


def _hex_ascii(data: bytes, width: int) -> Iterator[str]:
    bpl = max(1, (width - 13) // 4)
    out = []
    for off in range(0, len(data), bpl):
        row = data[off : off + bpl]
        cells = row.hex(" ") + " " + "   " * (bpl - len(row))
        text = row.translate(_PRINTABLE).decode("ascii")
        out.append(f"   {off:04x}:  {cells} {text}\n")
        if len(out) * bpl >= BLOCK:
            yield "".join(out)
            out.clear()
    yield "".join(out)


def _strings(payload: bytes) -> tuple[Iterator[bytes], bool]:
    """NUL-terminated strings, found one at a time; False when the last one has no NUL."""
    ended = not payload or payload.endswith(b"\0")

    def each() -> Iterator[bytes]:
        i, n = 0, len(payload)
        while i < n:
            j = payload.find(b"\0", i)
            if j < 0:
                yield payload[i:]
                return
            yield payload[i:j]
            i = j + 1

    return each(), ended


# --- the printer --------------------------------------------------------------------
class Printer:
    """Turns records into kdump's lines (or JSON objects) on a binary stream."""

    def __init__(self, opts: Options, out: BinaryIO) -> None:
        self.o = opts
        self.out = out
        self.decoder = D.decoder(None, opts.fancy, opts.decimal)
        self.started = False  # the first START is the file's, not printed
        self.first_ns: int | None = None
        self.prev_ns = 0

    def finish(self, partial: bool = False) -> None:
        """The input has ended (partial: at damage; a timeline closes its JSON)."""

    def start_session(self, rec: F.Record) -> dict[str, str]:
        info = F.StartInfo.parse(rec.payload).values
        self.decoder = D.decoder(D.arch_name(info.get("arch")), self.o.fancy, self.o.decimal)
        return info

    def wanted(self, rec: F.Record) -> bool:
        o = self.o
        if o.pid is not None and o.pid not in (rec.pid, rec.tid):
            return False
        if o.types is not None and rec.type != F.START and rec.type not in o.types:
            return False
        return True

    def record(self, rec: F.Record) -> None:
        if rec.type == F.START:
            info = self.start_session(rec)
            first = not self.started
            self.started = True
            if self.o.json:
                if self.wanted(rec):
                    self._json(rec, {"info": info})
                return
            if first or self.o.pid is not None:
                return  # OpenBSD prints a START only after the first; it has no pid
        if not self.wanted(rec):
            return
        if self.o.json:
            self._json(rec, self.fields(rec))
            return
        for piece in self.pieces(rec):
            self.out.write(piece.encode("utf-8", "surrogateescape"))

    # --- text ----------------------------------------------------------------------
    def prefix(self, rec: F.Record) -> str:
        head = "%6d" % rec.pid
        if self.o.tids:
            head += "/%-7d" % rec.tid
        return head + " %-8s " % rec.comm

    def timestamp(self, rec: F.Record) -> str:
        o = self.o
        if not (o.absolute or o.relative):
            return ""
        ns = rec.time_ns
        if self.first_ns is None:
            self.first_ns = ns
        if o.absolute and o.relative:
            shown = ns - self.first_ns
        elif o.relative:
            shown = ns - self.prev_ns  # the first shows the absolute time (prev = 0)
            self.prev_ns = ns
        else:
            shown = ns
        sign = "-" if shown < 0 else ""
        sec, rest = divmod(abs(shown), 1_000_000_000)
        return f"{sign}{sec}.{rest // 1000:06d} "

    def lines(self, rec: F.Record) -> str:
        return "".join(self.pieces(rec))

    def pieces(self, rec: F.Record) -> Iterator[str]:
        """A record's text: its line, then its data (GIO, USER, ARGS) a block at a time."""
        if rec.lost:
            yield f"{self.prefix(rec)}Events dropped. ({rec.lost} lost)\n"
        tag = F.TAGS.get(rec.type, f"UNKNOWN({rec.type})")
        head = f"{self.prefix(rec)}{self.timestamp(rec)}{tag}  "
        rest: Iterable[str] = ()
        try:
            line, rest = self.body(rec)
        except BAD_INPUT:  # a payload too short for its type: show it, do not stop
            line = f"invalid record ({len(rec.payload)} bytes)\n"
        except Exception as e:
            raise DecoderBug(rec, e) from e
        yield head + line
        try:
            yield from rest
        except Exception as e:
            raise DecoderBug(rec, e) from e

    def body(self, rec: F.Record) -> tuple[str, Iterable[str]]:
        """The rest of the record's line, and the lines after it (its data)."""
        t, p, d = rec.type, rec.payload, self.decoder
        if t == F.SYSCALL:
            code, args = F.parse_syscall(p)
            return d.call(code, args) + "\n", ()
        if t == F.SYSRET:
            return d.ret(*F.parse_sysret(p)) + "\n", ()
        if t == F.NAMEI:
            return f'"{D.vis(p, D.VIS_NAMI)}"\n', ()
        if t == F.GENIO:
            fd, write, data = F.parse_genio(p)
            return f"fd {fd} {'wrote' if write else 'read'} {len(data)} bytes\n", self.data(data)
        if t == F.USER:
            label, data = F.parse_user(p)
            return f"{label}: {len(data)} bytes\n", self.data(data)
        if t in (F.EXECARGS, F.EXECENV):
            return "\n", _args_lines(p)
        if t == F.PSIG:
            return d.psig(*F.parse_psig(p)) + "\n", ()
        if t == F.STRUCT:
            name, data = F.parse_struct(p)
            return d.struct(name, data) + "\n", ()
        if t == F.CSW:
            out, user, wmesg = _csw(p)
            return f'{"stop" if out else "resume"} {"user" if user else "kernel"} "{wmesg}"\n', ()
        if t == F.FORK:
            pid, tid, flags = F.parse_fork(p)
            return (f"thread {tid}\n" if flags & 0x10000 else f"child {pid}\n"), ()
        if t == F.EXIT:
            return D.exit_text(F.parse_exit(p)) + "\n", ()
        return "\n", ()  # START (a STRT line has no body) and unknown types

    def data(self, data: bytes) -> Iterable[str]:
        m = self.o.maxdata
        if m == 0:
            return ()
        if m is not None:
            data = data[:m]
        return show_data(data, self.o.hexmode, self.o.width)

    # --- JSON ----------------------------------------------------------------------
    def _json(self, rec: F.Record, fields: dict) -> None:
        obj = {
            "offset": rec.offset, "type": JSON_TYPES.get(rec.type, "UNKNOWN"),
            "type_number": rec.type, "pid": rec.pid, "tid": rec.tid, "cpu": rec.cpu,
            "comm": rec.comm, "sec": rec.sec, "nsec": rec.nsec,
        }  # fmt: skip
        if rec.lost:
            obj["lost"] = rec.lost
        strings = fields.pop("strings", None)
        if strings is None:
            obj.update(fields)
            self.out.write(json.dumps(obj).encode() + b"\n")
            return
        # ARGS/ENV: the strings written as they are decoded (there may be millions)
        w = self.out.write
        w(json.dumps(obj)[:-1].encode() + b', "strings": [')
        for i, text in enumerate(strings):
            w((", " if i else "").encode() + json.dumps(text).encode())
        w(b"], " + json.dumps(fields)[1:].encode() + b"\n")

    def fields(self, rec: F.Record) -> dict:
        t, p, d = rec.type, rec.payload, self.decoder
        try:
            return self._fields(t, p, d)
        except BAD_INPUT:
            return {"invalid": True, "hex": p.hex()}
        except Exception as e:
            raise DecoderBug(rec, e) from e

    def _cut(self, data: bytes) -> str:
        m = self.o.maxdata
        return (data if m is None else data[:m]).hex()

    def _fields(self, t: int, p: bytes, d: D.Decoder) -> dict:
        if t == F.SYSCALL:
            code, args = F.parse_syscall(p)
            return {"syscall": d.name(code), "code": code, "args": args, "text": d.call(code, args)}
        if t == F.SYSRET:
            code, error, retval = F.parse_sysret(p)
            out: dict = {"syscall": d.name(code), "code": code, "error": error}
            if error:
                out.update(errno=D.errname(error), strerror=D.strerror(error))
            else:
                out["retval"] = retval
            out["text"] = d.ret(code, error, retval)
            return out
        if t == F.NAMEI:
            return {"path": p.decode("utf-8", "backslashreplace")}
        if t == F.GENIO:
            fd, write, data = F.parse_genio(p)
            return {"fd": fd, "rw": "write" if write else "read", "len": len(data),
                    "data": self._cut(data)}  # fmt: skip
        if t == F.USER:
            label, data = F.parse_user(p)
            return {"label": label, "len": len(data), "data": self._cut(data)}
        if t in (F.EXECARGS, F.EXECENV):
            strings, ended = _strings(p)
            return {"strings": (s.decode("utf-8", "backslashreplace") for s in strings),
                    "terminated": ended}  # fmt: skip
        if t == F.PSIG:
            signo, code, handler, mask, si = F.parse_psig(p)
            return {"signo": signo, "signal": D.signame(signo), "code": code,
                    "code_name": D.code_name(signo, code) if code else None,
                    "handler": handler, "mask": mask,
                    "text": d.psig(signo, code, handler, mask, si)}  # fmt: skip
        if t == F.STRUCT:
            name, data = F.parse_struct(p)
            return {"struct": name, "text": d.struct(name, data), "data": data.hex()}
        if t == F.CSW:
            out_, user, wmesg = _csw(p)
            return {"out": out_, "user": user, "wmesg": wmesg}
        if t == F.FORK:
            pid, tid, flags = F.parse_fork(p)
            return {"child_pid": pid, "child_tid": tid, "flags": flags}
        if t == F.EXIT:
            status = F.parse_exit(p)
            return {"status": status, "text": D.exit_text(status)}
        return {"payload": p.hex()}


def _args_lines(p: bytes) -> Iterator[str]:
    """ARGS/ENV strings, a line each (`\t[i] = "text"`), then a note if the last has no NUL."""
    strings, ended = _strings(p)
    for i, s in enumerate(strings):
        yield f'\t[{i}] = "{D.vis(s, D.VIS_NAMI)}"\n'
    if not ended:
        yield "\tunterminated argument\n"


def _csw(p: bytes) -> tuple[bool, bool, str]:
    out, user = int.from_bytes(p[0:4], "little"), int.from_bytes(p[4:8], "little")
    return bool(out), bool(user), p[8:16].split(b"\0", 1)[0].decode(errors="replace")


# --- reading ------------------------------------------------------------------------
def truncated_note(origin: str, t: F.Truncated) -> str:
    if t.need:
        what = f"{t.have} of its {t.need} bytes"
    else:
        what = f"{t.have} bytes of its {F.HEADER_SIZE}-byte header"
    return f"{origin}: the file ends inside the record at offset {t.offset} ({what})"


class Source:
    """The trace's bytes, read as they come from a file, stdin or a pipe. It
    holds at most the record being read (a header and at most F.MAX_PAYLOAD
    bytes, checked before they are read) and a read's worth after it, so
    `kdump -f /dev/urandom` stops at the first header and a huge file costs no
    more memory than a small one."""

    CHUNK = 1 << 16

    def __init__(self, path: str) -> None:
        self.origin = "stdin" if path == "-" else path
        try:
            self.fd = 0 if path == "-" else os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            st = os.fstat(self.fd)
        except OSError as e:
            raise KdumpError(f"{self.origin}: {e.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise KdumpError(f"{self.origin}: {os.strerror(errno.EISDIR)}")
        self.regular = stat.S_ISREG(st.st_mode)
        self.buf = bytearray()
        self.pos = 0  # bytes of buf already handed out
        self.base = 0  # the input offset of buf[0]
        self.eof = False  # a stream ended (a regular file may grow again: never set)

    @property
    def offset(self) -> int:
        """The input offset of the next byte to hand out."""
        return self.base + self.pos

    def held(self) -> int:
        return len(self.buf) - self.pos

    def fill(self, want: int) -> bool:
        """Read until `want` bytes past the offset are held; False when the input
        ends first (a regular file: for now; a stream waits for its writer)."""
        while self.held() < want:
            if self.eof:
                return False
            if self.pos:
                del self.buf[: self.pos]
                self.base += self.pos
                self.pos = 0
            try:
                chunk = os.read(self.fd, max(self.CHUNK, want - len(self.buf)))
            except OSError as e:
                raise KdumpError(f"{self.origin}: {e.strerror}") from None
            if not chunk:
                self.eof = not self.regular
                return False
            self.buf += chunk
        return True

    def peek(self, n: int) -> memoryview:
        return memoryview(self.buf)[self.pos : self.pos + n]

    def take(self, n: int) -> bytes:
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out

    def shrunk(self) -> bool:
        """A regular file now shorter than what was read (ktrace without -a wrote it anew)."""
        return self.regular and os.fstat(self.fd).st_size < self.base + len(self.buf)

    def restart(self) -> None:
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.buf.clear()
        self.pos = self.base = 0

    def close(self) -> None:
        if self.fd > 0:
            os.close(self.fd)


def records(src: Source) -> Iterator[F.Record | F.Truncated]:
    """The records the input has now, each checked (F.check_header) before its
    payload is read; a Truncated last when the input ends inside one."""
    while True:
        off = src.offset
        if off == 0:
            src.fill(4)
            if src.held() == 0:
                return
            if not F.is_trace_start(src.peek(4)):
                raise KdumpError(f"{src.origin}: not a ktrace file (no start record at offset 0)")
        if not src.fill(F.HEADER_SIZE):
            if src.held():
                yield F.Truncated(off, src.held(), 0)
            return
        try:
            length = F.check_header(src.peek(F.HEADER_SIZE), off, src.origin)
        except F.TraceFileError as e:
            raise KdumpError(str(e)) from None
        need = F.HEADER_SIZE + length
        if not src.fill(need):
            yield F.Truncated(off, src.held(), need)
            return
        head = src.take(F.HEADER_SIZE)
        yield F.make_record(head, src.take(length), off)


def dump(
    path: str, opts: Options, out: BinaryIO, err=None, poll: float = 0.25, printer=None
) -> int:
    """Print the trace at path ('-' = stdin) with printer (default: kdump's
    text or JSON); the exit status."""
    err = err or sys.stderr
    printer = printer or Printer(opts, out)
    src = Source(path)
    try:
        return _dump(src, printer, opts, out, err, poll)
    except KdumpError:
        printer.finish(partial=True)  # what came before the damage (a timeline's JSON closed)
        raise
    finally:
        src.close()


def _dump(src: Source, printer: Printer, opts: Options, out: BinaryIO, err, poll: float) -> int:
    while True:
        tail = None
        for item in records(src):
            if isinstance(item, F.Truncated):
                tail = item
                break
            printer.record(item)
        out.flush()
        if src.base + len(src.buf) == 0 and not opts.follow:
            raise KdumpError(f"{src.origin}: not a ktrace file (it is empty)")
        if not opts.follow or src.eof:
            printer.finish()
            if tail is not None:
                err.write(f"kdump: {truncated_note(src.origin, tail)}\n")
            return 0
        if src.regular:
            time.sleep(poll)
            if src.shrunk():  # written again from the start: read it again
                src.restart()
                printer.started = False
