"""What a run enables in its tracefs instance: per event, the handlers that
turn its records into firings and the filter that lets through what any of
them needs (filters.any_of of each probe's terms)."""

from __future__ import annotations

from collections.abc import Callable

from pydtrace.engines.tracefs import filters
from pydtrace.lang import ast
from pydtrace.lang.dataclass import dataclass, field
from pydtrace.probes import tracefs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# (timestamp ns, cpu, common_pid, the raw record)
Handler = Callable[[int, int, int, bytes], None]


@dataclass
class Use:
    fmt: tracefs.EventFormat
    handlers: list[Handler] = field(default_factory=list)
    terms: list[str | None] = field(default_factory=list)
    internal: bool = False  # enabled for our own bookkeeping: never filtered


class Plan:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.uses: dict[tuple[str, str], Use] = {}

    def want(
        self, group: str, event: str, handler: Handler, term: str | None, internal: bool = False
    ) -> tracefs.EventFormat:
        """Enable group:event with handler; term: its kernel filter for this use."""
        use = self.uses.get((group, event))
        if use is None:
            use = self.uses[(group, event)] = Use(tracefs.event_format(group, event))
        use.handlers.append(handler)
        use.terms.append(term)
        use.internal |= internal
        return use.fmt

    def filter_of(self, key: tuple[str, str]) -> str | None:
        use = self.uses[key]
        return None if use.internal else filters.any_of(use.terms)

    def clause_filter(self, probe: Any, resolve: filters.Resolver) -> str | None:
        """What the predicates of a probe's clauses let through, as a filter."""
        clauses = self.engine.by_probe.get(probe.id, [])
        return filters.any_of([filters.compile_predicate(c.predicate, resolve) for c, _ in clauses])


def field_resolver(fmt: tracefs.EventFormat, args: list[str]) -> filters.Resolver:
    """args->NAME, args[N] and argN as the event's fields (args: argN's field
    names in order); tid and execname as in every event."""
    names = {f.name for f in fmt.fields}

    def leaf_of(name: str) -> filters.Leaf | None:
        if name not in names:
            return None
        f = fmt.field(name)
        if f.data_loc or (f.array_len and f.type == "char"):
            return filters.Leaf(f.name, f.size, False, True)
        if f.array_len is not None or f.size not in (1, 2, 4, 8):
            return None
        return filters.Leaf(f.name, f.size, f.signed)

    def resolve(e: ast.Expr) -> filters.Leaf | None:
        ref = getattr(e, "ref", None)
        if isinstance(e, ast.Member) and e.arrow and isinstance(e.base, ast.Ident):
            if getattr(e.base, "ref", None) == ("builtin", "args"):
                return leaf_of(e.name)
            return None
        if isinstance(e, ast.Index) and ref is not None and ref[0] == "args":
            i = ref[1]
            leaf = leaf_of(args[i]) if isinstance(i, int) and i < len(args) else None
            return leaf if leaf is not None and not leaf.string else None
        if isinstance(e, ast.Ident) and ref is not None and ref[0] == "builtin":
            n = ref[1]
            if n.startswith("arg") and n[3:].isdigit():
                i = int(n[3:])
                leaf = leaf_of(args[i]) if i < len(args) else None
                return leaf if leaf is not None and not leaf.string else None
        return filters.common_leaf(e, lambda n: n in names)

    return resolve
