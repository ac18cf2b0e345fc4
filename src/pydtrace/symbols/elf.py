"""A small ELF64 little-endian reader: symbols, notes, USDT probes, address <-> offset.

Parsed lazily from an mmap; results are cached per instance (a libc has thousands of
symbols) and instances per (path, mtime, size) through ``open_elf``.
"""

from __future__ import annotations

import bisect
import lzma
import mmap
import os
import struct
from functools import cached_property
from typing import NamedTuple

from pydtrace.lang.dataclass import dataclass

ET_EXEC, ET_DYN = 2, 3
PT_LOAD, PT_INTERP, PT_DYNAMIC = 1, 3, 2
SHT_SYMTAB, SHT_NOTE, SHT_DYNSYM, SHT_NOBITS = 2, 7, 11, 8
SHT_GNU_VERSYM = 0x6FFFFFFF
STT_FUNC, STT_GNU_IFUNC = 2, 10
DT_NEEDED, DT_FLAGS_1, DT_RUNPATH, DT_RPATH, DT_STRTAB = 1, 0x6FFFFFFB, 29, 15, 5
DF_1_PIE = 0x08000000
NT_GNU_BUILD_ID, NT_STAPSDT = 3, 3
DEBUG_ROOT = "/usr/lib/debug/.build-id"
_SYM = struct.Struct("<IBxHQQ")  # Elf64_Sym: name, info, (other), shndx, value, size


class ElfError(Exception):
    """A file that is not an ELF64 little-endian object we can read."""


class Symbol(NamedTuple):  # a tuple: libc alone has ~10,000 of them to build
    name: str
    addr: int
    size: int
    bind: int = 1  # STB_LOCAL 0, STB_GLOBAL 1, STB_WEAK 2, or COMPAT


COMPAT = 16  # a .dynsym symbol of a hidden (older) version: `cfree` next to free


def _preference(s: Symbol) -> tuple[int, int, int, int, str]:
    """Of the names at one address, the one dtrace shows (libproc's order): a
    sized symbol, global or weak before local (and, ours, before an old
    version's alias, else `free` would show as its compat alias cfree), fewer
    leading underscores, the smaller, then by name."""
    rank = {1: 0, 2: 0, 0: 1}.get(s.bind, 2)
    under = len(s.name) - len(s.name.lstrip("_"))
    return (0 if s.size else 1, rank, under, s.size, s.name)


@dataclass(frozen=True)
class UsdtProbe:
    """One .note.stapsdt probe; pc and semaphore are already adjusted for prelink."""

    provider: str
    name: str
    pc: int
    base: int
    semaphore: int
    args: str


@dataclass(frozen=True)
class _Section:
    name: str
    type: int
    addr: int
    offset: int
    size: int
    link: int
    entsize: int


class ElfFile:
    def __init__(self, path: str, data: bytes | None = None) -> None:
        self.path = path
        if data is None:
            try:
                with open(path, "rb") as f:
                    try:
                        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                    except ValueError:  # empty file
                        data = b""
            except OSError as e:
                raise ElfError(f"cannot open {path}: {e.strerror}.") from None
        self._d = data
        if len(data) < 64 or data[:4] != b"\x7fELF":
            raise ElfError(f"{path} is not an ELF file.")
        if data[4] != 2 or data[5] != 1:
            raise ElfError(
                f"{path} is not a 64-bit little-endian ELF file (the only kind supported)."
            )
        (
            self.etype,
            _mach,
            _v,
            self.entry,
            self._phoff,
            self._shoff,
            _fl,
            _eh,
            self._phentsize,
            self._phnum,
            self._shentsize,
            self._shnum,
            self._shstrndx,
        ) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)

    # -- headers ------------------------------------------------------------------
    @cached_property
    def segments(self) -> list[tuple[int, int, int, int, int, int]]:
        """(type, flags, offset, vaddr, filesz, memsz) of every program header."""
        out = []
        for i in range(self._phnum):
            p_type, p_flags, off, vaddr, _pa, filesz, memsz, _al = struct.unpack_from(
                "<IIQQQQQQ", self._d, self._phoff + i * self._phentsize
            )
            out.append((p_type, p_flags, off, vaddr, filesz, memsz))
        return out

    @cached_property
    def _sections(self) -> list[_Section]:
        if not self._shoff or not self._shnum:
            return []
        raw = []
        for i in range(self._shnum):
            raw.append(
                struct.unpack_from("<IIQQQQIIQQ", self._d, self._shoff + i * self._shentsize)
            )
        strtab = raw[self._shstrndx] if self._shstrndx < len(raw) else None
        out = []
        for name, typ, _fl, addr, off, size, link, _info, _al, entsize in raw:
            n = self._cstr(strtab[4] + name) if strtab else ""
            out.append(_Section(n, typ, addr, off, size, link, entsize))
        return out

    def _cstr(self, off: int) -> str:
        end = self._d.find(b"\0", off)
        return bytes(self._d[off:end]).decode("utf-8", "replace")

    def section(self, name: str) -> tuple[int, bytes] | None:
        for s in self._sections:
            if s.name == name:
                data = b"" if s.type == SHT_NOBITS else bytes(self._d[s.offset : s.offset + s.size])
                return s.addr, data
        return None

    @cached_property
    def interp(self) -> str | None:
        for typ, _f, off, _v, filesz, _m in self.segments:
            if typ == PT_INTERP:
                return bytes(self._d[off : off + filesz]).rstrip(b"\0").decode()
        return None

    @cached_property
    def dynamic(self) -> list[tuple[int, int]]:
        for typ, _f, off, _v, filesz, _m in self.segments:
            if typ == PT_DYNAMIC:
                out = []
                for i in range(0, filesz - 15, 16):
                    tag, val = struct.unpack_from("<qQ", self._d, off + i)
                    if tag == 0:
                        break
                    out.append((tag, val))
                return out
        return []

    def _dynstr(self, val: int) -> str:
        strtab = next((v for t, v in self.dynamic if t == DT_STRTAB), None)
        if strtab is None:
            return ""
        return self._cstr(self.addr_to_offset(strtab) + val)

    @cached_property
    def needed(self) -> list[str]:
        """DT_NEEDED library names, in order."""
        return [self._dynstr(v) for t, v in self.dynamic if t == DT_NEEDED]

    @cached_property
    def runpath(self) -> list[str]:
        """DT_RUNPATH (or DT_RPATH) directories, $ORIGIN expanded."""
        origin = os.path.dirname(os.path.abspath(self.path))
        for tag in (DT_RUNPATH, DT_RPATH):
            for t, v in self.dynamic:
                if t == tag:
                    return [
                        p.replace("$ORIGIN", origin).replace("${ORIGIN}", origin)
                        for p in self._dynstr(v).split(":")
                        if p
                    ]
        return []

    @cached_property
    def is_pie(self) -> bool:
        if self.etype != ET_DYN:
            return False
        flags1 = next((v for t, v in self.dynamic if t == DT_FLAGS_1), 0)
        return bool(flags1 & DF_1_PIE) or self.interp is not None

    # -- addresses ------------------------------------------------------------------
    def addr_to_offset(self, addr: int) -> int:
        for typ, _f, off, vaddr, filesz, _m in self.segments:
            if typ == PT_LOAD and vaddr <= addr < vaddr + filesz:
                return addr - vaddr + off
        raise ElfError(f"address {addr:#x} is not in a loaded segment of {self.path}.")

    def in_code(self, addr: int) -> bool:
        """Is addr in an executable loaded segment (PF_X)?"""
        return any(typ == PT_LOAD and flags & 1 and vaddr <= addr < vaddr + filesz
                   for typ, flags, _o, vaddr, filesz, _m in self.segments)  # fmt: skip

    def code(self, addr: int, size: int) -> bytes:
        """The file's bytes of [addr, addr + size) (a function's instructions)."""
        off = self.addr_to_offset(addr)
        return bytes(self._d[off : off + size])

    def offset_to_addr(self, off: int) -> int:
        for typ, _f, poff, vaddr, filesz, _m in self.segments:
            if typ == PT_LOAD and poff <= off < poff + filesz:
                return off - poff + vaddr
        raise ElfError(f"file offset {off:#x} is not in a loaded segment of {self.path}.")

    # -- notes ------------------------------------------------------------------------
    def _notes_with_addr(self) -> list[tuple[str, int, bytes, int]]:
        out = []
        for s in self._sections:
            if s.type != SHT_NOTE:
                continue
            pos, end = s.offset, s.offset + s.size
            while pos + 12 <= end:
                namesz, descsz, ntype = struct.unpack_from("<III", self._d, pos)
                name_off = pos + 12
                desc_off = name_off + ((namesz + 3) & ~3)
                owner = bytes(self._d[name_off : name_off + namesz]).rstrip(b"\0").decode("latin-1")
                desc = bytes(self._d[desc_off : desc_off + descsz])
                out.append((owner, ntype, desc, s.addr + (desc_off - s.offset)))
                pos = desc_off + ((descsz + 3) & ~3)
        return out

    def notes(self) -> list[tuple[str, int, bytes]]:
        return [(o, t, d) for o, t, d, _a in self._notes_with_addr()]

    @cached_property
    def build_id(self) -> str | None:
        for owner, ntype, desc in self.notes():
            if owner == "GNU" and ntype == NT_GNU_BUILD_ID:
                return desc.hex()
        return None

    def stapsdt(self) -> list[UsdtProbe]:
        """USDT probes; pc/semaphore adjusted by (actual .stapsdt.base - recorded base)."""
        base_sec = self.section(".stapsdt.base")
        out = []
        for owner, ntype, desc, _addr in self._notes_with_addr():
            if owner != "stapsdt" or ntype != NT_STAPSDT or len(desc) < 24:
                continue
            pc, base, sem = struct.unpack_from("<QQQ", desc, 0)
            parts = desc[24:].split(b"\0")
            provider, name, args = (
                p.decode("utf-8", "replace") for p in (parts + [b"", b"", b""])[:3]
            )
            if base_sec is not None and base:
                # sys/sdt.h: the note records .stapsdt.base's link-time address; a
                # prelinked file moved it, so shift pc and semaphore by the same delta
                delta = base_sec[0] - base
                pc += delta
                if sem:
                    sem += delta
            out.append(UsdtProbe(provider, name, pc, base, sem, args))
        return out

    # -- symbols ------------------------------------------------------------------------
    def _symtab(self, typ: int) -> list[Symbol]:
        out = []
        funcs = (STT_FUNC, STT_GNU_IFUNC)
        for s in self._sections:
            if s.type != typ or s.entsize != _SYM.size:
                continue
            strsec = self._sections[s.link]
            # whole-section slices: bytes.index and iter_unpack beat per-symbol mmap reads
            strs = bytes(self._d[strsec.offset : strsec.offset + strsec.size])
            table = bytes(self._d[s.offset : s.offset + s.size - s.size % _SYM.size])
            hidden = self._hidden_versions(s) if typ == SHT_DYNSYM else None
            for i, (st_name, st_info, shndx, value, size) in enumerate(_SYM.iter_unpack(table)):
                if value and shndx and (st_info & 0xF) in funcs:
                    name = strs[st_name : strs.find(b"\0", st_name)]
                    bind = COMPAT if hidden is not None and i in hidden else st_info >> 4
                    out.append(Symbol(name.decode("utf-8", "replace"), value, size, bind))
        return out

    def _hidden_versions(self, dynsym: _Section) -> set[int]:
        """Indexes of dynsym entries whose version is hidden (.gnu.version's
        0x8000 bit): kept for old binaries, never what a name links to now."""
        index = self._sections.index(dynsym)
        for v in self._sections:
            if v.type == SHT_GNU_VERSYM and v.link == index:
                data = bytes(self._d[v.offset : v.offset + v.size - v.size % 2])
                return {i for i, (x,) in enumerate(struct.iter_unpack("<H", data)) if x & 0x8000}
        return set()

    def _debug_files(self) -> list[ElfFile]:
        out = []
        sec = self.section(".gnu_debugdata")
        if sec is not None:
            try:
                out.append(ElfFile(self.path + "[.gnu_debugdata]", lzma.decompress(sec[1])))
            except (lzma.LZMAError, ElfError):
                pass
        bid = self.build_id
        if bid and len(bid) > 2:
            dbg = f"{DEBUG_ROOT}/{bid[:2]}/{bid[2:]}.debug"
            if os.path.exists(dbg):
                try:
                    out.append(ElfFile(dbg))
                except ElfError:
                    pass
        return out

    @cached_property
    def _functions(self) -> list[Symbol]:
        syms = self._symtab(SHT_SYMTAB) + self._symtab(SHT_DYNSYM)
        for extra in self._debug_files():
            syms += extra._symtab(SHT_SYMTAB)
        seen: dict[tuple[str, int], Symbol] = {}
        for s in syms:
            if "@@" in s.name:  # a debug file's `f@@GLIBC_2.2.5`: the default version is f
                s = s._replace(name=s.name.split("@@")[0])
            key = (s.name, s.addr)
            if key not in seen or (s.size and not seen[key].size):
                if key in seen and seen[key].bind == COMPAT:
                    s = s._replace(bind=COMPAT)
                seen[key] = s
            elif s.bind == COMPAT:  # the .symtab's copy of a compat .dynsym symbol
                seen[key] = seen[key]._replace(bind=COMPAT)
        # `f@GLIBC_2.2.5` where f is at the same address is f again; at another
        # address it is an older version's own code and keeps its name
        for name, addr in [k for k in seen if "@" in k[0]]:
            if (name.split("@")[0], addr) in seen:
                del seen[name, addr]
        # aliases sorted by preference: the first at an address names it (primary)
        return sorted(seen.values(), key=lambda s: (s.addr, _preference(s)))

    def functions(self) -> list[Symbol]:
        return list(self._functions)

    @cached_property
    def primary(self) -> dict[int, str]:
        """address -> the name dtrace gives the function there (_preference):
        `go` for a global go and a weak _go, as pid probes and stacks show it."""
        out: dict[int, str] = {}
        for s in self._functions:
            out.setdefault(s.addr, s.name)
        return out

    def function_at(self, addr: int) -> Symbol | None:
        """The function holding addr: [addr, addr+size), or the nearest below if
        sizeless and in the same section (a sizeless _init or _fini does not
        own the whole text after it)."""
        i = bisect.bisect_right(self._addrs, addr) - 1
        while i >= 0:
            s = self._functions[i]
            if addr < s.addr + s.size or (not s.size and addr < self._section_end(s.addr)):
                name = self.primary[s.addr]
                return s if s.name == name else s._replace(name=name)
            i -= 1
            if i >= 0 and self._functions[i].addr != s.addr:
                return None
        return None

    def _section_end(self, addr: int) -> int:
        """The end of the loaded section holding addr (addr itself if none does)."""
        for s in self._sections:
            if s.addr <= addr < s.addr + s.size and s.addr:
                return s.addr + s.size
        return addr

    @cached_property
    def _addrs(self) -> list[int]:
        return [s.addr for s in self._functions]


_CACHE: dict[tuple[str, int, int, int], ElfFile] = {}


def open_elf(path: str) -> ElfFile:
    """An ElfFile cached by (path, device, inode, mtime)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise ElfError(f"cannot open {path}: {e.strerror}.") from None
    key = (path, st.st_dev, st.st_ino, st.st_mtime_ns)
    if key not in _CACHE:
        _CACHE[key] = ElfFile(path)
    return _CACHE[key]
