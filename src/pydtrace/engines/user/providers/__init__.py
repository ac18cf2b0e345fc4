"""How the user-space engine fires each provider, found through PROVIDERS by
a probe's kind (Probe.kind).

How to add a provider
---------------------
1. Its catalogue side first (probes/providers/__init__.py says how).
2. Write engines/user/providers/<name>.py: a UserProvider subclass (base.py).
   A provider fired from the events of ptrace targets sets `traced` and, in
   enable(), registers a probe with the Sink (engines/user/ptrace/source.py),
   which fires it; one fired by the engine's clock gives timer().
3. Put an instance in PROVIDERS below; the session asks SUPPORTED and
   UNTRACED which engine can run a program.
"""

from __future__ import annotations

from pydtrace.engines.user.providers.base import UserProvider
from pydtrace.engines.user.providers.dtrace import DtraceProvider
from pydtrace.engines.user.providers.proc import ProcProvider
from pydtrace.engines.user.providers.profile import ProfileProvider
from pydtrace.engines.user.providers.syscall import SyscallProvider

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROVIDERS: dict[str, UserProvider] = {
    p.name: p for p in (DtraceProvider(), ProfileProvider(), SyscallProvider(), ProcProvider())
}
SUPPORTED = frozenset(PROVIDERS)  # the probe kinds the user-space engine can fire
UNTRACED = frozenset(n for n, p in PROVIDERS.items() if not p.traced)  # without -c/-p
_NONE = UserProvider()


def provider_of(probe: Any) -> UserProvider:
    return PROVIDERS.get(probe.kind, _NONE)
