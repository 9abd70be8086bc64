#define _GNU_SOURCE
#include "CHostSupport.h"

#include <elf.h>
#include <fcntl.h>
#include <errno.h>
#include <pthread.h>
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
/* The thread's signal stack: held here (a root LeakSanitizer sees; the kernel's copy of the pointer it cannot)
 * and freed by the key's destructor when the thread ends, so a thread that comes and goes costs nothing. */
static __thread void *t_altstack;
static pthread_key_t g_altstack_key;
static pthread_once_t g_altstack_once = PTHREAD_ONCE_INIT;
static int g_altstack_keyed;

static void altstack_release(void *stack) {
    stack_t off;
    memset(&off, 0, sizeof off);
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, NULL);
    free(stack);
    t_altstack = NULL;
}

static void altstack_key_create(void) { g_altstack_keyed = pthread_key_create(&g_altstack_key, altstack_release) == 0; }

void mcph_thread_init(void) {
    if (t_altstack_ready) return;
    t_altstack_ready = 1;
    pthread_once(&g_altstack_once, altstack_key_create);
    size_t size = 64 * 1024;
    stack_t ss;
    ss.ss_sp = malloc(size);
    if (!ss.ss_sp) return;
    ss.ss_size = size;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) != 0) {
        free(ss.ss_sp);
        return;
    }
    t_altstack = ss.ss_sp;
    if (g_altstack_keyed) pthread_setspecific(g_altstack_key, ss.ss_sp);
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

#include <sys/mman.h>
#include <sys/stat.h>

static int in_bounds(size_t size, uint64_t off, uint64_t len) { return off <= size && len <= size - off; }

int mcph_elf_inspect(int fd, mcph_elf_info *info, char *reason, size_t reason_len) {
    memset(info, 0, sizeof *info);
    int rc = mcph_elf_check(fd, reason, reason_len);
    Elf64_Ehdr h;
    if (pread(fd, &h, sizeof h, 0) >= EI_NIDENT && memcmp(h.e_ident, ELFMAG, SELFMAG) == 0) {
        info->elf_class = h.e_ident[EI_CLASS] == ELFCLASS64 ? 64 : h.e_ident[EI_CLASS] == ELFCLASS32 ? 32 : 0;
        info->little_endian = h.e_ident[EI_DATA] == ELFDATA2LSB;
        if (info->elf_class == 32) {
            Elf32_Ehdr h32;
            if (pread(fd, &h32, sizeof h32, 0) == (ssize_t)sizeof h32) {
                info->machine = h32.e_machine;
                info->type = h32.e_type;
            }
        } else {
            info->machine = h.e_machine;
            info->type = h.e_type;
        }
    }
    if (rc != MCPH_ELF_OK) return rc;

    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0) {
        snprintf(reason, reason_len, "cannot stat the file");
        return MCPH_ELF_READ_ERROR;
    }
    size_t size = (size_t)st.st_size;
    const uint8_t *base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED) {
        snprintf(reason, reason_len, "cannot map the file: %s", strerror(errno));
        return MCPH_ELF_READ_ERROR;
    }
    int result = MCPH_ELF_OK;
    if (h.e_shentsize != sizeof(Elf64_Shdr) || !in_bounds(size, h.e_shoff, (uint64_t)h.e_shnum * sizeof(Elf64_Shdr))) {
        snprintf(reason, reason_len, "malformed ELF: section headers out of bounds");
        result = MCPH_ELF_NOT_ELF;
        goto out;
    }
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(base + h.e_shoff);
    for (int i = 0; i < h.e_shnum; i++) {
        const Elf64_Shdr *s = &sh[i];
        if (s->sh_type != SHT_DYNAMIC && s->sh_type != SHT_DYNSYM) continue;
        if (s->sh_link >= h.e_shnum) continue;
        const Elf64_Shdr *strs = &sh[s->sh_link];
        if (!in_bounds(size, s->sh_offset, s->sh_size) || !in_bounds(size, strs->sh_offset, strs->sh_size)) continue;
        const char *strtab = (const char *)(base + strs->sh_offset);
        size_t strsize = strs->sh_size;
#define STR(off) ((off) < strsize ? strtab + (off) : "")
        if (s->sh_type == SHT_DYNAMIC) {
            const Elf64_Dyn *d = (const Elf64_Dyn *)(base + s->sh_offset);
            size_t n = s->sh_size / sizeof(Elf64_Dyn);
            for (size_t k = 0; k < n && d[k].d_tag != DT_NULL; k++) {
                switch (d[k].d_tag) {
                case DT_NEEDED:
                    if (info->needed_count < MCPH_MAX_NEEDED) {
                        snprintf(info->needed[info->needed_count], sizeof info->needed[0], "%s", STR(d[k].d_un.d_val));
                        info->needed_count++;
                    }
                    break;
                case DT_RUNPATH: snprintf(info->runpath, sizeof info->runpath, "%s", STR(d[k].d_un.d_val)); break;
                case DT_RPATH: snprintf(info->rpath, sizeof info->rpath, "%s", STR(d[k].d_un.d_val)); break;
                case DT_TEXTREL: info->has_textrel = 1; break;
                case DT_FLAGS:
                    if (d[k].d_un.d_val & DF_TEXTREL) info->has_textrel = 1;
                    break;
                default: break;
                }
            }
        } else {
            const Elf64_Sym *sym = (const Elf64_Sym *)(base + s->sh_offset);
            size_t n = s->sh_size / sizeof(Elf64_Sym);
            for (size_t k = 0; k < n; k++) {
                const char *name = STR(sym[k].st_name);
                if (strncmp(name, "mcpp_negotiate_v", 16) != 0 || name[16] < '1' || name[16] > '9' || name[17] != 0) continue;
                int major = name[16] - '0';
                int defined = sym[k].st_shndx != SHN_UNDEF;
                int func = ELF64_ST_TYPE(sym[k].st_info) == STT_FUNC;
                int global = ELF64_ST_BIND(sym[k].st_info) == STB_GLOBAL || ELF64_ST_BIND(sym[k].st_info) == STB_WEAK;
                int visible = ELF64_ST_VISIBILITY(sym[k].st_other) == STV_DEFAULT || ELF64_ST_VISIBILITY(sym[k].st_other) == STV_PROTECTED;
                if (defined && func && global && visible) info->entry_major[major] = 1;
                else if (major == 1 && defined) info->entry_hidden = 1;
            }
        }
#undef STR
    }
out:
    munmap((void *)base, size);
    return result;
}

#include <dlfcn.h>
#include <link.h>

int mcph_loaded_path(const char *soname, char *out, size_t out_len) {
    void *h = dlopen(soname, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) return 0;
    struct link_map *lm = NULL;
    int ok = dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name && lm->l_name[0];
    snprintf(out, out_len, "%s", ok ? lm->l_name : soname);
    dlclose(h); /* drops only the reference RTLD_NOLOAD took; the library stays loaded */
    return 1;
}

static int g_term_pipe[2] = {-1, -1};

static void term_handler(int sig) {
    (void)sig;
    int saved = errno;
    char b = 1;
    ssize_t r = write(g_term_pipe[1], &b, 1); /* async-signal-safe; a full pipe already holds a wake-up */
    (void)r;
    errno = saved;
}

void mcph_install_term_handler(void) {
    if (g_term_pipe[0] >= 0) return;
    if (pipe2(g_term_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return;
    /* The read end blocks; only the handler's write end must never block. */
    int fl = fcntl(g_term_pipe[0], F_GETFL);
    fcntl(g_term_pipe[0], F_SETFL, fl & ~O_NONBLOCK);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = term_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

void mcph_wait_term(void) {
    char b;
    for (;;) {
        ssize_t r = read(g_term_pipe[0], &b, 1);
        if (r == 1) return;
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return;
    }
}

void mcph_trigger_term(void) { term_handler(0); }
