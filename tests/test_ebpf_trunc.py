"""trunc() and clear() on the eBPF engine lose no event: one that comes
between the snapshot a printa() shows and the truncation (or the zeroing) is
counted in the next table (engines/ebpf/engine.py, EbpfEngine._take)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from conftest import bpf_maps_ok, compile_c, need
from pydtrace.session import Program, Session

# Five getppid() calls, from a program whose name no other process has;
# then, run as `trunc_calls last`, a getpgid() that ends the trace.
CALLS = """
    #include <unistd.h>
    int main(int argc, char **argv) {
        for (int i = 0; i < 5; i++)
            getppid();
        if (argc > 1)
            getpgid(0);
        return 0;
    }
"""

# system() (destructive: -w) runs between the printa() and the trunc() of
# each table, as the consumer acts on the record: its calls come after the
# table's snapshot. The trace ends at the last run's getpgid(), after its
# getppid() calls (a tick's exit() could come before a slow consumer has
# run the last system(): calls after exit() fire nothing, as in dtrace).
PROGRAM = """
syscall::getppid:entry /execname == "trunc_calls"/ { @n = count(); }
syscall::getpgid:entry /execname == "trunc_calls"/ { exit(0); }
tick-100ms /i < 4/ {
    i++;
    printa("n=%@d\\n", @n);
    system("CALLS%s", i == 4 ? " last" : "");
    ACTION(@n);
}
END { printa("end=%@d\\n", @n); }
"""


@pytest.mark.parametrize("action", ["trunc", "clear"])
def test_events_between_a_printa_and_its_trunc_are_counted_in_the_next_table(
    tmp_path: Path, action: str
) -> None:
    # the first table has nothing yet; each later one, and END's, the five calls
    # made while the one before it was printed
    assert _tables(tmp_path, PROGRAM, action) == ["n=5", "n=5", "n=5", "end=5"]


def _tables(tmp_path: Path, program: str, action: str) -> list[str]:
    """The counts the program's tables print, run with ACTION as trunc or clear."""
    need(bpf_maps_ok(), "needs root and bpf(2)")
    exe = compile_c(tmp_path, "trunc_calls", CALLS)
    out, err = open(tmp_path / "out", "w+"), io.StringIO()  # system() writes to a file
    s = Session([Program("n", program.replace("CALLS", exe).replace("ACTION", action))],
                settings=[("engine", "ebpf"), ("quiet", None), ("destructive", None)], out=out, err=err, testing=True)  # fmt: skip
    with out:
        s.compile()
        assert s.run() == 0, err.getvalue()
        out.seek(0)
        return re.findall(r"(?:n|end)=\d+", out.read())


# The same, with the trunc() (or clear()) in a clause of its own: a record
# of its own, after the printa()'s, in the same firing.
OTHER_CLAUSE = """
syscall::getppid:entry /execname == "trunc_calls"/ { @n = count(); }
syscall::getpgid:entry /execname == "trunc_calls"/ { exit(0); }
tick-100ms /i < 4/ {
    i++;
    t = 1;
    printa("n=%@d\\n", @n);
    system("CALLS%s", i == 4 ? " last" : "");
}
tick-100ms /t/ { t = 0; ACTION(@n); }
END { printa("end=%@d\\n", @n); }
"""


@pytest.mark.parametrize("action", ["trunc", "clear"])
def test_events_after_a_printa_survive_a_trunc_in_another_clause(
    tmp_path: Path, action: str
) -> None:
    """dtrace's trunc() and clear() act on the tables the consumer has
    snapshotted; what came after the printa()'s snapshot is in the kernel's
    buffers still, and shows in the next table."""
    assert _tables(tmp_path, OTHER_CLAUSE, action) == ["n=5", "n=5", "n=5", "end=5"]
