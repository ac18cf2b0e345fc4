"""The subroutine table: every D subroutine the eBPF engine compiles, and the
function that lowers a call of it, (compiler, call) -> Value.

cg_expr's _x_Call looks a call's name up here; a name missing from the table
cannot be compiled ("the eBPF engine cannot compile f() yet"). Actions
(printf, trace, stack as a statement...) are not subroutines: cg_actions
records them.
"""

from __future__ import annotations

from collections.abc import Callable

from pydtrace.engines.ebpf import cg_int_subroutines as ints
from pydtrace.engines.ebpf import cg_string_subroutines as strings
from pydtrace.engines.ebpf.cg_actions import ActionsMixin
from pydtrace.engines.ebpf.cg_context import CompilerBase, Value
from pydtrace.engines.ebpf.cg_files import FilesMixin
from pydtrace.engines.ebpf.cg_memory import MemoryMixin
from pydtrace.engines.ebpf.cg_stack import StackMixin
from pydtrace.lang import ast

# the compiler passed in is the whole codegen.Compiler; typed by its base so that
# no lowering module imports codegen (which imports them: a circle)
Lowering = Callable[[CompilerBase, ast.Call], Value]

SUBROUTINES: dict[str, Lowering] = {
    # strings (cg_string_subroutines)
    "copyinstr": strings.copyinstr,
    "strlen": strings.strlen,
    "strjoin": strings.strjoin,
    "substr": strings.substr,
    "strchr": strings.strchr,
    "strrchr": strings.strrchr,
    "toupper": strings.toupper,
    "tolower": strings.tolower,
    "lltostr": strings.lltostr,
    "strtok": strings.strtok,
    "basename": strings.basename,
    "dirname": strings.dirname,
    "strstr": strings.strstr,
    "index": strings.index,
    "rindex": strings.rindex,
    "cleanpath": strings.cleanpath,
    # integers and addresses (cg_int_subroutines)
    "htons": ints.htons,
    "htonl": ints.htonl,
    "htonll": ints.htonll,
    "ntohs": ints.htons,  # a swap either way
    "ntohl": ints.htonl,
    "ntohll": ints.htonll,
    "getmajor": ints.getmajor,
    "getminor": ints.getminor,
    "inet_ntoa": ints.inet_ntoa,
    "inet_ntoa6": ints.inet_ntoa6,
    "inet_ntop": ints.inet_ntop,
    "link_ntop": ints.link_ntop,
    "progenyof": ints.progenyof,
    "rand": ints.rand,
    # files (cg_files)
    "d_path": FilesMixin.lower_d_path,
    # scratch memory (cg_memory)
    "alloca": MemoryMixin.lower_alloca,
    "copyin": MemoryMixin.lower_copyin,
    "copyinto": MemoryMixin.lower_copyinto,
    "bcopy": MemoryMixin.lower_bcopy,
    # speculations (cg_actions)
    "speculation": ActionsMixin.lower_speculation,
    # code addresses as values, typed for printing resolved (cg_stack)
    "sym": StackMixin.lower_symbol,
    "func": StackMixin.lower_symbol,
    "mod": StackMixin.lower_symbol,
    "usym": StackMixin.lower_symbol,
    "ufunc": StackMixin.lower_symbol,
    "umod": StackMixin.lower_symbol,
    "uaddr": StackMixin.lower_symbol,
}
