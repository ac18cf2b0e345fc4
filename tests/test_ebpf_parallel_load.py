"""The eBPF engine verifies its large programs on two threads (the
verifier's time is the kernel's): every program still loads, an error is
the first failing program's in program order, and nothing loaded is left
open when one fails."""

from __future__ import annotations

import os
import threading

import pytest

import pydtrace
from conftest import bpf_maps_ok, need
from pydtrace.engines.ebpf import bpf as B
from pydtrace.engines.ebpf import loader as L

# four programs (two syscall probes of one kind would share one)
PROGRAM = """
syscall::getppid:return { trace(1); }
syscall::getpid:entry { trace(2); }
profile:::tick-1000s { trace(3); }
BEGIN { exit(0); }
"""


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """Every program loaded: (name, thread, fd); every program counts as large."""
    need(bpf_maps_ok(), "the eBPF engine needs root and bpf(2)")
    monkeypatch.setattr(L, "_PARALLEL_LOAD_BYTES", 8)
    seen: list[tuple[str, int, int]] = []
    real = B.prog_load

    def load(prog_type: int, insns: bytes, **kw: object) -> int:
        fd = real(prog_type, insns, **kw)  # type: ignore[arg-type]
        if str(kw["name"]).startswith("dt_"):  # (not the engine check's probe_tp)
            seen.append((str(kw["name"]), threading.get_ident(), fd))
        return fd

    monkeypatch.setattr(B, "prog_load", load)
    return seen


def test_programs_load_on_two_threads(loads: list[tuple[str, int, int]]) -> None:
    r = pydtrace.trace(PROGRAM, options={"engine": "ebpf"}, quiet=True)
    assert r.status == 0
    names = sorted(n for n, _, _ in loads)
    assert len(names) == 4 and len(set(names)) == 4
    assert len({t for _, t, _ in loads}) == 2


def _program_name(desc: str) -> str:
    from pydtrace.probes.catalogue import parse_probe_desc
    from pydtrace.probes.providers import default_catalogue

    (probe,) = default_catalogue().match(parse_probe_desc(desc))
    return f"dt_{probe.id}"


def test_the_first_rejected_program_is_reported_and_the_others_closed(
    loads: list[tuple[str, int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Programs load in probe order (BEGIN, getpid, getppid, tick): the
    threads take every other one, so getppid's and tick's refusals come
    from different threads; the report is getppid's, the first in order,
    and the programs loaded are closed."""
    rejected = {_program_name("syscall::getppid:return"), _program_name("profile:::tick-1000s")}
    counted = B.prog_load
    asked: list[str] = []

    def refuse(prog_type: int, insns: bytes, **kw: object) -> int:
        name = str(kw["name"])
        if not name.startswith("dt_"):
            return counted(prog_type, insns, **kw)
        asked.append(name)
        if name in rejected:
            raise B.VerifierError(13, "R1 invalid mem access 'scalar'\n", name)
        return counted(prog_type, insns, **kw)

    monkeypatch.setattr(B, "prog_load", refuse)
    with pytest.raises(pydtrace.CompileError) as e:
        pydtrace.trace(PROGRAM, options={"engine": "ebpf"}, quiet=True)
    assert str(e.value) == (
        "could not enable tracing: the BPF verifier rejected the program for "
        "syscall:vmlinux:getppid:return: R1 invalid mem access 'scalar'"
    )
    # BEGIN's and getpid's loaded (then closed); tick's, after the first
    # refusal, loads only if its thread got to it first
    first = {_program_name(d) for d in ("dtrace:::BEGIN", "syscall::getpid:entry")}
    assert first | {_program_name("syscall::getppid:return")} <= set(asked) <= first | rejected
    assert {n for n, _, _ in loads} == first
    for _, _, fd in loads:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            continue
        assert target != "anon_inode:bpf-prog", f"fd {fd} still holds a program"
