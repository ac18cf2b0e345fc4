"""What the code generator asks of a checked program's AST before lowering
it: which builtin variables a clause names, whether it reads the probe's
arguments, how many dynamic-variable key buffers a subscript needs, and
which aggregation keys are stacks or probe-constant strings.

Pure queries over `lang.ast` nodes (looking through inline uses); no cg_*
module is imported, so every lowering module may use them.
"""

from __future__ import annotations

from pydtrace.lang import ast
from pydtrace.lang.program import CheckedProgram

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TIME_VARS = frozenset(("timestamp", "walltimestamp"))
CALLER_VARS = frozenset({"caller", "ucaller"})  # read with bpf_get_stack (cg_stack)
_ARG_VARS = frozenset(f"arg{i}" for i in range(10))
_PROBE_STRINGS = ("probeprov", "probemod", "probefunc", "probename")


def _inline_use(node: Any) -> bool:
    """f[a, b] where f is an inline with parameters (its ref holds the body)."""
    return isinstance(node, ast.Index) and (getattr(node, "ref", None) or ("",))[0] == "inline"


def _children(node: Any) -> list[Any]:
    """The sub-trees of a node, or the nodes of a list (line and file aside)."""
    if isinstance(node, (list, tuple)):
        return list(node)
    if isinstance(node, ast.Node):
        return [getattr(node, f) for f in node.__struct_fields__ if f not in ("line", "file")]
    return []


def reads_args(node: Any) -> bool:
    """Whether an AST (sub)tree reads the probe's arguments (arg0..arg9, args[]),
    kept on each node as builtin_names' answers are."""
    kept = getattr(node, "__dict__", None) if isinstance(node, ast.Node) else None
    if kept is not None and "_reads_args" in kept:
        return kept["_reads_args"]
    if _inline_use(node):
        found = reads_args(node.ref[1])
    elif isinstance(node, ast.Index) and (getattr(node, "ref", None) or ("",))[0] == "args":
        found = True
    elif isinstance(node, ast.Ident):
        ref = getattr(node, "ref", None) or ("builtin", node.name)
        if node.name == "args":
            found = True
        elif ref[0] == "inline":
            found = reads_args(ref[1])
        else:
            found = ref[0] == "builtin" and ref[1] in _ARG_VARS
    else:
        found = any(reads_args(x) for x in _children(node))
    if kept is not None:
        kept["_reads_args"] = found
    return found


def mentions(node: Any, names: frozenset[str]) -> bool:
    """Whether an AST (sub)tree names one of `names` as an identifier."""
    return not builtin_names(node).isdisjoint(names)


_NONE: frozenset[str] = frozenset()


def builtin_names(node: Any) -> frozenset[str]:
    """The builtin variables an AST (sub)tree names, through inlines. Kept on
    each node once found: code generation asks this of every clause for each
    variable it may need (a tool's clauses were walked 13,000 times), and the
    checked tree no longer changes. (One frame per level of the tree: the
    deepest program the checker accepts must compile.)"""
    kept = getattr(node, "__dict__", None) if isinstance(node, ast.Node) else None
    if kept is not None and "_builtin_names" in kept:
        return kept["_builtin_names"]
    if _inline_use(node):
        found = builtin_names(node.ref[1])
    elif isinstance(node, ast.Ident):
        ref = getattr(node, "ref", None) or ("builtin", node.name)
        if ref[0] == "inline":
            found = builtin_names(ref[1])
        else:
            found = frozenset((ref[1],)) if ref[0] == "builtin" else _NONE
    else:
        found = _NONE.union(*(builtin_names(x) for x in _children(node)))
    if kept is not None:
        kept["_builtin_names"] = found
    return found


def calls(node: Any, names: frozenset[str] | tuple[str, ...]) -> bool:
    """Whether an AST (sub)tree calls one of `names` (stack(), copyin()...)."""
    return not call_names(node).isdisjoint(names)


def call_names(node: Any) -> frozenset[str]:
    """The functions an AST (sub)tree calls, kept on each node as
    builtin_names' answers are: each program asked whether any clause makes
    scratch space or reads stacks, a walk of the whole tree each time (13 of
    execsnoop's 48 ms of code generation)."""
    kept = getattr(node, "__dict__", None) if isinstance(node, ast.Node) else None
    if kept is not None and "_call_names" in kept:
        return kept["_call_names"]
    found = _NONE.union(*(call_names(x) for x in _children(node)))
    if isinstance(node, ast.Call):
        found = found | {node.name}
    if kept is not None:
        kept["_call_names"] = found
    return found


def dkey_levels(node: Any) -> int:
    """How many `dvars` key buffers evaluating node needs at once (over-estimated:
    every subscript counts): a[b[self->c]] needs 3. Kept on each node."""
    kept = getattr(node, "__dict__", None) if isinstance(node, ast.Node) else None
    if kept is not None and "_dkey_levels" in kept:
        return kept["_dkey_levels"]
    if _inline_use(node):
        found = dkey_levels(node.ref[1])
    elif isinstance(node, ast.Index):
        inner = max([dkey_levels(k) for k in node.args] or [0])
        found = max(dkey_levels(node.base), 1 + inner)
    elif isinstance(node, ast.SelfVar):
        found = 1
    elif isinstance(node, ast.Ident):
        ref = getattr(node, "ref", None)
        found = dkey_levels(ref[1]) if ref and ref[0] == "inline" else 0
    else:
        found = max([dkey_levels(x) for x in _children(node)] or [0])
    if kept is not None:
        kept["_dkey_levels"] = found
    return found


def _agg_key_uses(prog: CheckedProgram) -> dict[str, list[list[Any]]]:
    """aggregation -> the key expressions of each assignment to it."""
    uses: dict[str, list[list[Any]]] = {}

    def walk(stmts: list[Any]) -> None:
        for st in stmts:
            if isinstance(st, ast.ExprStmt):
                e = st.expr
                if isinstance(e, ast.Assign) and hasattr(e, "agg"):
                    keys = e.target.args if isinstance(e.target, ast.Index) else []
                    uses.setdefault(e.agg.name, []).append(keys)  # type: ignore[attr-defined]
            elif isinstance(st, ast.If):
                walk(st.then)
                walk(st.other or [])
            elif isinstance(st, ast.Block):
                walk(st.body)

    for c in prog.clauses:
        walk(c.body)
    return uses


def stack_key_frames(prog: CheckedProgram) -> dict[str, dict[int, int]]:
    """aggregation -> {key position: frames} where its keys are stack(n) /
    ustack(n) calls with a frame count (the most any use asks for)."""
    out: dict[str, dict[int, int]] = {}
    for name, sites in _agg_key_uses(prog).items():
        for keys in sites:
            for pos, k in enumerate(keys):
                if not (isinstance(k, ast.Call) and k.name in ("stack", "ustack", "jstack")):
                    continue
                n = getattr(k.args[0], "value", None) if k.args else None
                if isinstance(n, int) and n > 0:
                    per = out.setdefault(name, {})
                    per[pos] = max(per.get(pos, 0), n)
    return out


def probe_constant_keys(prog: CheckedProgram) -> dict[str, dict[int, str]]:
    """aggregation -> {key position: probefunc|probename|...} for the positions
    where every use of the aggregation names the same probe-constant string."""
    out: dict[str, dict[int, str]] = {}
    for name, sites in _agg_key_uses(prog).items():
        per: dict[int, str] = {}
        for pos in range(len(sites[0])):
            kinds = set()
            for keys in sites:
                k = keys[pos] if pos < len(keys) else None
                ref = getattr(k, "ref", None)
                if (
                    isinstance(k, ast.Ident)
                    and ref is not None
                    and ref[0] == "builtin"
                    and ref[1] in _PROBE_STRINGS
                ):
                    kinds.add(ref[1])
                else:
                    kinds.add(None)
            if len(kinds) == 1 and None not in kinds:
                per[pos] = kinds.pop()
        if per:
            out[name] = per
    return out
