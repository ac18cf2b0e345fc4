#!/usr/bin/env -S pydtrace -qs
/*
 * iosnoop.d: every block I/O request as it completes: who issued it, the
 * disk, read or write, the sector, the size, and the latency (from the
 * request's issue to the device to its completion; with -Q from the
 * moment the block layer took it in, queueing included).
 *
 * io:::start (block_rq_issue) runs in the issuing process for
 * synchronous I/O; io:::done (block_rq_complete) often runs in an
 * interrupt, so the issuer is remembered per request: a request is known
 * by its device and sector.
 *
 * The iosnoop command sets the inline values below from its options
 * (iosnoop --print-script shows the result); run as it is, this file
 * prints the I/O of every process but pydtrace itself.
 */

/* which processes: -p PID, a command (and its children), -n NAME */
inline int SELECTED = pid != $pid;
/* which disk: -d DISK (its name, as in /sys/class/block), "" for all */
inline string DISK = "";

BEGIN
{
	printf("%-18s %-14s %-7s %-9s %1s %-10s %7s %10s %10s\n", "TIME(ns)", "COMM", "PID",
	    "DISK", "T", "SECTOR", "BYTES", "QUE(ns)", "LAT(ns)");
}

/* the block layer takes the request in (its queueing starts) */
io:::wait-start
/DISK == "" || args[1]->dev_statname == DISK/
{
	queued[args[0]->b_edev, args[0]->b_blkno] = timestamp;
}

io:::start
/SELECTED && (DISK == "" || args[1]->dev_statname == DISK)/
{
	issued[args[0]->b_edev, args[0]->b_blkno] = timestamp;
	who[args[0]->b_edev, args[0]->b_blkno] = pid;
	comm[args[0]->b_edev, args[0]->b_blkno] = execname;
}

io:::done
/issued[args[0]->b_edev, args[0]->b_blkno]/
{
	this->q = queued[args[0]->b_edev, args[0]->b_blkno];
	this->i = issued[args[0]->b_edev, args[0]->b_blkno];
	printf("%-18d %-14s %-7d %-9s %1s %-10d %7d %10d %10d\n", timestamp,
	    comm[args[0]->b_edev, args[0]->b_blkno], who[args[0]->b_edev, args[0]->b_blkno],
	    args[1]->dev_statname, args[0]->b_flags & B_WRITE ? "W" : "R",
	    args[0]->b_blkno, args[0]->b_bcount, this->q ? this->i - this->q : 0,
	    timestamp - this->i);
	issued[args[0]->b_edev, args[0]->b_blkno] = 0;
	who[args[0]->b_edev, args[0]->b_blkno] = 0;
	comm[args[0]->b_edev, args[0]->b_blkno] = 0;
}

io:::done
{
	queued[args[0]->b_edev, args[0]->b_blkno] = 0;
}
