"""The seccomp filter builder: which syscalls stop and which run freely."""

from pydtrace.engines.user.ptrace import seccomp

X86 = seccomp.AUDIT_ARCH_X86_64
ARM = 0xC00000B7


def test_traced_numbers_stop_others_run() -> None:
    prog = seccomp.build([257, 59], X86)
    assert seccomp.run(prog, 257, X86) == seccomp.RET_TRACE
    assert seccomp.run(prog, 59, X86) == seccomp.RET_TRACE
    assert seccomp.run(prog, 0, X86) == seccomp.RET_ALLOW
    assert seccomp.run(prog, 258, X86) == seccomp.RET_ALLOW


def test_foreign_abi_and_x32_are_traced() -> None:
    prog = seccomp.build([1], X86)
    assert seccomp.run(prog, 5, 0x40000003) == seccomp.RET_TRACE  # i386 int 0x80
    assert seccomp.run(prog, 0x40000000 | 5, X86) == seccomp.RET_TRACE


def test_no_x32_check_on_aarch64() -> None:
    prog = seccomp.build([56], ARM)
    assert len(prog) == 4 + 2 + 1
    assert seccomp.run(prog, 56, ARM) == seccomp.RET_TRACE
    assert seccomp.run(prog, 57, ARM) == seccomp.RET_ALLOW


def test_encoding_is_eight_bytes_per_instruction() -> None:
    prog = seccomp.build([3], X86)
    code = seccomp.encode(prog)
    assert len(code) == 8 * len(prog)
    assert code[:8] == bytes([0x20, 0, 0, 0, 4, 0, 0, 0])
