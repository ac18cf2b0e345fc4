"""profile: CPU samples by user and kernel stack (BCC's profile; profile.d)."""

from __future__ import annotations

import re

from pydtrace.tools import options as O
from pydtrace.tools.stackreport import (
    COMMAND,
    DELIMITED,
    FOLDED,
    KERNEL_ONLY,
    SVG,
    USER_ONLY,
    StackTool,
)  # fmt: skip


def hertz(text: str) -> int:
    n = O.positive_int(text)
    if n > 10000:
        raise ValueError("at most 10000 Hz")
    return n


FREQUENCY = O.Opt("F", "frequency", "frequency", "sample at this many Hz on every CPU (default 49)", "HZ", hertz, 49)  # fmt: skip
IDLE = O.Opt("I", "include-idle", "idle", "count the idle threads too (pid 0)")
PID = O.Opt("p", "pid", "pid", "profile this process only", "PID", O.pid_value)


class Profile(StackTool):
    name = "profile"
    script_file = "profile.d"
    summary = (
        "Sample the stacks running on every CPU at -F Hz (BCC's profile): counts per process "
        "and user + kernel stack, for duration seconds or until Ctrl-C; folded stacks "
        "(-f) or a flame graph (--svg FILE)."
    )
    options = (PID, FREQUENCY, IDLE, USER_ONLY, KERNEL_ONLY, DELIMITED, FOLDED, SVG, COMMAND,
               O.JSON, *O.TAIL)  # fmt: skip
    kernel_only = True
    examples = (
        (
            "profile -F 99 10",
            "Sample every CPU 99 times a second for ten seconds; print the stacks.",
        ),
        (
            "profile -f -p 1234 5 > out.folded",
            "Folded stacks of process 1234, for flame graph tools.",
        ),
        ("profile --svg flame.svg -- make", "A flame graph of make and its children."),
    )
    countname = "samples"

    @property
    def what(self) -> str:  # type: ignore[override]
        return f"Sampling at {self.o.frequency} Hertz"

    def inline_values(self) -> dict[str, str]:
        return {**super().inline_values(), "IDLE": "1" if self.o.idle else "0",
                **self.stacks_inlines()}  # fmt: skip

    def script(self) -> str:
        text = super().script()
        hz = self.o.frequency
        text = re.sub(r"\bprofile:::profile-49\b", f"profile:::profile-{hz}", text)
        return text.replace("Sampling at 49 Hertz", f"Sampling at {hz} Hertz")

    def extra_clauses(self) -> str:
        return self.duration_clause()

    def svg_title(self) -> str:
        return "CPU samples (profile)"


TOOL = Profile
