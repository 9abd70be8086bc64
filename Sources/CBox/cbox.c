/* cbox.c — the kernel mechanisms of the child's box (docs/security.md, "The box: what the child does to itself").
 * Landlock through raw syscalls (the machine's headers may predate the kernel's ABI), seccomp through
 * libseccomp, capabilities through capget/capset. */
#define _GNU_SOURCE

#include "cbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

int cbox_write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int e = errno;
    close(fd);
    if (n < 0)
        return e;
    return (size_t)n == len ? 0 : EIO;
}

int cbox_cgroup_member(const char *procs_file)
{
    int fd = open(procs_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    long self = (long)getpid();
    /* One id per line; a folder made for one replica holds one process (or a few, after a fork). */
    for (char *line = buf; *line != 0;) {
        char *end = strchr(line, '\n');
        if (end != NULL)
            *end = 0;
        if (*line != 0 && strtol(line, NULL, 10) == self)
            return 1;
        if (end == NULL)
            break;
        line = end + 1;
    }
    return 0;
}

int cbox_private_tmp(const char *folder, const char **failed_step)
{
    if (unshare(CLONE_NEWNS) != 0) {
        *failed_step = "unshare(CLONE_NEWNS)";
        return errno;
    }
    /* Nothing mounted from here on propagates back to the host's namespace. */
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) != 0) {
        *failed_step = "mount / MS_REC|MS_SLAVE";
        return errno;
    }
    if (mount(folder, "/tmp", NULL, MS_BIND | MS_REC, NULL) != 0) {
        *failed_step = "bind mount on /tmp";
        return errno;
    }
    return 0;
}

int cbox_set_limit(int which, uint64_t value)
{
    int resource;
    switch (which) {
    case CBOX_LIMIT_NOFILE: resource = RLIMIT_NOFILE; break;
    case CBOX_LIMIT_NPROC: resource = RLIMIT_NPROC; break;
    case CBOX_LIMIT_DATA: resource = RLIMIT_DATA; break;
    case CBOX_LIMIT_CORE: resource = RLIMIT_CORE; break;
    default: return EINVAL;
    }
    struct rlimit rl = {.rlim_cur = (rlim_t)value, .rlim_max = (rlim_t)value};
    return setrlimit(resource, &rl) == 0 ? 0 : errno;
}

int cbox_set_dumpable(int dumpable) { return prctl(PR_SET_DUMPABLE, dumpable ? 1 : 0, 0, 0, 0) == 0 ? 0 : errno; }

static int read_last_cap(void)
{
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[16] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    return atoi(buf);
}

/* Whether `cap` is in this thread's effective set (capget, version 3). */
static int has_effective(int cap)
{
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{0}};
    if (syscall(SYS_capget, &header, data) != 0)
        return 1; /* unknown: treat the EPERM as a failure */
    return (data[cap / 32].effective >> (cap % 32)) & 1;
}

int cbox_drop_bounding_and_ambient(int *last_cap)
{
    int last = read_last_cap();
    if (last < 0)
        last = CAP_LAST_CAP; /* /proc not readable: the header's value */
    *last_cap = last;
    for (int cap = 0; cap <= last; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
            /* EPERM without CAP_SETPCAP: a supervisor run as an ordinary user. Its child has no capability to
             * lose and no_new_privs (set later) stops exec from granting any, so the bounding set is left as it
             * is (docs/security.md). With CAP_SETPCAP an EPERM is a real failure. */
            if (errno == EPERM && prctl(PR_CAPBSET_READ, CAP_SETPCAP, 0, 0, 0) >= 0 && !has_effective(CAP_SETPCAP))
                break;
            return errno;
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return errno;
    return 0;
}

int cbox_drop_user(int64_t uid, int64_t gid, const char **failed_step)
{
    if (gid >= 0 || uid >= 0) {
        if (setgroups(0, NULL) != 0) {
            *failed_step = "setgroups(0)";
            return errno;
        }
    }
    if (gid >= 0 && setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) != 0) {
        *failed_step = "setresgid";
        return errno;
    }
    if (uid >= 0 && setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0) {
        *failed_step = "setresuid";
        return errno;
    }
    return 0;
}

int cbox_clear_capabilities(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    return syscall(SYS_capset, &hdr, data) == 0 ? 0 : errno;
}

int cbox_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : errno; }

int cbox_thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -errno;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Landlock (raw syscalls; constants up to ABI 7 defined here, the machine's header may be older).             */
/* ------------------------------------------------------------------------------------------------------------ */

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_RULE_NET_PORT 2

#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_REFER (1ULL << 13)
#define LL_FS_TRUNCATE (1ULL << 14)
#define LL_FS_IOCTL_DEV (1ULL << 15)
#define LL_FS_ABI1 ((1ULL << 13) - 1)
#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

int cbox_landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    if (abi < 0)
        return 0; /* ENOSYS: not built in; EOPNOTSUPP: built in, not enabled at boot */
    return (int)abi;
}

static uint64_t fs_handled(int abi)
{
    uint64_t m = LL_FS_ABI1;
    if (abi >= 2)
        m |= LL_FS_REFER;
    if (abi >= 3)
        m |= LL_FS_TRUNCATE;
    if (abi >= 5)
        m |= LL_FS_IOCTL_DEV;
    return m;
}

/* The accesses that apply to a file that is not a directory. */
#define LL_FS_FILE_MASK (LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)

static int add_path(int ruleset, const char *path, uint64_t access, char *err, size_t err_len)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0; /* nothing there: nothing to allow */
        int e = errno;
        snprintf(err, err_len, "cannot open %s", path);
        return e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        snprintf(err, err_len, "cannot stat %s", path);
        return e;
    }
    if (!S_ISDIR(st.st_mode))
        access &= LL_FS_FILE_MASK;
    struct ll_path_beneath_attr attr = {.allowed_access = access, .parent_fd = fd};
    long r = syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &attr, 0);
    int e = errno;
    close(fd);
    if (r != 0) {
        snprintf(err, err_len, "landlock_add_rule(%s)", path);
        return e;
    }
    return 0;
}

int cbox_landlock_apply(const char *const *read_paths, size_t nread, const char *const *write_paths, size_t nwrite,
                        int deny_tcp, int *abi_out, char *err, size_t err_len)
{
    int abi = cbox_landlock_abi();
    *abi_out = abi;
    if (abi <= 0)
        return 0;
    struct ll_ruleset_attr attr = {.handled_access_fs = fs_handled(abi)};
    size_t size = sizeof(uint64_t);
    if (abi >= 4) {
        size = 2 * sizeof(uint64_t);
        if (deny_tcp)
            attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
    }
    if (abi >= 6) {
        size = sizeof attr;
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
    }
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (ruleset < 0) {
        snprintf(err, err_len, "landlock_create_ruleset");
        return errno;
    }
    uint64_t read_access = LL_FS_EXECUTE | LL_FS_READ_FILE | LL_FS_READ_DIR;
    int e = 0;
    for (size_t i = 0; i < nread && e == 0; i++)
        e = add_path(ruleset, read_paths[i], read_access, err, err_len);
    for (size_t i = 0; i < nwrite && e == 0; i++)
        e = add_path(ruleset, write_paths[i], attr.handled_access_fs, err, err_len);
    if (e == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) {
        e = errno;
        snprintf(err, err_len, "landlock_restrict_self");
    }
    close(ruleset);
    return e;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* seccomp                                                                                                      */
/* ------------------------------------------------------------------------------------------------------------ */

static const char *const DENY[] = {
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root", "move_mount",
    "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "bpf", "perf_event_open", "keyctl", "add_key", "request_key",
    "reboot", "swapon", "swapoff", "unshare", "setns", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "open_by_handle_at", "name_to_handle_at", "quotactl", "quotactl_fd", "lookup_dcookie", "kcmp", "iopl",
    "ioperm", "syslog", "chroot", "fanotify_init", "vhangup", "uselib", "nfsservctl", "sethostname",
    "setdomainname", "pidfd_getfd",
    NULL,
};

const char *const *cbox_seccomp_deny_list(void) { return DENY; }

int cbox_syscall_number(const char *name)
{
    int nr = seccomp_syscall_resolve_name(name);
    return nr == __NR_SCMP_ERROR ? -1 : nr;
}

/* The trap handler's table: number -> name, filled before the filter is loaded and never changed after. */
#define MAX_TRAPPED 96
static int trapped_nr[MAX_TRAPPED];
static const char *trapped_name[MAX_TRAPPED];
static int trapped_count;

#if defined(__x86_64__) || defined(__aarch64__)
#define CBOX_CAN_TRAP 1
#else
#define CBOX_CAN_TRAP 0
#endif

static size_t append(char *buf, size_t at, size_t size, const char *s)
{
    while (*s && at < size)
        buf[at++] = *s++;
    return at;
}

static volatile sig_atomic_t json_lines;

void cbox_seccomp_json_lines(int on)
{
    json_lines = on ? 1 : 0;
}

static void on_sigsys(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    int saved = errno;
    ucontext_t *uc = context;
#if defined(__x86_64__)
    uc->uc_mcontext.gregs[REG_RAX] = -EPERM;
#elif defined(__aarch64__)
    uc->uc_mcontext.regs[0] = (unsigned long long)-EPERM;
#else
    (void)uc;
#endif
    const char *name = NULL;
    for (int i = 0; i < trapped_count; i++)
        if (trapped_nr[i] == info->si_syscall)
            name = trapped_name[i];
    char num[16];
    if (name == NULL) {
        int v = info->si_syscall, k = 0;
        char rev[16];
        do {
            rev[k++] = (char)('0' + v % 10);
            v /= 10;
        } while (v > 0 && k < 15);
        num[0] = '#';
        for (int i = 0; i < k; i++)
            num[1 + i] = rev[k - 1 - i];
        num[1 + k] = 0;
        name = num;
    }
    /* The host's log format (one JSON object per line under --log-format json, docs/supervisor.md "Logs"): no
     * time field, which the supervisor adds when it forwards the line. Names are [a-z0-9_#]: nothing to escape. */
    char line[256];
    size_t n;
    if (json_lines) {
        n = append(line, 0, sizeof line,
                   "{\"level\":\"warning\",\"source\":\"mcp-plugin-host\",\"event\":\"host.syscall_denied\","
                   "\"message\":\"box: denied syscall ");
        n = append(line, n, sizeof line, name);
        n = append(line, n, sizeof line, " (EPERM)\",\"syscall\":\"");
        n = append(line, n, sizeof line, name);
        n = append(line, n, sizeof line, "\"}\n");
    } else {
        n = append(line, 0, sizeof line, "mcp-plugin-host: box: denied syscall ");
        n = append(line, n, sizeof line, name);
        n = append(line, n, sizeof line, " (EPERM)\n");
    }
    ssize_t w = write(2, line, n);
    (void)w;
    errno = saved;
}

static int listed(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

static void remember(int nr, const char *name)
{
    for (int i = 0; i < trapped_count; i++)
        if (trapped_nr[i] == nr)
            return;
    if (trapped_count < MAX_TRAPPED) {
        trapped_nr[trapped_count] = nr;
        trapped_name[trapped_count] = name;
        trapped_count++;
    }
}

int cbox_seccomp_apply(const char *const *allow, size_t nallow, int network_none, int unix_sockets,
                       const char **mode, int *rules, char *err, size_t err_len)
{
    uint32_t deny = CBOX_CAN_TRAP ? SCMP_ACT_TRAP : SCMP_ACT_ERRNO(EPERM);
    *mode = CBOX_CAN_TRAP ? "trap" : "errno";
    *rules = 0;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == NULL) {
        snprintf(err, err_len, "seccomp_init");
        return ENOMEM;
    }
    /* Every thread, even one started before the box (the host starts none, but a plugin's constructor could). */
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc != 0) {
        snprintf(err, err_len, "seccomp_attr_set(TSYNC)");
        goto out;
    }
#define RULE(nr, name, ...)                                                                                    \
    do {                                                                                                       \
        rc = seccomp_rule_add(ctx, deny, (nr), __VA_ARGS__);                                                   \
        if (rc != 0) {                                                                                         \
            snprintf(err, err_len, "seccomp_rule_add(%s)", (name));                                            \
            goto out;                                                                                          \
        }                                                                                                      \
        remember((nr), (name));                                                                                \
        (*rules)++;                                                                                            \
    } while (0)

    for (size_t i = 0; DENY[i] != NULL; i++) {
        if (listed(DENY[i], allow, nallow))
            continue;
        int nr = seccomp_syscall_resolve_name(DENY[i]);
        if (nr == __NR_SCMP_ERROR || nr < 0)
            continue; /* not a call of this architecture */
        RULE(nr, DENY[i], 0);
    }
    if (!listed("clone", allow, nallow)) {
        /* clone with any namespace flag; clone3 passes its flags in memory a filter cannot read, so it gets
         * ENOSYS and the C library falls back to clone. */
        static const uint64_t ns[] = {CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
                                      CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            RULE(SCMP_SYS(clone), "clone", 1, SCMP_A0(SCMP_CMP_MASKED_EQ, ns[i], ns[i]));
    }
    if (!listed("clone3", allow, nallow)) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
        if (rc != 0) {
            snprintf(err, err_len, "seccomp_rule_add(clone3)");
            goto out;
        }
        (*rules)++;
    }
    if (!listed("personality", allow, nallow)) {
        /* Anything but the default persona (0). libseccomp takes one comparison per argument in a rule, so the
         * query form (0xffffffff) is denied too. */
        RULE(SCMP_SYS(personality), "personality", 1, SCMP_A0(SCMP_CMP_NE, 0));
    }
    if (!listed("socket", allow, nallow)) {
        RULE(SCMP_SYS(socket), "socket", 1, SCMP_A0(SCMP_CMP_EQ, AF_PACKET));
        RULE(SCMP_SYS(socket), "socket", 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW));
        /* Path sockets are not Landlock's (ABI 7): without this a plugin running as root could connect to any
         * stream socket that trusts uid 0 (the control socket, D-Bus, systemd's). Datagram sockets stay: the C
         * library's syslog(3) needs one (libdispatch logs through it), and the datagram services trust no uid
         * (journald and /dev/log take log lines; sd_notify is checked against the unit's main pid).
         * socketpair(2) stays allowed. */
        if (!unix_sockets) {
            RULE(SCMP_SYS(socket), "socket", 2, SCMP_A0(SCMP_CMP_EQ, AF_UNIX),
                 SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_STREAM));
            RULE(SCMP_SYS(socket), "socket", 2, SCMP_A0(SCMP_CMP_EQ, AF_UNIX),
                 SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_SEQPACKET));
        }
        if (network_none) {
            RULE(SCMP_SYS(socket), "socket", 1, SCMP_A0(SCMP_CMP_EQ, AF_INET));
            RULE(SCMP_SYS(socket), "socket", 1, SCMP_A0(SCMP_CMP_EQ, AF_INET6));
        }
    }
#undef RULE
    if (CBOX_CAN_TRAP) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSYS, &sa, NULL) != 0) {
            int e = errno;
            snprintf(err, err_len, "sigaction(SIGSYS)");
            seccomp_release(ctx);
            return e;
        }
    }
    rc = seccomp_load(ctx);
    if (rc != 0)
        snprintf(err, err_len, "seccomp_load");
out:
    seccomp_release(ctx);
    return rc < 0 ? -rc : rc;
}

const char *cbox_errno_name(int e)
{
    const char *n = strerrorname_np(e);
    return n != NULL ? n : "EUNKNOWN";
}
