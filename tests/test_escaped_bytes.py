"""A string literal's \\xNN and \\NNN escapes above 0x7f are single bytes, as in
C and dtrace: not characters to UTF-8 encode. They reach system()'s shell,
the output, strlen, indexing and memory as the byte written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT, need
from pydtrace.engines.ebpf.features import can_use_bpf
from pydtrace.lang.lexer import unescape

OK, WHY = can_use_bpf()

PROGRAM = (
    "BEGIN {"
    ' system("printf \\"\\xc0\\250\\" | od -An -tx1");'
    ' printf("[%s]\\n", "\\xfe\\x41");'
    ' printf("%d %d %d\\n", strlen("\\xc0\\xc1"), sizeof("\\377"), "\\xc0z"[0]);'
    ' s = (char *)alloca(4); bcopy("\\xe9", s, 2); printf("%d\\n", s[0]);'
    " exit(0); }"
)


@pytest.mark.parametrize("engine", ("ebpf", "ptrace"))
def test_escaped_bytes_stay_bytes(engine: str) -> None:
    if engine == "ebpf":
        need(OK, WHY)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), _DTRACE_TESTING="t")
    r = subprocess.run(
        [sys.executable, "-m", "pydtrace", "-x", f"engine={engine}", "-wqn", PROGRAM],
        capture_output=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    # the shell got c0 a8 (not c3 80 c2 a8); "\xfe" printed as one byte
    assert (r.returncode, r.stdout, r.stderr) == (0, b" c0 a8\n[\xfeA]\n2 2 -64\n-23\n\n", b"")


def test_unescape_keeps_high_bytes_apart_from_characters() -> None:
    assert [unescape(s) for s in ("\\x41\\xff", "\\101\\200", "\\x", "é")] == [
        "A\udcff",
        "A\udc80",
        "\0",
        "é",
    ]
    assert unescape("\\xc0\\xa8").encode("utf-8", "surrogateescape") == b"\xc0\xa8"
