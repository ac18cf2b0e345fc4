"""Ctrl-C during a command's start-up (cli/startup.py): status 1, never a
process killed by SIGINT, never a Ctrl-C lost.

Each case runs as `python -m MODULE` in a fresh interpreter, as the tools'
tests run them: a real SIGINT, sent by the process to itself, lands where a
person's Ctrl-C can. Each also runs without StartUp, to show that the case
catches what Python's own handler does there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT
from pydtrace.cli.startup import Interrupted, StartUp

# a Ctrl-C landing in an exec() of a string (what a named tuple or a
# dataclass is made with), caught as the commands catch it
_IN_EXEC = """
import os, signal, sys
from pydtrace.cli.startup import StartUp
startup = StartUp() if sys.argv[1] == "ours" else None
try:
    exec("os.kill(os.getpid(), signal.SIGINT)\\nfor i in range(10000): pass")
    status = 0
except KeyboardInterrupt as e:
    print("caught", type(e).__name__)
    status = 1
if startup is not None:
    startup.end()
raise SystemExit(status)
"""

# a Ctrl-C landing in a weakref callback (the import system's module locks
# have one), where Python reports an exception and drops it
_IN_CALLBACK = """
import os, signal, sys, weakref
from pydtrace.cli.startup import StartUp
startup = StartUp() if sys.argv[1] == "ours" else None

class Engine:
    def stop(self):
        print("stopped")

def callback(ref):
    os.kill(os.getpid(), signal.SIGINT)
    for i in range(10000):
        pass

class Thing:
    pass

thing = Thing()
ref = weakref.ref(thing, callback)
try:
    del thing
    for i in range(10000):
        pass
    print("went on")
except KeyboardInterrupt:
    print("caught")
if startup is not None:
    startup.started(Engine())
    startup.end()
"""


def _run(tmp_path: Path, source: str, which: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "startup_case.py").write_text(source)
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}:{ROOT / 'src'}")
    return subprocess.run([sys.executable, "-m", "startup_case", which], capture_output=True,
                          text=True, timeout=60, env=env, cwd=tmp_path,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def test_a_ctrl_c_in_an_exec_of_a_string_ends_with_status_1(tmp_path: Path) -> None:
    ours = _run(tmp_path, _IN_EXEC, "ours")
    assert (ours.returncode, ours.stdout, ours.stderr) == (1, "caught Interrupted\n", "")
    # Python's handler: caught, and yet the process kills itself with SIGINT at exit
    python = _run(tmp_path, _IN_EXEC, "python")
    assert (python.returncode, python.stdout, python.stderr) == (
        -signal.SIGINT, "caught KeyboardInterrupt\n", "")  # fmt: skip


def test_a_ctrl_c_lost_in_a_weakref_callback_stops_the_run(tmp_path: Path) -> None:
    ours = _run(tmp_path, _IN_CALLBACK, "ours")
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "went on\nstopped\n", "")
    # Python's handler: the Ctrl-C is reported as ignored, and gone
    python = _run(tmp_path, _IN_CALLBACK, "python")
    assert (python.returncode, python.stdout) == (0, "went on\n")
    assert python.stderr.startswith("Exception ignored in: <function callback")
    assert python.stderr.endswith("KeyboardInterrupt: \n")


@pytest.fixture
def python_handler() -> Iterator[None]:
    """Python's own SIGINT handler in place for the test, as in a fresh
    process; whatever was there before is back after it."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _spin() -> None:
    """Bytecodes, between which Python runs a pending signal's handler."""
    for _ in range(10000):
        pass


def test_end_gives_back_the_handler_and_the_hook(python_handler: None) -> None:
    hook = sys.unraisablehook
    startup = StartUp()
    try:
        assert signal.getsignal(signal.SIGINT) == startup._interrupt
        assert sys.unraisablehook == startup._unraisable_hook
        try:
            signal.raise_signal(signal.SIGINT)
            _spin()
            raise AssertionError("no Ctrl-C")
        except Interrupted:
            pass
        assert startup.interrupted
    finally:
        startup.end()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert sys.unraisablehook is hook


def test_a_callers_handler_is_left_alone() -> None:
    seen: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        startup = StartUp()
        signal.raise_signal(signal.SIGINT)
        _spin()
        startup.end()
        assert seen == [signal.SIGINT] and not startup.interrupted
    finally:
        signal.signal(signal.SIGINT, old)


def test_no_handler_from_another_thread(python_handler: None) -> None:
    got: list[bool] = []

    def make() -> None:
        startup = StartUp()
        got.append(startup._unraisable is None)
        startup.end()

    t = threading.Thread(target=make)
    t.start()
    t.join()
    assert got == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_run_gives_the_callers_handlers_back(python_handler: None) -> None:
    """Session.run() in a script's main thread: the engine's SIGINT and
    SIGTERM handlers are for the run; afterwards Ctrl-C raises
    KeyboardInterrupt in the caller again, and its SIGTERM handler is its own."""
    import io

    import pydtrace

    def mine(signum: int, frame: object) -> None:
        pass

    old_term = signal.signal(signal.SIGTERM, mine)
    try:
        out = io.StringIO()
        session = pydtrace.Session([pydtrace.Program("n", 'BEGIN { trace("x"); exit(0); }')],
                                   settings=[("quiet", None)], out=out)  # fmt: skip
        assert (session.run(), out.getvalue()) == (0, "x\n")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGTERM) is mine
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
            _spin()
    finally:
        signal.signal(signal.SIGTERM, old_term)


# a Ctrl-C landing while a command reads the entry its command line kept
# (program_cache.look_ahead, the first thing its main() does)
_IN_LOOK_AHEAD = """
import sys
from pydtrace.cli.startup import Interrupted
from pydtrace.engines.ebpf import program_cache

def look_ahead(slot):
    raise Interrupted

program_cache.look_ahead = look_ahead
if sys.argv[1] == "tool":
    from pydtrace.cli.tools import main
    status = main("execsnoop", ["-d", "1"])
else:
    from pydtrace.cli.dtrace import main
    status = main(["pydtrace", "-n", "BEGIN { exit(0); }"])
raise SystemExit(status)
"""


@pytest.mark.parametrize(("which", "name"), [("tool", "execsnoop"), ("dtrace", "pydtrace")])
def test_a_ctrl_c_while_the_kept_entry_is_read_ends_with_status_1(
    tmp_path: Path, which: str, name: str
) -> None:
    r = _run(tmp_path, _IN_LOOK_AHEAD, which)
    assert (r.returncode, r.stdout, r.stderr) == (
        1, "", f"{name}: interrupted before tracing began\n")  # fmt: skip
