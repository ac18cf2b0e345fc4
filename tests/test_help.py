"""Help as a Linux tool gives it, options as dtrace takes them (issue 20, item 1).

--help and --version for pydtrace, dtrace, ktrace and kdump; one line and a
hint for a usage error; the `dtrace` command speaking as dtrace; the
man pages rendered from cli/manual.py, checked in, well-formed, installed,
and their examples run as shown.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from conftest import ROOT, pydtrace
from pydtrace.cli import manual
from pydtrace.cli.options import OPTSTRING, UsageError, parse_args, usage_text
from pydtrace.tools import TOOLS, load

SRC = str(ROOT / "src")
MAN_DIR = ROOT / "man" / "man1"
VERSION = metadata.version("pydtrace")
HINT = "Try 'pydtrace --help' for more information.\n"


def run(argv: list[str], timeout: float = 60, path: str | None = None,
        **kw) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """argv with the worktree's package; path replaces PATH."""
    env = dict(os.environ, PYTHONPATH=SRC)
    env.pop("_DTRACE_TESTING", None)
    if path is not None:
        env["PATH"] = path
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                       stdin=subprocess.DEVNULL, **kw)  # fmt: skip
    assert "Traceback" not in p.stderr
    return p


def module(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", f"pydtrace.cli.{name}", *args])


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bin directory with the commands' launchers (scripts/), their `#!python`
    line pointed at this Python, as pip installs them."""
    bin_dir = tmp_path_factory.mktemp("bin")
    for name in ("pydtrace", "dtrace", "ktrace", "kdump"):
        text = (ROOT / "scripts" / name).read_text()
        assert text.startswith("#!python\n")
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n" + text.split("\n", 1)[1])
        path.chmod(0o755)
    return bin_dir


def test_checked_in_launchers_are_what_launchers_py_writes(tmp_path: Path) -> None:
    """scripts/ holds one launcher per command, each as `python3 -m
    pydtrace.cli.launchers scripts` writes it, and pyproject.toml installs
    exactly those; a launcher imports what its command runs and no re."""
    tomllib = pytest.importorskip("tomllib")
    from pydtrace.cli import launchers
    from pydtrace.tools import TOOLS

    assert launchers.main([str(tmp_path / "out")]) == 0
    written = {p.name: p.read_text() for p in (tmp_path / "out").iterdir()}
    assert written == {p.name: p.read_text() for p in (ROOT / "scripts").iterdir()}
    assert all(os.access(ROOT / "scripts" / n, os.X_OK) for n in written)
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "scripts" not in conf["project"]  # (pip's console scripts import re)
    assert conf["tool"]["setuptools"]["script-files"] == [
        f"scripts/{n}" for n in launchers.COMMANDS
    ]
    assert set(written) == {"pydtrace", "dtrace", "kdump", "ktrace", *TOOLS}
    for name, text in written.items():
        module, function = launchers.COMMANDS[name]
        imports = [x for x in text.splitlines() if x.startswith(("import ", "from "))]
        assert imports == ["import sys", f"from {module} import {function}"]
        assert callable(getattr(importlib.import_module(module), function))


# --- pydtrace --help / --version / -V ---------------------------------------------------


def test_help_says_what_it_is_the_common_options_examples_and_where_the_manual_is() -> None:
    r = pydtrace("--help")
    assert (r.status, r.err) == (0, "")
    lines = r.out.splitlines()
    assert lines[:9] == [
        "Usage: pydtrace [options] -n 'probe /predicate/ { actions }' [args ...]",
        "       pydtrace [options] -s script.d [args ...]",
        "       pydtrace -l [-v] [-n probe | -P provider]",
        "DTrace for Linux in pure Python (pydtrace). Runs D programs system-wide in the",
        "kernel (eBPF, as root) or on one process tree over ptrace (-c/-p, any user).",
        "",
        "Common options:",
        "  -n 'probe {...}'  enable the probes a description names; run the clause",
        "  -P provider       enable every probe of a provider",
    ]
    assert "  --version         print pydtrace's version and exit" in lines
    assert lines[-2:] == [
        "Every option: pydtrace with no arguments. Manual: man pydtrace.",
        "Guides and reference: the docs/ directory of pydtrace's source.",
    ]
    examples = lines[lines.index("Examples:") + 1 : -3]
    assert examples[0] == "  pydtrace -n 'BEGIN { printf(\"hello\\n\"); exit(0); }'"
    assert len([x for x in examples if x.startswith("  pydtrace ")]) == 4
    # short: one screen, and 79 columns but for the examples' commands
    assert len(lines) <= 40
    assert [x for x in lines if len(x) > 79 and not x.startswith("  pydtrace ")] == []


def test_help_wins_over_later_options_not_over_an_earlier_bad_one() -> None:
    assert pydtrace("-q", "--help", "-k").out == pydtrace("--help").out
    r = pydtrace("-k", "--help")
    assert (r.status, r.out, r.err) == (2, "", "pydtrace: invalid option -- 'k'\n" + HINT)


def test_help_and_version_are_operands_or_arguments_where_getopt_says_so() -> None:
    env = {"POSIXLY_CORRECT": "1"}
    assert parse_args(["-n", "BEGIN", "--", "--help"], {}).operands == ["--help"]
    assert parse_args(["-n", "BEGIN", "x", "--help"], env).operands == ["x", "--help"]
    o = parse_args(["-n", "--version"], {})
    assert (o.info, o.programs[0].text) == ("", "--version")
    assert parse_args(["-s", "x.d", "--version"], {}).info == "version"


def test_h_is_still_dtraces_header_option() -> None:
    o = parse_args(["-h", "-s", "x.d"], {})
    assert (o.header, o.info) == (True, "")
    r = pydtrace("-h")
    assert r.out == "" and "Usage" not in r.err and "--help" not in r.err


def test_version_is_pydtraces_and_the_d_languages() -> None:
    r = pydtrace("--version")
    assert (r.status, r.out, r.err) == (0, f"pydtrace {VERSION}\nOracle D 2.0\n", "")
    assert re.fullmatch(r"pydtrace \d+\.\d+\.\d+\S*\nOracle D 2\.0\n", r.out)


def test_V_is_dtraces() -> None:
    r = pydtrace("-V")
    assert (r.status, r.out, r.err) == (0, "pydtrace: Oracle D 2.0\n", "")


def test_help_to_a_full_disk_is_one_line_and_status_1() -> None:
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "pydtrace", "--help"], stdout=full,
                           stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=SRC),
                           timeout=60)  # fmt: skip
    assert (p.returncode, p.stderr) == (
        1,
        "pydtrace: failed to write to <stdout>: No space left on device\n",
    )


# --- usage errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["-k"], "invalid option -- 'k'"),
        (["-q", "-n"], "option requires an argument -- 'n'"),
        (["-n", "BEGIN", "--bogus"], "unrecognized option '--bogus'"),
        (["--help=all"], "option '--help' doesn't allow an argument"),
        (["-3x", "-n", "BEGIN"], "illegal option -- 3x"),
    ],
)
def test_a_usage_error_is_one_line_and_a_hint_status_2(args: list[str], line: str) -> None:
    r = pydtrace(*args)
    assert (r.status, r.out, r.err) == (2, "", f"pydtrace: {line}\n" + HINT)


def test_usage_errors_dtrace_states_without_its_usage_stay_one_line() -> None:
    r = pydtrace("-l", "-V")
    assert (r.status, r.err) == (
        2,
        "pydtrace: only one of the [-GhlV] options can be specified at a time\n",
    )


def test_no_arguments_prints_dtraces_usage_then_the_hint() -> None:
    r = pydtrace()
    assert (r.status, r.out) == (2, "")
    assert r.err == usage_text("pydtrace") + HINT
    assert r.err.startswith("Usage: pydtrace [-32|-64] [-CeFGhHlqSvVwZ] [-b bufsz]")
    assert "\t-Z  permit probe descriptions that match zero probes\n" + HINT in r.err


def test_bad_long_option_raises_usage_error_with_the_usage_flag() -> None:
    with pytest.raises(UsageError) as ei:
        parse_args(["--verbose"], {})
    assert (ei.value.message, ei.value.show_usage) == ("unrecognized option '--verbose'", True)


# --- the dtrace command ------------------------------------------------------------------


def test_the_dtrace_script_speaks_as_dtrace(scripts: Path) -> None:
    dtrace = str(scripts / "dtrace")
    r = run([dtrace, "-k"])
    assert (r.returncode, r.stdout, r.stderr) == (
        2,
        "",
        "dtrace: invalid option -- 'k'\nTry 'dtrace --help' for more information.\n",
    )
    r = run([dtrace, "--help"])
    assert r.stdout.startswith(
        "Usage: dtrace [options] -n 'probe /predicate/ { actions }' [args ...]\n"
        "       dtrace [options] -s script.d [args ...]\n"
    )
    assert r.stdout.endswith("Every option: dtrace with no arguments. Manual: man dtrace.\n"
                             "Guides and reference: the docs/ directory of pydtrace's source.\n")  # fmt: skip
    assert run([dtrace, "--version"]).stdout == f"dtrace (pydtrace) {VERSION}\nOracle D 2.0\n"
    assert run([dtrace, "-V"]).stdout == "dtrace: Oracle D 2.0\n"
    r = run([dtrace, "-n", "BEGIN { x = ; }"])
    assert r.returncode == 1 and r.stderr.startswith("dtrace: invalid probe specifier BEGIN")
    r = run([dtrace, "-q", "-n", 'BEGIN { printf("%s\\n", execname); exit(0); }'])
    assert (r.returncode, r.stdout, r.stderr) == (0, "dtrace\n\n", "")


def test_the_pydtrace_script_speaks_as_pydtrace(scripts: Path) -> None:
    r = run([str(scripts / "pydtrace"), "-x", "nosuchopt", "-n", "BEGIN"])
    assert (r.returncode, r.stderr) == (1, "pydtrace: failed to set -x nosuchopt: Invalid option name\n")  # fmt: skip


# --- ktrace and kdump --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ktrace", "kdump"])
def test_ktrace_and_kdump_help_and_version(name: str) -> None:
    r = module(name, "--help")
    assert (r.returncode, r.stderr) == (0, "")
    page = manual.KTRACE if name == "ktrace" else manual.KDUMP
    usage = module(name, "-q").stderr.split("\n", 1)[1]  # the OpenBSD lines a usage error prints
    assert r.stdout.startswith(usage)
    after = r.stdout[len(usage) :].splitlines()
    assert (
        after[0]
        == {
            "ktrace": "Record the system calls, paths, I/O data, signals and exec arguments of a",
            "kdump": "Print a trace file written by ktrace, one line per record, as OpenBSD's kdump,",
        }[name]
    )
    assert "Options:" in after and "Examples:" in after
    assert [x for x in after if re.fullmatch("  --version +print the version and exit", x)]
    assert after[-1] == f"Manual: man {name}. More: the docs/ directory of pydtrace's source."
    assert len(page.options) == len([x for x in after if x.startswith("  -")])
    r = module(name, "--version")
    assert (r.returncode, r.stdout, r.stderr) == (
        0,
        f"{name} (pydtrace) {VERSION}\nktrace file format 1\n",
        "",
    )


def test_ktrace_and_kdump_keep_openbsds_usage_for_a_wrong_option() -> None:
    kdump_usage = (
        "usage: kdump [-dHlnRTXx] [-f file] [-m maxdata] [-p pid] [-t trstr] "
        "[--json | --timeline FILE]\n"
    )
    r = module("kdump", "--bogus")
    assert (r.returncode, r.stderr) == (1, "kdump: option --bogus not recognized\n" + kdump_usage)
    r = module("ktrace", "-q")
    assert (r.returncode, r.stderr) == (
        1,
        "ktrace: option -q not recognized\n"
        "usage: ktrace [-aBdi] [-f trfile] [-t trstr] [--engine ebpf|ptrace] command [args ...]\n"
        "       ktrace [-aCcdi] [-f trfile] [-g pgid | -p pid] [-t trstr] [--engine ebpf|ptrace]\n",
    )


def test_ktrace_help_after_the_command_belongs_to_the_command(tmp_path: Path) -> None:
    r = run([sys.executable, "-m", "pydtrace.cli.ktrace", "-f", str(tmp_path / "t.out"), "-t", "c",
             "--engine", "ptrace", "sh", "-c", 'echo "$0"', "--help"])  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "--help\n")


@pytest.mark.parametrize("name", ["ktrace", "kdump"])
def test_ktrace_and_kdump_help_to_a_full_disk(name: str) -> None:
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", f"pydtrace.cli.{name}", "--help"], stdout=full,
                           stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=SRC),
                           timeout=60)  # fmt: skip
    assert (p.returncode, p.stderr) == (
        1,
        f"{name}: failed to write to <stdout>: No space left on device\n",
    )


# --- man pages ---------------------------------------------------------------------------


def test_checked_in_man_pages_are_what_manual_py_renders() -> None:
    """Regenerate with `python3 -m pydtrace.cli.manual man/man1` after editing manual.py."""
    want = manual.man_pages()
    tools = [f"{name}.1" for name in TOOLS]
    assert sorted(want) == sorted(["dtrace.1", "kdump.1", "ktrace.1", "pydtrace.1", *tools])
    assert sorted(p.name for p in MAN_DIR.iterdir()) == sorted(want)
    for name, text in want.items():
        assert (MAN_DIR / name).read_text(encoding="utf-8") == text, name


def test_the_generator_writes_the_pages(tmp_path: Path) -> None:
    r = run([sys.executable, "-m", "pydtrace.cli.manual", str(tmp_path / "out")])
    assert (r.returncode, r.stderr) == (0, "")
    for name in manual.man_pages():
        assert (tmp_path / "out" / name).read_bytes() == (MAN_DIR / name).read_bytes()


def test_the_package_installs_every_page_into_share_man_man1() -> None:
    tomllib = pytest.importorskip("tomllib")
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = conf["tool"]["setuptools"]["data-files"]["share/man/man1"]
    installed = {p.name for g in globs for p in ROOT.glob(g)}
    assert installed == set(manual.man_pages())


@pytest.mark.skipif(shutil.which("groff") is None, reason="no groff")
@pytest.mark.parametrize("name", sorted(manual.man_pages()))
def test_man_page_is_well_formed(name: str) -> None:
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(MAN_DIR / name)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (p.returncode, p.stderr) == (0, "")


@pytest.mark.parametrize("name", sorted(manual.man_pages()))
def test_man_page_spells_what_is_typed_so_any_groff_renders_it_as_typed(name: str) -> None:
    """Outside Debian's man setup, groff prints a bare - as a hyphen (U+2010) and ' as
    a curly quote: every one in the text is escaped (\\-, \\(aq), so that commands and
    options copied from the page work."""
    for line in (MAN_DIR / name).read_text().splitlines():
        if line.startswith('.\\"'):
            continue
        text = line.split(" ", 1)[1] if line.startswith(".") and " " in line else line
        assert not re.search(r"(?<!\\)-|'|\^|~", text.replace(r"\e", "")), line


def rendered(name: str) -> str:
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
    p = subprocess.run(["man", "-l", str(MAN_DIR / name)], capture_output=True, text=True,
                       env=env, timeout=60)  # fmt: skip
    assert (p.returncode, p.stderr) == (0, "")
    return p.stdout


@pytest.mark.skipif(shutil.which("man") is None, reason="no man")
@pytest.mark.parametrize(
    ("name", "page", "prog"), manual.all_man_pages(), ids=[m[0] for m in manual.all_man_pages()]
)
def test_man_page_shows_commands_that_can_be_copied(
    name: str, page: manual.Page, prog: str
) -> None:
    text = rendered(f"{name}.1")
    title = f"{prog.upper()}(1)"
    assert re.match(rf"{re.escape(title)} +User Commands +{re.escape(title)}\n", text)
    assert f"NAME\n       {prog} - " in text
    # as typed: ASCII hyphens and quotes, no hyphenation, each example on one line
    assert not set(text) & set("\u2010\u2011\u2018\u2019\u201c\u201d\u02c6\u02dc")
    for ex in page.examples:
        assert f"\n           {ex.command.replace('{prog}', prog)}\n" in text
    for opt in page.options:
        assert re.search(rf"\n       {re.escape(opt.flag)}\b", text), opt.flag


def test_every_dtrace_option_is_in_the_manual() -> None:
    letters = {c for c in OPTSTRING if c != ":"} - {"3", "6"}
    flags = {o.flag for o in manual.PYDTRACE.options}
    assert {f"-{c}" for c in letters} | {"-32", "-64", "--help", "--version"} == flags
    synopsis = manual.PYDTRACE.synopsis[0]
    assert [c for c in letters if not re.search(rf"\[-[A-Za-z]*{c}", synopsis)] == []


# --- the examples run as shown -----------------------------------------------------------


def shell(scripts: Path, command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """command in sh, with the commands' launchers first in PATH."""
    path = f"{scripts}{os.pathsep}{os.environ['PATH']}"
    return run(["sh", "-c", command], timeout=120, path=path, cwd=cwd)


def test_pydtrace_examples_run(scripts: Path, tmp_path: Path) -> None:
    """Each example of the page: those that end by themselves run, the others
    (system-wide until Ctrl-C, ten seconds of sshd) are compiled (-e)."""
    for ex in manual.PYDTRACE.examples:
        cmd = ex.command.replace("{prog}", "pydtrace")
        ends = " -l" in cmd or "-c " in cmd or ("exit(0)" in cmd and "tick-" not in cmd)
        p = shell(scripts, cmd if ends else cmd.replace("pydtrace ", "pydtrace -e ", 1), tmp_path)
        assert p.returncode == 0, (cmd, p.stderr)
        if "hello" in cmd:
            assert "hello\n" in p.stdout
        elif " -l" in cmd:
            assert len(p.stdout.splitlines()) >= 2, cmd  # the heading and a probe
        elif "-c " in cmd:
            assert re.search(r"openat:entry /tmp\n", p.stdout), p.stdout


def test_ktrace_and_kdump_examples_run(scripts: Path, tmp_path: Path) -> None:
    """The ktrace examples, then kdump's on the file they left (`1234` stands
    for a pid: that example is left out)."""
    (tmp_path / "t.out").unlink(missing_ok=True)
    for ex in (*manual.KTRACE.examples, *manual.KDUMP.examples):
        if "1234" in ex.command:
            continue
        p = shell(scripts, ex.command, tmp_path)
        assert (p.returncode, p.stderr) == (0, ""), ex.command
        assert p.stdout, ex.command
    assert 'NAMI  "/etc/hostname"' in shell(scripts, "kdump -t n", tmp_path).stdout


# --- the toolkit's pages -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_a_tools_page_and_its_help_are_one_table(name: str) -> None:
    """Every tool has a page, made from what its -h prints: the same usage, the
    same options with the same words; its examples run the tool."""
    r = subprocess.run([sys.executable, "-m", "pydtrace.cli.tools", name, "-h"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=SRC),
                       timeout=60)  # fmt: skip
    assert (r.returncode, r.stderr) == (0, "")
    lines = r.stdout.splitlines()
    page = manual.tool_page(name)
    assert lines[0] == f"usage: {name} " + " ".join(page.synopsis[0].split("\n"))
    assert lines[2] == load(name).summary and page.description[0] == lines[2]
    opt_lines = lines[lines.index("options:") + 1 :]
    assert len(opt_lines) == len(page.options)
    for line, o in zip(opt_lines, page.options):
        names = f"{o.flag} {o.arg}".strip()
        assert line == f"  {names:<24} {o.brief}", (line, o)
    assert all(ex.command == name or ex.command.startswith(f"{name} ") for ex in page.examples)
    assert (MAN_DIR / f"{name}.1").read_text() == manual.man_page(page)
