#!/usr/bin/env -S pydtrace -qs
/*
 * offcputime.d: time spent off the CPU (blocked, sleeping, or runnable
 * but waiting), by the user and kernel stacks the thread left the CPU
 * with: each switch-out (sched:::off-cpu, in the thread leaving) records
 * the thread and its stacks, and the switch-in (sched:::on-cpu, whose
 * clauses run as the thread coming on) records how long it was off.
 *
 * On Solaris, on-cpu runs in the thread after the switch, where stack()
 * is the stack it blocked with, and one clause can aggregate
 * @[stack()] = sum(timestamp - self->ts). On Linux's eBPF engine on-cpu
 * fires at the switch, in the thread going off, so stack() is refused
 * there; and a stack cannot be kept in a variable until the switch-in.
 * So both halves are recorded and the offcputime command joins them per
 * thread (the records come in the order they were made). Every switch of
 * the threads traced is a record: trace a process (-p) or a command on a
 * busy machine, or expect drops (reported as such).
 *
 * The offcputime command sets the inline values below from its options
 * and adds a clause for a duration (offcputime --print-script shows the
 * result); run as it is, this file prints every switch-out's stacks and
 * every switch-in's time off CPU (ns) of every process but pydtrace.
 */

/* which processes: -p PID, a command (and its children) */
inline int SELECTED = pid != $pid;
/* -u: user threads only; -k: kernel threads only (PF_KTHREAD) */
inline int THREADS = 1;
/* -U: user stacks only; -K: kernel stacks only */
inline int KERNEL_STACKS = 1;
inline int USER_STACKS = 1;

BEGIN
{
	printf("Tracing off-CPU time... Hit Ctrl-C to end.\n");
}

self uint64_t off;	/* when it left the CPU */
self int dead;		/* exiting: its last switch-out is no time off CPU */

proc:::lwp-exit
/SELECTED && THREADS/
{
	self->dead = 1;
}

/*
 * A thread still off when it leaves the CPU again came on while the kernel
 * fired nothing (a task hidden from tracing switched to it): how long it was
 * off is unknown, and @unseen counts it. A thread's last switch-out, after
 * its lwp-exit, is no time off CPU: nothing of it is kept.
 * The idle threads (pid 0) are never blocked: they run when nothing else can.
 */
sched:::off-cpu
/SELECTED && pid != 0 && THREADS && !self->dead/
{
	@unseen = sum(self->off != 0);
	self->off = timestamp;
}

sched:::off-cpu
/self->dead/
{
	@unseen = sum(self->off != 0);
	self->off = 0;
	self->dead = 0;
}

sched:::off-cpu
/self->off && KERNEL_STACKS && USER_STACKS/
{
	printf("off %d %d %s\n", tid, pid, execname);
	ustack();
	stack();
}

sched:::off-cpu
/self->off && !KERNEL_STACKS/
{
	printf("off %d %d %s\n", tid, pid, execname);
	ustack();
}

sched:::off-cpu
/self->off && !USER_STACKS/
{
	printf("off %d %d %s\n", tid, pid, execname);
	stack();
}

sched:::on-cpu
/self->off/
{
	printf("on %d %d\n", tid, timestamp - self->off);
	self->off = 0;
}

END
{
	printa("%@d switch-ins the kernel did not report\n", @unseen);
	printf("Detaching...\n");
}
