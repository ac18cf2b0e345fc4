#!/usr/bin/env -S pydtrace -qs
/*
 * exitsnoop.d: every process that ends: its name, pid, parent, last thread,
 * how long it lived, and how it ended: the status it gave exit_group(2),
 * or the signal that killed it.
 *
 * What proc:::exit does not say is gathered beforehand, per pid: the status
 * from exit_group() (or from the exit() of a last thread), the signal from
 * proc:::signal-send (a signal someone sent it) and proc:::signal-handle
 * (a signal acted on; on the eBPF engine, the fatal one too), the start
 * (an age of 0: not known)
 * from proc:::start. All of it is forgotten when the process ends, whether
 * it is printed or not. A process that started before tracing began has no
 * start here: the exitsnoop command knows it from /proc.
 *
 * The exitsnoop command sets the inline values below from its options
 * (exitsnoop --print-script shows the result); run as it is, this file
 * traces every process but pydtrace itself.
 */

/* which processes: -p PID, a command (and its children), -n NAME */
inline int SELECTED = pid != $pid;
/* -x: only processes that failed: a status other than 0, or a signal */
inline int FAILED_ONLY = 0;

BEGIN
{
	printf("%-20s %-16s %-7s %-7s %-7s %-6s %-6s %-6s %s\n", "TIME", "PCOMM", "PID", "PPID",
	    "TID", "HOW", "STATUS", "SIGNAL", "AGE(ns)");
}

proc:::start
{
	started[pid] = timestamp;
}

syscall::exit_group:entry
{
	status[pid] = arg0 & 0xff;
	grouped[pid] = 1;
}

syscall::exit:entry
/!grouped[pid]/
{
	status[pid] = arg0 & 0xff;
}

proc:::signal-send
{
	signal[args[1]->pr_pid] = args[2];
}

proc:::signal-handle
{
	signal[pid] = args[0];
}

/*
 * A signal a process sends itself and dies of: its kill() never returns,
 * and the ptrace engine fires proc:::signal-send when a call that sends a
 * signal has returned. Kept when the call starts (kill(pid, 0) sends none).
 */
syscall::kill:entry
/(int)arg0 > 0 && arg1 != 0/
{
	signal[(int)arg0] = arg1;
}

syscall::tgkill:entry
/(int)arg0 > 0 && arg2 != 0/
{
	signal[(int)arg0] = arg2;
}

proc:::exit
/SELECTED && (!FAILED_ONLY || args[0] != CLD_EXITED || status[pid] != 0)/
{
	printf("%-20Y %-16s %-7d %-7d %-7d %-6d %-6d %-6d %d %d\n", walltimestamp, execname, pid,
	    ppid, tid, args[0], args[0] == CLD_EXITED ? status[pid] : 0,
	    args[0] == CLD_EXITED ? 0 : signal[pid],
	    started[pid] ? timestamp - started[pid] : 0, timestamp);
}

proc:::exit
{
	started[pid] = 0;
	status[pid] = 0;
	grouped[pid] = 0;
	signal[pid] = 0;
}
