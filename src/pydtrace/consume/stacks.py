"""Stacks and addresses as dtrace prints them: stack(), ustack() (records and
aggregation keys), sym/func/mod and usym/ufunc/umod/uaddr (the folded form
flame-graph tools read is aggprint.format_folded).

A frame prints as `module`function+0xoff` (no `+0x0` at a function's
start), `module`0xaddr` when only the object is known, `0xaddr` otherwise;
each on its own line after `stackindent` (14) spaces, after a newline.
Kernel frames resolve through /proc/kallsyms, user frames through the
process's mappings and ELF files (symbols/)."""

from __future__ import annotations

from operator import itemgetter

STACK_INDENT = 14
# kernel frames taken beyond what stack(n) asks for: a stack taken in a BPF
# program starts in the probe machinery (the program, bpf_trace_runN...),
# which the consumer drops (kernel_frames)
MACHINERY_ROOM = 6

# Both keys are plain tuples with named fields (typing.NamedTuple would import
# typing and build each class through it: milliseconds of every printf's start)


class StackKey(tuple):
    """A stack as a value: which kind ("stack" or "ustack"), its frames
    (innermost first), and for a user stack the process it belongs to."""

    __slots__ = ()
    kind: str = property(itemgetter(0))  # type: ignore[assignment]
    frames: tuple[int, ...] = property(itemgetter(1))  # type: ignore[assignment]
    pid: int = property(itemgetter(2))  # type: ignore[assignment]

    def __new__(cls, kind: str, frames: tuple[int, ...], pid: int = -1) -> StackKey:
        return tuple.__new__(cls, (kind, frames, pid))

    def __repr__(self) -> str:
        return f"StackKey(kind={self[0]!r}, frames={self[1]!r}, pid={self[2]!r})"


class SymKey(tuple):
    """sym(addr) and the rest as a value (an aggregation key): which one
    ("sym", "ufunc", ...), the address, and for the user ones the process it
    belongs to."""

    __slots__ = ()
    kind: str = property(itemgetter(0))  # type: ignore[assignment]
    addr: int = property(itemgetter(1))  # type: ignore[assignment]
    pid: int = property(itemgetter(2))  # type: ignore[assignment]

    def __new__(cls, kind: str, addr: int, pid: int = -1) -> SymKey:
        return tuple.__new__(cls, (kind, addr, pid))

    def __repr__(self) -> str:
        return f"SymKey(kind={self[0]!r}, addr={self[1]!r}, pid={self[2]!r})"


def kernel_frames(pcs: tuple[int, ...], keep: int) -> tuple[int, ...]:
    """A kernel stack from the probe's site on: the leading frames of the
    probe machinery dropped, cut at the first 0 and at `keep` frames."""
    from pydtrace.symbols.kallsyms import is_machinery, kernel_symbols

    end = pcs.index(0) if 0 in pcs else len(pcs)
    ks = kernel_symbols()
    start = 0
    while start < end:
        found = ks.lookup(pcs[start])
        if found is None or not is_machinery(found[0], found[1]):
            break
        start += 1
    return pcs[start : min(end, start + keep)]


def frame_name(kind: str, pc: int, pid: int) -> str:
    """One frame, dtrace's way."""
    if kind == "stack":
        from pydtrace.symbols.kallsyms import kernel_symbols

        found = kernel_symbols().lookup(pc)
        if found is None:
            return "0x%x" % pc
        mod, name, off = found
        return f"{mod}`{name}+0x{off:x}" if off else f"{mod}`{name}"
    from pydtrace.symbols.process import process_symbols

    obj, name, off = process_symbols(pid).lookup(pc)
    if name is not None:
        return f"{obj}`{name}+0x{off:x}" if off else f"{obj}`{name}"
    return f"{obj}`0x{pc:x}" if obj else "0x%x" % pc


def user_frames(frames: tuple[int, ...], pid: int) -> tuple[int, ...]:
    """A user stack to its first 0, and to the first frame past the pc that is not
    in the process's executable memory: a frame-pointer walk through code built
    without frame pointers reads stack words that are no return addresses (text,
    pointers to data); what follows such a word is no longer the call chain."""
    from pydtrace.symbols.process import process_symbols

    end = frames.index(0) if 0 in frames else len(frames)
    syms = process_symbols(pid) if pid > 0 else None
    for i in range(1, end):
        if syms is not None and syms.is_code(frames[i]) is False:
            return frames[:i]
    return frames[:end]


def format_stack(key: StackKey, indent: int = STACK_INDENT) -> str:
    """A newline, then each frame on a line of its own (to the first 0)."""
    out = ["\n"]
    frames = user_frames(key.frames, key.pid) if key.kind == "ustack" else key.frames
    for pc in frames:
        if not pc:
            break
        out.append(" " * indent + frame_name(key.kind, pc, key.pid) + "\n")
    return "".join(out)


def remember(key: StackKey) -> None:
    """Snapshot a user stack's process now, while it may still be running."""
    if key.kind == "ustack" and key.pid > 0:
        from pydtrace.symbols.process import process_symbols

        process_symbols(key.pid)


def format_symbol(kind: str, addr: int, pid: int) -> str:
    """sym/func/mod, usym/ufunc/umod/uaddr: the text dtrace prints (before
    its `  %-50s` padding)."""
    addr &= 0xFFFFFFFFFFFFFFFF
    if kind in ("sym", "func", "mod"):
        from pydtrace.symbols.kallsyms import kernel_symbols

        found = kernel_symbols().lookup(addr)
        if found is None:
            return "0x%x" % addr
        mod, name, _ = found
        return mod if kind == "mod" else f"{mod}`{name}"
    from pydtrace.symbols.process import process_symbols

    obj, name, off = process_symbols(pid).lookup(addr)
    if kind == "umod":
        return obj or "0x%x" % addr
    if name is None:
        return f"{obj}`0x{addr:x}" if obj else "0x%x" % addr
    if kind == "uaddr":
        return f"{obj}`{name}+0x{off:x}" if off else f"{obj}`{name}"
    return f"{obj}`{name}"


def canonical_address(kind: str, addr: int, pid: int) -> int:
    """The address a sym()-family key stands for, so that keys naming the
    same thing are one (as dtrace's consumer does): a function's start for
    sym/func/usym/ufunc, the object's first mapping for mod/umod, the
    address itself for uaddr (or when nothing holds it)."""
    addr &= 0xFFFFFFFFFFFFFFFF
    if kind == "uaddr":
        return addr
    if kind in ("sym", "func", "mod"):
        from pydtrace.symbols.kallsyms import kernel_symbols

        found = kernel_symbols().lookup(addr)
        if found is None:
            return addr
        mod, _, off = found
        return kernel_symbols().module_start(mod) if kind == "mod" else addr - off
    from pydtrace.symbols.process import process_symbols

    ps = process_symbols(pid)  # the mappings now, while the process may still run
    obj, name, off = ps.lookup(addr)
    if kind == "umod":
        m = ps.mapping(addr)
        return ps.object_start(m.path) if m is not None else addr
    return addr - off if name is not None else addr
