"""lang/dataclass.py: pydtrace's light @dataclass behaves as the standard one
for what the package declares (each test makes the same class both ways)."""

from __future__ import annotations

import dataclasses as std

import pytest

from pydtrace.lang import dataclass as light


def both(body: str, decorator: str = "@dataclass") -> tuple[type, type]:
    """The class `C` of body made by each module's decorator."""
    made = []
    for mod in (std, light):
        ns: dict[str, object] = {"dataclass": mod.dataclass, "field": mod.field}
        exec(f"from __future__ import annotations\n{decorator}\nclass C:\n{body}", ns)
        made.append(ns["C"])
    return made[0], made[1]


def test_init_signature_defaults_and_factories() -> None:
    s, lt = both("    a: int\n    b: str = 'x'\n    c: list = field(default_factory=list)\n")
    for cls in (s, lt):
        x = cls(1)
        assert (x.a, x.b, x.c) == (1, "x", [])
        assert cls(1, "y", [2]).c == [2]
        assert cls(1).c is not cls(1).c  # a new list each time
        assert cls(a=3, b="z").b == "z"
    for args, kwargs in (((), {}), ((1, 2, 3, 4), {}), ((1,), {"d": 2}), ((1,), {"a": 2})):
        with pytest.raises(TypeError) as es:
            s(*args, **kwargs)
        with pytest.raises(TypeError) as el:
            lt(*args, **kwargs)
        assert str(el.value).split("()", 1)[1] == str(es.value).split("()", 1)[1]


def test_repr_eq_hash() -> None:
    s, lt = both("    a: int\n    b: str = field(default='', repr=False, compare=False)\n")
    assert repr(lt(1, "q")) == repr(s(1, "q")).replace(s.__qualname__, lt.__qualname__)
    for cls in (s, lt):
        assert cls(1, "p") == cls(1, "q") and cls(1) != cls(2)
        assert cls(1).__eq__(object()) is NotImplemented
        assert cls.__hash__ is None  # eq without frozen: unhashable, as dataclasses
    fs, fl = both("    a: int\n    b: tuple = ()\n", "@dataclass(frozen=True)")
    assert hash(fl(1, (2,))) == hash(fs(1, (2,))) == hash((1, (2,)))
    assert {fl(1), fl(1), fl(2)} == {fl(1), fl(2)}


def test_frozen_refuses_assignment() -> None:
    s, lt = both("    a: int\n", "@dataclass(frozen=True)")
    for cls, error in ((s, std.FrozenInstanceError), (lt, light.FrozenInstanceError)):
        x = cls(1)
        with pytest.raises(error):
            x.a = 2  # type: ignore[misc]
        with pytest.raises(AttributeError):
            del x.a
        assert x.a == 1


def test_eq_false_keeps_identity() -> None:
    s, lt = both("    a: int\n", "@dataclass(eq=False)")
    for cls in (s, lt):
        x = cls(1)
        assert x != cls(1) and x == x and hash(x) == object.__hash__(x)


def test_kw_only_fields_of_a_base_follow_the_subclass_fields() -> None:
    for mod in (std, light):

        @mod.dataclass
        class Base:
            line: int = mod.field(default=0, kw_only=True)

        @mod.dataclass
        class Lit(Base):
            value: int
            text: str

        x = Lit(5, "5", line=3)
        assert (x.value, x.text, x.line) == (5, "5", 3)
        assert Lit.__match_args__ == ("value", "text")
        assert [f.name for f in mod.fields(x)] == ["line", "value", "text"]
        assert mod.is_dataclass(x) and mod.is_dataclass(Lit) and not mod.is_dataclass(1)
        with pytest.raises(TypeError):
            Lit(5, "5", 3)  # type: ignore[misc]


def test_post_init_replace_and_slots() -> None:
    for mod in (std, light):

        @mod.dataclass(frozen=True)
        class P:
            name: str
            kind: str = ""

            def __post_init__(self) -> None:
                if not self.kind:
                    object.__setattr__(self, "kind", self.name)

        assert P("syscall").kind == "syscall"
        q = mod.replace(P("a", "b"), kind="c")
        assert (q.name, q.kind) == ("a", "c")

        @mod.dataclass(slots=True)
        class T:
            kind: str
            text: str = ""

        t = T("x")
        assert T.__slots__ == ("kind", "text") and not hasattr(t, "__dict__")
        with pytest.raises(AttributeError):
            t.other = 1  # type: ignore[attr-defined]


def test_a_default_before_a_positional_field_is_refused() -> None:
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):

        @light.dataclass
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]


@pytest.mark.parametrize("decorator", ["@dataclass", "@dataclass(frozen=True)"])
def test_every_kind_of_field_in_one_class(decorator: str) -> None:
    """Plain, default and factory parameters, keyword-only ones, fields
    without a parameter (a default, a factory) and __post_init__, in one
    class: the same values, signature and errors as the standard one (the
    light one builds __init__ from a template shared by classes of one shape)."""
    body = (
        "    a: int\n"
        "    b: list = field(default_factory=list)\n"
        "    c: str = 'c'\n"
        "    d: int = field(default=4, init=False)\n"
        "    e: dict = field(default_factory=dict, init=False)\n"
        "    f: int = field(default=6, kw_only=True)\n"
        "    g: list = field(default_factory=lambda: [7], kw_only=True)\n"
        "    h: str = field(kw_only=True, default='h')\n"
        "    def __post_init__(self):\n"
        "        object.__setattr__(self, 'seen', (self.a, self.d, tuple(self.g)))\n"
    )
    s, lt = both(body, decorator)
    calls = [((1,), {}), ((1, [2], "x"), {"f": 9, "g": [8], "h": "y"}), ((), {"a": 5, "h": "z"})]
    for args, kwargs in calls:
        x, y = s(*args, **kwargs), lt(*args, **kwargs)
        assert [getattr(y, n) for n in "abcdefgh"] == [getattr(x, n) for n in "abcdefgh"]
        assert y.seen == x.seen
    assert lt(1).g is not lt(1).g and lt(1).e is not lt(1).e
    bad = [((), {}), ((1, 2, 3, 4), {}), ((1,), {"d": 2}), ((1,), {"zz": 1}), ((1, [], "c", 6), {})]
    for args, kwargs in bad:
        with pytest.raises(TypeError) as es:
            s(*args, **kwargs)
        with pytest.raises(TypeError) as el:
            lt(*args, **kwargs)
        assert str(el.value).split("()", 1)[1] == str(es.value).split("()", 1)[1]


def test_the_package_shapes_come_precompiled() -> None:
    """dataclass_templates.py holds exactly the package's __init__ shapes,
    as `python -m pydtrace.lang.dataclass` writes them: a class made at run
    time by a template from it, and none compiled on the way."""
    import builtins
    import subprocess
    import sys
    from pathlib import Path

    from pydtrace.lang import dataclass_templates

    made = subprocess.run(
        [sys.executable, "-m", "pydtrace.lang.dataclass"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert made == Path(dataclass_templates.__file__).read_text(), (
        "regenerate: python -m pydtrace.lang.dataclass > src/pydtrace/lang/dataclass_templates.py"
    )
    light._TEMPLATES.clear()
    compiled = []

    def counted(src: str, space: dict) -> None:
        compiled.append(src)
        builtins.exec(src, space)

    light.exec = counted  # type: ignore[attr-defined]
    try:
        from pydtrace.lang.ast import Binary, Ident

        node = Binary("+", Ident("a", line=1), Ident("b", line=1), line=1)
        assert (node.op, node.left.name, node.right.name, node.line) == ("+", "a", "b", 1)
        assert type(node).__init__.__code__.co_filename == dataclass_templates.__file__
        assert type(node).__init__.__qualname__ == "Binary.__init__"
        # a shape of no class of the package is compiled, once
        _, odd = both("    " + "\n    ".join(f"f{i}: int = {i}" for i in range(23)) + "\n")
        assert odd().f22 == 22 and len(compiled) == 1
    finally:
        del light.exec  # type: ignore[attr-defined]
