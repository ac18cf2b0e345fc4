"""The dtrace provider: BEGIN, END and ERROR, with empty module and function.

They are enumerated first so that they get ids 1, 2 and 3 as in dtrace.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydtrace.probes.catalogue import PROVIDER_ATTRIBUTES, ProbeTuple, Provider

BEGIN_ID, END_ID, ERROR_ID = 1, 2, 3


class DtraceProvider(Provider):
    name = "dtrace"
    attributes = PROVIDER_ATTRIBUTES["dtrace"]

    def probes(self) -> Iterable[ProbeTuple]:
        for n in ("BEGIN", "END", "ERROR"):
            yield ("", "", n, ())
