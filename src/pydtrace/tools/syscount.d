#!/usr/bin/env -S pydtrace -qs
/*
 * syscount.d: system calls counted, as strace -c counts them: per call (or
 * per process), the calls made, those that failed, and the time spent in
 * them (wall-clock, from entry to return), printed at the end.
 *
 * A call is counted when it returns, as strace -c does: exit and exit_group
 * never return, and a call already under way when tracing began is not
 * counted (its entry was not seen).
 *
 * The syscount command sets the inline values below from its options and,
 * for an interval, adds a clause printing the counts every interval
 * (syscount --print-script shows the result); run as it is, this file
 * counts the calls of every process but pydtrace itself until Ctrl-C.
 */

/* which processes: -p PID, a command (and its children), -n NAME */
inline int SELECTED = pid != $pid;
/* -P: per process, not per call */
inline int PER_PROCESS = 0;

BEGIN
{
	printf("Counting system calls... Ctrl-C to end.\n");
}

syscall:::entry
/SELECTED/
{
	self->start = timestamp;
}

syscall:::return
/self->start && !PER_PROCESS/
{
	@calls[probefunc] = count();
	@errors[probefunc] = sum(errno != 0);
	@time[probefunc] = sum(timestamp - self->start);
}

syscall:::return
/self->start && PER_PROCESS/
{
	@pcalls[pid, execname] = count();
	@perrors[pid, execname] = sum(errno != 0);
	@ptime[pid, execname] = sum(timestamp - self->start);
}

syscall:::return
/self->start/
{
	self->start = 0;
}

/*
 * rt_sigreturn goes back to the code a signal interrupted with that code's
 * registers, its system call number among them: the kernel's return
 * tracepoint does not see it return (strace, stopping the process, does).
 * It is counted when it starts, and never fails.
 */
syscall::rt_sigreturn:entry
/self->start && !PER_PROCESS/
{
	@calls[probefunc] = count();
	@errors[probefunc] = sum(0);
	@time[probefunc] = sum(0);
}

syscall::rt_sigreturn:entry
/self->start && PER_PROCESS/
{
	@pcalls[pid, execname] = count();
	@perrors[pid, execname] = sum(0);
	@ptime[pid, execname] = sum(0);
}

syscall::rt_sigreturn:entry
{
	self->start = 0;
}

END
{
	printf("%-22s %9s %9s %12s\n", "SYSCALL", "CALLS", "ERRORS", "TIME(ns)");
	printa("%-22s %@9d %@9d %@12d\n", @calls, @errors, @time);
	printa("%-6d %-15s %@9d %@9d %@12d\n", @pcalls, @perrors, @ptime);
}
