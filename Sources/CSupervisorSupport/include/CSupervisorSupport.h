#ifndef CSUPERVISORSUPPORT_H
#define CSUPERVISORSUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Spawns `path` with posix_spawn: a new session (so the child leads its own process group), every signal
 * reset to its default disposition and an empty signal mask (the supervisor ignores SIGTERM/SIGHUP itself),
 * the environment exactly `envp`, and exactly the descriptors of the map: fd_src[i] becomes fd_dst[i] in the
 * child; every other descriptor is closed. Returns 0 and the pid and a pidfd, or an errno value. */
int mcps_spawn(const char *path, char *const argv[], char *const envp[], const int *fd_src, const int *fd_dst,
               int nfds, pid_t *pid_out, int *pidfd_out);

/* Non-blocking reap of the child behind a pidfd: 1 when it exited (code/status filled as waitid's si_code and
 * si_status), 0 when it is still running, -1 on error (errno). */
int mcps_reap(int pidfd, int *code_out, int *status_out);

/* Sends a signal through a pidfd (no pid reuse race). Returns 0 or an errno value. */
int mcps_signal(int pidfd, int sig);

/* Makes this process the reaper of orphaned descendants. Returns 0 or an errno value. */
int mcps_set_subreaper(void);

/* Reaps, without blocking, every exited child whose process group is `pgid` (orphaned grandchildren of a host
 * that were re-parented to us). Returns how many were reaped. */
int mcps_reap_group(pid_t pgid);

/* Reaps, without blocking, every exited child of this process that is not one of the `count` pids in `tracked`
 * (the hosts, which their pidfds reap): orphans re-parented to us that left their host's process group, or
 * that were still dying when the group was reaped. Returns how many were reaped. */
int mcps_reap_orphans(const pid_t *tracked, int count);

/* At the end of a shutdown, every host reaped: kills and reaps every child still here (orphans re-parented to
 * us), waiting at most timeout_ms. Returns how many were reaped. */
int mcps_reap_all(int timeout_ms);

/* Creates a TCP listening socket (CLOEXEC, SO_REUSEADDR) bound to address:port with the backlog.
 * Returns 0 and the fd, or an errno value (EADDRINUSE when the port is taken). */
int mcps_listen_tcp(const char *address, int port, int backlog, int *fd_out);

/* A connected AF_UNIX stream socketpair, both ends CLOEXEC. Returns 0 or an errno value. */
int mcps_socketpair(int fds[2]);
/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC: the new descriptor, or -1 with errno set.
int mcps_accept_nonblocking(int listen_fd);
/// send with MSG_NOSIGNAL (a peer that went away is EPIPE, never SIGPIPE): bytes written, or -1 with errno.
long mcps_send_nosignal(int fd, const void *bytes, unsigned long count);

/* A pipe, both ends CLOEXEC, the read end non-blocking. Returns 0 or an errno value. */
int mcps_pipe(int fds[2]);

/* Sets O_NONBLOCK. */
int mcps_set_nonblocking(int fd);

/* Writes the whole buffer to a path atomically: a temporary file in the same folder, fsync, rename over the
 * target, fsync of the folder. A crash at any point leaves either the old or the new file. Returns 0 or errno. */
int mcps_write_atomic(const char *path, const void *data, size_t len, int mode);

/* Current CLOCK_MONOTONIC time in nanoseconds. */
uint64_t mcps_monotonic_ns(void);

/* Number of open file descriptors of this process (from /proc/self/fd), or -1. */
int mcps_count_fds(void);

/* A non-blocking TCP connect to address:port (numeric IPv4 or IPv6). Returns 0 (connected) or EINPROGRESS with
 * *fd_out set (close-on-exec, non-blocking, TCP_NODELAY), or an errno. */
int mcps_connect_tcp(const char *address, int port, int *fd_out);
/* SO_ERROR of a socket: 0 once a non-blocking connect succeeded, else its errno. */
int mcps_socket_error(int fd);

/* The kernel's Landlock ABI version (landlock_create_ruleset(NULL, 0, VERSION)); 0: no Landlock. */
int mcps_landlock_abi(void);

#endif
