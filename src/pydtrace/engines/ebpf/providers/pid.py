"""pid<N>:module:function:entry|return|<offset> on the eBPF engine: uprobe
programs (uprobe.py) whose arguments are the function's registers:
  entry:  rdi rsi rdx rcx r8 r9, then the stack (x86-64 SysV; *(sp + 8) is arg6);
  return: arg0 = 0, arg1 = rax (as dtrace-utils: a uretprobe cannot know the
          returning instruction's offset).
A file's entry probes (or its return probes, or its instruction probes), 16
or more, share one program on one uprobe_multi link (groups()).
"""

from __future__ import annotations

from pydtrace.engines.ebpf.cg_context import MAX_ARGS, RAW_SYSCALL_MIN
from pydtrace.engines.ebpf.insn import R0, R1, R3, R6, R9
from pydtrace.engines.ebpf.providers import uprobe
from pydtrace.engines.ebpf.providers.groups import merged_clauses
from pydtrace.engines.ebpf.providers.uprobe import PROG_KPROBE, PT_REGS, UprobeProvider

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ENTRY_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")


class PidProvider(UprobeProvider):
    name = "pid"

    def args(self, cg: Any, probe: Any) -> None:
        uprobe.process_filter(cg, probe)
        if not cg.wants_args:
            return
        a = cg.a
        fa = cg.f_args
        if probe.data.ret:
            a.ldx(8, R1, R6, PT_REGS["rax"])
            a.stx(8, R9, fa + 8, R1)
            return
        for i, r in enumerate(ENTRY_REGS):
            a.ldx(8, R1, R6, PT_REGS[r])
            a.stx(8, R9, fa + 8 * i, R1)
        for i in range(len(ENTRY_REGS), MAX_ARGS):  # above the return address
            a.ldx(8, R3, R6, PT_REGS["rsp"])
            a.alu("+", R3, imm=8 * (i - len(ENTRY_REGS) + 1))
            uprobe.read_user(cg, fa + 8 * i, 8)

    def groups(self, cg: Any, by_probe: dict[int, list[Any]]) -> dict[str, Any]:
        """`u<k>` -> (probes, merged clauses, masks) for the entry or the return
        probes of one file (`pid$target:libc.so.6::entry`), `i<k>` for its
        instruction probes (their probename is in the map too): one program and
        one uprobe_multi link for them all, the attach cookie of each offset
        indexing its probe in the group's map (as raw syscall groups do with the
        syscall number). Needs uprobe_multi links (6.6)."""
        from pydtrace.engines.ebpf.features import has_uprobe_multi

        buckets: dict[tuple, list[Any]] = {}
        for pid in sorted(by_probe):
            p = cg.out.probes[pid]
            s = p.data
            if p.kind == "pid":
                # entry, return, or instructions (`i` groups: probename from the map too)
                kind = p.name if p.name in ("entry", "return") else ""
                key = (p.provider, p.module, kind, s.path, s.ret, s.pid, s.held)
                buckets.setdefault(key, []).append(p)
        out: dict[str, Any] = {}
        for key, probes in buckets.items():
            served = merged_clauses(probes, by_probe)
            if len(probes) < RAW_SYSCALL_MIN or served is None or not has_uprobe_multi():
                continue
            out[f"{'u' if key[2] else 'i'}{len(out)}"] = (probes, *served)
        return out

    def group_attach(self, group: Any) -> tuple[int, tuple[Any, ...]]:
        """One uprobe_multi link: every probe's offset, with its index in the
        group as the cookie."""
        probes = group[1]
        s = probes[0].data
        offsets = [p.data.offset for p in probes]
        return PROG_KPROBE, ("uprobe_multi", s.path, offsets, s.ret, s.pid,
                             list(range(len(probes))))  # fmt: skip

    def group_prologue(self, cg: Any, group: Any, done: str) -> None:
        """The attach cookie (the probe's index in the group) finds its probe
        id and clause mask in the group's map."""
        a = cg.a
        a.mov(R1, 6)
        a.call("get_attach_cookie")
        a.mov(R1, R0)
        cg.group_entry("sys_" + group[0], done)

    def group_map(self, cg: Any, name: str, probes: list[Any]) -> tuple[list[int], int, int]:
        # keyed by the attach cookie; an instruction group keeps probename too
        return list(range(len(probes))), len(probes), 2 if name[0] == "i" else 1
