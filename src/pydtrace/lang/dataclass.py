"""pydtrace's own @dataclass: the standard one's behaviour at a fraction of its start-up.

The standard library's decorator costs about 0.3 ms per class (it compiles
__init__, __repr__, __eq__ and more for every class as it is defined, and
imports inspect), a third of a one-liner's start-up over the package's
classes. This one takes the same declarations (`@dataclass`, `frozen=`,
`eq=`, `slots=`, `field(default=, default_factory=, repr=, compare=,
kw_only=, init=)`, `__post_init__`) and gives the same __init__ signature,
repr, equality, hash and frozenness, but makes a class's __init__ the
first time an instance is made (from a code template per shape of fields),
and shares one __repr__, __eq__ and __hash__ among all classes (each reads
its class's field names).

A class's fields are `cls.__struct_fields__` (name -> Field, in order);
fields(), is_dataclass() and replace() read them as the standard ones read
theirs. The Python API's public classes (events.py) stay standard
dataclasses, for users' dataclasses.asdict() and the like.
"""

from __future__ import annotations

from operator import attrgetter
from reprlib import recursive_repr
from types import FunctionType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MISSING: Any = type("MISSING", (), {"__repr__": lambda self: "MISSING"})()
_OBJECT_SETATTR = object.__setattr__


class FrozenInstanceError(AttributeError):
    """An assignment to a field of a frozen instance (dataclasses' own name)."""


class Field:
    __slots__ = ("name", "default", "default_factory", "init", "repr", "compare", "kw_only")

    def __init__(self, default: Any, default_factory: Any, init: bool, repr: bool,  # noqa: A002
                 compare: bool, kw_only: bool) -> None:  # fmt: skip
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.compare = compare
        self.kw_only = kw_only

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, default={self.default!r})"


def field(
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    init: bool = True,
    repr: bool = True,  # noqa: A002 (dataclasses' own keyword)
    compare: bool = True,
    kw_only: bool = False,
) -> Any:
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, init, repr, compare, kw_only)


def dataclass(
    cls: type | None = None, /, *, frozen: bool = False, eq: bool = True, slots: bool = False
) -> Any:
    def wrap(c: type) -> type:
        return _process(c, frozen, eq, slots)

    return wrap if cls is None else wrap(cls)


def fields(obj: Any) -> tuple[Field, ...]:
    try:
        return tuple(obj.__struct_fields__.values())
    except AttributeError:
        raise TypeError("must be called with a dataclass type or instance") from None


def is_dataclass(obj: Any) -> bool:
    cls = obj if isinstance(obj, type) else type(obj)
    return hasattr(cls, "__struct_fields__")


def replace(obj: Any, /, **changes: Any) -> Any:
    """A copy of obj with some fields changed, made by its __init__."""
    for f in obj.__struct_fields__.values():
        if not f.init:
            if f.name in changes:
                raise ValueError(f"field {f.name} is declared with init=False, it cannot be "
                                 "specified with replace()")  # fmt: skip
        elif f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return obj.__class__(**changes)


def _process(cls: type, frozen: bool, eq: bool, slots: bool) -> type:
    own = cls.__dict__
    found: dict[str, Field] = {}
    for base in cls.__mro__[-1:0:-1]:
        found.update(base.__dict__.get("__struct_fields__", {}))
    for name, ann in own.get("__annotations__", {}).items():
        if isinstance(ann, str) and ann.startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = own.get(name, MISSING)
        if isinstance(value, Field):
            f = value
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        else:
            f = Field(value, MISSING, True, True, True, False)
        f.name = name
        found[name] = f
    seen_default = False
    for f in found.values():
        if f.init and not f.kw_only:
            if f.default is not MISSING or f.default_factory is not MISSING:
                seen_default = True
            elif seen_default:
                raise TypeError(f"non-default argument {f.name!r} follows default argument")
    if slots:
        cls = _with_slots(cls, found)
    cls.__struct_fields__ = found  # type: ignore[attr-defined]
    cls.__struct_repr__ = tuple(f.name for f in found.values() if f.repr)  # type: ignore[attr-defined]
    cls.__match_args__ = tuple(  # type: ignore[attr-defined]
        f.name for f in found.values() if f.init and not f.kw_only
    )
    own = cls.__dict__
    if "__init__" not in own:
        cls.__init__ = _lazy_init(cls, frozen)  # type: ignore[misc]
    if "__repr__" not in own:
        cls.__repr__ = _repr  # type: ignore[assignment]
    if eq:
        compared = [f.name for f in found.values() if f.compare]
        key = _key(compared)
        cls.__struct_key__ = staticmethod(key)  # type: ignore[attr-defined]
        if "__eq__" not in own:
            cls.__eq__ = _eq  # type: ignore[assignment]
        explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
        if not explicit_hash:
            cls.__hash__ = _hash if frozen else None  # type: ignore[assignment]
    if frozen:
        cls.__setattr__ = _frozen_setattr(cls, found)  # type: ignore[assignment]
        cls.__delattr__ = _frozen_delattr(cls, found)  # type: ignore[assignment]
    return cls


def _key(names: list[str]) -> Any:
    """A function from an instance to the tuple of its compared fields."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()


@recursive_repr()
def _repr(self: Any) -> str:
    text = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__struct_repr__)
    return f"{self.__class__.__qualname__}({text})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        key = self.__struct_key__
        return key(self) == key(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(self.__struct_key__(self))


def _frozen_setattr(cls: type, found: dict[str, Field]) -> Any:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in found:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    return __setattr__


def _frozen_delattr(cls: type, found: dict[str, Field]) -> Any:
    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in found:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __delattr__


def _with_slots(cls: type, found: dict[str, Field]) -> type:
    """The class made again with __slots__ for its fields (a class's slots
    are fixed when it is made), as dataclasses' slots=True does."""
    body = dict(cls.__dict__)
    names = tuple(found)
    for name in names:
        body.pop(name, None)
    body.pop("__dict__", None)
    body.pop("__weakref__", None)
    body["__slots__"] = tuple(n for n in names if not any(n in getattr(b, "__slots__", ()) for b in cls.__mro__[1:]))  # fmt: skip
    new = type(cls)(cls.__name__, cls.__bases__, body)
    new.__qualname__ = cls.__qualname__
    return new


# every class made here with its frozenness: the shapes the precompiled
# templates must cover (tests/test_dataclass.py checks dataclass_templates.py)
MADE: list[tuple[type, bool]] = []


def _lazy_init(cls: type, frozen: bool) -> Any:
    """An __init__ that compiles the class's real one when first called."""
    MADE.append((cls, frozen))

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        real = _make_init(cls, frozen)
        cls.__init__ = real  # type: ignore[misc]
        real(self, *args, **kwargs)

    return __init__


# __init__'s code, by shape: compiled once with placeholder names (_n0... for
# fields, _f0... for factories, _d0... for defaults) and given each class's
# names with code.replace(). compile() cost ~0.1 ms per shape, ~2.5 ms of
# every run: the package's own shapes come compiled, from the module
# dataclass_templates.py that template_module() writes.
Shape = tuple[bool, bool, str, int, int]  # frozen, post, params, factories, defaults
_TEMPLATES: dict[Shape, Any] = {}


def _template_name(key: Shape) -> str:
    frozen, post, params, factories, defaults = key
    return f"init_{int(frozen)}{int(post)}_{params}_{factories}_{defaults}"


def _template_source(key: Shape) -> str:
    """The template's def, named _template_name(key)."""
    frozen, post, params, factories, defaults = key
    body = []
    n = 0
    for kind in params:
        value = f"_f{n}() if _p{n} is MISSING else _p{n}" if kind == "F" else f"_p{n}"
        body.append((n, value))
        n += 1
    for _ in range(factories):
        body.append((n, f"_f{n}()"))
        n += 1
    for _ in range(defaults):
        body.append((n, f"_d{n}"))
        n += 1
    lines = [f"_set(self, '_n{i}', {v})" if frozen else f"self._n{i} = {v}" for i, v in body]
    if post:
        lines.append("self.__post_init__()")
    args = "".join(f", _p{i}" for i in range(len(params)))
    return f"def {_template_name(key)}(self{args}):\n    " + ("\n    ".join(lines) or "pass") + "\n"


def template_module(keys: list[Shape]) -> str:
    """The text of dataclass_templates.py for these shapes."""
    head = (
        '"""__init__ templates of the package\'s dataclass shapes, compiled with the\n'
        "package (dataclass.py makes any other shape at run time). Generated:\n"
        "python -m pydtrace.lang.dataclass > src/pydtrace/lang/dataclass_templates.py\n"
        '"""\n\n# fmt: off\n# ruff: noqa\n'
    )
    return head + "".join("\n\n" + _template_source(k) for k in sorted(set(keys)))


def shape(cls: type, frozen: bool) -> Shape:
    """The template key of a class's __init__."""
    params, made, preset = _split(cls)
    kinds = "".join("A" if f.default_factory is MISSING else "F" for f in params)
    return (frozen, hasattr(cls, "__post_init__"), kinds, len(made), len(preset))


def _template(key: Shape) -> Any:
    """The code of a shape's template: precompiled, or compiled now."""
    code = _TEMPLATES.get(key)
    if code is None:
        from pydtrace.lang import dataclass_templates

        made = getattr(dataclass_templates, _template_name(key), None)
        if made is not None:
            code = _TEMPLATES[key] = made.__code__
            return code
        space: dict[str, Any] = {}
        exec(_template_source(key), space)  # noqa: S102 (placeholder names only)
        code = _TEMPLATES[key] = space[_template_name(key)].__code__
    return code


def _split(cls: type) -> tuple[list[Field], list[Field], list[Field]]:
    """A class's fields: its parameters (positional, then keyword-only), those
    made by a factory without a parameter, and those set to a default."""
    positional: list[Field] = []
    keyword: list[Field] = []
    made: list[Field] = []
    preset: list[Field] = []
    for f in cls.__struct_fields__.values():  # type: ignore[attr-defined]
        if f.init:
            (keyword if f.kw_only else positional).append(f)
        elif f.default_factory is not MISSING:
            made.append(f)
        elif f.default is not MISSING:
            preset.append(f)
    return positional + keyword, made, preset


def _make_init(cls: type, frozen: bool) -> Any:
    params, made, preset = _split(cls)
    positional = [f for f in params if not f.kw_only]
    keyword = [f for f in params if f.kw_only]
    code = _template(shape(cls, frozen))
    order = params + made + preset  # the template's _n<i>, _f<i>, _d<i>
    names = {f"_n{i}": f.name for i, f in enumerate(order)}
    space: dict[str, Any] = {"MISSING": MISSING, "_set": _OBJECT_SETATTR}
    for i, f in enumerate(order):
        if f.default_factory is not MISSING:
            space[f"_f{i}"] = f.default_factory
        elif i >= len(params):
            space[f"_d{i}"] = f.default
    changes: dict[str, Any] = {
        "co_varnames": ("self", *(f.name for f in params)),
        "co_argcount": 1 + len(positional),
        "co_kwonlyargcount": len(keyword),
        "co_names": tuple(names.get(n, n) for n in code.co_names),
    }
    if frozen:  # the field names _set() is given
        changes["co_consts"] = tuple(names.get(c, c) if isinstance(c, str) else c
                                     for c in code.co_consts)  # fmt: skip
    changes["co_name"] = "__init__"
    if hasattr(code, "co_qualname"):  # 3.11
        changes["co_qualname"] = f"{cls.__qualname__}.__init__"
    init = FunctionType(code.replace(**changes), space, "__init__")
    init.__defaults__ = tuple(_param_default(f) for f in positional if _has_default(f)) or None
    init.__kwdefaults__ = {f.name: _param_default(f) for f in keyword if _has_default(f)} or None
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _has_default(f: Field) -> bool:
    return f.default is not MISSING or f.default_factory is not MISSING


def _param_default(f: Field) -> Any:
    """A parameter's default: its field's, or MISSING for a factory's (called
    when the parameter is not given)."""
    return MISSING if f.default_factory is not MISSING else f.default


if __name__ == "__main__":  # write dataclass_templates.py: the package's shapes
    import importlib
    import os
    import pkgutil
    import sys

    from pydtrace.lang import dataclass as module  # (this file runs as __main__)

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for info in pkgutil.walk_packages([package], "pydtrace."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    sys.stdout.write(module.template_module([module.shape(c, fz) for c, fz in module.MADE]))
