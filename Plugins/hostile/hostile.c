/*
 * hostile.c — a plugin that tries what a box (docs/security.md) must stop. Test use only.
 *
 * Every tool makes one attempt and returns a result whose first text block is exactly "ok" (the attempt
 * succeeded) or "errno=<NAME>" (it failed with that errno, e.g. "errno=EACCES"); a second text block says what
 * happened in words. exec_setuid also returns "denied" when the program ran but did not gain root.
 * The tools never return isError for a refused attempt: a refusal is the answer the tests look for.
 *
 *   read_shadow                    open+read /etc/shadow
 *   read_parent_mem {pid?}         open /proc/PID/mem and read one byte of its first readable mapping
 *                                  (PID defaults to $MCP_SUPERVISOR_PID, then the parent)
 *   read_parent_environ {pid?}     read /proc/PID/environ
 *   read_file {path}               open+read
 *   write_file {path}              open(O_WRONLY|O_CREAT|O_TRUNC) and write "hostile\n"
 *   write_own_so {path?}           open this .so (dladdr, or path) for writing and write nothing
 *   fork_bomb {max?}               fork until failure or max (default 256) children, kill and reap them
 *   alloc {mib}                    malloc and touch every page
 *   ptrace_pid {pid}               PTRACE_ATTACH, wait for the stop, PTRACE_DETACH
 *   kill_pid {pid}                 kill(pid, 0)
 *   connect_unix {path, send?}     connect an AF_UNIX stream socket ("@name": the abstract namespace); with
 *                                  send, write it and a newline and answer with the first line read back
 *   raw_socket                     socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)
 *   packet_socket                  socket(AF_PACKET, SOCK_RAW, 0)
 *   tcp_connect {host, port}       socket(AF_INET) + connect to an IPv4 address
 *   tcp_bind {port}                socket(AF_INET) + bind 127.0.0.1:port (0: any port)
 *   exec_setuid {path?}            start a setuid-root program (/usr/bin/passwd) and read its euid: "ok" when it
 *                                  is 0, "denied" when the setuid bit gave nothing
 *   mount_tmpfs {path}             mount a tmpfs on path (then unmount it at once)
 *   unshare_user                   unshare(CLONE_NEWUSER)
 *   status                         the Uid, Gid, CapEff, CapBnd, CapPrm, NoNewPrivs, Seccomp lines of
 *                                  /proc/self/status, one text block
 *
 * Build: cc -shared -fPIC -O2 -I Sources/PluginABI/include -o libhostile.so Plugins/hostile/hostile.c
 */
#define _GNU_SOURCE

#include "mcp_plugin.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY(s) ("" s ""), (sizeof(s) - 1)

typedef struct hostile {
    const mcpp_host *host;
} hostile;

static const char *errno_name(int e)
{
    const char *n = strerrorname_np(e);
    return n != NULL ? n : "EUNKNOWN";
}

/* Ends the call with "ok" or "errno=NAME" and a detail line. */
static void answer(const mcpp_host *h, mcpp_call *call, int err, const char *fmt, ...)
{
    char head[64], detail[600];
    int n = err == 0 ? snprintf(head, sizeof head, "ok") : snprintf(head, sizeof head, "errno=%s", errno_name(err));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    if ((size_t)m >= sizeof detail)
        m = sizeof detail - 1;
    mcpp_status st = h->add_text(call, head, (size_t)n);
    if (st == MCPP_OK)
        st = h->add_text(call, detail, (size_t)m);
    h->finish(call, st == MCPP_OK || st == MCPP_E_CANCELLED ? MCPP_OUTCOME_OK : MCPP_OUTCOME_INTERNAL, NULL, 0);
}

static void answer_text(const mcpp_host *h, mcpp_call *call, const char *head, const char *detail)
{
    mcpp_status st = h->add_text(call, head, strlen(head));
    if (st == MCPP_OK)
        st = h->add_text(call, detail, strlen(detail));
    h->finish(call, st == MCPP_OK || st == MCPP_E_CANCELLED ? MCPP_OUTCOME_OK : MCPP_OUTCOME_INTERNAL, NULL, 0);
}

static void bad_arg(const mcpp_host *h, mcpp_call *call, const char *key)
{
    char msg[128];
    int n = snprintf(msg, sizeof msg, "argument '%s' is missing or has the wrong type", key);
    h->finish(call, MCPP_OUTCOME_INVALID_PARAMS, msg, (size_t)n);
}

/* A string argument as a NUL-terminated copy in buf; 0 on success. */
static int arg_cstr(const mcpp_host *h, mcpp_call *call, const char *key, size_t key_len, char *buf, size_t size)
{
    const char *p;
    size_t len;
    if (h->arg_string(call, key, key_len, &p, &len) != MCPP_OK || len >= size)
        return -1;
    memcpy(buf, p, len);
    buf[len] = 0;
    return 0;
}

/* The pid argument, or $MCP_SUPERVISOR_PID, or the parent. */
static pid_t target_pid(const mcpp_host *h, mcpp_call *call)
{
    int64_t pid;
    if (h->arg_int(call, KEY("pid"), &pid) == MCPP_OK)
        return (pid_t)pid;
    const char *env = getenv("MCP_SUPERVISOR_PID");
    if (env != NULL && atoi(env) > 0)
        return (pid_t)atoi(env);
    return getppid();
}

/* Reads up to size bytes of path; returns the count or -errno. */
static ssize_t read_path(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, size);
    int e = errno;
    close(fd);
    return n < 0 ? -e : n;
}

static void try_read(const mcpp_host *h, mcpp_call *call, const char *path)
{
    char buf[256];
    ssize_t n = read_path(path, buf, sizeof buf);
    if (n < 0)
        answer(h, call, (int)-n, "reading %s failed: %s", path, strerror((int)-n));
    else
        answer(h, call, 0, "read %zd bytes of %s", n, path);
}

static void tool_read_shadow(const mcpp_host *h, mcpp_call *call) { try_read(h, call, "/etc/shadow"); }

static void tool_read_file(const mcpp_host *h, mcpp_call *call)
{
    char path[4096];
    if (arg_cstr(h, call, KEY("path"), path, sizeof path) != 0)
        return bad_arg(h, call, "path");
    try_read(h, call, path);
}

static void tool_read_parent_environ(const mcpp_host *h, mcpp_call *call)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)target_pid(h, call));
    try_read(h, call, path);
}

static void tool_read_parent_mem(const mcpp_host *h, mcpp_call *call)
{
    pid_t pid = target_pid(h, call);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return answer(h, call, e, "opening %s failed: %s", path, strerror(e));
    }
    /* The first readable mapping, from /proc/PID/maps. */
    char maps[64], text[4096];
    snprintf(maps, sizeof maps, "/proc/%d/maps", (int)pid);
    ssize_t n = read_path(maps, text, sizeof text - 1);
    if (n < 0) {
        close(fd);
        return answer(h, call, (int)-n, "opened %s but reading %s failed: %s", path, maps, strerror((int)-n));
    }
    text[n] = 0;
    unsigned long start = 0;
    for (char *line = text; line != NULL && *line;) {
        unsigned long a, b;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3 && perms[0] == 'r') {
            start = a;
            break;
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    char byte;
    ssize_t r = pread(fd, &byte, 1, (off_t)start);
    int e = errno;
    close(fd);
    if (r != 1)
        return answer(h, call, r < 0 ? e : EIO, "reading %s at 0x%lx failed", path, start);
    answer(h, call, 0, "read one byte of %s at 0x%lx", path, start);
}

static void tool_write_file(const mcpp_host *h, mcpp_call *call)
{
    char path[4096];
    if (arg_cstr(h, call, KEY("path"), path, sizeof path) != 0)
        return bad_arg(h, call, "path");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        return answer(h, call, e, "opening %s for writing failed: %s", path, strerror(e));
    }
    ssize_t n = write(fd, "hostile\n", 8);
    int e = errno;
    close(fd);
    if (n != 8)
        return answer(h, call, n < 0 ? e : EIO, "writing %s failed", path);
    answer(h, call, 0, "wrote 8 bytes into %s", path);
}

static void tool_write_own_so(const mcpp_host *h, mcpp_call *call)
{
    char path[4096];
    if (arg_cstr(h, call, KEY("path"), path, sizeof path) != 0) {
        Dl_info info;
        if (dladdr((void *)tool_write_own_so, &info) == 0 || info.dli_fname == NULL)
            return answer(h, call, ENOENT, "dladdr found no file for this plugin");
        snprintf(path, sizeof path, "%s", info.dli_fname);
    }
    /* O_APPEND and a write of nothing: the permission is what is tested, the file stays as it is. */
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return answer(h, call, e, "opening %s for writing failed: %s", path, strerror(e));
    }
    ssize_t n = write(fd, "", 0);
    int e = errno;
    close(fd);
    if (n < 0)
        return answer(h, call, e, "writing %s failed", path);
    answer(h, call, 0, "opened %s for writing", path);
}

static void tool_fork_bomb(const mcpp_host *h, mcpp_call *call)
{
    int64_t max = 256;
    if (h->arg_int(call, KEY("max"), &max) != MCPP_OK)
        max = 256;
    if (max < 1 || max > 100000)
        max = 256;
    pid_t *kids = calloc((size_t)max, sizeof *kids);
    if (kids == NULL)
        return answer(h, call, ENOMEM, "no memory for the child list");
    int64_t count = 0;
    int err = 0;
    while (count < max) {
        pid_t pid = fork();
        if (pid < 0) {
            err = errno;
            break;
        }
        if (pid == 0) {
            for (;;)
                pause();
        }
        kids[count++] = pid;
    }
    for (int64_t i = 0; i < count; i++)
        kill(kids[i], SIGKILL);
    for (int64_t i = 0; i < count; i++)
        while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR) {
        }
    free(kids);
    if (err != 0)
        answer(h, call, err, "forked=%lld, then fork failed: %s; all children killed and reaped", (long long)count,
               strerror(err));
    else
        answer(h, call, 0, "forked=%lld (the limit asked for); all children killed and reaped", (long long)count);
}

static void tool_alloc(const mcpp_host *h, mcpp_call *call)
{
    int64_t mib;
    if (h->arg_int(call, KEY("mib"), &mib) != MCPP_OK || mib < 1 || mib > (1 << 20))
        return bad_arg(h, call, "mib");
    size_t size = (size_t)mib << 20;
    char *p = malloc(size);
    if (p == NULL) {
        int e = errno;
        return answer(h, call, e, "malloc(%lld MiB) failed: %s", (long long)mib, strerror(e));
    }
    long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < size; i += (size_t)page)
        ((volatile char *)p)[i] = 1;
    free(p);
    answer(h, call, 0, "allocated and touched %lld MiB", (long long)mib);
}

static void tool_ptrace_pid(const mcpp_host *h, mcpp_call *call)
{
    int64_t pid;
    if (h->arg_int(call, KEY("pid"), &pid) != MCPP_OK || pid <= 0)
        return bad_arg(h, call, "pid");
    if (ptrace(PTRACE_ATTACH, (pid_t)pid, NULL, NULL) != 0) {
        int e = errno;
        return answer(h, call, e, "PTRACE_ATTACH %lld failed: %s", (long long)pid, strerror(e));
    }
    int status;
    while (waitpid((pid_t)pid, &status, __WALL) < 0 && errno == EINTR) {
    }
    ptrace(PTRACE_DETACH, (pid_t)pid, NULL, NULL);
    answer(h, call, 0, "attached to %lld and detached", (long long)pid);
}

static void tool_kill_pid(const mcpp_host *h, mcpp_call *call)
{
    int64_t pid;
    if (h->arg_int(call, KEY("pid"), &pid) != MCPP_OK || pid <= 0)
        return bad_arg(h, call, "pid");
    if (kill((pid_t)pid, 0) != 0) {
        int e = errno;
        return answer(h, call, e, "kill(%lld, 0) failed: %s", (long long)pid, strerror(e));
    }
    answer(h, call, 0, "kill(%lld, 0) succeeded: the process could be signalled", (long long)pid);
}

static void tool_connect_unix(const mcpp_host *h, mcpp_call *call)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (arg_cstr(h, call, KEY("path"), addr.sun_path, sizeof addr.sun_path) != 0)
        return bad_arg(h, call, "path");
    char path_shown[sizeof addr.sun_path];
    memcpy(path_shown, addr.sun_path, sizeof path_shown);
    socklen_t len = sizeof addr;
    if (addr.sun_path[0] == '@') { /* the abstract namespace: "@name" */
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(addr.sun_path));
        addr.sun_path[0] = 0;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        return answer(h, call, e, "socket(AF_UNIX) failed: %s", strerror(e));
    }
    int r = connect(fd, (struct sockaddr *)&addr, len);
    int e = errno;
    if (r != 0) {
        close(fd);
        return answer(h, call, e, "connect(%s) failed: %s", path_shown, strerror(e));
    }
    char request[512];
    if (arg_cstr(h, call, KEY("send"), request, sizeof request - 1) != 0) {
        close(fd);
        return answer(h, call, 0, "connected to %s", path_shown);
    }
    strcat(request, "\n");
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char reply[400];
    size_t got = 0;
    if (write(fd, request, strlen(request)) == (ssize_t)strlen(request)) {
        while (got < sizeof reply - 1) {
            ssize_t n = read(fd, reply + got, sizeof reply - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            if (memchr(reply, '\n', got) != NULL)
                break;
        }
    }
    close(fd);
    reply[got] = 0;
    char *nl = strchr(reply, '\n');
    if (nl != NULL)
        *nl = 0;
    answer(h, call, 0, "connected to %s; reply: %s", path_shown, reply);
}

static void try_socket(const mcpp_host *h, mcpp_call *call, int domain, int type, int proto, const char *what)
{
    int fd = socket(domain, type | SOCK_CLOEXEC, proto);
    if (fd < 0) {
        int e = errno;
        return answer(h, call, e, "socket(%s) failed: %s", what, strerror(e));
    }
    close(fd);
    answer(h, call, 0, "opened socket(%s)", what);
}

static void tool_raw_socket(const mcpp_host *h, mcpp_call *call)
{
    try_socket(h, call, AF_INET, SOCK_RAW, IPPROTO_ICMP, "AF_INET, SOCK_RAW, IPPROTO_ICMP");
}

static void tool_packet_socket(const mcpp_host *h, mcpp_call *call)
{
    try_socket(h, call, AF_PACKET, SOCK_RAW, 0, "AF_PACKET, SOCK_RAW");
}

static void tool_tcp_connect(const mcpp_host *h, mcpp_call *call)
{
    char host[64];
    int64_t port;
    if (arg_cstr(h, call, KEY("host"), host, sizeof host) != 0)
        return bad_arg(h, call, "host");
    if (h->arg_int(call, KEY("port"), &port) != MCPP_OK || port <= 0 || port > 65535)
        return bad_arg(h, call, "port");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return bad_arg(h, call, "host");
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        return answer(h, call, e, "socket(AF_INET) failed: %s", strerror(e));
    }
    int r = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    int e = errno;
    close(fd);
    if (r != 0)
        return answer(h, call, e, "connect(%s:%lld) failed: %s", host, (long long)port, strerror(e));
    answer(h, call, 0, "connected to %s:%lld", host, (long long)port);
}

static void tool_tcp_bind(const mcpp_host *h, mcpp_call *call)
{
    int64_t port = 0;
    if (h->arg_int(call, KEY("port"), &port) != MCPP_OK || port < 0 || port > 65535)
        port = 0;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        return answer(h, call, e, "socket(AF_INET) failed: %s", strerror(e));
    }
    int r = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    int e = errno;
    close(fd);
    if (r != 0)
        return answer(h, call, e, "bind(127.0.0.1:%lld) failed: %s", (long long)port, strerror(e));
    answer(h, call, 0, "bound 127.0.0.1:%lld", (long long)port);
}

/* Starts a setuid-root program (path, default /usr/bin/passwd, which asks for a password on stdin and waits),
 * reads its effective uid once it printed something or exited (both after the exec): from its output when it
 * prints "euid=N" (a test helper; Landlock hides other processes' /proc entries), else from /proc/PID/status;
 * then kills and reaps it. "ok": it ran with euid 0; "denied": it ran with our euid (no_new_privs ignores the setuid bit). */
static void tool_exec_setuid(const mcpp_host *h, mcpp_call *call)
{
    char prog[4096];
    if (arg_cstr(h, call, KEY("path"), prog, sizeof prog) != 0)
        snprintf(prog, sizeof prog, "/usr/bin/passwd");
    int out[2], in[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(in, O_CLOEXEC) != 0) {
        int e = errno;
        return answer(h, call, e, "pipe failed");
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(out[0]), close(out[1]), close(in[0]), close(in[1]);
        return answer(h, call, e, "fork failed: %s", strerror(e));
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        char *argv[] = {prog, NULL};
        char *envp[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", NULL};
        execve(argv[0], argv, envp);
        int e = errno;
        char msg[64];
        int n = snprintf(msg, sizeof msg, "execve-errno=%s", errno_name(e));
        if (write(1, msg, (size_t)n) < 0) {
        }
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    char text[512];
    ssize_t n;
    while ((n = read(out[0], text, sizeof text - 1)) < 0 && errno == EINTR) {
    }
    text[n > 0 ? n : 0] = 0;
    char path[64], status[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    ssize_t sn = read_path(path, status, sizeof status - 1);
    status[sn > 0 ? sn : 0] = 0;
    kill(pid, SIGKILL);
    close(in[1]);
    close(out[0]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    const char *e = strstr(text, "execve-errno=");
    if (e != NULL) {
        char head[64];
        snprintf(head, sizeof head, "errno=%s", e + strlen("execve-errno="));
        return answer_text(h, call, head, "execve of the setuid program failed");
    }
    const char *uid = strstr(status, "\nUid:");
    unsigned ruid = 0, euid = 0;
    const char *said = strstr(text, "euid=");
    if (said != NULL && sscanf(said, "euid=%u", &euid) == 1) {
        ruid = (unsigned)getuid(); /* the program reported its own euid */
    } else if (uid == NULL || sscanf(uid, "\nUid:\t%u\t%u", &ruid, &euid) != 2) {
        return answer(h, call, sn < 0 ? (int)-sn : EIO, "could not read the Uid line of %s", path);
    }
    char detail[4200];
    snprintf(detail, sizeof detail, "%s (setuid root) ran with uid %u euid %u", prog, ruid, euid);
    answer_text(h, call, euid == 0 ? "ok" : "denied", detail);
}

static void tool_mount_tmpfs(const mcpp_host *h, mcpp_call *call)
{
    char path[4096];
    if (arg_cstr(h, call, KEY("path"), path, sizeof path) != 0)
        return bad_arg(h, call, "path");
    if (mount("hostile", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k") != 0) {
        int e = errno;
        return answer(h, call, e, "mount(tmpfs on %s) failed: %s", path, strerror(e));
    }
    umount2(path, MNT_DETACH);
    answer(h, call, 0, "mounted a tmpfs on %s (and unmounted it)", path);
}

static void tool_unshare_user(const mcpp_host *h, mcpp_call *call)
{
    /* In a forked child, so that a success does not change the host. */
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        return answer(h, call, e, "fork failed: %s", strerror(e));
    }
    if (pid == 0)
        _exit(unshare(CLONE_NEWUSER) == 0 ? 0 : errno);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int e = WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
    answer(h, call, e, e == 0 ? "unshare(CLONE_NEWUSER) succeeded" : "unshare(CLONE_NEWUSER) failed");
}

static void tool_status(const mcpp_host *h, mcpp_call *call)
{
    char text[8192];
    ssize_t n = read_path("/proc/self/status", text, sizeof text - 1);
    if (n < 0)
        return answer(h, call, (int)-n, "reading /proc/self/status failed");
    text[n] = 0;
    static const char *const keys[] = {"Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:",
                                       "CapAmb:", "NoNewPrivs:", "Seccomp:"};
    char out[1024];
    size_t len = 0;
    for (char *line = text; line != NULL && *line;) {
        char *end = strchr(line, '\n');
        size_t l = end != NULL ? (size_t)(end - line) : strlen(line);
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (strncmp(line, keys[k], strlen(keys[k])) == 0 && len + l + 1 < sizeof out) {
                memcpy(out + len, line, l);
                len += l;
                out[len++] = '\n';
            }
        line = end != NULL ? end + 1 : NULL;
    }
    h->finish(call, h->add_text(call, out, len) == MCPP_OK ? MCPP_OUTCOME_OK : MCPP_OUTCOME_INTERNAL, NULL, 0);
}

#define NO_ARGS "{\"type\":\"object\",\"properties\":{}}"
#define PID_ARG "{\"type\":\"object\",\"properties\":{\"pid\":{\"type\":\"integer\"}}}"
#define PID_REQ "{\"type\":\"object\",\"properties\":{\"pid\":{\"type\":\"integer\"}},\"required\":[\"pid\"]}"
#define PATH_REQ "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}},\"required\":[\"path\"]}"
#define PATH_OPT "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}}}"

typedef struct tool_entry {
    mcpp_tool decl;
    void (*run)(const mcpp_host *h, mcpp_call *call);
} tool_entry;

#define TOOL(n, desc, schema, fn)                                                                              \
    {{.struct_size = sizeof(mcpp_tool), .name = MCPP_LIT(n), .description = MCPP_LIT(desc),                    \
      .input_schema = MCPP_LIT(schema)},                                                                       \
     fn}

static const tool_entry TOOLS[] = {
    TOOL("read_shadow", "Reads /etc/shadow.", NO_ARGS, tool_read_shadow),
    TOOL("read_parent_mem", "Reads one byte of /proc/PID/mem (default: the supervisor or the parent).", PID_ARG,
         tool_read_parent_mem),
    TOOL("read_parent_environ", "Reads /proc/PID/environ (default: the supervisor or the parent).", PID_ARG,
         tool_read_parent_environ),
    TOOL("read_file", "Reads a file.", PATH_REQ, tool_read_file),
    TOOL("write_file", "Creates or truncates a file and writes into it.", PATH_REQ, tool_write_file),
    TOOL("write_own_so", "Opens this plugin's .so for writing.", PATH_OPT, tool_write_own_so),
    TOOL("fork_bomb", "Forks until failure (or max children), then kills them.",
         "{\"type\":\"object\",\"properties\":{\"max\":{\"type\":\"integer\"}}}", tool_fork_bomb),
    TOOL("alloc", "Allocates MiB and touches every page.",
         "{\"type\":\"object\",\"properties\":{\"mib\":{\"type\":\"integer\"}},\"required\":[\"mib\"]}", tool_alloc),
    TOOL("ptrace_pid", "Attaches to a process with ptrace and detaches.", PID_REQ, tool_ptrace_pid),
    TOOL("kill_pid", "Sends signal 0 to a process.", PID_REQ, tool_kill_pid),
    TOOL("connect_unix", "Connects to a unix stream socket (and sends a line).",
         "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"send\":{\"type\":\"string\"}},"
         "\"required\":[\"path\"]}",
         tool_connect_unix),
    TOOL("raw_socket", "Opens a raw IPv4 ICMP socket.", NO_ARGS, tool_raw_socket),
    TOOL("packet_socket", "Opens an AF_PACKET socket.", NO_ARGS, tool_packet_socket),
    TOOL("tcp_connect", "Connects to an IPv4 host and port.",
         "{\"type\":\"object\",\"properties\":{\"host\":{\"type\":\"string\"},\"port\":{\"type\":\"integer\"}},"
         "\"required\":[\"host\",\"port\"]}",
         tool_tcp_connect),
    TOOL("tcp_bind", "Binds a TCP socket on 127.0.0.1.",
         "{\"type\":\"object\",\"properties\":{\"port\":{\"type\":\"integer\"}}}", tool_tcp_bind),
    TOOL("exec_setuid", "Starts a setuid-root program (default /usr/bin/passwd) and reports its euid.", PATH_OPT,
         tool_exec_setuid),
    TOOL("mount_tmpfs", "Mounts a tmpfs on a folder (and unmounts it).", PATH_REQ, tool_mount_tmpfs),
    TOOL("unshare_user", "Creates a user namespace in a child.", NO_ARGS, tool_unshare_user),
    TOOL("status", "Returns the credential lines of /proc/self/status.", NO_ARGS, tool_status),
};
#define TOOL_COUNT (sizeof TOOLS / sizeof TOOLS[0])

static void hostile_call_tool(void *instance, mcpp_call *call, const char *name, size_t name_len)
{
    const mcpp_host *h = ((hostile *)instance)->host;
    for (size_t i = 0; i < TOOL_COUNT; i++) {
        const mcpp_str *n = &TOOLS[i].decl.name;
        if (name_len == n->len && memcmp(name, n->ptr, n->len) == 0) {
            TOOLS[i].run(h, call);
            return;
        }
    }
    h->finish(call, MCPP_OUTCOME_NOT_FOUND, "unknown tool", 12);
}

static mcpp_status hostile_create(const mcpp_host *host, const char *config, size_t config_len,
                                  const mcpp_writer *err, void **instance)
{
    (void)config;
    (void)config_len;
    hostile *self = calloc(1, sizeof *self);
    if (self == NULL) {
        err->write(err->ctx, "out of memory", 13);
        return MCPP_E_FAILED;
    }
    self->host = host;
    *instance = self;
    return MCPP_OK;
}

static void hostile_destroy(void *instance) { free(instance); }

static mcpp_status hostile_describe(void *instance, const mcpp_registry *reg)
{
    (void)instance;
    for (size_t i = 0; i < TOOL_COUNT; i++) {
        mcpp_status st = reg->add_tool(reg->ctx, &TOOLS[i].decl);
        if (st != MCPP_OK)
            return st;
    }
    return MCPP_OK;
}

static const mcpp_plugin HOSTILE_PLUGIN = {
    .struct_size = sizeof(mcpp_plugin),
    .threading = MCPP_THREADING_CONCURRENT,
    .name = MCPP_LIT("hostile"),
    .version = MCPP_LIT("1.0.0"),
    .title = MCPP_LIT("Hostile test plugin"),
    .instructions = MCPP_LIT("Test use only: every tool tries something a box must stop."),
    .create = hostile_create,
    .destroy = hostile_destroy,
    .describe = hostile_describe,
    .call_tool = hostile_call_tool,
};

MCPP_DEFINE_ENTRY(HOSTILE_PLUGIN);
