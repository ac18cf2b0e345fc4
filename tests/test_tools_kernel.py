"""The tools whose probes are in the kernel (block I/O, the scheduler, CPU
samples) run on the eBPF engine only: asked for the ptrace engine, or run
without the privileges for eBPF, each says so in one line and exits 1."""

from __future__ import annotations

import re

import pytest

from pydtrace.tools import TOOLS, load
from toolrun import can_run_as_nobody, tool

KERNEL_TOOLS = sorted(n for n in TOOLS if load(n).kernel_only)


def test_the_kernel_tools() -> None:
    assert {"iosnoop", "biolatency", "runqlat", "offcputime", "profile"} <= set(KERNEL_TOOLS)


@pytest.mark.parametrize("name", KERNEL_TOOLS)
def test_ptrace_engine_is_refused(name: str) -> None:
    takes_pid = any(o.dest == "pid" for o in load(name).options)
    r = tool(name, "--engine", "ptrace", *(["-p", "1"] if takes_pid else []))
    # a tool may say why in its own words (the tcp tools: the kernel's TCP code)
    why = (
        load(name).kernel_only_why
        or "needs the eBPF engine: its probes are in the kernel, not in a process"
    )
    assert (r.status, r.out, r.err) == (1, "", f"{name}: {why}\n")


@pytest.mark.skipif(not can_run_as_nobody(), reason="needs root, setpriv and a user nobody")
@pytest.mark.parametrize("name", KERNEL_TOOLS)
def test_unprivileged_is_refused(name: str) -> None:
    r = tool(name, user="nobody")
    assert (r.status, r.out) == (1, "")
    why = load(name).kernel_only_why
    head = (
        f"{re.escape(why)}; this process cannot use it"
        if why
        else "needs the eBPF engine, which this process cannot use"
    )
    assert re.fullmatch(rf"{name}: {head}: [^\n]+\n", r.err), r.err  # fmt: skip
