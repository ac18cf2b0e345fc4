"""Compiled programs kept between runs: the second run of a tool or a
one-liner starts without parsing, checking or generating code.

What is kept, for one command line (its slot: slot_of), is the last run's
compile and its key: what a run on the eBPF engine needs after compiling:
the BPF programs (encoded, with their map loads to fill), the maps, record
layouts and probes (codegen's Compiled), the options as the program's
pragmas left them, and the few facts the session asks of the checked
program (its probes, destructive actions). A command reads its slot's
entry as it starts and starts loading its programs at once (look_ahead,
Early); the session uses them only if the entry's key is its program's.

The key is everything that decides the result: the programs' texts, the
settings and operands, the user's ids, pydtrace's own files (their sizes
and times), the Python version, the running kernel (its boot id: BTF,
tracepoint ids and kernel addresses belong to one boot; its modules and
dynamic events), the online CPUs and the block devices. A run that traces
-c/-p targets, uses cpp, or has pid/usdt probes is not kept (their
programs depend on a process's files).

$pid, $ppid, $pgid and $sid change from run to run, and a tool's default
filter (`pid != $pid`) reads $pid. They are not in the key: a kept program
is patched where each one stands. Where that is, is learned by comparing
two compiles made with different values (a run that found an entry it
could not patch compiles, then compares): every instruction that differs
must differ only in its immediate, holding the first compile's value of
exactly one macro variable and the second's value of the same one, and
everything but the instructions must be equal. A value folded into
another constant (`$pid + 1`, `$pid % 2 == 0` in a quantize bound) would
not show so; the checker notes such folds and such a program is not kept.

Where: /run/pydtrace for root (entries of another boot are removed: where
/run is a tmpfs they go with the boot anyway), $XDG_RUNTIME_DIR/pydtrace
for another user, the directory PYDTRACE_CACHE names if set (0 or off: no
cache). Entries hold a pickle, so a tracer running as root must never read
one another user could have written: the directory is used only if it is
ours and closed to others, and no other user can change a directory above
it (open_private_dir); an entry is read only if it is a regular file of
ours, opened without following links. At most 200 entries and 16 MiB are
kept (the oldest go first). A directory that fails this is not
used: the program is compiled, as without a cache.
"""

from __future__ import annotations

import marshal
import os
import stat
import struct
import sys
import time

from pydtrace.lang.dataclass import dataclass
from pydtrace.lang.macros import process_values

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FORMAT = 1  # bump when what is kept changes shape
VARYING = ("pid", "ppid", "pgid", "sid")  # macro variables patched, not keyed
MAX_ENTRIES = 200  # a store beyond this, or beyond MAX_BYTES, removes the oldest
MAX_BYTES = 16 << 20
_IMM = struct.Struct("<i")
_U32 = struct.Struct("<I")


@dataclass
class Code:
    """One program's instructions, encoded; maps: (byte offset of an
    immediate, the map whose fd goes there); walls: byte offsets of the
    LD_IMM64s of the wall clock's offset (Insn.wall), filled at load time:
    the clock may have been set since the compile."""

    data: bytes
    maps: tuple[tuple[int, str], ...]
    walls: tuple[int, ...]

    def with_fds(self, fds: dict[str, int]) -> bytes:
        buf = bytearray(self.data)
        for off, name in self.maps:
            _IMM.pack_into(buf, off, fds[name])
        if self.walls:
            wall = (time.time_ns() - time.monotonic_ns()) & 0xFFFFFFFFFFFFFFFF
            for off in self.walls:
                _U32.pack_into(buf, off + 4, wall & 0xFFFFFFFF)
                _U32.pack_into(buf, off + 12, wall >> 32)
        return bytes(buf)


def freeze(insns: list[Any]) -> Code:
    """Encode instructions, their map fds and wall clock offsets left 0 and noted."""
    from pydtrace.engines.ebpf.insn import encode

    maps: list[tuple[int, str]] = []
    walls: list[int] = []
    off = 0
    for i in insns:
        if i.map is not None:
            maps.append((off + 4, i.map))
        elif i.wall:
            walls.append(off)
        off += 8 * i.slots
    data = bytearray(encode(insns, {name: 0 for _, name in maps}))
    for w in walls:
        data[w + 4 : w + 8] = data[w + 12 : w + 16] = bytes(4)
    return Code(bytes(data), tuple(maps), tuple(walls))


@dataclass
class StubClause:
    probes: list[Any]  # probes.catalogue.Probe


@dataclass
class CheckedStub:
    """What a session asks of its checked program once it is compiled."""

    clauses: list[StubClause]
    destructive: bool
    kernel_reads: list[Any]


@dataclass
class Kept:
    """One entry: code compiled with `values` of the varying macro
    variables it reads; known: where each of them stands (program, slot),
    for those whose places have been learned; plan: what loading needs
    besides the code, as plain data (maps, fills, programs: see plan_of), so
    that the programs load while the rest is unpickled."""

    key: str
    values: dict[str, int]
    known: dict[str, list[tuple[int, int]]]
    # pickled (stub, options, matches, stability, Compiled without code, ustack keys,
    # macro_literals of that Compiled)
    rest: bytes
    code: list[Code]
    plan: tuple = ()

    def to_plain(self) -> dict[str, Any]:
        """For marshal: builtin types only (marshal is built in; pickle's
        import alone is 2 ms of a one-liner's start)."""
        return {"format": FORMAT, "key": self.key, "values": self.values, "known": self.known,
                "rest": self.rest, "plan": self.plan,
                "code": [(c.data, c.maps, c.walls) for c in self.code]}  # fmt: skip

    @classmethod
    def from_plain(cls, d: dict[str, Any]) -> Kept:
        code = [Code(data, tuple(tuple(m) for m in maps), tuple(walls))
                for data, maps, walls in d["code"]]  # fmt: skip
        known = {m: [tuple(x) for x in places] for m, places in d["known"].items()}
        return cls(d["key"], d["values"], known, d["rest"], code, d["plan"])


class _MapPlan:
    __slots__ = ("name", "type", "key_size", "value_size", "max_entries", "flags")

    def __init__(self, name: str, *sizes: int) -> None:
        self.name = name
        self.type, self.key_size, self.value_size, self.max_entries, self.flags = sizes


class _ProgPlan:
    __slots__ = ("name", "prog_type", "attach", "insns")
    expected_attach_type = 0  # (uprobe programs, the only ones with one, are not kept)

    def __init__(self, name: str, prog_type: int, attach: tuple, insns: Code) -> None:
        self.name, self.prog_type, self.attach, self.insns = name, prog_type, attach, insns


class LoadPlan:
    """What loader.load() reads of a Compiled (maps, fills, progs), from an
    entry's plain data."""

    def __init__(self, plan: tuple, code: list[Code]) -> None:
        maps, fills, progs, self.log_level = plan
        self.maps = [_MapPlan(*m) for m in maps]
        self.fills = {name: [tuple(e) for e in entries] for name, entries in fills.items()}
        self.progs = [_ProgPlan(*p, c) for p, c in zip(progs, code)]


def plan_of(compiled: Any, log_level: int) -> tuple:
    """The plain data of a LoadPlan for a Compiled (log_level: loader.log_level)."""
    maps = [(m.name, m.type, m.key_size, m.value_size, m.max_entries, m.flags)
            for m in compiled.maps]  # fmt: skip
    progs = [(p.name, p.prog_type, p.attach) for p in compiled.progs]
    return maps, dict(compiled.fills), progs, log_level


# --- the key -------------------------------------------------------------------------
def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


_boot_id: str | None = None


def boot_id() -> str:
    """This boot's id (read once: the key, the entry's name and pruning ask)."""
    global _boot_id
    if _boot_id is None:
        _boot_id = _read("/proc/sys/kernel/random/boot_id").decode(errors="replace").strip()
    return _boot_id


def _own_files() -> list[tuple[str, int, int]]:
    """pydtrace's files (path, size, mtime): an edited or reinstalled package
    compiles afresh."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    out: list[tuple[str, int, int]] = []
    todo = [root]
    while todo:
        d = todo.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    if e.name != "__pycache__":
                        todo.append(e.path)
                elif e.name.endswith((".py", ".d")):
                    st = e.stat()
                    out.append((e.path, st.st_size, st.st_mtime_ns))
    out.sort()
    return out


def _block_devices() -> tuple[list[str], bytes]:
    try:
        names = sorted(os.listdir("/sys/class/block"))
    except OSError:
        names = []
    return names, _read("/proc/devices")


def key_of(inputs: tuple) -> str:
    """The key of a compile's inputs (the session's part) with this machine's:
    their text (an entry holds it, and is used only when it is the same)."""
    machine = (
        FORMAT,
        sys.version,
        boot_id(),
        _read("/proc/modules"),  # (their BTF, tracepoints and symbols)
        _read("/sys/kernel/tracing/dynamic_events"),  # (kprobe and uprobe events made since)
        _read("/sys/devices/system/cpu/online"),
        _block_devices(),  # (the io provider's device names)
        _own_files(),
        sorted((k, v) for k, v in os.environ.items() if k.startswith("DTRACE_")),
    )
    return repr((machine, inputs))


# --- where entries live ------------------------------------------------------------------
OFF = ("0", "no", "off", "false")


def cache_path() -> str | None:
    """PYDTRACE_CACHE: unset, the default place; 0/off, no cache; an
    absolute path, that directory."""
    setting = os.environ.get("PYDTRACE_CACHE", "")
    if setting.lower() in OFF:
        return None
    if setting:
        return setting if setting.startswith("/") else None
    if os.geteuid() == 0:
        return "/run/pydtrace"
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    return runtime + "/pydtrace" if runtime.startswith("/") else None


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_private_dir(path: str, make: bool = True) -> int | None:
    """An fd of directory `path`, made (0700) if missing and `make`, when no other
    user can change what is in it: every directory above it root's or ours,
    and writable by others only if sticky (they cannot then rename what is
    not theirs); no symbolic link anywhere; the directory itself ours and
    closed to everyone else. Else None."""
    euid = os.geteuid()
    names = [n for n in path.split("/") if n]
    if not path.startswith("/") or not names or ".." in names:
        return None
    try:
        fd = os.open("/", _DIR)
    except OSError:
        return None
    try:
        for name in names[:-1]:
            st = os.fstat(fd)
            if not _trusted_parent(st, euid):
                return None
            nfd = os.open(name, _DIR, dir_fd=fd)
            os.close(fd)
            fd = nfd
        if not _trusted_parent(os.fstat(fd), euid):
            return None
        if make:
            try:
                os.mkdir(names[-1], 0o700, dir_fd=fd)
            except FileExistsError:
                pass
        nfd = os.open(names[-1], _DIR, dir_fd=fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    st = os.fstat(nfd)
    if st.st_uid != euid or st.st_mode & 0o077:
        os.close(nfd)
        return None
    return nfd


def _trusted_parent(st: os.stat_result, euid: int) -> bool:
    if st.st_uid not in (0, euid):
        return False
    return not st.st_mode & 0o022 or bool(st.st_mode & stat.S_ISVTX)


def _private_dir(make: bool) -> int | None:
    """The cache's directory (made only to store: a lookup leaves no trace)."""
    path = cache_path()
    return open_private_dir(path, make) if path is not None else None


def slot_of(command: str, argv: list[str]) -> str:
    """Where a command line's compile is kept (its entry's name is this
    text's digest): one entry a command line and directory, the last run's;
    the key in it says whether it is this run's program."""
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = ""
    return repr((command, argv, cwd))


def _name(slot: str) -> str:
    """The entry's file: the boot's, and a digest of the slot (hashlib's
    import costs 4 ms, zlib's 0.5: the remainders of the text read as one
    number by two primes)."""
    n = int.from_bytes(slot.encode(errors="surrogateescape"), "little")
    return f"{boot_id()[:8]}-{n % 0xFFFFFFFFFFFFFFC5:016x}{n % 0xFFFFFFFB:08x}"


def read(slot: str) -> Kept | None:
    """The entry kept in a slot, whatever its key; None if there is none, or
    it is not ours alone, or torn, or of another format."""
    dfd = _private_dir(make=False)
    if dfd is None:
        return None
    try:
        fd = os.open(_name(slot), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return None
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            plain = marshal.load(f)
        if plain["format"] != FORMAT:
            return None
        return Kept.from_plain(plain)
    except Exception:  # a torn or old entry: compile instead
        return None
    finally:
        os.close(fd)


def load(slot: str, key: str) -> Kept | None:
    """The entry kept in a slot if its key is `key`."""
    kept = read(slot)
    return kept if kept is not None and kept.key == key else None


class Early:
    """A command line's entry, read as the command starts (look_ahead), its
    programs loading already (loader.LoadAhead: the verifier's 10-20 ms of
    kernel time then overlap the command's imports and option parsing,
    instead of following them). The session takes it when the entry's key
    is its program's; else the load was in vain, and is closed."""

    def __init__(self, kept: Kept, code: list[Code] | None, ahead: Any) -> None:
        self.kept = kept
        self.code = code  # relocated to this process's macro values; None if it cannot be
        self.ahead = ahead  # the LoadAhead of code, until taken

    def loaded(self) -> bool:
        """Has its load ended well already? (The kernel took our programs: this
        process may use BPF, and need not probe for it.)"""
        return self.ahead is not None and self.ahead.succeeded()

    def take_load(self) -> Any:
        ahead, self.ahead = self.ahead, None
        return ahead

    def close(self) -> None:
        ahead = self.take_load()
        if ahead is not None:
            ahead.close()


def look_ahead(slot: str) -> Early | None:
    """At a command's start: the entry its command line last kept, its
    programs loading (unless they cannot be patched for this process)."""
    if cache_path() is None:
        return None
    try:
        kept = read(slot)
        if kept is None:
            return None
        code = relocate(kept, varying_values())
        ahead = None
        if code is not None:
            # imported here, not by the loader's thread: the run needs them
            # anyway, and a thread importing beside this one waits for the GIL
            import pydtrace.engines.ebpf.maps  # noqa: F401
            from pydtrace.engines.ebpf.loader import LoadAhead

            ahead = LoadAhead(LoadPlan(kept.plan, code))
        return Early(kept, code, ahead)
    except Exception:  # (no thread to be had...): compile as without a cache
        return None


def store(kept: Kept, slot: str) -> None:
    """Write a slot's entry (whole or not at all); never fails the run."""
    dfd = _private_dir(make=True)
    if dfd is None:
        return
    name = _name(slot)
    tmp = f".{name}.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)  # fmt: skip
        try:
            with os.fdopen(fd, "wb", closefd=False) as f:
                marshal.dump(kept.to_plain(), f)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        _prune(dfd)
    except Exception:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
    finally:
        os.close(dfd)


def _prune(dfd: int) -> None:
    """Remove entries of other boots, a writer's file left for a minute (a
    run killed while storing), and the oldest entries beyond MAX_ENTRIES or
    MAX_BYTES (down to three quarters of either: /run is memory)."""
    boot = boot_id()[:8]
    now = time.time_ns()
    mine: list[tuple[int, int, str]] = []
    for name in os.listdir(dfd):
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if name.startswith("."):
                if now - st.st_mtime_ns > 60_000_000_000:
                    os.unlink(name, dir_fd=dfd)
            elif not name.startswith(boot + "-"):
                os.unlink(name, dir_fd=dfd)
            else:
                mine.append((st.st_mtime_ns, st.st_size, name))
        except OSError:
            pass
    total = sum(size for _, size, _ in mine)
    if len(mine) <= MAX_ENTRIES and total <= MAX_BYTES:
        return
    mine.sort()
    count = len(mine)
    for _, size, name in mine:
        if count <= MAX_ENTRIES * 3 // 4 and total <= MAX_BYTES * 3 // 4:
            break
        try:
            os.unlink(name, dir_fd=dfd)
        except OSError:
            pass
        count -= 1
        total -= size


# --- patching and learning ----------------------------------------------------------------
def _fits(v: int) -> bool:
    return 0 < v < 1 << 31


def relocate(kept: Kept, values: dict[str, int]) -> list[Code] | None:
    """The kept code for these values of the varying macro variables, or
    None when a value differs where its places are not known."""
    patches: list[tuple[int, int, int, int]] = []
    for m, was in kept.values.items():
        now = values[m]
        if now == was:
            continue
        if m not in kept.known or not _fits(now):
            return None
        patches.extend((i, slot, was, now) for i, slot in kept.known[m])
    if not patches:
        return kept.code
    bufs = [bytearray(c.data) for c in kept.code]
    for i, slot, was, now in patches:
        off = slot * 8 + 4
        if _IMM.unpack_from(bufs[i], off)[0] != was:
            return None
        _IMM.pack_into(bufs[i], off, now)
    return [Code(bytes(b), c.maps, c.walls) for b, c in zip(bufs, kept.code)]


def learn(old: Kept | None, new: Kept) -> Kept:
    """The entry to keep after compiling `new` where `old` (same key) was
    kept with other values: new's code, with the places of the varying
    macro variables that the two compiles prove (see the module's doc)."""
    import pickle

    fresh = Kept(new.key, new.values, {}, new.rest, new.code, new.plan)
    if (old is None or len(old.code) != len(new.code) or set(old.values) != set(new.values)
            or not same(pickle.loads(old.rest), pickle.loads(new.rest))):  # fmt: skip
        return fresh
    differ = [m for m in new.values if old.values[m] != new.values[m]]
    found: dict[str, list[tuple[int, int]]] = {m: [] for m in differ}
    for i, (a, b) in enumerate(zip(old.code, new.code)):
        if a.maps != b.maps or a.walls != b.walls or len(a.data) != len(b.data):
            return fresh
        if a.data == b.data:
            continue
        for off in range(0, len(a.data), 8):
            if a.data[off : off + 8] == b.data[off : off + 8]:
                continue
            if a.data[off : off + 4] != b.data[off : off + 4]:
                return fresh  # not an immediate alone
            x, y = _IMM.unpack_from(a.data, off + 4)[0], _IMM.unpack_from(b.data, off + 4)[0]
            who = [m for m in differ if old.values[m] == x and new.values[m] == y]
            if len(who) != 1:
                return fresh  # folded, or two variables of one value
            found[who[0]].append((i, off // 8))
    known = dict(found)
    for m in new.values:
        if m in known or m not in old.known:
            continue
        # the same value both times: its places are the old ones, if they hold it
        places = old.known[m]
        if any(
            _IMM.unpack_from(new.code[i].data, s * 8 + 4)[0] != new.values[m] for i, s in places
        ):
            return fresh
        known[m] = places
    return Kept(new.key, new.values, known, new.rest, new.code, new.plan)


def same(x: Any, y: Any, seen: set[tuple[int, int]] | None = None) -> bool:
    """Equal in every value, object by object (pickles of equal objects can
    differ: a frozenset's order follows the process's string hashes); the
    literals of a varying macro variable are equal when of the same one
    (their values are set at load time: macro_literals)."""
    if type(x) is not type(y):
        return False
    if isinstance(x, int | float | str | bytes | bool | type(None)):
        return x == y
    macro = getattr(x, "macro", None)
    if macro in VARYING:
        return macro == getattr(y, "macro", None)
    seen = set() if seen is None else seen
    if (id(x), id(y)) in seen:
        return True
    seen.add((id(x), id(y)))
    if isinstance(x, list | tuple):
        return len(x) == len(y) and all(same(a, b, seen) for a, b in zip(x, y))
    if isinstance(x, dict):
        return list(x) == list(y) and all(same(x[k], y[k], seen) for k in x)
    if isinstance(x, set | frozenset):
        return x == y
    sx = _state(x)
    if sx is None:
        return x == y
    sy = _state(y)  # (not through `seen`: a slotted object's state is a dict made here)
    return list(sx) == list(sy) and all(same(sx[k], sy[k], seen) for k in sx)


def macro_literals(root: Any) -> list[Any]:
    """The literals of varying macro variables ($pid: lang.ast.IntLit with
    .macro) in an object graph: the record layouts keep the AST of their
    actions' arguments, whose copies of $pid a later run sets to its own."""
    found: list[Any] = []
    seen: set[int] = set()
    todo = [root]
    while todo:
        x = todo.pop()
        if isinstance(x, int | float | str | bytes | bool | type(None)) or id(x) in seen:
            continue
        seen.add(id(x))
        if getattr(x, "macro", None) in VARYING:
            found.append(x)
        elif isinstance(x, list | tuple | set | frozenset):
            todo.extend(x)
        elif isinstance(x, dict):
            todo.extend(x.values())
        else:
            todo.extend((_state(x) or {}).values())
    return found


def _state(x: Any) -> dict[str, Any] | None:
    """An object's attributes (its __dict__, or its slots'), None for one
    with neither (compared with ==)."""
    state = getattr(x, "__dict__", None)
    if state is not None:
        return state
    slots = [n for c in type(x).__mro__ for n in getattr(c, "__slots__", ())]
    return {n: getattr(x, n, None) for n in slots} if slots else None


def set_macro_literals(literals: list[Any], values: dict[str, int]) -> None:
    for lit in literals:
        lit.value = values[lit.macro]
        lit.text = str(lit.value)


def varying_values() -> dict[str, int]:
    return {m: v for m, v in process_values().items() if m in VARYING}


def keepable_values(values: dict[str, int]) -> bool:
    return all(_fits(v) for v in values.values())
