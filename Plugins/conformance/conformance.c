/*
 * conformance.c — the surface the official MCP conformance suite (@modelcontextprotocol/conformance,
 * "server" scenarios) expects of its "everything server", as a plugin for mcp-plugin-host (ABI 1.0).
 *
 * Build (one line, from the repository root; scripts/build-plugins.sh does the same):
 *
 *   cc -shared -fPIC -O2 -pthread -I Sources/PluginABI/include -o libconformance.so Plugins/conformance/conformance.c
 *
 * Run:   mcp-plugin-host --plugin ./libconformance.so --listen 127.0.0.1:3001
 *        (then: npx @modelcontextprotocol/conformance server --url http://127.0.0.1:3001/mcp; see README.md)
 *
 * What it declares (names and texts are the ones the suite's scenarios and its TypeScript everything server use):
 *   tools      test_simple_text, test_image_content, test_audio_content, test_embedded_resource,
 *              test_multiple_content_types, test_tool_with_logging, test_tool_with_progress,
 *              test_error_handling, test_dynamic_tool (adds test_dynamic_added when called)
 *   resources  test://static-text (text/plain), test://static-binary (application/octet-stream)
 *   template   test://template/{id}/data (application/json)
 *   prompts    test_simple_prompt, test_prompt_with_arguments {arg1, arg2},
 *              test_prompt_with_embedded_resource {resourceUri}, test_prompt_with_image
 *   completion test_prompt_with_arguments.arg1, test://template/{id}/data .id
 *
 * Threading: CONCURRENT. The only mutable state is whether test_dynamic_tool has run; it lives in the
 * instance behind a mutex, because describe() runs again (after notify_list_changed) while handlers run.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */

#include "mcp_plugin.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct conformance {
    const mcpp_host *host;
    pthread_mutex_t lock;  /* guards the fields below */
    int dynamic_added;     /* test_dynamic_tool ran: test_dynamic_added is declared */
} conformance;

/* A C string literal as the (pointer, length) pair the ABI functions take. */
#define KEY(s) ("" s ""), (sizeof(s) - 1)

/* ------------------------------------------------------------------------------------- */
/* 0. Helpers.                                                                            */
/* ------------------------------------------------------------------------------------- */

static void finish_fmt(const mcpp_host *h, mcpp_call *call, int32_t outcome, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    h->finish(call, outcome, msg, len);
}

/* Ends a call after its output was added; st is the status of the last add_* call. */
static void finish_result(const mcpp_host *h, mcpp_call *call, mcpp_status st)
{
    if (st == MCPP_OK || st == MCPP_E_CANCELLED)
        h->finish(call, MCPP_OUTCOME_OK, NULL, 0);
    else if (st == MCPP_E_TOO_LARGE)
        finish_fmt(h, call, MCPP_OUTCOME_INTERNAL, "the result is too large");
    else
        finish_fmt(h, call, MCPP_OUTCOME_INTERNAL, "could not build the result (status %d)", (int)st);
}

static int str_eq(const char *p, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && (n == 0 || memcmp(p, lit, n) == 0);
}

static int clamp_len(size_t len)
{
    return (int)(len > 200 ? 200 : len);
}

/* Sleeps `ms` milliseconds; returns non-zero when the call was cancelled meanwhile. */
static int pause_ms(const mcpp_host *h, mcpp_call *call, long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
        /* EINTR: sleep for the rest */
    }
    return h->is_cancelled(call);
}

/* Appends `s` to buf as the body of a JSON string (no quotes); returns the new length or 0 on overflow. */
static size_t json_escape(char *buf, size_t at, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t n = 0;
        if (c == '"' || c == '\\') {
            esc[n++] = '\\';
            esc[n++] = (char)c;
        } else if (c < 0x20) {
            esc[n++] = '\\';
            esc[n++] = 'u';
            esc[n++] = '0';
            esc[n++] = '0';
            esc[n++] = hex[c >> 4];
            esc[n++] = hex[c & 15];
        } else {
            esc[n++] = (char)c;
        }
        if (at + n > cap)
            return 0;
        memcpy(buf + at, esc, n);
        at += n;
    }
    return at;
}

/* ------------------------------------------------------------------------------------- */
/* 1. Media: a 1x1 red PNG (the suite's own test image) and a short, valid 16-bit WAV.    */
/* ------------------------------------------------------------------------------------- */

static const uint8_t RED_PIXEL_PNG[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00,
    0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xfc, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x05, 0x02, 0x00,
    0x5f, 0xc8, 0xf1, 0xd2, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};

/* RIFF/WAVE, PCM, mono, 8000 Hz, 16 bit, 16 samples (two periods of a 1 kHz sine). */
static const uint8_t SINE_WAV[] = {
    0x52, 0x49, 0x46, 0x46, 0x44, 0x00, 0x00, 0x00, 0x57, 0x41, 0x56, 0x45, 0x66, 0x6d, 0x74, 0x20, 0x10, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x40, 0x1f, 0x00, 0x00, 0x80, 0x3e, 0x00, 0x00, 0x02, 0x00, 0x10, 0x00,
    0x64, 0x61, 0x74, 0x61, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x18, 0x16, 0x40, 0x1f, 0x18, 0x16, 0x00, 0x00,
    0xe8, 0xe9, 0xc0, 0xe0, 0xe8, 0xe9, 0x00, 0x00, 0x18, 0x16, 0x40, 0x1f, 0x18, 0x16, 0x00, 0x00, 0xe8, 0xe9,
    0xc0, 0xe0, 0xe8, 0xe9,
};

/* ------------------------------------------------------------------------------------- */
/* 2. Tools.                                                                              */
/* ------------------------------------------------------------------------------------- */

static const char NO_ARGS_SCHEMA[] = "{\"type\":\"object\",\"properties\":{}}";

#define DECLARE_TOOL(var, tool_name, tool_description)            \
    static const mcpp_tool var = {                                \
        .struct_size = sizeof(mcpp_tool),                         \
        .name = MCPP_LIT(tool_name),                              \
        .description = MCPP_LIT(tool_description),                \
        .input_schema = MCPP_LIT(NO_ARGS_SCHEMA),                 \
    }

DECLARE_TOOL(SIMPLE_TEXT_TOOL, "test_simple_text", "Tests simple text content response");
DECLARE_TOOL(IMAGE_TOOL, "test_image_content", "Tests image content response");
DECLARE_TOOL(AUDIO_TOOL, "test_audio_content", "Tests audio content response");
DECLARE_TOOL(EMBEDDED_TOOL, "test_embedded_resource", "Tests embedded resource content response");
DECLARE_TOOL(MULTIPLE_TOOL, "test_multiple_content_types",
             "Tests response with multiple content types (text, image, resource)");
DECLARE_TOOL(LOGGING_TOOL, "test_tool_with_logging", "Tests tool that emits log messages during execution");
DECLARE_TOOL(PROGRESS_TOOL, "test_tool_with_progress", "Tests tool that reports progress notifications");
DECLARE_TOOL(ERROR_TOOL, "test_error_handling", "Tests error response handling");
DECLARE_TOOL(DYNAMIC_TOOL, "test_dynamic_tool",
             "Adds the tool test_dynamic_added and notifies clients that the tool list changed");
DECLARE_TOOL(DYNAMIC_ADDED_TOOL, "test_dynamic_added", "A tool added at run time by test_dynamic_tool");

static void tool_simple_text(conformance *self, mcpp_call *call)
{
    const mcpp_host *h = self->host;
    finish_result(h, call, h->add_text(call, KEY("This is a simple text response for testing.")));
}

static void tool_image(conformance *self, mcpp_call *call)
{
    const mcpp_host *h = self->host;
    finish_result(h, call, h->add_image(call, KEY("image/png"), RED_PIXEL_PNG, sizeof RED_PIXEL_PNG));
}

static void tool_audio(conformance *self, mcpp_call *call)
{
    const mcpp_host *h = self->host;
    finish_result(h, call, h->add_audio(call, KEY("audio/wav"), SINE_WAV, sizeof SINE_WAV));
}

static void tool_embedded(conformance *self, mcpp_call *call)
{
    const mcpp_host *h = self->host;
    finish_result(h, call,
                  h->add_resource_text(call, KEY("test://embedded-resource"), KEY("text/plain"),
                                       KEY("This is an embedded resource content.")));
}

static void tool_multiple(conformance *self, mcpp_call *call)
{
    const mcpp_host *h = self->host;
    mcpp_status st = h->add_text(call, KEY("Multiple content types test:"));
    if (st == MCPP_OK)
        st = h->add_image(call, KEY("image/png"), RED_PIXEL_PNG, sizeof RED_PIXEL_PNG);
    if (st == MCPP_OK)
        st = h->add_resource_text(call, KEY("test://mixed-content-resource"), KEY("application/json"),
                                  KEY("{\"test\":\"data\",\"value\":123}"));
    finish_result(h, call, st);
}

static void tool_logging(conformance *self, mcpp_call *call)
{
    const mcpp_host *h = self->host;
    static const char *const steps[] = {"Tool execution started", "Tool processing data", "Tool execution completed"};
    for (size_t i = 0; i < 3; i++) {
        if (i > 0 && pause_ms(h, call, 50)) {
            finish_fmt(h, call, MCPP_OUTCOME_TOOL_ERROR, "cancelled");
            return;
        }
        h->call_log(call, MCPP_LOG_INFO, steps[i], strlen(steps[i]));
    }
    finish_result(h, call, h->add_text(call, KEY("Tool with logging executed successfully")));
}

static void tool_progress(conformance *self, mcpp_call *call)
{
    const mcpp_host *h = self->host;
    for (int step = 0; step <= 100; step += 50) {
        if (step > 0 && pause_ms(h, call, 50)) {
            finish_fmt(h, call, MCPP_OUTCOME_TOOL_ERROR, "cancelled");
            return;
        }
        char msg[64];
        int n = snprintf(msg, sizeof msg, "Completed step %d of 100", step);
        h->progress(call, (double)step, 100.0, msg, (size_t)n);
    }
    finish_result(h, call, h->add_text(call, KEY("Tool with progress executed successfully")));
}

static void tool_error(conformance *self, mcpp_call *call)
{
    /* A tool error result (isError: true) whose one text block is this message. */
    self->host->finish(call, MCPP_OUTCOME_TOOL_ERROR, KEY("This tool intentionally returns an error for testing"));
}

static void tool_dynamic(conformance *self, mcpp_call *call)
{
    const mcpp_host *h = self->host;
    pthread_mutex_lock(&self->lock);
    int first = !self->dynamic_added;
    self->dynamic_added = 1;
    pthread_mutex_unlock(&self->lock);
    if (first) /* the host calls describe() again and tells clients the tool list changed */
        h->notify_list_changed(h->ctx, MCPP_LIST_TOOLS);
    static const char ADDED[] = "Added the tool test_dynamic_added";
    static const char ALREADY[] = "The tool test_dynamic_added was already added";
    finish_result(h, call, first ? h->add_text(call, ADDED, sizeof ADDED - 1)
                                 : h->add_text(call, ALREADY, sizeof ALREADY - 1));
}

static void tool_dynamic_added(conformance *self, mcpp_call *call)
{
    const mcpp_host *h = self->host;
    pthread_mutex_lock(&self->lock);
    int added = self->dynamic_added;
    pthread_mutex_unlock(&self->lock);
    if (!added) {
        finish_fmt(h, call, MCPP_OUTCOME_NOT_FOUND, "unknown tool 'test_dynamic_added'");
        return;
    }
    finish_result(h, call, h->add_text(call, KEY("This is a dynamically added tool.")));
}

typedef struct tool_entry {
    const mcpp_tool *decl;
    void (*run)(conformance *self, mcpp_call *call);
} tool_entry;

/* The static tools, in the order tools/list shows them. */
static const tool_entry TOOLS[] = {
    {&SIMPLE_TEXT_TOOL, tool_simple_text},
    {&IMAGE_TOOL, tool_image},
    {&AUDIO_TOOL, tool_audio},
    {&EMBEDDED_TOOL, tool_embedded},
    {&MULTIPLE_TOOL, tool_multiple},
    {&LOGGING_TOOL, tool_logging},
    {&PROGRESS_TOOL, tool_progress},
    {&ERROR_TOOL, tool_error},
    {&DYNAMIC_TOOL, tool_dynamic},
};
#define TOOL_COUNT (sizeof TOOLS / sizeof TOOLS[0])

static void conf_call_tool(void *instance, mcpp_call *call, const char *name, size_t name_len)
{
    conformance *self = instance;
    for (size_t i = 0; i < TOOL_COUNT; i++) {
        const mcpp_str *n = &TOOLS[i].decl->name;
        if (name_len == n->len && memcmp(name, n->ptr, n->len) == 0) {
            TOOLS[i].run(self, call);
            return;
        }
    }
    if (str_eq(name, name_len, "test_dynamic_added")) {
        tool_dynamic_added(self, call);
        return;
    }
    finish_fmt(self->host, call, MCPP_OUTCOME_NOT_FOUND, "unknown tool '%.*s'", clamp_len(name_len), name);
}

/* ------------------------------------------------------------------------------------- */
/* 3. Resources.                                                                          */
/* ------------------------------------------------------------------------------------- */

#define STATIC_TEXT_URI "test://static-text"
#define STATIC_BINARY_URI "test://static-binary"
#define DATA_TEMPLATE "test://template/{id}/data"

static const char STATIC_TEXT[] = "This is the content of the static text resource.";

/* Every byte value once, 0x00 to 0xff: the host must base64-encode arbitrary binary exactly. */
#define B4(x) (x), (x) + 1, (x) + 2, (x) + 3
#define B16(x) B4(x), B4((x) + 4), B4((x) + 8), B4((x) + 12)
#define B64(x) B16(x), B16((x) + 16), B16((x) + 32), B16((x) + 48)
static const uint8_t STATIC_BINARY[256] = {B64(0), B64(64), B64(128), B64(192)};

static const mcpp_resource STATIC_TEXT_RESOURCE = {
    .struct_size = sizeof(mcpp_resource),
    .uri = MCPP_LIT(STATIC_TEXT_URI),
    .name = MCPP_LIT("static-text"),
    .title = MCPP_LIT("Static Text Resource"),
    .description = MCPP_LIT("A static text resource for testing"),
    .mime_type = MCPP_LIT("text/plain"),
    .size = (int64_t)(sizeof STATIC_TEXT - 1),
};

static const mcpp_resource STATIC_BINARY_RESOURCE = {
    .struct_size = sizeof(mcpp_resource),
    .uri = MCPP_LIT(STATIC_BINARY_URI),
    .name = MCPP_LIT("static-binary"),
    .title = MCPP_LIT("Static Binary Resource"),
    .description = MCPP_LIT("A static binary resource for testing (the 256 byte values 0x00 to 0xff)"),
    .mime_type = MCPP_LIT("application/octet-stream"),
    .size = (int64_t)sizeof STATIC_BINARY,
};

static const mcpp_resource_template DATA_RESOURCE_TEMPLATE = {
    .struct_size = sizeof(mcpp_resource_template),
    .uri_template = MCPP_LIT(DATA_TEMPLATE),
    .name = MCPP_LIT("template"),
    .title = MCPP_LIT("Resource Template"),
    .description = MCPP_LIT("A resource template with parameter substitution"),
    .mime_type = MCPP_LIT("application/json"),
};

static void conf_read_resource(void *instance, mcpp_call *call, const char *uri, size_t uri_len,
                               const char *uri_template, size_t uri_template_len)
{
    const mcpp_host *h = ((conformance *)instance)->host;
    if (uri_template_len == 0 && str_eq(uri, uri_len, STATIC_TEXT_URI)) {
        finish_result(h, call,
                      h->add_resource_text(call, uri, uri_len, KEY("text/plain"), STATIC_TEXT, sizeof STATIC_TEXT - 1));
        return;
    }
    if (uri_template_len == 0 && str_eq(uri, uri_len, STATIC_BINARY_URI)) {
        finish_result(h, call,
                      h->add_resource_blob(call, uri, uri_len, KEY("application/octet-stream"), STATIC_BINARY,
                                           sizeof STATIC_BINARY));
        return;
    }
    if (str_eq(uri_template, uri_template_len, DATA_TEMPLATE)) {
        const char *id;
        size_t id_len;
        mcpp_status st = h->arg_string(call, KEY("id"), &id, &id_len);
        if (st != MCPP_OK) {
            finish_fmt(h, call, MCPP_OUTCOME_INVALID_PARAMS, "the uri has no id (status %d)", (int)st);
            return;
        }
        /* {"id":"<id>","templateTest":true,"data":"Data for ID: <id>"}; each id byte escapes to at most 6. */
        size_t cap = 96 + 12 * id_len;
        char *json = malloc(cap);
        if (json == NULL) {
            finish_fmt(h, call, MCPP_OUTCOME_INTERNAL, "out of memory");
            return;
        }
        size_t n = 0;
        memcpy(json + n, "{\"id\":\"", 7), n += 7;
        n = json_escape(json, n, cap, id, id_len);
        static const char MID[] = "\",\"templateTest\":true,\"data\":\"Data for ID: ";
        memcpy(json + n, MID, sizeof MID - 1), n += sizeof MID - 1;
        n = json_escape(json, n, cap, id, id_len);
        memcpy(json + n, "\"}", 2), n += 2;
        st = h->add_resource_text(call, uri, uri_len, KEY("application/json"), json, n);
        free(json);
        finish_result(h, call, st);
        return;
    }
    finish_fmt(h, call, MCPP_OUTCOME_NOT_FOUND, "unknown resource '%.*s'", clamp_len(uri_len), uri);
}

/* ------------------------------------------------------------------------------------- */
/* 4. Prompts.                                                                            */
/* ------------------------------------------------------------------------------------- */

static const mcpp_prompt_arg ARGUMENTS_ARGS[] = {
    {.struct_size = sizeof(mcpp_prompt_arg),
     .flags = MCPP_ARG_REQUIRED,
     .name = MCPP_LIT("arg1"),
     .description = MCPP_LIT("First test argument")},
    {.struct_size = sizeof(mcpp_prompt_arg),
     .flags = MCPP_ARG_REQUIRED,
     .name = MCPP_LIT("arg2"),
     .description = MCPP_LIT("Second test argument")},
};

static const mcpp_prompt_arg EMBEDDED_ARGS[] = {
    {.struct_size = sizeof(mcpp_prompt_arg),
     .flags = MCPP_ARG_REQUIRED,
     .name = MCPP_LIT("resourceUri"),
     .description = MCPP_LIT("URI of the resource to embed")},
};

static const mcpp_prompt PROMPTS[] = {
    {.struct_size = sizeof(mcpp_prompt),
     .name = MCPP_LIT("test_simple_prompt"),
     .title = MCPP_LIT("Simple Test Prompt"),
     .description = MCPP_LIT("A simple prompt without arguments")},
    {.struct_size = sizeof(mcpp_prompt),
     .arg_count = sizeof ARGUMENTS_ARGS / sizeof ARGUMENTS_ARGS[0],
     .name = MCPP_LIT("test_prompt_with_arguments"),
     .title = MCPP_LIT("Prompt With Arguments"),
     .description = MCPP_LIT("A prompt with required arguments"),
     .args = ARGUMENTS_ARGS},
    {.struct_size = sizeof(mcpp_prompt),
     .arg_count = sizeof EMBEDDED_ARGS / sizeof EMBEDDED_ARGS[0],
     .name = MCPP_LIT("test_prompt_with_embedded_resource"),
     .title = MCPP_LIT("Prompt With Embedded Resource"),
     .description = MCPP_LIT("A prompt that includes an embedded resource"),
     .args = EMBEDDED_ARGS},
    {.struct_size = sizeof(mcpp_prompt),
     .name = MCPP_LIT("test_prompt_with_image"),
     .title = MCPP_LIT("Prompt With Image"),
     .description = MCPP_LIT("A prompt that includes image content")},
};
#define PROMPT_COUNT (sizeof PROMPTS / sizeof PROMPTS[0])

/* Reads a required string argument; on failure ends the call and returns non-zero. */
static int required_string(const mcpp_host *h, mcpp_call *call, const char *key, size_t key_len, const char **out,
                           size_t *out_len)
{
    mcpp_status st = h->arg_string(call, key, key_len, out, out_len);
    if (st == MCPP_OK)
        return 0;
    if (st == MCPP_E_NOT_FOUND)
        finish_fmt(h, call, MCPP_OUTCOME_INVALID_PARAMS, "missing required argument '%s'", key);
    else
        finish_fmt(h, call, MCPP_OUTCOME_INVALID_PARAMS, "argument '%s' must be a string", key);
    return 1;
}

static void prompt_with_arguments(const mcpp_host *h, mcpp_call *call)
{
    const char *a1, *a2;
    size_t n1, n2;
    if (required_string(h, call, KEY("arg1"), &a1, &n1) || required_string(h, call, KEY("arg2"), &a2, &n2))
        return;
    /* Prompt with arguments: arg1='<arg1>', arg2='<arg2>' */
    static const char A[] = "Prompt with arguments: arg1='", B[] = "', arg2='", C[] = "'";
    size_t len = (sizeof A - 1) + n1 + (sizeof B - 1) + n2 + (sizeof C - 1);
    char *text = malloc(len);
    if (text == NULL) {
        finish_fmt(h, call, MCPP_OUTCOME_INTERNAL, "out of memory");
        return;
    }
    char *p = text;
    memcpy(p, A, sizeof A - 1), p += sizeof A - 1;
    memcpy(p, a1, n1), p += n1;
    memcpy(p, B, sizeof B - 1), p += sizeof B - 1;
    memcpy(p, a2, n2), p += n2;
    memcpy(p, C, sizeof C - 1);
    mcpp_status st = h->add_text(call, text, len);
    free(text);
    finish_result(h, call, st);
}

static void prompt_with_embedded_resource(const mcpp_host *h, mcpp_call *call)
{
    const char *uri;
    size_t uri_len;
    if (required_string(h, call, KEY("resourceUri"), &uri, &uri_len))
        return;
    if (uri_len == 0) {
        finish_fmt(h, call, MCPP_OUTCOME_INVALID_PARAMS, "argument 'resourceUri' must not be empty");
        return;
    }
    mcpp_status st = h->add_resource_text(call, uri, uri_len, KEY("text/plain"),
                                          KEY("Embedded resource content for testing."));
    if (st == MCPP_OK)
        st = h->add_text(call, KEY("Please process the embedded resource above."));
    finish_result(h, call, st);
}

static void conf_get_prompt(void *instance, mcpp_call *call, const char *name, size_t name_len)
{
    const mcpp_host *h = ((conformance *)instance)->host;
    if (str_eq(name, name_len, "test_simple_prompt")) {
        finish_result(h, call, h->add_text(call, KEY("This is a simple prompt for testing.")));
    } else if (str_eq(name, name_len, "test_prompt_with_arguments")) {
        prompt_with_arguments(h, call);
    } else if (str_eq(name, name_len, "test_prompt_with_embedded_resource")) {
        prompt_with_embedded_resource(h, call);
    } else if (str_eq(name, name_len, "test_prompt_with_image")) {
        mcpp_status st = h->add_image(call, KEY("image/png"), RED_PIXEL_PNG, sizeof RED_PIXEL_PNG);
        if (st == MCPP_OK)
            st = h->add_text(call, KEY("Please analyze the image above."));
        finish_result(h, call, st);
    } else {
        finish_fmt(h, call, MCPP_OUTCOME_NOT_FOUND, "unknown prompt '%.*s'", clamp_len(name_len), name);
    }
}

/* ------------------------------------------------------------------------------------- */
/* 5. Completion.                                                                         */
/* ------------------------------------------------------------------------------------- */

static const char *const ARG1_VALUES[] = {"paris", "park", "party", "test", "testing"};
static const char *const ID_VALUES[] = {"1", "2", "3", "42", "123"};

static void complete_from(const mcpp_host *h, mcpp_call *call, const char *const *values, size_t count,
                          const char *prefix, size_t prefix_len)
{
    int64_t total = 0;
    mcpp_status st = MCPP_OK;
    for (size_t i = 0; i < count && st == MCPP_OK; i++) {
        size_t n = strlen(values[i]);
        if (n >= prefix_len && (prefix_len == 0 || memcmp(values[i], prefix, prefix_len) == 0)) {
            st = h->add_completion(call, values[i], n);
            total++;
        }
    }
    if (st == MCPP_OK)
        st = h->set_completion_info(call, total, 0);
    finish_result(h, call, st);
}

static void conf_complete(void *instance, mcpp_call *call, int32_t ref_kind, const char *ref, size_t ref_len,
                          const char *arg, size_t arg_len, const char *value, size_t value_len)
{
    const mcpp_host *h = ((conformance *)instance)->host;
    if (ref_kind == MCPP_REF_PROMPT) {
        for (size_t i = 0; i < PROMPT_COUNT; i++) {
            if (!str_eq(ref, ref_len, PROMPTS[i].name.ptr)) /* the names are NUL-terminated literals */
                continue;
            if (str_eq(ref, ref_len, "test_prompt_with_arguments") && str_eq(arg, arg_len, "arg1"))
                complete_from(h, call, ARG1_VALUES, sizeof ARG1_VALUES / sizeof ARG1_VALUES[0], value, value_len);
            else
                complete_from(h, call, NULL, 0, value, value_len); /* nothing to offer */
            return;
        }
    } else if (ref_kind == MCPP_REF_RESOURCE_TEMPLATE && str_eq(ref, ref_len, DATA_TEMPLATE)) {
        if (str_eq(arg, arg_len, "id"))
            complete_from(h, call, ID_VALUES, sizeof ID_VALUES / sizeof ID_VALUES[0], value, value_len);
        else
            complete_from(h, call, NULL, 0, value, value_len);
        return;
    }
    finish_fmt(h, call, MCPP_OUTCOME_NOT_FOUND, "nothing to complete for '%.*s'", clamp_len(ref_len), ref);
}

/* ------------------------------------------------------------------------------------- */
/* 6. Life cycle and declarations.                                                        */
/* ------------------------------------------------------------------------------------- */

static mcpp_status conf_create(const mcpp_host *host, const char *config, size_t config_len,
                               const mcpp_writer *err, void **instance)
{
    (void)config;
    (void)config_len;
    conformance *self = calloc(1, sizeof *self);
    if (self == NULL) {
        err->write(err->ctx, KEY("out of memory"));
        return MCPP_E_FAILED;
    }
    if (pthread_mutex_init(&self->lock, NULL) != 0) {
        free(self);
        err->write(err->ctx, KEY("pthread_mutex_init failed"));
        return MCPP_E_FAILED;
    }
    self->host = host;
    *instance = self;
    return MCPP_OK;
}

static void conf_destroy(void *instance)
{
    conformance *self = instance;
    pthread_mutex_destroy(&self->lock);
    free(self);
}

static mcpp_status conf_describe(void *instance, const mcpp_registry *reg)
{
    conformance *self = instance;
    mcpp_status st;
    for (size_t i = 0; i < TOOL_COUNT; i++)
        if ((st = reg->add_tool(reg->ctx, TOOLS[i].decl)) != MCPP_OK)
            return st;
    pthread_mutex_lock(&self->lock);
    int dynamic = self->dynamic_added;
    pthread_mutex_unlock(&self->lock);
    if (dynamic && (st = reg->add_tool(reg->ctx, &DYNAMIC_ADDED_TOOL)) != MCPP_OK)
        return st;
    if ((st = reg->add_resource(reg->ctx, &STATIC_TEXT_RESOURCE)) != MCPP_OK)
        return st;
    if ((st = reg->add_resource(reg->ctx, &STATIC_BINARY_RESOURCE)) != MCPP_OK)
        return st;
    if ((st = reg->add_resource_template(reg->ctx, &DATA_RESOURCE_TEMPLATE)) != MCPP_OK)
        return st;
    for (size_t i = 0; i < PROMPT_COUNT; i++)
        if ((st = reg->add_prompt(reg->ctx, &PROMPTS[i])) != MCPP_OK)
            return st;
    return MCPP_OK;
}

static mcpp_status conf_health(void *instance, const mcpp_writer *detail)
{
    (void)instance;
    detail->write(detail->ctx, KEY("ok"));
    return MCPP_OK;
}

static const mcpp_plugin CONFORMANCE_PLUGIN = {
    .struct_size = sizeof(mcpp_plugin),
    .threading = MCPP_THREADING_CONCURRENT,
    .max_concurrency = 0, /* the host's default */
    .name = MCPP_LIT("mcp-conformance-test-server"),
    .version = MCPP_LIT("1.0.0"),
    .title = MCPP_LIT("MCP conformance test server (plugin)"),
    .instructions = MCPP_LIT("The tools, resources and prompts the MCP conformance suite's server scenarios call."),
    .create = conf_create,
    .destroy = conf_destroy,
    .describe = conf_describe,
    .call_tool = conf_call_tool,
    .read_resource = conf_read_resource,
    .get_prompt = conf_get_prompt,
    .complete = conf_complete,
    .cancel = NULL, /* the two slow tools poll is_cancelled between steps */
    .health = conf_health,
};

MCPP_DEFINE_ENTRY(CONFORMANCE_PLUGIN);
