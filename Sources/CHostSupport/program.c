#define _GNU_SOURCE
#include "CHostSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* A command server's program (docs/servers.md). fork + execve rather than posix_spawn: the child must set
 * PR_SET_PDEATHSIG (so the program dies with its host even when the host is SIGKILLed), close every descriptor
 * but its three pipes (the program never sees the listening socket, the control channel or systemd's fds), reset
 * the signal mask and dispositions the host's runtime changed (NIO ignores SIGPIPE), and report why exec failed
 * (not found, not executable) instead of an exit status the host would have to guess from. Between fork and
 * execve the child calls only async-signal-safe functions. */
pid_t mcph_spawn_program(const char *path, char *const argv[], char *const envp[], const char *cwd, int in_fd,
                         int out_fd, int err_fd, int *err, int *stage) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        *err = errno;
        *stage = MCPH_SPAWN_FORK;
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        *err = errno;
        *stage = MCPH_SPAWN_FORK;
        close(report[0]);
        close(report[1]);
        return -1;
    }
    if (pid == 0) {
        int failed_stage = MCPH_SPAWN_SETUP;
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) goto fail;
        if (getppid() != parent) _exit(127); /* the host died before the line above */
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        for (int s = 1; s < NSIG; s++) {
            if (s == SIGKILL || s == SIGSTOP) continue;
            signal(s, SIG_DFL);
        }
        /* Move the pipes out of the way of 0..2 first, then onto them. */
        int fds[3] = {in_fd, out_fd, err_fd};
        for (int i = 0; i < 3; i++) {
            int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (moved < 0) goto fail;
            fds[i] = moved;
        }
        for (int i = 0; i < 3; i++) {
            if (dup2(fds[i], i) < 0) goto fail; /* dup2 clears close-on-exec on 0..2 */
        }
        /* Everything else closes at exec (report[1] too, which tells the parent that exec succeeded). */
        close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
        if (cwd && cwd[0] && chdir(cwd) != 0) {
            failed_stage = MCPH_SPAWN_CHDIR;
            goto fail;
        }
        execve(path, argv, envp);
        failed_stage = MCPH_SPAWN_EXEC;
    fail: {
        int msg[2] = {failed_stage, errno};
        ssize_t w = write(report[1], msg, sizeof msg);
        (void)w;
        _exit(127);
    }
    }
    close(report[1]);
    int msg[2];
    ssize_t n;
    do { n = read(report[0], msg, sizeof msg); } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof msg) {
        /* exec failed: the child has exited (status 127); reap it here so no zombie is left. */
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *stage = msg[0];
        *err = msg[1];
        return -1;
    }
    return pid;
}
