"""How big a D program may be: bounds that keep every stage (parser, checker,
code generator, interpreter) within Python's recursion limit and finite time.

The parser, checker, eBPF code generator and user-engine interpreter all
recurse on the program's nesting, a few Python frames a level (at most 7, the
parser's own for a call's argument). NESTING keeps the deepest program
accepted within Python's default recursion limit of 1000 with room left for
the caller's frames. Inlines and translators are expanded where they are used
(as dtrace's code generator does), so a use nests their definition's depth
under its own and costs its definition's size: EXPANDED bounds the nodes one
clause or definition expands to, so that `inline a2 = a1 + a1; inline a3 = a2
+ a2; ...` is refused instead of taking exponential time. SCRIPT_BYTES bounds
a -s script file and the preprocessor's output: a device or an endless pipe
given as a script is refused after that much, not read forever.
"""

from __future__ import annotations

NESTING = 100  # levels: parentheses, operators, chain links, blocks, ifs, declarators
SCRIPT_BYTES = 16 << 20  # a -s script (a larger file is not a D program someone wrote)
EXPANDED = 1 << 16  # expression nodes of one clause or definition, inlines expanded
