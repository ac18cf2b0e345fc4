"""ktrace's choice of recorder: eBPF when this process may use it, ptrace
when the check says it may not; a bug in the check is an internal error
(one line, exit status 70), never a silent switch to the ptrace recorder."""

from __future__ import annotations

import pytest

from pydtrace.cli import ktrace
from pydtrace.engines.ebpf import features


def test_ebpf_when_allowed_ptrace_when_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "can_use_bpf", lambda: (True, ""))
    assert ktrace.default_engine() == "ebpf"
    monkeypatch.setattr(features, "can_use_bpf", lambda: (False, "eBPF tracing needs root"))
    assert ktrace.default_engine() == "ptrace"


def test_a_kernel_that_refuses_the_check_means_ptrace(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused() -> tuple[bool, str]:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(features, "can_use_bpf", refused)
    assert ktrace.default_engine() == "ptrace"


def test_a_bug_in_the_check_is_an_internal_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> tuple[bool, str]:
        raise TypeError("unsupported operand\nsecond line")

    monkeypatch.setattr(features, "can_use_bpf", broken)
    with pytest.raises(TypeError):
        ktrace.default_engine()
    status = ktrace.main(["-f", "/nonexistent/never-written", "true"])
    out, err = capsys.readouterr()
    assert (status, out) == (70, "")
    assert err == "ktrace: internal error: TypeError: unsupported operand second line\n"
