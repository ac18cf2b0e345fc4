"""`dtrace -l` output: a header, one row per probe, and with -v the
stability attributes and argument types of each probe."""

from __future__ import annotations

from collections.abc import Iterable

from pydtrace.probes.catalogue import (
    CLASS_NAMES,
    STABILITY_NAMES,
    Attr,
    Catalogue,
    Probe,
    default_attrs,
    probe_attrs,
)

HEADER = f"{'ID':>5} {'PROVIDER':>10} {'MODULE':>17} {'FUNCTION':>33} NAME\n"


def format_row(p: Probe) -> str:
    return f"{p.id:5d} {p.provider:>10} {p.module:>17} {p.function:>33} {p.name}\n"


def _attr_block(title: str, a: Attr) -> str:
    return (
        f"\n\t{title}\n"
        f"\t\tIdentifier Names: {STABILITY_NAMES[a[0]]}\n"
        f"\t\tData Semantics:   {STABILITY_NAMES[a[1]]}\n"
        f"\t\tDependency Class: {CLASS_NAMES[a[2]]}\n"
    )


def format_probe_info(p: Probe, attrs: tuple[Attr, Attr]) -> str:
    """The -v block printed after a probe's row (dtrace's print_probe_info)."""
    out = _attr_block("Probe Description Attributes", attrs[0])
    out += _attr_block("Argument Attributes", attrs[1])
    out += "\n\tArgument Types\n"
    argtypes = p.argtypes or _lazy_argtypes(p)
    for i, t in enumerate(argtypes):
        out += f"\t\targs[{i}]: {t}\n"
    if not argtypes:
        out += "\t\tNone\n"
    members = _lazy_members(p)
    if members:  # pydtrace's own block: a tracepoint's fields by name (args->name)
        out += "\n\tArgument Members\n"
        out += "".join(f"\t\targs->{name}: {t}\n" for name, t in members)
    return out + "\n"


def format_listing(
    probes: Iterable[Probe],
    verbose: bool = False,
    catalogue: Catalogue | None = None,
    header: bool = True,
) -> str:
    """Header plus rows.  With verbose, a catalogue supplies the attributes;
    without one the probes' providers are looked up in the default table."""
    out = [HEADER] if header else []
    for p in probes:
        out.append(format_row(p))
        if verbose:
            out.append(format_probe_info(p, _attrs(p, catalogue)))
    return "".join(out)


def _attrs(p: Probe, catalogue: Catalogue | None) -> tuple[Attr, Attr]:
    if catalogue is not None:
        return catalogue.probe_attributes(p)
    return probe_attrs(p, default_attrs(p.provider))


def _lazy_argtypes(p: Probe) -> tuple:
    """Argument types a provider reads only when asked (sdt: the format file)."""
    try:
        return tuple(getattr(p.data, "argtypes", ()) or ())
    except (OSError, ValueError):
        return ()


def _lazy_members(p: Probe) -> tuple[tuple[str, object], ...]:
    """A tracepoint's fields as `args->name` reads them (sdt: the format file)."""
    try:
        t = getattr(p.data, "args_type", None)
    except (OSError, ValueError):
        return ()
    target = getattr(t, "target", None) if t is not None else None
    return tuple((m.name, m.type) for m in getattr(target, "members", None) or ())
