"""The process-information types of D's library: psinfo_t, lwpsinfo_t and
timestruc_t, as curpsinfo, curlwpsinfo and the proc provider's args[] see
them, cpuinfo_t, as curcpu and the sched provider's args[] see it
(cpu_info, a kernel pointer in dtrace, stays 0 here: one node, one chip),
and io.d's fileinfo_t, as fds[] gives it (one per open file descriptor).

The member layouts are those dtrace for Linux declares (Solaris' /proc
structures, kept for compatibility). They are written here as D, data only:
the checker checks them on first use (checker.library_types), so a program
that never names them pays nothing at start-up, and the parser knows their
names as types.
"""

from __future__ import annotations

TYPE_NAMES = ("timestruc_t", "lwpsinfo_t", "psinfo_t", "cpuinfo_t", "fileinfo_t")
STRUCT_TAGS = (
    "struct timestruc",
    "struct lwpsinfo",
    "struct psinfo",
    "struct cpuinfo",
    "struct fileinfo",
)

# io.d's fileinfo_t: fds[]'s element here, the io provider's args[2] there
# (probes/providers/io.py, checked at its own strsize)
FILEINFO = """
typedef struct fileinfo {
    string fi_name;
    string fi_dirname;
    string fi_pathname;
    loff_t fi_offset;
    string fi_fs;
    string fi_mount;
    int fi_oflags;
} fileinfo_t;
"""

SOURCE = (
    """
typedef struct timestruc {
    time_t tv_sec;
    long tv_nsec;
} timestruc_t;

typedef struct lwpsinfo {
    int pr_flag;
    int pr_lwpid;
    uintptr_t pr_addr;
    uintptr_t pr_wchan;
    char pr_stype;
    char pr_state;
    char pr_sname;
    char pr_nice;
    short pr_syscall;
    char pr_oldpri;
    char pr_cpu;
    int pr_pri;
    ushort_t pr_pctcpu;
    ushort_t pr_pad;
    timestruc_t pr_start;
    timestruc_t pr_time;
    char pr_clname[8];
    char pr_name[16];
    int pr_onpro;
    int pr_bindpro;
    int pr_bindpset;
    int pr_lgrp;
    int pr_filler[4];
} lwpsinfo_t;

typedef struct psinfo {
    int pr_flag;
    int pr_nlwp;
    pid_t pr_pid;
    pid_t pr_ppid;
    pid_t pr_pgid;
    pid_t pr_sid;
    uid_t pr_uid;
    uid_t pr_euid;
    uid_t pr_gid;
    uid_t pr_egid;
    uintptr_t pr_addr;
    size_t pr_size;
    size_t pr_rssize;
    size_t pr_pad1;
    uintptr_t pr_ttydev;
    ushort_t pr_pctcpu;
    ushort_t pr_pctmem;
    timestruc_t pr_start;
    timestruc_t pr_time;
    timestruc_t pr_ctime;
    char pr_fname[16];
    char pr_psargs[80];
    int pr_wstat;
    int pr_argc;
    uintptr_t pr_argv;
    uintptr_t pr_envp;
    char pr_dmodel;
    char pr_pad2[3];
    int pr_taskid;
    int pr_projid;
    int pr_nzomb;
    int pr_poolid;
    int pr_zoneid;
    id_t pr_contract;
    int pr_filler[1];
    lwpsinfo_t pr_lwp;
} psinfo_t;

typedef struct cpuinfo {
    int cpu_id;
    int cpu_pset;
    int cpu_chip;
    int cpu_lgrp;
    uintptr_t cpu_info;
} cpuinfo_t;

"""
    + FILEINFO
)


# dtrace's translators from the kernel's task to the process-information
# types (`xlate<psinfo_t>(curthread)`), written against the kernel's own
# struct task_struct (BTF), so checked only when a program asks for such a
# translation (checker.Declarations._kernel_translators): a kernel without
# BTF, or one whose task_struct lacks a member used here, has none.
# Numbers: PIDTYPE_PGID 2 and PIDTYPE_SID 3 (since Linux 4.19), the task
# state bits TASK_INTERRUPTIBLE 1, TASK_UNINTERRUPTIBLE 2, __TASK_STOPPED 4,
# __TASK_TRACED 8, exit states EXIT_DEAD 16, EXIT_ZOMBIE 32; PR_STOPPED 1,
# PR_MODEL_LP64 2; pr_state SSLEEP 1, SRUN 2, SZOMB 3, SSTOP 4.
KERNEL_TRANSLATORS = """
translator psinfo_t < struct task_struct *T > {
    pr_nlwp = T->signal->nr_threads;
    pr_pid = T->tgid;
    pr_ppid = T->real_parent->tgid;
    pr_pgid = T->signal->pids[2]->numbers[0].nr;
    pr_sid = T->signal->pids[3]->numbers[0].nr;
    pr_uid = T->cred->uid.val;
    pr_euid = T->cred->euid.val;
    pr_gid = T->cred->gid.val;
    pr_egid = T->cred->egid.val;
    pr_addr = (uintptr_t)T;
    pr_ttydev = (uintptr_t)T->signal->tty;
    pr_fname = T->comm;
    pr_dmodel = 2;
};

translator lwpsinfo_t < struct task_struct *T > {
    pr_flag = (T->__state & 4) ? 1 : 0;
    pr_lwpid = T->pid;
    pr_addr = (uintptr_t)T;
    pr_state = (T->exit_state & 48) ? 3 : (T->__state & 12) ? 4 : (T->__state & 3) ? 1 : 2;
    pr_sname = (T->exit_state & 48) ? 'Z' : (T->__state & 12) ? 'T' : (T->__state & 3) ? 'S' : 'R';
    pr_pri = T->prio;
    pr_name = T->comm;
    pr_onpro = T->thread_info.cpu;
};
"""


# The members dtrace's own translators (procfs.d) give no conversion: reading
# one through curpsinfo or curlwpsinfo (or a provider's translated args[]) is
# D_XLATE_NOCONV. pr_psargs, pr_argc, pr_argv and pr_envp, which legacy
# DTrace translated and the engines fill, are kept.
UNTRANSLATED = {
    "psinfo": frozenset(
        "pr_flag pr_size pr_rssize pr_pad1 pr_pctcpu pr_pctmem pr_start pr_time pr_ctime"
        " pr_pad2 pr_filler pr_lwp".split()
    ),
    "lwpsinfo": frozenset(
        "pr_nice pr_syscall pr_oldpri pr_cpu pr_pctcpu pr_pad pr_start pr_time pr_clname"
        " pr_bindpro pr_bindpset pr_lgrp pr_filler".split()
    ),
}
