/*
 * mcp_plugin.h — the MCP plugin ABI, major version 1 (minor 1).
 *
 * One dependency-free C header is the whole contract between a plugin (.so) and
 * mcp-plugin-host. The host owns the Model Context Protocol: HTTP, JSON-RPC,
 * protocol revisions, sessions, pagination, progress, cancellation and error
 * mapping. A plugin declares tools, resources, resource templates, prompts and
 * completions and answers calls through the host's writer callbacks.
 *
 * Rules that never change within major 1:
 *   - The entry point is the function mcpp_negotiate_v1 (see the end of this file).
 *     A future major adds mcpp_negotiate_v2 beside it.
 *   - Every struct starts with `uint32_t struct_size`. Fields are only ever appended.
 *     A reader checks MCPP_HAS(ptr, type, field) before touching a field newer than 1.0.
 *     (mcpp_str, a fixed pointer + length pair, is the one struct that never grows.)
 *   - Fixed-width integers and #define constants; no C enums, bitfields, packing or varargs.
 *   - Text is UTF-8, passed as pointer + length and never required to be NUL-terminated.
 *     The one exception: extension ids, which are NUL-terminated ASCII.
 *   - Nothing is freed across the boundary. Inputs are borrowed for the duration of the
 *     call that passes them; copy what you keep. Output goes through host callbacks
 *     that copy before they return.
 *   - Every callback takes its context pointer (or the opaque call handle) first.
 *   - Status codes are never renumbered or reused.
 *
 * Threading, stated once here and repeated per function:
 *   [main]     called by the host on its control thread, never concurrently with any
 *              other plugin function except handlers of a CONCURRENT plugin.
 *   [handler]  called on a host worker thread. SERIAL plugins: one handler at a time, and each
 *              handler (and create before the first) happens-before the next one, even when the
 *              next runs on another thread. CONCURRENT plugins: up to max_concurrency at once.
 *              Functions marked [any] (health, diagnose, cancel) may run beside handlers even
 *              for a SERIAL plugin.
 *   [any]      may be called by the plugin from any thread, including its own threads.
 *
 * Copyright the mcp-supervisor authors. Licensed under the Apache License 2.0.
 */
#ifndef MCP_PLUGIN_H
#define MCP_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MCPP_ABI_MAJOR 1
#define MCPP_ABI_MINOR 1

#if defined(__GNUC__) || defined(__clang__)
#define MCPP_EXPORT __attribute__((visibility("default")))
#else
#define MCPP_EXPORT
#endif

/* True when the struct behind `ptr` is large enough to contain `field`. */
#define MCPP_HAS(ptr, type, field) \
    ((ptr)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* ---------------------------------------------------------------------------------- */
/* Status codes returned by ABI functions. Never renumbered, never reused.              */
/* Protocol-level outcomes (unknown tool, tool failed) are NOT statuses: they travel     */
/* through mcpp_host.finish with an MCPP_OUTCOME_* value.                                */
/* ---------------------------------------------------------------------------------- */
typedef int32_t mcpp_status;
#define MCPP_OK 0
#define MCPP_E_FAILED 1      /* generic failure; detail went through the error writer      */
#define MCPP_E_VERSION 2     /* the plugin needs a newer ABI minor (or another major)      */
#define MCPP_E_INVALID 3     /* an argument was invalid (NULL, bad UTF-8, bad JSON, ...)  */
#define MCPP_E_NOT_FOUND 4   /* argument helpers: the key is absent or null               */
#define MCPP_E_TYPE 5        /* argument helpers: the value has another JSON type          */
#define MCPP_E_TOO_LARGE 6   /* output exceeded the host's limit for one result           */
#define MCPP_E_FINISHED 7    /* the call was already finished; the handle is stale         */
#define MCPP_E_CANCELLED 8   /* the call was cancelled; output is discarded               */

/* Threading models a plugin declares in mcpp_plugin.threading. */
#define MCPP_THREADING_SERIAL 0     /* handlers are never called concurrently               */
#define MCPP_THREADING_CONCURRENT 1 /* handlers may run on several threads at once          */

/* Log levels (RFC 5424 severities, as MCP uses them). */
#define MCPP_LOG_DEBUG 7
#define MCPP_LOG_INFO 6
#define MCPP_LOG_NOTICE 5
#define MCPP_LOG_WARNING 4
#define MCPP_LOG_ERROR 3
#define MCPP_LOG_CRITICAL 2
#define MCPP_LOG_ALERT 1
#define MCPP_LOG_EMERGENCY 0

/* How a call ends (mcpp_host.finish). The host maps each to the right protocol message
 * for the client's protocol revision. */
#define MCPP_OUTCOME_OK 0             /* success: the result built so far is sent          */
#define MCPP_OUTCOME_TOOL_ERROR 1     /* tools/call only: a result with isError = true; the */
                                      /* message (if any) is appended as a text block       */
#define MCPP_OUTCOME_NOT_FOUND 2      /* unknown tool, prompt or resource                   */
#define MCPP_OUTCOME_INVALID_PARAMS 3 /* the arguments are wrong                            */
#define MCPP_OUTCOME_INTERNAL 4       /* the plugin failed for a reason of its own          */
/* 1.1: the call cannot go on without a client capability (after an input request answered          */
/* MCPP_INPUT_UNSUPPORTED): 2026-07-28 -32021 with data.requiredCapabilities (HTTP 400), earlier -32602 */
#define MCPP_OUTCOME_NEEDS_CAPABILITY 5

/* Roles of prompt messages (mcpp_host.set_role). */
#define MCPP_ROLE_USER 0
#define MCPP_ROLE_ASSISTANT 1

/* Which list changed (mcpp_host.notify_list_changed). */
#define MCPP_LIST_TOOLS 1
#define MCPP_LIST_RESOURCES 2
#define MCPP_LIST_PROMPTS 4

/* What a completion request refers to (mcpp_plugin.complete). */
#define MCPP_REF_PROMPT 0
#define MCPP_REF_RESOURCE_TEMPLATE 1

/* 1.1: what a call can ask the client for (mcpp_host.request_input). */
#define MCPP_INPUT_ELICIT 0 /* elicitation/create: params {"message", "requestedSchema"} (form) or     */
                            /* {"mode":"url", "message", "url"}; the answer is an ElicitResult         */
                            /* {"action":"accept"|"decline"|"cancel", "content"}                        */
#define MCPP_INPUT_SAMPLE 1 /* sampling/createMessage: params {"messages", "maxTokens", ...}; the      */
                            /* answer is a CreateMessageResult {"role", "content", "model", ...}        */
#define MCPP_INPUT_ROOTS 2  /* roots/list: params empty; the answer is {"roots": [{"uri", "name"}]}    */

/* 1.1: how an input request ended (the status passed to an mcpp_input_callback). */
#define MCPP_INPUT_ANSWERED 0    /* answer: the client's result as JSON text                              */
#define MCPP_INPUT_REFUSED 1     /* the client answered with an error; answer: the JSON-RPC error object  */
#define MCPP_INPUT_UNSUPPORTED 2 /* the client did not declare the capability (or mode); nothing was sent */
#define MCPP_INPUT_CANCELLED 3   /* the call was cancelled or passed its deadline while waiting           */
#define MCPP_INPUT_SUSPENDED 4   /* 2026-07-28: the client answers in a retry of the whole request. Finish */
                                 /* the call (any outcome; the host sends input_required instead); the   */
                                 /* handler runs again on the retry and this request is answered at once  */

/* 1.1: JSON value types (mcpp_host.json_get). */
#define MCPP_JSON_NULL 0
#define MCPP_JSON_BOOL 1
#define MCPP_JSON_NUMBER 2
#define MCPP_JSON_STRING 3
#define MCPP_JSON_ARRAY 4
#define MCPP_JSON_OBJECT 5

/* 1.1: cache scopes (mcpp_registry.set_list_cache, mcpp_host.set_cache). */
#define MCPP_CACHE_PRIVATE 0 /* "private": only within the same authorization context (the default)    */
#define MCPP_CACHE_PUBLIC 1  /* "public": holds no user-specific data, any cache may keep it              */

/* Flags of a prompt argument. */
#define MCPP_ARG_REQUIRED 1

/* UTF-8 text: pointer + length. `ptr` may be NULL only when `len` is 0. */
typedef struct mcpp_str {
    const char *ptr;
    size_t len;
} mcpp_str;

/* A string literal (or char array) as an mcpp_str initializer: mcpp_str s = MCPP_LIT("echo");
 * Never pass a `const char *`: sizeof would give the pointer's size. */
#define MCPP_LIT(s) { (s), sizeof(s) - 1 }

/* A host-owned sink for text (error details, health reports). write() copies the bytes
 * before it returns and may be called several times; the pieces are concatenated.
 * Thread: the thread that received the writer, during that call only. */
typedef struct mcpp_writer {
    uint32_t struct_size;
    uint32_t reserved;
    void *ctx;
    void (*write)(void *ctx, const char *bytes, size_t len);
} mcpp_writer;

/* The opaque handle of one request in flight. Host-owned. Valid from the moment the host
 * passes it to a handler until the plugin calls mcpp_host.finish on it, on any thread. */
typedef struct mcpp_call mcpp_call;

/* 1.1: receives the end of one input request, exactly once (see mcpp_host.request_input). status is
 * MCPP_INPUT_*; answer (JSON text, borrowed for the duration of the callback) is the client's result for
 * ANSWERED, the error object for REFUSED, empty otherwise. Thread: a handler thread of the plugin (for a
 * SERIAL plugin, serialized with its handlers), never inside request_input. The call is still open: use it,
 * and finish it (now or later). */
typedef void (*mcpp_input_callback)(void *user, mcpp_call *call, int32_t status, const char *answer,
                                    size_t answer_len);

/* ---------------------------------------------------------------------------------- */
/* Declarations, passed to mcpp_registry during describe(). All text is copied.          */
/* ---------------------------------------------------------------------------------- */

/* Flags of a tool (mcpp_tool.flags). */
#define MCPP_TOOL_NONBLOCKING 1 /* the handler finishes within microseconds and never blocks (no I/O, no   */
                                /* sleeping, no locks held by other calls): a CONCURRENT plugin's host may */
                                /* run it on its network thread and skip a thread hop. Never set it on a    */
                                /* tool that can wait for anything: it would stall every other request.     */

typedef struct mcpp_tool {
    uint32_t struct_size;     /* sizeof(mcpp_tool) */
    uint32_t flags;           /* MCPP_TOOL_* bits                                      */
    mcpp_str name;            /* required; unique among tools                          */
    mcpp_str title;           /* optional human-readable name                          */
    mcpp_str description;     /* optional                                              */
    mcpp_str input_schema;    /* JSON Schema object as JSON text; empty = {"type":"object"} */
    mcpp_str output_schema;   /* optional JSON Schema object for structuredContent      */
    mcpp_str annotations;     /* optional ToolAnnotations object as JSON text          */
} mcpp_tool;

typedef struct mcpp_resource {
    uint32_t struct_size;     /* sizeof(mcpp_resource) */
    uint32_t reserved;
    mcpp_str uri;             /* required; unique among resources                      */
    mcpp_str name;            /* required                                              */
    mcpp_str title;
    mcpp_str description;
    mcpp_str mime_type;
    int64_t size;             /* size in bytes, or -1 when unknown                     */
} mcpp_resource;

typedef struct mcpp_resource_template {
    uint32_t struct_size;     /* sizeof(mcpp_resource_template) */
    uint32_t reserved;
    mcpp_str uri_template;    /* RFC 6570 level-1 template, e.g. "demo://notes/{id}"   */
    mcpp_str name;            /* required                                              */
    mcpp_str title;
    mcpp_str description;
    mcpp_str mime_type;
} mcpp_resource_template;

typedef struct mcpp_prompt_arg {
    uint32_t struct_size;     /* sizeof(mcpp_prompt_arg) */
    uint32_t flags;           /* MCPP_ARG_REQUIRED                                     */
    mcpp_str name;
    mcpp_str title;
    mcpp_str description;
} mcpp_prompt_arg;

typedef struct mcpp_prompt {
    uint32_t struct_size;     /* sizeof(mcpp_prompt) */
    uint32_t arg_count;       /* number of entries in args                             */
    mcpp_str name;            /* required; unique among prompts                        */
    mcpp_str title;
    mcpp_str description;
    const mcpp_prompt_arg *args; /* arg_count entries; the host steps by args[0].struct_size, so  */
                                 /* an array built against an older minor stays readable        */
} mcpp_prompt;

/* Passed to describe(). Each add_* copies the declaration and returns MCPP_OK, or
 * MCPP_E_INVALID (missing name, duplicate, schema not a JSON object) with the reason
 * in the host's log. Thread: the thread that called describe(), during that call. */
typedef struct mcpp_registry {
    uint32_t struct_size;
    uint32_t reserved;
    void *ctx;
    mcpp_status (*add_tool)(void *ctx, const mcpp_tool *tool);
    mcpp_status (*add_resource)(void *ctx, const mcpp_resource *resource);
    mcpp_status (*add_resource_template)(void *ctx, const mcpp_resource_template *tmpl);
    mcpp_status (*add_prompt)(void *ctx, const mcpp_prompt *prompt);
    /* --- 1.1 (check MCPP_HAS(reg, mcpp_registry, set_list_cache)) --- */
    /* Cache hint for the lists named by MCPP_LIST_* bits (MCPP_LIST_RESOURCES covers resources/list and
     * resources/templates/list): 2026-07-28 clients may reuse a page for ttl_ms milliseconds (>= 0) within
     * scope (MCPP_CACHE_*). Every page of a list carries the same hint. Default 0 / private. */
    mcpp_status (*set_list_cache)(void *ctx, uint32_t lists, int64_t ttl_ms, int32_t scope);
} mcpp_registry;

/* ---------------------------------------------------------------------------------- */
/* The host's functions. The table is static for the life of the process. Every       */
/* function here is [any]: callable from any thread, including the plugin's own.       */
/* Functions taking a call handle may be used only until finish() on that call.       */
/* ---------------------------------------------------------------------------------- */
typedef struct mcpp_host {
    uint32_t struct_size;
    uint32_t abi_minor;       /* the minor the host implements (>= the plugin's)        */
    void *ctx;                /* pass to the functions below that take `void *ctx`      */

    /* Writes a line to the host's log (stderr, collected by the supervisor). */
    void (*log)(void *ctx, int32_t level, const char *msg, size_t len);
    /* Tells the host that declarations changed (MCPP_LIST_* bits); the host calls
     * describe() again and notifies subscribed clients. */
    void (*notify_list_changed)(void *ctx, uint32_t lists);
    /* Tells the host that the content of a resource changed. */
    void (*notify_resource_updated)(void *ctx, const char *uri, size_t uri_len);
    /* Looks up a host extension by versioned id ("org.example.thing/1"); NULL if absent.
     * The returned table starts with uint32_t struct_size and is static. */
    const void *(*get_extension)(void *ctx, const char *id);

    /* --- Reading a call's arguments (tools/call and prompts/get: the top-level keys of
     *     "arguments"; resources/read: the variables matched by the URI template, percent-decoded;
     *     completion/complete: the already-resolved arguments of the context). Out pointers are
     *     borrowed until finish(). arg_int accepts integers and integral numbers in int64 range
     *     (3.0 yes, 2.5 MCPP_E_TYPE); arg_double accepts any number. --- */
    mcpp_status (*arg_string)(mcpp_call *call, const char *key, size_t key_len, const char **out,
                              size_t *out_len);
    mcpp_status (*arg_int)(mcpp_call *call, const char *key, size_t key_len, int64_t *out);
    mcpp_status (*arg_double)(mcpp_call *call, const char *key, size_t key_len, double *out);
    mcpp_status (*arg_bool)(mcpp_call *call, const char *key, size_t key_len, int32_t *out);
    /* The value as JSON text; key NULL returns the whole arguments object (a non-NULL key of
     * length 0 is the key ""). */
    mcpp_status (*arg_json)(mcpp_call *call, const char *key, size_t key_len, const char **out,
                            size_t *out_len);

    /* --- Building the result. Each appends one content block: to the tool result, to the
     *     resource contents (resources/read: uri empty = the requested uri), or as one
     *     prompt message with the current role (prompts/get). --- */
    mcpp_status (*add_text)(mcpp_call *call, const char *text, size_t len);
    /* Binary data is passed raw; the host base64-encodes it. */
    mcpp_status (*add_image)(mcpp_call *call, const char *mime, size_t mime_len, const uint8_t *data,
                             size_t len);
    mcpp_status (*add_audio)(mcpp_call *call, const char *mime, size_t mime_len, const uint8_t *data,
                             size_t len);
    mcpp_status (*add_resource_text)(mcpp_call *call, const char *uri, size_t uri_len, const char *mime,
                                     size_t mime_len, const char *text, size_t len);
    mcpp_status (*add_resource_blob)(mcpp_call *call, const char *uri, size_t uri_len, const char *mime,
                                     size_t mime_len, const uint8_t *data, size_t len);
    /* A content block given as JSON text (for block kinds without a helper). */
    mcpp_status (*add_content_json)(mcpp_call *call, const char *json, size_t len);
    /* tools/call: the structuredContent object, as JSON text. */
    mcpp_status (*set_structured)(mcpp_call *call, const char *json, size_t len);
    /* prompts/get: role (MCPP_ROLE_*) of the messages added next; the default is user. */
    mcpp_status (*set_role)(mcpp_call *call, int32_t role);
    /* prompts/get: the result's description. */
    mcpp_status (*set_description)(mcpp_call *call, const char *text, size_t len);
    /* completion/complete: one more value (the host keeps the first 100). */
    mcpp_status (*add_completion)(mcpp_call *call, const char *value, size_t len);
    /* completion/complete: total count (or -1 if unknown) and whether more exist. */
    mcpp_status (*set_completion_info)(mcpp_call *call, int64_t total, int32_t has_more);

    /* --- While the call runs. --- */
    /* Progress: total < 0 means unknown; message may be empty. Dropped (MCPP_OK) when the
     * client did not ask for progress. */
    mcpp_status (*progress)(mcpp_call *call, double progress, double total, const char *msg, size_t len);
    /* A log message related to this call, sent to the client as notifications/message
     * when its level passes the client's threshold; always written to the host's log. */
    mcpp_status (*call_log)(mcpp_call *call, int32_t level, const char *msg, size_t len);
    /* Non-zero once the client cancelled, disconnected or the deadline passed (and for a
     * handle that is already finished). Cheap: poll it in loops. Output after cancellation is
     * discarded; still call finish(). */
    int32_t (*is_cancelled)(mcpp_call *call);

    /* Ends the call exactly once, on any thread, before or after the handler returns.
     * outcome is MCPP_OUTCOME_*; msg is the error text for outcomes other than OK.
     * If an add_* call returned MCPP_E_TOO_LARGE, the client gets an internal error instead of a
     * truncated result. After finish() the handle is invalid (calls on it return MCPP_E_FINISHED). */
    void (*finish)(mcpp_call *call, int32_t outcome, const char *msg, size_t len);

    /* --- 1.1 (check host->abi_minor >= 1, or MCPP_HAS(host, mcpp_host, request_input)) --- */

    /* Asks the client for input (tools/call, prompts/get and resources/read only). kind is MCPP_INPUT_*;
     * key names the request within the call (non-empty, unique per call); params is the request's params
     * object as JSON text (empty for roots). On MCPP_OK the callback runs exactly once, later, with the
     * outcome; any other status (MCPP_E_INVALID: bad kind, key or params, or another method;
     * MCPP_E_FINISHED; MCPP_E_CANCELLED) means no callback.
     * 2025-11-25 and earlier: the host sends the request on the call's response stream and calls back
     * with the client's answer; the call's deadline keeps running while the user thinks.
     * 2026-07-28: the client answers in a retry of the whole request (possibly at another replica), so the
     * host answers this attempt with input_required and calls back SUSPENDED after the handler returned;
     * on the retry the handler runs again from the start with the same arguments, and each request it
     * makes again with the same key is answered at once with the answer given (answers of every earlier
     * round are kept, sealed in requestState). Write handlers so that they ask before they act. */
    mcpp_status (*request_input)(mcpp_call *call, int32_t kind, const char *key, size_t key_len,
                                 const char *params, size_t params_len, mcpp_input_callback callback,
                                 void *user);
    /* Bytes the plugin wants back in the retry of this call (2026-07-28; at most 64 KiB, sealed with the
     * answers in requestState, never shown to the client in clear). Replaces what was set before. */
    mcpp_status (*set_request_state)(mcpp_call *call, const uint8_t *data, size_t len);
    /* The bytes set by the attempt this one retries; MCPP_E_NOT_FOUND on a first attempt. Borrowed until
     * finish(). */
    mcpp_status (*get_request_state)(mcpp_call *call, const uint8_t **out, size_t *out_len);
    /* resources/read: the cache hint of this result (2026-07-28 ttlMs and cacheScope); default 0 /
     * private. */
    mcpp_status (*set_cache)(mcpp_call *call, int64_t ttl_ms, int32_t scope);
    /* Reads one value out of JSON text (an input answer, say) at an RFC 6901 pointer ("/content/confirm",
     * "/roots/0/uri"; empty = the whole text). type gets MCPP_JSON_*; out gets a string's unescaped text, or
     * the value's JSON text for the other types ("true", "42", "{...}"), borrowed until finish(). Returns
     * MCPP_E_NOT_FOUND when the pointer leads nowhere, MCPP_E_INVALID when json is not JSON. */
    mcpp_status (*json_get)(mcpp_call *call, const char *json, size_t json_len, const char *pointer,
                            size_t pointer_len, int32_t *type, const char **out, size_t *out_len);
} mcpp_host;

/* ---------------------------------------------------------------------------------- */
/* Host extension "org.mcp-supervisor.metrics/1" (1.1 hosts): a plugin's own Prometheus */
/* series, published by the supervisor's metrics endpoint beside the host's own, as     */
/* mcp_plugin_<name>{server, group, replica, <the plugin's labels>}.                    */
/*   const mcpp_metrics *m = host->get_extension(host->ctx, MCPP_METRICS_EXTENSION);    */
/* NULL from an older host: then just skip them. Series count from the host's start.    */
/* ---------------------------------------------------------------------------------- */
#define MCPP_METRICS_EXTENSION "org.mcp-supervisor.metrics/1"

/* Kinds of series (mcpp_metrics.register_metric). */
#define MCPP_METRIC_COUNTER 0   /* goes only up (add with delta >= 0); its name ends in _total          */
#define MCPP_METRIC_GAUGE 1     /* goes up and down (add, set)                                         */
#define MCPP_METRIC_HISTOGRAM 2 /* counts observations in buckets (observe)                             */

/* One registered series; valid for the life of the process. */
typedef struct mcpp_metric mcpp_metric;

typedef struct mcpp_metrics {
    uint32_t struct_size;
    uint32_t reserved;
    void *ctx; /* pass to register_metric */

    /* Registers one series: a name and one fixed set of label pairs (labels[0] = labels[1],
     * labels[2] = labels[3], ...; label_count is the number of pairs, at most 8). [any]
     * name: [a-zA-Z_][a-zA-Z0-9_]*, at most 64 bytes; a counter's ends in "_total", no other ends in
     * _total, _bucket, _sum, _count or _created. Label names: the same rule, not starting with "__",
     * and none of server, group, replica, le, quantile (the supervisor's). help: 1 to 512 bytes.
     * buckets (histograms only, else NULL/0): 1 to 32 finite, strictly increasing upper bounds; NULL
     * and 0 take the host's duration buckets (0.0005 s to 30 s). Series of one name share kind, help,
     * label names (in order) and buckets. Registering a series again returns the same handle.
     * At most 256 series per plugin. Returns MCPP_OK and *out, or MCPP_E_INVALID (the host logs
     * what is wrong, naming the series) or MCPP_E_TOO_LARGE (the 256th series is the last). */
    mcpp_status (*register_metric)(void *ctx, int32_t kind, const char *name, size_t name_len,
                                   const char *help, size_t help_len, const mcpp_str *labels,
                                   size_t label_count, const double *buckets, size_t bucket_count,
                                   mcpp_metric **out);
    /* Counter and gauge: adds delta (a counter refuses a negative delta with MCPP_E_INVALID; all three
     * refuse NaN and infinities, and a handle of the wrong kind). Lock-free, [any]; about 7 ns on one
     * thread, tens of ns when threads contend for one series (bench/plugin_metrics/run.sh). */
    mcpp_status (*add)(mcpp_metric *metric, double delta);
    /* Gauge only: sets the value. [any] */
    mcpp_status (*set)(mcpp_metric *metric, double value);
    /* Histogram only: records one observation (a value equal to a bound counts in that bucket). [any] */
    mcpp_status (*observe)(mcpp_metric *metric, double value);
} mcpp_metrics;

/* ---------------------------------------------------------------------------------- */
/* The plugin's table, returned by mcpp_negotiate_v1. Static for the life of the        */
/* process: the host never frees or copies it. Every function pointer except create,    */
/* destroy and describe may be NULL (feature absent).                                   */
/* ---------------------------------------------------------------------------------- */
typedef struct mcpp_plugin {
    uint32_t struct_size;      /* sizeof(mcpp_plugin) as the plugin was compiled         */
    uint32_t threading;        /* MCPP_THREADING_*                                       */
    uint32_t max_concurrency;  /* CONCURRENT: most handlers at once; 0 = host default    */
    uint32_t reserved;
    mcpp_str name;             /* the server's name, reported as serverInfo.name         */
    mcpp_str version;          /* reported as serverInfo.version                         */
    mcpp_str title;            /* optional                                               */
    mcpp_str instructions;     /* optional guidance for the model                        */

    /* [main] Creates the instance. config is the plugin configuration as JSON text
     * ("{}" when none). On failure write a one-line reason to err and return a non-OK
     * status; the host then exits without calling anything else. */
    mcpp_status (*create)(const mcpp_host *host, const char *config, size_t config_len,
                          const mcpp_writer *err, void **instance);
    /* [main] Destroys the instance. Called once at graceful shutdown after every call
     * finished; may be skipped when the process dies. No call into the plugin (health, diagnose
     * and cancel included) runs during or after it. */
    void (*destroy)(void *instance);
    /* [main] Declares tools, resources, templates and prompts through reg. Called after
     * create and again after each notify_list_changed; never concurrently with itself. For a
     * CONCURRENT plugin the later calls run while handlers may be running: guard shared
     * declaration state with a lock. A failed add_* makes the whole describe fail (at startup
     * the host exits with status 17; later the previous declarations stay). */
    mcpp_status (*describe)(void *instance, const mcpp_registry *reg);

    /* [handler] Handlers. Each must end the call with host->finish exactly once, either
     * before it returns or later from any thread. name/uri are borrowed until finish. */
    void (*call_tool)(void *instance, mcpp_call *call, const char *name, size_t name_len);
    /* uri_template is the declared template the uri matched, or empty for a plain
     * resource (the host checks that a plain uri was declared before calling). */
    void (*read_resource)(void *instance, mcpp_call *call, const char *uri, size_t uri_len,
                          const char *uri_template, size_t uri_template_len);
    void (*get_prompt)(void *instance, mcpp_call *call, const char *name, size_t name_len);
    /* ref_kind MCPP_REF_*: ref is the prompt name or the template URI; arg/value are the
     * argument being completed and its partial value. */
    void (*complete)(void *instance, mcpp_call *call, int32_t ref_kind, const char *ref, size_t ref_len,
                     const char *arg, size_t arg_len, const char *value, size_t value_len);

    /* [any, must not block] The call was cancelled (is_cancelled is already non-zero).
     * A hint to stop early; the plugin must still finish() the call. It may arrive while the plugin is
     * finishing the call, even concurrently with finish(); never after finish() returned on this thread and
     * the host saw it. Handles are never reused for another call in the life of the process. */
    void (*cancel)(void *instance, mcpp_call *call);
    /* [any, must not block] Health of the instance: MCPP_OK healthy, MCPP_E_FAILED not.
     * Detail (one line) through the writer. */
    mcpp_status (*health)(void *instance, const mcpp_writer *detail);
    /* [any, must not block] A free-form diagnostic report (text or JSON). */
    mcpp_status (*diagnose)(void *instance, const mcpp_writer *report);
    /* [any] Plugin extension lookup by versioned id; NULL if absent. */
    const void *(*get_extension)(void *instance, const char *id);
} mcpp_plugin;

/* ---------------------------------------------------------------------------------- */
/* Negotiation.                                                                          */
/* ---------------------------------------------------------------------------------- */
typedef struct mcpp_negotiation {
    uint32_t struct_size;       /* in: sizeof(mcpp_negotiation) as the host knows it        */
    uint32_t host_abi_major;    /* in: MCPP_ABI_MAJOR of the host (1)                       */
    uint32_t host_abi_minor;    /* in: the highest minor the host implements                 */
    uint32_t plugin_abi_minor;  /* out: the minor the plugin was built against              */
    const mcpp_plugin *plugin;  /* out: the plugin's static table                            */
} mcpp_negotiation;

/* Fills n->plugin_abi_minor and n->plugin. Returns MCPP_OK, or MCPP_E_VERSION when the
 * host's minor is older than the plugin needs (fill plugin_abi_minor anyway, so the
 * host can name the versions). Must be fast and free of side effects.
 * Thread: [main]. Every plugin exports exactly this symbol: */
MCPP_EXPORT mcpp_status mcpp_negotiate_v1(mcpp_negotiation *n);

/* Size of mcpp_negotiation in ABI 1.0; hosts of any later 1.x pass at least this much. */
#define MCPP_NEGOTIATION_SIZE_1_0 (offsetof(mcpp_negotiation, plugin) + sizeof(void *))

/* The usual mcpp_negotiate_v1, written with a semicolon: MCPP_DEFINE_ENTRY(my_plugin_table);
 * It checks the host against the 1.0 size (not sizeof, which grows with later headers), so a plugin built
 * against a newer minor still reports the minor it needs to an older host. */
#define MCPP_DEFINE_ENTRY(table)                                                   \
    MCPP_EXPORT mcpp_status mcpp_negotiate_v1(mcpp_negotiation *n) {               \
        if (n == 0 || n->struct_size < MCPP_NEGOTIATION_SIZE_1_0)                  \
            return MCPP_E_INVALID;                                                 \
        n->plugin_abi_minor = MCPP_ABI_MINOR;                                      \
        n->plugin = &(table);                                                      \
        if (n->host_abi_major != MCPP_ABI_MAJOR ||                                 \
            !(n->host_abi_minor > MCPP_ABI_MINOR || n->host_abi_minor == MCPP_ABI_MINOR)) \
            return MCPP_E_VERSION;                                                 \
        return MCPP_OK;                                                            \
    }                                                                              \
    struct mcpp_entry_defined_

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MCP_PLUGIN_H */
