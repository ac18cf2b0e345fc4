#!/usr/bin/env -S pydtrace -qs
/*
 * errinfo.d: system calls that fail: which process, which call, which
 * errno (the errinfo command adds the errno's name and description). With
 * COUNTS set (errinfo -c), the failures are counted per process name, call
 * and errno, and printed at the end.
 *
 * rt_sigreturn is left out: what it "returns" is the register of the code
 * a signal interrupted, not a result of its own.
 *
 * The errinfo command sets the inline values below from its options
 * (errinfo --print-script shows the result); run as it is, this file
 * traces every process but pydtrace itself.
 */

/* which processes: -p PID, a command (and its children), -n NAME */
inline int SELECTED = pid != $pid;
/* -c: count the failures instead of printing each */
inline int COUNTS = 0;

BEGIN
{
	printf("%-20s %-7s %-16s %-16s %4s\n", "TIME", "PID", "EXEC", "SYSCALL", "ERR");
}

syscall:::return
/SELECTED && errno != 0 && !COUNTS && probefunc != "rt_sigreturn"/
{
	printf("%-20Y %-7d %-16s %-16s %4d\n", walltimestamp, pid, execname, probefunc, errno);
}

syscall:::return
/SELECTED && errno != 0 && COUNTS && probefunc != "rt_sigreturn"/
{
	@failures[execname, probefunc, errno] = count();
}

END
/COUNTS/
{
	printf("%-16s %-16s %4s %8s\n", "EXEC", "SYSCALL", "ERR", "COUNT");
	printa("%-16s %-16s %4d %@8d\n", @failures);
}
