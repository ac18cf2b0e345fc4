#!/usr/bin/env -S pydtrace -qs
/*
 * biolatency.d: block I/O latency as a power-of-two histogram: from a
 * request's issue to the device (io:::start, block_rq_issue; with -Q
 * from the moment the block layer took it in, io:::wait-start) to its
 * completion (io:::done), in microseconds (-m: milliseconds), for all
 * disks together or (-D) one histogram per disk.
 *
 * A request is known by its device and sector from start to done: done
 * often runs in an interrupt, not in the thread that issued it.
 *
 * The biolatency command sets the inline values below from its options
 * and, for an interval, adds a clause printing the histogram every
 * interval (biolatency --print-script shows the result); run as it is,
 * this file prints one histogram in microseconds at Ctrl-C.
 */

/* which disk: -d DISK (its name, as in /sys/class/block), "" for all */
inline string DISK = "";
/* -Q: count the time queued in the kernel (from io:::wait-start) */
inline int QUEUED = 0;
/* -D: one histogram per disk */
inline int PER_DISK = 0;
/* -m: milliseconds, not microseconds */
inline int UNIT = 1000;

BEGIN
{
	printf("Tracing block device I/O... Hit Ctrl-C to end.\n");
}

io:::wait-start
/QUEUED && (DISK == "" || args[1]->dev_statname == DISK)/
{
	start[args[0]->b_edev, args[0]->b_blkno] = timestamp;
}

io:::start
/!QUEUED && (DISK == "" || args[1]->dev_statname == DISK)/
{
	start[args[0]->b_edev, args[0]->b_blkno] = timestamp;
}

io:::done
/(this->start = start[args[0]->b_edev, args[0]->b_blkno]) && !PER_DISK/
{
	@lat = quantize((timestamp - this->start) / UNIT);
}

io:::done
/this->start && PER_DISK/
{
	@disk_lat[args[1]->dev_statname] = quantize((timestamp - this->start) / UNIT);
}

io:::done
/this->start/
{
	start[args[0]->b_edev, args[0]->b_blkno] = 0;
}

END
{
	printa(@lat);
	printa(@disk_lat);
}
