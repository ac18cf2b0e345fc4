"""exitsnoop against strace: every process's end (status or signal), on both
engines; ages; a process that started before tracing."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import compile_c
from toolrun import engines, env, need_engine, needs_strace, script, tool


def program(tmp: Path) -> list[str]:
    """Ends of every kind: 0, 1, killed by a parent (SIGTERM), killed by
    itself (SIGKILL: its kill() never returns), a C program's raise(SIGUSR1)
    (tgkill), and the script's own status 3."""
    raiser = compile_c(tmp, "raiser", "#include <signal.h>\nint main(void) { raise(SIGUSR1); return 0; }\n")  # fmt: skip
    return [script(tmp, "ends.sh", (
        "#!/bin/sh\n"
        "/bin/true\n"
        "/bin/false\n"
        "/bin/sleep 10 & kill -TERM $!\n"
        "wait\n"
        "/bin/sh -c 'kill -KILL $$'\n"
        f"{raiser}\n"
        "exit 3\n"
    ))]  # fmt: skip


def strace_ends(argv: list[str], tmp: Path) -> Counter:
    log = tmp / "strace.log"
    subprocess.run(["strace", "-f", "-q", "-e", "trace=none", "-o", str(log), *argv], env=env(),
                   capture_output=True, timeout=120, cwd="/")  # fmt: skip
    ends: Counter = Counter()
    for m in re.finditer(r"\+\+\+ (exited with|killed by) (\w+)", log.read_text()):
        how, what = m.groups()
        ends[("exit", int(what)) if how == "exited with" else ("signal", what)] += 1
    return ends


def exitsnoop_ends(events: list[dict]) -> Counter:
    return Counter(("exit", e["exit_code"]) if "exit_code" in e else ("signal", e["signal_name"])
                   for e in events)  # fmt: skip


@needs_strace
@pytest.mark.parametrize("engine", engines())
def test_ends_equal_strace(tmp_path: Path, engine: str) -> None:
    need_engine(engine)
    argv = program(tmp_path)
    expect = strace_ends(argv, tmp_path)
    assert expect == Counter({("exit", 0): 1, ("exit", 1): 1, ("signal", "SIGTERM"): 1,
                              ("signal", "SIGKILL"): 1, ("signal", "SIGUSR1"): 1, ("exit", 3): 1})  # fmt: skip
    r = tool("exitsnoop", "--engine", engine, "-j", "--", *argv)
    assert r.status == 0, r.err
    events = r.json()
    assert exitsnoop_ends(events) == expect
    # each was seen to start, but the command itself (created before tracing: from /proc)
    assert all(e["age"] is not None and 0 < e["age"] < 60 for e in events), events
    script_end = events[-1]
    assert script_end["exit_code"] == 3 and all(e["ppid"] == script_end["pid"] for e in events[:-1])
    r = tool("exitsnoop", "--engine", engine, "-x", "-j", "--", *argv)
    assert r.status == 0, r.err
    assert exitsnoop_ends(r.json()) == expect - Counter({("exit", 0): 1})


@pytest.mark.parametrize("engine", engines())
def test_columns_and_age_of_an_older_process(engine: str) -> None:
    """A -p process alive before tracing began: its age comes from /proc."""
    need_engine(engine)
    victim = subprocess.Popen(["sleep", "2"])
    t0 = time.monotonic()
    try:
        r = tool("exitsnoop", "--engine", engine, "-p", str(victim.pid))
        lived = time.monotonic() - t0
    finally:
        victim.kill()
        victim.wait()
    assert (r.status, r.err) == (0, "")
    lines = r.out.splitlines()
    assert lines[0] == "PCOMM            PID     PPID    TID     AGE(s)  EXIT_CODE"
    assert len(lines) == 2
    age = float(lines[1].split()[4])
    assert 2 <= age <= lived + 0.05
    import os

    assert lines[1] == "%-16s %-7d %-7d %-7d %-7s %s" % (
        "sleep",
        victim.pid,
        os.getpid(),
        victim.pid,
        "%.2f" % age,
        "0",
    )
