"""The D lexer.

D is lexed in two main modes, as dtrace does: the outer scope ('outer'),
where probe descriptions such as `syscall::read:entry` or `tick-1s` are single
tokens, and expressions ('expr'), which use C's tokens. The parser switches
modes; the lexer hands out one token at a time so each token is read in the
mode current when the parser asks for it.

Like C, D needs the "lexer hack": an identifier is either a type name (TNAME)
or an ordinary identifier (IDENT). We follow dtrace's heuristics, including
its peek at the next character, because they decide what parses and even the
text shown in `syntax error near "..."` messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from pydtrace.lang.dataclass import dataclass

from .errors import DError
from .macros import Macros
from .numbers import digits_value
from .types import SPECIFIER_WORDS

# Keywords of expression mode. Some are reserved only (break, for, ...): using
# them is a syntax error, as in dtrace.
KEYWORDS = frozenset(
    """auto break case char const continue counter default do double else enum extern
    float for goto if import inline int long offsetof probe provider register restrict
    return self short signed sizeof static string stringof struct switch this translator
    typedef union unsigned void volatile while xlate""".split()
)
# Keywords recognised at the outer scope; anything else there is a probe description.
OUTER_KEYWORDS = frozenset(
    """auto char const counter double enum extern float import inline int long provider
    register restrict self short signed static string struct this translator typedef
    union unsigned void volatile""".split()
)

# Built-in identifiers dtrace knows before parsing (variables, subroutines,
# actions, aggregating functions). Known identifiers skip the type-name peek.
BUILTIN_IDENTS = frozenset(
    """arg0 arg1 arg2 arg3 arg4 arg5 arg6 arg7 arg8 arg9 args caller chip cpu curcpu
    curthread curlwpsinfo curpsinfo cwd epid errno execname execargs gid id ipl lgrp pid
    ppid probefunc probemod probename probeprov pset regs root stackdepth tid timestamp
    ucaller uid uregs ustackdepth vtimestamp walltimestamp zonename
    alloca basename bcopy cleanpath copyin copyinstr copyinto copyout copyoutstr d_path
    dirname getmajor getminor htonl htonll htons index inet_ntoa inet_ntoa6 inet_ntop
    lltostr link_ntop msgdsize msgsize mutex_owned mutex_owner mutex_type_adaptive
    mutex_type_spin ntohl ntohll ntohs progenyof rand rindex rw_iswriter rw_read_held
    rw_write_held speculation strchr strjoin strlen strrchr strstr strtok substr tolower
    toupper breakpoint chill clear commit denormalize discard exit freopen ftruncate func
    jstack mod normalize panic pcap print printa printf raise setopt speculate stack stop
    sym system trace tracemem trunc uaddr ufunc umod ustack usym
    avg count llquantize lquantize max min quantize stddev sum""".split()
)

_WS = " \f\n\r\t\v"


@dataclass(slots=True)
class Token:
    kind: str  # the text itself for keywords and punctuators; else INT STR IDENT ...
    text: str  # as written (dtrace's yytext)
    value: object
    line: int
    file: str | None
    errtext: str | None = None  # what `syntax error near` shows, when not `text`
    prefix: str = ""  # '-' or '+' for an integer operand such as $1 = "-5"

    def near(self, what: str = "syntax error") -> str:
        """A parser error at this token, worded as dtrace's yyerror words it."""
        if self.kind == "EOF":
            return f"{what} near end of input"
        text = self.errtext if self.errtext is not None else self.text
        return f'{what} near "{text.split(chr(10), 1)[0]}"'


_RE_CTL = re.compile(r"[ \t\f\v]*#")
_RE_INTERP = re.compile(r"[ \t\f\v]*#![^\n]*")
_RE_INT = re.compile(r"(?:0[xX][0-9A-Fa-f]+|[0-9]+)[uU]?[lL]?[lL]?")
_RE_FP = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[fFlL]?")
_RE_DIGIT_IDENT = re.compile(r"[0-9][0-9a-zA-Z_]*`[0-9a-zA-Z_`]*")
_STR_BODY = r'(?:[^"\\\n]|\\[^"\n]|\\")*'
_CHR_BODY = r"(?:[^'\\\n]|\\[^'\n]|\\')*"
_OPS = (
    r"<<=|>>=|\.\.\.|->|\+\+|--|&&|\|\||\^\^|==|!=|<=|>=|<<|>>|[-+*/%&|^]="
    r"|[-+*/%&|^~!?:.=,;(){}\[\]<>]"
)
_RE_EXPR = re.compile(
    rf"""(?P<ws>[ \t\f\v\r]+)|(?P<nl>\n)|(?P<com>/\*)|(?P<cont>\\\n)
    |(?P<num>\.?[0-9])
    |(?P<dstr>\$\$[0-9]+)|(?P<dnum>\$[0-9]+)
    |(?P<dsid>\$\$[a-zA-Z_`][0-9a-zA-Z_`]*)|(?P<did>\$[a-zA-Z_`][0-9a-zA-Z_`]*)
    |(?P<id>[a-zA-Z_`][0-9a-zA-Z_`]*)
    |(?P<agg>@[a-zA-Z_][0-9a-zA-Z_]*|@)
    |(?P<str>"{_STR_BODY}")|(?P<strnl>"{_STR_BODY}\n)
    |(?P<chr>'{_CHR_BODY}')|(?P<chrnl>'{_CHR_BODY}\n)
    |(?P<op>{_OPS})""",
    re.X,
)
_RE_OUTER = re.compile(
    r"(?P<ws>[ \t\f\v\r]+)|(?P<nl>\n)|(?P<com>/\*)"
    r"|(?P<int>(?:0[xX][0-9A-Fa-f]+|[0-9]+)[uU]?[lL]?[lL]?)"
    r"|(?P<pspec>[-$:a-zA-Z_.?*\\\[\]!][-$:0-9a-zA-Z_.`?*\\\[\]!]*)|(?P<op>[{/,])"
)


# Patterns fewer programs need (after `.` and `->`, control lines, escapes)
# are compiled on first use: compiling them cost every run's start-up.
@cache
def _re_ident_only() -> re.Pattern[str]:
    return re.compile(
        r"(?P<ws>[ \t\f\v\r]+)|(?P<nl>\n)|(?P<com>/\*)|(?P<dnum>\$[0-9]+)"
        r"|(?P<id>[a-zA-Z_`][0-9a-zA-Z_`]*|[0-9][0-9a-zA-Z_]*`[0-9a-zA-Z_`]*)"
    )


@cache
def _re_ctl_item() -> re.Pattern[str]:
    return re.compile(
        rf'(?P<ws>[ \t\f\v\r]+)|(?P<nl>\n)|(?P<str>"{_STR_BODY}")|(?P<strnl>"{_STR_BODY}\n)'
        r'|(?P<word>[^\f\n\t\v "]+)'
    )


_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, '"': 34, "\\": 92}


@cache
def _re_esc() -> re.Pattern[str]:
    return re.compile(r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]*)|(.))", re.S)


def unescape(s: str) -> str:
    """Decode C escapes the way dtrace does (unknown escapes keep their backslash).
    An escaped byte above 0x7f is that byte, not a character: it becomes the
    lone surrogate that encode("utf-8", "surrogateescape") turns back into it."""
    if "\\" not in s:
        return s

    def byte(v: int) -> str:
        v &= 0xFF
        return chr(v if v < 0x80 else 0xDC00 + v)

    def one(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return byte(int(m.group(1), 8))
        if m.group(2) is not None:
            return byte(int(m.group(2) or "0", 16))
        c = m.group(3)
        return chr(_ESCAPES[c]) if c in _ESCAPES else "\\" + c

    return _re_esc().sub(one, s)


def strtoull(s: str) -> tuple[int, str, bool]:
    """C strtoull(s, &end, 0): (value, unparsed rest, overflowed)."""
    i = 0
    while i < len(s) and s[i] in _WS:
        i += 1
    neg = False
    if i < len(s) and s[i] in "+-":
        neg = s[i] == "-"
        i += 1
    base = 10
    if s[i : i + 2] in ("0x", "0X") and i + 2 < len(s) and s[i + 2] in "0123456789abcdefABCDEF":
        base, i = 16, i + 2
    elif s[i : i + 1] == "0":
        base = 8
    digits = "0123456789abcdef"[:base]
    j = i
    while j < len(s) and s[j].lower() in digits:
        j += 1
    if j == i:
        return 0, s, False
    value = digits_value(s[i:j], base)
    if value >= 1 << 64:
        return (1 << 64) - 1, s[j:], True
    if neg:
        value = (-value) & ((1 << 64) - 1)
    return value, s[j:], False


def _bad_idnum(v: str) -> bool:
    """dtrace's strbadidnum: True unless v reads as an integer or an identifier."""
    if not v:
        return True
    _, rest, over = strtoull(v)
    if not over and rest == "" and v.strip(_WS) != "":
        return False
    return any(not (c.isalnum() and c.isascii()) and c not in "_`" for c in v)


class Lexer:
    """Hands out tokens on demand in the mode the parser sets."""

    def __init__(
        self,
        src: str,
        macros: Macros,
        filename: str | None,
        typenames: set[str],
        pspec_only: bool = False,
    ) -> None:
        self.src = src
        self.pos = 0
        self.line = 1
        self.file: str | None = None  # None while in the main file
        self.main = filename
        self.macros = macros
        self.typenames = typenames  # typedef names known so far (the parser adds to it)
        # the kernel's typedef names (BTF), asked only where a type name may
        # follow: the answer may take reading the kernel's BTF
        self.kernel_typedef: Callable[[str], bool] | None = None
        self.known: set[str] = set(BUILTIN_IDENTS)  # dtrace's globals + pcb_idents
        self.pspec_only = pspec_only
        self.mode = "outer"
        self.sident = False  # after . or ->: identifiers only
        self.sou_type = False  # after struct/union/enum: the next name is a tag
        self.parens = self.brackets = self.braces = 0
        self.xlator_input = False  # parsing the input type of a translator
        self.typedef_decl = False  # in a typedef declaration
        self.decl_named = False  # a declaration has its type specifier already
        self.pragmas: list[tuple[int, str | None, list[str]]] = []
        self.on_pragma: Callable[[int, str | None, list[str]], None] | None = None
        # dtrace's one-character peeks push a NUL back when they hit the end of
        # input, which then lexes as an error of its own.
        self.nul_pending = False
        self.nul_at_eof = True

    # --- helpers ------------------------------------------------------------
    def is_type(self, name: str, next_char: str | None = None) -> bool:
        """A typedef name, possibly scoped by a module (D`foo_t, vmlinux`u64);
        the kernel's typedefs count when the character after the name is one
        a type name may have after it (`(sector_t)x`, `u64 *p`, `atomic_t v`,
        `xlate<pid_t>`): never for `x + 1`."""
        module = ""
        if "`" in name:
            module, name = name.rsplit("`", 1)
        if name in self.typenames:
            return True
        if self.kernel_typedef is None or module not in ("", "vmlinux"):
            return False
        if next_char is not None and not (
            next_char in ")*,><" or next_char.isalpha() or next_char == "_"
        ):
            return False
        return self.kernel_typedef(name)

    def error(self, tag: str, msg: str, line: int | None = None) -> DError:
        return DError(tag, msg, self.line if line is None else line, self.file)

    def stray(self, ch: str) -> DError:
        """A character no token starts with; dtrace's lexer reads a NUL as the end of input."""
        if ch == "\0":
            return self.error("D_SYNTAX", "syntax error near end-of-input")
        return self.error("D_SYNTAX", f'syntax error near "{ch}"')

    def _tok(self, kind: str, text: str, value: object = None) -> Token:
        return Token(kind, text, value, self.line, self.file)

    def _bol(self) -> bool:
        return self.pos == 0 or self.src[self.pos - 1] == "\n"

    def _rest_of_line(self, start: int) -> str:
        end = self.src.find("\n", start)
        return self.src[start:] if end < 0 else self.src[start:end]

    def _skip_trivia(self, kind: str | None, m: re.Match[str]) -> bool:
        """Consume white space, a newline (or line continuation) or a comment;
        False if the match is none of them. Every lexer mode skips these alike."""
        if kind == "ws":
            self.pos = m.end()
        elif kind in ("nl", "cont"):
            self.pos = m.end()
            self.line += 1
        elif kind == "com":
            self._comment()
        else:
            return False
        return True

    def _comment(self) -> None:
        """Skip a /* comment */ starting at self.pos."""
        src = self.src
        i = self.pos + 2
        close = src.find("*/", i)
        nested = src.find("/*", i)
        if nested >= 0 and (close < 0 or nested < close):
            self.line += src.count("\n", self.pos, nested)
            raise self.error("D_SYNTAX", "/* encountered inside a comment")
        if close < 0:
            self.line += src.count("\n", self.pos)
            raise self.error("D_SYNTAX", "end-of-file encountered before matching */")
        self.line += src.count("\n", self.pos, close)
        self.pos = close + 2

    # --- the public entry point ---------------------------------------------
    def next(self) -> Token:
        src = self.src
        n = len(src)
        while True:
            if self.pos >= n:
                if self.nul_pending and self.nul_at_eof and self.mode == "expr":
                    raise self.error("D_SYNTAX", "syntax error near end-of-input")
                return self._tok("EOF", "")
            if self._bol():
                m = _RE_INTERP.match(src, self.pos)
                if m:
                    self.pos = m.end()
                    continue
                m = _RE_CTL.match(src, self.pos)
                if m:
                    self.pos = m.end()
                    self._control()
                    continue
            if self.sident:
                tok = self._next_ident_only()
            elif self.mode == "outer":
                tok = self._next_outer()
            else:
                tok = self._next_expr()
            if tok is not None:
                return tok

    # --- expression mode ----------------------------------------------------
    def _next_expr(self) -> Token | None:
        src, pos = self.src, self.pos
        m = _RE_EXPR.match(src, pos)
        if m is None:
            raise self.stray(src[pos])
        kind = m.lastgroup
        text = m.group()
        if self._skip_trivia(kind, m):
            return None
        if kind == "num":
            return self._number(pos)
        self.pos = m.end()
        if kind == "op":
            return self._op(text)
        if kind == "id":
            if text in KEYWORDS:
                if text in ("struct", "union", "enum"):
                    self.sou_type = True
                return self._tok(text, text)
            return self._ident(text, text, pos)
        if kind == "agg":
            return self._tok("AGG", text, text)
        if kind == "str":
            return self._tok("STR", text, _cstring(unescape(text[1:-1])))
        if kind == "chr":
            return self._char(text)
        if kind == "strnl":
            self.line += 1
            raise self.error("D_STR_NL", "newline encountered in string literal")
        if kind == "chrnl":
            self.line += 1
            raise self.error("D_CHR_NL", "newline encountered in character constant")
        return self._macro(kind, text, pos)

    def _op(self, text: str) -> Token:
        if text == "/":
            return self._slash()
        if text == "(":
            self.parens += 1
            self.sou_type = False
        elif text == ")":
            self.parens -= 1
            if self.parens < 0:
                raise self.error("D_SYNTAX", "extra ) in input stream")
            self.sou_type = False
        elif text == "[":
            self.brackets += 1
        elif text == "]":
            self.brackets -= 1
            if self.brackets < 0:
                raise self.error("D_SYNTAX", "extra ] in input stream")
        elif text == "{":
            self.braces += 1
            self.sou_type = False
        elif text == "}":
            self.braces -= 1
            if self.braces < 0:
                raise self.error("D_SYNTAX", "extra } in input stream")
        elif text in ("<", ">"):
            self.sou_type = False
        elif text in (".", "->"):
            self.sident = True
        return self._tok(text, text)

    def _slash(self) -> Token:
        """A '/' ends a predicate when followed by end of input, ';', '{' or '/'."""
        start = self.pos - 1
        i = self.pos
        src = self.src
        while i < len(src) and src[i] in _WS:
            i += 1
        tok = self._tok("/", "/")
        if i >= len(src):
            self.nul_pending = True
        if i >= len(src) or src[i] in ";{/":
            # the peek has read past any newlines by now
            self.line += src.count("\n", self.pos, i)
            self.pos = i
            if self.parens:
                raise self.error("D_SYNTAX", "closing ) expected in predicate before /")
            if self.brackets:
                raise self.error("D_SYNTAX", "closing ] expected in predicate before /")
            tok.kind = "EPRED"
        # dtrace's peek leaves the rest of the line in its token text.
        tok.errtext = self._rest_of_line(start)
        return tok

    def _number(self, pos: int) -> Token:
        src = self.src
        best = ""
        kind = ""
        for k, rx in (("id", _RE_DIGIT_IDENT), ("int", _RE_INT), ("fp", _RE_FP)):
            m = rx.match(src, pos)
            if m and len(m.group()) > len(best):
                best, kind = m.group(), k
        if not best:  # '.' not followed by a digit cannot get here
            raise self.stray(src[pos])
        self.pos = pos + len(best)
        if kind == "id":
            return self._ident(best, best, pos)
        if kind == "fp":
            raise self.error("D_SYNTAX", "floating-point constants are not permitted")
        return self._int(best)

    def _int(self, text: str) -> Token:
        value, rest, over = strtoull(text)
        if over:
            raise self.error("D_INT_OFLOW", f"constant {text} results in integer overflow")
        if rest and rest[0] not in "uUlL":
            raise self.error("D_INT_DIGIT", f"constant {text} contains invalid digit {rest[0]}")
        return self._tok("INT", text, value)

    def _char(self, text: str) -> Token:
        if len(text) == 2:
            raise self.error("D_CHR_NULL", "empty character constant")
        data = unescape(text[1:-1])
        if len(data) > 8:
            raise self.error("D_CHR_OFLOW", "character constant is too long")
        value = 0
        for c in data:
            value = (value << 8) | (ord(c) & 0xFF)
        return self._tok("CHAR", text, value)

    def _macro(self, kind: str, text: str, pos: int) -> Token:
        macros = self.macros
        if kind == "dstr":
            v = macros.operand(digits_value(text[2:]), text, self.line)
            return self._tok("STR", text, _cstring(unescape(v or "")))
        if kind == "dnum":
            self.sident = False
            v = macros.operand(digits_value(text[1:]), text, self.line)
            if v is None:
                v = "0"
            if _bad_idnum(v):
                if len(v) != 1 and v[0] == '"' and v[-1] == '"':
                    v = v[1:-1]
                return self._tok("STR", text, _cstring(unescape(v)))
            if v[0].isdigit() or v[0] in "+-":
                prefix = "" if v[0].isdigit() else v[0]
                digits = v[1:] if prefix else v
                value, _, over = strtoull(digits)
                if over:
                    raise self.error(
                        "D_MACRO_OFLOW",
                        f"macro argument {text} constant {digits} results in integer overflow",
                    )
                tok = self._tok("INT", text, value)
                tok.prefix = prefix
                return tok
            return self._ident(v, text, pos)
        name = text[2:] if kind == "dsid" else text[1:]
        value = macros.variable(name)
        if value is None:
            raise self.error("D_MACRO_UNDEF", f"macro variable {text} is not defined")
        if kind == "dsid":
            return self._tok("STR", text, str(value & 0xFFFFFFFF))
        return self._tok("INT", text, value)

    def _ident(self, name: str, text: str, pos: int) -> Token:
        """Decide IDENT or TNAME for a name in expression mode (dtrace's id_or_type)."""
        if self.sou_type:
            self.sou_type = False
            return self._tok("TNAME", text, name)
        if name in self.known:
            return self._tok("IDENT", text, name)
        # Peek at the next character to spot likely assignments and uses.
        src = self.src
        i = self.pos
        while i < len(src) and src[i] in _WS:
            i += 1
        c0 = src[i] if i < len(src) else ""
        if not c0:
            self.nul_pending = True
        c1 = src[i + 1] if i + 1 < len(src) else ""
        ident = (
            (c0 in ("+", "-") and c1 == c0)
            or (c0 == "=" and c1 != "=")
            or c0 in ("[", ";")
            or (c0 == "," and self.parens == 0)
            or (c0 == ">" and self.xlator_input)
        )
        tok = self._tok("IDENT", text, name)
        gap = src[self.pos : i]
        newlines = gap.count("\n")
        # The peek leaves dtrace's token text running to the end of the line.
        if newlines:
            tok.errtext = text + " " * (len(gap) - newlines)
        else:
            tok.errtext = text + " " * len(gap) + self._rest_of_line(i)
        if ident:
            if not self.typedef_decl:
                self.known.add(name)
            return tok
        if self.decl_named or not self.is_type(name, c0):
            return tok
        tok.kind = "TNAME"
        return tok

    # --- after . and -> -------------------------------------------------------
    def _next_ident_only(self) -> Token | None:
        m = _re_ident_only().match(self.src, self.pos)
        if m is None:
            self.sident = False
            return self._next_expr()
        kind = m.lastgroup
        if self._skip_trivia(kind, m):
            return None
        self.pos = m.end()
        if kind == "dnum":
            return self._macro(kind, m.group(), m.start())
        self.sident = False
        return self._tok("IDENT", m.group(), m.group())

    # --- outer scope -----------------------------------------------------------
    def _next_outer(self) -> Token | None:
        src, pos = self.src, self.pos
        m = _RE_OUTER.match(src, pos)
        if m is None:
            raise self.stray(src[pos])
        kind = m.lastgroup
        text = m.group()
        if self._skip_trivia(kind, m):
            return None
        self.pos = m.end()
        if kind == "int":
            return self._int(text)
        if kind == "op":
            if text == "{":
                self.braces += 1
            return self._tok(text, text)
        if text in OUTER_KEYWORDS:
            self.mode = "expr"
            if text in ("struct", "union", "enum"):
                self.sou_type = True
            return self._tok(text, text)
        if (
            not self.pspec_only
            and not any(c in text for c in ":-.?!`")
            and text
            not in (
                "BEGIN",
                "END",
                "ERROR",
            )
        ):
            star = text.find("*")
            name = text[:star] if star > 0 else text
            if self.is_type(name) or name in SPECIFIER_WORDS:
                if star > 0:
                    self.pos = pos + star
                self.mode = "expr"
                return self._tok("TNAME", name, name)
        return self._tok("PSPEC", text, text)

    # --- control lines (#pragma, # line markers) ------------------------------
    def _control(self) -> None:
        src = self.src
        line = self.line
        items: list[tuple[str, str]] = []  # ('int'|'str'|'word', text)
        while True:
            if self.pos >= len(src):
                raise self.error("D_SYNTAX", "end-of-file encountered before end of control line")
            m = _re_ctl_item().match(src, self.pos)
            if m is None:
                raise self.stray(src[self.pos])
            kind = m.lastgroup
            self.pos = m.end()
            if kind == "ws":
                continue
            if kind == "nl":
                self.line += 1
                break
            if kind == "strnl":
                self.line += 1
                raise self.error("D_STR_NL", "newline encountered in string literal")
            if kind == "str":
                items.append(("str", unescape(m.group()[1:-1])))
                continue
            word = m.group()
            mi = _RE_INT.fullmatch(word)
            if mi:
                self._int(word)  # same range and digit checks as elsewhere
            items.append(("int" if mi else "word", word))
        self._directive(items, line)

    def _directive(self, items: list[tuple[str, str]], line: int) -> None:
        level = 0  # 0: after '#', 1: after '#pragma', 2: after '#pragma D'
        levels = {
            "attributes": 2,
            "binding": 2,
            "depends_on": 2,
            "error": 0,
            "ident": 0,
            "line": 0,
            "option": 2,
        }
        for i, (kind, text) in enumerate(items):
            if kind == "int":
                self._line_marker("line", items[i:], line)
                return
            if kind != "word":
                raise self.error("D_PRAGCTL_INVAL", "invalid control directive", line)
            if level == 0 and text == "pragma":
                level = 1
                continue
            if level == 1 and text == "D":
                level = 2
                continue
            if levels.get(text, 3) <= level:
                if text == "line":
                    self._line_marker("line", items[i + 1 :], line)
                    return
                words = [t for _, t in items]
                if words[0] == "pragma":
                    words = words[1:]
                if words[:3] == ["D", "option", "pspec"]:
                    self.pspec_only = True  # it changes how the outer scope lexes
                self.pragmas.append((line, self.file, words))
                if self.on_pragma is not None:
                    self.on_pragma(line, self.file, words)
                return
            if level == 0:
                raise self.error("D_PRAGCTL_INVAL", f"invalid control directive: #{text}", line)
            if level == 2:
                raise self.error("D_PRAGMA_INVAL", f"invalid D pragma: {text}", line)
            return  # unknown #pragma: ignored, as C does

    def _line_marker(self, name: str, items: list[tuple[str, str]], line: int) -> None:
        bad = (
            not items
            or items[0][0] != "int"
            or (len(items) > 1 and items[1][0] != "str")
            or any(k != "int" for k, _ in items[2:])
        )
        if bad:
            raise self.error(
                "D_PRAGMA_MALFORM", f'malformed #{name} <line> [ ["file"] state ]', line
            )
        if len(items) > 1:
            f = items[1][1]
            self.file = None if f in ("/dev/stdin", self.main) else f
        self.line = strtoull(items[0][1])[0]


def _cstring(s: str) -> str:
    """A C string ends at its first NUL."""
    i = s.find("\0")
    return s if i < 0 else s[:i]
