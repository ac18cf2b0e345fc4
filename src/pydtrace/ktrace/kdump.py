"""kdump: print the records of a ktrace file, OpenBSD's line layout.

Every record is one line (GIO/USER data, ARGS/ENV strings follow on lines
of their own):

     pid[/tid ] comm     [time ]TAG   body

`%6d` pid, with -H `/%-7d` tid, ` %-8s ` comm (long names are not cut),
with -T/-R/-TR `%d.%06d ` seconds, the four-letter tag, two spaces, the body
(decode.py). docs/kdump.md has the options and examples.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from pydtrace.ktrace import decode as D
from pydtrace.ktrace import format as F

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
def show_data(data: bytes, hexmode: int, width: int) -> str:
    if hexmode == 1:
        return _hex(data, width)
    if hexmode == 2:
        return _hex_ascii(data, width)
    return _text(data, width)


def _text(data: bytes, width: int) -> str:
    """7 spaces and a quote, then vis-escaped text; a real newline starts the
    next line with a TAB; long lines break with backslash-newline-TAB."""
    out = ['       "']
    col = 8
    n = len(data)
    for i, c in enumerate(data):
        v = D.vis_char(c, data[i + 1] if i + 1 < n else 0, D.VIS_CSTYLE)
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
    if col == 0:
        out.append("       ")
    out.append('"\n')
    return "".join(out)


def _hex(data: bytes, width: int) -> str:
    out = ["\t"]
    col = 8
    last = len(data) - 1
    for i, c in enumerate(data):
        out.append(f"{c:02x}")
        col += 3
        if i < last:
            if col + 3 > width:
                out.append("\n\t")
                col = 8
            else:
                out.append(" ")
    out.append("\n")
    return "".join(out)


def _hex_ascii(data: bytes, width: int) -> str:
    bpl = max(1, (width - 13) // 4)
    out = []
    for off in range(0, len(data), bpl):
        row = data[off : off + bpl]
        cells = "".join(f"{c:02x} " for c in row) + "   " * (bpl - len(row))
        text = "".join(chr(c) if 0x20 <= c < 0x7F else "." for c in row)
        out.append(f"   {off:04x}:  {cells} {text}\n")
    return "".join(out)


def _strings(payload: bytes) -> tuple[list[bytes], bool]:
    """NUL-terminated strings; False when the last one has no NUL."""
    if not payload:
        return [], True
    parts = payload.split(b"\0")
    if parts[-1] == b"":
        return parts[:-1], True
    return parts, False


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
        text = self.lines(rec)
        self.out.write(text.encode("utf-8", "surrogateescape"))

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
        out = ""
        if rec.lost:
            out = f"{self.prefix(rec)}Events dropped. ({rec.lost} lost)\n"
        tag = F.TAGS.get(rec.type, f"UNKNOWN({rec.type})")
        head = f"{self.prefix(rec)}{self.timestamp(rec)}{tag}  "
        try:
            body = self.body(rec)
        except BAD_INPUT:  # a payload too short for its type: show it, do not stop
            body = f"invalid record ({len(rec.payload)} bytes)\n"
        except Exception as e:
            raise DecoderBug(rec, e) from e
        return out + head + body

    def body(self, rec: F.Record) -> str:
        t, p, d = rec.type, rec.payload, self.decoder
        if t == F.SYSCALL:
            code, args = F.parse_syscall(p)
            return d.call(code, args) + "\n"
        if t == F.SYSRET:
            return d.ret(*F.parse_sysret(p)) + "\n"
        if t == F.NAMEI:
            return f'"{D.vis(p, D.VIS_NAMI)}"\n'
        if t == F.GENIO:
            fd, write, data = F.parse_genio(p)
            line = f"fd {fd} {'wrote' if write else 'read'} {len(data)} bytes\n"
            return line + self.data(data)
        if t == F.USER:
            label, data = F.parse_user(p)
            return f"{label}: {len(data)} bytes\n" + self.data(data)
        if t in (F.EXECARGS, F.EXECENV):
            strings, ended = _strings(p)
            lines = "".join(f'\t[{i}] = "{D.vis(s, D.VIS_NAMI)}"\n' for i, s in enumerate(strings))
            return "\n" + lines + ("" if ended else "\tunterminated argument\n")
        if t == F.PSIG:
            return d.psig(*F.parse_psig(p)) + "\n"
        if t == F.STRUCT:
            name, data = F.parse_struct(p)
            return d.struct(name, data) + "\n"
        if t == F.CSW:
            out, user, wmesg = _csw(p)
            return f'{"stop" if out else "resume"} {"user" if user else "kernel"} "{wmesg}"\n'
        if t == F.FORK:
            pid, tid, flags = F.parse_fork(p)
            return f"thread {tid}\n" if flags & 0x10000 else f"child {pid}\n"
        if t == F.EXIT:
            return D.exit_text(F.parse_exit(p)) + "\n"
        return "\n"  # START (a STRT line has no body) and unknown types

    def data(self, data: bytes) -> str:
        m = self.o.maxdata
        if m == 0:
            return ""
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
        obj.update(fields)
        self.out.write(json.dumps(obj).encode() + b"\n")

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
            return {"strings": [s.decode("utf-8", "backslashreplace") for s in strings],
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
    """The trace's bytes: a regular file (mapped, reread as it grows) or a
    stream (stdin, a pipe) read as it comes."""

    def __init__(self, path: str) -> None:
        self.origin = "stdin" if path == "-" else path
        self.stream = False
        try:
            self.fd = 0 if path == "-" else os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            st = os.fstat(self.fd)
        except OSError as e:
            raise KdumpError(f"{self.origin}: {e.strerror}") from None
        import stat as _stat

        if _stat.S_ISDIR(st.st_mode):
            raise KdumpError(f"{self.origin}: {os.strerror(21)}")
        self.stream = not _stat.S_ISREG(st.st_mode)
        self.buf = bytearray()
        self.eof = False

    def data(self) -> bytes | mmap.mmap:
        """Everything there is now (of a stream: what fill() has read)."""
        if self.stream:
            return bytes(self.buf)
        size = os.fstat(self.fd).st_size
        if size == 0:
            return b""
        try:
            return mmap.mmap(self.fd, size, prot=mmap.PROT_READ)
        except (OSError, ValueError):
            os.lseek(self.fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(self.fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)

    def fill(self) -> bool:
        """Read more of a stream (waiting for it); False at its end."""
        if self.eof:
            return False
        try:
            chunk = os.read(self.fd, 1 << 16)
        except OSError as e:
            raise KdumpError(f"{self.origin}: {e.strerror}") from None
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def close(self) -> None:
        if self.fd > 0:
            os.close(self.fd)


def dump(path: str, opts: Options, out: BinaryIO, err=None, poll: float = 0.25) -> int:
    """Print the trace at path ('-' = stdin); the exit status."""
    err = err or sys.stderr
    printer = Printer(opts, out)
    src = Source(path)
    off = 0
    try:
        if src.stream and not opts.follow:
            while src.fill():
                pass
        while True:
            if src.stream and opts.follow:
                src.fill()
            data = src.data()
            if len(data) == 0 and not opts.follow:
                raise KdumpError(f"{src.origin}: not a ktrace file (it is empty)")
            if len(data) < off:  # the file was truncated and written again (ktrace without -a)
                off, printer.started = 0, False
            tail = None
            for item in _records(data, src.origin, off):
                if isinstance(item, F.Truncated):
                    tail = item
                    break
                printer.record(item)
                off = item.offset + F.HEADER_SIZE + len(item.payload)
            if isinstance(data, mmap.mmap):
                data.close()
            out.flush()
            if not opts.follow or (src.stream and src.eof):
                if tail is not None:
                    err.write(f"kdump: {truncated_note(src.origin, tail)}\n")
                return 0
            if not src.stream:
                time.sleep(poll)
    finally:
        src.close()


def _records(data, origin: str, off: int) -> Iterable[F.Record | F.Truncated]:
    try:
        yield from F.read_records(data, origin, off)
    except F.TraceFileError as e:
        raise KdumpError(str(e)) from None
