"""Output that a signal interrupts part-way is written whole.

Under PYTHONUNBUFFERED (python -u, many container images) Python's stdout
is a text layer straight over the file: a write that Ctrl-C interrupts
part-way (the pipe's reader behind) came back short, and the rest of the
batch was dropped without a word. Here a pipe nobody reads until after the
Ctrl-C holds the run's output back: every line must still come out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, bpf_maps_ok, need

CALLS = 30000  # ~180 KB of lines: more than a pipe holds


@pytest.mark.parametrize("unbuffered", ["1", None])
def test_a_ctrl_c_during_a_blocked_write_loses_no_line(unbuffered: str | None) -> None:
    need(bpf_maps_ok(), "the eBPF engine needs root and bpf(2)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    caller = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import os, sys\nsys.stdin.read(1)\nfor _ in range({CALLS}): os.getppid()\n",
        ],
        stdin=subprocess.PIPE,
    )
    src = f'syscall::getppid:entry /pid == {caller.pid}/ {{ printf("call %d\\n", 7); }} BEGIN {{ printf("ready\\n"); }}'
    t = subprocess.Popen([sys.executable, "-m", "pydtrace", "-q", "-b", "64m", "-n", src],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert t.stdout is not None and caller.stdin is not None
        assert t.stdout.readline() == "ready\n"
        caller.stdin.write(b"g")
        caller.stdin.close()
        assert caller.wait(60) == 0
        # the records are read and the writing blocks on the full pipe
        deadline = time.monotonic() + 30
        while _state(t.pid) != "S" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        t.send_signal(signal.SIGINT)
        out, err = t.communicate(timeout=120)
    finally:
        for p in (caller, t):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert (t.returncode, err) == (0, "")
    assert out == "call 7\n" * CALLS + "\n"


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]
