#!/usr/bin/env -S pydtrace -qs
/*
 * statsnoop.d: the stat family: stat(2), lstat(2), fstatat(2) (the
 * kernel's newfstatat), statx(2) and statfs(2): which process asked about
 * which path, and the result: 0, or -1 and the errno. The path is read when
 * the call returns (see opensnoop.d for why); an empty path with a
 * descriptor (fstatat(fd, "", AT_EMPTY_PATH), how fstat() is made) shows
 * the descriptor.
 *
 * The statsnoop command sets the inline values below from its options
 * (statsnoop --print-script shows the result); run as it is, this file
 * traces every process but pydtrace itself.
 */

/* which processes: -p PID, a command (and its children), -n NAME */
inline int SELECTED = pid != $pid;
/* -x: failed calls only */
inline int FAILED_ONLY = 0;

BEGIN
{
	printf("%-20s %-7s %-16s %-10s %3s %3s %5s %s\n", "TIME", "PID", "COMM", "CALL", "RET",
	    "ERR", "DFD", "PATH");
}

syscall::newstat:entry, syscall::newlstat:entry, syscall::statfs:entry
/SELECTED/
{
	self->path = arg0;
	self->dfd = -100;	/* AT_FDCWD */
	self->call = 1;
}

syscall::newfstatat:entry, syscall::statx:entry
/SELECTED/
{
	self->path = arg1;
	self->dfd = (int)arg0;
	self->call = 1;
}

syscall::newstat:return, syscall::newlstat:return, syscall::statfs:return,
syscall::newfstatat:return, syscall::statx:return
/self->call && (!FAILED_ONLY || errno != 0)/
{
	printf("%-20Y %-7d %-16s %-10s %3d %3d %5d %s\n", walltimestamp, pid, execname, probefunc,
	    errno ? -1 : 0, errno, self->dfd, self->path ? copyinstr(self->path) : "");
}

syscall::newstat:return, syscall::newlstat:return, syscall::statfs:return,
syscall::newfstatat:return, syscall::statx:return
/self->call/
{
	self->call = 0;
	self->path = 0;
	self->dfd = 0;
}
