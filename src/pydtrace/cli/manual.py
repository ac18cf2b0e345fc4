"""What the commands say about themselves: one source for `--help`,
`--version`, the OpenBSD usage lines of ktrace/kdump, and the man pages.

Each command is a Page: its synopsis, description, options, examples and
closing sections.  `--help` prints a short view of a page (what the command
is, the common options, a few examples, where the manual is); the man pages
in man/man1/ are the whole page rendered as roff by this module, and checked
in: `python3 -m pydtrace.cli.manual man/man1` writes them again, and
tests/test_help.py fails when they differ from what this module renders.

Markup in the texts: `literal` (bold in a man page, plain in --help); the
word {prog} stands for the name the page is rendered for (pydtrace or dtrace).
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

from pydtrace.lang.dataclass import dataclass

D_VERSION = "Oracle D 2.0"  # what dtrace -V reports: the D language's version


@dataclass(frozen=True)
class Opt:
    flag: str  # "-n", "--help"
    arg: str = ""  # the argument's name, "" for a flag
    brief: str = ""  # one line for --help; "" leaves the option out of --help
    text: str = ""  # the man page's paragraph (brief when empty)
    help_arg: str = ""  # a shorter argument name for --help (arg when empty)


@dataclass(frozen=True)
class Example:
    command: str
    text: str  # what it does, a sentence
    brief: bool = False  # in --help too


@dataclass(frozen=True)
class Page:
    name: str
    summary: str  # the NAME line's description
    synopsis: tuple[str, ...]  # usage forms, without the command's name; \n continues one
    intro: tuple[str, ...]  # --help's lines under the usage: what the command is
    description: tuple[str, ...]  # man paragraphs
    options: tuple[Opt, ...]
    examples: tuple[Example, ...]
    sections: tuple[tuple[str, tuple[str, ...]], ...] = ()  # after EXAMPLES: (title, paragraphs)
    see_also: tuple[str, ...] = ()  # "kdump(1)"
    help_footer: tuple[str, ...] = ()  # --help's last lines
    usage_word: str = "Usage:"  # dtrace: "Usage:", OpenBSD: "usage:"
    help_options: tuple[str, ...] = ()  # the flags --help shows, in its order (default: all)
    help_options_title: str = "Options:"
    extra_synopsis: tuple[str, ...] = ()  # man only (e.g. --help, --version)
    help_synopsis: tuple[str, ...] = ()  # --help's usage forms, when not the synopsis


# --- the pages --------------------------------------------------------------------------

_CLAUSE = "[[ predicate ] action ]"

CACHE_TEXT = (
    "`PYDTRACE_CACHE`: a run on the eBPF engine keeps its compiled program, and the next "
    "run of the same command line in the same directory starts from it (for the kernel boot "
    "that made it): in /run/pydtrace for root, $XDG_RUNTIME_DIR/pydtrace for another "
    "user. Set to a directory, it keeps them there (used only if no other user can "
    "change it); set to 0, it keeps none."
)

PYDTRACE = Page(
    name="pydtrace",
    summary="DTrace for Linux in pure Python",
    synopsis=(
        "[-32|-64] [-aABCeFGhHlqSvVwZ] [-b bufsz] [-c cmd] [-D name[=def]]\n"
        "[-I path] [-L path] [-o output] [-p pid] [-s script] [-U name]\n"
        "[-x opt[=val]] [-X `a`|`c`|`s`|`t`]\n"
        f"[-P provider {_CLAUSE}]\n"
        f"[-m [provider:]module {_CLAUSE}]\n"
        f"[-f [[provider:]module:]func {_CLAUSE}]\n"
        f"[-n [[[provider:]module:]func:]name {_CLAUSE}]\n"
        f"[-i probe-id {_CLAUSE}] [args ...]",
    ),
    extra_synopsis=("--help", "--version"),
    # dtrace's synopsis is 8 lines long: --help shows the common forms
    help_synopsis=(
        "[options] -n 'probe /predicate/ { actions }' [args ...]",
        "[options] -s script.d [args ...]",
        "-l [-v] [-n probe | -P provider]",
    ),
    intro=(
        "DTrace for Linux in pure Python (pydtrace). Runs D programs system-wide in the",
        "kernel (eBPF, as root) or on one process tree over ptrace (-c/-p, any user).",
    ),
    description=(
        "pydtrace is dtrace(1) for Linux, written in Python: it takes dtrace's options, "
        "compiles the D language with dtrace's error messages and prints dtrace's output, "
        "byte for byte. Nothing is compiled outside Python: no LLVM, no kernel headers.",
        "A D program is a set of clauses, `probe-description /predicate/ { actions }`. A "
        "probe description names probes as `provider:module:function:name`; an empty field "
        "or a `*` matches anything, and the shorter forms `function:name` and `name` leave "
        "the first fields empty. Programs come from `-s` files and from `-n`, `-P`, `-m`, "
        "`-f` and `-i` on the command line (quote them for the shell). Operands after the "
        "options are the macro variables `$1`, `$2`, ... (`$$1` as a string).",
        "Which engine runs a program: as root (or with CAP_BPF and CAP_PERFMON) every "
        "program runs in the kernel as eBPF, compiled to BPF instructions in Python, with "
        "the `syscall`, `proc`, `sched`, `io`, `sdt`, `profile`, `tick` and `pid` providers "
        "and USDT probes. Without that privilege, `-c` and `-p` trace one process tree "
        "over ptrace with the `syscall` and `proc` providers, and programs with only "
        "`BEGIN`, `END`, `tick` and `profile` probes run in the user-space engine. "
        "`-x engine=ebpf` or `-x engine=ptrace` chooses one. A construct an engine cannot "
        "run is refused by name, never run silently elsewhere.",
        "Ctrl-C (or SIGTERM) ends tracing as dtrace does: `END` runs and the aggregations "
        "are printed; a second Ctrl-C aborts. A `-c` command still running then is killed; "
        "`-p` processes are let go and run on. Messages start with the name the command "
        "was run as: `dtrace`, installed beside `pydtrace`, is the same command and "
        "speaks as dtrace.",
    ),
    options=(
        Opt("-32", text="Accepted for dtrace's sake: programs are 64-bit (x86-64) anyway."),
        Opt("-64", text="Generate 64-bit D programs, the default and only model."),
        Opt("-a", text="Accepted and ignored: Linux has no anonymous tracing."),
        Opt("-A", text="Accepted and ignored, as -a."),
        Opt(
            "-b",
            "bufsz",
            text="Set the principal buffer size (the `bufsize` option); a size takes the "
            "suffixes k, m, g and t.",
        ),
        Opt(
            "-B",
            text="Accepted for dtrace-utils' sake; not valid with -G, -l or -o.",
        ),
        Opt(
            "-c",
            "cmd",
            brief="run cmd, trace it, exit when it exits ($target: its pid)",
            text="Run the command cmd (split into words at white space; no shell runs it, so "
            "quotes and redirections are not interpreted) and exit when it has exited. "
            "`$target` is its process ID. Several -c may be given; {prog} exits when all "
            "have exited. Without root, the command and its descendants are traced over ptrace.",
        ),
        Opt(
            "-C",
            text="Run the C preprocessor, cpp(1), over the D programs before compiling them "
            "(see -D, -U, -I, -H and -X).",
        ),
        Opt("-D", "name[=def]", text="Define name for the preprocessor (with -C)."),
        Opt(
            "-e",
            text="Exit after compiling the programs, before enabling any probe: checks a program.",
        ),
        Opt(
            "-f",
            f"[[provider:]module:]func {_CLAUSE}",
            text="Enable (or with -l list) the probes of a function, with an optional clause.",
        ),
        Opt(
            "-F",
            text="Coalesce trace output by function: entries indented and marked `->`, returns "
            "`<-` (system calls `=>` and `<=`).",
        ),
        Opt(
            "-G",
            text="dtrace's mode that writes an ELF object: {prog} compiles the programs and "
            "exits without writing one.",
        ),
        Opt(
            "-h",
            text="dtrace's mode that writes a header file for static probes: {prog} compiles "
            "the programs and exits without writing one. (This is not a help option: "
            "help is --help.)",
        ),
        Opt("-H", text="Print the name of each file the preprocessor includes (with -C)."),
        Opt(
            "-i",
            f"probe-id {_CLAUSE}",
            text="Enable (or with -l list) the probe with this ID, as -l shows it.",
        ),
        Opt("-I", "path", text="Add a directory to the preprocessor's include path (with -C)."),
        Opt(
            "-l",
            brief="list probes (those -n, -P or -s name, else all)",
            text="List probes instead of enabling them: those the -n, -P, -m, -f, -i and -s "
            "programs name, or every probe when there is none. With -v, each probe's "
            "stability and argument types.",
        ),
        Opt("-L", "path", text="Add a directory to the D library search path."),
        Opt(
            "-m",
            f"[provider:]module {_CLAUSE}",
            text="Enable (or with -l list) the probes of a module, with an optional clause.",
        ),
        Opt(
            "-n",
            f"[[[provider:]module:]func:]name {_CLAUSE}",
            brief="enable the probes a description names; run the clause",
            text="Enable (or with -l list) the probes a description names, with an optional "
            "clause. The most used form: -n 'syscall::openat:entry { ... }'.",
            help_arg="'probe {...}'",
        ),
        Opt(
            "-o",
            "output",
            brief="append the output to a file",
            text="Append the output to the file output (it is never truncated). As root, a file "
            "or symbolic link another user owns is refused.",
        ),
        Opt(
            "-p",
            "pid",
            brief="trace a running process; exit when it exits",
            text="Trace the running process pid (several -p may be given) and exit when it has "
            "exited. `$target` is the first one's ID. When tracing ends the process runs on, "
            "untouched.",
        ),
        Opt(
            "-P",
            f"provider {_CLAUSE}",
            brief="enable every probe of a provider",
            text="Enable (or with -l list) every probe of a provider, with an optional clause.",
            help_arg="provider",
        ),
        Opt(
            "-q",
            brief="quiet: print only what the program prints",
            text="Quiet: no `matched N probes` message, no column headings, CPU or probe "
            "columns; only what trace(), printf() and the other actions print.",
        ),
        Opt(
            "-s",
            "script",
            brief="run the D program in a file (script.d)",
            text="Compile the D program in the file script. A script may start with "
            "`#!/usr/bin/env -S pydtrace -s` and be run as a command.",
        ),
        Opt(
            "-S",
            text="Print the compiler's intermediate code on standard error: on eBPF, the BPF "
            "programs it generates.",
        ),
        Opt("-U", "name", text="Undefine name for the preprocessor (with -C)."),
        Opt(
            "-v",
            text="Verbose: the stability report of each description; with -l, each probe's "
            "attributes and argument types.",
        ),
        Opt(
            "-V",
            brief="print the D version as dtrace does, and exit",
            text="Print the version of the D language, as dtrace does (`{prog}: "
            + D_VERSION
            + "`), and exit.",
        ),
        Opt(
            "-w",
            brief="permit destructive actions (stop(), system(), ...)",
            text="Permit destructive actions: stop(), raise(), chill(), system(), panic() and "
            "the rest. Without -w a program that uses one is refused.",
        ),
        Opt(
            "-x",
            "opt[=val]",
            brief="set an option (bufsize=4m, json, engine=ptrace, ...)",
            text="Set a compiler or tracing option, as dtrace's `#pragma D option` does: a flag "
            "by its name, the others as name=value. Among them: `bufsize`, `aggsize`, "
            "`strsize`, `switchrate`, `aggrate`, `quiet`, `flowindent`, `destructive`, "
            "`zdefs`, and pydtrace's own `engine=ebpf|ptrace|tracefs` (which engine runs the "
            "program), `json` (one JSON object per record and per aggregation) and `folded` "
            "(aggregations as folded stacks for flame graphs), `seccompnotify` (on the ptrace "
            "engine, fire a -c command's entry-only syscall probes from seccomp notifications, "
            "without stopping it: several times faster, but a signal to a handler installed "
            "without SA_RESTART may then fail a traced call with EINTR). An unknown name or bad value "
            "is refused: `{prog}: failed to set -x nosuchopt: Invalid option name`.",
        ),
        Opt(
            "-X",
            "`a`|`c`|`s`|`t`",
            text="The C conformance level the preprocessor is run with (with -C).",
        ),
        Opt(
            "-Z",
            brief="permit descriptions that match no probe",
            text="Permit probe descriptions that match no probe, instead of refusing the program.",
        ),
        Opt("--help", brief="print this help and exit", text="Print a short help and exit."),
        Opt(
            "--version",
            brief="print pydtrace's version and exit",
            text="Print pydtrace's version and the D language's version, and exit.",
        ),
    ),
    examples=(
        Example(
            "{prog} -n 'BEGIN { printf(\"hello\\n\"); exit(0); }'",
            "Print hello and exit.",
            brief=True,
        ),
        Example(
            "{prog} -c 'ls /tmp' -n 'syscall::openat:entry /pid == $target/ "
            '{ printf("%s\\n", copyinstr(arg1)); }\'',
            "Print each file ls opens. No root needed: without it, ls is traced over ptrace.",
            brief=True,
        ),
        Example(
            "{prog} -n 'syscall:::entry { @[execname] = count(); }'",
            "As root: count the system calls of every program on the system until Ctrl-C, "
            "then print the counts.",
            brief=True,
        ),
        Example(
            "{prog} -l -P syscall",
            "List the probes of the syscall provider.",
            brief=True,
        ),
        Example(
            '{prog} -q -n \'syscall::read:return /execname == "sshd"/ '
            "{ @bytes = quantize(arg0); } tick-10s { exit(0); }'",
            "As root: a histogram of the sizes sshd's reads return, after ten seconds.",
        ),
        Example(
            "{prog} -lv -n 'sched:::off-cpu'",
            "A probe's arguments and their types.",
        ),
    ),
    sections=(
        (
            "EXIT STATUS",
            (
                "0 when tracing ended normally (a program's exit(n) sets the status to n); "
                "1 when a program could not be compiled or run, or an option value is "
                "refused; 2 for a usage error: an unknown option or a missing argument "
                "(one line and a hint on standard error), or no arguments at all (the "
                "usage of every option).",
            ),
        ),
        (
            "ENVIRONMENT",
            (
                "`POSIXLY_CORRECT`: options end at the first operand, as getopt(3) does; "
                "otherwise options may follow operands until `--`.",
                CACHE_TEXT,
            ),
        ),
        (
            "NOTES",
            (
                "Run {prog} with no arguments for the list of every option, as dtrace "
                "prints it. The guides, the provider reference and the Python API are in "
                "the docs/ directory of pydtrace's source.",
            ),
        ),
    ),
    see_also=("ktrace(1)", "kdump(1)", "cpp(1)", "bpftrace(8)"),
    help_footer=(
        "Every option: {prog} with no arguments. Manual: man {prog}.",
        "Guides and reference: the docs/ directory of pydtrace's source.",
    ),
    help_options=tuple("-n -P -s -l -c -p -q -o -x -w -Z -V --help --version".split()),
    help_options_title="Common options:",
)

KTRACE = Page(
    name="ktrace",
    summary="record what processes do to a trace file",
    synopsis=(
        "[-aBdi] [-f trfile] [-t trstr] [--engine `ebpf`|`ptrace`] command [args ...]",
        "[-aCcdi] [-f trfile] [-g pgid | -p pid] [-t trstr] [--engine `ebpf`|`ptrace`]",
    ),
    extra_synopsis=("--help", "--version"),
    usage_word="usage:",
    intro=(
        "Record the system calls, paths, I/O data, signals and exec arguments of a",
        "command or of running processes to a trace file, as OpenBSD's ktrace does;",
        "kdump prints it.",
    ),
    description=(
        "ktrace is OpenBSD's ktrace(1) for Linux, part of pydtrace. It records what "
        "processes do to a trace file (`ktrace.out` unless -f), which kdump(1) prints.",
        "With a command, ktrace runs it in the foreground, records it and its children, "
        "and exits with its status. With -p or -g, it starts a recorder in the "
        "background and returns as soon as the targets are traced; the recorder runs "
        "until they have all exited or `ktrace -C` (or -c) stops it.",
        "As root (or with CAP_BPF and CAP_PERFMON) ktrace records in the kernel with eBPF; "
        "otherwise over ptrace, on the user's own processes. The trace file is created "
        "mode 0600: it holds what the programs read and wrote.",
    ),
    options=(
        Opt(
            "-a",
            brief="append to the trace file",
            text="Append to the trace file instead of starting it afresh.",
        ),
        Opt(
            "-B",
            brief="run the command with LD_BIND_NOW=1",
            text="Run the command with `LD_BIND_NOW=1`, so that lazy binding adds no noise.",
        ),
        Opt(
            "-C",
            brief="stop every recording of this user",
            text="Stop every recording this user started (every user's, for root).",
        ),
        Opt(
            "-c",
            brief="stop the recordings of -p/-g or of the -f file",
            text="Stop the recordings of the -p or -g targets, or without them those writing "
            "to the -f file.",
        ),
        Opt(
            "-d",
            brief="with -p/-g: also trace their current descendants",
            text="With -p or -g: also trace the targets' current descendants.",
        ),
        Opt(
            "-f",
            "trfile",
            brief="the trace file (default ktrace.out)",
            text="The trace file; `ktrace.out` by default.",
        ),
        Opt(
            "-g",
            "pgid",
            brief="trace the processes of a process group",
            text="Trace the processes of the process group pgid.",
        ),
        Opt(
            "-i",
            brief="follow children created while recording",
            text="Follow the children created while recording (always on with a command).",
        ),
        Opt("-p", "pid", brief="trace a running process", text="Trace the running process pid."),
        Opt(
            "-t",
            "trstr",
            brief="trace points, from cnistuxXfw (default +: cnistuxf)",
            text="The trace points to record: `c` system calls and returns, `n` the paths they "
            "name, `i` the data they read and write, `s` signals, `t` structures, `u` "
            "USER records, `x` exec arguments, `X` exec environment, `f` process creation "
            "and exit, `w` context switches (eBPF only), `+` the default set, `cnistuxf`.",
        ),
        Opt(
            "--engine",
            "`ebpf`|`ptrace`",
            brief="record with eBPF or over ptrace",
            text="Record with eBPF or over ptrace. The default is eBPF when this user may load "
            "BPF programs, else ptrace.",
        ),
        Opt("--help", brief="print this help and exit", text="Print a short help and exit."),
        Opt(
            "--version",
            brief="print the version and exit",
            text="Print pydtrace's version and the trace file format's, and exit.",
        ),
    ),
    examples=(
        Example(
            "ktrace -f t.out ls && kdump -f t.out",
            "Record ls and print what it did.",
            brief=True,
        ),
        Example(
            "ktrace -t cn cat /etc/hostname && kdump | grep -A2 hostname",
            "Record only system calls and their paths, to ktrace.out.",
            brief=True,
        ),
        Example(
            "ktrace -p 1234 && sleep 5 && ktrace -c -p 1234",
            "Record a running process for five seconds.",
            brief=True,
        ),
    ),
    sections=(
        (
            "EXIT STATUS",
            (
                "With a command, the command's status (128 plus the signal when a signal "
                "killed it). Otherwise 0, or 1 after a message `ktrace: ...` (a usage "
                "error prints the usage lines).",
            ),
        ),
        ("FILES", ("`ktrace.out`: the default trace file.",)),
        (
            "NOTES",
            (
                "The trace file's format, the engines and USER records are described in "
                "the docs/ directory of pydtrace's source.",
            ),
        ),
    ),
    see_also=("kdump(1)", "pydtrace(1)", "strace(1)"),
    help_footer=("Manual: man ktrace. More: the docs/ directory of pydtrace's source.",),
)

KDUMP = Page(
    name="kdump",
    summary="print a ktrace file",
    synopsis=("[-dHlnRTXx] [-f file] [-m maxdata] [-p pid] [-t trstr] [--json | --timeline FILE]",),
    extra_synopsis=("--help", "--version"),
    usage_word="usage:",
    intro=(
        "Print a trace file written by ktrace, one line per record, as OpenBSD's kdump,",
        "decoding Linux system calls, flags, errors, signals and structures.",
    ),
    description=(
        "kdump is OpenBSD's kdump(1) for Linux, part of pydtrace. It reads a trace file "
        "written by ktrace(1) and prints one line per record: the pid, the command, the "
        "record type (CALL, RET, NAMI, GIO, PSIG, STRU, USER, ARGS, ENV, CSW, FORK, "
        "EXIT) and its decoded contents. A file can be printed as often as you like, "
        "with different options.",
    ),
    options=(
        Opt(
            "-d",
            brief="numbers in decimal instead of hex",
            text="Print plain numbers (sizes, unknown arguments; with -n return values) in "
            "decimal instead of hex.",
        ),
        Opt(
            "-f",
            "file",
            brief="the trace file (default ktrace.out; - for stdin)",
            text="The trace file; `ktrace.out` by default, `-` for standard input.",
        ),
        Opt("-H", brief="add the thread ID after the pid", text="Add the thread ID after the pid."),
        Opt(
            "-l",
            brief="follow: wait for more records at the end",
            text="Follow: at the end of the file, wait for more records, until interrupted.",
        ),
        Opt(
            "-m",
            "maxdata",
            brief="show at most maxdata bytes of each I/O record",
            text="Show at most maxdata bytes of the data of each GIO and USER record.",
        ),
        Opt(
            "-n",
            brief="no decoding: raw numbers",
            text="No decoding: flags, enums and modes as raw numbers, return values in hex, "
            "no error text.",
        ),
        Opt(
            "-p",
            "pid",
            brief="only the records of this process (or thread)",
            text="Print only the records of the process pid; a thread ID selects that "
            "thread's records.",
        ),
        Opt(
            "-R",
            brief="time since the previous record",
            text="Print the time since the previous record (with -T: since the first).",
        ),
        Opt("-T", brief="absolute time", text="Print absolute times (seconds since the epoch)."),
        Opt(
            "-t",
            "trstr",
            brief="only these trace points (letters as ktrace -t)",
            text="Print only these trace points, with the letters of ktrace -t.",
        ),
        Opt("-x", brief="I/O data as hex", text="Print I/O data as hex bytes."),
        Opt("-X", brief="I/O data as hex and ASCII", text="Print I/O data as hex bytes and ASCII."),
        Opt(
            "--json",
            brief="one JSON object per record",
            text="Print one JSON object per record instead of text.",
        ),
        Opt(
            "--timeline",
            "FILE",
            brief="write a Perfetto/chrome://tracing timeline to FILE (- for stdout)",
            text="Write the trace as Trace Event Format JSON to FILE (made afresh, mode "
            "0600; `-`: standard output), for Perfetto or chrome://tracing: a track per "
            "thread, each system call a slice with its arguments and result, signals, "
            "exec, fork and exit as instant events. -p and -t choose the records.",
        ),
        Opt("--help", brief="print this help and exit", text="Print a short help and exit."),
        Opt(
            "--version",
            brief="print the version and exit",
            text="Print pydtrace's version and the trace file format's, and exit.",
        ),
    ),
    examples=(
        Example("kdump -f t.out", "Print the trace file t.out.", brief=True),
        Example(
            "kdump -t ci -X",
            "System calls and the data they read and wrote, in hex and ASCII.",
            brief=True,
        ),
        Example(
            "kdump --json -t c",
            "System calls and their returns as JSON objects, one a line.",
            brief=True,
        ),
        Example(
            "kdump -t cs --timeline -",
            "System calls and signals as a timeline (Trace Event Format JSON; written to "
            "a file instead, it opens in https://ui.perfetto.dev).",
            brief=True,
        ),
    ),
    sections=(
        (
            "EXIT STATUS",
            (
                "0; 1 after a message `kdump: ...` for a file that cannot be opened, is not "
                "a trace, or has a damaged record, for an output that cannot be written, "
                "and for a usage error.",
            ),
        ),
        ("FILES", ("`ktrace.out`: the default trace file.",)),
        (
            "NOTES",
            (
                "The line layout of every record type and the JSON fields are described "
                "in the docs/ directory of pydtrace's source.",
            ),
        ),
    ),
    see_also=("ktrace(1)", "pydtrace(1)"),
    help_footer=("Manual: man kdump. More: the docs/ directory of pydtrace's source.",),
)

# every man page: (file name without .1, page, the name it is rendered for)
MAN_PAGES: tuple[tuple[str, Page, str], ...] = (
    ("pydtrace", PYDTRACE, "pydtrace"),
    ("dtrace", PYDTRACE, "dtrace"),
    ("ktrace", KTRACE, "ktrace"),
    ("kdump", KDUMP, "kdump"),
)


# --- the toolkit's pages: from each tool's own option table ------------------------------


def _synopsis_lines(text: str, width: int = 66) -> str:
    """A usage line's bracketed groups, wrapped at width ("\n" continues a form)."""
    groups, depth, cur = [], 0, ""
    for ch in text:
        if ch == " " and depth == 0:
            if cur:
                groups.append(cur)
            cur = ""
            continue
        depth += (ch == "[") - (ch == "]")
        cur += ch
    if cur:
        groups.append(cur)
    lines = [""]
    for g in groups:
        if lines[-1] and len(lines[-1]) + 1 + len(g) > width:
            lines.append("")
        lines[-1] = f"{lines[-1]} {g}" if lines[-1] else g
    return "\n".join(lines)


def tool_page(name: str) -> Page:
    """A tool's page, from what its -h prints (the same option table, the same
    summary), its examples (the Tool class's `examples`, (command, text) pairs)
    and what every tool shares: its D program, its engines, its exit status."""
    from pydtrace.tools import load
    from pydtrace.tools.options import usage

    cls = load(name)
    usage_line = usage(name, cls.summary, cls.options, cls.positional).splitlines()[0]
    synopsis = usage_line[len(f"usage: {name} ") :]
    opts = []
    for o in cls.options:
        flag = ", ".join(f for f in (o.short and f"-{o.short}", o.long and f"--{o.long}") if f)
        opts.append(Opt(flag, o.metavar or "", o.help))
    if cls.positional == "interval":
        opts.append(Opt("interval", "[count]", "print every interval seconds, count times"))
    if cls.kernel_only:
        engines = (
            "Its probes are in the kernel: it runs on the eBPF engine only, as root (or with "
            "CAP_BPF and CAP_PERFMON). Run without that privilege, or with `--engine ptrace`, "
            "it says so in one line and exits with status 1."
        )
    else:
        engines = (
            "As root it runs on the eBPF engine and sees every process (or those -p, a command "
            "or -n choose); without that privilege it traces one process (-p) or a command "
            "over ptrace, with the same output. `--engine ebpf|ptrace` chooses."
        )
    if cls.positional == "interval":
        operands = (
            "Operands: an interval in seconds, to print every interval (and a count of "
            "intervals); a command to run and trace goes after `--`, and the tool ends when "
            "it ends."
        )
    elif cls.positional == "command":
        operands = (
            "The first word that is not an option starts the command to run and trace (or "
            "put it after `--`); the tool ends when it ends."
        )
    else:
        operands = ""
    description = (
        cls.summary,
        f"{name} runs the D program `{cls.script_file}`, installed with pydtrace, with its "
        f"settings taken from the options: `{name} --print-script` prints the program a run "
        "would use, and the file runs by itself as `pydtrace -qs " + cls.script_file + "`.",
        engines,
        *((operands,) if operands else ()),
    )
    examples = tuple(Example(c, t) for c, t in getattr(cls, "examples", ())) or (
        Example(f"{name} --print-script", "Print the D program this tool runs."),
    )
    return Page(
        name=name,
        summary=cls.summary.split(":")[0].split(" (")[0].rstrip(".").lower(),
        synopsis=(_synopsis_lines(synopsis),),
        intro=(),
        description=description,
        options=tuple(opts),
        examples=examples,
        sections=(
            (
                "EXIT STATUS",
                (
                    "0 when tracing ended (Ctrl-C included); 1 when it could not start (no "
                    "such process, a command that cannot be run, no privileges, an output "
                    f"that cannot be written), after one line `{name}: ...` on standard "
                    "error; 2 for a mistake on the command line, in one line.",
                ),
            ),
            ("ENVIRONMENT", (CACHE_TEXT,)),
            (
                "NOTES",
                (
                    "Every tool, its output and how it is tested: docs/tools.md in pydtrace's "
                    "source.",
                ),  # fmt: skip
            ),
        ),
        see_also=("pydtrace(1)",),
        usage_word="usage:",
    )


def all_man_pages() -> tuple[tuple[str, Page, str], ...]:
    """MAN_PAGES and a page for every tool (loaded only when asked: --help
    need not import the toolkit)."""
    from pydtrace.tools import TOOLS

    return MAN_PAGES + tuple((name, tool_page(name), name) for name in TOOLS)


# --- plain text: --help, --version, usage lines -----------------------------------------


def _plain(text: str, prog: str) -> str:
    return text.replace("`", "").replace("{prog}", prog)


def usage_lines(page: Page, prog: str | None = None, forms: tuple[str, ...] = ()) -> str:
    """The synopsis (or forms) as a command prints it: `usage: kdump [-dHlnRTXx] ...`."""
    prog = prog or page.name
    forms = forms or page.synopsis
    pad = " " * len(page.usage_word)
    lines = [f"{page.usage_word} {prog} {_plain(forms[0], prog)}"]
    lines += [f"{pad} {prog} {_plain(s, prog)}" for s in forms[1:]]
    return "\n".join(lines) + "\n"


def help_text(page: Page, prog: str | None = None) -> str:
    """--help: the usage, what the command is, the common options, a few examples,
    and where the manual is."""
    prog = prog or page.name
    by_flag = {o.flag: o for o in page.options}
    opts = [by_flag[f] for f in page.help_options] if page.help_options else page.options
    cells = []
    for o in opts:
        arg = _plain(o.help_arg or o.arg, prog)
        cells.append((o.flag + (" " + arg if arg else ""), o.brief))
    width = max(len(c) for c, _ in cells) + 2
    out = [usage_lines(page, prog, page.help_synopsis).rstrip("\n")]
    out += [_plain(s, prog) for s in page.intro]
    out += ["", page.help_options_title]
    out += [f"  {c:<{width}}{_plain(b, prog)}" for c, b in cells]
    out += ["", "Examples:"]
    for ex in page.examples:
        if ex.brief:
            out.append(f"  {_plain(ex.command, prog)}")
            out += textwrap.wrap(_plain(ex.text, prog), 79, initial_indent=" " * 6,
                                 subsequent_indent=" " * 6)  # fmt: skip
    out += [""] + [_plain(s, prog) for s in page.help_footer]
    return "\n".join(out) + "\n"


def package_version() -> str:
    """pydtrace's version, from the installed package's metadata."""
    from importlib import metadata  # only for --version: it takes a while to import

    try:
        return metadata.version("pydtrace")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def version_text(prog: str, detail: str) -> str:
    """--version: `pydtrace 0.1.0` (`dtrace (pydtrace) 0.1.0` under another name),
    then a line saying what the command speaks or reads."""
    v = package_version()
    head = f"pydtrace {v}" if prog == "pydtrace" else f"{prog} (pydtrace) {v}"
    return f"{head}\n{detail}\n"


def hint(prog: str) -> str:
    """The line after a usage error, as GNU tools print it."""
    return f"Try '{prog} --help' for more information.\n"


# --- roff: the man pages ----------------------------------------------------------------

_ROFF_CHARS = {"\\": r"\e", "-": r"\-", "'": r"\(aq", "^": r"\(ha", "~": r"\(ti", '"': r"\(dq"}
_ROFF_RE = re.compile("[" + re.escape("".join(_ROFF_CHARS)) + "]")


def _esc(text: str) -> str:
    """Text for a roff text line: characters that render otherwise (a - becomes a
    hyphen, ' a curly quote) spelled as the character meant."""
    return _ROFF_RE.sub(lambda m: _ROFF_CHARS[m.group()], text)


def _inline(text: str, prog: str) -> str:
    """Escaped text with `literal` in bold."""
    parts = text.replace("{prog}", prog).split("`")
    if len(parts) % 2 == 0:
        raise ValueError(f"unbalanced ` in {text!r}")
    return "".join(_esc(p) if i % 2 == 0 else rf"\fB{_esc(p)}\fR" for i, p in enumerate(parts))


def _line(text: str) -> str:
    """A text line that cannot be taken for a request."""
    return "\\&" + text if text[:1] in (".", "'") else text


_SYN_TOKEN = re.compile(r"`[^`]*`|--?[A-Za-z0-9][A-Za-z0-9-]*|[A-Za-z][A-Za-z0-9._-]*|.", re.S)


def _synopsis_markup(text: str) -> str:
    """Options in bold, the names of arguments in italic, brackets as they are."""
    out = []
    for tok in _SYN_TOKEN.findall(text):
        if tok.startswith("`"):
            out.append(rf"\fB{_esc(tok[1:-1])}\fR")
        elif tok.startswith("-"):
            out.append(rf"\fB{_esc(tok)}\fR")
        elif tok[0].isalpha():
            out.append(rf"\fI{_esc(tok)}\fR")
        else:
            out.append(_esc(tok))
    return "".join(out)


def _opt_tag(o: Opt, prog: str) -> str:
    tag = rf"\fB{_esc(o.flag)}\fR"
    if o.arg:
        tag += " " + _synopsis_markup(o.arg.replace("{prog}", prog))
    return tag


def _paragraphs(paras: tuple[str, ...], prog: str) -> list[str]:
    out: list[str] = []
    for i, p in enumerate(paras):
        if i:
            out.append(".PP")
        out.append(_line(_inline(p, prog)))
    return out


def man_page(page: Page, prog: str | None = None) -> str:
    """The page as roff for man(7)."""
    prog = prog or page.name
    title = prog.upper()
    summary = page.summary if prog == page.name else f"{page.summary} ({page.name})"
    r = [
        r".\" Generated from src/pydtrace/cli/manual.py by `python3 -m pydtrace.cli.manual`.",
        r".\" Edit that file, not this one.",
        f'.TH {title} 1 "" "pydtrace" "User Commands"',
        ".nh",  # no hyphenation: options and D code are copied as shown
        ".ad l",
        ".SH NAME",
        _line(f"{_esc(prog)} \\- {_esc(summary)}"),
        ".SH SYNOPSIS",
    ]
    r.append(".nf")
    indent = " " * (len(prog) + 1)
    for s in (*page.synopsis, *page.extra_synopsis):
        first, *more = s.replace("{prog}", prog).split("\n")
        r.append(_line(rf"\fB{_esc(prog)}\fR " + _synopsis_markup(first)))
        r += [indent + _synopsis_markup(m) for m in more]
    r.append(".fi")
    r += [".SH DESCRIPTION", *_paragraphs(page.description, prog)]
    r.append(".SH OPTIONS")
    for o in page.options:
        r += [".TP", _line(_opt_tag(o, prog)), _line(_inline(o.text or o.brief, prog))]
    r.append(".SH EXAMPLES")
    for ex in page.examples:
        r += [".PP", _line(_inline(ex.text, prog)), ".PP", ".RS 4", ".nf"]
        r.append(_line(_esc(ex.command.replace("{prog}", prog))))
        r += [".fi", ".RE"]
    for name, paras in page.sections:
        r += [f".SH {name}", *_paragraphs(paras, prog)]
    if page.see_also:
        r.append(".SH SEE ALSO")
        refs = []
        for i, ref in enumerate(page.see_also):
            name, _, sect = ref.partition("(")
            end = "," if i + 1 < len(page.see_also) else ""
            refs.append(f".BR {_esc(name)} ({sect}{end}")
        r += refs
    return "\n".join(r) + "\n"


def man_pages() -> dict[str, str]:
    """File name (`pydtrace.1`) -> its roff text, for every page installed."""
    return {f"{stem}.1": man_page(page, prog) for stem, page, prog in all_man_pages()}


def write_into(argv: list[str] | None, module: str, files: dict[str, str], mode: int = 0) -> int:
    """`python3 -m MODULE DIR`, a command writing generated files (name -> text)
    into DIR (chmod'ed to mode when given): its exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write(f"usage: python3 -m {module} directory\n")
        return 2
    out = Path(args[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
        if mode:
            (out / name).chmod(mode)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python3 -m pydtrace.cli.manual DIR`: write the man pages into DIR."""
    return write_into(argv, "pydtrace.cli.manual", man_pages())


if __name__ == "__main__":
    raise SystemExit(main())
