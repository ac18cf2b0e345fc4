"""What scripts and one-liners from the DTrace literature lean on, beyond dtrace-utils'
unit tests: each case runs on both engines and must print the same, exact output."""

from __future__ import annotations

from conftest import same_on_both_engines


def test_increment_creates_array_elements():
    """x[k]++ and --x[k] on an array never assigned create it, keyed by the subscripts'
    types, with int64_t values (as x++ creates a scalar); a value that returns to 0 is
    deleted, so it reads 0 again."""
    r = same_on_both_engines(
        "-qn",
        'BEGIN { h[1, "a"]++; h[1, "a"]++; ++self->t[2]; self->t[2]--; --x[3];'
        ' printf("%d %d %d %d %d\\n", h[1, "a"], self->t[2], x[3], sizeof(h[1, "a"]),'
        ' h[2, "b"]); exit(0); }',
        "-c",
        "/bin/true",
    )
    assert (r.status, r.out) == (0, "2 0 -1 8 0\n\n")


def test_increment_keys_are_checked_after_creation():
    r = same_on_both_engines("-qn", 'BEGIN { h[1]++; h["a"]++; exit(0); }', "-c", "/bin/true")
    assert r.status == 1
    assert r.err.endswith(
        ": h[ ] key #1 is incompatible with prototype:\n\tprototype: int\n\t      key: string\n"
    ), r.err
