/*
 * entry.c — the C half of the Go plugin kit: the static mcpp_plugin table, its thunks and the entry point.
 *
 * mcpp_negotiate_v1 below is MCPP_DEFINE_ENTRY(GO_PLUGIN) (mcp_plugin.h) with one addition: after the size check
 * it fills the table's Go-declared fields (name, version, title, instructions, threading, max_concurrency) once,
 * by calling into Go. It cannot be a plain static initializer: those values come from mcpplugin.Register in the
 * author's init(), and a c-shared library runs Go's initialization on a thread of its own at load time. Calling
 * an exported Go function waits until every package's init has run, so the first negotiation sees the
 * registration. The table is then static for the life of the process, as the header requires.
 *
 * The thunks exist because the table needs exact C signatures; cgo's exported functions use their own types
 * (no const, GoUintptr). The instance the host keeps is a runtime/cgo.Handle value (an integer) cast to void *:
 * C never holds a Go pointer.
 */
#include "mcp_plugin.h"

#include <pthread.h>

#include "_cgo_export.h"

static mcpp_status go_create(const mcpp_host *host, const char *config, size_t config_len, const mcpp_writer *err,
                             void **instance)
{
    uintptr_t handle = 0;
    mcpp_status st = gomcpp_create((mcpp_host *)host, (char *)config, config_len, (mcpp_writer *)err, &handle);
    if (st == MCPP_OK)
        *instance = (void *)handle;
    return st;
}

static void go_destroy(void *instance) { gomcpp_destroy((uintptr_t)instance); }

static mcpp_status go_describe(void *instance, const mcpp_registry *reg)
{
    return gomcpp_describe((uintptr_t)instance, (mcpp_registry *)reg);
}

static void go_call_tool(void *instance, mcpp_call *call, const char *name, size_t name_len)
{
    gomcpp_call_tool((uintptr_t)instance, call, (char *)name, name_len);
}

static void go_read_resource(void *instance, mcpp_call *call, const char *uri, size_t uri_len, const char *tmpl,
                             size_t tmpl_len)
{
    gomcpp_read_resource((uintptr_t)instance, call, (char *)uri, uri_len, (char *)tmpl, tmpl_len);
}

static void go_get_prompt(void *instance, mcpp_call *call, const char *name, size_t name_len)
{
    gomcpp_get_prompt((uintptr_t)instance, call, (char *)name, name_len);
}

static void go_complete(void *instance, mcpp_call *call, int32_t ref_kind, const char *ref, size_t ref_len,
                        const char *arg, size_t arg_len, const char *value, size_t value_len)
{
    gomcpp_complete((uintptr_t)instance, call, ref_kind, (char *)ref, ref_len, (char *)arg, arg_len, (char *)value,
                    value_len);
}

static void go_cancel(void *instance, mcpp_call *call) { gomcpp_cancel((uintptr_t)instance, call); }

static mcpp_status go_health(void *instance, const mcpp_writer *detail)
{
    return gomcpp_health((uintptr_t)instance, (mcpp_writer *)detail);
}

static mcpp_status go_diagnose(void *instance, const mcpp_writer *report)
{
    return gomcpp_diagnose((uintptr_t)instance, (mcpp_writer *)report);
}

/* 1.1: the mcpp_input_callback of every request the kit makes (call.go); user is a cgo.Handle value. Not static
 * (call.go's shims refer to it); the version script keeps it out of the dynamic symbol table. */
void gomcpp_c_input_callback(void *user, mcpp_call *call, int32_t status, const char *answer, size_t len)
{
    gomcpp_input_callback((uintptr_t)user, call, status, (char *)answer, len);
}

static mcpp_plugin GO_PLUGIN = {
    .struct_size = sizeof(mcpp_plugin),
    .threading = MCPP_THREADING_CONCURRENT, /* filled from mcpplugin.Plugin.Serial */
    .create = go_create,
    .destroy = go_destroy,
    .describe = go_describe,
    .call_tool = go_call_tool,
    /* read_resource, get_prompt, complete: set by fill_table when the plugin declares them */
    .cancel = go_cancel, /* closes Call.Done() */
    .health = go_health,
    .diagnose = go_diagnose, /* the kit's counters: calls in flight, handler goroutines, input handles */
    /* get_extension: NULL (not wrapped) */
};

static pthread_once_t fill_once = PTHREAD_ONCE_INIT;
static void fill_table(void)
{
    uint32_t features = gomcpp_fill_table(&GO_PLUGIN);
    if (features & 1)
        GO_PLUGIN.read_resource = go_read_resource;
    if (features & 2)
        GO_PLUGIN.get_prompt = go_get_prompt;
    if (features & 4)
        GO_PLUGIN.complete = go_complete;
}

/* Exactly MCPP_DEFINE_ENTRY(GO_PLUGIN), plus the one-time fill. The only exported mcpp_* symbol. */
MCPP_EXPORT mcpp_status mcpp_negotiate_v1(mcpp_negotiation *n)
{
    if (n == 0 || n->struct_size < MCPP_NEGOTIATION_SIZE_1_0)
        return MCPP_E_INVALID;
    pthread_once(&fill_once, fill_table);
    n->plugin_abi_minor = MCPP_ABI_MINOR;
    n->plugin = &GO_PLUGIN;
    if (n->host_abi_major != MCPP_ABI_MAJOR ||
        !(n->host_abi_minor > MCPP_ABI_MINOR || n->host_abi_minor == MCPP_ABI_MINOR))
        return MCPP_E_VERSION;
    return MCPP_OK;
}
