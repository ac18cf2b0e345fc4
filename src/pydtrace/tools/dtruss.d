#!/usr/bin/env -S pydtrace -qs
/*
 * dtruss.d: every system call of the processes chosen, as macOS's dtruss
 * and strace show them: the call, its six argument registers, its result
 * and errno, the time it took; for the calls that take strings (paths,
 * names), the strings, and for read/write, the first 32 bytes of data up
 * to a NUL. The dtruss command decodes the registers by each call's
 * prototype (flags by name, descriptors, pointers).
 *
 * Strings are read when the call returns: by then the kernel has read them,
 * so their pages are in memory (see opensnoop.d). execve()'s path is read
 * when it starts: once it succeeds, the old image is gone. Calls that never
 * return (exit, exit_group, rt_sigreturn, which goes back to the code a
 * signal interrupted) are printed when they start, with "= ?".
 *
 * The lists of calls below follow the prototypes of x86_64's calls (the
 * `const char *` arguments; tests/test_tools_dtruss.py checks them).
 *
 * The dtruss command sets the inline values below from its options (dtruss
 * --print-script shows the result); run as it is, with -c CMD, this file
 * traces the command.
 */

/* which processes: the command or -p PID, and with -f their children; -n NAME */
inline int SELECTED = pid == $target;
/* -c: count the calls, print the counts at the end */
inline int COUNTS = 0;
/* -s: the user stack of each call, after its line */
inline int STACKS = 0;

BEGIN
{
	printf("%-20s ELAPSED(ns) PID TID SYSCALL(args) = return errno [strings]\n", "TIME");
}

syscall:::entry
/SELECTED/
{
	self->start = timestamp;
	self->done = 0;
	self->a0 = arg0;
	self->a1 = arg1;
	self->a2 = arg2;
	self->a3 = arg3;
	self->a4 = arg4;
	self->a5 = arg5;
}

syscall:::entry
/self->start && COUNTS/
{
	@calls[probefunc] = count();
}

/* calls that never return (rt_sigreturn does, on the ptrace engine: not printed twice) */
syscall::exit:entry, syscall::exit_group:entry, syscall::rt_sigreturn:entry
/self->start/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = ?\n", walltimestamp, 0, pid, tid,
	    probefunc, self->a0, self->a1, self->a2, self->a3, self->a4, self->a5);
}

syscall::exit:entry, syscall::exit_group:entry, syscall::rt_sigreturn:entry
/self->start && STACKS/
{
	ustack();
}

syscall::exit:entry, syscall::exit_group:entry, syscall::rt_sigreturn:entry
/self->start/
{
	self->start = 0;
}

/* exec: the path, while the old image is there */
syscall::execve:entry
/self->start/
{
	self->path = copyinstr(arg0);
	self->exec = 1;
}

syscall::execveat:entry
/self->start/
{
	self->path = copyinstr(arg1);
	self->exec = 2;
}

syscall::execve:return, syscall::execveat:return
/self->start/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = %d %d \"%s\"\n", walltimestamp, timestamp - self->start, pid, tid, probefunc,
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5, (long)arg0, errno,
	    self->path);
	self->done = 1;
}

/*
 * an exec into a 32-bit program (code segment 0x23): the kernel's syscall
 * events skip the return of a call the thread makes 32-bit, so exec-success
 * shows it (on the ptrace engine exec-success comes first, and the return
 * then finds no call open)
 */
proc:::exec-success
/self->start && uregs[R_CS] == 0x23/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = %d %d \"%s\"\n", walltimestamp, timestamp - self->start, pid, tid,
	    self->exec == 2 ? "execveat" : "execve",
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5, 0, 0, self->path);
}

proc:::exec-success
/self->start && uregs[R_CS] == 0x23 && STACKS/
{
	ustack();
}

proc:::exec-success
/self->start && uregs[R_CS] == 0x23/
{
	self->start = 0;
}

/* data read: the first 32 bytes of what was read */
syscall::read:return, syscall::pread64:return
/self->start && (long)arg0 > 0/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = %d %d \"%s\"\n", walltimestamp, timestamp - self->start, pid, tid, probefunc,
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5, (long)arg0, errno,
	    copyinstr(self->a1, arg0 < 32 ? arg0 : 32));
	self->done = 1;
}

/* data written: the first 32 bytes */
syscall::write:return, syscall::pwrite64:return
/self->start && self->a2 > 0/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = %d %d \"%s\"\n", walltimestamp, timestamp - self->start, pid, tid, probefunc,
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5, (long)arg0, errno,
	    copyinstr(self->a1, self->a2 < 32 ? self->a2 : 32));
	self->done = 1;
}

/* argument 0: a string */
syscall::open:return, syscall::newstat:return, syscall::newlstat:return,
syscall::access:return, syscall::truncate:return, syscall::chdir:return,
syscall::mkdir:return, syscall::rmdir:return, syscall::creat:return, syscall::unlink:return,
syscall::readlink:return, syscall::chmod:return, syscall::chown:return,
syscall::lchown:return, syscall::mknod:return, syscall::statfs:return,
syscall::chroot:return, syscall::acct:return, syscall::swapon:return,
syscall::swapoff:return, syscall::delete_module:return, syscall::listxattr:return,
syscall::llistxattr:return, syscall::mq_open:return, syscall::mq_unlink:return,
syscall::memfd_create:return, syscall::fsopen:return
/self->start/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = %d %d \"%s\"\n", walltimestamp, timestamp - self->start, pid, tid, probefunc,
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5, (long)arg0, errno,
	    self->a0 ? copyinstr(self->a0) : "");
	self->done = 1;
}

/* argument 1: a string */
syscall::quotactl:return, syscall::fsetxattr:return, syscall::fgetxattr:return,
syscall::fremovexattr:return, syscall::inotify_add_watch:return, syscall::openat:return,
syscall::mkdirat:return, syscall::mknodat:return, syscall::fchownat:return,
syscall::futimesat:return, syscall::newfstatat:return, syscall::unlinkat:return,
syscall::readlinkat:return, syscall::fchmodat:return, syscall::faccessat:return,
syscall::utimensat:return, syscall::name_to_handle_at:return, syscall::finit_module:return,
syscall::statx:return, syscall::open_tree:return, syscall::fspick:return,
syscall::openat2:return, syscall::faccessat2:return, syscall::mount_setattr:return,
syscall::fchmodat2:return, syscall::listxattrat:return, syscall::open_tree_attr:return,
syscall::file_getattr:return, syscall::file_setattr:return
/self->start/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = %d %d \"%s\"\n", walltimestamp, timestamp - self->start, pid, tid, probefunc,
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5, (long)arg0, errno,
	    self->a1 ? copyinstr(self->a1) : "");
	self->done = 1;
}

/* argument 2: a string */
syscall::init_module:return, syscall::fsconfig:return
/self->start/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = %d %d \"%s\"\n", walltimestamp, timestamp - self->start, pid, tid, probefunc,
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5, (long)arg0, errno,
	    self->a2 ? copyinstr(self->a2) : "");
	self->done = 1;
}

/* argument 3: a string */
syscall::kexec_file_load:return
/self->start/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = %d %d \"%s\"\n", walltimestamp, timestamp - self->start, pid, tid, probefunc,
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5, (long)arg0, errno,
	    self->a3 ? copyinstr(self->a3) : "");
	self->done = 1;
}

/* argument 4: a string */
syscall::fanotify_mark:return
/self->start/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = %d %d \"%s\"\n", walltimestamp, timestamp - self->start, pid, tid, probefunc,
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5, (long)arg0, errno,
	    self->a4 ? copyinstr(self->a4) : "");
	self->done = 1;
}

/* argument 0 and argument 1: a string */
syscall::rename:return, syscall::link:return, syscall::symlink:return,
syscall::pivot_root:return, syscall::setxattr:return, syscall::lsetxattr:return,
syscall::getxattr:return, syscall::lgetxattr:return, syscall::removexattr:return,
syscall::lremovexattr:return, syscall::add_key:return
/self->start/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = %d %d \"%s\" \"%s\"\n", walltimestamp, timestamp - self->start, pid, tid, probefunc,
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5, (long)arg0, errno,
	    self->a0 ? copyinstr(self->a0) : "", self->a1 ? copyinstr(self->a1) : "");
	self->done = 1;
}

/* argument 0 and argument 2: a string */
syscall::symlinkat:return
/self->start/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = %d %d \"%s\" \"%s\"\n", walltimestamp, timestamp - self->start, pid, tid, probefunc,
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5, (long)arg0, errno,
	    self->a0 ? copyinstr(self->a0) : "", self->a2 ? copyinstr(self->a2) : "");
	self->done = 1;
}

/* argument 1 and argument 3: a string */
syscall::renameat:return, syscall::linkat:return, syscall::renameat2:return,
syscall::move_mount:return, syscall::setxattrat:return, syscall::getxattrat:return,
syscall::removexattrat:return
/self->start/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = %d %d \"%s\" \"%s\"\n", walltimestamp, timestamp - self->start, pid, tid, probefunc,
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5, (long)arg0, errno,
	    self->a1 ? copyinstr(self->a1) : "", self->a3 ? copyinstr(self->a3) : "");
	self->done = 1;
}

/* argument 0 and argument 1 and argument 2: a string */
syscall::request_key:return
/self->start/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = %d %d \"%s\" \"%s\" \"%s\"\n", walltimestamp, timestamp - self->start, pid, tid, probefunc,
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5, (long)arg0, errno,
	    self->a0 ? copyinstr(self->a0) : "", self->a1 ? copyinstr(self->a1) : "", self->a2 ? copyinstr(self->a2) : "");
	self->done = 1;
}

/* every other call: the registers and the result */
syscall:::return
/self->start && !self->done/
{
	printf("%-20Y %d %d %d %s(%#x, %#x, %#x, %#x, %#x, %#x) = %d %d\n", walltimestamp, timestamp - self->start, pid, tid, probefunc,
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5, (long)arg0, errno);
}

/* -s: the stack, after the call's line */
syscall:::return
/self->start && STACKS/
{
	ustack();
}

syscall:::return
/self->start/
{
	self->start = 0;
	self->done = 0;
	self->path = 0;
}

END
/COUNTS/
{
	printf("\n%-32s %8s\n", "CALL", "COUNT");
	printa("%-32s %@8d\n", @calls);
}
