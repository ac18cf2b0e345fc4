"""The process-information types of D's library: psinfo_t, lwpsinfo_t and
timestruc_t, as curpsinfo, curlwpsinfo and the proc provider's args[] see
them, and cpuinfo_t, as curcpu and the sched provider's args[] see it
(cpu_info, a kernel pointer in dtrace, stays 0 here: one node, one chip).

The member layouts are those dtrace for Linux declares (Solaris' /proc
structures, kept for compatibility). They are written here as D, data only:
the checker checks them on first use (checker.library_types), so a program
that never names them pays nothing at start-up, and the parser knows their
names as types.
"""

from __future__ import annotations

TYPE_NAMES = ("timestruc_t", "lwpsinfo_t", "psinfo_t", "cpuinfo_t")
STRUCT_TAGS = ("struct timestruc", "struct lwpsinfo", "struct psinfo", "struct cpuinfo")

SOURCE = """
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
