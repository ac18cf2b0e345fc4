#!/usr/bin/env -S pydtrace -qs
/*
 * execsnoop.d: every execve(2) and execveat(2): the process, its parent,
 * the program's path and arguments (up to 20; "..." after them when there
 * are more), and the result: 0, or minus the errno when the exec failed.
 *
 * The path is read when the call starts: once an exec succeeds, the old
 * image and the strings in it are gone. The row is printed when the exec
 * succeeds (proc:::exec-success), with the new program's name (execname),
 * or when the call returns with an error. The arguments are read then,
 * from where they are at that moment: a failed exec leaves the old image,
 * and a successful one has copied them to the new program's stack, whose
 * pointer array starts one word above the stack pointer (argc, then
 * argv[]). Read there, they go straight into the row rather than through
 * twenty thread-local strings. A 32-bit program (code segment 0x23) has
 * 4-byte pointers, and its exec never returns to a syscall probe (the
 * kernel's syscall events skip 32-bit calls): exec-success sees it.
 *
 * The execsnoop command sets the inline values below from its options
 * (execsnoop --print-script shows the result); run as it is, this file
 * traces every process but pydtrace itself.
 */

/* which processes: -p PID, a command (and its children), -n NAME */
inline int SELECTED = pid != $pid;
/* -x: failed execs only */
inline int FAILED_ONLY = 0;

BEGIN
{
	printf("%-20s %-16s %-7s %-7s %3s %4s %-24s %s\n", "TIME", "PCOMM", "PID", "PPID", "RET",
	    "ARGC", "PATH", "ARGS");
}

syscall::execve:entry
/SELECTED/
{
	self->argv = arg1;
	self->file = copyinstr(arg0);
}

syscall::execveat:entry
/SELECTED/
{
	self->argv = arg2;
	self->file = copyinstr(arg1);
}

/*
 * where the arguments are: the new program's stack, or the caller's array
 * (this-> variables live through the clauses of one probe firing: no
 * thread-local variable to set and clear at each exec)
 */
proc:::exec-success
/self->argv/
{
	this->w = uregs[R_CS] == 0x23 ? 4 : 8;
	this->av = uregs[R_SP] + this->w;
	this->ret = 0;
	this->show = !FAILED_ONLY;
}

syscall::execve:return, syscall::execveat:return
/self->argv && errno != 0/
{
	this->w = 8;
	this->av = (uint64_t)self->argv;
	this->ret = -errno;
	this->show = 1;
}

/* argv[0], argv[1], ... until the NULL that ends the array */
proc:::exec-success, syscall::execve:return, syscall::execveat:return
/this->show/
{
	/* a 32-bit program's pointers are the low half of each 8 bytes read */
	this->mask = this->w == 8 ? 0xffffffffffffffff : 0xffffffff;
	this->p0 = *(uint64_t *)copyin(this->av, 8) & this->mask;
	this->p1 = !this->p0 ? 0 : *(uint64_t *)copyin(this->av + 1 * this->w, 8) & this->mask;
	this->p2 = !this->p1 ? 0 : *(uint64_t *)copyin(this->av + 2 * this->w, 8) & this->mask;
	this->p3 = !this->p2 ? 0 : *(uint64_t *)copyin(this->av + 3 * this->w, 8) & this->mask;
	this->p4 = !this->p3 ? 0 : *(uint64_t *)copyin(this->av + 4 * this->w, 8) & this->mask;
	this->p5 = !this->p4 ? 0 : *(uint64_t *)copyin(this->av + 5 * this->w, 8) & this->mask;
	this->p6 = !this->p5 ? 0 : *(uint64_t *)copyin(this->av + 6 * this->w, 8) & this->mask;
	this->p7 = !this->p6 ? 0 : *(uint64_t *)copyin(this->av + 7 * this->w, 8) & this->mask;
	this->p8 = !this->p7 ? 0 : *(uint64_t *)copyin(this->av + 8 * this->w, 8) & this->mask;
	this->p9 = !this->p8 ? 0 : *(uint64_t *)copyin(this->av + 9 * this->w, 8) & this->mask;
	this->p10 = !this->p9 ? 0 : *(uint64_t *)copyin(this->av + 10 * this->w, 8) & this->mask;
	this->p11 = !this->p10 ? 0 : *(uint64_t *)copyin(this->av + 11 * this->w, 8) & this->mask;
	this->p12 = !this->p11 ? 0 : *(uint64_t *)copyin(this->av + 12 * this->w, 8) & this->mask;
	this->p13 = !this->p12 ? 0 : *(uint64_t *)copyin(this->av + 13 * this->w, 8) & this->mask;
	this->p14 = !this->p13 ? 0 : *(uint64_t *)copyin(this->av + 14 * this->w, 8) & this->mask;
	this->p15 = !this->p14 ? 0 : *(uint64_t *)copyin(this->av + 15 * this->w, 8) & this->mask;
	this->p16 = !this->p15 ? 0 : *(uint64_t *)copyin(this->av + 16 * this->w, 8) & this->mask;
	this->p17 = !this->p16 ? 0 : *(uint64_t *)copyin(this->av + 17 * this->w, 8) & this->mask;
	this->p18 = !this->p17 ? 0 : *(uint64_t *)copyin(this->av + 18 * this->w, 8) & this->mask;
	this->p19 = !this->p18 ? 0 : *(uint64_t *)copyin(this->av + 19 * this->w, 8) & this->mask;
	this->more = !this->p19 ? 0 : (*(uint64_t *)copyin(this->av + 20 * this->w, 8) & this->mask) != 0;
	this->argc =
	    (this->p0 != 0) + (this->p1 != 0) + (this->p2 != 0) + (this->p3 != 0) + (this->p4 != 0) +
	    (this->p5 != 0) + (this->p6 != 0) + (this->p7 != 0) + (this->p8 != 0) + (this->p9 != 0) +
	    (this->p10 != 0) + (this->p11 != 0) + (this->p12 != 0) + (this->p13 != 0) + (this->p14 != 0) +
	    (this->p15 != 0) + (this->p16 != 0) + (this->p17 != 0) + (this->p18 != 0) + (this->p19 != 0);
	/* an argument past the last is "", read from nowhere (a third of this clause's time) */
	printf("%-20Y %-16s %-7d %-7d %3d %4d %-24s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s\n",
	    walltimestamp, execname, pid, ppid, this->ret, this->argc, self->file,
	    (this->p0 ? copyinstr(this->p0) : ""), (this->p1 ? copyinstr(this->p1) : ""),
	    (this->p2 ? copyinstr(this->p2) : ""), (this->p3 ? copyinstr(this->p3) : ""),
	    (this->p4 ? copyinstr(this->p4) : ""), (this->p5 ? copyinstr(this->p5) : ""),
	    (this->p6 ? copyinstr(this->p6) : ""), (this->p7 ? copyinstr(this->p7) : ""),
	    (this->p8 ? copyinstr(this->p8) : ""), (this->p9 ? copyinstr(this->p9) : ""),
	    (this->p10 ? copyinstr(this->p10) : ""), (this->p11 ? copyinstr(this->p11) : ""),
	    (this->p12 ? copyinstr(this->p12) : ""), (this->p13 ? copyinstr(this->p13) : ""),
	    (this->p14 ? copyinstr(this->p14) : ""), (this->p15 ? copyinstr(this->p15) : ""),
	    (this->p16 ? copyinstr(this->p16) : ""), (this->p17 ? copyinstr(this->p17) : ""),
	    (this->p18 ? copyinstr(this->p18) : ""), (this->p19 ? copyinstr(this->p19) : ""),
	    this->more ? "..." : "");
}

proc:::exec-success, syscall::execve:return, syscall::execveat:return
/self->argv/
{
	self->argv = 0;
	self->file = 0;
}
