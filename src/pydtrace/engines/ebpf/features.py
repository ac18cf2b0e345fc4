"""What this kernel's BPF can do, found by trying (not by version: distributions backport).

Each probe loads a tiny hand-assembled program or creates a small map once per process and
caches the answer. can_use_bpf() decides whether the eBPF engine may run at all.
"""

from __future__ import annotations

import errno as _errno
import os
import struct
from functools import cache

from pydtrace.engines.ebpf import bpf as _bpf
from pydtrace.engines.ebpf.bpf import BPFError, Helper, MapType, ProgType

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


def _i(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


# the few encodings the probes need (class | op | source)
_MOV64_K = 0xB7
_ADD64_K = 0x07
_MOV64_X = 0xBF
_DIV64_K = 0x37
_JLT_K = 0xA5
_CALL = 0x85
_EXIT = 0x95
_LD_IMM64 = 0x18
_PSEUDO_FUNC = 4

_RET0 = _i(_MOV64_K, 0, imm=0) + _i(_EXIT)


def _loads(prog_type: int, insns: bytes, name: str = "probe") -> bool:
    """True when the kernel accepts the program (it is closed at once)."""
    try:
        fd = _bpf.prog_load(prog_type, insns, name=name)
    except (BPFError, OSError):
        return False
    _bpf.close_fd(fd)
    return True


def _calls(helper: int, prog_type: int = ProgType.TRACEPOINT) -> bytes:
    """A program passing (fp-16, 16, NULL) to a read helper, then returning 0."""
    return (
        _i(_MOV64_X, 1, 10)
        + _i(_ADD64_K, 1, imm=-16)
        + _i(_MOV64_K, 2, imm=16)
        + _i(_MOV64_K, 3, imm=0)
        + _i(_CALL, imm=helper)
        + _RET0
    )


@cache
def has_ringbuf() -> bool:
    """BPF_MAP_TYPE_RINGBUF (v5.8)."""
    import mmap

    try:
        fd = _bpf.map_create(MapType.RINGBUF, 0, 0, mmap.PAGESIZE, name="probe_rb")
    except BPFError:
        return False
    _bpf.close_fd(fd)
    return True


@cache
def has_probe_read_user_str() -> bool:
    """bpf_probe_read_user_str / probe_read_kernel (v5.5): else the old probe_read_str."""
    return _loads(ProgType.TRACEPOINT, _calls(Helper.probe_read_user_str), "probe_rus")


@cache
def has_probe_read_kernel() -> bool:
    return _loads(ProgType.TRACEPOINT, _calls(Helper.probe_read_kernel), "probe_rk")


@cache
def has_bounded_loops() -> bool:
    """Back-edges in verified programs (v5.3): r0 counts to 4 in a loop."""
    prog = (
        _i(_MOV64_K, 0, imm=0)
        + _i(_ADD64_K, 0, imm=1)
        + _i(_JLT_K, 0, off=-2, imm=4)  # back to the add
        + _i(_EXIT)
    )
    return _loads(ProgType.TRACEPOINT, prog, "probe_loop")


@cache
def has_raw_tp_test_run() -> bool:
    """PROG_TEST_RUN of RAW_TRACEPOINT programs (v5.10): how BEGIN and END run in the kernel."""
    prog = _i(_MOV64_K, 0, imm=7) + _i(_EXIT)
    try:
        fd = _bpf.prog_load(ProgType.RAW_TRACEPOINT, prog, name="probe_run")
    except BPFError:
        return False
    try:
        return _bpf.prog_test_run(fd) == 7
    except BPFError:
        return False
    finally:
        _bpf.close_fd(fd)


@cache
def has_signed_division() -> bool:
    """BPF_SDIV/SMOD (cpu v4, v6.6): DIV with off = 1."""
    prog = _i(_MOV64_K, 0, imm=-7) + _i(_DIV64_K, 0, off=1, imm=2) + _i(_EXIT)
    return _loads(ProgType.TRACEPOINT, prog, "probe_sdiv")


@cache
def has_bpf_loop() -> bool:
    """Whether pydtrace can call bpf_loop (v5.17).

    The kernel wants BTF func_info describing the callback subprogram, which pydtrace does not
    generate: the verifier answers "missing btf func_info" and this is False. Bounded loops
    (has_bounded_loops) are the way to loop.
    """
    prog = (
        _i(_MOV64_K, 1, imm=1)  # 0: nr_loops
        + _i(_LD_IMM64, 2, _PSEUDO_FUNC, imm=6)  # 1-2: callback at 1 + 6 + 1 = 8
        + _i(0)
        + _i(_MOV64_K, 3, imm=0)  # 3: ctx
        + _i(_MOV64_K, 4, imm=0)  # 4: flags
        + _i(_CALL, imm=Helper.loop)  # 5
        + _RET0  # 6-7
        + _RET0  # 8-9: the callback: stop after one round
    )
    return _loads(ProgType.TRACEPOINT, prog, "probe_bpfloop")


@cache
def has_perf_event_programs() -> bool:
    """BPF_PROG_TYPE_PERF_EVENT (v4.9): profile-N and tick-N."""
    return _loads(ProgType.PERF_EVENT, _RET0, "probe_perf")


@cache
def has_uprobe_multi() -> bool:
    """uprobe_multi links (v6.6): pid and usdt probes attach as BPF links, whose
    removal does not make each uprobe wait in turn (see bpf.uprobe_multi_link).
    Asked of a pid that cannot exist: such a kernel answers ESRCH before
    registering anything, an older one EINVAL for the attach type."""
    try:
        fd = _bpf.prog_load(ProgType.KPROBE, _RET0, name="probe_umulti",
                            expected_attach_type=_bpf.AttachType.TRACE_UPROBE_MULTI)  # fmt: skip
    except (BPFError, OSError):
        return False
    try:
        _bpf.close_fd(_bpf.uprobe_multi_link(fd, "/proc/self/exe", [0], False, 0x3FFFFFFF, None))
        return True  # not expected: the pid exists after all
    except BPFError as e:
        return e.errno == _errno.ESRCH
    finally:
        _bpf.close_fd(fd)


def _cap_eff() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def _sysctl(name: str) -> str | None:
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return f.read().strip()
    except OSError:
        return None


@cache
def can_use_bpf() -> tuple[bool, str]:
    """(True, "") when this process may load tracing programs; else (False, why) in one phrase."""
    caps = _cap_eff()
    privileged = os.geteuid() == 0 or caps & (1 << CAP_SYS_ADMIN)
    if not privileged and not (caps & (1 << CAP_BPF) and caps & (1 << CAP_PERFMON)):
        why = "eBPF tracing needs root, or the CAP_BPF and CAP_PERFMON capabilities"
        if _sysctl("kernel.unprivileged_bpf_disabled") not in (None, "0"):
            why += " (kernel.unprivileged_bpf_disabled is set)"
        return (False, why)
    try:
        fd = _bpf.map_create(MapType.ARRAY, 4, 8, 1, name="probe")
    except BPFError as e:
        if e.errno == _errno.EPERM:
            return (False, f"bpf(2) is not permitted here: {e}")
        return (False, str(e))
    _bpf.close_fd(fd)
    if not _loads(ProgType.TRACEPOINT, _RET0, "probe_tp"):
        return (False, "this kernel cannot load BPF tracepoint programs")
    return (True, "")


def features() -> dict[str, bool]:
    """Every probe's answer (for -v and bug reports)."""
    return {
        "ringbuf": has_ringbuf(),
        "probe_read_user_str": has_probe_read_user_str(),
        "probe_read_kernel": has_probe_read_kernel(),
        "bounded_loops": has_bounded_loops(),
        "raw_tp_test_run": has_raw_tp_test_run(),
        "signed_division": has_signed_division(),
        "bpf_loop": has_bpf_loop(),
        "perf_event_programs": has_perf_event_programs(),
        "uprobe_multi": has_uprobe_multi(),
    }
