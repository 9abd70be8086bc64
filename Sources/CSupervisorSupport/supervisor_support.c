#define _GNU_SOURCE
#include "CSupervisorSupport.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int mcps_spawn(const char *path, char *const argv[], char *const envp[], const int *fd_src, const int *fd_dst,
               int nfds, pid_t *pid_out, int *pidfd_out) {
    int rc;
    int high[16];
    if (nfds < 0 || nfds > 16) return EINVAL;
    int max_dst = 2;
    for (int i = 0; i < nfds; i++) if (fd_dst[i] > max_dst) max_dst = fd_dst[i];
    /* Copies above every target, so no dup2 of the map clobbers a source the map still needs (and src == dst,
     * where dup2 would keep FD_CLOEXEC set, cannot happen). */
    for (int i = 0; i < nfds; i++) {
        high[i] = fcntl(fd_src[i], F_DUPFD_CLOEXEC, max_dst + 1);
        if (high[i] < 0) {
            rc = errno;
            for (int j = 0; j < i; j++) close(high[j]);
            return rc;
        }
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    for (int i = 0; i < nfds; i++) posix_spawn_file_actions_adddup2(&fa, high[i], fd_dst[i]);
    posix_spawn_file_actions_addclosefrom_np(&fa, max_dst + 1);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
    pid_t pid = 0;
    rc = posix_spawn(&pid, path, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    for (int i = 0; i < nfds; i++) close(high[i]);
    if (rc != 0) return rc;
    /* Nothing else reaps our children, so the pid cannot be reused before this pidfd exists. */
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) {
        rc = errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return rc;
    }
    fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    *pid_out = pid;
    *pidfd_out = pidfd;
    return 0;
}

int mcps_reap(int pidfd, int *code_out, int *status_out) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | WNOHANG) != 0) return -1;
    if (info.si_pid == 0) return 0;
    *code_out = info.si_code;
    *status_out = info.si_status;
    return 1;
}

int mcps_signal(int pidfd, int sig) {
    if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) != 0) return errno;
    return 0;
}

int mcps_set_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? 0 : errno; }

int mcps_reap_group(pid_t pgid) {
    int n = 0;
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_PGID, (id_t)pgid, &info, WEXITED | WNOHANG) != 0) break;
        if (info.si_pid == 0) break;
        n++;
    }
    return n;
}

static int is_tracked(pid_t pid, const pid_t *tracked, int count) {
    for (int i = 0; i < count; i++)
        if (tracked[i] == pid) return 1;
    return 0;
}

/* A process's state letter and parent from /proc/PID/stat; 0 when it is gone. */
static int read_state(pid_t pid, char *state, int *ppid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0) return 0;
    buf[len] = 0;
    /* pid (comm) state ppid ...: comm may hold anything, so parse after the last ')'. */
    char *rpar = strrchr(buf, ')');
    return rpar && sscanf(rpar + 1, " %c %d", state, ppid) == 2;
}

/* The slow way: every process in /proc whose parent is us and that is a zombie, except the tracked ones. */
static int reap_orphans_by_scan(const pid_t *tracked, int count) {
    pid_t self = getpid();
    int n = 0;
    DIR *proc = opendir("/proc");
    if (!proc) return 0;
    struct dirent *e;
    while ((e = readdir(proc))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        pid_t pid = (pid_t)atoi(e->d_name);
        if (is_tracked(pid, tracked, count)) continue;
        char state = 0;
        int ppid = 0;
        if (!read_state(pid, &state, &ppid)) continue;
        if (ppid != self || state != 'Z') continue;
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG) == 0 && info.si_pid != 0) n++;
    }
    closedir(proc);
    return n;
}

/* Reaps zombie children that are not tracked (orphans re-parented to us as subreaper). The kernel names one
 * waitable child without reaping it (WNOWAIT); an untracked one is reaped and the next one asked for. Only when
 * the first waitable child is a tracked one (its pidfd event not handled yet, so it hides the others) does this
 * fall back to scanning /proc: a scan reads every process's stat, about 1 ms with a few hundred processes, which
 * is too slow for the path from a child's exit to its replacement (measured: kill -> exec p50 +0.9 ms). */
int mcps_reap_orphans(const pid_t *tracked, int count) {
    int n = 0;
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return n;
        if (is_tracked(info.si_pid, tracked, count)) return n + reap_orphans_by_scan(tracked, count);
        siginfo_t reaped;
        memset(&reaped, 0, sizeof reaped);
        if (waitid(P_PID, (id_t)info.si_pid, &reaped, WEXITED | WNOHANG) != 0 || reaped.si_pid == 0) return n;
        n++;
    }
}

/* A numeric IPv4 or IPv6 address and a port as a socket address; returns the family, or -1. */
static int parse_address(const char *address, int port, struct sockaddr_storage *ss, socklen_t *len) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, address, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof *in4;
        return AF_INET;
    }
    if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof *in6;
        return AF_INET6;
    }
    return -1;
}

int mcps_listen_tcp(const char *address, int port, int backlog, int *fd_out) {
    struct sockaddr_storage ss;
    socklen_t len;
    int family = parse_address(address, port, &ss, &len);
    if (family < 0) return EINVAL;
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, backlog) != 0) {
        int rc = errno;
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

int mcps_accept_nonblocking(int listen_fd) {
    return accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

long mcps_send_nosignal(int fd, const void *bytes, unsigned long count) {
    return (long)send(fd, bytes, count, MSG_NOSIGNAL);
}

int mcps_socketpair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0 ? 0 : errno;
}

int mcps_pipe(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) != 0) return errno;
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    return 0;
}

int mcps_set_nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return errno;
    return 0;
}

int mcps_write_atomic(const char *path, const void *data, size_t len, int mode) {
    char tmp[4096], dir[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp) return ENAMETOOLONG;
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        if (slash == dir) slash[1] = 0; else *slash = 0;
    } else {
        snprintf(dir, sizeof dir, ".");
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return errno;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int rc = errno;
            close(fd);
            unlink(tmp);
            return rc;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        int rc = errno;
        close(fd);
        unlink(tmp);
        return rc;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int rc = errno;
        unlink(tmp);
        return rc;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

uint64_t mcps_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int mcps_count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

int mcps_connect_tcp(const char *address, int port, int *fd_out) {
    struct sockaddr_storage ss;
    socklen_t len;
    int family = parse_address(address, port, &ss, &len);
    if (family < 0) return EINVAL;
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        rc = errno;
        if (rc != EINPROGRESS) {
            close(fd);
            return rc;
        }
    }
    *fd_out = fd;
    return rc;
}

int mcps_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

int mcps_landlock_abi(void) {
#ifdef SYS_landlock_create_ruleset
    long v = syscall(SYS_landlock_create_ruleset, NULL, 0, 1U /* LANDLOCK_CREATE_RULESET_VERSION */);
    return v > 0 ? (int)v : 0;
#else
    return 0;
#endif
}

/* The last step of a shutdown, once every host is reaped: any descendant still here (an orphan of a host that
 * left its process group, or one still dying of its group's SIGKILL) is re-parented to us as subreaper; it is
 * killed and reaped, so nothing the servers started outlives the supervisor, not even as a zombie handed to
 * init. Waits at most `timeout_ms`. Returns how many were reaped. */
int mcps_reap_all(int timeout_ms) {
    int n = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        /* Kill every live child (a zombie ignores it). */
        pid_t self = getpid();
        DIR *proc = opendir("/proc");
        if (proc) {
            struct dirent *e;
            while ((e = readdir(proc))) {
                if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
                pid_t pid = (pid_t)atoi(e->d_name);
                char state = 0;
                int ppid = 0;
                if (read_state(pid, &state, &ppid) && ppid == self && state != 'Z') kill(pid, SIGKILL);
            }
            closedir(proc);
        }
        for (;;) {
            siginfo_t info;
            memset(&info, 0, sizeof info);
            if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG) != 0) return n; /* ECHILD: none left */
            if (info.si_pid == 0) break;
            n++;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= timeout_ms) return n;
        struct timespec pause = {0, 2 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}
