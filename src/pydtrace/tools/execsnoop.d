#!/usr/bin/env -S pydtrace -qs
/*
 * execsnoop.d: every execve(2) and execveat(2): the process, its parent,
 * the program's path and arguments (up to 20; "..." after them when there
 * are more), and the result: 0, or minus the errno when the exec failed.
 *
 * The arguments are read when the call starts: once an exec succeeds the
 * old image, and the strings in it, are gone. The row is printed when the
 * call returns, with the new program's name (execname) and the result.
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
	self->path = arg0;
}

syscall::execveat:entry
/SELECTED/
{
	self->argv = arg2;
	self->path = arg1;
}

/* argv[0], argv[1], ... until the NULL that ends the array */
syscall::execve:entry, syscall::execveat:entry
/self->argv/
{
	self->file = copyinstr(self->path);
	self->argc = 0;
	self->more = 0;
	this->p = *(uint64_t *)copyin(self->argv, 8);
	if (this->p) {
		self->a0 = copyinstr(this->p);
		self->argc = 1;
		this->p = *(uint64_t *)copyin(self->argv + 8, 8);
	}
	if (this->p) {
		self->a1 = copyinstr(this->p);
		self->argc = 2;
		this->p = *(uint64_t *)copyin(self->argv + 16, 8);
	}
	if (this->p) {
		self->a2 = copyinstr(this->p);
		self->argc = 3;
		this->p = *(uint64_t *)copyin(self->argv + 24, 8);
	}
	if (this->p) {
		self->a3 = copyinstr(this->p);
		self->argc = 4;
		this->p = *(uint64_t *)copyin(self->argv + 32, 8);
	}
	if (this->p) {
		self->a4 = copyinstr(this->p);
		self->argc = 5;
		this->p = *(uint64_t *)copyin(self->argv + 40, 8);
	}
	if (this->p) {
		self->a5 = copyinstr(this->p);
		self->argc = 6;
		this->p = *(uint64_t *)copyin(self->argv + 48, 8);
	}
	if (this->p) {
		self->a6 = copyinstr(this->p);
		self->argc = 7;
		this->p = *(uint64_t *)copyin(self->argv + 56, 8);
	}
	if (this->p) {
		self->a7 = copyinstr(this->p);
		self->argc = 8;
		this->p = *(uint64_t *)copyin(self->argv + 64, 8);
	}
	if (this->p) {
		self->a8 = copyinstr(this->p);
		self->argc = 9;
		this->p = *(uint64_t *)copyin(self->argv + 72, 8);
	}
	if (this->p) {
		self->a9 = copyinstr(this->p);
		self->argc = 10;
		this->p = *(uint64_t *)copyin(self->argv + 80, 8);
	}
	if (this->p) {
		self->a10 = copyinstr(this->p);
		self->argc = 11;
		this->p = *(uint64_t *)copyin(self->argv + 88, 8);
	}
	if (this->p) {
		self->a11 = copyinstr(this->p);
		self->argc = 12;
		this->p = *(uint64_t *)copyin(self->argv + 96, 8);
	}
	if (this->p) {
		self->a12 = copyinstr(this->p);
		self->argc = 13;
		this->p = *(uint64_t *)copyin(self->argv + 104, 8);
	}
	if (this->p) {
		self->a13 = copyinstr(this->p);
		self->argc = 14;
		this->p = *(uint64_t *)copyin(self->argv + 112, 8);
	}
	if (this->p) {
		self->a14 = copyinstr(this->p);
		self->argc = 15;
		this->p = *(uint64_t *)copyin(self->argv + 120, 8);
	}
	if (this->p) {
		self->a15 = copyinstr(this->p);
		self->argc = 16;
		this->p = *(uint64_t *)copyin(self->argv + 128, 8);
	}
	if (this->p) {
		self->a16 = copyinstr(this->p);
		self->argc = 17;
		this->p = *(uint64_t *)copyin(self->argv + 136, 8);
	}
	if (this->p) {
		self->a17 = copyinstr(this->p);
		self->argc = 18;
		this->p = *(uint64_t *)copyin(self->argv + 144, 8);
	}
	if (this->p) {
		self->a18 = copyinstr(this->p);
		self->argc = 19;
		this->p = *(uint64_t *)copyin(self->argv + 152, 8);
	}
	if (this->p) {
		self->a19 = copyinstr(this->p);
		self->argc = 20;
		self->more = *(uint64_t *)copyin(self->argv + 160, 8) != 0;
	}
}

syscall::execve:return, syscall::execveat:return
/self->argv && (!FAILED_ONLY || errno != 0)/
{
	printf("%-20Y %-16s %-7d %-7d %3d %4d %-24s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s\n",
	    walltimestamp, execname, pid, ppid, errno ? -errno : 0, self->argc, self->file,
	    self->a0, self->a1, self->a2, self->a3, self->a4,
	    self->a5, self->a6, self->a7, self->a8, self->a9,
	    self->a10, self->a11, self->a12, self->a13, self->a14,
	    self->a15, self->a16, self->a17, self->a18, self->a19,
	    self->more ? "..." : "");
}

syscall::execve:return, syscall::execveat:return
/self->argv/
{
	self->argv = 0;
	self->path = 0;
	self->file = 0;
	self->argc = 0;
	self->more = 0;
	self->a0 = 0;
	self->a1 = 0;
	self->a2 = 0;
	self->a3 = 0;
	self->a4 = 0;
	self->a5 = 0;
	self->a6 = 0;
	self->a7 = 0;
	self->a8 = 0;
	self->a9 = 0;
	self->a10 = 0;
	self->a11 = 0;
	self->a12 = 0;
	self->a13 = 0;
	self->a14 = 0;
	self->a15 = 0;
	self->a16 = 0;
	self->a17 = 0;
	self->a18 = 0;
	self->a19 = 0;
}
