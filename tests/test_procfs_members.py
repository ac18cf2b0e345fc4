"""curpsinfo and curlwpsinfo are dtrace's translations of the current task:
a member its translators do not convert is a compile error (D_XLATE_NOCONV),
reported on the line that names it; the members they do convert compile."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import pydtrace


@pytest.mark.parametrize(
    ("base", "member"),
    [
        ("curlwpsinfo", "pr_nice"),
        ("curlwpsinfo", "pr_cpu"),
        ("curlwpsinfo", "pr_oldpri"),
        ("curpsinfo", "pr_size"),
        ("curpsinfo", "pr_rssize"),
        ("curpsinfo", "pr_lwp"),
    ],
)
def test_unconverted_member_is_refused(tmp_path: Path, base: str, member: str) -> None:
    script = tmp_path / "m.d"
    script.write_text(
        f'BEGIN\n{{\n\tprintf("%d\\n",\n\t    (int){base}->{member});\n\texit(0);\n}}\n'
    )
    r = pydtrace("-xerrtags", "-s", str(script))
    assert (r.status, r.out) == (1, "")
    assert r.err == (
        f"pydtrace: failed to compile script {script}: [D_XLATE_NOCONV] line 4:"
        f" translator does not define conversion for member: {member}\n"
    )


def test_converted_members_compile() -> None:
    r = pydtrace(
        "-x",
        "engine=ptrace",
        "-qn",
        'BEGIN { printf("%d %d %d %d\\n", curpsinfo->pr_pid == pid, curpsinfo->pr_dmodel,'
        " curlwpsinfo->pr_lwpid == tid, curlwpsinfo->pr_name == execname); exit(0); }",
        "-c",
        "/bin/true",
    )
    assert (r.status, r.out, r.err) == (0, "1 2 1 1\n\n", "")
