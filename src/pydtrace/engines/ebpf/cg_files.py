"""Files as D names them in the kernel: fds[fd] (io.d's fileinfo_t, from the
current task's file table) and d_path(struct path *).

fds[fd] follows dtrace-utils' translator: task->files->fdt->fd[fd] is the
struct file (none when fd is negative or past max_fds: "<none>" strings and
zeroes), and

- fi_pathname is the kernel's d_path of file->f_path: the names from the
  dentry up to the task's root, crossing each mount to its mount point,
  " (deleted)" after an unlinked file; a file with no path (a pipe, socket
  or anonymous inode, whose dentry names itself) reads as the kernel spells
  it: "pipe:[ino]", "socket:[ino]", "anon_inode:<name>";
- fi_name is the dentry's own name (or that spelled name), fi_dirname the
  path without its last name ("." for a pipe);
- fi_offset is f_pos; fi_oflags is f_flags, with O_CLOEXEC when the
  descriptor's close-on-exec bit is set (as /proc/PID/fdinfo shows them);
- fi_fs is the file system type's name, fi_mount the path of its mount's
  mount point ("<unknown>" for a mount no process sees, such as pipefs').

The ptrace engine reads the same from /proc (engines/user/fileinfo.py), so
both engines print the same fileinfo_t.

The walk up the dentries keeps the name pointers in the frame (at most
DEPTH names, and MOUNTS mount crossings), then copies them root first into
the string, probe_read_kernel_str bounded by what is left of strsize.
"""

from __future__ import annotations

from functools import cache

from pydtrace.engines.ebpf.cg_context import BADADDR, CompilerBase, LoweringError, Value
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R5, R9
from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.types import CType

DEPTH = 32  # the most names of a path (deeper paths keep their last DEPTH names)
MOUNTS = 16  # the most mount points crossed
O_CLOEXEC = 0o2000000
# d_dname functions: how the kernel spells a file that has no path
_PSEUDO = {"pipefs_dname": "pipe:[", "sockfs_dname": "socket:["}
_ANON = "anon_inodefs_dname"
# the walk's end: reached the task's root, or a mount with no parent (a
# mount no process sees, or one lazily unmounted)
_AT_ROOT, _DETACHED = 0, 1
_NONE = 5  # the walk's "kind" word when there is no file: "<none>"
_MODES = {"fi_pathname": "path", "fi_dirname": "dir", "fi_name": "name", "fi_mount": "mount"}


@cache
def _layout() -> dict[str, int]:
    """Byte offsets of the members the walk reads, from BTF."""
    from pydtrace.symbols.btf import BTFError, vmlinux

    paths = {
        "task.files": ("task_struct", "files"),
        "task.fs": ("task_struct", "fs"),
        "files.fdt": ("files_struct", "fdt"),
        "fdt.max_fds": ("fdtable", "max_fds"),
        "fdt.fd": ("fdtable", "fd"),
        "fdt.close_on_exec": ("fdtable", "close_on_exec"),
        "file.f_path": ("file", "f_path"),
        "file.f_pos": ("file", "f_pos"),
        "file.f_flags": ("file", "f_flags"),
        "path.mnt": ("path", "mnt"),
        "path.dentry": ("path", "dentry"),
        "dentry.d_parent": ("dentry", "d_parent"),
        "dentry.d_name.name": ("dentry", "d_name", "name"),
        "dentry.d_op": ("dentry", "d_op"),
        "dentry.d_inode": ("dentry", "d_inode"),
        "dentry.d_hash.pprev": ("dentry", "d_hash", "pprev"),
        "dops.d_dname": ("dentry_operations", "d_dname"),
        "inode.i_ino": ("inode", "i_ino"),
        "vfsmount.mnt_root": ("vfsmount", "mnt_root"),
        "vfsmount.mnt_sb": ("vfsmount", "mnt_sb"),
        "sb.s_type": ("super_block", "s_type"),
        "fstype.name": ("file_system_type", "name"),
        "mount.mnt": ("mount", "mnt"),
        "mount.mnt_parent": ("mount", "mnt_parent"),
        "mount.mnt_mountpoint": ("mount", "mnt_mountpoint"),
        "fs.root": ("fs_struct", "root"),
        "fs.pwd": ("fs_struct", "pwd"),
    }
    try:
        b = vmlinux()
        return {key: b.member_offset(*path) for key, path in paths.items()}
    except (OSError, BTFError) as e:
        raise LoweringError(
            f"the eBPF engine needs the kernel's BTF for fds[] and d_path(): {e}"
        ) from None


@cache
def _dname_functions() -> dict[str, int]:
    """The kallsyms addresses of the d_dname functions spelled above."""
    from pydtrace.symbols.kallsyms import KALLSYMS

    want = {*_PSEUDO, _ANON}
    out: dict[str, int] = {}
    try:
        with open(KALLSYMS, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] in want and int(parts[0], 16):
                    out[parts[2]] = int(parts[0], 16)
    except (OSError, ValueError):
        pass
    return out


class FilesMixin(CompilerBase):
    # --- the frame words of the walk ------------------------------------------------
    def _walk_slots(self) -> dict[str, int]:
        slots = getattr(self.frame, "path_walk", None)
        if slots is None:
            slots = {name: self.frame.take(8) for name in
                     ("dentry", "mnt", "count", "root_dentry", "root_mnt", "end", "kind",
                      "ino", "deleted", "fd")}  # fmt: skip
            slots["names"] = self.frame.take(8 * DEPTH)
            self.frame.path_walk = slots  # type: ignore[attr-defined]
        return slots

    def _load(self, out: int, addr: int, off: int, size: int = 8) -> None:
        """out = the size-byte value at kernel address addr + off (0 when unreadable)."""
        self.kernel_load(out, addr, off, size)  # type: ignore[attr-defined]

    # --- fds[] ------------------------------------------------------------------------
    def fds_file(self, index: ast.Expr) -> Value:
        """The struct file * of descriptor index of the current task, or 0
        (the descriptor is also left in the walk's "fd" word)."""
        lay = _layout()
        slots = self._walk_slots()
        a = self.a
        fd = self.expr(index)
        self.wrap(fd.reg, T.INT)  # type: ignore[attr-defined]
        a.stx(8, R9, slots["fd"], fd.reg)
        f = fd  # the descriptor's register becomes the file's
        none, done = a.new_label("fd_none"), a.new_label("fd_done")
        a.jmp("s<", f.reg, none, imm=0)
        self.current_task(R0)  # type: ignore[attr-defined]
        self._load(R0, R0, lay["task.files"])
        self._load(R0, R0, lay["files.fdt"])
        a.jmp("==", R0, none, imm=0)
        a.mov(f.reg, R0)
        self._load(R4, f.reg, lay["fdt.max_fds"], 4)
        a.ldx(8, R0, R9, slots["fd"])
        a.jmp(">=", R0, none, src=R4)
        self._load(f.reg, f.reg, lay["fdt.fd"])
        a.jmp("==", f.reg, none, imm=0)
        a.ldx(8, R4, R9, slots["fd"])
        a.alu("<<", R4, imm=3)
        a.alu("+", f.reg, src=R4)
        self._load(f.reg, f.reg, 0)
        a.ja(done)
        a.place(none)
        a.movi(f.reg, 0)
        a.place(done)
        f.ctype = T.ULONG
        return f

    def fds_member(self, e: ast.Member) -> Value:
        """fds[fd].member: only that member is computed."""
        index: ast.Index = e.base  # type: ignore[assignment]
        return self._fds_value(index, e.name, e.ctype)  # type: ignore[attr-defined]

    def fds_struct(self, e: ast.Index) -> Value:
        """fds[fd] as a whole fileinfo_t: each member computed into a frame
        area of its own (a memory region), whose D address is the value."""
        from pydtrace.engines.ebpf.cg_memory import Region

        t: CType = e.ctype  # type: ignore[attr-defined]
        size = t.r.size
        regs = self.mem_regions()  # type: ignore[attr-defined]
        key = ("fds", str(id(e)))
        r = regs.get(key)
        if r is None:
            off = self.frame.take((size + 7) // 8 * 8)
            r = regs[key] = Region(self.next_vaddr(), size, "frame", off)  # type: ignore[attr-defined]
        a = self.a
        for m in t.r.members or ():
            v = self._fds_value(e, m.name, m.type)
            if m.type.is_string():
                n = min(m.type.r.size, self.strsize + 1)
                for pos in range(0, n, 8):
                    step = 8 if n - pos >= 8 else 4 if n - pos >= 4 else 2 if n - pos >= 2 else 1
                    while pos + step > n:
                        step //= 2
                    a.ldx(step, R5, v.reg, pos)
                    a.stx(step, R9, r.off + m.offset + pos, R5)
                a.st(1, R9, r.off + m.offset + n - 1, 0)  # a string cut to the member ends
            else:
                a.stx(m.type.r.size, R9, r.off + m.offset, v.reg)
            self.free(v)
        return self.const(r.vaddr, t)  # type: ignore[attr-defined, no-any-return]

    def _fds_value(self, index: ast.Index, name: str, ctype: CType) -> Value:
        lay = _layout()
        slots = self._walk_slots()
        a = self.a
        f = self.fds_file(index.args[0])
        if name == "fi_offset":  # (a load through NULL reads 0)
            self._load(f.reg, f.reg, lay["file.f_pos"])
        elif name == "fi_oflags":
            self._oflags(f)
        if name in ("fi_offset", "fi_oflags"):
            f.ctype = ctype
            return f
        a.st(8, R9, slots["kind"], _NONE)
        d, m = self.alloc(T.ULONG), self.alloc(T.ULONG)
        self.reload(f, d, m)
        join = a.new_label("fd_join")
        a.jmp("==", f.reg, join, imm=0)
        if name == "fi_fs":
            self._load(f.reg, f.reg, lay["file.f_path"] + lay["path.mnt"])
            self._load(f.reg, f.reg, lay["vfsmount.mnt_sb"])
            self._load(f.reg, f.reg, lay["sb.s_type"])
            self._load(f.reg, f.reg, lay["fstype.name"])
            a.stx(8, R9, slots["names"], f.reg)
            a.st(8, R9, slots["kind"], 4)  # one name, read as it is
        else:
            a.alu("+", f.reg, imm=lay["file.f_path"])
            self._walk(f, d, m, _MODES[name])
        a.place(join)
        for v in (f, d, m):
            self.free(v)
        return self._assemble(_MODES.get(name, "path"))

    def _oflags(self, f: Value) -> None:
        """f (a struct file * or 0) -> its f_flags, O_CLOEXEC added when the
        descriptor's bit is set in the table's close_on_exec bitmap (as
        /proc/PID/fdinfo shows the flags); 0 without a file."""
        lay = _layout()
        slots = self._walk_slots()
        a = self.a
        done = a.new_label("fl_done")
        a.jmp("==", f.reg, done, imm=0)
        self._load(R0, f.reg, lay["file.f_flags"], 4)
        a.mov(f.reg, R0)
        self.current_task(R0)  # type: ignore[attr-defined]
        self._load(R0, R0, lay["task.files"])
        self._load(R0, R0, lay["files.fdt"])
        self._load(R0, R0, lay["fdt.close_on_exec"])
        a.ldx(8, R4, R9, slots["fd"])
        a.alu(">>", R4, imm=6)
        a.alu("<<", R4, imm=3)
        a.alu("+", R0, src=R4)
        self._load(R0, R0, 0)  # the bitmap's word for fd (0 when unreadable)
        a.ldx(8, R4, R9, slots["fd"])
        a.alu("&", R4, imm=63)
        a.alu(">>", R0, src=R4)
        a.alu("&", R0, imm=1)
        a.alu("*", R0, imm=O_CLOEXEC)
        a.alu("|", f.reg, src=R0)
        a.place(done)

    # --- the walk -------------------------------------------------------------------
    def _walk(self, path: Value, d: Value, m: Value, mode: str) -> None:
        """Walk from the struct path at path.reg up to the task's root,
        leaving in the frame words the name pointers (the file's first),
        their count, how the walk ended, whether the file is unlinked, and
        for a file with no path its kind (1 pipe, 2 socket, 3 anonymous
        inode, 4 other) and inode number. Mode "mount" starts at the root of
        the path's mount (giving its mount point's path). No register is
        allocated here (the caller's d and m, and path's, are used), for
        this may run on one branch only."""
        lay = _layout()
        slots = self._walk_slots()
        a = self.a
        self._load(m.reg, path.reg, lay["path.mnt"])
        if mode == "mount":
            self._load(d.reg, m.reg, lay["vfsmount.mnt_root"])
        else:
            self._load(d.reg, path.reg, lay["path.dentry"])
        for key in ("count", "end", "kind", "deleted"):
            a.st(8, R9, slots[key], 0)
        a.stx(8, R9, slots["dentry"], d.reg)
        a.stx(8, R9, slots["mnt"], m.reg)
        # the task's root (fs->root): the walk stops there, as d_path does
        self.current_task(R0)  # type: ignore[attr-defined]
        self._load(R0, R0, lay["task.fs"])
        a.mov(d.reg, R0)
        self._load(R0, d.reg, lay["fs.root"] + lay["path.dentry"])
        a.stx(8, R9, slots["root_dentry"], R0)
        self._load(R0, d.reg, lay["fs.root"] + lay["path.mnt"])
        a.stx(8, R9, slots["root_mnt"], R0)
        a.ldx(8, d.reg, R9, slots["dentry"])
        walk, out = a.new_label("pw_walk"), a.new_label("pw_out")
        if mode != "mount":
            plain = a.new_label("pw_plain")
            self._dname_kind(d, plain, out)
            a.place(plain)
            # unlinked: unhashed, and not a root (the kernel's d_unlinked)
            self._load(R0, d.reg, lay["dentry.d_hash.pprev"])
            a.jmp("!=", R0, walk, imm=0)
            self._load(R0, d.reg, lay["dentry.d_parent"])
            a.ldx(8, d.reg, R9, slots["dentry"])
            a.jmp("==", R0, walk, src=d.reg)
            a.st(8, R9, slots["deleted"], 1)
        a.place(walk)
        i = path  # the path's register counts the turns now
        a.movi(i.reg, 0)
        loop, at_root, detached = (a.new_label(x) for x in ("pw_loop", "pw_root", "pw_det"))
        a.place(loop)
        self.loop_exit(">=", i.reg, out, imm=DEPTH + MOUNTS)  # type: ignore[attr-defined]
        a.alu("+", i.reg, imm=1)
        a.ldx(8, d.reg, R9, slots["dentry"])
        a.ldx(8, m.reg, R9, slots["mnt"])
        a.ldx(8, R0, R9, slots["root_dentry"])
        not_root = a.new_label("pw_notroot")
        a.jmp("!=", d.reg, not_root, src=R0)
        a.ldx(8, R0, R9, slots["root_mnt"])
        a.jmp("==", m.reg, at_root, src=R0)
        a.place(not_root)
        self._load(R0, m.reg, lay["vfsmount.mnt_root"])
        inside = a.new_label("pw_inside")
        a.jmp("!=", d.reg, inside, src=R0)
        # the root of a mount: on to its mount point, in the parent mount
        a.alu("-", m.reg, imm=lay["mount.mnt"])  # the struct mount around it
        self._load(R0, m.reg, lay["mount.mnt_parent"])
        a.jmp("==", R0, detached, src=m.reg)
        a.alu("+", R0, imm=lay["mount.mnt"])
        a.stx(8, R9, slots["mnt"], R0)
        self._load(R0, m.reg, lay["mount.mnt_mountpoint"])
        a.stx(8, R9, slots["dentry"], R0)
        a.ja(loop)
        a.place(inside)
        self._load(R0, d.reg, lay["dentry.d_parent"])
        a.jmp("==", R0, detached, src=d.reg)  # a root of no mount: disconnected
        a.mov(m.reg, R0)  # the parent, kept over the calls below
        self._load(R0, d.reg, lay["dentry.d_name.name"])
        a.ldx(8, R4, R9, slots["count"])
        self.loop_exit(">=", R4, out, imm=DEPTH)  # type: ignore[attr-defined]
        a.mov(R5, R4)
        a.alu("<<", R5, imm=3)
        a.alu("+", R5, src=R9)
        a.stx(8, R5, slots["names"], R0)
        a.alu("+", R4, imm=1)
        a.stx(8, R9, slots["count"], R4)
        a.stx(8, R9, slots["dentry"], m.reg)
        a.ja(loop)
        a.place(detached)
        a.st(8, R9, slots["end"], _DETACHED)
        a.place(at_root)
        a.place(out)

    def _dname_kind(self, d: Value, plain: str, out: str) -> None:
        """A dentry whose operations spell its name (d_dname: pipes, sockets,
        anonymous inodes): record its kind, inode number and name pointer and
        leave for out; any other dentry goes on to plain (d.reg kept)."""
        lay = _layout()
        slots = self._walk_slots()
        a = self.a
        self._load(R0, d.reg, lay["dentry.d_op"])
        a.jmp("==", R0, plain, imm=0)
        self._load(R0, R0, lay["dops.d_dname"])
        a.ldx(8, d.reg, R9, slots["dentry"])
        a.jmp("==", R0, plain, imm=0)
        found = a.new_label("pw_dname")
        a.st(8, R9, slots["kind"], 4)
        for kind, fname in ((1, "pipefs_dname"), (2, "sockfs_dname"), (3, _ANON)):
            addr = _dname_functions().get(fname)
            if addr is None:
                continue
            other = a.new_label("pw_kind")
            a.ld_imm64(R1, addr)
            a.jmp("!=", R0, other, src=R1)
            a.st(8, R9, slots["kind"], kind)
            a.ja(found)
            a.place(other)
        a.place(found)
        self._load(R0, d.reg, lay["dentry.d_inode"])
        self._load(R0, R0, lay["inode.i_ino"])
        a.stx(8, R9, slots["ino"], R0)
        a.ldx(8, d.reg, R9, slots["dentry"])
        self._load(R0, d.reg, lay["dentry.d_name.name"])
        a.stx(8, R9, slots["names"], R0)
        a.st(8, R9, slots["count"], 1)
        a.ja(out)

    # --- the string -------------------------------------------------------------------
    def _assemble(self, mode: str) -> Value:
        """The walk's names as a string: "/a/b/c" (mode path), "/a/b" (dir),
        "c" (name), the mount point's path or "<unknown>" (mount); "<none>"
        when the walk's kind word says there was no file."""
        slots = self._walk_slots()
        a = self.a
        # built in a work area twice strsize long: a name read at any offset
        # below strsize, of at most strsize + 1 bytes, provably stays in it
        # (the verifier cannot tie the read's size to the offset); then copied
        work = getattr(self.frame, "path_work", None)
        if work is None:
            work = self.frame.path_work = self.frame.take(2 * (self.strsize + 1))  # type: ignore[attr-defined]
        v = self.alloc(T.STRING)
        pos = self.alloc(T.ULONG)
        k = self.alloc(T.ULONG)
        a.mov(v.reg, R9)
        a.alu("+", v.reg, imm=work)
        for off in range(0, self.strsize + 1, 8):
            a.st(8, v.reg, off, 0)
        done = a.new_label("pa_done")
        normal, none = a.new_label("pa_normal"), a.new_label("pa_none")
        a.ldx(8, R0, R9, slots["kind"])
        a.jmp("==", R0, normal, imm=0)
        a.jmp("==", R0, none, imm=_NONE)
        self._assemble_dname(v, pos, mode, done)
        a.place(none)
        self._put_text(v, 0, "<none>")
        a.ja(done)
        a.place(normal)
        if mode == "mount":
            a.ldx(8, R0, R9, slots["end"])
            known = a.new_label("pa_known")
            a.jmp("==", R0, known, imm=_AT_ROOT)
            self._put_text(v, 0, "<unknown>")
            a.ja(done)
            a.place(known)
        a.ldx(8, k.reg, R9, slots["count"])
        if mode == "name":  # the first name walked is the file's own
            one = a.new_label("pa_one")
            a.jmp("!=", k.reg, one, imm=0)
            a.st(1, v.reg, 0, ord("/"))
            a.ja(done)
            a.place(one)
            self._read_name(v, 0)
        else:
            stop = 1 if mode == "dir" else 0
            root = a.new_label("pa_root")
            a.jmp("<=", k.reg, root, imm=stop)
            a.movi(pos.reg, 0)
            loop, out = a.new_label("pa_loop"), a.new_label("pa_out")
            a.place(loop)
            self.loop_exit("<=", k.reg, out, imm=stop)  # type: ignore[attr-defined]
            a.alu("-", k.reg, imm=1)
            self.loop_exit(">=", k.reg, out, imm=DEPTH)  # type: ignore[attr-defined]
            self.loop_exit(">=", pos.reg, out, imm=self.strsize)  # type: ignore[attr-defined]
            a.mov(R5, v.reg)
            a.alu("+", R5, src=pos.reg)
            a.st(1, R5, 0, ord("/"))
            a.alu("+", pos.reg, imm=1)
            self.loop_exit(">=", pos.reg, out, imm=self.strsize)  # type: ignore[attr-defined]
            a.mov(R3, k.reg)
            a.alu("<<", R3, imm=3)
            a.alu("+", R3, src=R9)
            a.ldx(8, R3, R3, slots["names"])
            a.mov(R1, v.reg)
            a.alu("+", R1, src=pos.reg)
            a.movi(R2, self.strsize + 1)
            a.alu("-", R2, src=pos.reg)
            a.call("probe_read_kernel_str")
            self.loop_exit("s<=", R0, out, imm=1)  # type: ignore[attr-defined]
            a.alu("+", pos.reg, src=R0)
            a.alu("-", pos.reg, imm=1)
            a.ja(loop)
            a.place(out)
            if mode == "path":
                self._deleted_suffix(v, pos)
            a.ja(done)
            a.place(root)
            a.st(1, v.reg, 0, ord("/"))
        a.place(done)
        self.free(pos)
        self.free(k)
        out, _ = self.new_string()  # type: ignore[attr-defined]
        self.reload(v, out)
        for off in range(0, self.strsize + 1, 8):
            size = 8 if self.strsize + 1 - off >= 8 else 1
            for sub in range(0, 8, size):
                if off + sub <= self.strsize:
                    a.ldx(size, R5, v.reg, off + sub)
                    a.stx(size, out.reg, off + sub, R5)
        self.free(v)
        return out

    def _put_text(self, v: Value, at: int, text: str) -> None:
        """v[at:] = text (a constant, cut to strsize)."""
        for i, ch in enumerate(text.encode()[: max(self.strsize - at, 0)]):
            self.a.st(1, v.reg, at + i, ch)

    def _read_name(self, v: Value, at: int) -> None:
        """v[at:] = the string at the first name pointer (cut to strsize)."""
        slots = self._walk_slots()
        a = self.a
        a.ldx(8, R3, R9, slots["names"])
        a.mov(R1, v.reg)
        if at:
            a.alu("+", R1, imm=at)
        a.movi(R2, max(self.strsize + 1 - at, 1))
        a.call("probe_read_kernel_str")

    def _deleted_suffix(self, v: Value, pos: Value) -> None:
        """ " (deleted)" after an unlinked file's path, as far as strsize lets it."""
        slots = self._walk_slots()
        a = self.a
        skip = a.new_label("pa_nodel")
        a.ldx(8, R0, R9, slots["deleted"])
        a.jmp("==", R0, skip, imm=0)
        for ch in b" (deleted)":
            a.jmp(">=", pos.reg, skip, imm=self.strsize)
            a.mov(R5, v.reg)
            a.alu("+", R5, src=pos.reg)
            a.st(1, R5, 0, ch)
            a.alu("+", pos.reg, imm=1)
        a.place(skip)

    def _assemble_dname(self, v: Value, pos: Value, mode: str, done: str) -> None:
        """A file with no path: "pipe:[ino]", "socket:[ino]", "anon_inode:" and
        its name, or its name alone (also fi_fs's one name); its directory
        is "."."""
        slots = self._walk_slots()
        a = self.a
        plain = a.new_label("pa_plain")
        if mode == "dir":
            a.ldx(8, R0, R9, slots["kind"])
            a.jmp("==", R0, plain, imm=4)
            a.st(1, v.reg, 0, ord("."))
            a.ja(done)
        else:
            for kind, text in ((1, "pipe:["), (2, "socket:[")):
                other = a.new_label("pa_dk")
                a.ldx(8, R0, R9, slots["kind"])
                a.jmp("!=", R0, other, imm=kind)
                self._put_text(v, 0, text)
                a.movi(pos.reg, len(text))
                a.ldx(8, R0, R9, slots["ino"])
                self._decimal(v, pos, R0)
                a.jmp(">=", pos.reg, done, imm=self.strsize)
                a.mov(R5, v.reg)
                a.alu("+", R5, src=pos.reg)
                a.st(1, R5, 0, ord("]"))
                a.ja(done)
                a.place(other)
            a.ldx(8, R0, R9, slots["kind"])
            a.jmp("!=", R0, plain, imm=3)
            prefix = "anon_inode:"
            self._put_text(v, 0, prefix)
            self._read_name(v, len(prefix))
            a.ja(done)
        a.place(plain)
        self._read_name(v, 0)
        a.ja(done)

    def _decimal(self, v: Value, pos: Value, value: int) -> None:
        """The decimal digits of the unsigned value in register value, written
        at v[pos], pos advanced past them (cut at strsize); clobbers r0-r5."""
        a = self.a
        a.mov(R3, value)
        # r4 = the number of digits
        a.mov(R2, R3)
        a.movi(R4, 0)
        count, counted = a.new_label("dec_n"), a.new_label("dec_nd")
        a.place(count)
        a.alu("+", R4, imm=1)
        a.alu("/", R2, imm=10)
        self.loop_exit("==", R2, counted, imm=0)  # type: ignore[attr-defined]
        a.jmp("<", R4, count, imm=20)
        a.place(counted)
        a.alu("+", pos.reg, src=R4)  # digits go from the end back
        a.mov(R1, pos.reg)
        write, written = a.new_label("dec_w"), a.new_label("dec_wd")
        a.place(write)
        self.loop_exit("==", R4, written, imm=0)  # type: ignore[attr-defined]
        a.alu("-", R4, imm=1)
        a.alu("-", R1, imm=1)
        a.mov(R2, R3)
        a.alu("%", R2, imm=10)
        a.alu("/", R3, imm=10)
        a.alu("+", R2, imm=ord("0"))
        cut = a.new_label("dec_cut")
        a.jmp(">=", R1, cut, imm=self.strsize)
        a.mov(R5, v.reg)
        a.alu("+", R5, src=R1)
        a.stx(1, R5, 0, R2)
        a.place(cut)
        a.jmp("<", R4, write, imm=21)
        a.place(written)

    def task_fs_path(self, which: str) -> Value:
        """cwd, root: the path of the current task's fs->pwd or fs->root ("/"
        for a task without an fs_struct, a kernel thread's)."""
        lay = _layout()
        p = self.alloc(T.ULONG)
        d, m = self.alloc(T.ULONG), self.alloc(T.ULONG)
        self.current_task(p.reg)  # type: ignore[attr-defined]
        self._load(p.reg, p.reg, lay["task.fs"])
        self.a.alu("+", p.reg, imm=lay[f"fs.{which}"])
        self._walk(p, d, m, "path")
        for v in (p, d, m):
            self.free(v)
        return self._assemble("path")

    # --- d_path() ---------------------------------------------------------------------
    def lower_d_path(self, e: ast.Call) -> Value:
        """d_path(struct path *): the path as the kernel's d_path spells it; a
        NULL path is an invalid address."""
        p = self.expr(e.args[0])
        a = self.a
        ok = a.new_label("dp_ok")
        a.jmp("!=", p.reg, ok, imm=0)
        self.fault(BADADDR, p.reg)
        a.place(ok)
        d, m = self.alloc(T.ULONG), self.alloc(T.ULONG)
        self.reload(p, d, m)
        self._walk(p, d, m, "path")
        for v in (p, d, m):
            self.free(v)
        return self._assemble("path")
