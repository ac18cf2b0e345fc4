"""Helpers for the toolkit's tests: run a tool as a user would, run strace for
the ground truth, and the engines a tool can be tried on here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, bpf_maps_ok, need, ptrace_works

SYSTEM_PYTHON = "/usr/bin/python3"  # one an unprivileged user can run (ours may be under /root)


@dataclass
class Run:
    status: int
    out: str
    err: str

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.out.splitlines() if x.startswith("{")]


def env() -> dict[str, str]:
    """The environment of every run, a tool's or strace's: the same for both, so
    that a program makes the same calls (PWD matches the cwd, /)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "_DTRACE"))}
    e["PWD"] = "/"
    e["PYTHONPATH"] = str(ROOT / "src")
    e["LC_ALL"] = "C"  # the same locale files opened on every run
    return e


def command(name: str, *args: str, python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", "pydtrace.cli.tools", name, *args]


def tool(name: str, *args: str, timeout: float = 120, user: str | None = None) -> Run:
    """Run tool `name` with args; user: as that user (setpriv), with the system python."""
    argv = command(name, *args, python=SYSTEM_PYTHON if user else None)
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user_group(user)}", "--clear-groups", *argv]  # fmt: skip
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env(),
                       stdin=subprocess.DEVNULL, cwd="/")  # fmt: skip
    return Run(p.returncode, p.stdout, p.stderr)


def user_group(user: str) -> str:
    import grp
    import pwd

    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def can_run_as_nobody() -> bool:
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists(SYSTEM_PYTHON):
        return False
    try:
        import pwd

        pwd.getpwnam("nobody")
    except KeyError:
        return False
    return os.access(ROOT / "src", os.R_OK)


def engines() -> tuple[Any, ...]:
    """pytest params: each engine (need_engine skips where this machine cannot run
    it). A tuple: pytest is retiring parametrize over generators."""
    return (pytest.param("ebpf", id="ebpf"), pytest.param("ptrace", id="ptrace"))


def need_engine(engine: str) -> None:
    if engine == "ebpf":
        need(bpf_maps_ok(), "the eBPF engine needs root and bpf(2)")
    else:
        need(ptrace_works(), "ptrace is not allowed here")


needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")

_CALL = re.compile(r"^(\d+) +(\w+)\((.*)\) += (-?\d+|\?|0x[0-9a-f]+)(?: (E\w+))?")


def strace_calls(argv: list[str], tmp: Path, *extra: str) -> list[tuple[int, str, str, str, str]]:
    """(pid, call, argument text, return text, errno name) of each call strace -f
    saw (interrupted calls joined with their resumption)."""
    log = tmp / "strace.log"
    p = subprocess.run(["strace", "-f", "-qq", "-o", str(log), "-s", "4096", *extra, *argv],
                       env=env(), capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL, cwd="/")  # fmt: skip
    # (strace ends as the program did: killed by a signal, it kills itself with it)
    assert log.exists(), p.stderr
    calls = []
    pending: dict[str, str] = {}
    for line in log.read_text().splitlines():
        if line.endswith(" <unfinished ...>"):
            pid_s, _, rest = line.partition(" ")
            pending[pid_s] = rest.lstrip()[: -len(" <unfinished ...>")]
            continue
        m = re.match(r"^(\d+) +<\.\.\. \w+ resumed>(.*)$", line)
        if m is not None:
            line = f"{m.group(1)} {pending.pop(m.group(1), '')}{m.group(2)}"
        m = _CALL.match(line)
        if m is not None:
            pid, name, args, ret, ename = m.groups()
            calls.append((int(pid), name, args, ret, ename or ""))
    return calls


def strace_count(argv: list[str], tmp: Path) -> dict[str, tuple[int, int]]:
    """strace -f -c's table: call -> (calls, errors)."""
    log = tmp / "strace-c.log"
    p = subprocess.run(["strace", "-f", "-qq", "-c", "-o", str(log), *argv], env=env(),
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                       cwd="/")  # fmt: skip
    assert p.returncode >= 0, p.stderr
    table: dict[str, tuple[int, int]] = {}
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] != "total" and parts[3].isdigit():
            errors = int(parts[4]) if len(parts) == 6 else 0
            table[parts[-1]] = (int(parts[3]), errors)
    return table


def script(tmp: Path, name: str, text: str) -> str:
    p = tmp / name
    p.write_text(text)
    p.chmod(0o755)
    return str(p)
