"""The registry of running recorders, so that `ktrace -C` / `-c` can find
and stop them (Linux has no ktrace(2) to clear trace points in the kernel).

Each recorder keeps one small JSON file, /tmp/pydtrace-ktrace-<uid>/<pid>.json
(the directory is the user's own, mode 0700), holding its pid, the start time
of that pid (so a reused pid is never signalled), its trace file and targets.
Stopping is SIGTERM: the recorder detaches, flushes its file and removes its
entry. Entries whose process is gone are stale and are removed when seen.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import stat
import time

from pydtrace.lang.dataclass import dataclass
from pydtrace.outfiles import open_output

ROOT = "/tmp"


def registry_dir(uid: int | None = None) -> str:
    return os.path.join(ROOT, f"pydtrace-ktrace-{os.getuid() if uid is None else uid}")


@dataclass
class Entry:
    pid: int
    start: int  # /proc/PID/stat starttime, guards against pid reuse
    file: str  # absolute path of the trace file
    pids: list[int]
    pgid: int | None
    path: str = ""  # where the entry is stored

    def alive(self) -> bool:
        return _starttime(self.pid) == self.start


def _starttime(pid: int) -> int:
    """The process's start time; -1 when it is gone (a zombie is gone: it has
    flushed and closed its file, only its reaping is pending)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return -1 if fields[0] in "ZX" else int(fields[19])
    except (OSError, IndexError, ValueError):
        return -1


def register(file: str, pids: list[int], pgid: int | None) -> str:
    """Record this process as a recorder; returns the entry's path (for unregister)."""
    me = os.getpid()
    data = {"pid": me, "start": _starttime(me), "file": os.path.abspath(file),
            "pids": pids, "pgid": pgid}  # fmt: skip
    for _ in range(3):  # the directory may go meanwhile (the last recorder leaving)
        d = registry_dir()
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return ""  # a full or read-only /tmp: record all the same, unregistered
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            continue  # the last recorder's unregister removed it meanwhile
        if not _private(st, os.getuid()):
            return ""  # someone else's directory, or one others may write: run unregistered
        path = os.path.join(d, f"{me}.json")
        tmp = path + ".tmp"
        try:
            with open(open_output(tmp, replace=True, mode=0o600), "w") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        except FileNotFoundError:
            continue  # (the same: removed between our mkdir and our write)
        except OSError:
            return ""  # a full /tmp: record all the same, only `ktrace -C` will not find us
        return path
    return ""


def unregister(path: str) -> None:
    """Remove the entry, and the user's registry directory with it when it was
    the last (nothing of ours stays in /tmp; a recorder registering meanwhile
    makes it again)."""
    if path:
        try:
            os.unlink(path)
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass  # gone already, or other recorders' entries are there


def entries(all_users: bool = False) -> list[Entry]:
    """The live recorders of this user (of every user when all_users)."""
    dirs = glob.glob(os.path.join(ROOT, "pydtrace-ktrace-*")) if all_users else [registry_dir()]
    out = []
    for d in dirs:
        for path in glob.glob(os.path.join(d, "*.json")):
            try:
                with open(path) as f:
                    raw = json.load(f)
                e = Entry(int(raw["pid"]), int(raw["start"]), str(raw["file"]),
                          [int(p) for p in raw.get("pids", [])], raw.get("pgid"), path)  # fmt: skip
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if e.alive():
                out.append(e)
            elif _owned_registry(d):
                unregister(path)  # stale: its recorder is gone
    return out


def _private(st: os.stat_result, uid: int) -> bool:
    """A real directory (not a link), uid's, that no one else may write."""
    return stat.S_ISDIR(st.st_mode) and st.st_uid == uid and not st.st_mode & 0o022


def _owned_registry(d: str) -> bool:
    """Is d a registry directory of the user its name says, that we may
    clean (ours, or any user's as root)? Never through a link, never one
    another user could have filled."""
    try:
        uid = int(os.path.basename(d).rsplit("-", 1)[1])
        st = os.lstat(d)
    except (OSError, ValueError, IndexError):
        return False
    return _private(st, uid) and (os.getuid() in (0, uid))


def stop(chosen: list[Entry], wait: float = 10.0) -> None:
    """SIGTERM each recorder and wait (a while) until it has flushed and gone."""
    for e in chosen:
        try:
            os.kill(e.pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(e.alive() for e in chosen):
        time.sleep(0.02)
