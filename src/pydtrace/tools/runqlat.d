#!/usr/bin/env -S pydtrace -qs
/*
 * runqlat.d: run queue latency as a power-of-two histogram: how long a
 * thread that could run waited for a CPU, from the moment it became
 * runnable (woken: sched:::enqueue; a new thread: sched_wakeup_new, in its
 * creator;
 * preempted while running: sched:::preempt) to the moment it was switched
 * in (sched:::on-cpu), in microseconds (-m: milliseconds).
 *
 * Every switch-in that follows a wakeup or a preemption seen counts once.
 * The wakeup runs in the waker, so the time is kept per thread ID in an
 * associative array, not in a self-> variable; on-cpu's clauses run as the
 * thread switched in.
 *
 * The runqlat command sets the inline values below from its options and,
 * for an interval, adds a clause printing the histogram every interval;
 * with -p or a command, clauses counting the switch-ins the kernel did not
 * report (runqlat --print-script shows the result); run as it is, this file
 * prints one histogram in microseconds at Ctrl-C.
 */

/* which processes are measured (as they are switched in): -p PID, a command */
inline int SELECTED = pid != $pid;
/* -p PID: only its threads' wakeups are timed (0: every thread's) */
inline int TARGET = 0;
/* -P: one histogram per process; -L: per thread */
inline int PER_PROCESS = 0;
inline int PER_THREAD = 0;
/* -m: milliseconds, not microseconds */
inline int UNIT = 1000;

BEGIN
{
	printf("Tracing run queue latency... Hit Ctrl-C to end.\n");
}

sched:::enqueue
/TARGET == 0 || args[1]->pr_pid == TARGET/
{
	runnable[args[0]->pr_lwpid] = timestamp;
}

sdt:sched::sched_wakeup_new
/TARGET == 0 || pid == TARGET/
{
	runnable[args->pid] = timestamp;
}

sched:::preempt
/TARGET == 0 || pid == TARGET/
{
	runnable[tid] = timestamp;
}

sched:::on-cpu
/(this->start = runnable[tid]) && SELECTED && !PER_PROCESS && !PER_THREAD/
{
	@lat = quantize((timestamp - this->start) / UNIT);
}

sched:::on-cpu
/this->start && SELECTED && PER_PROCESS/
{
	@pid_lat[pid, execname] = quantize((timestamp - this->start) / UNIT);
}

sched:::on-cpu
/this->start && SELECTED && PER_THREAD/
{
	@tid_lat[tid, execname] = quantize((timestamp - this->start) / UNIT);
}

sched:::on-cpu
/this->start/
{
	runnable[tid] = 0;
}

END
{
	printa(@lat);
	printa(@pid_lat);
	printa(@tid_lat);
}
