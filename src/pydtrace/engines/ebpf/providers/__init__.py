"""How the eBPF engine fires each provider: one module per provider, found
through PROVIDERS by a probe's kind (Probe.kind: its provider's name, or
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
3. Put an instance in PROVIDERS below (the order is the order the code
   generator asks them for shared programs and program-wide steps).
4. Tests: a test module running its probes (tests/test_<name>*.py).
Shared code lives in modules named after what it holds: psinfo.py (the
psinfo_t area, also curpsinfo's), tracepoint_area.py (sdt's and io's
arguments), uprobe.py (pid's and usdt's), groups.py, timer.py.
"""

from __future__ import annotations

from typing import Any

from pydtrace.engines.ebpf.providers.base import EbpfProvider
from pydtrace.engines.ebpf.providers.dtrace import DtraceProvider
from pydtrace.engines.ebpf.providers.io import IoProvider
from pydtrace.engines.ebpf.providers.pid import PidProvider
from pydtrace.engines.ebpf.providers.proc import ProcProvider
from pydtrace.engines.ebpf.providers.profile import ProfileProvider
from pydtrace.engines.ebpf.providers.sched import SchedProvider
from pydtrace.engines.ebpf.providers.sdt import SdtProvider
from pydtrace.engines.ebpf.providers.syscall import SyscallProvider
from pydtrace.engines.ebpf.providers.usdt import UsdtProvider

PROVIDERS: dict[str, EbpfProvider] = {
    p.name: p
    for p in (
        DtraceProvider(),
        ProfileProvider(),
        SyscallProvider(),  # its raw syscall groups come before pid's uprobe groups
        SdtProvider(),
        IoProvider(),
        ProcProvider(),
        SchedProvider(),
        PidProvider(),
        UsdtProvider(),
    )
}
SUPPORTED = frozenset(PROVIDERS)  # the probe kinds the eBPF engine can fire
_NONE = EbpfProvider()  # a kind the engine does not know: attach() says so

# builtin variables the firing probe's provider supplies (EbpfProvider.builtin)
BUILTINS = frozenset({"args", "curpsinfo", "curlwpsinfo", "curcpu"})


def provider_of(probe: Any) -> EbpfProvider:
    return PROVIDERS.get(probe.kind, _NONE)


def builtin(cg: Any, name: str, t: Any) -> Any:
    """The value of one of BUILTINS in the program being generated."""
    return provider_of(cg.probe).builtin(cg, name, t)
