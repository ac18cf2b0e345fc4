"""Compiled programs kept between runs (engines/ebpf/program_cache.py): a
later run of the same program starts from the kept compile, patched for its
own $pid and for the wall clock of now; what is learned of where $pid stands
is proved by two compiles; a value folded into another is never kept; an
entry is read only from a place no other user controls."""

from __future__ import annotations

import io
import marshal
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, bpf_maps_ok, need
from pydtrace.engines.ebpf import program_cache as pc
from pydtrace.engines.ebpf.insn import Assembler

NOBODY = 65534


# --- the code: encoding, patching, learning -------------------------------------------
def _code(pid: int, pgid: int = 77, *, reg: int = 2, extra: int = 40) -> pc.Code:
    """A program reading $pid into r1 and $pgid into r2 (reg), with a map load
    and the wall clock's offset between them."""
    a = Assembler()
    a.movi(1, pid)
    a.ld_map(3, "records")
    a.ld_wall_offset(4, 123456789)
    a.movi(reg, pgid)
    a.movi(5, extra)
    a.movi(0, 0)
    a.exit()
    return pc.freeze(a.insns)


def _kept(values: dict[str, int], code: pc.Code, rest: object = ("rest",)) -> pc.Kept:
    return pc.Kept("key", values, {}, pickle.dumps(rest), [code])


def _imm(code: pc.Code, slot: int) -> int:
    return int.from_bytes(code.data[slot * 8 + 4 : slot * 8 + 8], "little", signed=True)


def test_two_compiles_show_where_pid_stands_and_a_third_run_is_patched() -> None:
    old = _kept({"pid": 1234}, _code(1234))
    new = _kept({"pid": 5678}, _code(5678))
    learned = pc.learn(old, new)
    assert learned.known == {"pid": [(0, 0)]}
    (code,) = pc.relocate(learned, {"pid": 999})  # type: ignore[misc]
    assert _imm(code, 0) == 999
    # everything else as compiled: pgid, the other immediates, the map's and the clock's slots
    assert code.data[8:] == learned.code[0].data[8:]
    assert pc.relocate(learned, {"pid": 5678}) == learned.code


def test_an_entry_whose_pid_places_are_not_known_is_not_used_for_another_pid() -> None:
    first = pc.learn(None, _kept({"pid": 1234}, _code(1234)))
    assert first.known == {}
    assert pc.relocate(first, {"pid": 1234}) == first.code
    assert pc.relocate(first, {"pid": 4321}) is None


def test_a_value_made_from_pid_is_not_learned() -> None:
    """$pid + 1 compiled: the immediates differ, but not as $pid's values."""
    learned = pc.learn(_kept({"pid": 1234}, _code(1235)), _kept({"pid": 5678}, _code(5679)))
    assert learned.known == {}


def test_two_variables_of_one_value_are_not_told_apart() -> None:
    old = _kept({"pid": 1234, "pgid": 1234}, _code(1234, 1234))
    new = _kept({"pid": 5678, "pgid": 5678}, _code(5678, 5678))
    assert pc.learn(old, new).known == {}


def test_a_difference_beyond_an_immediate_is_not_learned() -> None:
    old = _kept({"pid": 1234}, _code(1234, reg=2))
    new = _kept({"pid": 5678}, _code(5678, reg=6))
    assert pc.learn(old, new).known == {}


def test_what_is_kept_beside_the_code_must_be_the_same() -> None:
    old = _kept({"pid": 1234}, _code(1234), rest=("layout", 1))
    new = _kept({"pid": 5678}, _code(5678), rest=("layout", 2))
    assert pc.learn(old, new).known == {}


def test_a_variable_of_the_same_value_keeps_the_places_learned_before() -> None:
    once = pc.learn(
        _kept({"pid": 1, "pgid": 50}, _code(1, 50)), _kept({"pid": 2, "pgid": 60}, _code(2, 60))
    )
    assert once.known == {"pid": [(0, 0)], "pgid": [(0, 5)]}
    twice = pc.learn(once, _kept({"pid": 3, "pgid": 60}, _code(3, 60)))
    assert twice.known == {"pid": [(0, 0)], "pgid": [(0, 5)]}
    (code,) = pc.relocate(twice, {"pid": 4, "pgid": 70})  # type: ignore[misc]
    assert (_imm(code, 0), _imm(code, 5)) == (4, 70)


def test_a_slot_that_does_not_hold_the_old_value_refuses_the_patch() -> None:
    learned = pc.learn(_kept({"pid": 1234}, _code(1234)), _kept({"pid": 5678}, _code(5678)))
    learned.known["pid"] = [(0, 6)]  # movi r5, 40: not $pid's
    assert pc.relocate(learned, {"pid": 999}) is None


def test_map_fds_and_the_wall_clock_are_filled_at_load_time() -> None:
    code = _code(1234)
    assert code.maps == ((12, "records"),) and code.walls == (24,)
    assert code.data[28:32] == code.data[36:40] == bytes(4)  # the compile's clock: not kept
    before = time.time_ns() - time.monotonic_ns()
    data = code.with_fds({"records": 41})
    after = time.time_ns() - time.monotonic_ns()
    assert int.from_bytes(data[12:16], "little") == 41
    wall = int.from_bytes(data[28:32], "little") | int.from_bytes(data[36:40], "little") << 32
    assert before - 1_000_000 <= wall <= after + 1_000_000


def test_objects_compare_by_value_not_by_their_pickles() -> None:
    class Box:
        def __init__(self, items: object) -> None:
            self.items = items
            self.me = self

    a = Box(frozenset(f"name{i}" for i in range(50)))
    b = Box(frozenset(f"name{i}" for i in reversed(range(50))))
    assert pc.same(a, b)
    assert not pc.same(a, Box(frozenset(["name0"])))
    assert not pc.same([1, 2], (1, 2))


def test_the_layouts_copies_of_pid_are_found_compared_by_name_and_set() -> None:
    """A record layout keeps its action's arguments (the AST): the literal
    of $pid there is found, equal to another run's, and given this run's value."""
    from pydtrace.lang import ast

    def layout(value: int) -> dict[str, object]:
        lit = ast.IntLit(value, str(value))
        lit.macro = "pid"  # type: ignore[attr-defined]
        return {"args": [ast.IntLit(7, "7"), lit], "name": "printf"}

    a, b = layout(1234), layout(5678)
    assert pc.same(a, b)
    assert not pc.same(a, {"args": [ast.IntLit(8, "8"), a["args"][1]], "name": "printf"})  # type: ignore[index]
    (lit,) = pc.macro_literals(a)
    assert lit is a["args"][1]  # type: ignore[index]
    pc.set_macro_literals([lit], {"pid": 999})
    assert (lit.value, lit.text) == (999, "999")


# --- where entries are kept --------------------------------------------------------------
def test_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYDTRACE_CACHE", "off")
    assert pc.cache_path() is None
    monkeypatch.setenv("PYDTRACE_CACHE", "relative/dir")
    assert pc.cache_path() is None
    monkeypatch.setenv("PYDTRACE_CACHE", str(tmp_path / "c"))
    assert pc.cache_path() == str(tmp_path / "c")
    monkeypatch.delenv("PYDTRACE_CACHE")
    assert pc.cache_path() == ("/run/pydtrace" if os.geteuid() == 0 else pc.cache_path())


def _owned_by_nobody(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a file of another user needs root")
    os.chown(path, NOBODY, NOBODY)


def test_a_private_directory_is_made_and_used(tmp_path: Path) -> None:
    assert pc.open_private_dir(str(tmp_path / "cache"), make=False) is None
    assert not (tmp_path / "cache").exists()
    fd = pc.open_private_dir(str(tmp_path / "cache"))
    assert fd is not None
    os.close(fd)
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700


def test_a_lookup_makes_no_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYDTRACE_CACHE", str(tmp_path / "cache"))
    assert pc.load("a slot", "a key") is None
    assert pc.look_ahead("a slot") is None
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("how", ["parent writable by others", "parent of another user",
                                 "a link", "another user's", "open to others"])  # fmt: skip
def test_a_directory_another_user_could_change_is_not_used(tmp_path: Path, how: str) -> None:
    parent = tmp_path / "p"
    parent.mkdir(mode=0o755)
    cache = parent / "cache"
    if how == "parent writable by others":
        parent.chmod(0o777)
    elif how == "parent of another user":
        _owned_by_nobody(parent)
    elif how == "a link":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        cache.symlink_to(tmp_path / "elsewhere")
    elif how == "another user's":
        cache.mkdir(mode=0o700)
        _owned_by_nobody(cache)
    else:
        cache.mkdir(mode=0o755)
    assert pc.open_private_dir(str(cache)) is None


def _entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[pc.Kept, Path]:
    monkeypatch.setenv("PYDTRACE_CACHE", str(tmp_path / "cache"))
    kept = _kept({"pid": 1}, _code(1))
    kept.key = "the key"
    pc.store(kept, "the slot")
    (path,) = (tmp_path / "cache").iterdir()
    return kept, path


def test_an_entry_is_stored_and_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kept, path = _entry(tmp_path, monkeypatch)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.name.startswith(pc.boot_id()[:8] + "-")
    loaded = pc.load("the slot", "the key")
    assert loaded is not None and loaded.code == kept.code and loaded.values == {"pid": 1}
    assert pc.load("the slot", "another key") is None
    assert pc.load("another slot", "the key") is None


@pytest.mark.parametrize("how", ["another user's", "open to others", "a link", "torn"])
def test_an_entry_that_is_not_ours_alone_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    _, path = _entry(tmp_path, monkeypatch)
    if how == "another user's":
        _owned_by_nobody(path)
    elif how == "open to others":
        path.chmod(0o644)
    elif how == "a link":
        target = tmp_path / "target"
        path.rename(target)
        path.symlink_to(target)
    else:
        path.write_bytes(path.read_bytes()[:40])
    assert pc.load("the slot", "the key") is None
    assert pc.look_ahead("the slot") is None


def test_entries_of_another_boot_and_the_oldest_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    (cache / "00000000-0123456789abcdef").write_bytes(b"old boot")
    boot = pc.boot_id()[:8]
    for i in range(pc.MAX_ENTRIES):
        f = cache / f"{boot}-{i:016x}"
        f.write_bytes(b"x")
        os.utime(f, ns=(i * 1_000_000_000, i * 1_000_000_000))
    monkeypatch.setenv("PYDTRACE_CACHE", str(cache))
    pc.store(_kept({"pid": 1}, _code(1)), "a slot")
    names = sorted(p.name for p in cache.iterdir())
    assert "00000000-0123456789abcdef" not in names
    assert len(names) == pc.MAX_ENTRIES * 3 // 4
    assert f"{boot}-{0:016x}" not in names and f"{boot}-{pc.MAX_ENTRIES - 1:016x}" in names


def test_the_oldest_go_beyond_the_bytes_allowed_and_a_writers_file_after_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    boot = pc.boot_id()[:8]
    for i in range(8):  # 8 entries of an eighth of the bytes allowed each: full
        f = cache / f"{boot}-{i:016x}"
        f.write_bytes(bytes(pc.MAX_BYTES // 8))
        os.utime(f, ns=(i * 1_000_000_000, i * 1_000_000_000))
    stale, fresh = cache / f".{boot}-stale.123", cache / f".{boot}-fresh.456"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, ns=(0, 0))
    monkeypatch.setenv("PYDTRACE_CACHE", str(cache))
    pc.store(_kept({"pid": 1}, _code(1)), "a slot")
    names = {p.name for p in cache.iterdir()}
    made = {f"{boot}-{i:016x}" for i in range(8)}
    # down to three quarters of the bytes: the three oldest gone, and the stale writer's file
    assert sorted(names & made) == [f"{boot}-{i:016x}" for i in range(3, 8)]
    assert len({n for n in names - made if n.startswith(boot)}) == 1  # the new entry
    assert fresh.name in names
    assert stale.name not in names


def test_a_slot_names_its_command_line_and_directory(tmp_path: Path) -> None:
    slot = pc.slot_of("execsnoop", ["-x"])
    assert pc._name(slot) == pc._name(pc.slot_of("execsnoop", ["-x"]))
    others = [pc.slot_of("execsnoop", ["-x", "-t"]), pc.slot_of("opensnoop", ["-x"])]
    os.chdir(tmp_path)  # (pytest puts the directory back)
    others.append(pc.slot_of("execsnoop", ["-x"]))
    names = {pc._name(x) for x in [slot, *others]}
    assert len(names) == 4
    assert all(n.startswith(pc.boot_id()[:8] + "-") and len(n) == 8 + 1 + 24 for n in names)


# --- the entry looked up as a command starts ------------------------------------------------
def _session(program: str, early: pc.Early | None = None):
    from pydtrace.session import Program, Session

    out, err = io.StringIO(), io.StringIO()
    s = Session([Program("n", program)], settings=[("quiet", None)], out=out, err=err)
    s.keep_as, s.early = "the slot", early
    return s, out, err


ONCE = 'BEGIN { printf("%d %s\\n", $pid, "once"); } profile:::tick-10ms { exit(0); }'


def _kept_then_looked_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pc.Early:
    """ONCE run and kept in "the slot", then the slot looked up as a command
    starting would: its programs loading."""
    need(bpf_maps_ok(), "the eBPF engine needs root and bpf(2)")
    monkeypatch.setenv("PYDTRACE_CACHE", str(tmp_path / "cache"))
    s, out, err = _session(ONCE)
    s.compile()
    assert s.run() == 0 and out.getvalue().split() == [str(os.getpid()), "once"], err.getvalue()
    early = pc.look_ahead("the slot")
    assert early is not None and early.code is not None and early.ahead is not None
    return early


def test_the_entry_looked_up_at_start_is_loaded_once_and_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    early = _kept_then_looked_up(tmp_path, monkeypatch)
    ahead = early.ahead
    s, out, err = _session(ONCE, early)
    s.compile()
    assert s._load_ahead is ahead and early.ahead is None  # taken, not loaded twice
    assert s.run() == 0 and out.getvalue().split() == [str(os.getpid()), "once"], err.getvalue()


def test_an_entry_of_another_program_is_let_go_and_the_program_compiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    early = _kept_then_looked_up(tmp_path, monkeypatch)
    ahead = early.ahead
    assert ahead is not None
    s, out, err = _session(ONCE.replace("once", "twice"), early)
    s.compile()
    assert s._load_ahead is None and early.ahead is None
    assert not ahead._thread.is_alive() and ahead._loaded is None  # its maps and programs closed
    assert s.run() == 0 and out.getvalue().split() == [str(os.getpid()), "twice"], err.getvalue()
    kept = pc.read("the slot")
    assert kept is not None and kept.key != early.kept.key  # the slot holds the new program


# --- the checker's part -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("program", "read", "folded"),
    [
        ("syscall::getpid:entry /pid != $pid/ { trace(1); }", {"pid"}, set()),
        ("BEGIN { @ = lquantize(1, 0, $pid + 100, 10); }", {"pid"}, {"pid"}),
        ("BEGIN { @ = lquantize(1, 0, $ppid % 2 ? 100 : 200, 10); }", {"ppid"}, {"ppid"}),
        ("BEGIN { trace($uid); }", {"uid"}, set()),
    ],
)
def test_the_macro_variables_read_and_folded(program: str, read: set, folded: set) -> None:
    from pydtrace.session import Program, Session

    s = Session([Program("n", program)])
    s.compile()
    assert s._macro_variables == read
    assert s._folded_macros == folded


# --- runs as a user runs them -----------------------------------------------------------------
def _run(cache: Path, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    env = dict(os.environ, PYDTRACE_CACHE=str(cache), PYTHONPATH=str(ROOT / "src"))
    env.pop("_DTRACE_TESTING", None)
    p = subprocess.Popen([sys.executable, "-m", "pydtrace", *args], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    return p.pid, out, err


def _read_entry(path: Path) -> pc.Kept:
    return pc.Kept.from_plain(marshal.loads(path.read_bytes()))


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.iterdir()) if cache.exists() else []


PRINTS_PID = 'BEGIN { printf("%d %d\\n", $pid, walltimestamp / 1000000000); } profile:::tick-10ms { exit(0); }'


def test_a_kept_program_runs_with_its_own_pid_and_clock(tmp_path: Path) -> None:
    """Run 1 keeps its compile, run 2 compiles again and learns where $pid
    stands, runs 3 and 4 start from the entry (not written again) and print
    their own pid and the wall clock's time."""
    need(bpf_maps_ok(), "the eBPF engine needs root and bpf(2)")
    cache = tmp_path / "cache"
    stamps = []
    for run in range(4):
        pid, out, _ = _run(cache, "-q", "-n", PRINTS_PID)
        printed, wall = (int(x) for x in out.split())
        assert printed == pid, run
        assert abs(wall - time.time()) < 5, run
        (entry,) = _entries(cache)
        st = entry.stat()
        stamps.append((st.st_ino, st.st_mtime_ns))
        kept = _read_entry(entry)
        if run <= 1:  # compiled, and kept with this run's pid
            assert kept.values == {"pid": pid}
        assert bool(kept.known.get("pid")) == (run >= 1), run
    assert stamps[1] == stamps[2] == stamps[3]  # runs 3 and 4 only read it


def test_a_program_whose_printf_ran_is_kept(tmp_path: Path) -> None:
    """A printf formatted at run time leaves a formatter (a closure) on its
    Format: the kept compile is pickled without it."""
    need(bpf_maps_ok(), "the eBPF engine needs root and bpf(2)")
    cache = tmp_path / "cache"
    me = os.getpid()
    program = f'syscall::getppid:entry /pid == {me}/ {{ printf("%d\\n", pid); exit(0); }}'
    stop = threading.Event()

    def call() -> None:
        while not stop.is_set():
            os.getppid()
            stop.wait(0.002)

    caller = threading.Thread(target=call)
    caller.start()
    try:
        for _ in range(2):
            _, out, _ = _run(cache, "-q", "-n", program)
            assert out.split() == [str(me)]
            assert len(_entries(cache)) == 1
    finally:
        stop.set()
        caller.join()


def test_a_folded_pid_is_never_kept(tmp_path: Path) -> None:
    need(bpf_maps_ok(), "the eBPF engine needs root and bpf(2)")
    cache = tmp_path / "cache"
    for _ in range(2):
        _, out, _ = _run(cache, "-q", "-n", "BEGIN { @ = lquantize(3, 0, $pid + 100, 10); }",
                         "-n", "profile:::tick-10ms { exit(0); }")  # fmt: skip
        assert "value" in out
    assert _entries(cache) == []


@pytest.mark.parametrize("flag", ["-e", "-S", "-l"])
def test_listing_and_compiling_only_keep_nothing(tmp_path: Path, flag: str) -> None:
    need(bpf_maps_ok(), "the eBPF engine needs root and bpf(2)")
    cache = tmp_path / "cache"
    args = ["-n", "syscall::getppid:entry { trace(1); exit(0); }"]
    if flag == "-S":  # prints the programs, then runs
        args = ["-n", "BEGIN { trace(1); } profile:::tick-10ms { exit(0); }"]
    _run(cache, flag, *args)
    assert _entries(cache) == []


def test_a_damaged_entry_is_compiled_again(tmp_path: Path) -> None:
    need(bpf_maps_ok(), "the eBPF engine needs root and bpf(2)")
    cache = tmp_path / "cache"
    for _ in range(2):
        _run(cache, "-q", "-n", PRINTS_PID)
    (entry,) = _entries(cache)
    entry.write_bytes(b"{\x01not marshal data")
    pid, out, _ = _run(cache, "-q", "-n", PRINTS_PID)
    assert int(out.split()[0]) == pid
    (entry,) = _entries(cache)
    assert _read_entry(entry).values == {"pid": pid}  # kept anew


def test_an_edited_script_runs_as_edited(tmp_path: Path) -> None:
    """The same command line, a script changed between runs: the entry its
    slot holds is not this program's, and is replaced."""
    need(bpf_maps_ok(), "the eBPF engine needs root and bpf(2)")
    cache, script = tmp_path / "cache", tmp_path / "prog.d"
    stamps = []
    for word in ("one", "one", "two", "two"):
        script.write_text(f'BEGIN {{ printf("{word}\\n"); }} profile:::tick-10ms {{ exit(0); }}')
        _, out, _ = _run(cache, "-q", "-s", str(script))
        assert out.split() == [word]
        (entry,) = _entries(cache)
        stamps.append(entry.stat().st_mtime_ns)
    assert stamps[0] == stamps[1] != stamps[2] == stamps[3]


def test_a_tool_starts_from_its_kept_compile(tmp_path: Path) -> None:
    """execsnoop's default filter is `pid != $pid`: its third run is patched
    and still shows the execs of others."""
    need(bpf_maps_ok(), "the eBPF engine needs root and bpf(2)")
    cache = tmp_path / "cache"
    env = dict(os.environ, PYDTRACE_CACHE=str(cache), PYTHONPATH=str(ROOT / "src"))
    stamps = []
    for run in range(3):
        marker = f"marker{run}x{os.getpid()}"
        p = subprocess.Popen([sys.executable, "-m", "pydtrace.cli.tools", "execsnoop", "-d", "3"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)  # fmt: skip
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            subprocess.run(["/bin/true", marker], check=True)
            time.sleep(0.05)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert any(line.endswith(f" /bin/true {marker}") for line in out.splitlines()), (
            run, out[-500:])  # fmt: skip
        (entry,) = _entries(cache)
        stamps.append(entry.stat().st_mtime_ns)
    assert stamps[1] == stamps[2]
