"""The ktrace file: records of what processes did, written now, read later.

docs/internals/ktrace-format.md is the specification; this module is its one
implementation (writer and reader). In short: a stream of records, each a
64-byte little-endian header then `len` payload bytes. The header keeps the
offsets of OpenBSD's amd64 header for the fields both have:

    off size
      0    4  u32 type: the low 15 bits are the record type, bit 15 (DROP)
              says events were lost just before this record
      4    4  s32 pid (tgid), -1 in START
      8    4  s32 tid, -1 in START
     12    4  s32 cpu that produced the event, -1 when unknown (ptrace)
     16    8  s64 seconds   } CLOCK_REALTIME when the event happened
     24    8  s64 nanoseconds
     32   16  comm, NUL padded (TASK_COMM_LEN)
     48    8  u64 events lost just before this record (0 unless DROP)
     56    8  u64 len: payload bytes

A file starts with a START record, whose type word is b"KTR\\0" (OpenBSD's
KTR_START written big-endian); every recording session (`ktrace -a`) adds
its own START. Type numbers are OpenBSD's; Linux-only types start at 32.
A record is appended whole (the writer never splits one across writes), so
a file cut short loses at most its last record, which the reader reports.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator

from pydtrace.lang.dataclass import dataclass, field
from pydtrace.outfiles import open_output

HEADER = struct.Struct("<Iiiiqq16sQQ")
HEADER_SIZE = 64
assert HEADER.size == HEADER_SIZE

START_WORD = 0x0052544B  # b"KTR\0" read as a little-endian u32
DROP = 0x8000
TYPE_MASK = 0x7FFF
VERSION = 1
MAX_PAYLOAD = 16 << 20  # a longer record can only be corruption

# record types (OpenBSD numbers; FreeBSD's CSW; Linux-only from 32)
SYSCALL = 1  # s32 code, s32 argsize, u64 args[argsize / 8]
SYSRET = 2  # s32 code, s32 error, then s64 retval only when error == 0
NAMEI = 3  # the path's bytes, no NUL
GENIO = 4  # s32 fd, s32 rw (0 read, 1 write), then the bytes transferred (cut at maxdata)
PSIG = 5  # s32 signo, s32 code, u64 handler (0 SIG_DFL, 1 SIG_IGN), u64 mask, siginfo (128)
CSW = 6  # s32 out (1 = switched out), s32 user (1 = from user mode), char wmesg[8]
STRUCT = 8  # NUL-terminated struct name, then the struct's bytes
USER = 9  # char id[20], then the data
EXECARGS = 10  # NUL-separated strings
EXECENV = 11  # NUL-separated strings
FORK = 32  # s32 child pid, s32 child tid, u64 clone flags
EXIT = 33  # s32 wait status (as waitpid gives it)
LOST = 34  # no payload: carries (DROP, lost) for events no later record of their CPU could
START = 0x4B54  # the type a START record reads as (never written as such)

TAGS = {
    SYSCALL: "CALL", SYSRET: "RET ", NAMEI: "NAMI", GENIO: "GIO ", PSIG: "PSIG", CSW: "CSW ",
    STRUCT: "STRU", USER: "USER", EXECARGS: "ARGS", EXECENV: "ENV ", FORK: "FORK",
    EXIT: "EXIT", START: "STRT",
}  # fmt: skip
TAGS[LOST] = "LOST"

# trace-point letters (ktrace -t / kdump -t) -> the record types they cover
POINTS = {
    "c": (SYSCALL, SYSRET),
    "n": (NAMEI,),
    "i": (GENIO,),
    "s": (PSIG,),
    "t": (STRUCT,),
    "u": (USER,),
    "x": (EXECARGS,),
    "X": (EXECENV,),
    "w": (CSW,),
    "f": (FORK, EXIT),
}
DEFAULT_POINTS = "cnistuxf"  # OpenBSD's "+": everything but X (and CSW, eBPF only)

GIO_CHUNK = 4096  # a GENIO record holds at most a page of data (OpenBSD)
USER_ID_SIZE = 20
SIGINFO_SIZE = 128


class TraceFileError(Exception):
    """The file is not a trace, or is damaged: the message names the offset."""


@dataclass
class Record:
    type: int
    pid: int
    tid: int
    payload: bytes = b""
    sec: int = 0
    nsec: int = 0
    comm: str = ""
    cpu: int = -1
    lost: int = 0  # events lost just before this one
    offset: int = -1  # where the reader found it

    def encode(self) -> bytes:
        word = self.type & TYPE_MASK
        if self.lost:
            word |= DROP
        if self.type == START:
            word = START_WORD
        comm = self.comm.encode("utf-8", "surrogateescape")[:15]
        head = HEADER.pack(word, self.pid, self.tid, self.cpu, self.sec, self.nsec, comm,
                           self.lost, len(self.payload))  # fmt: skip
        return head + self.payload

    @property
    def time_ns(self) -> int:
        return self.sec * 1_000_000_000 + self.nsec


# --- payloads -----------------------------------------------------------------------
def syscall_payload(code: int, args: list[int] | tuple[int, ...]) -> bytes:
    return struct.pack(f"<ii{len(args)}Q", code, 8 * len(args),
                       *(a & 0xFFFFFFFFFFFFFFFF for a in args))  # fmt: skip


def parse_syscall(p: bytes) -> tuple[int, list[int]]:
    code, argsize = struct.unpack_from("<ii", p)
    n = max(0, min(argsize, len(p) - 8)) // 8
    return code, list(struct.unpack_from(f"<{n}Q", p, 8))


def sysret_payload(code: int, error: int, retval: int = 0) -> bytes:
    if error:
        return struct.pack("<ii", code, error)
    return struct.pack("<iiq", code, 0, retval)


def parse_sysret(p: bytes) -> tuple[int, int, int]:
    """(code, error, retval); retval is 0 when error is set."""
    code, error = struct.unpack_from("<ii", p)
    retval = struct.unpack_from("<q", p, 8)[0] if not error and len(p) >= 16 else 0
    return code, error, retval


def genio_payload(fd: int, write: bool, data: bytes) -> bytes:
    return struct.pack("<ii", fd, 1 if write else 0) + data


def parse_genio(p: bytes) -> tuple[int, bool, bytes]:
    fd, rw = struct.unpack_from("<ii", p)
    return fd, bool(rw), p[8:]


def psig_payload(signo: int, code: int, handler: int, mask: int, siginfo: bytes = b"") -> bytes:
    return struct.pack("<iiQQ", signo, code, handler, mask) + siginfo[:SIGINFO_SIZE].ljust(
        SIGINFO_SIZE, b"\0"
    )


def parse_psig(p: bytes) -> tuple[int, int, int, int, bytes]:
    signo, code, handler, mask = struct.unpack_from("<iiQQ", p)
    return signo, code, handler, mask, p[24:]


def csw_payload(out: bool, user: bool, wmesg: str = "") -> bytes:
    return struct.pack("<ii8s", int(out), int(user), wmesg.encode()[:7])


def struct_payload(name: str, data: bytes) -> bytes:
    return name.encode() + b"\0" + data


def parse_struct(p: bytes) -> tuple[str, bytes]:
    name, _, data = p.partition(b"\0")
    return name.decode(errors="replace"), data


def user_payload(label: str, data: bytes) -> bytes:
    return label.encode()[:USER_ID_SIZE].ljust(USER_ID_SIZE, b"\0") + data


def parse_user(p: bytes) -> tuple[str, bytes]:
    label = p[:USER_ID_SIZE].split(b"\0", 1)[0].decode(errors="replace")
    return label, p[USER_ID_SIZE:]


def strings_payload(strings: list[bytes]) -> bytes:
    return b"".join(s + b"\0" for s in strings)


def fork_payload(child_pid: int, child_tid: int, flags: int) -> bytes:
    return struct.pack("<iiQ", child_pid, child_tid, flags)


def parse_fork(p: bytes) -> tuple[int, int, int]:
    return struct.unpack_from("<iiQ", p)  # type: ignore[return-value]


def exit_payload(status: int) -> bytes:
    return struct.pack("<i", status)


def parse_exit(p: bytes) -> int:
    return struct.unpack_from("<i", p)[0]


# --- START ----------------------------------------------------------------------------
@dataclass
class StartInfo:
    """What a recording session says about itself (key=value strings)."""

    values: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        items = {"version": str(VERSION), **self.values}
        return b"".join(f"{k}={v}".encode("utf-8", "surrogateescape") + b"\0"
                        for k, v in items.items())  # fmt: skip

    @classmethod
    def parse(cls, p: bytes) -> StartInfo:
        out: dict[str, str] = {}
        for item in p.split(b"\0"):
            if b"=" in item:
                k, _, v = item.partition(b"=")
                out[k.decode(errors="replace")] = v.decode("utf-8", "surrogateescape")
        return cls(out)


def start_record(info: dict[str, str], sec: int, nsec: int) -> Record:
    return Record(START, -1, -1, StartInfo(info).payload(), sec, nsec)


# --- writer ---------------------------------------------------------------------------
class Writer:
    """Appends records to a trace file, whole records per write(2).

    Records wait in a buffer of at most `limit` bytes (one write when it
    fills, and at flush/close), so recording costs a syscall per batch;
    O_APPEND keeps two recorders' records whole in one file (ktrace -a).

    The file is opened by outfiles.open_output: without append it is made
    afresh (never through another user's name), mode 0600 as OpenBSD's: it
    holds what the traced programs read, wrote and were given. A write that
    fails (a full disk, a reader gone) is kept in `error`, what is buffered
    and written later is dropped, and on_error() is called (a recorder
    stops then, and ktrace reports the error).
    """

    MODE = 0o600

    def __init__(self, path: str, append: bool = False, limit: int = 1 << 16) -> None:
        self.fd = open_output(path, replace=not append, mode=self.MODE)
        self.path = path
        self.limit = limit
        self.buf = bytearray()
        self.written = 0  # records handed to the kernel
        self.error: OSError | None = None
        self.on_error: Callable[[], None] | None = None

    def write(self, rec: Record) -> None:
        data = rec.encode()
        if len(self.buf) + len(data) > self.limit:
            self.flush()
        self.buf += data
        self.written += 1

    def write_raw(self, data: bytes) -> None:
        """Already-encoded whole records (an engine that builds them itself)."""
        if len(self.buf) + len(data) > self.limit:
            self.flush()
        self.buf += data

    def flush(self) -> None:
        if self.error is None:
            view = memoryview(self.buf)
            try:
                while view:
                    n = os.write(self.fd, view)
                    view = view[n:]
            except OSError as e:
                self.error = e
            finally:
                view.release()
        self.buf.clear()
        if self.error is not None and self.on_error is not None:
            notify, self.on_error = self.on_error, None  # once
            notify()

    def close(self) -> None:
        if self.fd >= 0:
            try:
                self.flush()
            finally:
                try:
                    os.close(self.fd)
                except OSError as e:  # a file system that reports at close (NFS)
                    self.error = self.error or e
                self.fd = -1

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- reader ---------------------------------------------------------------------------
@dataclass
class Truncated:
    """The file ends inside a record: what was there and where it starts."""

    offset: int
    have: int  # bytes of it present
    need: int  # bytes it should have (0 when even the header is short)


def check_header(head: bytes | bytearray | memoryview, off: int, origin: str = "") -> int:
    """The payload length of a record header (its HEADER_SIZE bytes, found at
    offset off), which a reader trusts only once it is known possible: known
    flag bits, a length of at most MAX_PAYLOAD (a reader never allocates more
    for a record than that), nanoseconds below a second. TraceFileError names
    the offset."""
    where = f"{origin}: " if origin else ""
    word, *_, nsec, _comm, _lost, length = HEADER.unpack_from(head, 0)
    if word != START_WORD and word >> 16:
        raise TraceFileError(f"{where}corrupt record header at offset {off} (type word {word:#x})")
    if length > MAX_PAYLOAD or not 0 <= nsec < 1_000_000_000:
        raise TraceFileError(f"{where}corrupt record header at offset {off}")
    return length


def make_record(head: bytes | bytearray | memoryview, payload: bytes, off: int) -> Record:
    """The record of a checked header (check_header) and its payload, found at off."""
    word, pid, tid, cpu, sec, nsec, comm, lost, _ = HEADER.unpack_from(head, 0)
    rtype = START if word == START_WORD else word & TYPE_MASK
    return Record(
        rtype, pid, tid, payload, sec, nsec,
        comm.split(b"\0", 1)[0].decode("utf-8", "surrogateescape"), cpu,
        lost if word & DROP else 0, off,
    )  # fmt: skip


def is_trace_start(data: bytes | bytearray | memoryview) -> bool:
    """Whether a file's first bytes (at least 4) are a START record's type word."""
    return bytes(data[:4]) == b"KTR\0"


def read_records(data: bytes, origin: str = "", start: int = 0) -> Iterator[Record | Truncated]:
    """Every record of a file's bytes from offset `start` (the offset just past
    a record read before); a Truncated last, if the bytes end inside a record.

    Raises TraceFileError when the file is not a trace (no START first) or a
    header is impossible (unknown flag bits, absurd length), naming the offset.
    """
    where = f"{origin}: " if origin else ""
    off, end = start, len(data)
    if end == 0:
        return
    if start == 0 and (end < 4 or not is_trace_start(data)):
        raise TraceFileError(f"{where}not a ktrace file (no start record at offset 0)")
    while off < end:
        if end - off < HEADER_SIZE:
            yield Truncated(off, end - off, 0)
            return
        p0 = off + HEADER_SIZE
        length = check_header(data[off:p0], off, origin)
        if end - off - HEADER_SIZE < length:
            yield Truncated(off, end - off, HEADER_SIZE + length)
            return
        yield make_record(data[off:p0], bytes(data[p0 : p0 + length]), off)
        off = p0 + length
