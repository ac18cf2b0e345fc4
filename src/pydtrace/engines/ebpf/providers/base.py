"""EbpfProvider: how the eBPF engine fires one provider's probes.

The code generator (cg_program) asks the provider of each program's probe,
found in the table of engines/ebpf/providers/__init__.py, at these points;
every hook but attach() does nothing by default:

    compile():  groups()      probes served by one shared program (raw syscalls, uprobe_multi)
                prepare()     whole-program checks and globals, once the programs are known
                group_map()   the dispatch map of a shared program
                finish()      programs and maps of its own
    program():  attach() / group_attach()   program type and attachment
                args()        arg0..arg9 and errno from the program's context
                group_prologue()            a shared program: which probe fired
                prologue()    arguments in a memory area (after the frame's areas are zeroed)
                select()      (psinfo providers) filter the firing, fill psinfo_t arguments
    cg_expr:    builtin()     `args`, curpsinfo, curlwpsinfo, curcpu
"""

from __future__ import annotations

from pydtrace.engines.ebpf import psinfo
from pydtrace.engines.ebpf.errors import LoweringError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    # a program serving many probes: (name, probes, {probe id: clause mask}), as
    # cg_program keeps it; groups() gives name -> (probes, merged clauses, masks)
    Group = tuple[str, list[Any], dict[int, int]]


class EbpfProvider:
    name = ""
    # its probes' arguments are psinfo_t / lwpsinfo_t structures: psinfo.prologue
    # sets up the area for every firing and calls select()
    psinfo = False

    def attach(self, probe: Any) -> tuple[int, tuple[Any, ...]]:
        """(BPF program type, attachment: a tuple engines/ebpf/attach.py opens)."""
        raise LoweringError(f"the eBPF engine cannot attach {probe.provider} probes yet")

    def args(self, cg: Any, probe: Any) -> None:
        """Fill arg0..arg9 (zeroed when cg.wants_args) and errno from the context (r6)."""

    def prologue(self, cg: Any, probe: Any, clauses: list[Any]) -> None:
        """After this-> variables and memory areas are zeroed: arguments kept in
        a memory area (cg_memory's regions)."""

    def select(self, cg: Any, probe: Any, area: Any, skip: str, clauses: list[Any]) -> None:
        """psinfo providers: jump to skip for a firing that is not the probe's,
        fill the psinfo area (`area`) and the arguments pointing into it."""

    def filtered(self, probe: Any) -> bool:
        """Whether select() may jump to skip for this probe."""
        return False

    def args_area(self, probe: Any) -> int:
        """Bytes of the tracepoint argument area (tracepoint_area.py) its probe needs."""
        return 0

    def builtin(self, cg: Any, name: str, t: Any) -> Any:
        """The value of a builtin variable this provider supplies (see BUILTINS)."""
        if name == "args":
            raise cg.unsupported("args outside an sdt probe", None)
        return psinfo.builtin(cg, name, t)  # curpsinfo, curlwpsinfo, curcpu: every probe

    def groups(self, cg: Any, by_probe: dict[int, list[Any]]) -> dict[str, Any]:
        """name -> (probes, merged clauses, masks) for probes one program serves."""
        return {}

    def group_attach(self, group: Group) -> tuple[int, tuple[Any, ...]]:
        raise LoweringError(f"the eBPF engine cannot share programs of {self.name} probes")

    def group_prologue(self, cg: Any, group: Group, done: str) -> None:
        """A shared program: the firing probe's id and clause mask into the frame."""

    def group_map(self, cg: Any, name: str, probes: list[Any]) -> tuple[list[int], int, int]:
        """Of a group's dispatch map: each probe's key, the entries, and the
        names each entry keeps (1: probefunc; 2: probefunc and probename)."""
        raise LoweringError(f"the eBPF engine cannot share programs of {self.name} probes")

    def prepare(self, cg: Any, progs: list[tuple[Any, list[Any], Any]]) -> None:
        """Once the programs (probe, clauses, group) are known, before any is generated."""

    def finish(self, cg: Any, out: Any) -> None:
        """After every program is generated: programs and maps of its own (Compiled out)."""
