"""Every command the README and the docs show runs as shown.

The convention the pages follow (docs/index.md, "How the examples are
written"): in a code block, a line starting with `$ ` is a command any user
may run and `# ` one that needs root; the lines after it, up to the next
command or the block's end, are what it prints. A line holding only `...`
stands for lines left out. Numbers, pids, times and addresses differ between
runs, so a shown token holding a digit matches any token; every other token
must be printed as shown, and the shown lines must come in order. A block
just after `<!-- exact -->` must be printed byte for byte. A command that
fails must show its message. The commands of one page run in order in one
temporary directory, so a page can record a trace and then dump it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import need

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TIMEOUT = 60
# commands of the package and the tools a shown `# ` line may start
# with: a `# ` line starting with anything else is a comment or output
_FENCE = re.compile(r"^(\s*)(```+|~~~+)")


@dataclass
class Command:
    page: str
    line: int
    text: str
    root: bool
    shown: list[str] = field(default_factory=list)
    exact: bool = False


def _is_command_word(word: str) -> bool:
    return shutil.which(word, path=_path()) is not None or word in ("cd", "echo", "export")


def _path() -> str:
    # the environment's scripts first: pydtrace, dtrace, ktrace, the tools
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def _code_blocks(text: str) -> list[tuple[int, list[str], bool]]:
    """(first line number, lines, exact) of each fenced or indented block."""
    lines = text.split("\n")
    out: list[tuple[int, list[str], bool]] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m:
            indent, fence = m.group(1), m.group(2)
            exact = i > 0 and lines[i - 1].strip() == "<!-- exact -->"
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(fence[:3]):
                j += 1
            body = [x[len(indent) :] if x.startswith(indent) else x for x in lines[i + 1 : j]]
            out.append((i + 2, body, exact))
            i = j + 1
            continue
        if lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            prev = lines[i - 2].strip() if i >= 2 else ""
            if not prev.startswith(("-", "*", "|")) and not re.match(r"\d+\.", prev):
                out.append((i + 1, [x[4:] for x in lines[i:j]], False))
            i = j
            continue
        i += 1
    return out


def commands(page: Path) -> list[Command]:
    """The commands a page shows, with their shown output."""
    name = str(page.relative_to(ROOT))
    out: list[Command] = []
    for first, body, exact in _code_blocks(page.read_text(encoding="utf-8")):
        cur: Command | None = None
        k = 0
        while k < len(body):
            line = body[k]
            prompt = line[:2]
            if prompt in ("$ ", "# ") and line[2:].strip():
                root = prompt == "# "
                if root and not _is_command_word(line[2:].split()[0]):
                    if cur is not None:
                        cur.shown.append(line)
                    k += 1
                    continue
                text, start = line[2:], k
                while _continues(text) and k + 1 < len(body):
                    k += 1
                    text = text + "\n" + body[k]  # bash joins the lines
                cur = Command(name, first + start, text, root, exact=exact)
                out.append(cur)
            elif cur is not None:
                cur.shown.append(line)
            k += 1
    for c in out:
        while c.shown and not c.shown[-1].strip():
            c.shown.pop()
    return out


def _continues(text: str) -> bool:
    """Whether a shell would ask for more: a trailing backslash, an open quote."""
    if text.endswith("\\"):
        return True
    try:
        shlex.split(text)
    except ValueError:
        return True
    return False


def _token_pattern(token: str) -> str:
    return r"\S+" if re.search(r"\d", token) else re.escape(token)


def _line_pattern(line: str) -> re.Pattern[str]:
    return re.compile(r"\s*" + r"\s+".join(_token_pattern(t) for t in line.split()) + r"\s*")


_BAR = re.compile(r"\|[*@ ]*\|?")


def _bars(line: str) -> str:
    """A histogram's bar (`|@@@@   `, `|****   |`) drawn as one token: its
    length is a count, which may differ as numbers do."""
    return _BAR.sub("|#|", line)


def missing_lines(shown: list[str], printed: str) -> list[str]:
    """The shown lines not printed, in order (tokens with digits match any)."""
    got = [_bars(x) for x in printed.split("\n") if x.strip()]
    i = 0
    missing: list[str] = []
    for line in shown:
        if not line.strip() or line.strip() == "...":
            continue
        pat = _line_pattern(_bars(line))
        j = i
        while j < len(got) and not pat.fullmatch(got[j]):
            j += 1
        if j == len(got):
            missing.append(line)
        else:
            i = j + 1
    return missing


def _run(c: Command, cwd: Path) -> tuple[int, str]:
    # `pip install . && CMD`: the package is installed already; run CMD
    text = re.sub(r"^pip install [^&]*&&\s*", "", c.text)
    env = dict(os.environ, PATH=_path(), COLUMNS="80", LC_ALL="C.UTF-8")
    env.pop("PYDTRACE_REQUIRE_KERNEL", None)
    r = subprocess.run(["bash", "-c", text], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT)  # fmt: skip
    return r.returncode, r.stdout.decode("utf-8", "replace")


def _pages_with_commands() -> list[Path]:
    return [p for p in PAGES if commands(p)]


@pytest.mark.parametrize("page", _pages_with_commands(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shown_command_runs_as_shown(page: Path, tmp_path: Path) -> None:
    cmds = commands(page)
    if any(c.root for c in cmds):
        need(os.geteuid() == 0, "the page shows commands run as root")
    failures = []
    for c in cmds:
        if c.text.startswith("pip install") and "&&" not in c.text or "pytest" in c.text:
            continue  # installing and testing: what the CI and the reader did already
        where = f"{c.page}:{c.line}: {c.text}"
        try:
            status, printed = _run(c, tmp_path)
        except subprocess.TimeoutExpired:
            failures.append(f"{where}\n  did not end within {TIMEOUT} s")
            continue
        if "Traceback (most recent call last)" in printed:
            failures.append(f"{where}\n  a traceback:\n{printed}")
        elif c.exact:
            if printed != "\n".join(c.shown) + "\n":
                failures.append(f"{where}\n  printed:\n{printed}  shown:\n" + "\n".join(c.shown))
        elif status != 0 and not c.shown:
            failures.append(f"{where}\n  exit status {status} and no message shown:\n{printed}")
        else:
            gone = missing_lines(c.shown, printed)
            if gone:
                failures.append(f"{where}\n  not printed: {gone[0]!r}\n  printed:\n{printed}")
    assert not failures, "\n\n".join(failures)


def test_the_matcher_is_strict_where_it_must_be() -> None:
    """Words and order must match; digits may differ; `...` skips lines."""
    printed = "PID   COMM  PATH\n4553  cat   /etc/hostname\n4560  cat   /nonexistent\n"
    assert missing_lines(["PID   COMM  PATH", "1     cat   /etc/hostname"], printed) == []
    assert missing_lines(["PID COMM PATH", "...", "9 cat /nonexistent"], printed) == []
    assert missing_lines(["1 cat /etc/passwd"], printed) == ["1 cat /etc/passwd"]
    # in order only
    assert missing_lines(["1 cat /nonexistent", "1 cat /etc/hostname"], printed) == [
        "1 cat /etc/hostname"
    ]
    # a whole line, not a part of one
    assert missing_lines(["cat"], printed) == ["cat"]
    # a histogram's bars are counts: their length may differ, not their place
    hist = "     2 -> 3     : 43  |*******                |\n           4 |@@@@@@      12\n"
    assert missing_lines(["  2 -> 3  : 9 |**  |", "   4 |@@@@@@@@@@@    1"], hist) == []
    assert missing_lines(["  2 -> 3  : 9"], hist) == ["  2 -> 3  : 9"]


def test_the_extractor_reads_prompts_outputs_and_continuations(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "Text.\n\n```console\n$ echo a \\\n  b\na b\n# pydtrace -V\ndtrace: x\n"
        "# a comment in output\n$ echo 'x\ny'\nx\ny\n```\n\nMore.\n\n    $ true\n\n<!-- exact -->\n```\n$ echo x\nx\n```\n"
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        got = [(c.line, c.text, c.root, c.shown, c.exact) for c in commands(page)]
    finally:
        ROOT = saved
    assert got == [
        (4, "echo a \\\n  b", False, ["a b"], False),
        (7, "pydtrace -V", True, ["dtrace: x", "# a comment in output"], False),
        (10, "echo 'x\ny'", False, ["x", "y"], False),
        (18, "true", False, [], False),
        (22, "echo x", False, ["x"], True),
    ]


_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
_NAMED = re.compile(r"(?<![\w/.])((?:docs|src|tests|benchmarks)/[\w./-]+\.(?:md|py|d))\b")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_named_files_exist(page: Path) -> None:
    """A page's relative links, and the project files it names, are there."""
    text = page.read_text(encoding="utf-8")
    links = [t for t in _LINK.findall(text) if re.search(r"\.\w+$|/$", t) and t != "..."]
    broken = [t for t in links if "://" not in t and not (page.parent / t).exists()]
    broken += [t for t in _NAMED.findall(text) if not (ROOT / t).exists()]
    assert broken == []
