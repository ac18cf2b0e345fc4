"""profile:::profile-N and tick-N: timers of the user-space engine's loop,
interrupting this process (arg0 = 0, arg1 = its user pc)."""

from __future__ import annotations

from pydtrace.engines.user.providers.base import UserProvider
from pydtrace.probes.providers.profile import profile_period_ns

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class ProfileProvider(UserProvider):
    name = "profile"

    def timer(self, probe: Any) -> tuple[int, bool] | None:
        kp = profile_period_ns(probe.name)
        if kp is None:
            return None
        kind, period = kp
        return period, kind == "profile"
