"""How the eBPF engine fires each provider: one module per provider, found
through provider() by a probe's kind (Probe.kind: its provider's name, or
"pid" / "usdt" for the per-process ones).

How to add a provider
---------------------
1. Its catalogue side first (probes/providers/__init__.py says how).
2. Write engines/ebpf/providers/<name>.py: an EbpfProvider subclass (base.py
   lists the hooks and when the code generator calls them). attach() is the
   one every provider needs: the BPF program type and an attachment that
   engines/ebpf/attach.py knows how to open (a tracepoint, a raw tracepoint,
   a uprobe, a timer, or "run" for a program the engine runs itself). args()
   fills arg0..arg9 from the program's context; prologue() or select() what
   the arguments point at; builtin() a builtin variable it gives its own
   meaning (sdt's `args`).
3. Add its kind to ORDER below (the order the code generator asks them for
   shared programs and program-wide steps) and its class to _make().
4. Tests: a test module running its probes (tests/test_<name>*.py).
Shared code lives in modules named after what it holds: psinfo.py (the
psinfo_t area, also curpsinfo's), tracepoint_area.py (sdt's and io's
arguments), uprobe.py (pid's and usdt's), groups.py, timer.py.
"""

from __future__ import annotations

from pydtrace.engines.ebpf.providers.base import EbpfProvider

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Every kind, in the order the code generator asks providers for shared
# programs and program-wide steps.
ORDER = ("dtrace", "profile", "syscall", "sdt", "io", "proc", "sched", "pid", "usdt")
SUPPORTED = frozenset(ORDER)  # the probe kinds the eBPF engine can fire
_NONE = EbpfProvider()  # a kind the engine does not know: attach() says so
_made: dict[str, EbpfProvider] = {}


def _make(kind: str) -> EbpfProvider:
    # each imported when a program first has its probes: start-up pays for what it uses
    if kind == "dtrace":
        from pydtrace.engines.ebpf.providers.dtrace import DtraceProvider as P
    elif kind == "profile":
        from pydtrace.engines.ebpf.providers.profile import ProfileProvider as P
    elif kind == "syscall":  # its raw syscall groups come before pid's uprobe groups
        from pydtrace.engines.ebpf.providers.syscall import SyscallProvider as P
    elif kind == "sdt":
        from pydtrace.engines.ebpf.providers.sdt import SdtProvider as P
    elif kind == "io":
        from pydtrace.engines.ebpf.providers.io import IoProvider as P
    elif kind == "proc":
        from pydtrace.engines.ebpf.providers.proc import ProcProvider as P
    elif kind == "sched":
        from pydtrace.engines.ebpf.providers.sched import SchedProvider as P
    elif kind == "pid":
        from pydtrace.engines.ebpf.providers.pid import PidProvider as P
    else:
        from pydtrace.engines.ebpf.providers.usdt import UsdtProvider as P
    return P()


def provider(kind: str) -> EbpfProvider:
    """How the engine fires probes of one kind (one instance per kind)."""
    p = _made.get(kind)
    if p is None:
        if kind not in SUPPORTED:
            return _NONE
        p = _made[kind] = _make(kind)
    return p


def in_use(kinds: set[str]) -> list[EbpfProvider]:
    """The providers of a program's probe kinds, in ORDER: the others have
    nothing to do for it (their groups(), prepare() and finish() see only
    probes of their own kind)."""
    return [provider(k) for k in ORDER if k in kinds]


def provider_of(probe: Any) -> EbpfProvider:
    return provider(probe.kind)


# builtin variables the firing probe's provider supplies (EbpfProvider.builtin)
BUILTINS = frozenset({"args", "curpsinfo", "curlwpsinfo", "curcpu"})


def builtin(cg: Any, name: str, t: Any) -> Any:
    """The value of one of BUILTINS in the program being generated."""
    return provider_of(cg.probe).builtin(cg, name, t)
