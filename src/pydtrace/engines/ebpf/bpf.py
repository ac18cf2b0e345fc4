"""bpf(2) through ctypes: map and program commands, the verifier log, uapi constants.

Every attr is a zeroed buffer filled at the byte offsets of `union bpf_attr` (the kernel accepts
an attr shorter than the one it knows). Failures raise BPFError (an OSError whose text is one
sentence naming the command and the reason); a program the verifier refuses raises VerifierError
with the verifier's log.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import struct

from pydtrace.lang.dataclass import dataclass

# ---------------------------------------------------------------- constants (uapi names)


class _Names:
    """An int namespace that can name its values back (for messages and disassembly)."""

    @classmethod
    def name_of(cls, value: int) -> str:
        for k, v in vars(cls).items():
            if not k.startswith("_") and v == value and isinstance(v, int):
                return k
        return str(value)


class Cmd(_Names):
    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_PIN = 6
    OBJ_GET = 7
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_TEST_RUN = 10
    OBJ_GET_INFO_BY_FD = 15
    RAW_TRACEPOINT_OPEN = 17
    BTF_LOAD = 18
    MAP_LOOKUP_AND_DELETE_ELEM = 21
    MAP_FREEZE = 22
    MAP_LOOKUP_BATCH = 24
    MAP_LOOKUP_AND_DELETE_BATCH = 25
    MAP_UPDATE_BATCH = 26
    LINK_CREATE = 28
    LINK_DETACH = 34


class MapType(_Names):
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    STACK_TRACE = 7
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    ARRAY_OF_MAPS = 12
    HASH_OF_MAPS = 13
    QUEUE = 22
    STACK = 23
    RINGBUF = 27
    TASK_STORAGE = 29
    BLOOM_FILTER = 30


PERCPU_MAP_TYPES = frozenset({MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH})


class ProgType(_Names):
    SOCKET_FILTER = 1
    KPROBE = 2
    TRACEPOINT = 5
    PERF_EVENT = 7
    RAW_TRACEPOINT = 17
    TRACING = 26


class AttachType(_Names):
    TRACE_RAW_TP = 23
    TRACE_FENTRY = 24
    TRACE_FEXIT = 25
    PERF_EVENT = 41
    TRACE_KPROBE_MULTI = 42
    TRACE_UPROBE_MULTI = 48


class Helper(_Names):
    """Helper function ids (BPF_FUNC_<name>): the ones tracing programs use."""

    map_lookup_elem = 1
    map_update_elem = 2
    map_delete_elem = 3
    probe_read = 4
    ktime_get_ns = 5
    trace_printk = 6
    get_prandom_u32 = 7
    get_smp_processor_id = 8
    tail_call = 12
    get_current_pid_tgid = 14
    get_current_uid_gid = 15
    get_current_comm = 16
    perf_event_read = 22
    perf_event_output = 25
    get_stackid = 27
    get_current_task = 35
    probe_write_user = 36
    get_numa_node_id = 42
    probe_read_str = 45
    perf_event_read_value = 55
    perf_prog_read_value = 56
    override_return = 58
    get_stack = 67
    get_current_cgroup_id = 80
    map_push_elem = 87
    map_pop_elem = 88
    map_peek_elem = 89
    spin_lock = 93
    spin_unlock = 94
    strtol = 105
    strtoul = 106
    send_signal = 109
    probe_read_user = 112
    probe_read_kernel = 113
    probe_read_user_str = 114
    probe_read_kernel_str = 115
    send_signal_thread = 117
    jiffies64 = 118
    get_ns_current_pid_tgid = 120
    get_current_ancestor_cgroup_id = 123
    ktime_get_boot_ns = 125
    ringbuf_output = 130
    ringbuf_reserve = 131
    ringbuf_submit = 132
    ringbuf_discard = 133
    ringbuf_query = 134
    get_task_stack = 141
    d_path = 147
    copy_from_user = 148
    per_cpu_ptr = 153
    this_cpu_ptr = 154
    task_storage_get = 156
    task_storage_delete = 157
    get_current_task_btf = 158
    ktime_get_coarse_ns = 160
    for_each_map_elem = 164
    snprintf = 165
    get_func_ip = 173
    get_attach_cookie = 174
    task_pt_regs = 175
    trace_vprintk = 177
    find_vma = 180
    loop = 181
    strncmp = 182
    get_func_arg = 183
    get_func_ret = 184
    get_func_arg_cnt = 185
    copy_from_user_task = 191
    map_lookup_percpu_elem = 195
    ktime_get_tai_ns = 208


# map update flags
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4
# map creation flags
BPF_F_NO_PREALLOC = 1
BPF_F_RDONLY_PROG = 0x80
BPF_F_MMAPABLE = 0x400
# perf_event_output / ringbuf
BPF_F_CURRENT_CPU = 0xFFFFFFFF
BPF_RB_NO_WAKEUP = 1
BPF_RB_FORCE_WAKEUP = 2
# PROG_TEST_RUN
BPF_F_TEST_RUN_ON_CPU = 1
# LD_IMM64 / CALL source-register markers
BPF_PSEUDO_MAP_FD = 1
BPF_PSEUDO_MAP_VALUE = 2
BPF_PSEUDO_CALL = 1
# program load flags
BPF_F_SLEEPABLE = 1 << 4

OBJ_NAME_LEN = 16
LOG_START = 64 * 1024
LOG_MAX = 16 * 1024 * 1024

# ---------------------------------------------------------------- the system call

_NR_BPF = {"x86_64": 321, "amd64": 321, "aarch64": 280, "arm64": 280}
_syscall = None
_memlock_done = False


def libc_syscall():
    global _syscall
    if _syscall is None:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syscall
        fn.restype = ctypes.c_long
        _syscall = fn
    return _syscall


def _nr_bpf() -> int:
    machine = os.uname().machine
    nr = _NR_BPF.get(machine)
    if nr is None:
        raise BPFError(_errno.ENOSYS, "bpf", f"unsupported architecture {machine}")
    return nr


_NR = None

_HINTS = {
    _errno.EPERM: "needs root, or CAP_BPF and CAP_PERFMON",
    _errno.ENOSYS: "this kernel has no bpf(2) support",
    _errno.ENOMEM: "out of memory, or over the RLIMIT_MEMLOCK / memory cgroup limit",
}


class BPFError(OSError):
    """bpf(2) failed; str() is one sentence: 'bpf(CMD) failed: reason (hint)'."""

    def __init__(self, err: int, command: str, detail: str | None = None):
        super().__init__(err, os.strerror(err))
        self.command = command
        self.detail = detail

    def __str__(self) -> str:
        text = f"bpf({self.command}) failed: {self.strerror}"
        hint = self.detail if self.detail is not None else _HINTS.get(self.errno)
        return f"{text} ({hint})" if hint else text


class VerifierError(BPFError):
    """The verifier refused a program: .log (full text), .summary (its last word), .insn (index)."""

    def __init__(self, err: int, log: str, name: str = ""):
        self.log = log
        self.summary, self.insn = parse_verifier_log(log)
        self.prog_name = name
        super().__init__(err, "PROG_LOAD", None)

    def __str__(self) -> str:
        where = f" at instruction {self.insn}" if self.insn is not None else ""
        what = f"program {self.prog_name}" if self.prog_name else "program"
        return f"BPF verifier rejected {what}{where}: {self.summary}"


def bpf(cmd: int, attr: ctypes.Array, what: str | None = None) -> int:
    """Run one bpf(2) command on an attr buffer; return its result or raise BPFError."""
    global _NR
    if _NR is None:
        _NR = _nr_bpf()
    call = libc_syscall()
    for _ in range(5):
        ret = call(_NR, cmd, attr, len(attr))
        if ret >= 0:
            return ret
        err = ctypes.get_errno()
        # the verifier gives up with EAGAIN when a signal arrives mid-load: try again
        if err != _errno.EAGAIN or cmd != Cmd.PROG_LOAD:
            break
    raise BPFError(err, what or Cmd.name_of(cmd))


def _addr(buf) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def _cstr(b: bytes):
    """A ctypes buffer holding bytes (kept alive by the caller's reference)."""
    return ctypes.create_string_buffer(b, len(b))


def raise_memlock() -> None:
    """Lift RLIMIT_MEMLOCK once where the kernel charges maps and programs to
    it (before 5.11; later kernels charge the memory cgroup, and a limit
    left as it was is one a -c command inherits as it was)."""
    global _memlock_done
    if _memlock_done:
        return
    _memlock_done = True
    try:
        if tuple(int(x) for x in os.uname().release.split(".")[:2]) >= (5, 11):
            return
    except ValueError:
        pass
    try:
        import resource

        inf = resource.RLIM_INFINITY
        if resource.getrlimit(resource.RLIMIT_MEMLOCK) != (inf, inf):
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (inf, inf))
    except (ImportError, ValueError, OSError):
        pass  # not privileged to raise it: 5.11+ kernels do not need it anyway


def close_fd(fd: int) -> None:
    """Close a BPF object fd, ignoring an fd already closed."""
    try:
        os.close(fd)
    except OSError:
        pass


_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.")


def obj_name(name: str) -> bytes:
    """A map/program name as the kernel accepts it: <= 15 chars of [A-Za-z0-9_.]."""
    clean = "".join(c if c in _NAME_CHARS else "_" for c in name[: OBJ_NAME_LEN - 1])
    return clean.encode()


# ---------------------------------------------------------------- maps


def map_create(
    map_type: int,
    key_size: int,
    value_size: int,
    max_entries: int,
    flags: int = 0,
    name: str = "",
    inner_map_fd: int = 0,
    map_extra: int = 0,
) -> int:
    """Create a map; returns its fd (close-on-exec)."""
    if max(key_size, value_size, max_entries) > 0xFFFFFFFF:  # bpf_attr's fields are u32
        raise BPFError(_errno.E2BIG, "MAP_CREATE")  # as dtrace's create_gmap checks
    raise_memlock()
    attr = ctypes.create_string_buffer(72)
    struct.pack_into(
        "<IIIIII", attr, 0, map_type, key_size, value_size, max_entries, flags, inner_map_fd
    )
    n = obj_name(name)
    attr[28 : 28 + len(n)] = n
    struct.pack_into("<Q", attr, 64, map_extra)
    try:
        return bpf(Cmd.MAP_CREATE, attr)
    except BPFError as e:
        if e.errno == _errno.EINVAL:
            e.detail = (
                f"map type {MapType.name_of(map_type)} with key size {key_size}, value size "
                f"{value_size}, {max_entries} entries and flags {flags:#x} is not supported "
                "by this kernel"
            )
        raise


def _elem_attr(fd: int, key, value, flags: int) -> ctypes.Array:
    attr = ctypes.create_string_buffer(32)
    struct.pack_into("<IxxxxQQQ", attr, 0, fd, _addr(key), _addr(value), flags)
    return attr


def map_lookup(
    fd: int, key: bytes, value_size: int, cmd: int = Cmd.MAP_LOOKUP_ELEM
) -> bytes | None:
    """The value at key (value_size bytes: for per-CPU maps, the whole per-CPU array), or None.
    cmd MAP_LOOKUP_AND_DELETE_ELEM takes the key out in the same step."""
    k = _cstr(key)
    v = ctypes.create_string_buffer(value_size)
    try:
        bpf(cmd, _elem_attr(fd, k, v, 0))
    except BPFError as e:
        if e.errno == _errno.ENOENT:
            return None
        raise
    return v.raw


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    """Store value at key; a full hash map raises BPFError(E2BIG, 'map is full')."""
    k = _cstr(key)
    v = _cstr(value)
    try:
        bpf(Cmd.MAP_UPDATE_ELEM, _elem_attr(fd, k, v, flags))
    except BPFError as e:
        if e.errno == _errno.E2BIG:
            e.detail = "map is full"
        elif e.errno == _errno.EEXIST:
            e.detail = "key exists"
        raise


def map_delete(fd: int, key: bytes) -> bool:
    """Delete key; False when it was not there."""
    k = _cstr(key)
    try:
        bpf(Cmd.MAP_DELETE_ELEM, _elem_attr(fd, k, None, 0))
    except BPFError as e:
        if e.errno == _errno.ENOENT:
            return False
        raise
    return True


def map_next_key(fd: int, key: bytes | None, key_size: int) -> bytes | None:
    """The key after `key` (the first key when key is None or gone); None at the end."""
    k = _cstr(key) if key is not None else None
    nk = ctypes.create_string_buffer(key_size)
    try:
        bpf(Cmd.MAP_GET_NEXT_KEY, _elem_attr(fd, k, nk, 0))
    except BPFError as e:
        if e.errno == _errno.ENOENT:
            return None
        raise
    return nk.raw


def map_update_batch(fd: int, keys: bytes, values: bytes, count: int) -> int:
    """Store `count` entries (keys and values laid end to end) with one
    MAP_UPDATE_BATCH (v5.6); how many the kernel stored before an error
    (BPFError) stopped it is lost with the error, so callers fall back to
    one update per entry."""
    k = _cstr(keys)
    v = _cstr(values)
    attr = ctypes.create_string_buffer(56)
    # struct { in_batch, out_batch, keys, values; u32 count, map_fd; u64 elem_flags, flags }
    struct.pack_into("<QQQQIIQQ", attr, 0, 0, 0, _addr(k), _addr(v), count, fd, BPF_ANY, 0)
    bpf(Cmd.MAP_UPDATE_BATCH, attr)
    return struct.unpack_from("<I", attr, 32)[0]


def map_lookup_batch(
    fd: int, key_size: int, value_size: int, chunk: int = 256
) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs with MAP_LOOKUP_BATCH (v5.6), `chunk` entries per call.

    value_size is the user-space size of one value (for per-CPU maps: stride * possible CPUs).
    Raises BPFError(EINVAL/ENOTSUPP) where the map type has no batch support.
    """
    out: list[tuple[bytes, bytes]] = []
    token_size = max(key_size, 8)
    in_tok = ctypes.create_string_buffer(token_size)
    out_tok = ctypes.create_string_buffer(token_size)
    keys = ctypes.create_string_buffer(key_size * chunk)
    values = ctypes.create_string_buffer(value_size * chunk)
    first = True
    while True:
        attr = ctypes.create_string_buffer(56)
        struct.pack_into(
            "<QQQQII",
            attr,
            0,
            0 if first else _addr(in_tok),
            _addr(out_tok),
            _addr(keys),
            _addr(values),
            chunk,
            fd,
        )
        done = False
        try:
            bpf(Cmd.MAP_LOOKUP_BATCH, attr)
        except BPFError as e:
            if e.errno != _errno.ENOENT:
                raise
            done = True
        count = struct.unpack_from("<I", attr, 32)[0]
        kr, vr = keys.raw, values.raw
        for i in range(count):
            out.append(
                (
                    kr[i * key_size : (i + 1) * key_size],
                    vr[i * value_size : (i + 1) * value_size],
                )
            )
        if done:
            return out
        ctypes.memmove(in_tok, out_tok, token_size)
        first = False


# ---------------------------------------------------------------- programs


def parse_verifier_log(log: str) -> tuple[str, int | None]:
    """(summary, failing instruction index) from a verifier log.

    The summary is the last line that is not bookkeeping ("processed N insns", timings, state
    dumps); the index is that of the last "N: (op) ..." line printed before it.
    """
    import re  # (here, when a program was refused: not at every start-up)

    insn_line = re.compile(r"^(\d+): \([0-9a-f]{2}\)")
    insn_in_text = re.compile(r"\binsn (\d+)")
    log_tail = re.compile(
        r"^(processed \d+ insns|verification time|stack depth|-- END PROG LOAD LOG --|"
        r"mark_precise|from \d+ to \d+:|Func#|\d+: R\d|\s*$)"
    )
    lines = log.splitlines()
    at = None
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if not log_tail.match(line):
            at = i
            break
    if at is None:
        return ("no reason given", None)
    summary = lines[at].strip()
    insn = None
    for j in range(at, -1, -1):
        m = insn_line.match(lines[j])
        if m:
            insn = int(m.group(1))
            break
    if insn is None:  # checks made before the walk name the instruction in the text
        m = insn_in_text.search(summary)
        if m:
            insn = int(m.group(1))
    return (summary, insn)


def _prog_attr(
    prog_type: int,
    insns_buf,
    n_insns: int,
    license_buf,
    name: bytes,
    expected_attach_type: int,
    log_level: int,
    log_buf,
    prog_flags: int,
    attach_btf_id: int,
) -> ctypes.Array:
    attr = ctypes.create_string_buffer(144)
    struct.pack_into(
        "<IIQQIIQII",
        attr,
        0,
        prog_type,
        n_insns,
        _addr(insns_buf),
        _addr(license_buf),
        log_level,
        len(log_buf) if log_buf is not None else 0,
        _addr(log_buf),
        0,
        prog_flags,
    )
    attr[48 : 48 + len(name)] = name
    struct.pack_into("<I", attr, 68, expected_attach_type)
    struct.pack_into("<I", attr, 108, attach_btf_id)
    return attr


def prog_load(
    prog_type: int,
    insns: bytes,
    name: str = "",
    license: str = "GPL",
    expected_attach_type: int = 0,
    log_level: int = 0,
    prog_flags: int = 0,
    attach_btf_id: int = 0,
) -> int:
    """Load a program (insns: 8 bytes each); returns its fd.

    Loads without a log first (the fast path); when the verifier refuses (EACCES, EINVAL, E2BIG)
    loads again with a log buffer and raises VerifierError carrying the log. log_level > 0 asks
    for the log from the start (same error on refusal).
    """
    if len(insns) % 8 or not insns:
        raise ValueError("insns must be a non-empty multiple of 8 bytes")
    raise_memlock()
    ibuf = _cstr(insns)
    lic = ctypes.create_string_buffer(license.encode())
    nm = obj_name(name)
    n = len(insns) // 8

    def load(level: int, log_buf) -> int:
        attr = _prog_attr(
            prog_type,
            ibuf,
            n,
            lic,
            nm,
            expected_attach_type,
            level,
            log_buf,
            prog_flags,
            attach_btf_id,
        )
        try:
            return bpf(Cmd.PROG_LOAD, attr)
        except BPFError as e:
            e.true_size = struct.unpack_from("<I", attr, 140)[0]  # type: ignore[attr-defined]
            raise

    refused = _errno.EACCES  # errno of the log-less refusal, reported with the log
    if log_level == 0:
        try:
            return load(0, None)
        except BPFError as e:
            if e.errno not in (_errno.EACCES, _errno.EINVAL, _errno.E2BIG):
                raise
            refused = e.errno
    size = LOG_START
    while True:
        log_buf = ctypes.create_string_buffer(size)
        try:
            return load(log_level or 1, log_buf)
        except BPFError as e:
            if e.errno == _errno.ENOSPC and size < LOG_MAX:
                size = min(LOG_MAX, max(size * 4, getattr(e, "true_size", 0) + 1))
                continue
            text = log_buf.value.decode("utf-8", "replace")
            if e.errno == _errno.ENOSPC:  # even 16 MiB was short: keep what we have
                raise VerifierError(refused, text, name) from None
            if text.strip() and e.errno != _errno.EPERM:
                raise VerifierError(e.errno, text, name) from None
            if e.errno == _errno.EINVAL and not text.strip():
                e.detail = "invalid program attributes (name, type or attach type)"
            raise


def prog_test_run(
    prog_fd: int,
    ctx: bytes | None = None,
    data: bytes | None = None,
    repeat: int = 0,
    cpu: int | None = None,
) -> int:
    """Run a loaded program once in the kernel (PROG_TEST_RUN); returns its r0.

    RAW_TRACEPOINT programs (how BEGIN/END run, v5.10) take only ctx (u64 args) and need
    repeat 0; cpu runs them on that CPU (BPF_F_TEST_RUN_ON_CPU).
    """
    attr = ctypes.create_string_buffer(80)
    d = _cstr(data) if data else None
    c = _cstr(ctx) if ctx else None
    struct.pack_into(
        "<IIIIQQII",
        attr,
        0,
        prog_fd,
        0,
        len(data) if data else 0,
        0,
        _addr(d),
        0,
        repeat,
        0,
    )
    struct.pack_into("<IIQQ", attr, 40, len(ctx) if ctx else 0, 0, _addr(c), 0)
    if cpu is not None:
        struct.pack_into("<II", attr, 64, BPF_F_TEST_RUN_ON_CPU, cpu)
    bpf(Cmd.PROG_TEST_RUN, attr)
    return struct.unpack_from("<I", attr, 4)[0]


def raw_tracepoint_open(name: str | None, prog_fd: int) -> int:
    """Attach a RAW_TRACEPOINT program to tracepoint `name` (e.g. "sys_enter"); returns the fd."""
    attr = ctypes.create_string_buffer(16)
    nb = ctypes.create_string_buffer(name.encode()) if name else None
    struct.pack_into("<QI", attr, 0, _addr(nb), prog_fd)
    try:
        return bpf(Cmd.RAW_TRACEPOINT_OPEN, attr)
    except BPFError as e:
        if e.errno == _errno.ENOENT:
            e.detail = f"no raw tracepoint named {name}"
        elif e.errno == _errno.EINVAL:
            e.detail = "the program is not a raw tracepoint program"
        raise


UPROBE_MULTI_RETURN = 1  # link_create.uprobe_multi.flags


def uprobe_multi_link(
    prog_fd: int,
    path: str,
    offsets: list[int],
    ret: bool,
    pid: int,
    ref_ctrs: list[int] | None,
    cookies: list[int] | None = None,
) -> int:
    """LINK_CREATE of a TRACE_UPROBE_MULTI program at file offsets of path in process
    pid (0: every process); returns the link fd. cookies[i] is what
    bpf_get_attach_cookie answers at offsets[i]. The uprobes belong to the link:
    closing it removes them, and its removal waits for a grace period that other
    links' removals, from other threads, share (a perf-event uprobe's does not)."""
    n = len(offsets)
    cpath = ctypes.create_string_buffer(os.fsencode(path))
    offs = (ctypes.c_uint64 * n)(*offsets)
    refs = (ctypes.c_uint64 * n)(*ref_ctrs) if ref_ctrs else None
    cook = (ctypes.c_uint64 * n)(*cookies) if cookies else None
    attr = ctypes.create_string_buffer(64)
    struct.pack_into("<IIII", attr, 0, prog_fd, 0, AttachType.TRACE_UPROBE_MULTI, 0)
    struct.pack_into("<QQQQIII", attr, 16, _addr(cpath), _addr(offs), _addr(refs), _addr(cook),
                     n, UPROBE_MULTI_RETURN if ret else 0, pid)  # fmt: skip
    return bpf(Cmd.LINK_CREATE, attr)


@dataclass(frozen=True)
class ProgInfo:
    type: int
    id: int
    tag: bytes
    jited_len: int
    xlated_len: int
    name: str
    run_time_ns: int
    run_cnt: int
    verified_insns: int


@dataclass(frozen=True)
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    name: str


def _info(fd: int, size: int) -> ctypes.Array:
    info = ctypes.create_string_buffer(size)
    attr = ctypes.create_string_buffer(16)
    struct.pack_into("<IIQ", attr, 0, fd, size, _addr(info))
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr)
    return info


def prog_info(fd: int) -> ProgInfo:
    """OBJ_GET_INFO_BY_FD on a program: sizes (jited/xlated bytes), id, name, run statistics."""
    b = _info(fd, 232).raw
    t, pid = struct.unpack_from("<II", b, 0)
    jl, xl = struct.unpack_from("<II", b, 16)
    name = b[64:80].split(b"\0", 1)[0].decode()
    rt, rc = struct.unpack_from("<QQ", b, 192)
    vi = struct.unpack_from("<I", b, 216)[0]
    return ProgInfo(t, pid, b[8:16], jl, xl, name, rt, rc, vi)


def map_info(fd: int) -> MapInfo:
    """OBJ_GET_INFO_BY_FD on a map."""
    b = _info(fd, 80).raw
    t, mid, ks, vs, me, fl = struct.unpack_from("<IIIIII", b, 0)
    name = b[24:40].split(b"\0", 1)[0].decode()
    return MapInfo(t, mid, ks, vs, me, fl, name)
