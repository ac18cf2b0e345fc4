#!/usr/bin/env -S pydtrace -qs
/*
 * killsnoop.d: signals sent with kill(2), tkill(2) and tgkill(2): who sent
 * which signal to which process (or thread), and the result: 0, or minus
 * the errno. A call that never returns (a process sending itself a signal
 * it dies of) is printed when its thread ends, with RET "?" (RETURNED 0).
 *
 * The killsnoop command sets the inline values below from its options
 * (killsnoop --print-script shows the result); run as it is, this file
 * traces every process but pydtrace itself.
 */

/* which processes (the senders): -p PID, a command (and its children), -n NAME */
inline int SELECTED = pid != $pid;
/* -x: failed calls only */
inline int FAILED_ONLY = 0;

BEGIN
{
	printf("%-20s %-7s %-16s %-7s %-4s %-7s %-4s %s\n", "TIME", "PID", "COMM", "CALL", "SIG",
	    "TPID", "RET", "RETURNED");
}

syscall::kill:entry, syscall::tkill:entry
/SELECTED/
{
	self->target = (int)arg0;	/* kill: a pid, 0 (my group), -1 (all), -pgid */
	self->signal = (int)arg1;
	self->call = probefunc;
	self->sent = walltimestamp;
}

syscall::tgkill:entry
/SELECTED/
{
	self->target = (int)arg1;	/* the thread; arg0 is its process */
	self->signal = (int)arg2;
	self->call = probefunc;
	self->sent = walltimestamp;
}

syscall::kill:return, syscall::tkill:return, syscall::tgkill:return
/self->sent && (!FAILED_ONLY || errno != 0)/
{
	printf("%-20Y %-7d %-16s %-7s %-4d %-7d %-4d %d\n", self->sent, pid, execname, self->call,
	    self->signal, self->target, errno ? -errno : 0, 1);
}

/* the call did not return: its thread ended (killed by the signal it sent) */
proc:::lwp-exit
/self->sent && !FAILED_ONLY/
{
	printf("%-20Y %-7d %-16s %-7s %-4d %-7d %-4d %d\n", self->sent, pid, execname, self->call,
	    self->signal, self->target, 0, 0);
}

syscall::kill:return, syscall::tkill:return, syscall::tgkill:return, proc:::lwp-exit
/self->sent/
{
	self->sent = 0;
	self->target = 0;
	self->signal = 0;
	self->call = 0;
}
