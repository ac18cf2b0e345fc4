"""The installed commands' launchers, and the command that writes them.

pip writes a console script from a template whose first line is `import re`
(to strip a Windows suffix from argv[0]); re and the enum module it imports
are 3-5 ms of every start, more than a kept one-liner's own imports save.
So the commands are not console scripts: each is a file of scripts/, three
lines, listed in pyproject.toml's script-files; pip installs it with its
`#!python` line pointed at the environment's interpreter, in an editable
install too. `python3 -m pydtrace.cli.launchers scripts` writes them again
from COMMANDS, and tests/test_help.py fails when they differ.
"""

from __future__ import annotations

from pydtrace.tools import TOOLS

# command -> (module, function): what the command runs
COMMANDS: dict[str, tuple[str, str]] = {
    "pydtrace": ("pydtrace.cli.dtrace", "main"),
    "dtrace": ("pydtrace.cli.dtrace", "main"),  # speaks as dtrace (messages name argv[0])
    "kdump": ("pydtrace.cli.kdump", "main"),
    "ktrace": ("pydtrace.cli.ktrace", "main"),
    # the toolkit (docs/tools.md): each runs its tool's .d program through a Session
    **{name: ("pydtrace.cli.tools", name.replace("-", "_")) for name in TOOLS},
}


def launcher(name: str) -> str:
    """The text of command `name`'s launcher (pip rewrites the first line)."""
    module, function = COMMANDS[name]
    return (
        "#!python\n"
        f"# the {name} command (written by pydtrace.cli.launchers: not pip's console\n"
        "# script, whose `import re` is 3-5 ms of every start)\n"
        "import sys\n\n"
        f"from {module} import {function}\n\n"
        f"sys.exit({function}())\n"
    )


def main(argv: list[str] | None = None) -> int:
    """`python3 -m pydtrace.cli.launchers DIR`: write the launchers into DIR."""
    from pydtrace.cli.manual import write_into

    return write_into(argv, "pydtrace.cli.launchers", {n: launcher(n) for n in COMMANDS}, 0o755)


if __name__ == "__main__":
    raise SystemExit(main())
