#!/usr/bin/env -S pydtrace -qs
/*
 * opensnoop.d: every open(2), openat(2), openat2(2) and creat(2): which
 * process opened which path with which flags, and what came back: a file
 * descriptor, or -1 and the errno.
 *
 * The path is read when the call returns, not when it starts. By then the
 * kernel has read it, so its page is in memory; at the call's entry, on the
 * eBPF engine, a path in a page the process has not touched yet (a string
 * in a library's data) cannot be read.
 *
 * The opensnoop command sets the inline values below from its options
 * (opensnoop --print-script shows the result); run as it is, this file
 * traces every process but pydtrace itself.
 */

/* which processes: -p PID, a command (and its children), -n NAME */
inline int SELECTED = pid != $pid;
/* -x: failed opens only */
inline int FAILED_ONLY = 0;

BEGIN
{
	printf("%-20s %-7s %-16s %4s %3s %8s %s\n", "TIME", "PID", "COMM", "FD", "ERR",
	    "FLAGS", "PATH");
}

syscall::open:entry, syscall::creat:entry
/SELECTED/
{
	self->path = arg0;
	/* creat(path, mode) is open(path, O_CREAT|O_WRONLY|O_TRUNC, mode) */
	self->flags = probefunc == "creat" ? 01101 : arg1;
}

syscall::openat:entry
/SELECTED/
{
	self->path = arg1;
	self->flags = arg2;
}

syscall::openat2:entry
/SELECTED/
{
	self->path = arg1;
	self->how = arg2;	/* struct open_how: its flags, read at the return */
}

syscall::openat2:return
/self->how/
{
	self->flags = *(uint64_t *)copyin(self->how, 8);
	self->how = 0;
}

syscall::open:return, syscall::creat:return, syscall::openat:return, syscall::openat2:return
/self->path && (!FAILED_ONLY || errno != 0)/
{
	printf("%-20Y %-7d %-16s %4d %3d %8o %s\n", walltimestamp, pid, execname,
	    errno ? -1 : (int)arg0, errno, self->flags, copyinstr(self->path));
}

syscall::open:return, syscall::creat:return, syscall::openat:return, syscall::openat2:return
/self->path/
{
	self->path = 0;
	self->flags = 0;
}
