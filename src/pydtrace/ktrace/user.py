"""pydtrace.ktrace.utrace(label, data): add a USER record to the trace a program is under.

Linux has no utrace(2); calls.py's convention stands in for it: writev(-1,
iov, 2) with iov[0] = the label and iov[1] = the data. Not traced (or traced
without `-t u`) the call fails with EBADF and has no effect, so a program may
call this unconditionally. C programs do the same with writev(2).
"""

from __future__ import annotations

import ctypes

from pydtrace.ktrace.calls import USER_FD, USER_MAX


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_char_p), ("len", ctypes.c_size_t)]


def utrace(label: str | bytes, data: bytes) -> None:
    """Record `data` (at most USER_MAX bytes kept) under `label` (at most 20 bytes)."""
    lab = label.encode() if isinstance(label, str) else label
    iov = (_Iovec * 2)(_Iovec(lab, len(lab)), _Iovec(data, min(len(data), USER_MAX)))
    ctypes.CDLL(None).writev(USER_FD, iov, 2)
