#define _GNU_SOURCE
#include "CHostSupport.h"

#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_plugin_path[1024];
static __thread char t_activity[256];

static size_t bounded_strlen(const char *s, size_t max) {
    size_t n = 0;
    while (n < max && s[n]) n++;
    return n;
}

static void write_all(const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

static void write_str(const char *s) { write_all(s, bounded_strlen(s, 4096)); }

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGSEGV: return "SIGSEGV (invalid memory access)";
    case SIGBUS: return "SIGBUS (bus error)";
    case SIGILL: return "SIGILL (illegal instruction or trap)";
    case SIGFPE: return "SIGFPE (arithmetic error)";
    case SIGABRT: return "SIGABRT (abort)";
    default: return "a fatal signal";
    }
}

static void crash_handler(int sig) {
    /* Only async-signal-safe calls from here on. */
    write_str("mcp-plugin-host: ");
    write_str(g_plugin_path);
    if (t_activity[0]) {
        write_str(": plugin crashed with ");
        write_str(signal_name(sig));
        write_str(" during ");
        write_str(t_activity);
    } else {
        write_str(": host crashed with ");
        write_str(signal_name(sig));
        write_str(" outside plugin code");
    }
    write_str("\n");
    _exit(70);
}

static __thread int t_altstack_ready;

void mcph_thread_init(void) {
    if (t_altstack_ready) return;
    t_altstack_ready = 1;
    size_t size = 64 * 1024;
    stack_t ss;
    ss.ss_sp = malloc(size); /* lives as long as the thread; threads here live as long as the process */
    if (!ss.ss_sp) return;
    ss.ss_size = size;
    ss.ss_flags = 0;
    sigaltstack(&ss, NULL);
}

void mcph_install_crash_handler(const char *plugin_path) {
    snprintf(g_plugin_path, sizeof g_plugin_path, "%s", plugin_path);
    mcph_thread_init();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = crash_handler;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

void mcph_set_activity(const char *text, size_t len) {
    if (len >= sizeof t_activity) len = sizeof t_activity - 1;
    if (len) memcpy(t_activity, text, len);
    t_activity[len] = 0;
}

const char *mcph_elf_machine_name(uint16_t machine) {
    switch (machine) {
    case EM_386: return "i386";
    case EM_X86_64: return "x86-64";
    case EM_AARCH64: return "aarch64";
    case EM_ARM: return "arm";
    case EM_RISCV: return "riscv";
    case EM_PPC64: return "ppc64";
    case EM_S390: return "s390";
    case EM_MIPS: return "mips";
    default: return "unknown";
    }
}

#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#else
#error "unsupported host architecture"
#endif

int mcph_elf_check(int fd, char *reason, size_t reason_len) {
    Elf64_Ehdr h;
    ssize_t n = pread(fd, &h, sizeof h, 0);
    if (n < 0) {
        snprintf(reason, reason_len, "cannot read the file: %s", strerror(errno));
        return MCPH_ELF_READ_ERROR;
    }
    if (n < EI_NIDENT || memcmp(h.e_ident, ELFMAG, SELFMAG) != 0) {
        snprintf(reason, reason_len, "not an ELF file (no ELF magic); a plugin must be a shared object (.so)");
        return MCPH_ELF_NOT_ELF;
    }
    if (h.e_ident[EI_CLASS] != ELFCLASS64) {
        snprintf(reason, reason_len, "a %s ELF file; this host loads 64-bit plugins only",
                 h.e_ident[EI_CLASS] == ELFCLASS32 ? "32-bit" : "malformed");
        return MCPH_ELF_WRONG_CLASS;
    }
    if ((size_t)n < sizeof h) {
        snprintf(reason, reason_len, "truncated ELF header");
        return MCPH_ELF_NOT_ELF;
    }
    if (h.e_ident[EI_DATA] != ELFDATA2LSB) {
        snprintf(reason, reason_len, "a big-endian ELF file; this host is little-endian");
        return MCPH_ELF_WRONG_ENDIAN;
    }
    if (h.e_machine != HOST_MACHINE) {
        snprintf(reason, reason_len, "built for machine %s (e_machine %u); this host is %s", mcph_elf_machine_name(h.e_machine),
                 (unsigned)h.e_machine, mcph_elf_machine_name(HOST_MACHINE));
        return MCPH_ELF_WRONG_MACHINE;
    }
    if (h.e_type != ET_DYN) {
        snprintf(reason, reason_len, "an ELF %s, not a shared object; build it with -shared -fPIC",
                 h.e_type == ET_EXEC ? "executable" : h.e_type == ET_REL ? "object file" : "file of another type");
        return MCPH_ELF_NOT_SHARED;
    }
    return MCPH_ELF_OK;
}
