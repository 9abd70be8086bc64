#ifndef CHOSTSUPPORT_H
#define CHOSTSUPPORT_H

#include <stddef.h>
#include <stdint.h>

/* Installs handlers for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT that write one line naming the plugin
 * file, the signal and what the calling thread was doing, then _exit(70). `plugin_path` is copied. */
void mcph_install_crash_handler(const char *plugin_path);

/* Gives the calling thread an alternate signal stack, so a stack overflow is reported too. Call once per thread
 * that runs plugin code. */
void mcph_thread_init(void);

/* Sets what the calling thread is doing ("tools/call echo"), shown if it crashes; len 0 clears it. */
void mcph_set_activity(const char *text, size_t len);

/* Result of mcph_elf_check. */
#define MCPH_ELF_OK 0
#define MCPH_ELF_NOT_ELF 1
#define MCPH_ELF_WRONG_CLASS 2
#define MCPH_ELF_WRONG_ENDIAN 3
#define MCPH_ELF_WRONG_MACHINE 4
#define MCPH_ELF_NOT_SHARED 5
#define MCPH_ELF_READ_ERROR 6

/* Reads the ELF header from `fd` (with pread, offset 0) and checks that it is a shared object for this machine.
 * On failure writes a human-readable reason into `reason`. */
int mcph_elf_check(int fd, char *reason, size_t reason_len);

/* The machine name for an ELF e_machine value ("x86-64", "aarch64", ...). */
const char *mcph_elf_machine_name(uint16_t machine);

/* The cells behind the metrics extension's series (mcp_plugin.h, "org.mcp-supervisor.metrics/1"): the host
 * registers a series in Swift (names, labels, limits) and hands the plugin this cell; the plugin's add, set and
 * observe run here, lock-free, from any thread. A cell is never freed (series live as long as the process). */
struct mcpp_metric;

#define MCPH_METRIC_COUNTER 0
#define MCPH_METRIC_GAUGE 1
#define MCPH_METRIC_HISTOGRAM 2
#define MCPH_METRIC_MAX_BUCKETS 32

/* A new cell of `kind`; for a histogram, `bounds` (count finite increasing upper bounds, at most 32) are copied
 * and one more bucket counts what is above the last. NULL when out of memory. */
struct mcpp_metric *mcph_metric_new(int32_t kind, const double *bounds, size_t count);

/* The functions the extension table points to; they return an mcpp_status (0 ok, 3 invalid). */
int32_t mcph_metric_add(struct mcpp_metric *metric, double delta);
int32_t mcph_metric_set(struct mcpp_metric *metric, double value);
int32_t mcph_metric_observe(struct mcpp_metric *metric, double value);

/* Reads a cell: a counter's or gauge's value, or a histogram's sum (into *value) and its non-cumulative bucket
 * counts (into buckets, which has room for count + 1 of them: the bounds given to mcph_metric_new, then +Inf). */
void mcph_metric_read(const struct mcpp_metric *metric, double *value, uint64_t *buckets, size_t room);

#endif

/* What mcph_elf_inspect found in a shared object, read from the file without loading it. */
#define MCPH_MAX_NEEDED 64
typedef struct mcph_elf_info {
    int elf_class;          /* 32 or 64; 0 when not ELF */
    int little_endian;
    uint16_t machine;       /* e_machine */
    uint16_t type;          /* e_type */
    int needed_count;
    char needed[MCPH_MAX_NEEDED][128];
    char runpath[512];
    char rpath[512];
    int has_textrel;
    /* entry_major[n] is 1 when mcpp_negotiate_v<n> is a defined, exported function (n = 1..9). */
    int entry_major[10];
    /* mcpp_negotiate_v1 exists but is not a default-visibility global function. */
    int entry_hidden;
} mcph_elf_info;

/* Parses the ELF header, the dynamic section and the dynamic symbol table of `fd`. Returns MCPH_ELF_OK or an
 * MCPH_ELF_* failure with the reason in `reason`. Only 64-bit little-endian files are parsed past the header. */
int mcph_elf_inspect(int fd, mcph_elf_info *info, char *reason, size_t reason_len);

/* If a library with this soname is already loaded in the process, writes its path and returns 1; loads nothing. */
int mcph_loaded_path(const char *soname, char *out, size_t out_len);

/* Installs SIGTERM and SIGINT handlers synchronously (sigaction, SA_RESTART) that only write one byte to a
 * close-on-exec pipe, so no termination signal is lost or kills the process from this call on. */
void mcph_install_term_handler(void);

/* Blocks until a termination signal arrived (or mcph_trigger_term was called). */
void mcph_wait_term(void);

/* Wakes mcph_wait_term as if a signal had arrived (the supervisor's stop message). Async-signal-safe. */
void mcph_trigger_term(void);

/* Command servers (docs/servers.md): starts the program at `path` (already resolved, with a '/') with argv and
 * envp (NULL-terminated), in `cwd` when not NULL, with in_fd/out_fd/err_fd as its 0/1/2 and no other descriptor,
 * signal mask and dispositions reset, and SIGKILL when the host dies. Returns its pid, or -1 with *stage (one of
 * MCPH_SPAWN_*) and *err (the errno of that step); a failed exec is reaped before returning. */
#define MCPH_SPAWN_FORK 1
#define MCPH_SPAWN_SETUP 2
#define MCPH_SPAWN_CHDIR 3
#define MCPH_SPAWN_EXEC 4
#include <sys/types.h>
pid_t mcph_spawn_program(const char *path, char *const argv[], char *const envp[], const char *cwd, int in_fd,
                         int out_fd, int err_fd, int *err, int *stage);
