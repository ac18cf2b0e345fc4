"""Fuzzing the two readers of untrusted input: the D front end (programs
mutated token by token, with huge literals, deep nesting, NUL bytes, invalid
UTF-8 and random bytes) and kdump (a real ktrace recording with bytes flipped,
cut, inserted and lengths forged). Whatever the input: a clean error or a
result, never a traceback, never a hang, memory under a fixed bound.

Seeded (derandomize=True: the same inputs every run) and sized to add well
under a minute; PYDTRACE_FUZZ_SCALE=N multiplies the number of inputs for a
longer campaign, PYDTRACE_FUZZ_SEED=N draws other inputs. Most inputs run in
process (the API, kdump.dump) under an address-space cap; a few go through the
commands. The inputs tried are counted and reported at the end.
"""

from __future__ import annotations

import io
import os
import re
import resource
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from conftest import ROOT
from pydtrace.ktrace import kdump as K
from pydtrace.lang.errors import CompileError
from pydtrace.session import Program, Session

SCALE = max(1, int(os.environ.get("PYDTRACE_FUZZ_SCALE", "1")))
SEED = os.environ.get("PYDTRACE_FUZZ_SEED")  # unset: the same inputs every run
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
HANG = 60  # seconds one input may take in process (generous: the machine may be loaded)
MEMORY = 1 << 30  # address space the in-process inputs may add to this process's
CLI_MEMORY = 1 << 30  # address space of one command run
TRIED: Counter[str] = Counter()


def fuzz_settings(n: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    chosen = settings(
        max_examples=n * SCALE,
        derandomize=SEED is None,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    if SEED is None:
        return chosen
    return lambda test: seed(int(SEED))(chosen(test))


class Hang(Exception):
    pass


class bounded:
    """One input's run: at most HANG seconds (SIGALRM in the main thread)."""

    def __enter__(self) -> None:
        def ring(signum: int, frame: object) -> None:
            raise Hang(f"an input took more than {HANG} s")

        self.old = signal.signal(signal.SIGALRM, ring)
        signal.alarm(HANG)

    def __exit__(self, *exc: object) -> None:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.old)


def address_space() -> int:
    with open("/proc/self/status") as f:
        kb = next(line.split()[1] for line in f if line.startswith("VmSize:"))
    return int(kb) * 1024


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    """Cap this process's address space at MEMORY over what it has (an input
    that needs more fails with MemoryError), and say how many inputs were tried."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = address_space() + MEMORY
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    plugins = request.config.pluginmanager
    term, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if term is not None and capture is not None:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items()))
        with capture.global_and_fixture_disabled():
            term.write_line(
                f"\nfuzz: {sum(TRIED.values())} inputs tried ({counts}); peak RSS grew {grown >> 20} MiB"
            )


# --- D programs ---------------------------------------------------------------------------
SEEDS = [
    """BEGIN { x = 1; y = x + 2 * 3; printf("%d %s %5.2d|%-8s|\\n", y, "str", 7, "l"); exit(0); }""",
    """#pragma D option quiet
#pragma D option bufsize=64k
struct point { int x; int y; };
union u { int i; char c[4]; };
enum color { RED, GREEN = 5, BLUE };
typedef struct point point_t;
BEGIN { this->p = (point_t *)alloca(sizeof (point_t)); this->p->x = 3; this->p->y = BLUE;
        trace(this->p->x + this->p->y); trace(offsetof(struct point, y)); }
BEGIN { exit(0); }""",
    """inline int TWICE = 2;
inline int twice[int v] = v * TWICE;
inline string NAME = "pydtrace";
BEGIN { trace(twice[21]); trace(NAME); exit(0); }""",
    """struct in { int a; };
struct out { int b; string s; };
translator struct out < struct in *p > { b = p->a * 2; s = "t"; };
BEGIN { this->i = (struct in *)alloca(sizeof (struct in)); this->i->a = 4;
        trace(xlate<struct out>(this->i).b); exit(0); }""",
    """syscall::read:entry, syscall::write:entry /pid == $target && arg2 > 0/
{ self->ts = timestamp; @bytes[probefunc] = sum(arg2); @dist = quantize(arg2); }
syscall::read:return /self->ts/ { @lat = lquantize(timestamp - self->ts, 0, 1000, 10); self->ts = 0; }
END { printa("%s %@d\\n", @bytes); trunc(@bytes, 5); normalize(@dist, 2); }""",
    """BEGIN { s = strjoin("abc", "def"); t = substr(s, 1, 3); n = strlen(t);
        i = index(s, "d"); u = toupper(s); trace(lltostr(n + i)); trace(u);
        a["k", 1] = 2; trace(a["k", 1]); exit(0); }""",
    """BEGIN { x = 5; if (x > 3) { y = 1; } else if (x < 0) { y = 2; } else { { y = 3; } }
        z = x ? y : -y; w = !x || ~y && (x ^ y) | (x & 3) << 2 >> 1; trace(w); trace(z); exit(0); }""",
    """BEGIN { spec = speculation(); }
BEGIN { speculate(spec); printf("speculated %d\\n", 1); }
BEGIN { commit(spec); }
BEGIN { exit(0); }""",
    """profile-97 /cpu == 0/ { @[stack()] = count(); @u[ustack(5)] = count(); }
tick-1sec { printa(@); clear(@); }
dtrace:::END { printf("%Y %a\\n", walltimestamp, arg0); }""",
    """proc:::exec-success { trace(execname); trace(curpsinfo->pr_psargs); }
proc:::exit /args[0] != 0/ { @[execname] = count(); }""",
    """BEGIN { x = $1; s = $$2; printf("%d %s %d\\n", x, s, $pid); exit(0); }""",
    """BEGIN { @c = count(); @s = sum(10); @m = max(3); @n = min(-3); @a = avg(4);
        @d = stddev(2); @l = llquantize(100, 10, 0, 6, 20); printa(@c); exit(0); }""",
    """int g; string names[int]; self int t; this int c;
BEGIN { g = 1; names[1] = "one"; self->t = 2; this->c = 3; trace(names[g]);
        trace((char)g); trace((unsigned long long)-1); trace(sizeof (int) * 8); exit(0); }""",
    """provider myprov { probe myprobe(int, char *); };
BEGIN { printf("%c %x %o %u %lld %p %i\\n", 'a', 255, 8, 3, 1LL << 40, 0, 1); exit(0); }""",
    """#!/usr/sbin/dtrace -s
/* a comment */
BEGIN
/1/
{
\tprintf("%*d|%-*s|%.*s\\n", 5, 1, 4, "ab", 2, "xyz");
\ttracemem(alloca(8), 8);
\texit(0);
}""",
    """syscall::openat:entry { printf("%s %d\\n", copyinstr(arg1), (int)arg2);
    @[execname, ustackdepth] = count(); self->x[arg0] = arg1; }""",
]
TOKEN = re.compile(
    r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|/\*.*?\*/|[A-Za-z_`$@][A-Za-z0-9_`$:.*-]*'
    r"|0[xX][0-9A-Fa-f]+|[0-9]+|->|\+\+|--|<<=?|>>=?|[<>=!]=|&&|\|\||\^\^|[-+*/%&|^]=|\s+|.",
    re.S,
)
VOCAB = (
    "( ) { } [ ] ; , / : ? . -> = == + - * & ! ~ < > << >> ++ -- && || ^^ ` @ $ $1 $$1 "
    "if else int char long unsigned struct union enum typedef inline translator provider "
    "probe sizeof offsetof stringof xlate self this string void const BEGIN END tick-1s "
    "syscall::: profile-97 printf trace exit count quantize speculation commit @a x y "
    "arg0 args[0] execname pid curthread #pragma #define #include \\ \" ' /* */ 0x 0 1"
).split()
WRAPS = [
    ("(", ")"),
    ("-", ""),
    ("!", ""),
    ("~", ""),
    ("(int)", ""),
    ("x+", ""),
    ("", "+x"),
    ("{", "}"),
    ("if (1) {", "}"),
    ("a[", "]"),
    ("strlen(", ")"),
    ("x ? ", " : 1"),
    ("sizeof ", ""),
    ("*", ""),
    ("&", ""),
    ("", "->y"),
    ("", "[0]"),
    ("(x, ", ")"),
]


@st.composite
def mutated_program(draw: st.DrawFn) -> str:
    tokens = TOKEN.findall(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        n = len(tokens)
        i = draw(st.integers(0, max(n - 1, 0)))
        kind = draw(st.integers(0, 8))
        if kind == 0 and n:  # delete a token
            del tokens[i]
        elif kind == 1 and n:  # swap two tokens
            j = draw(st.integers(0, n - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == 2 and n:  # duplicate a run of tokens
            j = draw(st.integers(i, min(n, i + 12)))
            tokens[i:i] = tokens[i:j] * draw(st.integers(1, 3))
        elif kind == 3:  # insert a token
            tokens.insert(i, " " + draw(st.sampled_from(VOCAB)) + " ")
        elif kind == 4:  # a huge literal
            digits = draw(st.integers(1, 6000))
            lit = draw(st.sampled_from(["9" * digits, "0x" + "f" * digits, "0" + "7" * digits]))
            suffix = draw(st.sampled_from(["", "u", "ul", "ull", "LL"]))
            tokens.insert(i, f" {lit}{suffix} ")
        elif kind == 5:  # deep nesting around a token
            left, right = draw(st.sampled_from(WRAPS))
            depth = draw(st.integers(1, 400))
            inner = tokens[i] if n else "1"
            tokens[i : i + 1] = [left * depth + inner + right * depth]
        elif kind == 6:  # random bytes: NUL, invalid UTF-8 (kept as surrogates)
            raw = draw(st.binary(min_size=1, max_size=16))
            tokens.insert(i, raw.decode("utf-8", "surrogateescape"))
        elif kind == 7:  # any character (a lone surrogate is no file's text: bytes cover that)
            tokens.insert(i, draw(st.characters(blacklist_categories=("Cs",))))
        elif kind == 8 and n:  # cut the program
            tokens = tokens[:i]
    return "".join(tokens)


def compile_program(text: str, kind: str, tmp: Path, engine: str | None = None) -> Session:
    """A mutated program compiled (given as -n text or a -s script); CompileError
    is the only error allowed."""
    if kind == "s":
        script = tmp / "fuzz.d"
        script.write_bytes(text.encode("utf-8", "surrogateescape"))
        program = Program("s", str(script))
    else:
        program = Program("n", text)
    settings_ = [("argref", None)] + ([("engine", engine)] if engine else [])
    s = Session([program], settings=settings_, operands=["42", "word"],
                out=io.StringIO(), err=io.StringIO())  # fmt: skip
    s.compile()
    return s


@fuzz_settings(1200)
@given(text=mutated_program(), kind=st.sampled_from(["n", "s"]))
def test_mutated_programs_compile_or_fail_cleanly(tmp_path_factory, text: str, kind: str) -> None:
    TRIED["D compile"] += 1
    tmp = tmp_path_factory.getbasetemp()
    with bounded():
        try:
            compile_program(text, kind, tmp)
        except CompileError:
            pass


@fuzz_settings(250)
@given(text=mutated_program())
def test_mutated_programs_that_compile_run_cleanly(tmp_path_factory, text: str) -> None:
    # lowered to BPF (not loaded), and run on the user engine, in process; a last
    # BEGIN clause ends any program that runs
    TRIED["D run"] += 1
    tmp = tmp_path_factory.getbasetemp()
    with bounded():
        try:
            s = compile_program(text + "\nBEGIN\n{\n\texit(0);\n}\n", "s", tmp, "ptrace")
        except CompileError:
            return
        assert isinstance(s.disassembly(), str | None)  # the eBPF code generator, not loaded
        try:
            assert isinstance(s.run(), int)
        except CompileError:  # refused at the start (a provider the user engine lacks)
            pass
        finally:
            s.close()


def run_limited(argv: list[str], timeout: float = 120) -> tuple[int, str]:
    """A command's exit status and stderr (its output may be any bytes: kdump
    prints names as they were recorded)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CLI_MEMORY, CLI_MEMORY))

    p = subprocess.run([sys.executable, "-m", *argv], capture_output=True, env=ENV,
                       timeout=timeout, preexec_fn=cap, stdin=subprocess.DEVNULL)  # fmt: skip
    return p.returncode, p.stderr.decode("utf-8", "backslashreplace")


@fuzz_settings(6)
@given(text=mutated_program())
def test_mutated_programs_through_the_command(tmp_path_factory, text: str) -> None:
    TRIED["D command"] += 1
    script = tmp_path_factory.getbasetemp() / "cli.d"
    script.write_bytes((text + "\nBEGIN\n{\n\texit(0);\n}\n").encode("utf-8", "surrogateescape"))
    status, err = run_limited(
        ["pydtrace", "-q", "-x", "engine=ptrace", "-s", str(script), "42", "word"]
    )
    assert "Traceback" not in err
    assert status in (0, 1), err
    for line in err.splitlines():  # dtrace's messages (some go on, indented by a tab)
        assert line.startswith(("pydtrace: ", "\t")) or not line.strip(), err


# --- ktrace files -------------------------------------------------------------------------
class Recordings(list):
    def __repr__(self) -> str:  # not 40 kB of bytes in a falsifying example
        return f"<{len(self)} recordings>"


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> list[bytes]:
    """Real recordings: `ktrace -t c /bin/true`, and one with more record types."""
    tmp = tmp_path_factory.mktemp("ktrace")
    out = []
    for name, args in (("true", ["-t", "c", "/bin/true"]),
                       ("echo", ["-t", "cnixfs", "/bin/echo", "hi"])):  # fmt: skip
        path = tmp / f"{name}.out"
        p = subprocess.run([sys.executable, "-m", "pydtrace.cli.ktrace", "-f", str(path), *args],
                           capture_output=True, env=ENV, timeout=120, cwd=tmp)  # fmt: skip
        if p.returncode != 0 or not path.exists():
            pytest.skip(f"ktrace cannot record here: {p.stderr.decode().strip()}")
        out.append(path.read_bytes())
    return Recordings(out)


# A trace mutation, drawn small (the falsifying example shows it, not the file):
# (kind, where as a fraction of the file, argument)
TRACE_EDITS = st.lists(
    st.tuples(st.integers(0, 6), st.floats(0, 1), st.integers(0, 1 << 16), st.binary(max_size=80)),
    min_size=1,
    max_size=6,
)
U64S = [0, 1, 0xFFFFFFFF, 1 << 24, (1 << 24) + 1, 1 << 63, (1 << 64) - 1]
U32S = [0, 1, 0x7FFF, 0x8000, 0xFFFFFFFF, 0x80000000, 4096]


def mutate_trace(original: bytes, edits: list[tuple[int, float, int, bytes]]) -> bytes:
    data = bytearray(original)
    for kind, where, arg, raw in edits:
        n = len(data)
        i = min(int(where * n), max(n - 1, 0))
        if kind == 0 and n:  # flip bits
            data[i] ^= arg % 255 + 1
        elif kind == 1:  # cut
            del data[i:]
        elif kind == 2:  # insert bytes
            data[i:i] = raw or b"\0"
        elif kind == 3 and n:  # delete a run
            del data[i : i + arg % 200 + 1]
        elif kind == 4 and n:  # duplicate a run
            data[i:i] = data[i : i + arg % 300 + 1]
        elif kind == 5:  # forge a header's u64 (length, lost count, seconds, nanoseconds)
            at = i // 64 * 64 + (56, 48, 16, 24)[arg % 4]
            if at + 8 <= n:
                data[at : at + 8] = U64S[arg // 4 % len(U64S)].to_bytes(8, "little")
        elif kind == 6 and n >= 4:  # forge a u32 anywhere (type words, sizes in payloads)
            at = min(i, n - 4)
            data[at : at + 4] = U32S[arg % len(U32S)].to_bytes(4, "little")
    return bytes(data)


OPTION_SETS = [
    {}, {"json": True}, {"hexmode": 1}, {"hexmode": 2}, {"fancy": False, "decimal": True},
    {"tids": True, "absolute": True, "relative": True}, {"relative": True, "maxdata": 3},
    {"types": K.trace_types("+wX")}, {"pid": 1},
]  # fmt: skip


@fuzz_settings(1200)
@given(which=st.integers(0, 1), edits=TRACE_EDITS, options=st.sampled_from(OPTION_SETS))
def test_mutated_traces_through_kdump(tmp_path_factory, recordings, which, edits, options) -> None:
    TRIED["kdump"] += 1
    path = tmp_path_factory.getbasetemp() / "fuzz.ktr"
    path.write_bytes(mutate_trace(recordings[which], edits))
    out, err = io.BytesIO(), io.StringIO()
    with bounded():
        try:
            status = K.dump(str(path), K.Options(**options), out, err)
        except K.KdumpError:  # a user error: one line, exit status 1 (never DecoderBug)
            return
    assert status == 0


@fuzz_settings(6)
@given(
    which=st.integers(0, 1),
    edits=TRACE_EDITS,
    flags=st.sampled_from([[], ["--json"], ["-X"], ["-n", "-H", "-T"]]),
)
def test_mutated_traces_through_the_command(
    tmp_path_factory, recordings, which, edits, flags
) -> None:
    TRIED["kdump command"] += 1
    path = tmp_path_factory.getbasetemp() / "cli.ktr"
    path.write_bytes(mutate_trace(recordings[which], edits))
    status, err = run_limited(["pydtrace.cli.kdump", *flags, "-f", str(path)])
    assert "Traceback" not in err and "internal error" not in err
    assert status in (0, 1), err
    if status == 1:
        assert err.count("\n") == 1 and err.startswith("kdump: "), err
