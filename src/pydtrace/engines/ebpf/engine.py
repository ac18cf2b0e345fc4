"""The eBPF engine: runs a checked program in the kernel.

Compile (codegen) -> create the maps -> load one program per probe -> run
BEGIN (PROG_TEST_RUN) -> attach -> read the ring buffer until exit(), Ctrl-C
or stop() -> detach -> drain -> run END -> drain -> report drops -> the
consumer's finish(). Aggregations live in per-CPU hash maps; before each
printa (and at the end) their values are read and merged into the
consumer's Aggregation objects. Every fd is closed on every path.
"""

from __future__ import annotations

import struct
import threading
from typing import Any

from pydtrace.consume.aggregation import Aggregation
from pydtrace.consume.records import Fault, Record
from pydtrace.engines.ebpf import codegen
from pydtrace.engines.ebpf import layout as L
from pydtrace.engines.ebpf.errors import EbpfError
from pydtrace.lang.program import CheckedProgram

AGG_ITEMS = ("printa", "clear", "trunc", "normalize", "denormalize")


class EbpfEngine:
    def __init__(
        self,
        prog: CheckedProgram,
        consumer: Any,
        options: dict[str, Any],
        targets: Any = None,
    ) -> None:
        self.prog = prog
        self.targets = targets  # -c/-p: .release() .fds() .gone(fd) .live (see docs/ebpf-engine.md)
        self.released = False
        self.consumer = consumer
        self.options = options
        self.tracer = None  # read by the signal handler
        self.compiled = codegen.compile_program(prog, options)  # LoweringError
        self.aggs: dict[str, Aggregation] = {
            name: Aggregation(lay.spec) for name, lay in self.compiled.aggs.items()
        }
        consumer.aggs = self.aggs
        self.stopping = threading.Event()
        self.attached = threading.Event()  # set once every probe is attached (tests wait on it)
        self.draining = False
        self.maps: dict[str, Any] = {}
        self.prog_fds: dict[str, int] = {}
        self.attachments: list[Any] = []
        self.ring: Any = None
        self.reported: dict[tuple[int, int], int] = {}  # (counter, cpu) -> drops reported

    # --- loading -------------------------------------------------------------------------
    def _open(self) -> None:
        from pydtrace.engines.ebpf.bpf import BPFError, VerifierError, prog_load
        from pydtrace.engines.ebpf.insn import encode
        from pydtrace.engines.ebpf.maps import Map
        from pydtrace.engines.ebpf.ringbuf import RingBuffer

        try:
            for m in self.compiled.maps:
                self.maps[m.name] = Map.create(m.type, m.key_size, m.value_size, m.max_entries,
                                               m.flags, name=m.name)  # fmt: skip
            for name, entries in self.compiled.fills.items():
                m = self.maps[name]
                for key, value in entries:
                    m.update(key, value.ljust(m.value_size, b"\0"))
        except BPFError as e:
            raise EbpfError(str(e)) from None
        fds = {name: m.fd for name, m in self.maps.items()}
        for p in self.compiled.progs:
            try:
                self.prog_fds[p.name] = prog_load(
                    p.prog_type, encode(p.insns, fds), name=p.name,
                    log_level=1 if self.options.get("bpflog") else 0,
                )  # fmt: skip
            except VerifierError as e:
                raise EbpfError(self._verifier_message(p, e)) from None
            except BPFError as e:
                raise EbpfError(str(e)) from None
        try:
            self.ring = RingBuffer(self.maps["records"].fd)
        except OSError as e:
            raise EbpfError(f"cannot map the ring buffer: {e}") from None

    def _verifier_message(self, p: codegen.ProgSpec, e: Any) -> str:
        where = ""
        if e.insn is not None:
            origin = _origin_at(p.insns, e.insn)
            if isinstance(origin, tuple) and origin[0] == "clause":
                where = f" in clause dt_clause_{origin[1]} at line {origin[2]}"
        text = f"the BPF verifier rejected the program for {p.probe.fqn}{where}: {e.summary}"
        if self.options.get("bpflog") or self.options.get("verbose"):
            text += "\n" + e.log
        return text

    def _attach(self) -> None:
        from pydtrace.engines.ebpf import perf
        from pydtrace.probes import tracefs

        missing: list[str] = []
        tracepoints = 0
        for p in self.compiled.progs:
            kind = p.attach[0]
            fd = self.prog_fds[p.name]
            try:
                if kind == "tracepoint":
                    tracepoints += 1
                    try:
                        self.attachments.append(
                            perf.attach_tracepoint(fd, p.attach[1], p.attach[2])
                        )
                    except tracefs.NoSuchEvent as e:
                        # a syscall this kernel does not trace (uselib...): it never fires
                        missing.append(str(e))
                elif kind == "raw_tp":
                    self.attachments.append(perf.attach_raw_tracepoint(fd, p.attach[1]))
                elif kind == "timer":
                    period, every = p.attach[1], p.attach[2]
                    if every:
                        self.attachments.extend(perf.open_clocks(fd, period))
                    else:
                        from pydtrace.engines.ebpf.maps import online_cpus

                        self.attachments.append(perf.open_clock(fd, period, online_cpus()[0]))
            except (OSError, tracefs.TracefsError) as e:
                raise EbpfError(str(e)) from None
        if missing and len(missing) == tracepoints and len(self.attachments) == 0:
            raise EbpfError(missing[0])

    def close(self) -> None:
        """Release everything: attachments, the ring mapping, programs, maps."""
        from pydtrace.engines.ebpf.bpf import close_fd

        for a in self.attachments:
            a.close()
        self.attachments = []
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        for fd in self.prog_fds.values():
            close_fd(fd)
        self.prog_fds = {}
        for m in self.maps.values():
            m.close()
        self.maps = {}

    # --- the session -----------------------------------------------------------------
    def run(self) -> None:
        try:
            self._open()
            self._run_named("BEGIN")
            self.drain()
            if not self.draining and not self.stopping.is_set():
                self._attach()
                self.attached.set()
                self._release()
                self._loop()
            for a in self.attachments:
                a.close()
            self.attachments = []
            self.drain()
            self._run_named("END", end=True)
            self.drain()
            self.report_drops()
            self.snapshot()
            self.consumer.finish()
        finally:
            self._release()  # never leave a -c child stopped
            self.close()

    def _release(self) -> None:
        if self.targets is not None and not self.released:
            self.released = True
            self.targets.release()

    def _run_named(self, name: str, end: bool = False) -> None:
        from pydtrace.engines.ebpf.bpf import BPFError, prog_test_run

        for p in self.compiled.progs:
            if p.attach == ("run", name):
                if end:  # END's clauses run even after exit(): clear the draining word only
                    g = self.maps["globals"]
                    value = g.lookup(0) or bytes(g.value_size)
                    g.update(0, bytes(8) + value[8:])
                try:
                    prog_test_run(self.prog_fds[p.name], ctx=bytes(8))
                except BPFError as e:
                    raise EbpfError(f"cannot run {name}: {e}") from None

    def _loop(self) -> None:
        import select

        ring_fd = self.ring.fileno()
        while not self.draining and not self.stopping.is_set():
            poller = select.poll()
            poller.register(ring_fd, select.POLLIN)
            watched = list(self.targets.fds()) if self.targets is not None else []
            for fd in watched:
                poller.register(fd, select.POLLIN)
            try:
                ready = poller.poll(100)
            except InterruptedError:
                ready = []
            self.drain()
            self.report_drops()
            for fd, _ in ready:
                if fd != ring_fd and fd in watched:
                    self.targets.gone(fd)
            if self.targets is not None and self.targets.live <= 0:
                self.drain()
                break

    def stop(self) -> None:
        """Ctrl-C: END still runs."""
        self.stopping.set()

    # --- records -------------------------------------------------------------------------
    def drain(self) -> None:
        if self.ring is None:
            return
        bufs: list[bytes] = []
        self.ring.drain(lambda mv: bufs.append(bytes(mv)))
        for buf in bufs:
            self.handle(buf)

    def handle(self, buf: bytes) -> None:
        kind, pid, clause, cpu = struct.unpack_from("<IIII", buf, 0)
        probe = self.compiled.probes.get(pid)
        if kind == L.REC_FAULT:
            pc, code, value = struct.unpack_from("<QQq", buf, 16)
            self.consumer.fault(Fault(probe, cpu, clause, pc, code, value))
            return
        lay = self.compiled.records.get(clause)
        if lay is None or probe is None:
            return
        items = lay.decode(buf)
        touched = [it for it in items if it[0] in AGG_ITEMS]
        if touched:
            self.snapshot()
        self.consumer.record(Record(probe, cpu, clause, items))
        for it in touched:
            if it[0] == "clear":
                self._kernel_clear(it[1])
            elif it[0] == "trunc":
                self._kernel_trunc(it[1])
        if any(it[0] == "exit" for it in items):
            self.draining = True

    # --- aggregations ---------------------------------------------------------------------
    def snapshot(self) -> None:
        """Read every aggregation map and merge the CPUs into the consumer's objects."""
        for name, lay in self.compiled.aggs.items():
            m = self.maps.get(lay.map_name)
            if m is None:
                continue
            agg = self.aggs[name]
            data: dict[tuple, Any] = {}
            percpu: dict[tuple, dict[int, Any]] = {}
            for raw_key, values in m.items():
                key = lay.decode_key(raw_key)
                states = {}
                for cpu, raw in enumerate(values):
                    n, state = lay.decode_value(raw)
                    if n:
                        states[cpu] = state
                data[key] = lay.merge(list(states.values())) if states else agg._initial()
                percpu[key] = states
            agg.data = data
            agg.percpu = percpu

    def _kernel_clear(self, name: str) -> None:
        lay = self.compiled.aggs[name]
        m = self.maps[lay.map_name]
        zero = bytes(lay.value_size)
        for key in m.keys():
            try:
                m.update(key, _per_cpu(m, zero))
            except OSError:
                pass

    def _kernel_trunc(self, name: str) -> None:
        lay = self.compiled.aggs[name]
        m = self.maps[lay.map_name]
        keep = set(self.aggs[name].data)
        for key in m.keys():
            if lay.decode_key(key) not in keep:
                m.delete(key)

    # --- drops ---------------------------------------------------------------------------
    def report_drops(self) -> None:
        m = self.maps.get("drops")
        if m is None:
            return
        values = m.lookup(0) or []
        for cpu, raw in enumerate(values):
            words = struct.unpack_from("<4Q", raw, 0)
            for which, kind in ((codegen.DROP_RING, "DTRACEDROP_PRINCIPAL"),
                                (codegen.DROP_AGG, "DTRACEDROP_AGGREGATION"),
                                (codegen.DROP_DYN, "DTRACEDROP_DYNAMIC"),
                                (codegen.DROP_DBLERROR, "DTRACEDROP_DBLERROR")):  # fmt: skip
                new = words[which] - self.reported.get((which, cpu), 0)
                if new > 0:
                    self.reported[(which, cpu)] = words[which]
                    self.consumer.drop(kind, new, cpu)


def _per_cpu(m: Any, value: bytes) -> list[bytes]:
    from pydtrace.engines.ebpf.maps import possible_cpus

    return [value] * len(possible_cpus())


def _origin_at(insns: list[Any], slot: int) -> Any:
    at = 0
    for i in insns:
        if at <= slot < at + i.slots:
            return i.origin
        at += i.slots
    return None


def disassemble(prog: CheckedProgram, options: dict[str, Any]) -> str:
    """`-S`: the BPF programs the engine would load for this program."""
    return codegen.disassemble_program(codegen.compile_program(prog, options))
