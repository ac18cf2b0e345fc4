#!/usr/bin/env -S pydtrace -qs
/*
 * profile.d: CPU samples by stack: every CPU is interrupted 49 times a
 * second, and the thread running there is counted under its process, its
 * user stack and its kernel stack (a thread in user mode has an empty
 * kernel stack). The idle threads (pid 0) are left out unless -I.
 *
 * The profile command sets the inline values below from its options,
 * writes -F's rate into the probe's name (profile-49) and adds a clause
 * for a duration (profile --print-script shows the result); run as it is,
 * this file samples every process but pydtrace itself until Ctrl-C and
 * prints the stacks as dtrace does.
 */

/* which processes: -p PID, a command (and its children) */
inline int SELECTED = pid != $pid;
/* -I: count the idle threads too */
inline int IDLE = 0;
/* -U: user stacks only; -K: kernel stacks only */
inline int KERNEL_STACKS = 1;
inline int USER_STACKS = 1;

BEGIN
{
	printf("Sampling at 49 Hertz... Hit Ctrl-C to end.\n");
}

profile:::profile-49
/SELECTED && (IDLE || pid != 0) && KERNEL_STACKS && USER_STACKS/
{
	@samples[pid, execname, ustack(), stack()] = count();
}

profile:::profile-49
/SELECTED && (IDLE || pid != 0) && !KERNEL_STACKS/
{
	@user_samples[pid, execname, ustack()] = count();
}

profile:::profile-49
/SELECTED && (IDLE || pid != 0) && !USER_STACKS/
{
	@kernel_samples[pid, execname, stack()] = count();
}

END
{
	printa(@samples);
	printa(@user_samples);
	printa(@kernel_samples);
}
