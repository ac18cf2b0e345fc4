"""The Python API: compile D programs and run them, as the dtrace command does.

    from pydtrace import trace, stream
    result = trace('BEGIN { @n["x"] = count(); exit(0); }')
    result.output          # the text dtrace would print
    result.aggregations    # {'@n': {('x',): 1}}
    for event in stream('syscall::openat:entry { printf("%s", copyinstr(arg1)); }',
                        command=["ls"]):
        ...                # events.Record and events.Snapshot, as they come

The CLI (cli/dtrace.py) is a thin layer over Session; trace() and stream()
run a Session on a thread of their own (_Run), so that stop() and timeouts
reach it whatever it waits for (docs/api.md).
"""

from __future__ import annotations

import errno
import io
import os
import threading
import time
from collections.abc import Iterable

from pydtrace.lang.dataclass import dataclass, field
from pydtrace.lang.errors import CompileError, DError
from pydtrace.options import api_settings, session_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

# Programs of only dtrace/profile probes (BEGIN, END, tick, profile) run on
# eBPF by default too, now that it passes as much of dtrace-utils as the
# interpreter (a program it cannot lower is refused by name, with a hint to
# use -x engine=ptrace where the user engine could run it).
# False = keep them on the user engine unless -x engine=ebpf.
EBPF_BY_DEFAULT_WITHOUT_KERNEL_PROBES = True


def read_script(path: str) -> str:
    """A -s script's text, read as it comes and refused at once when it cannot
    be D: a NUL byte (dtrace's lexer takes it for the end of input: a syntax
    error at its line, a DError) or more than limits.SCRIPT_BYTES (a device, a
    runaway pipe: CompileError). Undecodable bytes are kept (surrogateescape),
    as dtrace keeps them."""
    from pydtrace.lang.limits import SCRIPT_BYTES

    chunks: list[bytes] = []
    size = 0
    lines = 1
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise CompileError(f"failed to open {path}: {e.strerror}") from None
    try:
        while size <= SCRIPT_BYTES:
            try:
                chunk = os.read(fd, min(1 << 16, SCRIPT_BYTES + 1 - size))
            except OSError as e:
                raise CompileError(f"failed to open {path}: {e.strerror}") from None
            if not chunk:
                break
            nul = chunk.find(b"\0")
            if nul >= 0:
                line = lines + chunk.count(b"\n", 0, nul)
                raise DError("D_SYNTAX", "syntax error near end-of-input", line)
            lines += chunk.count(b"\n")
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > SCRIPT_BYTES:
        raise CompileError(f"failed to open {path}: {os.strerror(errno.EFBIG)}")
    return b"".join(chunks).decode("utf-8", "surrogateescape")


@dataclass
class Program:
    """One D program of a Session, as the command line gives it: kind 's' is
    a script (text is its path, or its name when source holds its text);
    'n', 'P', 'm', 'f', 'i' a probe specifier (-n ...) whose text is the program."""

    kind: str  # 's' script file, 'n' 'P' 'm' 'f' 'i' probe specifier
    text: str  # the path (for 's') or the specifier text
    source: str | None = None  # a script's text, when it is not read from the file (tools)


@dataclass
class Result:
    """What trace() returns once the program has ended.

    status: dtrace's exit status (exit()'s value; 0 without; 1 after a failed
    write or when stopped before tracing began).  output: the text dtrace
    prints (records, then the aggregations at the end).  errors: what it
    says on stderr (probe notices unless quiet, runtime errors, drops).
    records: every events.Record, in order.  aggregations: the final
    aggregations (events.Snapshot.aggregations: name -> key -> value).
    returncode: the command's exit status as subprocess gives it (-N: killed
    by signal N, as at the end of a trace that outlives it), None without
    command=."""

    status: int
    output: str
    errors: str
    records: list[Any] = field(default_factory=list)
    aggregations: dict[str, dict[tuple, Any]] = field(default_factory=dict)
    returncode: int | None = None


class Session:
    """One or more D programs compiled together and run once, with their own
    options and -c/-p targets; several may run in one process.  The dtrace
    command is a Session; trace() and stream() are the simple way to one.

    settings: (name, value) pairs in order, as validate_xopt normalizes them
    (the command line's) or as text to validate (`("bufsize", "4m")`); a bad
    one raises OptionError.  commands: -c commands (a str is split into words
    at whitespace, as -c does; or an argv list); pids: -p processes.  out and
    err: where dtrace's output and messages go (stdout, stderr).
    compile() raises CompileError; run() runs to the end and returns the exit
    status; stop(), from any thread, ends a run as Ctrl-C does."""

    def __init__(
        self,
        programs: list[Program],
        *,
        settings: list[tuple[str, Any]] | None = None,
        operands: list[str] | None = None,
        cpp: bool = False,
        defines: list[str] | None = None,
        undefs: list[str] | None = None,
        incdirs: list[str] | None = None,
        zdefs: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
        pname: str = "pydtrace",
        testing: bool | None = None,
        macro_values: dict[str, int] | None = None,
        verbose: bool = False,
        commands: list[str | list[str]] | None = None,
        pids: list[int] | None = None,
        disasm: bool = False,
        item_hook: Any = None,
    ) -> None:
        self.programs = programs
        self.settings = list(settings or [])
        self.options: dict[str, Any] = session_options(self.settings)
        self.operands = operands or []
        self.cpp = cpp or bool(self.options.get("cpp"))
        self.defines = defines or []
        self.undefs = undefs or []
        self.incdirs = incdirs or []
        self.zdefs = zdefs or bool(self.options.get("zdefs"))
        self.out = out
        self.err = err
        self.pname = pname
        self.testing = "_DTRACE_TESTING" in os.environ if testing is None else testing
        self.macro_values = macro_values or {}
        self.checked: Any = None
        self.matches: list[tuple[str, str, int]] = []  # (desc kind, name, probe count) per program
        self.stability: list[Any] = []  # minimum probe description attributes per program
        self.verbose = verbose
        self.catalogue: Any = None
        self.commands = commands or []  # -c: split into words as dtrace does (no shell), or argv
        self.pids = pids or []  # -p
        self.tracer: Any = None  # the ptrace Tracer of -c/-p on the user engine
        self.launcher: Any = None  # engines.launch.Targets of -c/-p on the eBPF engine
        self.disasm = disasm  # -S: print the BPF programs (stderr) before running
        self.item_hook = item_hook  # the tools' own output (Consumer.item_hook)
        self.engine: Any = None
        self._bpf_ok: tuple[bool, str] | None = None
        self._ptrace_targets = False  # set when a LoweringError sends -c/-p to ptrace
        self._kernel: Any = None  # symbols.kernel_types.KernelTypes, made by compile()
        # the Python API's: each record as the consumer takes it, and a tick
        # every tick_interval seconds from the engine's loop (Consumer)
        self.record_hook: Any = None
        self.on_tick: Any = None
        self.tick_interval: float | None = None
        self.on_start: Any = None  # called with the engine just before it runs
        # run() puts the caller's SIGINT/SIGTERM handlers back; a command, whose
        # process ends with the run, keeps the engine's (a second Ctrl-C aborts
        # a final write that blocks)
        self.give_back_handlers = True
        # a command's run keeps its compiled program for the next run of the
        # same command line (engines/ebpf/program_cache.py), in the slot
        # program_cache.slot_of names; the API's does not
        self.keep_as: str | None = None
        self.early: Any = None  # the program_cache.Early the command looked up as it started
        self._kept: Any = None  # (Compiled, ustack keys) of a kept compile in use
        self._load_ahead: Any = None  # loader.LoadAhead loading it, until the engine takes it
        self._keeping: Any = None  # (key, the entry found, macro values): kept after the run
        self._macro_variables: set[str] = set()  # the macro variables the programs read
        self._folded_macros: set[str] = set()  # those folded into other constants
        self._compiled_options: dict[str, Any] = {}
        self._stop_lock = threading.Lock()
        self._stop_asked = False
        self._waker: tuple[int, int] | None = None  # (pid, pipe) of the ptrace loop's waker

    # --- compiling ---------------------------------------------------------------
    def compile(self) -> Any:
        """Compile every program into one checked program; raise CompileError."""
        if self._use_kept():
            return self.checked
        from pydtrace.lang.checker import Checker
        from pydtrace.lang.macros import Macros, process_values
        from pydtrace.lang.parser import parse
        from pydtrace.probes.catalogue import parse_probe_desc
        from pydtrace.probes.providers import default_catalogue

        self.catalogue = cat = default_catalogue()
        if self.commands or self.pids:
            self._start_targets()
        if self.launcher is not None:  # pid/usdt probes resolve a held child's objects
            cat.held.update((t.pid, list(t.argv)) for t in self.launcher.targets if t.created)
        state = {"kind": "s"}

        # Every probe description of a clause is a statement of its own in
        # dtrace (`BEGIN, END { }` is two), numbered from 0 across programs:
        # the numbers name clauses in error messages (dt_clause_N).
        statements: list[list[Any]] = []
        desc_attrs: list[Any] = []  # each statement's probe description attributes (for -v)

        def lookup(text: str, line: int) -> list[Any]:
            desc = parse_probe_desc(text, state["kind"])
            if state["kind"] == "i" and text.isdigit():  # -i takes a probe id
                found = cat.by_id(int(text))
                probes = [found] if found is not None else []
            else:
                probes = cat.match(desc)
            if not probes and not self.zdefs:
                from pydtrace.probes.hints import no_match_hint

                raise DError(
                    "D_PDESC_ZERO",
                    f"probe description {desc} does not match any probes",
                    line,
                    hint=no_match_hint(text),
                )
            statements.append(probes)
            desc_attrs.append(_description_attributes(cat, desc))
            return probes

        kernel = self._kernel_names()
        checker = Checker(
            lookup,
            strsize=int(self.options.get("strsize", 256)),
            has_target="target" in self.macro_values,
            kernel=kernel,
        )
        values = process_values()
        values.update(self.macro_values)
        defaultargs = bool(self.options.get("defaultargs"))
        for prog in self.programs:
            script = prog.kind == "s"
            where = (
                f"failed to compile script {prog.text}"
                if script
                else f"invalid probe specifier {prog.text}"
            )
            before = len(checker.prog.clauses)
            try:
                if script and prog.source is not None:  # a script given as text (the tools)
                    source = prog.source
                elif script:
                    source = read_script(prog.text)
                else:
                    source = prog.text
                if self.cpp:
                    from pydtrace.lang.cpp import preprocess, user_args
                    from pydtrace.options import env_xopts

                    extra = user_args([*env_xopts(), *self.settings])
                    stdc = self.options.get("stdc")
                    source = preprocess(source, prog.text if script else "<command line>", [], [], [], extra,
                                        stdc=stdc if isinstance(stdc, str) else None)  # fmt: skip
                macros = Macros(
                    [prog.text if script else self.pname, *self.operands], values, defaultargs
                )
                state["kind"] = "s" if script else prog.kind
                tree = parse(source, macros=macros, filename=prog.text if script else None,
                             pspec_only=not script, on_pragma=self._pragma,
                             kernel_typedef=kernel.is_typedef)  # fmt: skip
                self._macro_variables |= macros.variables
                if not tree.items and self.options.get("empty"):
                    self.matches.append(("script" if script else "description", prog.text, 0))
                    continue
                # options set by this program's pragmas apply to its checks
                checker.strsize = int(self.options.get("strsize", 256))
                checker.scratchsize = int(self.options.get("scratchsize", 8 + 256)) - 8
                try:
                    checker.check(tree)
                except DError as e:
                    if e.tag == "D_EMPTY" and script:
                        e.line = source.count("\n") + 1  # dtrace reports the end of input
                    raise
                if not (defaultargs or self.options.get("argref")):
                    for i, arg in enumerate(self.operands, start=1):
                        if i not in macros.referenced:
                            raise DError(
                                "D_MACRO_UNUSED",
                                f"extraneous argument '{arg}' (${i} is not referenced)",
                            )
            except DError as e:
                line = e.line if e.file is None else 0  # a line of this program (the API's)
                if not script and e.file is None:
                    e.line = 0  # dtrace gives no line for programs on the command line
                raise CompileError(
                    f"{where}: {e.located(bool(self.options.get('errtags')))}", e.tag, e.hint, line
                ) from None
            except CompileError:
                raise
            except _cpp_errors() as e:
                raise CompileError(str(e)) from None
            nstmts = sum(len(c.node.probes) for c in checker.prog.clauses[before:])
            matched = sum(len(x) for x in statements[len(statements) - nstmts :])
            name = prog.text
            if not script:
                cut = min(
                    (i for i in (prog.text.find(ch) for ch in "{/;") if i >= 0),
                    default=len(prog.text),
                )
                name = prog.text[:cut]
            self.matches.append(("script" if script else "description", name, matched))
            self.stability.append(_attr_min_all(desc_attrs[len(desc_attrs) - nstmts :]))
        index = 0
        for c in checker.prog.clauses:
            c.index = index
            index += len(c.node.probes)
        self.checked = checker.prog
        self._folded_macros = set(checker.folded_macros)
        self._compiled_options = dict(self.options)
        return checker.prog

    def _use_kept(self) -> bool:
        """Take this program's kept compile when there is one for these inputs
        (engines/ebpf/program_cache.py); else note the key, to keep this
        compile once it has run."""
        early, self.early = self.early, None
        try:
            return self._take_kept(early)
        finally:
            if early is not None:
                early.close()  # (its load is the engine's now, if taken)

    def _take_kept(self, early: Any) -> bool:
        if early is not None and early.loaded():
            self._bpf_ok = (True, "")  # (no features probe: map and program made just now)
        if (self.keep_as is None or self.cpp or self.commands or self.pids or self.macro_values
                or self.disasm or self.options.get("engine") not in (None, "ebpf")
                or not self._bpf_allowed()[0]):  # fmt: skip
            return False
        from pydtrace.engines.ebpf import program_cache as pc

        if pc.cache_path() is None:  # (PYDTRACE_CACHE=0)
            return False
        sources = []
        for p in self.programs:
            if p.kind == "s" and p.source is None:
                try:  # read once: the text keyed is the text compiled
                    p.source = read_script(p.text)
                except (CompileError, DError):
                    return False  # compile() reports it
            sources.append((p.kind, p.text, p.source))
        inputs = (sources, self.settings, self.operands, self.zdefs, self.testing, self.pname,
                  self.verbose, os.getuid(), os.getgid(), os.geteuid(), os.getegid())  # fmt: skip
        key = pc.key_of(inputs)
        values = pc.varying_values()
        if early is None:
            kept = pc.load(self.keep_as, key)
            code = pc.relocate(kept, values) if kept is not None else None
        else:  # looked up and loading since the command started
            kept = early.kept if early.kept.key == key else None
            code = early.code if kept is not None else None
        if kept is not None and code is not None:
            from pydtrace.engines.ebpf.loader import LoadAhead

            # the kernel verifies the programs while the rest is unpickled and imported
            ahead = early.take_load() if early is not None else None
            self._load_ahead = ahead or LoadAhead(pc.LoadPlan(kept.plan, code))
            import _pickle  # (pickle.py's import is 1 ms more, for nothing used here)

            try:
                stub, options, matches, stability, compiled, ustack, lits = _pickle.loads(kept.rest)
            except Exception:  # an entry of an older pydtrace: compile
                self._load_ahead.close()
                self._load_ahead = None
            else:
                for prog, c in zip(compiled.progs, code):
                    prog.insns = c
                pc.set_macro_literals(lits, values)
                self.checked, self.options = stub, options
                self.matches, self.stability = matches, stability
                self._kept = (compiled, ustack)
                return True
        self._keeping = (key, kept, values)
        return False

    def _keep(self, engine: Any) -> None:
        """Keep this run's compile for the next (see _use_kept)."""
        import copy
        import pickle

        from pydtrace.engines.ebpf import program_cache as pc
        from pydtrace.engines.ebpf.attach import UPROBE_KINDS
        from pydtrace.engines.ebpf.loader import log_level

        key, old, values = self._keeping
        self._keeping = None
        used = self._macro_variables & set(pc.VARYING)
        vals = {m: values[m] for m in sorted(used)}
        compiled = engine.compiled
        if (used & self._folded_macros or not pc.keepable_values(vals)
                or any(p.attach[0] in UPROBE_KINDS for p in compiled.progs)):  # fmt: skip
            return
        code = [pc.freeze(p.insns) for p in compiled.progs]
        bare = copy.copy(compiled)
        bare.progs = [copy.copy(p) for p in compiled.progs]
        for p in bare.progs:
            p.insns = None
        stub = pc.CheckedStub([pc.StubClause(list(c.probes)) for c in self.checked.clauses],
                              bool(self.checked.destructive), [])  # fmt: skip
        rest = pickle.dumps((stub, self._compiled_options, self.matches, self.stability, bare,
                             engine.ustack_keys, pc.macro_literals(bare)),
                            protocol=pickle.HIGHEST_PROTOCOL)  # fmt: skip
        plan = pc.plan_of(compiled, log_level(self._compiled_options))
        pc.store(pc.learn(old, pc.Kept(key, vals, {}, rest, code, plan)), self.keep_as)

    def _kernel_names(self) -> Any:
        """The running kernel's types and symbols (BTF, kallsyms) for the
        checker, read only when a program names one (one per session)."""
        if self._kernel is None:
            self._kernel = _KernelNames()
        return self._kernel

    # --- traced processes (-c, -p) -----------------------------------------------------
    def _start_targets(self) -> None:
        """Create -c processes (held before exec) and grab -p ones, before the
        program is compiled, as dtrace does: $target is the first one's pid.
        On the eBPF engine a plain launcher holds them; on ptrace, the Tracer."""
        if self.tracer is not None or self.launcher is not None:
            return
        if self._targets_on_ebpf():
            from pydtrace.engines.launch import LaunchError, Targets

            self.launcher = launcher = Targets()
            try:
                for cmd in self.commands:
                    launcher.spawn(_argv(cmd))
                for pid in self.pids:
                    launcher.grab(pid)
            except LaunchError as e:
                launcher.finish()
                self.launcher = None
                raise CompileError(str(e)) from None
            self.macro_values["target"] = launcher.pids[0]
            return
        from pydtrace.engines.user.ptrace.tracer import TraceError, Tracer

        self.tracer = tracer = Tracer()
        try:
            for cmd in self.commands:
                tracer.spawn(_argv(cmd))
            for pid in self.pids:
                tracer.grab(pid)
        except (TraceError, OSError) as e:
            tracer.finish()
            raise CompileError(str(e)) from None
        self.macro_values["target"] = tracer.targets[0].pid

    # --- choosing the engine -------------------------------------------------------------
    def _bpf_allowed(self) -> tuple[bool, str]:
        """(True, "") when this process may load tracing programs; else (False, why)."""
        if self._bpf_ok is None:
            try:
                from pydtrace.engines.ebpf.features import can_use_bpf

                self._bpf_ok = can_use_bpf()
            except (ImportError, OSError) as e:
                self._bpf_ok = (False, f"eBPF is not available: {e}")
        return self._bpf_ok

    def _targets_on_ebpf(self) -> bool:
        """Will -c/-p targets be run by the eBPF engine (decided before compiling)?"""
        engine = self.options.get("engine")
        if engine is not None:
            return engine in ("ebpf", "tracefs")  # both trace system-wide: a held child
        return not self._ptrace_targets and self._bpf_allowed()[0]

    def _user_engine_can_run(self) -> bool:
        """The user-space engine runs dtrace/profile probes itself; syscall
        and proc need ptrace targets; the other providers need the kernel."""
        if self._beyond_user_engine():
            return False
        if self.commands or self.pids:
            return True
        return not self._kernel_providers()

    def _beyond_user_engine(self) -> list[str]:
        """The providers of this program the user-space engine cannot fire."""
        from pydtrace.engines.user.providers import SUPPORTED

        return sorted(
            {p.provider for c in self.checked.clauses for p in c.probes if p.kind not in SUPPORTED}
        )

    def _kernel_providers(self) -> list[str]:
        """The providers of this program the user-space engine cannot fire
        without ptrace targets (-c/-p)."""
        from pydtrace.engines.user.providers import UNTRACED

        return sorted(
            {p.provider for c in self.checked.clauses for p in c.probes if p.kind not in UNTRACED}
        )

    def _make_ebpf(self, consumer: Any) -> tuple[Any, Exception | None]:
        """(engine, None) or (None, the error to report when the eBPF engine is
        chosen), or (None, None): the user engine runs it (a default choice
        the eBPF engine cannot lower, or eBPF not allowed)."""
        from pydtrace.engines.dvars import dvar_capacity
        from pydtrace.options import size_option

        assert self.checked is not None
        dynvarsize = size_option(self.options, "dynvarsize", 0) or 1 << 20
        strsize = int(self.options.get("strsize", 256))
        if self._kept is None and dvar_capacity(self.checked, strsize, dynvarsize) == 0:
            # not one dynamic variable fits: every store would drop (dtrace's refusal)
            return None, CompileError("could not enable tracing: Enabling exceeds size of buffer")
        engine, refusal = self._try_ebpf(consumer)
        if engine is None and refusal is None and self.launcher is not None:
            self._fall_back_to_user_engine()
        return engine, refusal

    def _try_ebpf(self, consumer: Any) -> tuple[Any, Exception | None]:
        from pydtrace.engines.ebpf.errors import EbpfError, LoweringError

        engine = self.options.get("engine")
        if engine == "ptrace":
            return None, None
        if engine == "tracefs":
            return self._make_tracefs(consumer)
        if self.tracer is not None:  # targets already held by ptrace
            if engine is None:
                return None, None
            return None, CompileError(
                "could not enable tracing: with -c or -p, -x engine=ebpf must be set on the command line"
            )
        if engine is None:
            interim = not (EBPF_BY_DEFAULT_WITHOUT_KERNEL_PROBES or self.disasm)
            if interim and not self._kernel_providers():
                return None, None
            ok, why = self._bpf_allowed()
            if not ok:
                if self._user_engine_can_run():
                    return None, None
                if self._tracefs_can_run():  # never silently, -q or not: one line says why
                    consumer.err.write(f"{self.pname}: {why}: running on the tracefs engine\n")
                    return self._make_tracefs(consumer)
                beyond = self._beyond_user_engine()
                if beyond:
                    return None, CompileError(
                        f"could not enable tracing: {', '.join(beyond)} probes need the eBPF engine: {why}"
                    )
                kernel = ", ".join(self._kernel_providers())
                return None, CompileError(
                    f"could not enable tracing: {kernel} probes without -c or -p need the eBPF engine: {why}"
                )
        else:
            ok, why = self._bpf_allowed()
            if not ok:
                return None, CompileError(f"could not enable tracing: {why}")
        # (before the code generator's imports: they overlap)
        ahead = self._ring_ahead() if self._load_ahead is None else None
        from pydtrace.engines.ebpf.engine import EbpfEngine

        extra = {"targets": self.launcher} if self.launcher is not None else {}
        load_ahead, self._load_ahead = self._load_ahead, None  # the engine's now
        try:
            ebpf = EbpfEngine(self.checked, consumer, self.options, ring_ahead=ahead, kept=self._kept,
                              load_ahead=load_ahead, **extra)  # fmt: skip
            # the kernel's ring buffer drops for real, and records come in batches
            consumer.model_buffer = False
            consumer.autoflush = False
            return ebpf, None
        except LoweringError as e:
            # never a silent fallback to a slower engine: say what is missing,
            # and how to run the program on the user engine when it can
            hint = ""
            if engine is None and self._user_engine_can_run():
                hint = "; -x engine=ptrace runs it on the user-space engine"
            return None, CompileError(f"could not enable tracing: {e}{hint}")
        except EbpfError as e:
            return None, CompileError(f"could not enable tracing: {e}")
        except CompileError as e:
            return None, e

    def _ring_ahead(self) -> Any:
        """A maps.RingAhead making the ring buffer while the program compiles,
        or None when the program's ring will be small (the compiler bounds what
        a program of BEGIN, END and ERROR writes, and sizes the ring for it)."""
        from pydtrace.engines.ebpf.maps import RingAhead, ring_size

        assert self.checked is not None
        if all(p.provider == "dtrace" for c in self.checked.clauses for p in c.probes):
            return None
        return RingAhead(ring_size(self.options.get("bufsize")))

    def _tracefs_can_run(self) -> bool:
        """Every provider of the program fires on the tracefs engine, and
        this process may make a tracefs instance."""
        from pydtrace.engines.tracefs.instance import writable
        from pydtrace.engines.tracefs.providers import SUPPORTED

        kinds = {p.kind for c in self.checked.clauses for p in c.probes}
        return kinds <= SUPPORTED and self.tracer is None and writable()

    def _make_tracefs(self, consumer: Any) -> tuple[Any, Exception | None]:
        from pydtrace.engines.tracefs.engine import TracefsEngine, TracefsEngineError

        try:
            engine = TracefsEngine(self.checked, consumer, self.options, self.launcher)
        except TracefsEngineError as e:
            return None, CompileError(f"could not enable tracing: {e}")
        if engine.unsupported:
            return None, CompileError(f"could not enable tracing: {engine.unsupported}")
        return engine, None

    def _fall_back_to_user_engine(self) -> None:
        """The eBPF engine cannot lower this program: run it on the user engine,
        whose -c/-p targets are ptrace ones, so start them again and recompile
        ($target changes; the held -c child never ran anything)."""
        if self.launcher is None:
            return
        self.launcher.finish()
        self.launcher = None
        self._ptrace_targets = True
        self.checked = None
        self.matches, self.stability = [], []
        self.compile()

    def _release_targets(self) -> None:
        """Give each -c child its seccomp filter and let it exec."""
        from pydtrace.engines.user.ptrace.notify import needs_stops, usable
        from pydtrace.engines.user.ptrace.seccomp import build, encode
        from pydtrace.engines.user.ptrace.source import Sink
        from pydtrace.engines.user.ptrace.tracer import TraceError

        table = _syscall_table()
        sink = Sink({p.id: p for c in self.checked.clauses for p in c.probes}.values(), table)
        tracer = self.tracer
        tracer.sink = sink
        code = b""
        # Without return probes a call needs only its seccomp stop (the tracer
        # then resumes with CONT, skipping the exit stop), so a filter pays off
        # even when every syscall is traced: one stop per call instead of two.
        exits = sink.exit_numbers()
        every_exit = table is not None and len(exits) >= len(table.by_nr)
        tracer.exit_numbers = None if every_exit else exits
        every_call = table is not None and _traces_everything(sink, table)
        listening = b""
        if table is not None and not (every_call and every_exit):
            numbers = sink.traced_numbers() | sink.exec_numbers
            code = encode(build(None if every_call else numbers, table.audit_arch))
            # -x seccompnotify: calls only entry probes want notify, with no stop
            # (notify.py; opt-in: a signal may then fail such a call with EINTR)
            notify = set(sink.entry_probes) - exits - sink.proc_entries - sink.exec_numbers
            asked = self.options.get("seccompnotify") not in (None, False)
            if asked and notify and not needs_stops(self.checked.clauses) and usable():
                listening = encode(build(None if every_call else numbers, table.audit_arch, notify))
        try:
            for t in tracer.targets:
                if t.created:
                    tracer.release(t, code, listening)
        except TraceError as e:
            tracer.finish()
            raise CompileError(str(e)) from None

    def _pragma(self, p: Any) -> None:
        """Act on a #pragma as soon as it is read, as dtrace does (errors come first)."""
        from pydtrace.options import XoptError, validate_xopt

        w = [x[1:-1] if len(x) >= 2 and x[0] == x[-1] == '"' else x for x in p.words]
        if not w:
            return
        if w[0] == "error":
            raise DError("D_PRAGERR", "#error: " + "".join(x + " " for x in w[1:]), p.line, p.file)
        if w[0] != "D":
            return  # #pragma ident and other vendors' pragmas are ignored
        what, args = (w[1], w[2:]) if len(w) > 1 else ("", [])
        if what == "option":
            if not args:
                raise DError(
                    "D_PRAGMA_MALFORM", "malformed #pragma option <option>=<val>", p.line, p.file
                )
            if len(args) > 1:
                raise DError(
                    "D_PRAGMA_MALFORM",
                    "superfluous arguments specified for #pragma option",
                    p.line,
                    p.file,
                )
            name, eq, value = args[0].partition("=")
            try:
                key, v = validate_xopt(name, value if eq else None, in_program=True)
            except XoptError as e:
                msg = (
                    f"failed to set option '{name}' to '{value}': {e.reason}"
                    if eq
                    else f"failed to set option '{name}': {e.reason}"
                )
                raise DError("D_PRAGMA_OPTSET", msg, p.line, p.file) from None
            self.options[key] = True if v is None else v
        elif what == "error":
            raise DError("D_PRAGERR", "#error: " + "".join(x + " " for x in args), p.line, p.file)
        elif what == "attributes":
            if len(args) != 2:
                raise DError(
                    "D_PRAGMA_MALFORM",
                    "malformed #pragma attributes <attributes> <ident>",
                    p.line,
                    p.file,
                )
            if not _valid_attributes(args[0]):
                raise DError(
                    "D_PRAGMA_INVAL",
                    "invalid attributes specified by #pragma attributes",
                    p.line,
                    p.file,
                )
        elif what == "depends_on":
            if len(args) != 2:
                raise DError(
                    "D_PRAGMA_MALFORM",
                    "malformed #pragma depends_on <class> <name>",
                    p.line,
                    p.file,
                )
            if args[0] == "library":
                raise DError(
                    "D_PRAGMA_DEPEND",
                    "main program may not explicitly depend on a library",
                    p.line,
                    p.file,
                )
            if args[0] not in ("provider", "module"):
                raise DError(
                    "D_PRAGMA_INVAL",
                    f"invalid class {args[0]} specified by #pragma depends_on",
                    p.line,
                    p.file,
                )
        elif what in ("binding", "ident", "line"):
            pass
        else:
            raise DError("D_PRAGMA_INVAL", f"invalid D pragma: {what}", p.line, p.file)

    # --- running ------------------------------------------------------------------------
    def run(self, keep_records: bool = False) -> int:
        """Run the compiled program to its end; return dtrace's exit status.
        The engines handle SIGINT and SIGTERM during the run; the caller's
        handlers are back when it returns (unless give_back_handlers is off)."""
        from pydtrace.engines.signals import restore_handlers, saved_handlers

        saved = saved_handlers() if self.give_back_handlers else None
        try:
            return self._run(keep_records)
        finally:
            restore_handlers(saved)

    def _run(self, keep_records: bool) -> int:
        from pydtrace.consume.consumer import Consumer

        if self.checked is None:
            self.compile()
        consumer = Consumer({}, self.options, self.out, self.err, self.pname, self.testing,
                            json_out=self.options.get("json") is not None and self.options.get("json") is not False)  # fmt: skip
        consumer.keep = keep_records
        consumer.item_hook = self.item_hook
        consumer.record_hook = self.record_hook
        consumer.on_tick = self._tick if self.on_tick is not None else None
        consumer.tick_interval = self.tick_interval
        self.consumer = consumer
        ebpf, refusal = self._make_ebpf(consumer)
        user_engine = ebpf is None and refusal is None and self.checked is not None
        beyond = self._beyond_user_engine() if user_engine else []
        if beyond:  # never a run that silently traces nothing
            from pydtrace.engines.user.providers import SUPPORTED as user_providers

            refusal = CompileError(
                f"could not enable tracing: {', '.join(beyond)} probes need the eBPF engine; "
                f"the user-space engine fires only {', '.join(sorted(user_providers))} probes"
            )
        elif user_engine:
            stack = _stack_call(self.checked)
            kread = self.checked.kernel_reads[:1]
            if stack is not None:  # it records no frames: never an empty stack printed
                refusal = CompileError(
                    f"could not enable tracing: the user-space engine cannot record {stack.name}() "
                    f"(line {stack.line}); the eBPF engine records kernel stacks"
                )
            elif kread:  # kernel types and `symbols live in kernel memory
                what, line = kread[0]
                refusal = CompileError(
                    f"could not enable tracing: the user-space engine cannot read kernel memory "
                    f"({what}, line {line}); the eBPF engine reads it"
                )
        if self.tracer is not None:
            self._release_targets()  # an exec failure is reported before anything else
        if not self.options.get("quiet"):
            for kind, name, n in self.matches:
                consumer.notice(f"{kind} '{name}' matched {n} probe{'' if n == 1 else 's'}")
        if self.verbose:
            for (kind, name, _), attrs in zip(self.matches, self.stability):
                consumer.out.write(_stability_report(kind, name, attrs))
        total = sum(n for _, _, n in self.matches)
        if total == 0 and not self.zdefs:
            raise CompileError("no probes matched" if self.programs else "no probes specified")
        if self.options.get("destructive") and not self.options.get("quiet"):
            consumer.notice("allowing destructive actions")
        if self.options.get("bufsize") == 0:
            raise CompileError("could not enable tracing: Enabling exceeds size of buffer")
        if self.checked.destructive and not self.options.get("destructive"):
            raise CompileError("could not enable tracing: Destructive actions not allowed")
        if refusal is not None:
            raise refusal
        consumer.target_pid = self.macro_values.get("target", -1)
        if consumer.output_error is not None:  # the -v report could not be written
            self.close()
            return consumer.status()
        if ebpf is not None and getattr(ebpf, "kind", "") == "tracefs":
            return self._run_tracefs(ebpf, consumer)
        if ebpf is not None:
            return self._run_ebpf(ebpf, consumer)
        if self.tracer is None:
            kernel = self._kernel_providers()
            if kernel:
                raise CompileError(
                    f"could not enable tracing: {', '.join(kernel)} probes need a target process "
                    "(-c or -p) on the ptrace engine; system-wide tracing needs the eBPF engine"
                )
        from pydtrace.engines.signals import install_signal_handlers
        from pydtrace.engines.user.engine import UserEngine

        engine = UserEngine(self.checked, consumer, self.options)
        consumer.on_output_error = engine.stop  # a failed write ends the run as Ctrl-C does
        if self.tracer is not None:
            self.tracer.sink.engine = engine
            engine.tracer = self.tracer
        main = threading.current_thread() is threading.main_thread()
        if main:
            install_signal_handlers(engine)
        try:
            if self.tracer is not None and (not main or self.tracer.notifier is not None):
                # stop() from another thread (the API's, or the notifier's at an
                # exit() of a notified probe) ends a blocking wait
                self._start_waker()
                self.tracer.on_drain = self.stop
            self._starting(engine)
            engine.run()
        finally:
            self._end_waker()
            if self.tracer is not None:
                self.tracer.finish()
        return consumer.status()

    def _run_ebpf(self, engine: Any, consumer: Any) -> int:
        """Run the program in the kernel; -c children are released once every
        probe is attached, and the run ends when every target has exited."""
        from pydtrace.engines.ebpf.errors import EbpfError
        from pydtrace.engines.launch import LaunchError

        self.engine = engine
        consumer.on_output_error = engine.stop  # a failed write ends the run as Ctrl-C does
        if self.disasm:
            from pydtrace.engines.ebpf.codegen import disassemble_program

            consumer.err.write(disassemble_program(engine.compiled))
            consumer.err.flush()
        if self.launcher is not None:
            engine.tracer = self.launcher  # a second Ctrl-C finishes the targets
        if threading.current_thread() is threading.main_thread():
            from pydtrace.engines.signals import install_signal_handlers

            install_signal_handlers(engine)
        try:
            self._starting(engine)
            engine.run()
            if self._keeping is not None and engine.attached.is_set():
                try:
                    self._keep(engine)
                except Exception:  # (a program that cannot be pickled): compiled again next time
                    pass
        except EbpfError as e:
            raise CompileError(f"could not enable tracing: {e}") from None
        except LaunchError as e:
            raise CompileError(str(e)) from None
        finally:
            if self.launcher is not None:
                self.launcher.finish()
        return consumer.status()

    def _run_tracefs(self, engine: Any, consumer: Any) -> int:
        """Run on tracefs events (engines/tracefs); -S prints the filters set."""
        from pydtrace.engines.launch import LaunchError
        from pydtrace.engines.signals import install_signal_handlers
        from pydtrace.engines.tracefs.engine import TracefsEngineError

        self.engine = engine
        consumer.on_output_error = engine.stop
        if threading.current_thread() is threading.main_thread():
            install_signal_handlers(engine)
        try:
            self._starting(engine)
            if self.disasm:
                engine.setup()
                consumer.err.write(engine.filters_text())
                consumer.err.flush()
            engine.run()
        except TracefsEngineError as e:
            raise CompileError(f"could not enable tracing: {e}") from None
        except LaunchError as e:
            raise CompileError(str(e)) from None
        finally:
            engine.close()
            if self.launcher is not None:
                self.launcher.finish()
        return consumer.status()

    def disassembly(self) -> str | None:
        """-S with -e: the BPF programs this program compiles to (None when
        the eBPF engine cannot lower it)."""
        from pydtrace.engines.ebpf.engine import disassemble
        from pydtrace.engines.ebpf.errors import EbpfError

        try:
            return disassemble(self.checked, self.options, self.launcher)
        except EbpfError:
            return None

    def close(self) -> None:
        """Release traced processes if the session ends without running."""
        if self.early is not None:
            self.early.close()
            self.early = None
        if self._load_ahead is not None:
            self._load_ahead.close()
            self._load_ahead = None
        if self.tracer is not None:
            self.tracer.finish()
        if self.launcher is not None:
            self.launcher.finish()

    # --- stopping from another thread ------------------------------------------------------
    def stop(self) -> None:
        """End the run as Ctrl-C does (END runs, the aggregations are printed,
        -c commands still running are killed); safe from any thread, and
        before run() too (the run then ends as soon as it begins)."""
        with self._stop_lock:
            self._stop_asked = True
            engine = self.engine
            if engine is not None:
                engine.stop()
            if self._waker is not None:
                _wake(self._waker[1])

    def _starting(self, engine: Any) -> None:
        """The engine is made and about to run: stop() reaches it from now on."""
        with self._stop_lock:
            self.engine = engine
            if self._stop_asked:
                engine.stop()
        if self.on_start is not None:
            self.on_start(engine)

    def _tick(self) -> None:
        """The engine's loop goes round (Consumer.tick): the API's on_tick."""
        if self._waker is not None and self.tick_interval is not None:
            self._renew_waker()
        self.on_tick()

    def _start_waker(self) -> None:
        """A child of the tracing thread whose exit ends the ptrace loop's
        blocking waitid (which waits for any child of this thread): it exits
        when stop() asks, and after tick_interval seconds when ticks are asked
        for (stream()'s snapshots), to be started again by the tick. A signal
        cannot do it: Python runs handlers on the main thread only and
        retries the wait on any other."""
        import select

        from pydtrace.engines.launch import close_private_fds

        r, w = os.pipe()
        timeout = self.tick_interval
        pid = os.fork()
        if pid == 0:  # plain system calls only, never back into the caller
            try:
                close_private_fds(r)
                select.select([r], [], [], timeout)
            finally:
                os._exit(0)
        os.close(r)
        with self._stop_lock:
            self._waker = (pid, w)
            if self._stop_asked:
                _wake(w)

    def _renew_waker(self) -> None:
        """On a tick: a new waker once the last one's time is up."""
        with self._stop_lock:
            waker = self._waker
            if waker is None or self._stop_asked:
                return
        pid, w = waker
        try:
            gone, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            gone = pid  # the tracer's loop reaped it
        if not gone:
            return
        with self._stop_lock:
            self._waker = None
        os.close(w)
        self._start_waker()

    def _end_waker(self) -> None:
        """Let the waker go and reap it (unless the tracer's loop has)."""
        with self._stop_lock:
            waker, self._waker = self._waker, None
        if waker is None:
            return
        pid, w = waker
        _wake(w)
        os.close(w)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    def returncode(self) -> int | None:
        """The first -c command's exit status once it has ended, as subprocess
        gives it (-N: killed by signal N); None without a command."""
        targets = []
        if self.tracer is not None:
            targets = self.tracer.targets
        elif self.launcher is not None:
            targets = self.launcher.targets
        for t in targets:
            if t.created:
                return None if t.status is None else os.waitstatus_to_exitcode(t.status)
        return None


def _wake(fd: int) -> None:
    try:
        os.write(fd, b"w")
    except OSError:
        pass  # the waker is gone already (EPIPE): the wait it was for has ended


def _argv(cmd: str | list[str]) -> list[str]:
    """A -c command's argv: a string is split into words as dtrace does (no shell)."""
    return list(cmd) if isinstance(cmd, list) else (cmd.split() or [cmd])


class _KernelNames:
    """symbols.kernel_types.KernelTypes, imported and made when the checker
    or the parser first asks it something (a one-liner naming no kernel type
    never imports it)."""

    def __init__(self) -> None:
        self.real: Any = None

    def _get(self) -> Any:
        if self.real is None:
            from pydtrace.symbols.kernel_types import KernelTypes

            self.real = KernelTypes()
        return self.real

    def type_named(self, name: str) -> Any:
        return self._get().type_named(name)

    def is_typedef(self, name: str) -> bool:
        return bool(self._get().is_typedef(name))

    def symbol(self, module: str, name: str) -> Any:
        return self._get().symbol(module, name)


def _stack_call(checked: Any) -> Any:
    """The first stack() call of the program (kernel frames, which ptrace cannot
    see), or None; ustack() walks the stopped thread's frame pointers."""
    from pydtrace.lang.ast import find_call

    clauses = [[c.predicate, *(c.body or [])] for c in checked.clauses]
    return find_call(clauses, ("stack",))


def _syscall_table() -> Any:
    try:
        from pydtrace.probes.syscalls import table

        return table()
    except (ImportError, ValueError):
        return None


def _traces_everything(sink: Any, table: Any) -> bool:
    """With probes on (nearly) every syscall a filter would only cost time."""
    return len(sink.traced_numbers()) >= len(table.by_nr)


_STABILITY = (
    "internal",
    "private",
    "obsolete",
    "external",
    "unstable",
    "evolving",
    "stable",
    "standard",
)
_CLASS = ("unknown", "cpu", "platform", "group", "isa", "common")


def _valid_attributes(text: str) -> bool:
    """`Stable/Stable/Common`: name stability / data stability / dependency class."""
    parts = text.lower().split("/")
    if len(parts) != 3:
        return False
    return parts[0] in _STABILITY and parts[1] in _STABILITY and parts[2] in _CLASS


def _description_attributes(cat: Any, desc: Any) -> Any:
    """A description's attributes: its provider's when it names one, else
    dtrace's Unstable defaults (it cannot tell which provider will answer)."""
    from pydtrace.probes.catalogue import UNSTABLE_ATTRS, Probe, is_glob, probe_attrs

    prov = (
        cat.providers.get(desc.provider) if desc.provider and not is_glob(desc.provider) else None
    )
    if prov is None:
        return UNSTABLE_ATTRS[0]
    return probe_attrs(
        Probe(0, desc.provider, desc.module, desc.function, desc.name), prov.attrs()
    )[0]


def _attr_min_all(attrs: list[Any]) -> Any:
    from pydtrace.probes.catalogue import C_COMMON, STABLE, attr_min

    out = (STABLE, STABLE, C_COMMON)  # dtrace's defaults: Stable/Stable/Common
    for a in attrs:
        out = attr_min(out, a)
    return out


def _stability_report(kind: str, name: str, desc: Any) -> str:
    """dtrace -v's report for one program. Statement attributes are dtrace's
    defaults (Stable/Stable/Common): every identifier we accept has them."""
    from pydtrace.probes.catalogue import C_COMMON, CLASS_NAMES, STABILITY_NAMES, STABLE

    def block(title: str, a: Any) -> str:
        return (
            f"\n\t{title}\n\t\tIdentifier Names: {STABILITY_NAMES[a[0]]}\n"
            f"\t\tData Semantics:   {STABILITY_NAMES[a[1]]}\n\t\tDependency Class: {CLASS_NAMES[a[2]]}\n"
        )

    return (
        f"\nStability attributes for {kind} {name}:\n"
        + block("Minimum Probe Description Attributes", desc)
        + block("Minimum Statement Attributes", (STABLE, STABLE, C_COMMON))
        + "\n"
    )


def _cpp_errors() -> tuple[type[BaseException], ...]:
    try:
        from pydtrace.lang import cpp

        return tuple(x for x in (getattr(cpp, "CppError", None),) if x is not None) or (
            RuntimeError,
        )
    except ImportError:
        return (RuntimeError,)


# --- the Python API: trace() and stream() -------------------------------------------------


def _check_args(
    program: object,
    command: object,
    pids: object,
    options: object,
    timeout: object,
    args: object,
    interval: object = None,
) -> tuple[list[str | list[str]], list[int], list[tuple[str, object]], list[str]]:
    """The API's arguments checked (TypeError, ValueError, OptionError) and
    turned into a Session's: (commands, pids, settings, operands)."""
    if not isinstance(program, str):
        raise TypeError(f"program must be a str of D source, not {type(program).__name__}")
    commands: list[str | list[str]] = []
    if command is not None:
        if isinstance(command, str):
            if not command.split():
                raise ValueError("command is empty")
            commands.append(command)
        elif isinstance(command, (list, tuple)):
            if not all(isinstance(w, str) for w in command):
                raise TypeError("command must be a str or a list of str (an argv)")
            if not command:
                raise ValueError("command is empty")
            commands.append(list(command))
        else:
            raise TypeError(
                f"command must be a str or a list of str (an argv), not {type(command).__name__}"
            )
    pid_list: list[int] = []
    if pids is not None:
        if isinstance(pids, (str, bytes, int)) or not isinstance(pids, Iterable):
            raise TypeError(
                f"pids must be an iterable of ints (pids=[1234]), not {type(pids).__name__}"
            )
        for pid in pids:
            if isinstance(pid, bool) or not isinstance(pid, int):
                raise TypeError(f"pids must be ints, not {type(pid).__name__} ({pid!r})")
            if pid <= 0:
                raise ValueError(f"invalid pid: {pid}")
            pid_list.append(pid)
    settings = api_settings({} if options is None else options)
    for name, value in (("timeout", timeout), ("interval", interval)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
        if not value > 0:
            raise ValueError(f"{name} must be more than 0 seconds, not {value}")
    operands: list[str] = []
    if args is not None:
        if isinstance(args, (str, bytes)) or not isinstance(args, Iterable):
            raise TypeError(f"args must be a list of str ($1, $2, ...), not {type(args).__name__}")
        for a in args:
            if isinstance(a, bool) or not isinstance(a, (str, int)):
                raise TypeError(f"args must be str or int, not {type(a).__name__} ({a!r})")
            operands.append(str(a))
    return commands, pid_list, settings, operands


class _Discard(io.TextIOBase):
    """Where a stream's dtrace output goes when nobody asked for it."""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        return len(s)


class _Run:
    """A Session run on a thread of its own, handing what happens to the
    caller's thread through a queue: ("start",), ("record", Record),
    ("snapshot", Snapshot), then ("end", status) or ("error", exception).
    The thread compiles too: a ptrace tracer must be the thread that waits."""

    def __init__(self, session: Session, interval: float | None, timeout: float | None) -> None:
        self.session = session
        import queue

        self.events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.interval = interval
        self.timeout = timeout
        self.done = threading.Event()
        self.status: int | None = None
        self._next_tick = 0.0
        session.record_hook = self._record
        session.on_start = self._started
        if interval is not None:
            session.on_tick = self._tick
            session.tick_interval = interval
        self.thread = threading.Thread(target=self._main, name="pydtrace-session", daemon=True)

    def start(self) -> tuple[Any, ...]:
        """Start the run; return its first event: ("start",), ("end", n) or ("error", e)."""
        self.thread.start()
        return self.events.get()

    def _main(self) -> None:
        s = self.session
        try:
            try:
                status = s.run()
            except KeyboardInterrupt:  # stop() while the eBPF engine was loading
                if s.err is not None:
                    s.err.write(f"{s.pname}: interrupted before tracing began\n")
                status = 1
            except BaseException:
                s.close()
                raise
            self.status = status
            consumer = getattr(s, "consumer", None)
            if consumer is not None and consumer.aggs:
                from pydtrace.events import snapshot_of

                self.events.put(("snapshot", snapshot_of(consumer.aggs, final=True)))
            self.events.put(("end", status))
        except BaseException as e:  # handed to the caller's thread
            self.events.put(("error", e))
        finally:
            self.done.set()

    def _started(self, engine: Any) -> None:
        self._next_tick = time.monotonic() + (self.interval or 0)
        self.events.put(("start",))
        if self.timeout is not None:
            threading.Thread(
                target=self._stop_after, args=(engine, self.timeout), daemon=True
            ).start()

    def _stop_after(self, engine: Any, timeout: float) -> None:
        """stop() once the probes have been enabled `timeout` seconds (the
        eBPF engine says when they are: loading may take a while)."""
        attached = getattr(engine, "attached", None)
        if attached is not None:
            while not attached.wait(0.05):
                if self.done.is_set():
                    return
        if not self.done.wait(timeout):
            self.session.stop()

    def _record(self, rec: Any) -> None:
        from pydtrace.events import record_of, snapshot_of

        consumer = self.session.consumer
        self.events.put(("record", record_of(rec, consumer.target_pid)))
        for item in rec.items:
            if item.action.kind == "printa":  # what dtrace prints: these aggregations now
                aggs = {n: consumer.aggs[n] for n in item.action.aggs}
                self.events.put(("snapshot", snapshot_of(aggs)))

    def _tick(self) -> None:
        """On the tracing thread: a snapshot every `interval` seconds."""
        now = time.monotonic()
        if self.interval is None or now < self._next_tick - self.interval / 10:
            return  # (a ptrace waker may wake us a little early)
        self._next_tick = now + self.interval
        consumer = self.session.consumer
        if not consumer.aggs:
            return
        from pydtrace.events import snapshot_of

        read = getattr(self.session.engine, "snapshot", None)  # the eBPF engine's maps
        if read is not None:
            read()
        self.events.put(("snapshot", snapshot_of(consumer.aggs)))

    def finish(self) -> None:
        """Stop the run (if it still goes) and wait until it has cleaned up."""
        self.session.stop()
        self.thread.join()


def _session(
    program: str,
    commands: list[str | list[str]],
    pids: list[int],
    settings: list[tuple[str, object]],
    operands: list[str],
    out: Any,
    err: Any,
) -> Session:
    return Session(
        [Program("s", "<program>", source=program)],
        settings=settings,
        operands=operands,
        out=out,
        err=err,
        testing=False,
        commands=commands,
        pids=pids,
    )


def trace(
    program: str,
    *,
    command: str | list[str] | None = None,
    pids: Iterable[int] | None = None,
    options: dict[str, Any] | None = None,
    timeout: float | None = None,
    args: list[str] | None = None,
    quiet: bool = False,
) -> Result:
    """Compile and run a D program to its end, as dtrace does; return a Result.

    program: D source (clauses, declarations, pragmas, as in a script).
    command: a command to run and trace, as -c: an argv list, or a str split
    into words at whitespace (no shell); the trace ends when it exits.
    pids: processes to trace, as -p.  options: dtrace options by name, as
    -x takes them ({"bufsize": "4m", "quiet": True, "engine": "ptrace"}).
    timeout: end the trace after this many seconds of tracing, as Ctrl-C
    would (END runs).  args: the program's $1, $2 ...  quiet: options quiet.
    The eBPF engine runs it as root, the ptrace engine otherwise (or with
    options engine="ptrace"), as the dtrace command chooses.

    Raises TypeError or ValueError for bad arguments, OptionError for an
    unknown option or a bad value, CompileError when the program does not
    compile or cannot be enabled.  Runtime errors are in Result.errors."""
    commands, pid_list, settings, operands = _check_args(
        program, command, pids, options, timeout, args
    )
    if quiet:
        settings.append(("quiet", True))
    out, err = io.StringIO(), io.StringIO()
    s = _session(program, commands, pid_list, settings, operands, out, err)
    run = _Run(s, None, timeout)
    records: list[Any] = []
    aggregations: dict[str, dict[tuple, Any]] = {}
    try:
        event = run.start()
        while event[0] != "end":
            if event[0] == "error":
                raise event[1]
            if event[0] == "record":
                records.append(event[1])
            elif event[0] == "snapshot" and event[1].final:
                aggregations = event[1].aggregations
            event = run.events.get()
    finally:
        run.finish()
    return Result(event[1], out.getvalue(), err.getvalue(), records, aggregations, s.returncode())


class Stream:
    """The events of a running D program (stream() makes one): iterate over
    it for events.Record and events.Snapshot objects as they come; the
    iteration ends when the program does.  Leaving it early (break, an
    exception, close(), or the Stream being dropped) stops the program and
    cleans up: -c commands killed, probes and BPF objects gone.

    status: dtrace's exit status once the program has ended (else None);
    returncode: the command's (Result.returncode)."""

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._ended = False
        self.status: int | None = None

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Any:
        if self._ended:
            raise StopIteration
        event = self._run.events.get()
        if event[0] in ("record", "snapshot"):
            return event[1]
        self._ended = True
        self._run.finish()
        if event[0] == "error":
            raise event[1]
        self.status = event[1]
        raise StopIteration

    def stop(self) -> None:
        """End the program as Ctrl-C does, from any thread: the iteration goes
        on with what END records and the final snapshot, then ends."""
        self._run.session.stop()

    def close(self) -> None:
        """Stop the program, wait until it has cleaned up, drop what is left."""
        if not self._ended:
            self._ended = True
            self._run.finish()
            self.status = self._run.status

    @property
    def returncode(self) -> int | None:
        """The command's exit status once the program has ended (Result.returncode)."""
        return self._run.session.returncode() if self._run.done.is_set() else None

    @property
    def errors(self) -> str:
        """What dtrace has said on stderr so far (runtime errors, drops)."""
        err = self._run.session.err
        return err.getvalue() if isinstance(err, io.StringIO) else ""

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass  # at interpreter exit


def stream(
    program: str,
    *,
    command: str | list[str] | None = None,
    pids: Iterable[int] | None = None,
    options: dict[str, Any] | None = None,
    timeout: float | None = None,
    args: list[str] | None = None,
    interval: float | None = 1.0,
    out: TextIO | None = None,
) -> Stream:
    """Start a D program and return a Stream of its events as they happen:
    an events.Record for each clause firing that records data, an
    events.Snapshot of the aggregations every `interval` seconds (None: none),
    of those a printa() prints when it does, and a final one after END.

    The arguments are trace()'s; out receives the text dtrace prints (else it
    is dropped).  The program is compiled and enabled before stream()
    returns, so TypeError, OptionError and CompileError are raised here.
    Events wait in an unbounded queue until read."""
    commands, pid_list, settings, operands = _check_args(
        program, command, pids, options, timeout, args, interval
    )
    if out is not None and not callable(getattr(out, "write", None)):
        raise TypeError(f"out must be a writable text file, not {type(out).__name__}")
    s = _session(program, commands, pid_list, settings, operands,
                 out if out is not None else _Discard(), io.StringIO())  # fmt: skip
    run = _Run(s, interval, timeout)
    first = run.start()
    if first[0] == "error":
        run.finish()
        raise first[1]
    st = Stream(run)
    if first[0] == "end":  # ended before it began (a failed write)
        st._ended = True
        run.finish()
        st.status = first[1]
        return st
    # return once the probes are enabled (the eBPF engine attaches them as it
    # starts): what the caller does next is traced
    attached = getattr(s.engine, "attached", None)
    if attached is not None:
        while not attached.wait(0.05) and not run.done.is_set():
            pass
        if not attached.is_set():  # it ended as it started: an error is raised here too
            events = []
            while not run.events.empty():
                events.append(run.events.get())
            if events and events[-1][0] == "error":
                run.finish()
                raise events[-1][1]
            for event in events:
                run.events.put(event)
    return st
