"""A compiled program into the kernel: its maps made (and filled), its BPF
programs loaded, nothing attached yet.

The engine does this when it opens; with a kept compile (program_cache.py)
the session starts it at once on a thread of its own (LoadAhead), and the
verifier, which runs in the kernel without the GIL, works while the engine's
modules are imported: execsnoop's two programs of 2,600 instructions take
the verifier 7-10 ms.
"""

from __future__ import annotations

import errno
import threading

from pydtrace.engines.ebpf.errors import EbpfError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# programs at least this long (bytes: 8 an instruction) load in parallel
_PARALLEL_LOAD_BYTES = 8 * 1000


class Loaded:
    """What a load made (the maps and program fds are the taker's to close),
    and how it failed: failure is an EbpfError, or (the program, its error)
    for the first program the kernel refused (VerifierError, BPFError...)."""

    def __init__(self) -> None:
        self.maps: dict[str, Any] = {}
        self.prog_fds: dict[str, int] = {}
        self.failure: Any = None

    def close(self) -> None:
        release(self.prog_fds, self.maps)


def release(prog_fds: dict[str, int], maps: dict[str, Any]) -> None:
    """Close programs, then maps (emptying both)."""
    from pydtrace.engines.ebpf.bpf import close_fd

    for fd in prog_fds.values():
        close_fd(fd)
    prog_fds.clear()
    for m in maps.values():
        m.close()
    maps.clear()


def log_level(options: dict[str, Any]) -> int:
    """The verifier's log level a load asks for (-x bpflog: its log from the start)."""
    return 1 if options.get("bpflog") else 0


def load(compiled: Any, level: int, ring_ahead: Any = None) -> Loaded:
    """Make the maps and load the programs; never raises for what the kernel
    refuses (Loaded.failure says it)."""
    out = Loaded()
    try:
        _make_maps(compiled, ring_ahead, out)
    except EbpfError as e:
        out.failure = e
        return out
    _load_programs(compiled, level, out)
    return out


def _make_maps(compiled: Any, ring_ahead: Any, out: Loaded) -> None:
    from pydtrace.engines.ebpf.bpf import BPFError
    from pydtrace.engines.ebpf.maps import Map

    try:
        for m in compiled.maps:
            made = None
            if m.name == "records" and ring_ahead is not None:
                made = ring_ahead.take(m.max_entries)
            if made is not None:
                out.maps[m.name] = made
                continue
            try:
                out.maps[m.name] = Map.create(m.type, m.key_size, m.value_size,
                                              m.max_entries, m.flags, name=m.name)  # fmt: skip
            except BPFError as e:
                if e.errno != errno.E2BIG:
                    raise
                # dtrace's words (-b 16g: a ring of more than 4 GiB)
                raise EbpfError(f"failed to create BPF map '{m.name}': Too big") from None
        for name, entries in compiled.fills.items():
            made = out.maps[name]
            made.update_all([(key, value.ljust(made.value_size, b"\0")) for key, value in entries])
    except BPFError as e:
        raise EbpfError(str(e)) from None


def _encode(insns: list[Any], fds: dict[str, int]) -> bytes:
    from pydtrace.engines.ebpf.insn import encode

    return encode(insns, fds)


def _load_programs(compiled: Any, level: int, out: Loaded) -> None:
    from pydtrace.engines.ebpf.bpf import prog_load

    fds = {name: m.fd for name, m in out.maps.items()}
    progs = compiled.progs
    # a kept program (program_cache.LoadPlan) comes encoded, its attach type
    # known: its thread imports no more than it needs, beside the main one
    expected = [getattr(p, "expected_attach_type", None) for p in progs]
    if None in expected:
        from pydtrace.engines.ebpf.attach import expected_attach_type

        expected = [expected_attach_type(p.attach) for p in progs]
    # (a kept program's insns: program_cache.Code, encoded, its map fds to fill)
    code = [p.insns.with_fds(fds) if hasattr(p.insns, "with_fds") else _encode(p.insns, fds)
            for p in progs]  # fmt: skip
    outcome: list[Any] = [None] * len(progs)  # each program's fd, or its error
    first_bad = [len(progs)]  # programs after a refused one are not loaded

    def load_one(i: int) -> None:
        if i > first_bad[0]:
            return
        p = progs[i]
        try:
            outcome[i] = prog_load(p.prog_type, code[i], name=p.name, log_level=level,
                                   expected_attach_type=expected[i])  # fmt: skip
        except Exception as e:  # (VerifierError, BPFError...): the first, in order, is the failure
            outcome[i] = e
            first_bad[0] = min(first_bad[0], i)

    # The verifier's time is the kernel's, outside the GIL: with two or
    # more large programs a second thread verifies every other one meanwhile.
    big = [i for i, c in enumerate(code) if len(c) >= _PARALLEL_LOAD_BYTES]
    theirs = big[1::2] if len(big) >= 2 else []  # the helper thread's
    helper = None
    if theirs:
        helper = threading.Thread(target=lambda: [load_one(i) for i in theirs], daemon=True)
        helper.start()
    try:
        skip = set(theirs)
        for i in range(len(progs)):
            if i not in skip:
                load_one(i)
    finally:
        if helper is not None:
            helper.join()
        # every program loaded is the taker's to close, whatever failed
        out.prog_fds.update((p.name, fd) for p, fd in zip(progs, outcome) if isinstance(fd, int))
    for p, got in zip(progs, outcome):
        if isinstance(got, Exception):
            out.failure = (p, got)
            return


class LoadAhead:
    """load() on a thread of its own, started as soon as a kept program is
    read (plan: a program_cache.LoadPlan); take() it, or close() it when no
    engine does."""

    def __init__(self, plan: Any) -> None:
        self._loaded: Loaded | None = None
        self._thread = threading.Thread(target=self._run, args=(plan,), name="pydtrace-load",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _run(self, plan: Any) -> None:
        try:
            self._loaded = load(plan, plan.log_level)
        except Exception as e:  # (an OSError of the ring's mapping...): the engine says it
            self._loaded = Loaded()
            self._loaded.failure = EbpfError(str(e))

    def succeeded(self) -> bool:
        """Has the load ended, every map and program made? (False while it runs.)"""
        loaded = self._loaded
        return not self._thread.is_alive() and loaded is not None and loaded.failure is None

    def take(self) -> Loaded:
        self._thread.join()
        loaded, self._loaded = self._loaded, None
        if loaded is None:  # (taken twice)
            loaded = Loaded()
            loaded.failure = EbpfError("the programs were loaded once already")
        return loaded

    def close(self) -> None:
        self._thread.join()
        if self._loaded is not None:
            self._loaded.close()
            self._loaded = None
