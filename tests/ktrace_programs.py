"""C programs the ktrace tests of both engines record."""

IO = """
    #include <fcntl.h>
    #include <string.h>
    #include <sys/socket.h>
    #include <sys/uio.h>
    #include <unistd.h>
    int main(int argc, char **argv) {
        char buf[64];
        int fd = open(argv[1], O_RDONLY);
        int n = read(fd, buf, sizeof buf);
        write(1, buf, n);
        close(fd);
        open("/nonexistent/file", O_RDONLY);
        struct iovec iov[2] = {{"ab", 2}, {"cde", 3}};
        writev(1, iov, 2);
        int sv[2];
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
        struct msghdr m = {0};
        struct iovec one = {"xyz", 3};
        m.msg_iov = &one;
        m.msg_iovlen = 1;
        sendmsg(sv[0], &m, 0);
        return 7;
    }
"""

# IO and more: datagram messages, a caught signal, a child that exits 3
BOTH = (
    IO.replace(
        "#include <fcntl.h>", "#define _GNU_SOURCE\n    #include <fcntl.h>\n    #include <signal.h>"
    )
    .replace(
        "#include <unistd.h>",
        "#include <sys/wait.h>\n    #include <unistd.h>\n    static void on_usr1(int s) { (void)s; }",
    )
    .replace(
        "        return 7;",
        """        int dg[2];
        socketpair(AF_UNIX, SOCK_DGRAM, 0, dg);
        struct iovec two[2] = {{"one", 3}, {"-1", 2}}, three = {"two", 3};
        struct mmsghdr out[2] = {0}, in[2] = {0};
        out[0].msg_hdr.msg_iov = two;
        out[0].msg_hdr.msg_iovlen = 2;
        out[1].msg_hdr.msg_iov = &three;
        out[1].msg_hdr.msg_iovlen = 1;
        sendmmsg(dg[0], out, 2, 0);
        char r1[16], r2[16];
        struct iovec ra = {r1, sizeof r1}, rb = {r2, sizeof r2};
        in[0].msg_hdr.msg_iov = &ra;
        in[0].msg_hdr.msg_iovlen = 1;
        in[1].msg_hdr.msg_iov = &rb;
        in[1].msg_hdr.msg_iovlen = 1;
        recvmmsg(dg[1], in, 2, 0, 0);
        signal(SIGUSR1, on_usr1);
        kill(getpid(), SIGUSR1);
        pid_t c = fork();
        if (c == 0) { write(1, "child\\n", 6); _exit(3); }
        int st;
        waitpid(c, &st, 0);
        return 7;""",
    )
)
