#!/usr/bin/env -S pydtrace -qs
/*
 * tcpconnect.d: every active TCP open (connect(2) on a TCP socket, IPv4 and
 * IPv6): which process, from which local address to which remote address
 * and port. A connection refused or timed out is an attempt all the same.
 *
 * The kernel tracepoint sock:inet_sock_set_state fires when a TCP socket
 * changes state; CLOSE -> SYN_SENT is connect() sending its SYN, in the
 * connecting process (pid and execname are its own). The local port is not
 * chosen yet at that moment (args->sport is 0), so it is not shown.
 *
 * Runs on the eBPF engine only: the state change happens inside the
 * kernel's TCP code, which a ptrace tracer cannot see.
 *
 * The tcpconnect command sets the inline values below from its options
 * (tcpconnect --print-script shows the result); run as it is, this file
 * traces every process but pydtrace itself.
 */

/* which processes: -p PID, a command (and its children), -n NAME */
inline int SELECTED = pid != $pid;
/* -P PORT: this remote port only (0: every port) */
inline int PORT = 0;

inline int IPPROTO_TCP = 6;
inline int TCP_SYN_SENT = 2;
inline int TCP_CLOSE = 7;

BEGIN
{
	printf("%-20s %-7s %-16s %2s %-16s %-16s %5s\n", "TIME", "PID", "COMM", "IP", "SADDR",
	    "DADDR", "DPORT");
}

sdt:sock::inet_sock_set_state
/args->protocol == IPPROTO_TCP && args->oldstate == TCP_CLOSE &&
    args->newstate == TCP_SYN_SENT && (PORT == 0 || args->dport == PORT) && SELECTED/
{
	printf("%-20Y %-7d %-16s %2d %-16s %-16s %5d\n", walltimestamp, pid, execname,
	    args->family == AF_INET ? 4 : 6,
	    args->family == AF_INET ? inet_ntoa((ipaddr_t *)args->saddr) :
	    inet_ntoa6((struct in6_addr *)args->saddr_v6),
	    args->family == AF_INET ? inet_ntoa((ipaddr_t *)args->daddr) :
	    inet_ntoa6((struct in6_addr *)args->daddr_v6),
	    args->dport);
}
