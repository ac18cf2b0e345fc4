"""The eBPF engine: runs a checked program in the kernel.

Compile (codegen) -> create the maps -> load one program per probe -> run
BEGIN (PROG_TEST_RUN) -> attach -> read the ring buffer until exit(), Ctrl-C
or stop() -> detach -> drain -> run END -> drain -> report drops -> the
consumer's finish(). Aggregations live in per-CPU hash maps; before each
printa (and at the end) their values are read and merged into the
consumer's Aggregation objects. Every fd is closed on every path.
"""

from __future__ import annotations

import errno
import struct
import sys
import threading
import time

from pydtrace.consume.aggregation import Aggregation
from pydtrace.consume.records import Fault, Record
from pydtrace.engines.ebpf import cg_context
from pydtrace.engines.ebpf import layout as L
from pydtrace.engines.ebpf.attach import OPENERS, UPROBE_KINDS
from pydtrace.engines.ebpf.bpf import BPF_NOEXIST
from pydtrace.engines.ebpf.errors import EbpfError
from pydtrace.engines.signals import StopFlag
from pydtrace.lang.program import CheckedProgram
from pydtrace.options import size_option

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_HEADER = struct.Struct("<IIIIQ")  # kind, probe id, clause, cpu, action mask
# Seconds between two drains while records flow (next_gap), unless switchrate
# is set: output comes at most DRAIN_GAP_MAX late (dtrace's default switchrate
# is 1 s), for a pass of the loop per batch rather than per record, and sooner
# (not before DRAIN_GAP) when a batch at the rate just seen would pass
# DRAIN_BATCH records (what a Ctrl-C then still prints) or a quarter of the ring.
DRAIN_GAP = 0.005
DRAIN_GAP_MAX = 0.05
DRAIN_BATCH = 128


def next_gap(records: int, nbytes: int, interval: float, ring_size: int) -> float:
    """The wait before the next drain, after one that took `records` records
    (`nbytes` bytes) that came in over `interval` seconds."""
    gap = DRAIN_GAP_MAX
    if records > 0:
        gap = min(gap, interval * DRAIN_BATCH / records)
    if nbytes > 0:
        gap = min(gap, interval * (ring_size / 4) / nbytes)
    return max(gap, DRAIN_GAP)


class EbpfEngine:
    def __init__(
        self,
        prog: CheckedProgram,
        consumer: Any,
        options: dict[str, Any],
        targets: Any = None,
        ring_ahead: Any = None,
        kept: tuple[Any, bool] | None = None,
        load_ahead: Any = None,
    ) -> None:
        """kept: (Compiled, ustack_keys) of a kept compile (program_cache.py):
        prog is then the session's stub, and nothing is compiled; load_ahead:
        the loader.LoadAhead loading it already."""
        self.prog = prog
        self.ring_ahead = ring_ahead  # maps.RingAhead: the ring, made while this compiles
        self.load_ahead = load_ahead  # loader.LoadAhead: the maps and programs, made already
        self.targets = (
            targets  # -c/-p: .release() .fds() .gone(fd) .live (see docs/internals/ebpf-engine.md)
        )
        self.released = False
        self.consumer = consumer
        self.options = options
        self.tracer = None  # read by the signal handler
        if kept is not None:
            self.compiled, self.ustack_keys = kept
        else:
            from pydtrace.engines.ebpf import codegen
            from pydtrace.engines.ebpf.cg_stack import calls_ustack

            try:
                self.compiled = codegen.compile_program(prog, options, held_pids(targets))
            except BaseException:  # LoweringError...: no engine to close it later
                if ring_ahead is not None:
                    ring_ahead.close()
                raise
            # -c/-p targets' mappings are read again while they run: user stacks
            # resolve through them after the process has exited
            self.ustack_keys = calls_ustack([[c.predicate, *c.body] for c in prog.clauses])
        self.aggs: dict[str, Aggregation] = {
            name: Aggregation(lay.spec) for name, lay in self.compiled.aggs.items()
        }
        consumer.aggs = self.aggs
        self._mmaps: Any = None  # every process's mappings, as the kernel makes them (mmaps.py)
        self.stopping = StopFlag()  # set by the Ctrl-C handler: no lock (signals.py)
        self.attached = threading.Event()  # set once every probe is attached (tests wait on it)
        self.draining = False
        self.maps: dict[str, Any] = {}
        self.prog_fds: dict[str, int] = {}
        self.attachments: list[Any] = []
        self.agent: Any = None  # uprobe_agent.UprobeAgent: holds the uprobes
        self.ring: Any = None
        self.reported: dict[tuple[int, int], int] = {}  # (counter, cpu) -> drops reported
        # speculations: id -> records (probe, cpu, clause, layout, items) kept until commit
        self.spec_bufs: dict[int, list[tuple]] = {}
        self.specsize = size_option(options, "specsize", 4 << 20)
        self.spec_size_drops = 0
        self.spec_reported = (0, 0)  # (DTRACEDROP_SPEC, DTRACEDROP_SPECUNAVAIL) reported
        self.short_records = self.short_reported = 0  # records too short to decode
        self.drained_bytes = 0  # what the last drain took from the ring (next_gap)
        # the fast path under -q: clause -> (mask, record -> its output text) for clauses
        # whose only actions are plain printfs; their texts wait in _texts until the
        # batch ends or a record that goes through the consumer comes
        self._fast: dict[int, tuple[int, Any]] = {}
        self._texts: list[str] = []
        # aggregation -> (when, its raw entries) as the last printa() of it
        # showed them (_take gives back what came after, for up to aggrate:
        # dtrace's snapshot period)
        self._shown: dict[str, tuple[int, dict[bytes, Any]]] = {}
        rate = options.get("aggrate")
        self._aggrate = rate if isinstance(rate, int) and rate > 0 else 1_000_000_000

    # --- loading -------------------------------------------------------------------------
    def _open(self) -> None:
        from pydtrace.engines.ebpf import loader
        from pydtrace.engines.ebpf.bpf import BPFError, VerifierError
        from pydtrace.engines.ebpf.ringbuf import RingBuffer

        if self.load_ahead is not None:
            loaded, self.load_ahead = self.load_ahead.take(), None
        else:
            loaded = loader.load(self.compiled, loader.log_level(self.options), self.ring_ahead)
        # whatever failed, every map and program made is the engine's to close
        self.maps.update(loaded.maps)
        self.prog_fds.update(loaded.prog_fds)
        failure = loaded.failure
        if isinstance(failure, tuple):
            p, got = failure
            if isinstance(got, VerifierError):
                raise EbpfError(self._verifier_message(p, got))
            if isinstance(got, BPFError):
                raise EbpfError(str(got))
            raise got
        if failure is not None:
            raise failure
        kallsyms = sys.modules.get("pydtrace.symbols.kallsyms")  # imported when read
        if kallsyms is not None and kallsyms.kernel_symbols.cache_info().currsize:
            # read while compiling: without our programs (module `bpf`, the
            # first frames of kernel stacks)
            kallsyms.kernel_symbols.cache_clear()
        try:
            self.ring = RingBuffer(self.maps["records"].fd)
        except OSError as e:
            raise EbpfError(f"cannot map the ring buffer: {e}") from None

    def _verifier_message(self, p: cg_context.ProgSpec, e: Any) -> str:
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
        """Attach every program: uprobes by the agent (uprobe_agent.py: no way of
        ending this process may leave one in the kernel), while the others
        attach here."""
        from pydtrace.probes import tracefs

        jobs = [(self.prog_fds[p.name], p.attach) for p in self.compiled.progs
                if p.attach[0] in UPROBE_KINDS]  # fmt: skip
        if jobs:  # (the agent's module only then: start-up stays light)
            from pydtrace.engines.ebpf.uprobe_agent import AgentError, UprobeAgent

            try:
                self.agent = UprobeAgent(jobs)
            except AgentError as e:
                raise EbpfError(str(e)) from None
        missing: list[str] = []
        tracepoints = 0
        for p in self.compiled.progs:
            if self.stopping.is_set():
                return  # Ctrl-C: a pid glob's thousands of uprobes take seconds
            opener = OPENERS.get(p.attach[0])
            if opener is None or p.attach[0] in UPROBE_KINDS:
                continue  # BEGIN and END (the engine runs them), or the agent's
            tracepoints += p.attach[0] == "tracepoint"
            try:
                self.attachments.extend(opener(self.prog_fds[p.name], p.attach))
            except tracefs.NoSuchEvent as e:
                # a syscall this kernel does not trace (uselib...): it never fires
                missing.append(str(e))
            except (OSError, tracefs.TracefsError) as e:
                raise EbpfError(str(e)) from None
        if missing and len(missing) == tracepoints and not self.attachments and not jobs:
            raise EbpfError(missing[0])
        if self.agent is not None:
            from pydtrace.engines.ebpf.uprobe_agent import AgentError

            try:
                self.agent.wait_attached(self.stopping)
            except AgentError as e:
                raise EbpfError(str(e)) from None

    def close(self) -> None:
        """Release everything: attachments, the ring mapping, programs, maps."""
        from pydtrace.engines.ebpf import loader

        if self.ring_ahead is not None:
            self.ring_ahead.close()
        if self.load_ahead is not None:
            self.load_ahead.close()
            self.load_ahead = None
        self._detach()
        if self._mmaps is not None:
            from pydtrace.engines.ebpf import mmaps

            mmaps.stop(self._mmaps)
            self._mmaps = None
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        loader.release(self.prog_fds, self.maps)
        self.stopping.close()

    # --- the session -----------------------------------------------------------------
    def run(self) -> None:
        try:
            self._open()
            if self.stopping.is_set():
                # Ctrl-C while loading: nothing ran yet; the CLI reports it (exit 1)
                raise KeyboardInterrupt
            self._fast = self._fast_paths()
            if self.ustack_keys:
                from pydtrace.engines.ebpf import maps, mmaps

                self._mmaps = mmaps.start(maps.online_cpus())
            self.started_ns = time.monotonic_ns()  # status checks count from here
            self._run_named("BEGIN")
            # BEGIN's records are consumed once the probes are enabled, as in dtrace: a
            # system() in BEGIN must see them (exit() in BEGIN is read from the globals)
            if not self._exit_called() and not self.stopping.is_set():
                # probes attach one at a time: no clause runs until all are attached,
                # as dtrace enables them at once (a syscall probe's raise() must not
                # beat the pid probe that the signal handler's call should fire)
                self._set_draining(1)
                self._attach()
                # Ctrl-C while attaching: no clause ran and a -c child never ran (the
                # session kills it unexecuted); END runs as after any Ctrl-C
                if not self.stopping.is_set():
                    self._set_draining(0)
                    self.attached.set()
                    self._release()
                    self.drain()
                    self._loop()
                    self._status_delay()
            elif self._exit_called():
                self._release()  # exit() in BEGIN: the command still runs, as dtrace continues it
            self._detach()
            self.drain()
            self._run_named("END", end=True)
            self.drain()
            self.report_drops(final=True)
            self.snapshot()
            self.consumer.finish()
        finally:
            # on a failure before the probes were enabled a -c child is not released:
            # the session's finish() kills it unexecuted, as dtrace does
            self.close()

    def _status_delay(self) -> None:
        """With statusrate set, dtrace notices exit() at its next status check
        (every statusrate from the start): wait until then, as it does."""
        rate = self.options.get("statusrate")
        if not self.draining or self.stopping.is_set() or not isinstance(rate, int) or rate <= 0:
            return
        since = time.monotonic_ns() - self.started_ns
        wait = (-since) % rate
        self.stopping.wait(wait / 1e9)

    def _detach(self) -> None:
        """Stop the probes' clauses (the draining word, which END's clauses do
        not test), then close their attachments without waiting for the
        kernel's teardown (perf.close_without_waiting)."""
        if not self.attachments and self.agent is None:
            return
        from pydtrace.engines.ebpf import perf

        self._set_draining(1)
        if self.agent is not None:
            self.agent.detach()  # its removals run while ours do
        perf.close_without_waiting(self.attachments)
        self.attachments = []
        if self.agent is not None:
            self.agent.close()  # the uprobes are gone from the kernel
            self.agent = None

    def _set_draining(self, on: int) -> None:
        """The globals' first word, which every clause but END's tests first."""
        g = self.maps.get("globals")
        try:
            if g is not None:
                value = g.lookup(0) or bytes(g.value_size)
                g.update(0, on.to_bytes(8, "little") + value[8:])
        except OSError:
            pass

    def _exit_called(self) -> bool:
        """The draining word exit() sets in the globals map."""
        g = self.maps.get("globals")
        value = g.lookup(0) if g is not None else None
        return bool(value) and any(value[:8])

    def _release(self) -> None:
        if self.targets is not None and not self.released:
            self.released = True
            self.targets.release()

    def _run_named(self, name: str, end: bool = False) -> None:
        from pydtrace.engines.ebpf.bpf import BPFError, prog_test_run

        for p in self.compiled.progs:
            if p.attach == ("run", name):
                try:
                    prog_test_run(self.prog_fds[p.name], ctx=bytes(8))
                except BPFError as e:
                    raise EbpfError(f"cannot run {name}: {e}") from None

    def _loop(self) -> None:
        import select

        ring_fd = self.ring.fileno()
        gap = self._drain_gap()
        poller, watched = None, None
        last = time.monotonic()  # the last drain
        while not self.draining and not self.stopping.is_set():
            fds = list(self.targets.fds()) if self.targets is not None else []
            if poller is None or fds != watched:
                poller, watched = select.poll(), fds
                # (the stop flag's pipe: Ctrl-C ends the wait at once)
                for fd in (ring_fd, self.stopping.fileno(), *fds):
                    poller.register(fd, select.POLLIN)
            try:
                ready = poller.poll(100)
            except InterruptedError:
                ready = []
            got = self.drain()
            now = time.monotonic()
            since, last = now - last, now
            self.report_drops()
            self.consumer.tick()
            if self.ustack_keys and self.targets is not None:
                from pydtrace.symbols.process import preload, refresh

                for t in self.targets.targets:  # their ustack() keys resolve after they end
                    if not t.ended:
                        refresh(t.pid)
                        preload(t.pid)
            for fd, _ in ready:
                if fd != ring_fd and fd in watched:
                    self.targets.gone(fd)
            if self.targets is not None and self.targets.live <= 0:
                self.drain()
                break
            if got and not self.draining:
                # Records come out in batches: a record arriving while we slept
                # waits at most the gap, one arriving after an idle spell wakes
                # us at once. Woken for each record (the kernel wakes a consumer
                # that has caught up), we cost the traced programs a wakeup and
                # a pass of this loop per event: 150 us per exec under
                # execsnoop; a 5 ms gap, 45 us of our CPU per exec, 50 ms, 20
                # (the records of a batch read warm: caches, branches).
                wait = gap or next_gap(got, self.drained_bytes, since, self.ring.size)
                # (a target's end ends the wait too: a -c run ends at once)
                live = self.targets.fds() if self.targets is not None else ()
                self.stopping.wait(wait, also=live)

    def _drain_gap(self) -> float:
        """Seconds between two drains while records flow when the user set
        switchrate (dtrace reads its buffers at that rate); else 0: next_gap."""
        rate = self.options.get("switchrate")
        return rate / 1e9 if isinstance(rate, int) and rate > 0 else 0.0

    def stop(self) -> None:
        """Ctrl-C: END still runs."""
        self.stopping.set()

    # --- records -------------------------------------------------------------------------
    def drain(self) -> int:
        """Decode every waiting record (inside the ring callback: no copy), then
        flush the consumer's output once for the batch; how many there were."""
        if self.ring is None:
            return 0
        if self._mmaps is not None:  # the mappings before the records that name them
            self._mmaps.read()
        got = 0
        start = self.ring.position()
        while True:
            try:
                got += self.ring.drain(self.handle)
                break
            except struct.error:
                # a record too short for its clause: counted (report_drops), and
                # passed (the ring's position is past it); the drain goes on
                self.short_records += 1
        self.drained_bytes = self.ring.position() - start
        self._write_texts()
        self.consumer.flush()
        return got

    def _fast_paths(self) -> dict[int, tuple[int, Any]]:
        """The clauses whose records can skip the consumer (see _fast)."""
        if not self.consumer.prints_text_only():
            return {}
        table = {}
        for clause, lay in self.compiled.records.items():
            fast = lay.text_function()
            if fast is not None:
                table[clause] = fast
        return table

    def _write_texts(self) -> None:
        if self._texts:
            self.consumer.out.write("".join(self._texts))
            self._texts = []

    def handle(self, buf: Any) -> None:
        """One ring-buffer record (bytes or a memoryview valid during the call);
        struct.error for one too short for its clause (drain() counts it)."""
        kind, pid, clause, cpu, mask = _HEADER.unpack_from(buf, 0)
        if kind == L.REC_DATA:
            fast = self._fast.get(clause)
            if fast is not None and mask == fast[0]:
                self._texts.append(fast[1](buf))
                return
        self._write_texts()
        probe = self.compiled.probes.get(pid)
        if kind != L.REC_DATA:
            if kind == L.REC_FAULT:
                pc, code, value = struct.unpack_from("<QQq", buf, 16)
                self.consumer.fault(Fault(probe, cpu, clause, pc, code, value))
            elif kind in (L.REC_COMMIT, L.REC_DISCARD):
                (sid,) = struct.unpack_from("<Q", buf, 16)
                recs = self.spec_bufs.pop(sid, None)
                if recs and kind == L.REC_COMMIT:
                    for r in recs:
                        self.deliver(*r)
            elif kind & 0xFF == L.REC_DATA:
                lay = self.compiled.records.get(clause)
                if lay is not None and probe is not None:
                    items = lay.decode_all(buf) if mask == lay.full else lay.decode(buf, mask)
                    self.speculate(kind >> L.SPEC_SHIFT, (probe, cpu, clause, lay, items))
            return
        lay = self.compiled.records.get(clause)
        if lay is None or probe is None:
            return
        items = lay.decode_all(buf) if mask == lay.full else lay.decode(buf, mask)
        self.deliver(probe, cpu, clause, lay, items)

    def speculate(self, sid: int, rec: tuple) -> None:
        """Keep a speculative record, unless it would pass specsize: then it
        is a DTRACEDROP_SPEC drop (as the user engine)."""
        from pydtrace.consume.consumer import record_size

        buf = self.spec_bufs.setdefault(sid, [])
        items = rec[4]
        if items:
            strsize = self.compiled.strsize
            used = sum(record_size(r[4], strsize) for r in buf)
            if used + record_size(items, strsize) > self.specsize:
                self.spec_size_drops += 1
                return
        buf.append(rec)

    def deliver(self, probe: Any, cpu: int, clause: int, lay: Any, items: list) -> None:
        """Give a decoded record to the consumer (with the aggregation work it needs)."""
        if not lay.touches_aggs:
            self.consumer.record(Record(probe, cpu, clause, items))
        else:
            printed = {n for it in items if it.action.kind == "printa" for n in it.action.aggs}
            read = self.snapshot(printed)
            now = time.monotonic_ns()
            for name in printed:
                self._shown[name] = (now, read.get(name, {}))
            for it in items:
                kind = it.action.kind
                if kind in ("trunc", "clear"):
                    name = it.action.aggs[0]
                    # what a printa() of an earlier record showed, as dtrace's
                    # snapshot (it takes one every aggrate); a printa() of this
                    # record shows what is taken: nothing to give back
                    at, shown = self._shown.pop(name, (0, None))
                    if name in printed or now - at > self._aggrate:
                        shown = None
                    n = it.values[0] if it.values else None
                    keep = self.aggs[name].kept(n) if kind == "trunc" else set()
                    self._take(name, keep, kind == "clear", shown)
            self.consumer.record(Record(probe, cpu, clause, items))
        if lay.exits and any(it.action.kind == "exit" for it in items):
            self.draining = True
        if any(it.action.kind in ("setopt", "freopen") for it in items):
            self._fast = self._fast_paths()  # -q may have changed

    # --- aggregations ---------------------------------------------------------------------
    def snapshot(self, raw_for: set[str] = frozenset()) -> dict[str, dict[bytes, Any]]:
        """Read every aggregation map and merge the CPUs into the consumer's objects
        (a map shared by several aggregations is read once, split by key tag);
        return the raw entries (key -> per-CPU values) of the aggregations in raw_for."""
        by_map: dict[str, dict[Any, Any]] = {}
        for name, lay in self.compiled.aggs.items():
            by_map.setdefault(lay.map_name, {})[lay.tag] = (name, lay, {}, {})
        read: dict[str, dict[bytes, Any]] = {}
        for mname, members in by_map.items():
            m = self.maps.get(mname)
            if m is None:
                continue
            shared = None not in members
            for raw_key, values in m.items():
                tag = struct.unpack_from("<Q", raw_key, 0)[0] if shared else None
                member = members.get(tag)
                if member is None:
                    continue
                name, lay, data, percpu = member
                if name in raw_for:
                    read.setdefault(name, {})[bytes(raw_key)] = values
                _fold(lay, lay.decode_key(raw_key), values, data, percpu, self.aggs[name])
            for name, _, data, percpu in members.values():
                agg = self.aggs[name]
                agg.data = data
                agg.percpu = percpu
        return read

    def _agg_keys(self, name: str) -> tuple[Any, Any, list[bytes]]:
        """(layout, map, the map's keys that belong to aggregation `name`)."""
        lay = self.compiled.aggs[name]
        m = self.maps[lay.map_name]
        keys = list(m.keys())
        if lay.tag is not None:
            tag = struct.pack("<Q", lay.tag)
            keys = [k for k in keys if bytes(k[:8]) == tag]
        return lay, m, keys

    def _take(self, name: str, keep: set, zeroed: bool = False, shown: Any = None) -> None:
        """Before the consumer acts on a record with trunc() or clear(): the
        kernel's entries they drop or zero, except `keep`, are taken out of
        the map in one step each (lookup and delete), and their values, as
        they are now, replace the snapshot's, for a printa() of the same
        record. An event that comes after the snapshot is shown by that
        printa() or, once its entry is taken, makes the entry anew for the
        next table: none is lost, as a delete (or a zeroing) after printing
        lost those that came while the table printed. clear() puts a zero
        entry back where no event has made one meanwhile: its keys stay.

        shown: the map as a printa() of an earlier record read it (its raw
        key -> per-CPU values). As dtrace's trunc() and clear() act on the
        consumer's snapshot, the updates since then are put back, for the
        next table (an event that made the entry anew meanwhile is taken
        and added)."""
        agg = self.aggs[name]
        lay, m, keys = self._agg_keys(name)
        zero = _per_cpu(m, bytes(lay.value_size)) if zeroed else None
        data: dict[Any, Any] = {}
        percpu: dict[Any, dict[int, Any]] = {}
        for raw_key in keys:
            key = lay.decode_key(raw_key)
            if key in keep:
                continue
            values = m.take(raw_key)
            if values is None:
                continue
            back, lost = (
                (None, 0) if shown is None else lay.since(values, shown.get(bytes(raw_key)))
            )
            self.consumer.drop("DTRACEDROP_AGGREGATION", lost)  # a min/max's unknown extreme
            if back is not None:
                self._put_back(m, lay, raw_key, back)
            elif zero is not None:
                try:
                    m.update(raw_key, zero, BPF_NOEXIST)
                except OSError:
                    pass  # an event made it anew: it holds only what came after
            _fold(lay, key, values, data, percpu, agg)
        agg.data.update(data)
        agg.percpu.update(percpu)

    def _put_back(self, m: Any, lay: Any, raw_key: bytes, values: list[bytes]) -> None:
        """Store an entry's values where an event may make it anew at any
        moment: what such an event brought is taken and added, and the store
        tried again."""
        for _ in range(16):
            try:
                m.update(raw_key, values, BPF_NOEXIST)
                return
            except OSError as e:
                if e.errno != errno.EEXIST:
                    break
            more = m.take(raw_key)
            if more is not None:
                values = lay.add(values, more)
        self.consumer.drop("DTRACEDROP_AGGREGATION", 1)  # a full map, or events without end

    # --- drops ---------------------------------------------------------------------------
    def report_drops(self, final: bool = False) -> None:
        """Tell the consumer about drops counted since the last report; the
        switches the kernel hid only at the end: the user can do nothing about
        them, so once is enough."""
        if self.short_records > self.short_reported:
            self.consumer.drop("PYDTRACEDROP_SHORT", self.short_records - self.short_reported)
            self.short_reported = self.short_records
        m = self.maps.get("drops")
        if m is None:
            return
        values = m.lookup(0) or []
        hidden = 0
        for cpu, raw in enumerate(values):
            words = struct.unpack_from("<5Q", raw, 0)
            hidden += words[cg_context.DROP_SWITCH]
            for which, kind in ((cg_context.DROP_RING, "DTRACEDROP_PRINCIPAL"),
                                (cg_context.DROP_AGG, "DTRACEDROP_AGGREGATION"),
                                (cg_context.DROP_DYN, "DTRACEDROP_DYNAMIC"),
                                (cg_context.DROP_DBLERROR, "DTRACEDROP_DBLERROR")):  # fmt: skip
                new = words[which] - self.reported.get((which, cpu), 0)
                if new > 0:
                    self.reported[(which, cpu)] = words[which]
                    self.consumer.drop(kind, new, cpu)
        if final:  # context switches the kernel hid (providers/sched._watch)
            self.consumer.drop("PYDTRACEDROP_SWITCH", hidden)
        # speculation drops are counted for the whole session (as the user engine)
        unavail = 0
        at = getattr(self.compiled, "spec_unavail_off", None)
        if at is not None:
            g = self.maps["globals"].lookup(0)
            (unavail,) = struct.unpack_from("<Q", g, at) if g else (0,)
        size_done, unavail_done = self.spec_reported
        self.consumer.drop("DTRACEDROP_SPEC", self.spec_size_drops - size_done)
        self.consumer.drop("DTRACEDROP_SPECUNAVAIL", unavail - unavail_done)
        self.spec_reported = (self.spec_size_drops, unavail)


def _fold(lay: Any, key: Any, values: list[bytes], data: dict, percpu: dict, agg: Any) -> None:
    """One map entry's per-CPU values into data[key] (the CPUs merged) and
    percpu[key] (the CPUs that updated it). A key already there came from
    another raw key that reads back the same (sym(): the addresses of one
    function): the two are merged, as dtrace's consumer merges them."""
    states = {}
    for cpu, raw in enumerate(values):
        n, state = lay.decode_value(raw)
        if n:
            states[cpu] = state
    for cpu, st in percpu.get(key, {}).items():
        states[cpu] = lay.merge([states[cpu], st]) if cpu in states else st
    data[key] = lay.merge(list(states.values())) if states else agg._initial()
    percpu[key] = states


def _per_cpu(m: Any, value: bytes) -> list[bytes]:
    from pydtrace.engines.ebpf.maps import possible_cpus

    return [value] * len(possible_cpus())


def _origin_at(insns: Any, slot: int) -> Any:
    if not isinstance(insns, list):  # a kept program's (program_cache.Code): no origins
        return None
    at = 0
    for i in insns:
        if at <= slot < at + i.slots:
            return i.origin
        at += i.slots
    return None


def held_pids(targets: Any) -> tuple[int, ...]:
    """The -c children held before their exec (no probe fires in them until it)."""
    return tuple(t.pid for t in targets.targets if t.created) if targets is not None else ()


def disassemble(prog: CheckedProgram, options: dict[str, Any], targets: Any = None) -> str:
    """`-S`: the BPF programs the engine would load for this program."""
    from pydtrace.engines.ebpf import codegen

    return codegen.disassemble_program(codegen.compile_program(prog, options, held_pids(targets)))
