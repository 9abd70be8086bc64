/*
 * header_usage.c — compiled by check_header.sh as C11, C17, C++11 and C++17 with
 * -Wall -Wextra -pedantic -Werror. Uses every macro of mcp_plugin.h the way a plugin does.
 * Only constructs valid in both C and C++11 (no designated initializers, no compound literals).
 */
#include "mcp_plugin.h"

static const char SCHEMA[] = "{\"type\":\"object\"}";

static mcpp_status t_create(const mcpp_host *host, const char *config, size_t config_len,
                            const mcpp_writer *err, void **instance)
{
    (void)config;
    (void)config_len;
    /* MCPP_HAS on the host table: a field of 1.0 and the last field. */
    if (!MCPP_HAS(host, mcpp_host, finish) || !MCPP_HAS(host, mcpp_host, log)) {
        err->write(err->ctx, "host table too small", 20);
        return MCPP_E_VERSION;
    }
    *instance = 0;
    return MCPP_OK;
}

static void t_destroy(void *instance)
{
    (void)instance;
}

static mcpp_status t_describe(void *instance, const mcpp_registry *reg)
{
    (void)instance;
    mcpp_tool tool = {sizeof(mcpp_tool), 0, MCPP_LIT("t"), MCPP_LIT("T"), MCPP_LIT("d"),
                      MCPP_LIT(SCHEMA), {0, 0}, {0, 0}};
    mcpp_prompt_arg arg = {sizeof(mcpp_prompt_arg), MCPP_ARG_REQUIRED, MCPP_LIT("a"), {0, 0}, {0, 0}};
    mcpp_prompt prompt = {sizeof(mcpp_prompt), 1, MCPP_LIT("p"), {0, 0}, {0, 0}, &arg};
    mcpp_status st = reg->add_tool(reg->ctx, &tool);
    if (st == MCPP_OK && MCPP_HAS(reg, mcpp_registry, add_prompt))
        st = reg->add_prompt(reg->ctx, &prompt);
    return st;
}

static void t_call_tool(void *instance, mcpp_call *call, const char *name, size_t name_len)
{
    (void)instance;
    (void)call;
    (void)name;
    (void)name_len;
}

static const mcpp_plugin TABLE = {
    sizeof(mcpp_plugin),
    MCPP_THREADING_SERIAL,
    0,
    0,
    MCPP_LIT("header_usage"),
    MCPP_LIT("1.0.0"),
    {0, 0},
    {0, 0},
    t_create,
    t_destroy,
    t_describe,
    t_call_tool,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
};

MCPP_DEFINE_ENTRY(TABLE);
