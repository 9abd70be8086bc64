/*
 * reference.c — the C reference plugin for mcp-plugin-host (plugin ABI 1.0).
 *
 * Build (one line, from the repository root):
 *
 *   cc -shared -fPIC -O2 -I Sources/PluginABI/include -o libreference.so Plugins/reference-c/reference.c
 *
 * Run:   mcp-plugin-host --plugin ./libreference.so --listen 127.0.0.1:0
 *
 * What it declares:
 *   tools      echo {text}, add {a, b}, slow_count {seconds}, fail {message}
 *   resource   reference://readme
 *   template   reference://notes/{id}        (notes 1, 2 and 3 exist)
 *   prompt     greet {name, style?}
 *   completion greet.style, reference://notes/{id}.id
 *
 * How to read this file: section 1 is a complete tool (echo) — declaration, schema and
 * handler. Every other tool follows the same pattern. The plugin table and the entry
 * point are at the end. No JSON library is needed: schemas are string constants and the
 * host parses the call's arguments for us (host->arg_string, arg_int, arg_double, ...).
 *
 * Threading: CONCURRENT. Handlers share no mutable state, so nothing needs a lock.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */

#include "mcp_plugin.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The instance create() returns; every handler receives it. */
typedef struct reference {
    const mcpp_host *host;
} reference;

/* The plugin's own Prometheus series (section 8b), registered in create(); NULL when the host has no metrics
 * extension. The handles are valid for the life of the process and may be used from any thread. */
static const mcpp_metrics *METRICS;
static mcpp_metric *ECHO_CALLS;      /* mcp_plugin_reference_tool_calls_total{tool="echo"} */
static mcpp_metric *ADD_CALLS;       /* ... {tool="add"} */
static mcpp_metric *ECHO_TEXT_BYTES; /* mcp_plugin_reference_echo_text_bytes (a histogram) */

/* A C string literal as the (pointer, length) pair the ABI functions take. */
#define KEY(s) ("" s ""), (sizeof(s) - 1)

/* ------------------------------------------------------------------------------------- */
/* 0. Small helpers used by every handler.                                                */
/* ------------------------------------------------------------------------------------- */

/* Ends a call with `outcome` and a printf-formatted message. */
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

/* Ends a call whose argument `key` could not be read (st is the arg_* status). */
static void finish_bad_arg(const mcpp_host *h, mcpp_call *call, const char *key, const char *want,
                           mcpp_status st)
{
    if (st == MCPP_E_NOT_FOUND)
        finish_fmt(h, call, MCPP_OUTCOME_INVALID_PARAMS, "missing required argument '%s'", key);
    else if (st == MCPP_E_TYPE)
        finish_fmt(h, call, MCPP_OUTCOME_INVALID_PARAMS, "argument '%s' must be %s", key, want);
    else
        finish_fmt(h, call, MCPP_OUTCOME_INVALID_PARAMS, "argument '%s' is invalid (status %d)", key,
                   (int)st);
}

/* Ends a call after its output was added; st is the status of the last add_* call.
 * (After a cancellation the host discards the output, but finish() is still required.) */
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

/* A tool: its declaration and the function that runs it. */
typedef struct tool_entry {
    const mcpp_tool *decl;
    void (*run)(const mcpp_host *h, mcpp_call *call);
} tool_entry;

/* ------------------------------------------------------------------------------------- */
/* 1. echo — a complete tool: schema, handler and declaration (listed in TOOLS[] below).  */
/* ------------------------------------------------------------------------------------- */

static const char ECHO_SCHEMA[] =
    "{\"type\":\"object\","
    "\"properties\":{\"text\":{\"type\":\"string\",\"description\":\"The text to send back\"}},"
    "\"required\":[\"text\"]}";

static void tool_echo(const mcpp_host *h, mcpp_call *call)
{
    const char *text; /* borrowed from the host until finish() */
    size_t len;
    mcpp_status st = h->arg_string(call, KEY("text"), &text, &len);
    if (st != MCPP_OK) {
        finish_bad_arg(h, call, "text", "a string", st);
        return;
    }
    st = h->add_text(call, text, len); /* one text block with the same text */
    if (METRICS != NULL) {             /* lock-free: cheap enough for every call */
        METRICS->add(ECHO_CALLS, 1);
        METRICS->observe(ECHO_TEXT_BYTES, (double)len);
    }
    finish_result(h, call, st); /* MCPP_OUTCOME_OK: the result is sent */
}

static const mcpp_tool ECHO_TOOL = {
    .struct_size = sizeof(mcpp_tool),
    .flags = MCPP_TOOL_NONBLOCKING, /* returns at once: the host may skip a thread hop */
    .name = MCPP_LIT("echo"),
    .title = MCPP_LIT("Echo"),
    .description = MCPP_LIT("Returns the text it was given."),
    .input_schema = MCPP_LIT(ECHO_SCHEMA),
};

/* ------------------------------------------------------------------------------------- */
/* 2. add — two numbers, text result plus structuredContent with an outputSchema.        */
/* ------------------------------------------------------------------------------------- */

static const char ADD_SCHEMA[] =
    "{\"type\":\"object\","
    "\"properties\":{\"a\":{\"type\":\"number\",\"description\":\"First addend\"},"
    "\"b\":{\"type\":\"number\",\"description\":\"Second addend\"}},"
    "\"required\":[\"a\",\"b\"]}";
static const char ADD_OUTPUT_SCHEMA[] =
    "{\"type\":\"object\","
    "\"properties\":{\"sum\":{\"type\":\"number\"}},"
    "\"required\":[\"sum\"]}";
static const char ADD_ANNOTATIONS[] =
    "{\"readOnlyHint\":true,\"idempotentHint\":true,\"openWorldHint\":false}";

/* Shortest decimal text that reads back as the same double ("5", "0.30000000000000004"). */
static int format_number(char *buf, size_t size, double v)
{
    int n = 0;
    for (int precision = 1; precision <= 17; precision++) {
        n = snprintf(buf, size, "%.*g", precision, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return n;
}

static void tool_add(const mcpp_host *h, mcpp_call *call)
{
    double a, b;
    mcpp_status st = h->arg_double(call, KEY("a"), &a);
    if (st != MCPP_OK) {
        finish_bad_arg(h, call, "a", "a number", st);
        return;
    }
    st = h->arg_double(call, KEY("b"), &b);
    if (st != MCPP_OK) {
        finish_bad_arg(h, call, "b", "a number", st);
        return;
    }
    if (METRICS != NULL)
        METRICS->add(ADD_CALLS, 1);
    double sum = a + b;
    if (!isfinite(sum)) { /* JSON has no inf/nan */
        finish_fmt(h, call, MCPP_OUTCOME_TOOL_ERROR, "the sum is too large to represent");
        return;
    }
    char text[64], json[96];
    int n = format_number(text, sizeof text, sum);
    int m = snprintf(json, sizeof json, "{\"sum\":%s}", text);
    st = h->add_text(call, text, (size_t)n);
    if (st == MCPP_OK)
        st = h->set_structured(call, json, (size_t)m);
    finish_result(h, call, st);
}

static const mcpp_tool ADD_TOOL = {
    .struct_size = sizeof(mcpp_tool),
    .flags = MCPP_TOOL_NONBLOCKING,
    .name = MCPP_LIT("add"),
    .title = MCPP_LIT("Add"),
    .description = MCPP_LIT("Adds two numbers and returns the sum."),
    .input_schema = MCPP_LIT(ADD_SCHEMA),
    .output_schema = MCPP_LIT(ADD_OUTPUT_SCHEMA), /* describes structuredContent */
    .annotations = MCPP_LIT(ADD_ANNOTATIONS),
};

/* ------------------------------------------------------------------------------------- */
/* 3. slow_count — progress, a call log message and cancellation.                         */
/* ------------------------------------------------------------------------------------- */

#define SLOW_COUNT_DEFAULT 3
#define SLOW_COUNT_MAX 30

static const char SLOW_COUNT_SCHEMA[] =
    "{\"type\":\"object\","
    "\"properties\":{\"seconds\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":30,\"default\":3,"
    "\"description\":\"How long to count, in seconds (10 steps per second)\"}},"
    "\"required\":[]}";

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
        /* EINTR: sleep for the rest */
    }
}

static void tool_slow_count(const mcpp_host *h, mcpp_call *call)
{
    int64_t seconds = SLOW_COUNT_DEFAULT;
    mcpp_status st = h->arg_int(call, KEY("seconds"), &seconds);
    if (st != MCPP_OK && st != MCPP_E_NOT_FOUND) { /* absent or null: the default */
        finish_bad_arg(h, call, "seconds", "an integer", st);
        return;
    }
    if (seconds < 0 || seconds > SLOW_COUNT_MAX) {
        finish_fmt(h, call, MCPP_OUTCOME_INVALID_PARAMS, "argument 'seconds' must be between 0 and %d",
                   SLOW_COUNT_MAX);
        return;
    }
    int steps = (int)seconds * 10;
    char msg[64];
    int n = snprintf(msg, sizeof msg, "counting %d steps of 100 ms", steps);
    h->call_log(call, MCPP_LOG_INFO, msg, (size_t)n);

    for (int step = 0; step < steps; ) {
        if (h->is_cancelled(call)) {
            finish_fmt(h, call, MCPP_OUTCOME_TOOL_ERROR, "cancelled after %d steps", step);
            return;
        }
        sleep_ms(100);
        step++;
        n = snprintf(msg, sizeof msg, "step %d of %d", step, steps);
        h->progress(call, (double)step, (double)steps, msg, (size_t)n);
    }
    if (h->is_cancelled(call)) { /* cancelled during the last sleep */
        finish_fmt(h, call, MCPP_OUTCOME_TOOL_ERROR, "cancelled after %d steps", steps);
        return;
    }
    n = snprintf(msg, sizeof msg, "counted to %d", steps);
    finish_result(h, call, h->add_text(call, msg, (size_t)n));
}

static const mcpp_tool SLOW_COUNT_TOOL = {
    .struct_size = sizeof(mcpp_tool),
    .name = MCPP_LIT("slow_count"),
    .title = MCPP_LIT("Slow count"),
    .description = MCPP_LIT("Counts in steps of 100 ms, reporting progress; can be cancelled."),
    .input_schema = MCPP_LIT(SLOW_COUNT_SCHEMA),
};

/* ------------------------------------------------------------------------------------- */
/* 4. fail — a tool error result (isError: true), which is not a protocol error.          */
/* ------------------------------------------------------------------------------------- */

static const char FAIL_SCHEMA[] =
    "{\"type\":\"object\","
    "\"properties\":{\"message\":{\"type\":\"string\",\"description\":\"The error message\"}},"
    "\"required\":[\"message\"]}";

static void tool_fail(const mcpp_host *h, mcpp_call *call)
{
    const char *text;
    size_t len;
    mcpp_status st = h->arg_string(call, KEY("message"), &text, &len);
    if (st != MCPP_OK) {
        finish_bad_arg(h, call, "message", "a string", st);
        return;
    }
    /* The host appends the message as a text block of a result with isError = true. */
    h->finish(call, MCPP_OUTCOME_TOOL_ERROR, text, len);
}

static const mcpp_tool FAIL_TOOL = {
    .struct_size = sizeof(mcpp_tool),
    .name = MCPP_LIT("fail"),
    .title = MCPP_LIT("Fail"),
    .description = MCPP_LIT("Always fails with the given message."),
    .input_schema = MCPP_LIT(FAIL_SCHEMA),
};

/* ------------------------------------------------------------------------------------- */
/* 4b. Asking the client (ABI 1.1): confirm (elicitation), ask_model (sampling),          */
/*     list_roots (roots). The same code serves both protocol eras: in 2025-11-25 the     */
/*     callback gets the answer while the call waits; in 2026-07-28 the first attempt is  */
/*     SUSPENDED (the host answers input_required) and the client's retry runs the        */
/*     handler again, where the same request is answered at once.                         */
/* ------------------------------------------------------------------------------------- */

/* Appends `text` to `out` as a JSON string (quotes and escapes included); returns the new length. */
static size_t json_quote(char *out, size_t cap, size_t at, const char *text, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (at < cap) out[at] = '"';
    at++;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        char esc[7] = {0};
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; }
        else if (c < 0x20) { esc[0] = '\\'; esc[1] = 'u'; esc[2] = '0'; esc[3] = '0'; esc[4] = hex[c >> 4]; esc[5] = hex[c & 15]; }
        else esc[0] = (char)c;
        for (const char *e = esc; *e; e++) {
            if (at < cap) out[at] = *e;
            at++;
        }
    }
    if (at < cap) out[at] = '"';
    return at + 1;
}

/* The string at `pointer` in an answer, or NULL (with *len 0). */
static const char *answer_string(const mcpp_host *h, mcpp_call *call, const char *answer, size_t answer_len,
                                 const char *pointer, size_t *len)
{
    int32_t type = 0;
    const char *out = NULL;
    *len = 0;
    if (h->json_get(call, answer, answer_len, pointer, strlen(pointer), &type, &out, len) != MCPP_OK ||
        type != MCPP_JSON_STRING) {
        *len = 0;
        return NULL;
    }
    return out;
}

/* What every input callback does with the outcomes other than an answer. */
static int finish_unanswered(const mcpp_host *h, mcpp_call *call, int32_t status, const char *answer,
                             size_t answer_len, const char *what)
{
    size_t n;
    const char *msg;
    switch (status) {
    case MCPP_INPUT_ANSWERED:
        return 0;
    case MCPP_INPUT_SUSPENDED: /* 2026-07-28: the host sends input_required; we run again on the retry */
        h->finish(call, MCPP_OUTCOME_OK, NULL, 0);
        return 1;
    case MCPP_INPUT_UNSUPPORTED:
        finish_fmt(h, call, MCPP_OUTCOME_NEEDS_CAPABILITY, "this tool needs the client's %s capability", what);
        return 1;
    case MCPP_INPUT_REFUSED:
        msg = answer_string(h, call, answer, answer_len, "/message", &n);
        finish_fmt(h, call, MCPP_OUTCOME_TOOL_ERROR, "the client refused the %s request: %.*s", what, (int)n,
                   msg ? msg : "");
        return 1;
    default: /* MCPP_INPUT_CANCELLED */
        h->finish(call, MCPP_OUTCOME_INTERNAL, KEY("cancelled while waiting for the client"));
        return 1;
    }
}

static const char CONFIRM_SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{\"action\":{\"type\":\"string\",\"description\":\"What to confirm\"},"
    "\"twice\":{\"type\":\"boolean\",\"description\":\"Ask a second time after a yes\"}},"
    "\"required\":[\"action\"]}";

/* The host table, for callbacks whose user pointer carries something else. Set once by create(). */
static const mcpp_host *HOST;

/* Which question a callback answers: its user pointer is one of these. */
static const int ROUND_FIRST = 1, ROUND_AGAIN = 2;

static mcpp_status ask_confirmation(const mcpp_host *h, mcpp_call *call, int round);

static void confirm_answered(void *user, mcpp_call *call, int32_t status, const char *answer, size_t len)
{
    int round = *(const int *)user;
    const mcpp_host *h = HOST;
    if (finish_unanswered(h, call, status, answer, len, "elicitation"))
        return;
    size_t n = 0, an = 0;
    const char *action = answer_string(h, call, answer, len, "/action", &n);
    const char *text = NULL;
    h->arg_string(call, KEY("action"), &text, &an);
    if (action == NULL || !str_eq(action, n, "accept")) {
        char reply[64];
        int rn = snprintf(reply, sizeof reply, "Not confirmed: the user chose %.*s", action ? (int)(n > 20 ? 20 : n) : 7,
                          action ? action : "nothing");
        h->add_text(call, reply, (size_t)rn);
        h->finish(call, MCPP_OUTCOME_OK, NULL, 0);
        return;
    }
    int32_t type = 0;
    const char *yes = NULL;
    size_t yn = 0;
    if (h->json_get(call, answer, len, KEY("/content/confirm"), &type, &yes, &yn) != MCPP_OK || type != MCPP_JSON_BOOL ||
        !str_eq(yes, yn, "true")) {
        h->add_text(call, KEY("Not confirmed: the user said no"));
        h->finish(call, MCPP_OUTCOME_OK, NULL, 0);
        return;
    }
    int32_t twice = 0;
    h->arg_bool(call, KEY("twice"), &twice);
    if (twice && round == ROUND_FIRST) {
        if (ask_confirmation(h, call, 2) != MCPP_OK)
            h->finish(call, MCPP_OUTCOME_INTERNAL, KEY("could not ask again"));
        return;
    }
    const uint8_t *ticket = NULL;
    size_t tn = 0;
    char reply[800];
    int rn;
    if (h->get_request_state(call, &ticket, &tn) == MCPP_OK)
        rn = snprintf(reply, sizeof reply, "Confirmed: %.*s (after a retry carrying %.*s)",
                      (int)(an > 500 ? 500 : an), text, (int)(tn > 100 ? 100 : tn), (const char *)ticket);
    else
        rn = snprintf(reply, sizeof reply, "Confirmed: %.*s", (int)(an > 500 ? 500 : an), text);
    h->add_text(call, reply, (size_t)rn);
    h->finish(call, MCPP_OUTCOME_OK, NULL, 0);
}

static mcpp_status ask_confirmation(const mcpp_host *h, mcpp_call *call, int round)
{
    const char *text = NULL;
    size_t len = 0;
    if (h->arg_string(call, KEY("action"), &text, &len) != MCPP_OK)
        return MCPP_E_INVALID;
    char params[2048];
    size_t at = (size_t)snprintf(params, sizeof params, "{\"message\":");
    char question[600];
    int qn = snprintf(question, sizeof question, "%s: %.*s?", round == 1 ? "Really do this" : "Are you sure",
                      (int)(len > 500 ? 500 : len), text);
    at = json_quote(params, sizeof params, at, question, (size_t)qn);
    at += (size_t)snprintf(params + at, at < sizeof params ? sizeof params - at : 0,
                           ",\"requestedSchema\":{\"type\":\"object\",\"properties\":{\"confirm\":"
                           "{\"type\":\"boolean\",\"title\":\"Confirm\"}},\"required\":[\"confirm\"]}}");
    if (at >= sizeof params)
        return MCPP_E_TOO_LARGE;
    /* What comes back in the retry (2026-07-28): the host seals it; here, just a marker. */
    h->set_request_state(call, (const uint8_t *)"ticket-1", 8);
    return h->request_input(call, MCPP_INPUT_ELICIT, round == 1 ? "confirm" : "confirm_again",
                            round == 1 ? 7 : 13, params, at, confirm_answered,
                            (void *)(round == 1 ? &ROUND_FIRST : &ROUND_AGAIN));
}

static void tool_confirm(const mcpp_host *h, mcpp_call *call)
{
    mcpp_status st = ask_confirmation(h, call, 1);
    if (st == MCPP_E_INVALID)
        finish_bad_arg(h, call, "action", "a string", st);
    else if (st != MCPP_OK)
        h->finish(call, MCPP_OUTCOME_INTERNAL, KEY("could not ask the client"));
}

static const mcpp_tool CONFIRM_TOOL = {
    .struct_size = sizeof(mcpp_tool),
    .name = MCPP_LIT("confirm"),
    .title = MCPP_LIT("Confirm"),
    .description = MCPP_LIT("Asks the user to confirm an action (elicitation) and reports the answer."),
    .input_schema = {CONFIRM_SCHEMA, sizeof CONFIRM_SCHEMA - 1},
};

static const char ASK_MODEL_SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{\"question\":{\"type\":\"string\"}},\"required\":[\"question\"]}";

static void ask_model_answered(void *user, mcpp_call *call, int32_t status, const char *answer, size_t len)
{
    const mcpp_host *h = user;
    if (finish_unanswered(h, call, status, answer, len, "sampling"))
        return;
    size_t tn = 0, mn = 0;
    const char *text = answer_string(h, call, answer, len, "/content/text", &tn);
    const char *model = answer_string(h, call, answer, len, "/model", &mn);
    char reply[2400];
    int rn = snprintf(reply, sizeof reply, "The model (%.*s) says: %.*s", model ? (int)(mn > 100 ? 100 : mn) : 7,
                      model ? model : "unknown", (int)(tn > 2000 ? 2000 : tn), text ? text : "");
    h->add_text(call, reply, (size_t)rn);
    h->finish(call, MCPP_OUTCOME_OK, NULL, 0);
}

static void tool_ask_model(const mcpp_host *h, mcpp_call *call)
{
    const char *q = NULL;
    size_t len = 0;
    mcpp_status st = h->arg_string(call, KEY("question"), &q, &len);
    if (st != MCPP_OK) {
        finish_bad_arg(h, call, "question", "a string", st);
        return;
    }
    char params[4096];
    size_t at = (size_t)snprintf(params, sizeof params, "{\"messages\":[{\"role\":\"user\",\"content\":"
                                                        "{\"type\":\"text\",\"text\":");
    at = json_quote(params, sizeof params, at, q, len > 2000 ? 2000 : len);
    at += (size_t)snprintf(params + at, at < sizeof params ? sizeof params - at : 0, "}}],\"maxTokens\":200}");
    if (at >= sizeof params || h->request_input(call, MCPP_INPUT_SAMPLE, KEY("answer"), params, at,
                                                ask_model_answered, (void *)h) != MCPP_OK)
        h->finish(call, MCPP_OUTCOME_INTERNAL, KEY("could not ask the client's model"));
}

static const mcpp_tool ASK_MODEL_TOOL = {
    .struct_size = sizeof(mcpp_tool),
    .name = MCPP_LIT("ask_model"),
    .title = MCPP_LIT("Ask the model"),
    .description = MCPP_LIT("Asks the client's model a question (sampling) and reports its answer."),
    .input_schema = {ASK_MODEL_SCHEMA, sizeof ASK_MODEL_SCHEMA - 1},
};

static void roots_answered(void *user, mcpp_call *call, int32_t status, const char *answer, size_t len)
{
    const mcpp_host *h = user;
    if (finish_unanswered(h, call, status, answer, len, "roots"))
        return;
    char pointer[32];
    int count = 0;
    for (;; count++) {
        snprintf(pointer, sizeof pointer, "/roots/%d/uri", count);
        size_t n = 0;
        const char *uri = answer_string(h, call, answer, len, pointer, &n);
        if (uri == NULL)
            break;
        h->add_text(call, uri, n);
    }
    char summary[64];
    int sn = snprintf(summary, sizeof summary, "%d root%s", count, count == 1 ? "" : "s");
    h->add_text(call, summary, (size_t)sn);
    h->finish(call, MCPP_OUTCOME_OK, NULL, 0);
}

static void tool_list_roots(const mcpp_host *h, mcpp_call *call)
{
    if (h->request_input(call, MCPP_INPUT_ROOTS, KEY("roots"), NULL, 0, roots_answered, (void *)h) != MCPP_OK)
        h->finish(call, MCPP_OUTCOME_INTERNAL, KEY("could not ask the client for its roots"));
}

static const mcpp_tool LIST_ROOTS_TOOL = {
    .struct_size = sizeof(mcpp_tool),
    .name = MCPP_LIT("list_roots"),
    .title = MCPP_LIT("List roots"),
    .description = MCPP_LIT("Asks the client for its roots and lists their URIs."),
};

/* announce: tells the host that something changed, so listeners hear it (subscriptions). */
static const char ANNOUNCE_SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{\"uri\":{\"type\":\"string\",\"description\":\"A resource that changed\"},"
    "\"lists\":{\"type\":\"integer\",\"description\":\"MCPP_LIST_* bits: 1 tools, 2 resources, 4 prompts\"}}}";

static void tool_announce(const mcpp_host *h, mcpp_call *call)
{
    const char *uri = NULL;
    size_t len = 0;
    int64_t lists = 0;
    if (h->arg_string(call, KEY("uri"), &uri, &len) == MCPP_OK)
        h->notify_resource_updated(h->ctx, uri, len);
    if (h->arg_int(call, KEY("lists"), &lists) == MCPP_OK && lists > 0 && lists < 8)
        h->notify_list_changed(h->ctx, (uint32_t)lists);
    h->add_text(call, KEY("announced"));
    h->finish(call, MCPP_OUTCOME_OK, NULL, 0);
}

static const mcpp_tool ANNOUNCE_TOOL = {
    .struct_size = sizeof(mcpp_tool),
    .name = MCPP_LIT("announce"),
    .title = MCPP_LIT("Announce a change"),
    .description = MCPP_LIT("Reports a resource update and/or list changes to subscribed clients."),
    .input_schema = {ANNOUNCE_SCHEMA, sizeof ANNOUNCE_SCHEMA - 1},
};

/* Every tool: its declaration and its handler. A new tool is one more line here. */
static const tool_entry TOOLS[] = {
    {&ECHO_TOOL, tool_echo},
    {&ADD_TOOL, tool_add},
    {&SLOW_COUNT_TOOL, tool_slow_count},
    {&FAIL_TOOL, tool_fail},
    {&CONFIRM_TOOL, tool_confirm},
    {&ASK_MODEL_TOOL, tool_ask_model},
    {&LIST_ROOTS_TOOL, tool_list_roots},
    {&ANNOUNCE_TOOL, tool_announce},
};
#define TOOL_COUNT (sizeof TOOLS / sizeof TOOLS[0])

static void ref_call_tool(void *instance, mcpp_call *call, const char *name, size_t name_len)
{
    const mcpp_host *h = ((reference *)instance)->host;
    for (size_t i = 0; i < TOOL_COUNT; i++) {
        const mcpp_str *n = &TOOLS[i].decl->name;
        if (name_len == n->len && memcmp(name, n->ptr, n->len) == 0) {
            TOOLS[i].run(h, call);
            return;
        }
    }
    finish_fmt(h, call, MCPP_OUTCOME_NOT_FOUND, "unknown tool '%.*s'", (int)(name_len > 100 ? 100 : name_len),
               name);
}

/* ------------------------------------------------------------------------------------- */
/* 5. Resources: one plain resource and one template.                                     */
/* ------------------------------------------------------------------------------------- */

#define README_URI "reference://readme"
#define NOTES_TEMPLATE "reference://notes/{id}"

static const char README_TEXT[] =
    "This is the reference plugin of mcp-supervisor, written in C against the plugin ABI 1.0.\n"
    "Tools: echo, add, slow_count, fail. Notes 1 to 3 live at reference://notes/{id}.\n";

static const mcpp_resource README_RESOURCE = {
    .struct_size = sizeof(mcpp_resource),
    .uri = MCPP_LIT(README_URI),
    .name = MCPP_LIT("readme"),
    .title = MCPP_LIT("Read me"),
    .description = MCPP_LIT("What this plugin is."),
    .mime_type = MCPP_LIT("text/plain"),
    .size = (int64_t)(sizeof README_TEXT - 1),
};

static const mcpp_resource_template NOTES_RESOURCE_TEMPLATE = {
    .struct_size = sizeof(mcpp_resource_template),
    .uri_template = MCPP_LIT(NOTES_TEMPLATE),
    .name = MCPP_LIT("note"),
    .title = MCPP_LIT("Note"),
    .description = MCPP_LIT("A short note; ids 1, 2 and 3 exist."),
    .mime_type = MCPP_LIT("text/plain"),
};

static int note_exists(const char *id, size_t len)
{
    return str_eq(id, len, "1") || str_eq(id, len, "2") || str_eq(id, len, "3");
}

static void ref_read_resource(void *instance, mcpp_call *call, const char *uri, size_t uri_len,
                              const char *uri_template, size_t uri_template_len)
{
    const mcpp_host *h = ((reference *)instance)->host;
    if (uri_template_len == 0 && str_eq(uri, uri_len, README_URI)) {
        /* ABI 1.1: the text is fixed at build time, any cache may keep it for five minutes. */
        if (h->abi_minor >= 1)
            h->set_cache(call, 300000, MCPP_CACHE_PUBLIC);
        finish_result(h, call,
                      h->add_resource_text(call, uri, uri_len, KEY("text/plain"), README_TEXT,
                                           sizeof README_TEXT - 1));
        return;
    }
    if (str_eq(uri_template, uri_template_len, NOTES_TEMPLATE)) {
        const char *id; /* the {id} variable of the template */
        size_t id_len;
        mcpp_status st = h->arg_string(call, KEY("id"), &id, &id_len);
        if (st != MCPP_OK) {
            finish_bad_arg(h, call, "id", "a string", st);
            return;
        }
        if (!note_exists(id, id_len)) {
            finish_fmt(h, call, MCPP_OUTCOME_NOT_FOUND, "no note with id '%.*s'",
                       (int)(id_len > 100 ? 100 : id_len), id);
            return;
        }
        char text[32];
        int n = snprintf(text, sizeof text, "Note %.*s", (int)id_len, id);
        finish_result(h, call, h->add_resource_text(call, uri, uri_len, KEY("text/plain"), text, (size_t)n));
        return;
    }
    finish_fmt(h, call, MCPP_OUTCOME_NOT_FOUND, "unknown resource '%.*s'", (int)(uri_len > 200 ? 200 : uri_len),
               uri);
}

/* ------------------------------------------------------------------------------------- */
/* 6. The greet prompt.                                                                   */
/* ------------------------------------------------------------------------------------- */

static const mcpp_prompt_arg GREET_ARGS[] = {
    {.struct_size = sizeof(mcpp_prompt_arg),
     .flags = MCPP_ARG_REQUIRED,
     .name = MCPP_LIT("name"),
     .description = MCPP_LIT("Who to greet")},
    {.struct_size = sizeof(mcpp_prompt_arg),
     .flags = 0,
     .name = MCPP_LIT("style"),
     .description = MCPP_LIT("friendly (default), formal, pirate or poetic")},
};

static const mcpp_prompt GREET_PROMPT = {
    .struct_size = sizeof(mcpp_prompt),
    .arg_count = sizeof GREET_ARGS / sizeof GREET_ARGS[0],
    .name = MCPP_LIT("greet"),
    .title = MCPP_LIT("Greet someone"),
    .description = MCPP_LIT("Asks the model to greet a person in a given style."),
    .args = GREET_ARGS,
};

static void ref_get_prompt(void *instance, mcpp_call *call, const char *name, size_t name_len)
{
    const mcpp_host *h = ((reference *)instance)->host;
    if (!str_eq(name, name_len, "greet")) {
        finish_fmt(h, call, MCPP_OUTCOME_NOT_FOUND, "unknown prompt '%.*s'", (int)(name_len > 100 ? 100 : name_len),
                   name);
        return;
    }
    const char *who, *style = "friendly";
    size_t who_len, style_len = strlen(style);
    mcpp_status st = h->arg_string(call, KEY("name"), &who, &who_len);
    if (st != MCPP_OK) {
        finish_bad_arg(h, call, "name", "a string", st);
        return;
    }
    st = h->arg_string(call, KEY("style"), &style, &style_len);
    if (st == MCPP_E_NOT_FOUND || (st == MCPP_OK && style_len == 0)) {
        style = "friendly";
        style_len = strlen(style);
    } else if (st != MCPP_OK) {
        finish_bad_arg(h, call, "style", "a string", st);
        return;
    }
    /* The message can be as long as the arguments: build it on the heap. */
    static const char A[] = "Please greet ", B[] = " in a ", C[] = " way.";
    size_t len = (sizeof A - 1) + who_len + (sizeof B - 1) + style_len + (sizeof C - 1);
    char *text = malloc(len);
    if (text == NULL) {
        finish_fmt(h, call, MCPP_OUTCOME_INTERNAL, "out of memory");
        return;
    }
    char *p = text;
    memcpy(p, A, sizeof A - 1), p += sizeof A - 1;
    memcpy(p, who, who_len), p += who_len;
    memcpy(p, B, sizeof B - 1), p += sizeof B - 1;
    memcpy(p, style, style_len), p += style_len;
    memcpy(p, C, sizeof C - 1);
    h->set_description(call, KEY("A greeting"));
    st = h->add_text(call, text, len); /* one message, role user (the default) */
    free(text);                          /* add_text copied it */
    finish_result(h, call, st);
}

/* ------------------------------------------------------------------------------------- */
/* 7. Completion: greet.style and the {id} of the notes template.                          */
/* ------------------------------------------------------------------------------------- */

static const char *const STYLES[] = {"friendly", "formal", "pirate", "poetic"};
static const char *const NOTE_IDS[] = {"1", "2", "3"};

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

static void ref_complete(void *instance, mcpp_call *call, int32_t ref_kind, const char *ref, size_t ref_len,
                         const char *arg, size_t arg_len, const char *value, size_t value_len)
{
    const mcpp_host *h = ((reference *)instance)->host;
    if (ref_kind == MCPP_REF_PROMPT && str_eq(ref, ref_len, "greet")) {
        if (str_eq(arg, arg_len, "style"))
            complete_from(h, call, STYLES, sizeof STYLES / sizeof STYLES[0], value, value_len);
        else
            complete_from(h, call, NULL, 0, value, value_len); /* names: nothing to offer */
        return;
    }
    if (ref_kind == MCPP_REF_RESOURCE_TEMPLATE && str_eq(ref, ref_len, NOTES_TEMPLATE)) {
        if (str_eq(arg, arg_len, "id"))
            complete_from(h, call, NOTE_IDS, sizeof NOTE_IDS / sizeof NOTE_IDS[0], value, value_len);
        else
            complete_from(h, call, NULL, 0, value, value_len);
        return;
    }
    finish_fmt(h, call, MCPP_OUTCOME_NOT_FOUND, "nothing to complete for '%.*s'",
               (int)(ref_len > 200 ? 200 : ref_len), ref);
}

/* ------------------------------------------------------------------------------------- */
/* 8. Life cycle, declarations, health.                                                   */
/* ------------------------------------------------------------------------------------- */

/* 8b. The plugin's own metrics (the host extension "org.mcp-supervisor.metrics/1"): the supervisor's metrics
 * endpoint shows them as mcp_plugin_<name>{server, group, replica, <labels>}. Optional: an older host has no
 * such extension, and the plugin just goes without. */
static mcpp_status register_metrics(const mcpp_host *host)
{
    const mcpp_metrics *m = host->abi_minor >= 1 ? host->get_extension(host->ctx, MCPP_METRICS_EXTENSION) : NULL;
    if (m == NULL || !MCPP_HAS(m, mcpp_metrics, observe))
        return MCPP_OK;
    static const mcpp_str echo_label[] = {MCPP_LIT("tool"), MCPP_LIT("echo")};
    static const mcpp_str add_label[] = {MCPP_LIT("tool"), MCPP_LIT("add")};
    static const double text_buckets[] = {8, 64, 512};
    mcpp_status st = m->register_metric(m->ctx, MCPP_METRIC_COUNTER, KEY("reference_tool_calls_total"),
                                        KEY("Calls of the reference plugin's tools, by tool."), echo_label, 1, NULL,
                                        0, &ECHO_CALLS);
    if (st == MCPP_OK)
        st = m->register_metric(m->ctx, MCPP_METRIC_COUNTER, KEY("reference_tool_calls_total"),
                                KEY("Calls of the reference plugin's tools, by tool."), add_label, 1, NULL, 0,
                                &ADD_CALLS);
    if (st == MCPP_OK)
        st = m->register_metric(m->ctx, MCPP_METRIC_HISTOGRAM, KEY("reference_echo_text_bytes"),
                                KEY("Bytes of the texts the echo tool sent back."), NULL, 0, text_buckets,
                                sizeof text_buckets / sizeof text_buckets[0], &ECHO_TEXT_BYTES);
    if (st == MCPP_OK)
        METRICS = m; /* only once every handle is in place */
    return st;
}

static mcpp_status ref_create(const mcpp_host *host, const char *config, size_t config_len,
                              const mcpp_writer *err, void **instance)
{
    (void)config; /* this plugin has no configuration */
    (void)config_len;
    reference *self = calloc(1, sizeof *self);
    if (self == NULL) {
        static const char oom[] = "out of memory";
        err->write(err->ctx, oom, sizeof oom - 1);
        return MCPP_E_FAILED;
    }
    self->host = host;
    HOST = host;
    if (register_metrics(host) != MCPP_OK) { /* the host logged why; the plugin works without them */
        static const char why[] = "reference: metrics not registered";
        host->log(host->ctx, MCPP_LOG_WARNING, why, sizeof why - 1);
    }
    *instance = self;
    return MCPP_OK;
}

static void ref_destroy(void *instance)
{
    free(instance);
}

static mcpp_status ref_describe(void *instance, const mcpp_registry *reg)
{
    (void)instance;
    mcpp_status st;
    for (size_t i = 0; i < TOOL_COUNT; i++)
        if ((st = reg->add_tool(reg->ctx, TOOLS[i].decl)) != MCPP_OK)
            return st;
    if ((st = reg->add_resource(reg->ctx, &README_RESOURCE)) != MCPP_OK)
        return st;
    if ((st = reg->add_resource_template(reg->ctx, &NOTES_RESOURCE_TEMPLATE)) != MCPP_OK)
        return st;
    if ((st = reg->add_prompt(reg->ctx, &GREET_PROMPT)) != MCPP_OK)
        return st;
    /* ABI 1.1 cache hints: the declarations change only with a new build, so any cache may keep the lists
     * for a minute (2026-07-28 clients). */
    if (MCPP_HAS(reg, mcpp_registry, set_list_cache))
        return reg->set_list_cache(reg->ctx, MCPP_LIST_TOOLS | MCPP_LIST_RESOURCES | MCPP_LIST_PROMPTS, 60000,
                                   MCPP_CACHE_PUBLIC);
    return MCPP_OK;
}

static mcpp_status ref_health(void *instance, const mcpp_writer *detail)
{
    (void)instance;
    detail->write(detail->ctx, "ok", 2);
    return MCPP_OK;
}

/* ------------------------------------------------------------------------------------- */
/* 9. The plugin table and the entry point.                                               */
/* ------------------------------------------------------------------------------------- */

static const mcpp_plugin REFERENCE_PLUGIN = {
    .struct_size = sizeof(mcpp_plugin),
    .threading = MCPP_THREADING_CONCURRENT,
    .max_concurrency = 0, /* the host's default */
    .name = MCPP_LIT("reference"),
    .version = MCPP_LIT("1.0.0"),
    .title = MCPP_LIT("Reference plugin (C)"),
    .instructions = MCPP_LIT("A demonstration server: echo text, add numbers, count slowly, "
                             "read notes and get a greeting prompt."),
    .create = ref_create,
    .destroy = ref_destroy,
    .describe = ref_describe,
    .call_tool = ref_call_tool,
    .read_resource = ref_read_resource,
    .get_prompt = ref_get_prompt,
    .complete = ref_complete,
    .cancel = NULL, /* slow_count polls is_cancelled instead */
    .health = ref_health,
};

MCPP_DEFINE_ENTRY(REFERENCE_PLUGIN);
