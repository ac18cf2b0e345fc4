"""fds[fd] on the user engine: io.d's fileinfo_t for one file descriptor of
a traced process, from /proc (the eBPF engine reads the same from the
task's file table: engines/ebpf/cg_files.py).

- fi_pathname: the descriptor's link in /proc/PID/fd (the kernel's d_path:
  "pipe:[123]", "socket:[45]", "anon_inode:[eventfd]", "/tmp/x (deleted)");
- fi_name, fi_dirname: its last component and the directory before it (for
  a pipe or socket, which has no directory, the whole name and ".");
- fi_offset, fi_oflags: "pos" and "flags" of /proc/PID/fdinfo/FD;
- fi_fs, fi_mount: the file system type and mount point of the descriptor's
  mount ("mnt_id" in fdinfo, looked up in /proc/PID/mountinfo); a pipe or
  socket lives on a mount no process sees: its file system is named by its
  link (pipefs, sockfs, anon_inodefs) and its mount point is "<unknown>".

A descriptor that is not open gives dtrace's "<none>" strings and zeroes.
"""

from __future__ import annotations

import os
import struct

from pydtrace.lang.checker import library_types, member_offsets

NONE = b"<none>"
UNKNOWN = b"<unknown>"
DELETED = b" (deleted)"
# the file systems of descriptors that have no path (kernel's d_dname names)
_PSEUDO_FS = {b"pipe:": b"pipefs", b"socket:": b"sockfs", b"anon_inode:": b"anon_inodefs"}


def fileinfo(pid: int, fd: int) -> bytes:
    """A fileinfo_t for descriptor fd of process pid."""
    size = library_types()["fileinfo_t"].resolve().size
    buf = bytearray(size)
    m = member_offsets("fileinfo_t")
    for name, value in describe(pid, fd).items():
        off, t = m[name]
        if isinstance(value, bytes):  # a string member: NUL-terminated, cut to fit
            n = t.resolve().size
            buf[off : off + n] = value[: n - 1].ljust(n, b"\0")
        else:
            struct.pack_into("<q" if t.resolve().size == 8 else "<i", buf, off, value)
    return bytes(buf)


def describe(pid: int, fd: int) -> dict[str, int | bytes]:
    """fileinfo_t's members for descriptor fd of process pid, by name."""
    none: dict[str, int | bytes] = {
        "fi_name": NONE, "fi_dirname": NONE, "fi_pathname": NONE, "fi_offset": 0,
        "fi_fs": NONE, "fi_mount": NONE, "fi_oflags": 0,
    }  # fmt: skip
    if fd < 0:
        return none
    try:
        path = os.readlink(f"/proc/{pid}/fd/{fd}".encode())
        with open(f"/proc/{pid}/fdinfo/{fd}", "rb") as f:
            fdinfo = dict(_fields(f.read()))
    except OSError:
        return none
    out = dict(none)
    out["fi_pathname"] = path
    out["fi_offset"] = _int(fdinfo.get(b"pos", b"0"), 10)
    out["fi_oflags"] = _int(fdinfo.get(b"flags", b"0"), 8)
    if path.startswith(b"/"):
        bare = path[: -len(DELETED)] if path.endswith(DELETED) else path
        head, _, tail = bare.rpartition(b"/")
        out["fi_name"] = tail or b"/"
        out["fi_dirname"] = head or b"/"
    else:  # a pipe, socket, anonymous inode: a name, no directory
        out["fi_name"] = path
        out["fi_dirname"] = b"."
    fstype, mount = _mount(pid, _int(fdinfo.get(b"mnt_id", b"-1"), 10))
    if fstype is None:
        prefix = next((p for p in _PSEUDO_FS if path.startswith(p)), None)
        fstype = _PSEUDO_FS[prefix] if prefix is not None else UNKNOWN
        mount = UNKNOWN
    out["fi_fs"] = fstype
    out["fi_mount"] = mount
    return out


def _fields(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for line in data.splitlines():
        key, sep, value = line.partition(b":")
        if sep:
            out.append((key.strip(), value.strip()))
    return out


def _int(text: bytes, base: int) -> int:
    try:
        return int(text, base)
    except ValueError:
        return 0


def _mount(pid: int, mnt_id: int) -> tuple[bytes | None, bytes]:
    """(file system type, mount point) of mount mnt_id as pid sees it."""
    try:
        with open(f"/proc/{pid}/mountinfo", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return None, UNKNOWN
    for line in lines:
        # id parent major:minor root mountpoint options [optional...] - fstype source super
        parts = line.split()
        if len(parts) < 5 or _int(parts[0], 10) != mnt_id or b"-" not in parts:
            continue
        fstype = parts[parts.index(b"-") + 1]
        return fstype, _unescape(parts[4])
    return None, UNKNOWN


def _unescape(field: bytes) -> bytes:
    """mountinfo's octal escapes (\\040 for a space) back to bytes."""
    out, i = bytearray(), 0
    while i < len(field):
        if field[i] == 0x5C and field[i + 1 : i + 4].isdigit() and i + 4 <= len(field):
            out.append(int(field[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return bytes(out)
