#!/usr/bin/env -S pydtrace -qs
/*
 * rwtop.d: bytes read and written per process (and, with PER_FILE, per
 * file), as DTraceToolkit's rwtop and BCC's filetop count them: the calls
 * of the read(2) and write(2) families that returned, and the bytes they
 * moved. The counts are printed, and started over, every interval.
 *
 * The file is named at the return, by fds[fd].fi_pathname (see rwsnoop.d).
 *
 * The rwtop command sets the inline values below from its options and adds
 * the clause printing every interval (rwtop --print-script shows the
 * result); run as it is, this file counts for every process but pydtrace
 * itself until Ctrl-C.
 */

/* which processes: -p PID, a command (and its children), -n NAME */
inline int SELECTED = pid != $pid;
/* -f: per file, not only per process */
inline int PER_FILE = 0;

BEGIN
{
	printf("Tracing reads and writes... Ctrl-C to end.\n");
}

syscall::read:entry, syscall::pread64:entry, syscall::readv:entry, syscall::preadv:entry,
syscall::preadv2:entry
/SELECTED/
{
	self->fd = arg0 + 1;	/* 0: no call under way */
	self->dir = "R";
}

syscall::write:entry, syscall::pwrite64:entry, syscall::writev:entry, syscall::pwritev:entry,
syscall::pwritev2:entry
/SELECTED/
{
	self->fd = arg0 + 1;
	self->dir = "W";
}

syscall::read:return, syscall::pread64:return, syscall::readv:return, syscall::preadv:return,
syscall::preadv2:return, syscall::write:return, syscall::pwrite64:return,
syscall::writev:return, syscall::pwritev:return, syscall::pwritev2:return
/self->fd && errno == 0/
{
	@calls[pid, execname, self->dir, PER_FILE ? fds[self->fd - 1].fi_pathname : ""] = count();
	@bytes[pid, execname, self->dir, PER_FILE ? fds[self->fd - 1].fi_pathname : ""] =
	    sum(arg0);
}

syscall::read:return, syscall::pread64:return, syscall::readv:return, syscall::preadv:return,
syscall::preadv2:return, syscall::write:return, syscall::pwrite64:return,
syscall::writev:return, syscall::pwritev:return, syscall::pwritev2:return
/self->fd/
{
	self->fd = 0;
	self->dir = 0;
}

END
{
	printf("%-7s %-16s %1s %10s %12s %s\n", "PID", "COMM", "D", "CALLS", "BYTES", "FILE");
	printa("%-7d %-16s %1s %@10d %@12d %s\n", @calls, @bytes);
}
