"""BPF maps as Python objects: fd ownership, per-CPU values, safe iteration, ring buffer sizing."""

from __future__ import annotations

import errno as _errno
import mmap
from collections.abc import Iterator

from pydtrace.engines.ebpf import bpf as _bpf
from pydtrace.engines.ebpf.bpf import PERCPU_MAP_TYPES, MapType

_ENOTSUPP = 524  # the kernel-internal "operation not supported" some map types return
# what a batch command answers where the kernel or the map type lacks it
_NO_BATCH = (_errno.EINVAL, _errno.ENOSYS, _ENOTSUPP, _errno.EOPNOTSUPP)
_BATCH_TYPES = frozenset(
    {
        MapType.HASH,
        MapType.PERCPU_HASH,
        MapType.LRU_HASH,
        MapType.LRU_PERCPU_HASH,
        MapType.ARRAY,
        MapType.PERCPU_ARRAY,
    }
)


def parse_cpu_list(text: str) -> list[int]:
    """CPU numbers from the kernel's list syntax: "0-7,9" -> [0..7, 9]; "" -> []."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def _read_cpus(name: str) -> list[int]:
    try:
        with open(f"/sys/devices/system/cpu/{name}") as f:
            return parse_cpu_list(f.read())
    except OSError:
        import os

        return list(range(os.cpu_count() or 1))


_possible: tuple[int, ...] = ()


def possible_cpus() -> tuple[int, ...]:
    """CPUs the kernel may ever bring up: per-CPU map values come one per possible CPU."""
    global _possible
    if not _possible:  # (read once: fixed at boot)
        _possible = tuple(_read_cpus("possible"))
    return _possible


def online_cpus() -> list[int]:
    """CPUs online now (not cached: CPUs can come and go)."""
    return _read_cpus("online")


def round8(n: int) -> int:
    return (n + 7) & ~7


class Map:
    """One BPF map owned through its fd.

    Keys may be bytes (key_size long) or ints (packed little-endian, unsigned, key_size bytes).
    Per-CPU maps: lookup returns one value per possible CPU (each value_size bytes, the
    kernel's padding to 8 removed); update takes one value (stored on every CPU) or a list.
    """

    def __init__(
        self,
        fd: int,
        map_type: int,
        key_size: int,
        value_size: int,
        max_entries: int,
        name: str = "",
        flags: int = 0,
    ):
        self.fd = fd
        self.type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.name = name
        self.flags = flags
        self.percpu = map_type in PERCPU_MAP_TYPES
        self.ncpus = len(possible_cpus()) if self.percpu else 1
        self.stride = round8(value_size) if self.percpu else value_size
        self._batch_ok = map_type in _BATCH_TYPES

    @classmethod
    def create(
        cls,
        map_type: int,
        key_size: int,
        value_size: int,
        max_entries: int,
        flags: int = 0,
        name: str = "",
    ) -> Map:
        fd = _bpf.map_create(map_type, key_size, value_size, max_entries, flags, name)
        return cls(fd, map_type, key_size, value_size, max_entries, name, flags)

    # -- keys and values

    def _key(self, key: bytes | int) -> bytes:
        if isinstance(key, int):
            return key.to_bytes(self.key_size, "little")
        if len(key) != self.key_size:
            raise ValueError(f"map {self.name}: key of {len(key)} bytes, expected {self.key_size}")
        return key

    def _value(self, value: bytes | list[bytes]) -> bytes:
        if not self.percpu:
            if len(value) != self.value_size:
                raise ValueError(
                    f"map {self.name}: value of {len(value)} bytes, expected {self.value_size}"
                )
            return value  # type: ignore[return-value]
        values = value if isinstance(value, list) else [value] * self.ncpus
        if len(values) != self.ncpus:
            raise ValueError(
                f"map {self.name}: {len(values)} per-CPU values, expected {self.ncpus}"
            )
        pad = b"\0" * (self.stride - self.value_size)
        return b"".join(bytes(v).ljust(self.value_size, b"\0") + pad for v in values)

    def split(self, raw: bytes) -> list[bytes]:
        """A per-CPU map's raw value area -> one value_size value per possible CPU."""
        s, n = self.stride, self.value_size
        return [raw[i * s : i * s + n] for i in range(self.ncpus)]

    # -- operations

    def lookup(
        self, key: bytes | int, cmd: int = _bpf.Cmd.MAP_LOOKUP_ELEM
    ) -> bytes | list[bytes] | None:
        raw = _bpf.map_lookup(self.fd, self._key(key), self.stride * self.ncpus, cmd)
        if raw is None or not self.percpu:
            return raw
        return self.split(raw)

    def take(self, key: bytes | int) -> bytes | list[bytes] | None:
        """lookup() and delete() in one step: nothing added between them is lost."""
        return self.lookup(key, _bpf.Cmd.MAP_LOOKUP_AND_DELETE_ELEM)

    def update(self, key: bytes | int, value: bytes | list[bytes], flags: int = 0) -> None:
        _bpf.map_update(self.fd, self._key(key), self._value(value), flags)

    def update_all(self, entries: list[tuple[bytes | int, bytes]]) -> None:
        """Store every (key, value): in one MAP_UPDATE_BATCH where the map
        has it (a syscall group's table is ~370 entries: 370 calls were 4 ms
        of start-up), else one update each."""
        if self._batch_ok and len(entries) > 1 and not self.percpu:
            keys = b"".join(self._key(k) for k, _ in entries)
            values = b"".join(self._value(v) for _, v in entries)
            try:
                if _bpf.map_update_batch(self.fd, keys, values, len(entries)) == len(entries):
                    return
            except _bpf.BPFError as e:
                if e.errno not in _NO_BATCH:
                    raise
        for k, v in entries:  # (again from the first: an update of the same value is idempotent)
            self.update(k, v)

    def delete(self, key: bytes | int) -> bool:
        return _bpf.map_delete(self.fd, self._key(key))

    def keys(self) -> list[bytes]:
        """A snapshot of the keys (deleting while walking GET_NEXT_KEY would restart it)."""
        out: list[bytes] = []
        seen: set[bytes] = set()
        key = None
        limit = self.max_entries
        while len(out) < limit:
            key = _bpf.map_next_key(self.fd, key, self.key_size)
            if key is None or key in seen:
                break  # end, or the walk restarted because an entry vanished under us
            seen.add(key)
            out.append(key)
        return out

    def items(self) -> list[tuple[bytes, bytes | list[bytes]]]:
        """(key, value) pairs present now; keys deleted meanwhile are left out.

        Uses MAP_LOOKUP_BATCH (one call per 256 entries, v5.6) where the map supports it,
        else one lookup per key.
        """
        if self._batch_ok:
            try:
                pairs = _bpf.map_lookup_batch(self.fd, self.key_size, self.stride * self.ncpus)
            except _bpf.BPFError as e:
                if e.errno not in _NO_BATCH:
                    raise
                self._batch_ok = False
            else:
                if self.percpu:
                    return [(k, self.split(v)) for k, v in pairs]
                return pairs
        out = []
        for k in self.keys():
            v = self.lookup(k)
            if v is not None:
                out.append((k, v))
        return out

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.keys())

    def clear(self) -> None:
        """Delete every key (array maps cannot delete: their values are zeroed instead)."""
        if self.type in (MapType.ARRAY, MapType.PERCPU_ARRAY):
            zero = b"\0" * self.value_size
            for k in range(self.max_entries):
                self.update(k, zero)
            return
        for k in self.keys():
            self.delete(k)

    def close(self) -> None:
        if self.fd >= 0:
            _bpf.close_fd(self.fd)
            self.fd = -1

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Map({self.name or '?'}, {MapType.name_of(self.type)}, fd={self.fd}, "
            f"key={self.key_size}, value={self.value_size}, entries={self.max_entries})"
        )


def ringbuf_size(nbytes: int) -> int:
    """The ring buffer size for at least nbytes: a power of two, at least one page."""
    size = mmap.PAGESIZE
    while size < nbytes:
        size <<= 1
    return size


def ringbuf_map(nbytes: int, name: str = "ring") -> Map:
    """A RINGBUF map of ringbuf_size(nbytes) data bytes (max_entries is the size)."""
    size = ringbuf_size(nbytes)
    return Map.create(MapType.RINGBUF, 0, 0, size, 0, name)


RING_MIN = 1 << 16


def ring_size(value: object, need: int | None = None) -> int:
    """The ring buffer's size: bufsize per possible CPU (dtrace's principal
    buffers are per CPU; ours is one ring for all), rounded up to a power of
    two (at least RING_MIN).

    need: the most bytes the program can have in the ring at once, when the
    compiler can bound it (a program of BEGIN and END, or whose other
    clauses record only exit()). With bufsize at its default the ring is
    then twice that, at least RING_MIN and at most the default's: the ring
    is mapped twice into our memory (the default is 8 MiB on two CPUs), and
    a one-liner's start-up need not pay for room it can never fill. What the
    program writes always fits, so no record drops where the default ring
    would have kept it; any other bufsize is the user's and sizes the ring."""
    from pydtrace.options import DEFAULTS, size_option

    n = size_option({"bufsize": value}, "bufsize", DEFAULTS["bufsize"])
    n *= max(1, len(possible_cpus()))
    if need is not None and value in (None, DEFAULTS["bufsize"]):
        n = min(n, 2 * need)
    size = RING_MIN
    while size < n:
        size <<= 1
    return size


class RingAhead:
    """The program's ring buffer map, made on a thread of its own while the
    program compiles. The kernel takes milliseconds to allocate and map a
    ring of the default size (8 MiB on two CPUs), time the bpf(2) call spends
    without the GIL; the ring's size comes from the options alone unless the
    compiler bounds what the program writes, so the engine takes this map when
    the compiled program asks for a ring of this size, and closes it otherwise."""

    def __init__(self, size: int) -> None:
        import threading

        self.size = size
        self.map: Map | None = None
        self._thread = threading.Thread(target=self._make, name="pydtrace-ring", daemon=True)
        self._thread.start()

    def _make(self) -> None:
        try:
            self.map = ringbuf_map(self.size, "records")
        except Exception:  # _bpf.BPFError, OSError: the engine makes it again and says why
            pass

    def take(self, size: int) -> Map | None:
        """The map, when the program's ring is `size` bytes; else None (and
        the engine makes its own)."""
        self._thread.join()
        m, self.map = self.map, None
        if m is not None and size != self.size:
            m.close()
            m = None
        return m

    def close(self) -> None:
        """Let go of a map nobody took (the program fell to another engine,
        compiling failed, Ctrl-C)."""
        self._thread.join()
        if self.map is not None:
            self.map.close()
            self.map = None
