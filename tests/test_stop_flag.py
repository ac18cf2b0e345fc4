"""The flag a Ctrl-C handler sets to end a run. threading.Event cannot be it:
Event.set() takes the lock Event.wait() holds while it takes its condition
back, and a handler runs in the main thread between any two bytecodes, so a
Ctrl-C that lands there waits for itself (a run of the responsiveness
benchmark hung so, its pydtrace stuck in Event.set under Event.wait)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from conftest import ROOT
from pydtrace.engines.signals import StopFlag

# the main thread waits on the flag over and over while a 2 kHz timer's
# handler sets it: a handler lands inside wait() hundreds of times
HARNESS = """
import signal, sys, threading, time
from pydtrace.engines.signals import StopFlag
flag = threading.Event() if sys.argv[1] == "event" else StopFlag()
fired = [0]
def handler(signum, frame):
    fired[0] += 1
    flag.set()
signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
end = time.monotonic() + 2
while time.monotonic() < end:
    flag.wait(0.00001)
signal.setitimer(signal.ITIMER_REAL, 0)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
print("done", fired[0] > 1000)
"""


def _harness(kind: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HARNESS, kind],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(ROOT / "src")},
    )


def test_a_signal_handler_may_set_it_during_a_wait() -> None:
    r = _harness("flag")
    assert (r.returncode, r.stdout, r.stderr) == (0, "done True\n", "")


def test_the_harness_catches_threading_event() -> None:
    """The same harness with threading.Event never ends cleanly: the handler
    blocks in set(), the next signal nests another, until Python gives up."""
    r = _harness("event")
    assert r.returncode != 0 and "done" not in r.stdout, (r.returncode, r.stdout)


def test_set_wakes_every_waiting_thread_and_stays_set() -> None:
    flag = StopFlag()
    assert not flag.is_set() and flag.wait(0.01) is False
    woke: list[float] = []
    threads = [
        threading.Thread(target=lambda: woke.append(flag.wait(5) and time.monotonic()))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    time.sleep(0.05)
    set_at = time.monotonic()
    flag.set()
    for t in threads:
        t.join(5)
    assert len(woke) == 3 and all(set_at <= w < set_at + 1 for w in woke)
    assert flag.is_set() and flag.wait() is True and flag.wait(0) is True


def test_closed_it_holds_no_descriptor_and_still_works() -> None:
    """An engine closes its flag with the run (no descriptor left open); a
    stop() from another thread after that still sets it."""
    flag = StopFlag()
    flag.close()
    assert flag.fileno() == -1
    t0 = time.monotonic()
    assert flag.wait(0.05) is False and time.monotonic() - t0 >= 0.05
    threading.Timer(0.05, flag.set).start()
    assert flag.wait(5) is True and time.monotonic() - t0 < 1
    flag.close()  # again: nothing to do


def test_a_wait_also_ends_when_another_descriptor_is_readable() -> None:
    """wait(also=fds): the engine's wait between drains ends when a -c target's
    pidfd is readable, not only on Ctrl-C or the timeout; the flag stays unset."""
    import os

    flag = StopFlag()
    r, w = os.pipe()
    try:
        t0 = time.monotonic()
        assert flag.wait(0.05, also=[r]) is False
        assert time.monotonic() - t0 >= 0.04  # nothing readable: the timeout
        os.write(w, b"x")
        t0 = time.monotonic()
        assert flag.wait(5, also=[r]) is False
        assert time.monotonic() - t0 < 2
    finally:
        for fd in (r, w):
            os.close(fd)
        flag.close()
