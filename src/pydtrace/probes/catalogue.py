"""The probe catalogue: every probe pydtrace knows, with dtrace's ids.

Providers list their probes up front (`Provider.probes`) and may create more
on demand (`Provider.create`, e.g. `profile:::tick-37ms`).  Ids are handed out
in enumeration order, so with the dtrace provider first BEGIN=1, END=2,
ERROR=3 as in dtrace.  A provider that can count its list without making it
(`Provider.count`: the syscall provider's 700-odd probes) has its ids kept
for it and its probes made only when a description may name them: a
one-liner's start-up does not pay for the whole list.  Matching follows
dtrace-utils' dt_probe_iter: each provider whose name matches the
description may first create probes, then every field is glob-matched (an
empty field matches anything).

The providers themselves are in probes/providers/ (one module each); that
package's default_catalogue() assembles them in dtrace's order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from pydtrace.lang.dataclass import dataclass, field
from pydtrace.lang.errors import DError
from pydtrace.lang.types import CType
from pydtrace.probes.glob import gmatch, is_glob

# --- stability attributes (dtrace_stability_t / dtrace_class_t order) --------
INTERNAL, PRIVATE, OBSOLETE, EXTERNAL, UNSTABLE, EVOLVING, STABLE, STANDARD = range(8)
STABILITY_NAMES = (
    "Internal",
    "Private",
    "Obsolete",
    "External",
    "Unstable",
    "Evolving",
    "Stable",
    "Standard",
)
C_UNKNOWN, C_CPU, C_PLATFORM, C_GROUP, C_ISA, C_COMMON = range(6)
CLASS_NAMES = ("Unknown", "CPU", "Platform", "Group", "ISA", "Common")

Attr = tuple[int, int, int]  # (name stability, data stability, dependency class)
# provider, module, function, name, args: the five rows of a dtrace_pattr_t
ProviderAttrs = tuple[Attr, Attr, Attr, Attr, Attr]


def attr_min(a: Attr, b: Attr) -> Attr:
    return (min(a[0], b[0]), min(a[1], b[1]), min(a[2], b[2]))


def _pa(*rows: tuple[int, int, int]) -> ProviderAttrs:
    return rows  # type: ignore[return-value]


# Used when the provider part of a description is empty or a glob.
UNSTABLE_ATTRS = _pa(*[(UNSTABLE, UNSTABLE, C_COMMON)] * 5)

# The attributes dtrace-utils' providers declare (dt_prov_*.c), for providers
# implemented elsewhere in pydtrace that do not set their own.
_EEC = (EVOLVING, EVOLVING, C_COMMON)
_EEI = (EVOLVING, EVOLVING, C_ISA)
_PPU = (PRIVATE, PRIVATE, C_UNKNOWN)
_PPI = (PRIVATE, PRIVATE, C_ISA)
PROVIDER_ATTRIBUTES: dict[str, ProviderAttrs] = {
    "dtrace": _pa(
        (STABLE, STABLE, C_COMMON),
        _PPU,
        _PPU,
        (STABLE, STABLE, C_COMMON),
        (STABLE, STABLE, C_COMMON),
    ),
    "profile": _pa(_EEC, (UNSTABLE, UNSTABLE, C_UNKNOWN), _PPU, _EEC, _EEC),
    "cpc": _pa(_EEC, (UNSTABLE, UNSTABLE, C_UNKNOWN), _PPU, _EEC, _EEC),
    "syscall": _pa(_EEC, _PPU, _PPI, _EEC, _PPI),
    "fbt": _pa(_EEC, _PPU, _PPI, _EEC, _PPI),
    "sdt": _pa(_EEI, _PPU, _PPU, _PPI, _PPI),
    "rawtp": _pa(_EEI, _PPU, _PPU, _PPI, _PPI),
    "proc": _pa(_EEI, _PPU, _PPU, _EEI, _EEI),
    "sched": _pa(_EEI, _PPU, _PPU, _EEI, _EEI),
    "io": _pa(_EEI, _PPU, _PPU, _EEI, _EEI),
    "ip": _pa(_EEI, _PPU, _PPU, _EEI, _EEI),
    "lockstat": _pa(_EEI, _PPU, _PPU, _EEI, _EEI),
    "pid": _pa(_EEI, _PPU, _PPU, _EEI, _PPU),
    "usdt": _pa(_EEI, _PPU, _PPU, _EEI, _PPU),
}


@dataclass(frozen=True)
class Probe:
    id: int
    provider: str
    module: str
    function: str
    name: str
    argtypes: tuple[CType, ...] = field(default=(), compare=False)
    data: object = field(default=None, compare=False)  # provider-specific
    # the provider's implementation, which engines' tables are keyed by: the
    # provider's name, but "pid" and "usdt" for pid<N> and usdt <name><N>
    kind: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", self.provider)

    @property
    def fqn(self) -> str:
        return f"{self.provider}:{self.module}:{self.function}:{self.name}"


@dataclass(frozen=True)
class ProbeDesc:
    """A (possibly partial, possibly globbed) probe description; '' = any."""

    provider: str = ""
    module: str = ""
    function: str = ""
    name: str = ""

    def __str__(self) -> str:
        return f"{self.provider}:{self.module}:{self.function}:{self.name}"

    def is_exact(self) -> bool:
        return all(f and not is_glob(f) for f in self.fields())

    def fields(self) -> tuple[str, str, str, str]:
        return (self.provider, self.module, self.function, self.name)


# A probe as a provider describes it: (module, function, name[, argtypes[, data]]).
ProbeTuple = tuple


class Provider:
    """Base class: a named provider with pre-listed and on-demand probes.

    A provider whose probes are made on demand has instead an
    `expand(module, function, name, types=True)` method yielding probe tuples
    (Catalogue.match and all() call it); a per-process one (pid<N>, usdt)
    sets per_process and its expand() also takes `strict`.
    """

    name: str = ""
    kind: str = ""  # Probe.kind of its probes; "" = the name
    per_process = False  # made for one process: a name ending in its pid
    attributes: ProviderAttrs | None = None

    def probes(self) -> Iterable[ProbeTuple]:
        return ()

    def count(self) -> int | None:
        """How many probes probes() lists, when that is known without listing
        them (the catalogue then lists them only when asked); None: list
        them at once."""
        return None

    def may_list(self, module: str, function: str, name: str) -> bool:
        """False when no probe of probes() can match the description (a cheap
        test, for providers with count())."""
        return True

    def listed_for(self, function: str) -> Iterable[tuple[int, ProbeTuple]]:
        """(place in probes(), probe) of the probes of one function."""
        return ((i, t) for i, t in enumerate(self.probes()) if t[1] == function)

    def create(self, module: str, function: str, name: str) -> ProbeTuple | None:
        """Make a probe for a description not yet listed, or None."""
        return None

    def attrs(self) -> ProviderAttrs:
        if self.attributes is not None:
            return self.attributes
        return default_attrs(self.name)


# Adds the providers of the process a provider name ends in (pid<N> and the
# usdt providers of N) to a catalogue, once; raises DError when N cannot be traced.
ProcessProviders = Callable[["Catalogue", str], None]


class Catalogue:
    def __init__(
        self, providers: list[Provider], process_providers: ProcessProviders | None = None
    ) -> None:
        self._probes: list[Probe] = []
        self._byfunc: dict[str, list[Probe]] = {}  # function -> its probes, in id order
        self._byname: dict[str, list[Probe]] = {}  # name -> its probes, in id order
        self._byid: dict[int, Probe] = {}
        self._byfqn: dict[tuple[str, str, str, str], Probe] = {}
        self.providers: dict[str, Provider] = {}
        self._next_id = 1
        # providers with count() whose probes are not all made yet: name ->
        # (provider, its first id); _probes is in id order while _in_order
        self._deferred: dict[str, tuple[Provider, int]] = {}
        self._in_order = True
        self.process_providers = process_providers
        # this session's -c children held before exec: pid -> argv (their
        # objects come from argv[0]'s ELF; their probes wait for the exec)
        self.held: dict[int, list[str]] = {}
        for p in providers:
            self.add_provider(p)

    # --- building -----------------------------------------------------------
    def add_provider(self, prov: Provider) -> None:
        self.providers[prov.name] = prov
        n = prov.count()
        if n is not None:
            self._deferred[prov.name] = (prov, self._next_id)
            self._next_id += n
            return
        for t in prov.probes():
            self._insert(prov.name, t)

    def _insert(self, provider: str, t: ProbeTuple, id: int | None = None) -> Probe:
        """Add a probe (with the next id, or its kept one); an existing one is kept."""
        prov = self.providers[provider]
        module, function, name = t[0], t[1], t[2]
        key = (provider, module, function, name)
        old = self._byfqn.get(key)
        if old is not None:
            return old
        argtypes = tuple(t[3]) if len(t) > 3 and t[3] is not None else ()
        data = t[4] if len(t) > 4 else None
        if id is None:
            id = self._next_id
            self._next_id += 1
        probe = Probe(id, provider, module, function, name, argtypes, data,
                      prov.kind or provider)  # fmt: skip
        if self._probes and self._probes[-1].id > id:
            self._in_order = False
        self._probes.append(probe)
        for index, k in ((self._byfunc, function), (self._byname, name)):
            same = index.setdefault(k, [])
            same.append(probe)
            if len(same) > 1 and same[-2].id > id:
                same.sort(key=_probe_id)
        self._byid[probe.id] = probe
        self._byfqn[key] = probe
        return probe

    def _list(self, provider: str, function: str | None = None) -> None:
        """Make a deferred provider's probes: all, or one function's."""
        prov, first = self._deferred[provider]
        if function is None:
            del self._deferred[provider]
            listed: Iterable[tuple[int, ProbeTuple]] = enumerate(prov.probes())
        else:
            listed = prov.listed_for(function)
        for i, t in listed:
            self._insert(provider, t, first + i)

    def _list_all(self) -> None:
        for provider in list(self._deferred):
            self._list(provider)
        if not self._in_order:
            self._probes.sort(key=_probe_id)
            self._in_order = True

    # --- lookup -------------------------------------------------------------
    def match(self, desc: ProbeDesc) -> list[Probe]:
        """Probes matching desc, in id order; providers may create some first."""
        if desc.provider[-1:].isdigit():  # pid<N>, usdt <provider><N>
            return self._match_process(desc)
        if desc.provider and not is_glob(desc.provider):
            # a provider named (dtruss.d's ~100 descriptions: a glob test of
            # each provider for each was 8,000 calls of its start-up)
            one = self.providers.get(desc.provider)
            named = [one] if one is not None else []
        else:
            named = [p for p in self.providers.values() if gmatch(desc.provider, p.name)]
        for prov in named:
            if prov.name in self._deferred and prov.may_list(desc.module, desc.function, desc.name):
                exact = desc.function and not is_glob(desc.function)
                self._list(prov.name, desc.function if exact else None)
            expand = getattr(prov, "expand", None)  # providers whose probes are made on demand
            if expand is not None:
                for t in expand(desc.module, desc.function, desc.name):
                    self._insert(prov.name, t)
                continue
            if (prov.name, desc.module, desc.function, desc.name) in self._byfqn:
                continue
            t = prov.create(desc.module, desc.function, desc.name)
            if t is not None:
                self._insert(prov.name, t)
        if desc.is_exact():
            p = self._byfqn.get(desc.fields())
            return [p] if p is not None else []
        if desc.function and not any(is_glob(f) for f in desc.fields()):
            # `syscall::read:entry`: an empty field matches anything, the others are
            # names; the function's few probes instead of a glob match of every probe
            # (dtruss.d names ~100 such probes among ~3000: 1 s of its start-up)
            return [p for p in self._byfunc.get(desc.function, ()) if _same(p, desc)]
        if desc.name and not is_glob(desc.name):
            # `syscall:::entry`, `BEGIN`: the probes of that name (dtruss.d's
            # seven such descriptions matched each of ~4,700 probes: 25 ms)
            same = _matches if any(is_glob(f) for f in desc.fields()) else _same
            return [p for p in self._byname.get(desc.name, ()) if same(p, desc)]
        if not self._in_order:
            self._probes.sort(key=_probe_id)
            self._in_order = True
        return [p for p in self._probes if _matches(p, desc)]

    def _match_process(self, desc: ProbeDesc) -> list[Probe]:
        """match() for a description naming a process (`pid123`, `p*d123`,
        `myprov123`): the probes that process's providers make for it. Their
        module is the object's basename even when the description said `a.out`
        or `libc` (the process's module aliases)."""
        if self.process_providers is not None:
            self.process_providers(self, desc.provider)
        strict = not is_glob(desc.provider)  # a missing function is an error
        found: dict[int, Probe] = {}
        for prov in list(self.providers.values()):
            if prov.per_process and gmatch(desc.provider, prov.name):
                expand = prov.expand  # type: ignore[attr-defined]
                for t in expand(desc.module, desc.function, desc.name, strict=strict):
                    p = self._insert(prov.name, t)
                    found[p.id] = p
        return [found[k] for k in sorted(found)]

    def lookup(self, provider: str, module: str, function: str, name: str) -> Probe | None:
        if provider in self._deferred:
            self._list(provider, function)
        return self._byfqn.get((provider, module, function, name))

    def by_id(self, id: int) -> Probe | None:
        if id not in self._byid:
            self._list_all()
        return self._byid.get(id)

    def all(self) -> list[Probe]:
        self._list_all()
        for prov in list(self.providers.values()):  # on-demand providers list everything
            expand = getattr(prov, "expand", None)
            if expand is not None:
                for t in expand("", "", "", types=False):
                    self._insert(prov.name, t)
        return list(self._probes)

    def __iter__(self) -> Iterator[Probe]:
        self._list_all()
        return iter(list(self._probes))

    def __len__(self) -> int:
        self._list_all()
        return len(self._probes)

    def provider_of(self, probe: Probe) -> Provider | None:
        return self.providers.get(probe.provider)

    def probe_attributes(self, probe: Probe) -> tuple[Attr, Attr]:
        """(probe description attributes, argument attributes) as `-lv` shows."""
        prov = self.providers.get(probe.provider)
        return probe_attrs(probe, prov.attrs() if prov is not None else UNSTABLE_ATTRS)


def default_attrs(provider: str) -> ProviderAttrs:
    return PROVIDER_ATTRIBUTES.get(provider, _pa(*[_PPU] * 5))


def probe_attrs(probe: Probe, pa: ProviderAttrs) -> tuple[Attr, Attr]:
    """Like dt_probe_info for the probe's own description: the provider row
    combined with the rows of its non-empty module/function/name fields."""
    a = pa[0]
    for f, row in ((probe.module, pa[1]), (probe.function, pa[2]), (probe.name, pa[3])):
        if f and not is_glob(f):
            a = attr_min(a, row)
    return a, pa[4]


def _probe_id(p: Probe) -> int:
    return p.id


def _same(p: Probe, d: ProbeDesc) -> bool:
    """_matches for a description without glob characters."""
    return (
        (not d.provider or d.provider == p.provider)
        and (not d.module or d.module == p.module)
        and (not d.function or d.function == p.function)
        and (not d.name or d.name == p.name)
    )


def _matches(p: Probe, d: ProbeDesc) -> bool:
    return (
        gmatch(d.provider, p.provider)
        and gmatch(d.module, p.module)
        and gmatch(d.function, p.function)
        and gmatch(d.name, p.name)
    )


# --- parsing descriptions ----------------------------------------------------
_SPEC_INDEX = {"P": 0, "m": 1, "f": 2, "n": 3, "i": 3, "s": 3}

MSG_OVERSPEC = "Overspecified probe description"
MSG_BADMACRO = "Undefined macro variable in probe description"


def parse_probe_desc(
    text: str,
    kind: str = "n",
    argv: list[str] | None = None,
    macros: dict[str, int] | None = None,
    refs: set[int] | None = None,
) -> ProbeDesc:
    """Split `prov:mod:func:name` (fields fill from the right, per option kind).

    kind is the command-line option that gave the text ('P', 'm', 'f', 'n',
    'i') or 's' for a clause in a script.  A `$` in a field expands `$N` from
    argv (argv[0] is $0) or `$name` from macros; indices of argv used are
    added to refs.  Errors are D_PDESC_INVAL as dtrace words them.
    """
    if kind not in _SPEC_INDEX:
        raise ValueError(f"bad probe description kind {kind!r}")
    spec = _SPEC_INDEX[kind]
    out = ["", "", "", ""]
    # Walk fields right to left.  As in dtrace, a leading ':' ends the walk
    # without consuming an empty leftmost field, so '::read:' has 3 fields.
    end = len(text)
    while True:
        start = text.rfind(":", 0, end) + 1
        value = _expand(text[start:end], text, argv, macros, refs)
        if spec < 0:
            raise _pdesc_error(text, MSG_OVERSPEC)
        out[spec] = value
        spec -= 1
        if start == 0:
            break
        end = start - 1
        if end == 0:  # text began with ':'
            break
    return ProbeDesc(*out)


def _pdesc_error(text: str, msg: str) -> DError:
    return DError("D_PDESC_INVAL", f'invalid probe description "{text}": {msg}')


def _expand(
    f: str,
    text: str,
    argv: list[str] | None,
    macros: dict[str, int] | None,
    refs: set[int] | None,
) -> str:
    at = f.find("$")
    if at < 0:
        return f
    head, var = f[:at], f[at:]
    if len(var) > 2 and var[1] == "$":
        var = var[1:]  # $$x is the same as $x in a description
    if len(var) > 1 and var[1].isdigit():
        j = 1
        while j < len(var) and var[j].isdigit():
            j += 1
        i = int(var[1:j])
        if argv is None or i >= len(argv):
            raise _pdesc_error(text, MSG_BADMACRO)
        if refs is not None:
            refs.add(i)
        return head + argv[i] + var[j:]
    if len(var) > 1 and macros is not None and var[1:] in macros:
        return head + str(macros[var[1:]])
    raise _pdesc_error(text, MSG_BADMACRO)
