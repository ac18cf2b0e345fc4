"""The providers of the catalogue, one module each, and the table of them.

How to add a provider
---------------------
1. Write probes/providers/<name>.py: a `Provider` subclass (probes/catalogue.py)
   with its name, its stability attributes, and its probes: listed up front
   (`probes()`), made for a description (`create()`), or all made on demand
   (`expand()`), each a tuple (module, function, name, argument types, data).
   `data` is whatever the engines need to fire the probe.
2. Put the class in PROVIDERS below. The order is dtrace's: probe ids are
   handed out in it, so a new provider goes last.
3. Teach each engine that can fire it: engines/ebpf/providers/ and
   engines/user/providers/ (their docstrings say how).
A per-process provider (named `<name><pid>`, like pid and usdt) is made by
add_process_providers() instead of being listed in PROVIDERS.
"""

from __future__ import annotations

from pydtrace.probes.catalogue import Catalogue, Provider
from pydtrace.probes.providers.dtrace import DtraceProvider
from pydtrace.probes.providers.io import IoProvider
from pydtrace.probes.providers.proc import ProcProvider
from pydtrace.probes.providers.profile import ProfileProvider
from pydtrace.probes.providers.sched import SchedProvider
from pydtrace.probes.providers.sdt import SdtProvider
from pydtrace.probes.providers.syscall import SyscallProvider

# Every catalogue's providers, in the order their probes get ids (BEGIN=1,
# END=2, ERROR=3, as in dtrace).
PROVIDERS: tuple[type[Provider], ...] = (
    DtraceProvider,
    ProfileProvider,
    SyscallProvider,  # no probes on a machine without a syscall table
    SdtProvider,  # the providers from here on make their probes on demand
    IoProvider,
    ProcProvider,
    SchedProvider,
)


def add_process_providers(cat: Catalogue, provider: str) -> None:
    """Add pid<N> and the usdt providers of process N to the catalogue, once."""
    # imported here: ELF reading costs every run's start-up, and few name a process
    from pydtrace.probes.process import process_id, process_objects, traceable
    from pydtrace.probes.providers.pid import PidProvider
    from pydtrace.probes.providers.usdt import usdt_providers

    pid = process_id(provider)
    if pid is None or f"pid{pid}" in cat.providers:
        return
    argv = cat.held.get(pid)  # a -c child held before exec
    if not traceable(pid, provider, argv is not None):
        return
    objs = process_objects(pid, argv)
    cat.add_provider(PidProvider(pid, objs, argv is not None))
    for p in usdt_providers(pid, objs, argv is not None):
        cat.add_provider(p)


def default_catalogue() -> Catalogue:
    """Every provider of PROVIDERS, and the per-process ones when named."""
    return Catalogue([p() for p in PROVIDERS], add_process_providers)
