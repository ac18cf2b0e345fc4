"""Start-up stays light: a one-liner imports what it runs and no more.

`pydtrace -q -n 'BEGIN { exit(0); }'` and a one-probe program start in a
fifth of bpftrace's time (benchmarks/startup.py); most of that is Python's
imports. Each test runs the command line in a fresh interpreter and names the
modules it must not have loaded: the other engines, the tools, symbol and ELF
readers, the formatters of output it did not print, and standard modules that
cost milliseconds each (typing, dataclasses with inspect, subprocess...).
Also here: the catalogue lists the syscall provider's probes only when a
description may name them, with the ids the full list gives them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, bpf_maps_ok, need
from pydtrace.probes.catalogue import parse_probe_desc
from pydtrace.probes.providers import default_catalogue

# the command line's main() in a fresh interpreter (-S: no site-packages
# .pth files, whose own imports are not ours), then the modules it loaded
_RUN = """
import sys
from pydtrace.cli.dtrace import main
status = main(["pydtrace", *sys.argv[1:]])
sys.stdout.flush()
sys.stderr.write("MODULES " + " ".join(sorted(sys.modules)) + "\\n")
sys.exit(status)
"""

# never for a one-liner on the eBPF engine
HEAVY_STDLIB = {"typing", "dataclasses", "inspect", "ast", "dis", "tokenize", "subprocess",
                "tempfile", "pathlib", "json", "datetime", "platform", "queue", "random",
                "lzma", "locale", "selectors", "contextlib"}  # fmt: skip
# nor, for a run from a kept compile, what only compiling needs
KEPT_RUN_NEVER = {"re", "enum", "signal", "shlex"}
HEAVY_OURS = (
    "pydtrace.engines.user",  # the ptrace engine and its interpreter
    "pydtrace.engines.tracefs",
    "pydtrace.tools",
    "pydtrace.ktrace",
    "pydtrace.events",
    "pydtrace.symbols",  # ELF, kallsyms, BTF, process maps: only for symbols and types
    "pydtrace.consume.printf",  # formatters of what the program does not print
    "pydtrace.consume.aggprint",
    "pydtrace.consume.stacks",
    "pydtrace.probes.hints",  # a hint follows only a description matching nothing
    "pydtrace.probes.listing",
    "pydtrace.cli.manual",
    "pydtrace.lang.cpp",
    "pydtrace.engines.ebpf.uprobe_agent",
    "pydtrace.engines.ebpf.mmaps",
)


def loaded(*args: str, out: str | None = "\n") -> set[str]:
    """The modules loaded by the command line `args`; out: what it must print
    (None: a printf's line, checked by the caller)."""
    env = {k: v for k, v in os.environ.items() if k != "_DTRACE_TESTING"}
    env["PYTHONPATH"] = str(ROOT / "src")
    p = subprocess.run([sys.executable, "-S", "-c", _RUN, *args], capture_output=True,
                       text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)  # fmt: skip
    assert p.returncode == 0, p.stderr
    if out is not None:
        assert p.stdout == out, p.stdout
    else:
        assert re.fullmatch(r"\d+ \S+\n\n", p.stdout), p.stdout
    line = p.stderr.splitlines()[-1]
    assert line.startswith("MODULES "), p.stderr
    assert p.stderr == line + "\n", p.stderr  # nothing else said
    return set(line.split()[1:])


def heavy(mods: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    found = sorted(mods & HEAVY_STDLIB)
    found += sorted(
        m for m in mods if m.startswith(HEAVY_OURS) and not m.startswith(allowed or ("\0",))
    )
    return found


@pytest.fixture(autouse=True)
def _need_bpf() -> None:
    need(bpf_maps_ok(), "BPF maps cannot be created here (root and bpf(2) needed)")


def test_begin_loads_only_what_it_runs() -> None:
    mods = loaded("-q", "-n", "BEGIN { exit(0); }")
    assert "pydtrace.engines.ebpf.engine" in mods  # it did run on eBPF
    assert heavy(mods) == []
    # no syscall table (the catalogue kept the syscall probes' ids without them),
    # and of the eBPF engine's providers only dtrace's
    assert "pydtrace.probes.syscalls.prototypes" not in mods
    providers = sorted(m for m in mods if m.startswith("pydtrace.engines.ebpf.providers."))
    assert providers == ["pydtrace.engines.ebpf.providers.base",
                         "pydtrace.engines.ebpf.providers.dtrace"]  # fmt: skip


def test_a_syscall_probe_loads_only_what_it_runs() -> None:
    # a reader of our own, so that the probe fires at once
    reader = subprocess.Popen(
        ["/bin/sh", "-c", "while :; do head -c1 /etc/hostname >/dev/null; sleep 0.01; done"]
    )
    try:
        mods = loaded("-q", "-n", "syscall::read:entry { exit(0); }")
    finally:
        reader.kill()
        reader.wait()
    assert heavy(mods) == []
    assert "pydtrace.engines.ebpf.providers.syscall" in mods
    others = ("dtrace", "profile", "sdt", "io", "proc", "sched", "pid", "usdt")
    assert not mods & {f"pydtrace.engines.ebpf.providers.{k}" for k in others}


def test_syscall_probes_are_listed_only_when_a_description_may_name_them() -> None:
    cat = default_catalogue()
    cat.match(parse_probe_desc("BEGIN"))
    cat.match(parse_probe_desc("profile:::tick-1s"))
    assert not any(p.provider == "syscall" for p in cat._probes)
    (read,) = cat.match(parse_probe_desc("syscall::read:entry"))
    assert sorted(p.function for p in cat._probes if p.provider == "syscall") == ["read", "read"]
    # the ids are those of the whole list, before and after probes made on demand
    (tick,) = cat.match(parse_probe_desc("profile:::tick-1s"))
    (ret,) = cat.match(parse_probe_desc("syscall::write:return"))
    full = {p.fqn: p.id for p in default_catalogue().all()}
    assert (read.id, ret.id) == (full[read.fqn], full[ret.fqn])
    assert tick.id > max(p.id for p in cat.all() if p.provider == "syscall")
    assert [p.id for p in cat.all()] == sorted(p.id for p in cat.all())


def test_printf_aggregations_and_kernel_providers_load_no_typing() -> None:
    """A program that prints, aggregates and names the proc and sched
    providers still loads none of the heavy standard modules (typing came with
    every module that imported Any at run time, and with NamedTuple keys)."""
    reader = subprocess.Popen(
        ["/bin/sh", "-c", "while :; do head -c1 /etc/hostname >/dev/null; sleep 0.01; done"]
    )
    try:
        mods = loaded("-q", "-n", 'syscall::read:entry { printf("%d %s\\n", pid, execname);'
                      ' @[probefunc] = count(); exit(0); }'
                      ' proc:::exec-success, sched:::on-cpu /0/ { @n = count(); }'
                      ' END { trunc(@); trunc(@n); }', out=None)  # fmt: skip
    finally:
        reader.kill()
        reader.wait()
    assert "pydtrace.consume.printf" in mods and "pydtrace.engines.ebpf.providers.sched" in mods
    assert sorted(mods & HEAVY_STDLIB) == []


def test_a_second_run_starts_from_the_kept_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run keeps its compile (engines/ebpf/program_cache.py); the
    second neither runs nor imports the D front end and the code generator."""
    monkeypatch.setenv("PYDTRACE_CACHE", str(tmp_path / "cache"))
    reader = subprocess.Popen(
        ["/bin/sh", "-c", "while :; do head -c1 /etc/hostname >/dev/null; sleep 0.01; done"]
    )
    try:
        first, second = (loaded("-q", "-n", "syscall::read:entry { exit(0); }") for _ in "12")
    finally:
        reader.kill()
        reader.wait()
    front = {"pydtrace.lang.lexer", "pydtrace.lang.parser", "pydtrace.lang.checker",
             "pydtrace.engines.ebpf.codegen", "pydtrace.engines.ebpf.cg_program"}  # fmt: skip
    assert front <= first
    assert front & second == set()
    assert {"pydtrace.engines.ebpf.program_cache", "pydtrace.engines.ebpf.loader"} <= second
    assert heavy(second) == []
    # nor re, and enum under it and signal: 3-5 ms each (cli/launchers.py)
    assert sorted(second & KEPT_RUN_NEVER) == []


_KEPT_RUN = """
import sys
from pydtrace import session as S
from pydtrace.cli.dtrace import main

take = S.Session._take_kept
def waited(self, early):
    if early is not None and early.ahead is not None:
        early.ahead._thread.join()  # (as on a run whose imports outlast the load)
    return take(self, early)
S.Session._take_kept = waited
status = main(["pydtrace", *sys.argv[1:]])
sys.stdout.flush()
sys.stderr.write("MODULES " + " ".join(sorted(sys.modules)) + "\\n")
sys.exit(status)
"""


def test_a_kept_run_whose_load_has_ended_does_not_probe_for_bpf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The programs a kept run loads as it starts show that this process may use
    BPF: once they are loaded, choosing the engine probes nothing (no features
    module, no test map or program: a millisecond)."""
    monkeypatch.setenv("PYDTRACE_CACHE", str(tmp_path / "cache"))
    env = {k: v for k, v in os.environ.items() if k != "_DTRACE_TESTING"}
    env["PYTHONPATH"] = str(ROOT / "src")
    runs = []
    reader = subprocess.Popen(
        ["/bin/sh", "-c", "while :; do head -c1 /etc/hostname >/dev/null; sleep 0.01; done"]
    )
    try:
        for _ in "123":
            p = subprocess.run([sys.executable, "-S", "-c", _KEPT_RUN, "-q", "-n",
                                "syscall::read:entry { exit(0); }"],
                               capture_output=True, text=True, timeout=60, env=env,
                               stdin=subprocess.DEVNULL)  # fmt: skip
            assert (p.returncode, p.stdout) == (0, "\n"), p.stderr
            runs.append(set(p.stderr.split("MODULES ")[-1].split()))
    finally:
        reader.kill()
        reader.wait()
    assert "pydtrace.engines.ebpf.features" in runs[0]  # (compiled: probed)
    assert "pydtrace.lang.parser" not in runs[2]
    assert "pydtrace.engines.ebpf.features" not in runs[2]


_GC_RUN = """
import gc
from pydtrace import session as S
from pydtrace.cli.dtrace import main

seen = []
compile_, starting = S.Session.compile, S.Session._starting
def watch_compile(self):
    seen.append(("compile", gc.isenabled()))
    return compile_(self)
def watch_start(self, engine):
    starting(self, engine)
    seen.append(("run", gc.isenabled(), gc.get_freeze_count() > 0))
S.Session.compile, S.Session._starting = watch_compile, watch_start
status = main(["pydtrace", "-q", "-n", "BEGIN { exit(0); }"])
print(status, seen, gc.isenabled(), gc.get_freeze_count())
"""


def test_no_garbage_collection_until_the_engine_starts() -> None:
    """The collector pauses for start-up and runs again, over the run's own
    objects only (start-up's are frozen), once the engine starts; main()'s
    caller gets it back as it was, nothing left frozen."""
    env = {k: v for k, v in os.environ.items() if k != "_DTRACE_TESTING"}
    env["PYTHONPATH"] = str(ROOT / "src")
    p = subprocess.run([sys.executable, "-c", _GC_RUN], capture_output=True, text=True,
                       timeout=60, env=env, stdin=subprocess.DEVNULL)  # fmt: skip
    assert (p.stdout, p.stderr) == (
        "\n0 [('compile', False), ('run', True, True)] True 0\n",
        "",
    )


_TOOL_RUN = """
import sys
from pydtrace.cli.tools import main
status = main(sys.argv[1], sys.argv[2:])
sys.stdout.flush()
sys.stderr.write("MODULES " + " ".join(sorted(sys.modules)) + "\\n")
sys.exit(status)
"""


@pytest.mark.parametrize("name", ["opensnoop", "execsnoop", "syscount"])
def test_a_tool_loads_no_heavy_standard_module(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tool's start-up: its .d file read directly (importlib.resources
    brought zipfile, pathlib and more), json only with -j; run again, from
    its kept compile, no re (its inline values are set without it), no enum."""
    monkeypatch.setenv("PYDTRACE_CACHE", str(tmp_path / "cache"))
    env = {k: v for k, v in os.environ.items() if k != "_DTRACE_TESTING"}
    env["PYTHONPATH"] = str(ROOT / "src")
    runs = []
    for _ in "123":  # (the second learns where $pid stands, the third uses it)
        p = subprocess.run([sys.executable, "-S", "-c", _TOOL_RUN, name, "-d", "0.01", "-n", "no-such"],
                           capture_output=True, text=True, timeout=60, env=env,
                           stdin=subprocess.DEVNULL)  # fmt: skip
        assert p.returncode == 0, p.stderr
        line = p.stderr.splitlines()[-1]
        assert p.stderr == line + "\n" and line.startswith("MODULES "), p.stderr
        runs.append(set(line.split()[1:]))
    for mods in runs:
        assert sorted(mods & (HEAVY_STDLIB | {"zipfile", "importlib.resources"})) == []
    assert "pydtrace.lang.parser" in runs[0] and "pydtrace.lang.parser" not in runs[2]
    assert sorted(runs[2] & KEPT_RUN_NEVER) == []
