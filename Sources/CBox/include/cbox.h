/* cbox.h — the kernel mechanisms of the child's box (docs/security.md), for Sources/PluginHost/Box.
 * Every function returns 0 or a positive errno; the Swift side names the step. Linux only. */
#ifndef CBOX_H
#define CBOX_H

#include <stddef.h>
#include <stdint.h>

/* Writes text into an existing file (cgroup.procs). */
int cbox_write_file(const char *path, const char *text);

/* 1 if this process is listed in the cgroup file `procs_file` (cgroup.procs or tasks): the supervisor wrote its
 * pid while it started, so joining (a cgroup migration, which waits for an RCU grace period) is already done. */
int cbox_cgroup_member(const char *procs_file);

/* unshare(CLONE_NEWNS), / made recursively slave, folder bind-mounted on /tmp. *failed_step names the call. */
int cbox_private_tmp(const char *folder, const char **failed_step);

#define CBOX_LIMIT_NOFILE 0
#define CBOX_LIMIT_NPROC 1
#define CBOX_LIMIT_DATA 2
#define CBOX_LIMIT_CORE 3
/* soft = hard = value. */
int cbox_set_limit(int which, uint64_t value);
int cbox_set_dumpable(int dumpable);

/* Every capability out of the bounding set (0..cap_last_cap) and the ambient set cleared. Needs CAP_SETPCAP:
 * run it before the uid changes. *last_cap receives cap_last_cap. */
int cbox_drop_bounding_and_ambient(int *last_cap);
/* setgroups(0), setresgid, setresuid (a negative id: keep). */
int cbox_drop_user(int64_t uid, int64_t gid, const char **failed_step);
/* capset: effective, permitted and inheritable empty. */
int cbox_clear_capabilities(void);
int cbox_no_new_privs(void);
/* The number of threads of this process (from /proc/self/task), or -errno. */
int cbox_thread_count(void);

/* The Landlock ABI version, 0 when the kernel has none (ENOSYS/EOPNOTSUPP). */
int cbox_landlock_abi(void);
/* Restricts this process: read+execute beneath read_paths, everything beneath write_paths; deny_tcp: TCP bind
 * and connect denied (ABI >= 4); scopes signal and abstract unix sockets (ABI >= 6). Missing paths are skipped.
 * On failure err names the path or call. *abi receives the ABI used (0: nothing restricted). */
int cbox_landlock_apply(const char *const *read_paths, size_t nread, const char *const *write_paths, size_t nwrite,
                        int deny_tcp, int *abi, char *err, size_t err_len);

/* The syscall number of a name on this architecture, or -1. */
int cbox_syscall_number(const char *name);
/* The default deny list (names), NULL-terminated. */
const char *const *cbox_seccomp_deny_list(void);
/* Loads the filter (libseccomp): default allow; each denied call traps (SIGSYS), the handler returns EPERM and
 * writes one stderr line naming the call (where the architecture is supported; else plain EPERM). allow names
 * are removed from the deny list (the caller checked them with cbox_syscall_number). *mode receives "trap" or
 * "errno"; *rules the number of rules. */
int cbox_seccomp_apply(const char *const *allow, size_t nallow, int network_none, int unix_sockets,
                       const char **mode, int *rules, char *err, size_t err_len);

/* The denied-call line as one JSON object (the host's --log-format json) instead of text. */
void cbox_seccomp_json_lines(int on);

/* "EPERM" for EPERM. */
const char *cbox_errno_name(int e);

#endif
