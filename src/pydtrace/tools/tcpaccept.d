#!/usr/bin/env -S pydtrace -qs
/*
 * tcpaccept.d: every passive TCP open a process takes (accept(2) and
 * accept4(2) returning an IPv4 or IPv6 TCP connection): which process, the
 * remote address and port, and the local address and port it came in on.
 *
 * Two halves, joined by the remote address and port:
 *  - the kernel completes the handshake before accept() sees the
 *    connection: sock:inet_sock_set_state SYN_RECV -> ESTABLISHED gives both
 *    ends. It fires in whatever context the SYN's ACK arrived in (another
 *    process, an interrupt), so it cannot say who accepts.
 *  - accept()'s return, in the accepting process, gives the remote end (the
 *    sockaddr the kernel wrote). A process that passes no sockaddr
 *    (accept(fd, NULL, NULL)) is not shown: its peer is unknown here.
 *
 * Runs on the eBPF engine only: the handshake's end happens inside the
 * kernel's TCP code, which a ptrace tracer cannot see.
 *
 * The tcpaccept command sets the inline values below from its options
 * (tcpaccept --print-script shows the result); run as it is, this file
 * traces every process but pydtrace itself.
 */

/* which processes: -p PID, a command (and its children), -n NAME */
inline int SELECTED = pid != $pid;
/* -P PORT: this local port only (0: every port) */
inline int PORT = 0;

inline int IPPROTO_TCP = 6;
inline int TCP_ESTABLISHED = 1;
inline int TCP_SYN_RECV = 3;
inline int TCP_CLOSE = 7;

BEGIN
{
	printf("%-20s %-7s %-16s %2s %-16s %5s %-16s %5s\n", "TIME", "PID", "COMM", "IP",
	    "RADDR", "RPORT", "LADDR", "LPORT");
}

/* the handshake completed: the local end, by the remote end */
sdt:sock::inet_sock_set_state
/args->protocol == IPPROTO_TCP && args->oldstate == TCP_SYN_RECV &&
    args->newstate == TCP_ESTABLISHED/
{
	this->raddr = args->family == AF_INET ? inet_ntoa((ipaddr_t *)args->daddr) :
	    inet_ntoa6((struct in6_addr *)args->daddr_v6);
	laddr[this->raddr, args->dport] = args->family == AF_INET ?
	    inet_ntoa((ipaddr_t *)args->saddr) : inet_ntoa6((struct in6_addr *)args->saddr_v6);
	lport[this->raddr, args->dport] = args->sport;
}

/* a connection closed: its entry, if never accepted, goes */
sdt:sock::inet_sock_set_state
/args->protocol == IPPROTO_TCP && args->newstate == TCP_CLOSE/
{
	this->raddr = args->family == AF_INET ? inet_ntoa((ipaddr_t *)args->daddr) :
	    inet_ntoa6((struct in6_addr *)args->daddr_v6);
	laddr[this->raddr, args->dport] = 0;
	lport[this->raddr, args->dport] = 0;
}

syscall::accept:entry, syscall::accept4:entry
/SELECTED/
{
	self->sa = arg1;
}

/* the remote end, from the sockaddr accept() wrote */
syscall::accept:return, syscall::accept4:return
/self->sa && (int)arg0 >= 0/
{
	this->family = *(uint16_t *)copyin(self->sa, 2);
}

syscall::accept:return, syscall::accept4:return
/self->sa && (int)arg0 >= 0 && this->family == AF_INET/
{
	this->sin = (char *)copyin(self->sa, 16);
	this->raddr = inet_ntoa((ipaddr_t *)(this->sin + 4));
	this->rport = ntohs(*(uint16_t *)(this->sin + 2));
}

syscall::accept:return, syscall::accept4:return
/self->sa && (int)arg0 >= 0 && this->family == AF_INET6/
{
	this->sin = (char *)copyin(self->sa, 28);
	this->raddr = inet_ntoa6((struct in6_addr *)(this->sin + 8));
	this->rport = ntohs(*(uint16_t *)(this->sin + 2));
}

syscall::accept:return, syscall::accept4:return
/self->sa && (int)arg0 >= 0 && (this->family == AF_INET || this->family == AF_INET6) &&
    lport[this->raddr, this->rport] && (PORT == 0 || lport[this->raddr, this->rport] == PORT)/
{
	printf("%-20Y %-7d %-16s %2d %-16s %5d %-16s %5d\n", walltimestamp, pid, execname,
	    this->family == AF_INET ? 4 : 6, this->raddr, this->rport,
	    laddr[this->raddr, this->rport], lport[this->raddr, this->rport]);
	laddr[this->raddr, this->rport] = 0;
	lport[this->raddr, this->rport] = 0;
}

syscall::accept:return, syscall::accept4:return
/self->sa/
{
	self->sa = 0;
}
