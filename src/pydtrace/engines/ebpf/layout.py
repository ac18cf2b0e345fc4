"""Byte layouts shared by the generated BPF code and the Python side that
decodes it: ring-buffer records, aggregation keys and values.

A record in the ring buffer is a 24-byte header then the values of the
clause's actions at fixed offsets:

    u32 kind (REC_DATA / REC_FAULT), u32 probe id, u32 clause index, u32 cpu,
    u64 mask of the actions that ran (an action inside `if` may not run)

A fault record carries u64 pc, fault code and value after the first 16 bytes.
An aggregation value in its per-CPU hash map is u64 words: the number of
updates on that CPU (0 = never updated there), then the function's data.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pydtrace.consume.aggregation import U64, U128, AggSpec, nbuckets, s64
from pydtrace.consume.records import Item
from pydtrace.lang import types as T
from pydtrace.lang.dataclass import dataclass, field
from pydtrace.lang.formats import Format
from pydtrace.lang.records import AGG_ACTIONS, Action
from pydtrace.lang.types import CType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Builder = Callable[[Any], Item]

REC_DATA = 1
REC_FAULT = 2
# speculations: a speculative clause's record has kind REC_DATA | sid << SPEC_SHIFT;
# commit()/discard() write a SPEC_SIZE record (header, then u64 sid at 16)
REC_COMMIT = 3
REC_DISCARD = 4
SPEC_SHIFT = 8
SPEC_SIZE = 24
HEADER = 24  # kind, probe, clause, cpu, action mask
FAULT_SIZE = 40  # header (16) + pc, code, value


def align8(n: int) -> int:
    return (n + 7) & ~7


def string_at(buf: bytes, off: int, size: int) -> str:
    raw = buf[off : off + size]
    end = raw.find(b"\0")
    if end >= 0:
        raw = raw[:end]
    return raw.decode("utf-8", "surrogateescape")


def int_at(buf: bytes, off: int, t: CType) -> int:
    (v,) = struct.unpack_from("<q", buf, off)
    return T.wrap(v, t) if t.is_int() or t.is_pointer() else v


@dataclass
class Slot:
    """One recorded value: where it is and how to read it back."""

    off: int
    ctype: CType
    size: int  # 8 for scalars, strsize+1 for strings
    idx: int = -1  # position in a record's decoded values (RecordLayout.values)

    def read(self, buf: bytes) -> Any:
        if self.ctype.is_string():
            return string_at(buf, self.off, self.size)
        return int_at(buf, self.off, self.ctype)


def _int_code(t: CType) -> str | None:
    """The struct code reading an 8-byte slot as type t (low bytes first), None
    when the value needs T.wrap (bool, other kinds)."""
    r = t.r
    if r.kind in ("ptr", "array"):
        return "Q"
    if r.kind == "enum":
        return "i4x"
    if r.kind == "float":  # the bits of a float/double (a long double holds a double)
        return "f4x" if r.size == 4 else "d"
    if r.kind == "int" and r is not T.BOOL.r and r.size in (1, 2, 4, 8):
        code = {1: "b", 2: "h", 4: "i", 8: "q"}[r.size]
        return (code if r.signed else code.upper()) + (f"{8 - r.size}x" if r.size < 8 else "")
    return None


@dataclass
class RecordLayout:
    """How one clause's record is laid out; builds the consumer's items back.

    Builders take the record's decoded values (one per slot, in slot order:
    ints already cut to their C type, strings decoded), so a record costs one
    struct unpack plus the builders."""

    clause: int
    size: int = HEADER
    items: list[tuple[int, Builder]] = field(default_factory=list)  # (action bit, builder)
    slots: list[Slot] = field(default_factory=list)
    touches_aggs: bool = False  # an item reads or changes aggregations (snapshot first)
    exits: bool = False  # an item is exit()
    _plan: Any = None  # (struct, string indices, wrapped (idx, type), all-actions mask)

    def slot(self, ctype: CType, size: int) -> Slot:
        s = Slot(self.size, ctype, size, len(self.slots))
        self.slots.append(s)
        self.size += align8(size)
        return s

    def add(self, bit: int, kind: str, build: Builder) -> None:
        self.items.append((bit, build))
        self.touches_aggs |= kind in AGG_ACTIONS
        self.exits |= kind == "exit"

    def _compile(self) -> Any:
        # built on first use: codegen may retype a slot after creating it (exit's int)
        codes, strs, wraps, at = ["<"], [], [], HEADER
        for sl in self.slots:
            if sl.off > at:
                codes.append(f"{sl.off - at}x")
            if sl.ctype.is_string():
                codes.append(f"{sl.size}s")
                strs.append(sl.idx)
            else:
                code = _int_code(sl.ctype)
                if code is None:
                    code = "q"
                    if sl.ctype.is_int() or sl.ctype.is_pointer():
                        wraps.append((sl.idx, T.wrapper(sl.ctype)))
                codes.append(code)
            at = sl.off + (sl.size if sl.ctype.is_string() else 8)
        full = 0
        for bit, _ in self.items:
            full |= 1 << bit
        st = struct.Struct("".join(codes))
        simple = not strs and not wraps
        builders = [b for _, b in self.items]
        self._plan = (st, strs, wraps, full, builders, simple)
        if simple and len(builders) == 1:  # the common printf/trace clause
            unpack, only = st.unpack_from, builders[0]
            self.decode_all = lambda buf: [only(unpack(buf, HEADER))]  # type: ignore[method-assign]
        else:

            def decode_all(buf: Any) -> list[Item]:
                vals = self.values(buf)
                return [b(vals) for b in builders]

            self.decode_all = decode_all  # type: ignore[method-assign]
        self.full = full
        return self._plan

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a kept compile: program_cache.py) without what _compile
        makes on first use."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("decode_all", "full")}
        state["_plan"] = None
        return state

    def decode_all(self, buf: Any) -> list[Item]:
        """The items of a record where every action ran (mask == self.full);
        replaced by a specialised function on first use."""
        self._compile()
        return self.decode_all(buf)

    full: int = -1  # the mask when every action ran (set by _compile)

    def values(self, buf: Any) -> Any:
        """The slot values: a tuple when nothing needs fixing up, else a list."""
        st, strs, wraps, _, _, simple = self._plan or self._compile()
        if simple:
            return st.unpack_from(buf, HEADER)
        vals = list(st.unpack_from(buf, HEADER))
        for i in strs:
            vals[i] = vals[i].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        for i, w in wraps:
            vals[i] = w(vals[i])
        return vals

    def decode(self, buf: Any, mask: int | None = None) -> list[Item]:
        if mask is None:
            (mask,) = struct.unpack_from("<Q", buf, 16)
        plan = self._plan or self._compile()
        vals = self.values(buf)
        if mask & plan[3] == plan[3]:  # every action ran (the usual case)
            return [build(vals) for build in plan[4]]
        return [build(vals) for bit, build in self.items if mask >> bit & 1]

    def text_function(self) -> tuple[int, Callable[[Any], str]] | None:
        """(mask, f) where f(record) is the record's whole output, for a
        clause whose every action is a printf with a plain format (the
        consumer's fast path under -q); None otherwise."""
        if not self.items or not all(isinstance(b, PrintfItem) for _, b in self.items):
            return None
        from pydtrace.consume.printf import value_formatter

        st, strs, wraps, full, _, simple = self._plan or self._compile()
        texts = []
        for _, b in self.items:
            assert isinstance(b, PrintfItem)
            idxs = tuple(i for i, _ in b.pairs)
            f = value_formatter(b.fmt, tuple(t for _, t in b.pairs), idxs)
            if f is None:
                return None
            texts.append(f)
        if len(texts) == 1:
            (text,) = texts
            if simple:
                unpack = st.unpack_from
                return full, lambda buf: text(unpack(buf, HEADER))
            values = self.values
            return full, lambda buf: text(values(buf))
        values = self.values
        return full, lambda buf: "".join([f(v) for v in (values(buf),) for f in texts])


# --- aggregations ---------------------------------------------------------------------
VALUE_WORDS = {"count": 1, "sum": 1, "min": 1, "max": 1, "avg": 2, "stddev": 4}


@dataclass
class AggLayout:
    """An aggregation's per-CPU hash map: the key tuple's slots and the value words."""

    spec: AggSpec
    map_name: str
    keys: list[Slot]
    key_size: int
    words: int  # data words after the update counter
    # [C] in a map shared by several aggregations (cg_program.share_agg_maps): the
    # key starts with this u64 tag (the aggregation's id); None = a map of its own
    tag: int | None = None

    @property
    def value_size(self) -> int:
        return 8 * (1 + self.words)

    def decode_key(self, raw: bytes) -> tuple:
        return tuple(s.read(raw) for s in self.keys)

    def decode_value(self, raw: bytes) -> tuple[int, Any]:
        """(number of updates, state in consume.aggregation's representation)."""
        w = struct.unpack_from(f"<{1 + self.words}Q", raw, 0)
        n, data = w[0], w[1:]
        f = self.spec.func
        if f in ("count", "sum", "min", "max"):
            return n, s64(data[0])
        if f == "avg":
            return n, [s64(data[0]), s64(data[1])]
        if f == "stddev":
            return n, [s64(data[0]), s64(data[1]), (data[2] | data[3] << 64) & U128]
        return n, [s64(x) for x in data]

    def merge(self, states: list[Any]) -> Any:
        """Fold the states of the CPUs that updated an entry into one."""
        f = self.spec.func
        out = states[0]
        for s in states[1:]:
            if f in ("count", "sum"):
                out = s64(out + s)
            elif f == "min":
                out = min(out, s)
            elif f == "max":
                out = max(out, s)
            elif f == "avg":
                out = [s64(out[0] + s[0]), s64(out[1] + s[1])]
            elif f == "stddev":
                out = [s64(out[0] + s[0]), s64(out[1] + s[1]), (out[2] + s[2]) & U128]
            else:
                out = [s64(a + b) for a, b in zip(out, s)]
        return out

    # -- raw per-CPU values, for what trunc()/clear() put back (engine._take)

    def _words(self, raw: bytes) -> list[int]:
        w = list(struct.unpack_from(f"<{1 + self.words}Q", raw, 0))
        if self.spec.func == "stddev":  # the sum of squares is one 128-bit word
            w[3:5] = [w[3] | w[4] << 64]
        return w

    def _raw(self, w: list[int]) -> bytes:
        if self.spec.func == "stddev":
            w = [*w[:3], w[3] & U64, w[3] >> 64 & U64]
        return struct.pack(f"<{1 + self.words}Q", *(x & U64 for x in w))

    def since(self, now: list[bytes], then: list[bytes] | None) -> tuple[list[bytes] | None, int]:
        """(the per-CPU values of the updates in `now` that `then`, an earlier
        read of the same entry, had not seen, or None when there were none;
        the number of updates that cannot be given). The update counter
        tells which CPUs had some. Count, sum, avg, stddev and the
        quantizations subtract. A min or max is known only when it moved
        (then it is the new updates' own); else their extreme cannot be told
        from the old one, and they are counted, to be reported as drops.
        then=None: the entry is new, all of it."""
        if then is None:
            return (now if any(self._words(r)[0] for r in now) else None), 0
        out, seen, lost = [], False, 0
        for cpu, raw in enumerate(now):
            w = self._words(raw)
            old = self._words(then[cpu]) if cpu < len(then) else [0] * len(w)
            d = [0] * len(w)
            if w[0] < old[0]:  # the entry was made anew since: all of it is new
                d = w
            elif w[0] != old[0]:
                if self.spec.func not in ("min", "max"):
                    d = [a - b for a, b in zip(w, old)]
                    if self.spec.func == "stddev":
                        d[3] &= U128
                elif w[1] != old[1]:
                    d = [w[0] - old[0], w[1]]
                else:
                    lost += (w[0] - old[0]) & U64
            seen = seen or d[0] != 0
            out.append(self._raw(d))
        return (out if seen else None), lost

    def add(self, a: list[bytes], b: list[bytes]) -> list[bytes]:
        """Two sets of per-CPU values of one entry as one."""
        out = []
        for ra, rb in zip(a, b):
            x, y = self._words(ra), self._words(rb)
            if not x[0] or not y[0]:
                out.append(rb if not x[0] else ra)
                continue
            f = self.spec.func
            if f in ("min", "max"):
                pick = min if f == "min" else max
                w = [x[0] + y[0], pick(s64(x[1]), s64(y[1]))]
            else:
                w = [p + q for p, q in zip(x, y)]
                if f == "stddev":
                    w[3] &= U128
            out.append(self._raw(w))
        return out


@dataclass
class ProbeNameSlot(Slot):
    """A key that is constant per probe (probefunc, probename...): the BPF side
    stores the probe id (8 bytes, cheap to hash); it reads back as the name."""

    names: dict[int, str] = field(default_factory=dict)  # probe id -> the string

    def read(self, buf: bytes) -> Any:
        (pid,) = struct.unpack_from("<Q", buf, self.off)
        return self.names.get(pid, "")


@dataclass
class StackSlot(Slot):
    """A stack in an aggregation key: for ustack() the pid (8 bytes), then
    `frames` 8-byte return addresses (0 past the last); reads back as a
    consume.stacks.StackKey."""

    frames: int = 0
    keep: int = 0  # frames printed: a kernel stack takes MACHINERY_ROOM more

    @property
    def user(self) -> bool:
        return self.ctype.name == "ustack"

    def read(self, buf: bytes) -> Any:
        from pydtrace.consume.stacks import StackKey, kernel_frames, remember

        at = self.off + (8 if self.user else 0)
        pcs = struct.unpack_from(f"<{self.frames}Q", buf, at)
        if self.user:
            n = pcs.index(0) if 0 in pcs else len(pcs)
            key = StackKey("ustack", pcs[:n], struct.unpack_from("<q", buf, self.off)[0])
        else:
            key = StackKey("stack", kernel_frames(pcs, self.keep))
        remember(key)
        return key


@dataclass
class SymSlot(Slot):
    """sym(addr) and the rest in an aggregation key: the pid (user ones), then
    the address; reads back as a consume.stacks.SymKey."""

    def read(self, buf: bytes) -> Any:
        from pydtrace.consume.stacks import SymKey, canonical_address

        pid, addr = struct.unpack_from("<qQ", buf, self.off)
        kind = self.ctype.name[1:]
        if not kind.startswith("u"):
            pid = -1
        return SymKey(kind, canonical_address(kind, addr, pid), pid)


SYMADDR_NAMES = frozenset(t.name for t in T.SYMADDR.values())

# a stack in an aggregation key keeps this many frames at most: BPF hash keys
# are at most 512 bytes (the kernel builds them on its 512-byte stack)
KEY_FRAMES = 48


def agg_layout(
    spec: AggSpec, map_name: str, strsize: int, probe_keys: dict[int, dict[int, str]] | None = None,
    frames: tuple[int, int] = (20, 100), stack_frames: dict[int, int] | None = None,
) -> AggLayout:  # fmt: skip
    """probe_keys: key position -> {probe id: string} for keys stored as probe ids;
    frames: (stackframes, ustackframes) for a stack key without a frame count,
    stack_frames: key position -> the count stack(n) gives; cut at KEY_FRAMES."""
    keys: list[Slot] = []
    off = 0
    for pos, t in enumerate(spec.keytypes):
        if probe_keys and pos in probe_keys:
            keys.append(ProbeNameSlot(off, t, 8, names=probe_keys[pos]))
            off += 8
            continue
        if t.name in SYMADDR_NAMES:
            keys.append(SymSlot(off, t, 16))
            off += 16
            continue
        if t.r.kind == "stack":
            from pydtrace.consume.stacks import MACHINERY_ROOM

            user = t.name == "ustack"
            keep = (stack_frames or {}).get(pos) or (frames[1] if user else frames[0])
            keep = min(keep, KEY_FRAMES)
            n = keep if user else min(keep + MACHINERY_ROOM, KEY_FRAMES)
            size = 8 * n + (8 if user else 0)
            keys.append(StackSlot(off, t, size, frames=n, keep=keep))
            off += size
            continue
        size = strsize + 1 if t.is_string() else 8
        keys.append(Slot(off, t, size))
        off += align8(size)
    words = VALUE_WORDS.get(spec.func) or nbuckets(spec)
    return AggLayout(spec, map_name, keys, max(off, 8), words)


# The builders of the other actions' items: classes, not closures, so that a
# compiled program can be kept between runs (program_cache.py pickles it).
class PickItem:
    """An item of some slots' values as recorded (exit(), trace(), sym()...)."""

    __slots__ = ("action", "idxs")

    def __init__(self, action: Action, idxs: list[int]) -> None:
        self.action = action
        self.idxs = idxs

    def __call__(self, v: Any) -> Item:
        return Item(self.action, tuple([v[i] for i in self.idxs]))


class FloatItem:
    """trace() of a float: the user engine holds an unassigned float as the
    integer 0 (traced "0")."""

    __slots__ = ("action", "idx")

    def __init__(self, action: Action, idx: int) -> None:
        self.action = action
        self.idx = idx

    def __call__(self, v: Any) -> Item:
        return Item(self.action, (v[self.idx] if v[self.idx] else 0,))


class BlockItem:
    """trace() of a struct, union or array: its bytes; print(): the pointer
    (ptr: its slot index) and the bytes of the object."""

    __slots__ = ("action", "ptr", "idxs", "size")

    def __init__(self, action: Action, ptr: int | None, idxs: list[int], size: int) -> None:
        self.action = action
        self.ptr = ptr
        self.idxs = idxs
        self.size = size

    def __call__(self, v: Any) -> Item:
        data = block_bytes(v, self.idxs, self.size)
        return Item(self.action, (data,) if self.ptr is None else (v[self.ptr], data))


class SetoptItem:
    """setopt(): each part a literal (slot None) or a slot's value."""

    __slots__ = ("action", "parts")

    def __init__(self, action: Action, parts: list[tuple[Any, int | None]]) -> None:
        self.action = action
        self.parts = parts

    def __call__(self, v: Any) -> Item:
        return Item(self.action, tuple([lit if i is None else v[i] for lit, i in self.parts]))


class StackItem:
    """stack()/ustack() as an action: the frames (user stacks: and the pid,
    slot pid) made into a StackKey."""

    __slots__ = ("action", "idxs", "pid", "kind", "keep")

    def __init__(
        self, action: Action, idxs: list[int], pid: int | None, kind: str, keep: int
    ) -> None:
        self.action, self.idxs, self.pid, self.kind, self.keep = action, idxs, pid, kind, keep

    def __call__(self, v: Any) -> Item:
        # (stacks are printed only when recorded: a sys.modules lookup after the first)
        from pydtrace.consume.stacks import StackKey, kernel_frames, remember

        pcs = tuple([v[i] for i in self.idxs])
        if self.pid is None:
            return Item(self.action, (StackKey(self.kind, kernel_frames(pcs, self.keep)),))
        end = pcs.index(0) if 0 in pcs else len(pcs)
        key = StackKey(self.kind, pcs[:end], v[self.pid])
        remember(key)
        return Item(self.action, (key,))


def block_bytes(vals: Any, idxs: list[int], size: int) -> bytes:
    """The bytes record_block copied, from its 8-byte slot values."""
    return b"".join((vals[i] & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little") for i in idxs)[:size]


class PrintfItem:
    """The builder of a printf() item: its description and (slot index, type)
    per argument, kept so the engine can format a record without building items."""

    __slots__ = ("action", "pairs")

    def __init__(self, action: Action, pairs: list[tuple[int, CType]]) -> None:
        self.action = action
        self.pairs = pairs

    @property
    def fmt(self) -> Format:
        assert self.action.format is not None
        return self.action.format

    def __call__(self, v: Any) -> Item:
        return Item(self.action, tuple([v[i] for i, _ in self.pairs]))
