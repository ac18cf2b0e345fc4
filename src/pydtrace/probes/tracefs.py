"""tracefs: where it is, event ids, event record layouts (`format` files), the event list.

Shared by the syscall provider, the eBPF engine (tracepoint attachment, offsets of fields in the
raw record a TRACEPOINT program sees) and the tracefs engine.
"""

from __future__ import annotations

import os

from pydtrace.lang.dataclass import dataclass, field

CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


class TracefsError(OSError):
    """tracefs is missing or an event cannot be found; str() is a full sentence."""

    def __init__(self, message: str, err: int = 0):
        super().__init__(err, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NoSuchEvent(TracefsError, LookupError):
    pass


_root: str | None = None


def _usable(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "events"))


def _mount(path: str) -> bool:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 4 + [ctypes.c_ulong, ctypes.c_void_p]
    return libc.mount(b"nodev", path.encode(), b"tracefs", None, 0, None) == 0


def root(mount: bool = True) -> str:
    """The tracefs directory; mounts tracefs at /sys/kernel/tracing when missing (root only)."""
    global _root
    if _root is not None:
        return _root
    for path in CANDIDATES:
        if _usable(path):
            _root = path
            return path
    if mount and os.geteuid() == 0 and os.path.isdir(CANDIDATES[0]) and _mount(CANDIDATES[0]):
        if _usable(CANDIDATES[0]):
            _root = CANDIDATES[0]
            return _root
    if os.geteuid() != 0 and os.path.isdir(CANDIDATES[0]):
        raise TracefsError(f"tracefs is not accessible at {CANDIDATES[0]} (needs root)", 13)
    raise TracefsError(f"tracefs is not available (no {CANDIDATES[0]})", 2)


def event_dir(group: str, event: str) -> str:
    return os.path.join(root(), "events", group, event)


def _check_name(group: str, event: str) -> None:
    for part in (group, event):
        if not part or "/" in part or part in (".", ".."):
            raise NoSuchEvent(f"invalid tracepoint name {group}:{event}", 22)


def event_id(group: str, event: str) -> int:
    """The numeric id of tracepoint group:event (perf_event_attr.config for PERF_TYPE_TRACEPOINT)."""
    _check_name(group, event)
    path = os.path.join(event_dir(group, event), "id")
    try:
        with open(path) as f:
            return int(f.read())
    except FileNotFoundError:
        raise NoSuchEvent(f"no tracepoint {group}:{event} in this kernel", 2) from None
    except PermissionError:
        raise TracefsError(f"cannot read {path} (needs root)", 13) from None


@dataclass(frozen=True)
class Field:
    """One field of an event record.

    type: the C type as declared, without the name and the array suffix ("const char *",
    "unsigned long"); for a __data_loc/__rel_loc field, the element type ("char").
    array_len: None for a scalar, N for `x[N]`, 0 for a flexible or dynamic array.
    data_loc: the field is a u32 `offset | length << 16` locating the data (from the record start,
    or from the end of the field itself when rel_loc).
    """

    name: str
    type: str
    offset: int
    size: int
    signed: bool
    data_loc: bool = False
    rel_loc: bool = False
    array_len: int | None = None
    common: bool = False


@dataclass(frozen=True)
class EventFormat:
    name: str
    id: int
    fields: tuple[Field, ...]
    print_fmt: str = ""
    _by_name: dict = field(default_factory=dict, compare=False, repr=False)

    def field(self, name: str) -> Field:
        f = self._by_name.get(name)
        if f is None:
            raise KeyError(f"event {self.name} has no field {name}")
        return f

    @property
    def common_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.common)

    @property
    def event_fields(self) -> tuple[Field, ...]:
        """The fields after the common_* header, in record order."""
        return tuple(f for f in self.fields if not f.common)

    @property
    def record_size(self) -> int:
        """Bytes of the fixed part of the record (dynamic data may follow)."""
        return max((f.offset + f.size for f in self.fields), default=0)


# patterns for re.match/re.search, which compile them when first used (a
# program without tracepoint arguments never does; nor does it import re,
# 2-5 ms of a kept program's start)
_FIELD = r"field:(?P<decl>[^;]*);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);(?:\s*signed:(?P<signed>\d+);)?"
_DECL = r"^(?P<type>.*?)\s*\b(?P<name>[A-Za-z_]\w*)\s*(?:\[(?P<len>[^\]]*)\])?$"


def parse_field(decl: str, offset: int, size: int, signed: bool, common: bool = False) -> Field:
    """One `field:` declaration ("unsigned long args[6]", "__data_loc char[] name") -> Field."""
    import re

    text = " ".join(decl.split())
    data_loc = rel_loc = False
    if text.startswith("__data_loc "):
        data_loc, text = True, text[len("__data_loc ") :]
    elif text.startswith("__rel_loc "):
        data_loc = rel_loc = True
        text = text[len("__rel_loc ") :]
    m = re.match(_DECL, text)
    if m is None:
        raise ValueError(f"cannot parse tracefs field declaration {decl!r}")
    ctype = m.group("type").strip()
    length = m.group("len")
    array_len: int | None = None
    if length is not None:
        array_len = int(length) if length.strip().isdigit() else 0
    if data_loc and ctype.endswith("[]"):
        ctype, array_len = ctype[:-2].rstrip(), 0
    return Field(m.group("name"), ctype, offset, size, signed, data_loc, rel_loc, array_len, common)


def parse_format(text: str) -> EventFormat:
    """Parse an event's `format` file.

    Common fields are those before the first blank line of the field list (they are also the
    ones named common_*; newer kernels may add some, so nothing is hard-coded).
    """
    import re

    name = ""
    ident = 0
    fields: list[Field] = []
    print_fmt = ""
    in_common = True
    seen_fields = False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("name:"):
            name = s[5:].strip()
        elif s.startswith("ID:"):
            ident = int(s[3:])
        elif s.startswith("print fmt:"):
            print_fmt = s[len("print fmt:") :].strip()
        elif s.startswith("field:"):
            m = re.search(_FIELD, s)
            if m is None:
                raise ValueError(f"cannot parse tracefs format line {s!r}")
            seen_fields = True
            fields.append(
                parse_field(
                    m.group("decl"),
                    int(m.group("off")),
                    int(m.group("size")),
                    m.group("signed") == "1",
                    in_common,
                )
            )
        elif not s and seen_fields:
            in_common = False
    by_name = {f.name: f for f in fields}
    return EventFormat(name, ident, tuple(fields), print_fmt, by_name)


_formats: dict[tuple[str, str], EventFormat] = {}


def event_format(group: str, event: str) -> EventFormat:
    """The parsed `format` of tracepoint group:event (cached)."""
    key = (group, event)
    fmt = _formats.get(key)
    if fmt is None:
        _check_name(group, event)
        path = os.path.join(event_dir(group, event), "format")
        try:
            with open(path) as f:
                fmt = parse_format(f.read())
        except FileNotFoundError:
            raise NoSuchEvent(f"no tracepoint {group}:{event} in this kernel", 2) from None
        except PermissionError:
            raise TracefsError(f"cannot read {path} (needs root)", 13) from None
        _formats[key] = fmt
    return fmt


def available_events(group: str | None = None) -> dict[str, list[str]]:
    """{group: [event, ...]} from available_events (only `group` when given), in file order."""
    out: dict[str, list[str]] = {}
    path = os.path.join(root(), "available_events")
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except PermissionError:
        raise TracefsError(f"cannot read {path} (needs root)", 13) from None
    for line in lines:
        g, sep, e = line.partition(":")
        if not sep or (group is not None and g != group):
            continue
        out.setdefault(g, []).append(e)
    return out


def groups_with_event(event: str) -> list[str]:
    """The groups holding an event of this name, by name: a stat per group of
    events/ rather than available_events, which the kernel writes out whole
    (and which waits, tens of ms, while another tracer's events are torn down)."""
    base = os.path.join(root(), "events")
    try:
        groups = sorted(os.listdir(base))
    except PermissionError:
        raise TracefsError(f"cannot read {base} (needs root)", 13) from None
    return [g for g in groups if os.path.isdir(os.path.join(base, g, event))]


def has_event(group: str, event: str) -> bool:
    try:
        return os.path.isdir(event_dir(group, event))
    except TracefsError:
        return False
