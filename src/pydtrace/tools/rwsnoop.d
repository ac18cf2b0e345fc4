#!/usr/bin/env -S pydtrace -qs
/*
 * rwsnoop.d: every read and write of the processes chosen: read(2),
 * write(2), pread64, pwrite64, readv, writev, preadv, pwritev, preadv2 and
 * pwritev2. Which process, which descriptor and the file it names
 * (fds[fd].fi_pathname: a path, or "pipe:[ino]", "socket:[ino]"), and
 * what came back: the bytes moved, or -1 and the errno.
 *
 * The file is named when the call returns: the descriptor still names it
 * then (unless another thread closed it meanwhile).
 *
 * The rwsnoop command sets the inline values below from its options
 * (rwsnoop --print-script shows the result); run as it is, this file
 * traces every process but pydtrace itself.
 */

/* which processes: -p PID, a command (and its children), -n NAME */
inline int SELECTED = pid != $pid;
/* -x: failed calls only */
inline int FAILED_ONLY = 0;

BEGIN
{
	printf("%-20s %-7s %-16s %1s %-8s %4s %8s %3s %s\n", "TIME", "PID", "COMM", "D", "CALL",
	    "FD", "BYTES", "ERR", "PATH");
}

syscall::read:entry, syscall::write:entry, syscall::pread64:entry, syscall::pwrite64:entry,
syscall::readv:entry, syscall::writev:entry, syscall::preadv:entry, syscall::pwritev:entry,
syscall::preadv2:entry, syscall::pwritev2:entry
/SELECTED/
{
	self->fd = arg0 + 1;	/* 0: no call under way */
}

syscall::read:return, syscall::write:return, syscall::pread64:return, syscall::pwrite64:return,
syscall::readv:return, syscall::writev:return, syscall::preadv:return, syscall::pwritev:return,
syscall::preadv2:return, syscall::pwritev2:return
/self->fd && (!FAILED_ONLY || errno != 0)/
{
	printf("%-20Y %-7d %-16s %1s %-8s %4d %8d %3d %s\n", walltimestamp, pid, execname,
	    substr(probefunc, 0, 1) == "w" || substr(probefunc, 0, 2) == "pw" ? "W" : "R",
	    probefunc, self->fd - 1, errno ? -1 : (long)arg0, errno,
	    fds[self->fd - 1].fi_pathname);
}

syscall::read:return, syscall::write:return, syscall::pread64:return, syscall::pwrite64:return,
syscall::readv:return, syscall::writev:return, syscall::preadv:return, syscall::pwritev:return,
syscall::preadv2:return, syscall::pwritev2:return
/self->fd/
{
	self->fd = 0;
}
