#!/usr/bin/env -S pydtrace -qs
/*
 * tcplife.d: every TCP connection's life, printed when it closes (IPv4 and
 * IPv6): the process, both ends, the bytes sent and received, and how long
 * it lived (from connect()'s SYN, or from the handshake's end for a
 * connection accepted, to CLOSE).
 *
 * sock:inet_sock_set_state fires on each state change, often in another
 * context than the owner's (a packet's arrival). The owner is taken from
 * the changes only the owner makes: connect() (SYN_SENT) and close() or
 * shutdown() (FIN_WAIT1, LAST_ACK). The bytes are counted by
 * sock:sock_send_length and sock:sock_recv_length, which fire in the
 * process that sends or receives (send/recv/write/read and the like on the
 * socket). A connection no selected process ever connected or closed is not
 * shown.
 *
 * Runs on the eBPF engine only: the state changes happen inside the
 * kernel's TCP code, which a ptrace tracer cannot see.
 *
 * The tcplife command sets the inline values below from its options
 * (tcplife --print-script shows the result); run as it is, this file
 * traces every process but pydtrace itself.
 */

/* which processes: -p PID, a command (and its children), -n NAME */
inline int SELECTED = pid != $pid;

inline int IPPROTO_TCP = 6;
inline int TCP_ESTABLISHED = 1;
inline int TCP_SYN_SENT = 2;
inline int TCP_FIN_WAIT1 = 4;
inline int TCP_CLOSE = 7;
inline int TCP_LAST_ACK = 9;

BEGIN
{
	printf("%-20s %-7s %-16s %-16s %5s %-16s %5s %10s %10s %s\n", "TIME", "PID", "COMM",
	    "LADDR", "LPORT", "RADDR", "RPORT", "TX", "RX", "NS");
}

/* born: connect()'s SYN, or the handshake's end for an accepted connection */
sdt:sock::inet_sock_set_state
/args->protocol == IPPROTO_TCP && !birth[args->skaddr] &&
    (args->newstate == TCP_SYN_SENT || args->newstate == TCP_ESTABLISHED)/
{
	birth[args->skaddr] = timestamp;
}

/* the owner, from the changes only the owner makes */
sdt:sock::inet_sock_set_state
/args->protocol == IPPROTO_TCP && birth[args->skaddr] && SELECTED &&
    (args->newstate == TCP_SYN_SENT || args->newstate == TCP_FIN_WAIT1 ||
    args->newstate == TCP_LAST_ACK)/
{
	owner[args->skaddr] = pid;
	name[args->skaddr] = execname;
}

sdt:sock::sock_send_length
/birth[args->sk] && args->ret > 0/
{
	tx[args->sk] += args->ret;
}

sdt:sock::sock_recv_length
/birth[args->sk] && args->ret > 0/
{
	rx[args->sk] += args->ret;
}

sdt:sock::inet_sock_set_state
/args->protocol == IPPROTO_TCP && args->newstate == TCP_CLOSE && owner[args->skaddr]/
{
	printf("%-20Y %-7d %-16s %-16s %5d %-16s %5d %10d %10d %d\n", walltimestamp,
	    owner[args->skaddr], name[args->skaddr],
	    args->family == AF_INET ? inet_ntoa((ipaddr_t *)args->saddr) :
	    inet_ntoa6((struct in6_addr *)args->saddr_v6), args->sport,
	    args->family == AF_INET ? inet_ntoa((ipaddr_t *)args->daddr) :
	    inet_ntoa6((struct in6_addr *)args->daddr_v6), args->dport,
	    tx[args->skaddr], rx[args->skaddr], timestamp - birth[args->skaddr]);
}

sdt:sock::inet_sock_set_state
/args->protocol == IPPROTO_TCP && args->newstate == TCP_CLOSE && birth[args->skaddr]/
{
	birth[args->skaddr] = 0;
	owner[args->skaddr] = 0;
	name[args->skaddr] = 0;
	tx[args->skaddr] = 0;
	rx[args->skaddr] = 0;
}
