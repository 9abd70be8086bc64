/*
 * mcp_plugin.hpp — a header-only C++17 wrapper over mcp_plugin.h (plugin ABI 1.1).
 *
 * The C header stays the contract; this file only makes it pleasant and safe to use from C++:
 *
 *   static const mcpp::Plugin plugin{
 *       mcpp::Definition("mine", "1.0.0")
 *           .concurrent()                                   // mcpp_plugin.threading
 *           .tool(mcpp::Tool("echo").input_schema(SCHEMA),  // mcpp_tool, added in describe()
 *                 [](mcpp::Call &call) {                    // mcpp_plugin.call_tool, dispatched by name
 *                     call.add_text(call.string("text"));   // mcpp_host.arg_string / add_text
 *                     call.ok();                            // mcpp_host.finish(MCPP_OUTCOME_OK)
 *                 })};
 *   MCPP_PLUGIN(plugin);                                    // exports mcpp_negotiate_v1, nothing else
 *
 * What the wrapper guarantees (each is a rule of mcp_plugin.h):
 *
 *   - Nothing unwinds into the host. Every function whose address goes into the mcpp_plugin table is a
 *     `noexcept` thunk whose body runs inside try/catch(...). An exception from a handler finishes its call:
 *       mcpp::ToolError      -> MCPP_OUTCOME_TOOL_ERROR   (tools/call: a result with isError = true)
 *       mcpp::InvalidParams  -> MCPP_OUTCOME_INVALID_PARAMS
 *       mcpp::NotFound       -> MCPP_OUTCOME_NOT_FOUND
 *       mcpp::InternalError  -> MCPP_OUTCOME_INTERNAL
 *       any other exception  -> MCPP_OUTCOME_INTERNAL, message "<what> threw <type>: <what()>", also logged.
 *     create() failing by exception returns MCPP_E_FAILED with the reason written to the error writer;
 *     describe()/health() report MCPP_E_FAILED; destroy() swallows it.
 *   - Every call is finished exactly once (mcpp_host.finish). mcpp::Call owns the handle: after ok(),
 *     tool_error() or finish() it never touches the handle again (every method checks first), and a handler
 *     that returns without finishing (and without moving the Call elsewhere) gets its call finished as an
 *     internal error. Call is move-only: move it into another thread to finish later (the ABI allows finish
 *     on any thread, after the handler returned); its destructor finishes it as an internal error if that
 *     owner forgets.
 *   - struct_size. Every struct passed to the host is value-initialised with struct_size = sizeof(struct);
 *     every host struct is checked with MCPP_HAS before a field is read.
 *   - Ownership. Text from the host (arguments, names, URIs, config) is handed out as std::string_view,
 *     borrowed until the call is finished: copy what you keep. Text passed to the host is copied by the host
 *     before the function returns. The mcpp_plugin table and everything it points to is allocated once and
 *     never freed (the ABI wants it static for the life of the process; this also keeps it valid for a
 *     handler thread still running while the process exits).
 *   - Threading. SERIAL by default: handlers run one at a time, so they may share unguarded state. Declare
 *     .concurrent() only when every handler is thread-safe. The health callback is [any]: it may run beside
 *     handlers even for a SERIAL plugin. mcpp_plugin.cancel is left NULL: poll Call::is_cancelled().
 *   - Only mcpp_negotiate_v1 is exported: everything here is in a hidden-visibility namespace; build with
 *     -fvisibility=hidden (and a linker version script, see Plugins/cpp/build.sh, to hide the std:: template
 *     instances the compiler emits with default visibility).
 *
 *   - ABI 1.1 input requests are continuations, never blocking waits. The host answers an input request
 *     later, on a handler thread, and in 2026-07-28 sessions only after the handler returned (SUSPENDED), so a
 *     handler that waited for the answer would deadlock. Call::elicit(), sample(), list_roots() and ask() move
 *     the Call into a heap object handed to mcpp_host.request_input as the user pointer; the callback moves it
 *     out again and runs the continuation `void(mcpp::Call, mcpp::Answer)`:
 *       call.elicit("Really?", SCHEMA, [](mcpp::Call c, mcpp::Answer a) {
 *           a.require();                                  // refused/unsupported/cancelled -> an outcome
 *           c.add_text(a.string(c, "/action").value_or("?"));
 *           c.ok();
 *       });
 *     SUSPENDED (2026-07-28: the client answers in a retry, the handler then runs again from the start) never
 *     reaches the continuation: the wrapper finishes the call itself and the host sends input_required.
 *     A continuation is a boundary like a handler: exceptions are caught and finish the call with their
 *     outcome (also when it took the Call by value and the Call died while the exception unwound), a call it
 *     neither finished nor handed on is finished as an internal error, and the heap object is freed exactly
 *     once (by the callback; or at once when request_input refused, in which case the Call comes back and
 *     ask() throws). A 1.1 function on a host table without the field (struct_size, abi_minor) throws
 *     InternalError naming it.
 *
 * Declarations are fixed when the .so loads (describe() reports the same set every time). One mcpp::Plugin per
 * shared object. Compiles with g++/clang++ -std=c++17 -Wall -Wextra -Werror -fvisibility=hidden.
 *
 * Copyright the mcp-supervisor authors. Licensed under the Apache License 2.0.
 */
#ifndef MCP_PLUGIN_HPP
#define MCP_PLUGIN_HPP

#include "mcp_plugin.h"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#if defined(__GNUC__) || defined(__clang__)
#include <cxxabi.h> /* abi::__cxa_current_exception_type, to name the type of an unknown exception */
#define MCPP_CPP_HIDDEN __attribute__((visibility("hidden")))
#else
#define MCPP_CPP_HIDDEN
#endif

namespace MCPP_CPP_HIDDEN mcpp {

/* ======================================================================================================== */
/* 1. Constants: the C #defines as C++ types. Converted back to int32_t at the boundary (no C++ enum ever   */
/*    crosses it).                                                                                          */
/* ======================================================================================================== */

/* MCPP_OUTCOME_*: how a call ends (mcpp_host.finish). */
enum class Outcome : int32_t {
    ok = MCPP_OUTCOME_OK,
    tool_error = MCPP_OUTCOME_TOOL_ERROR,
    not_found = MCPP_OUTCOME_NOT_FOUND,
    invalid_params = MCPP_OUTCOME_INVALID_PARAMS,
    internal = MCPP_OUTCOME_INTERNAL,
    /* 1.1: the call needs a client capability (after an input request came back unsupported): 2026-07-28
     * -32021 with data.requiredCapabilities (HTTP 400), earlier -32602. */
    needs_capability = MCPP_OUTCOME_NEEDS_CAPABILITY,
};

/* MCPP_LOG_*: RFC 5424 severities. */
enum class Level : int32_t {
    debug = MCPP_LOG_DEBUG,
    info = MCPP_LOG_INFO,
    notice = MCPP_LOG_NOTICE,
    warning = MCPP_LOG_WARNING,
    error = MCPP_LOG_ERROR,
    critical = MCPP_LOG_CRITICAL,
    alert = MCPP_LOG_ALERT,
    emergency = MCPP_LOG_EMERGENCY,
};

/* MCPP_ROLE_*: role of the prompt messages added next (mcpp_host.set_role). */
enum class Role : int32_t { user = MCPP_ROLE_USER, assistant = MCPP_ROLE_ASSISTANT };

/* MCPP_LIST_* bits (Definition::list_cache). Combine with |. */
enum class List : uint32_t { tools = MCPP_LIST_TOOLS, resources = MCPP_LIST_RESOURCES, prompts = MCPP_LIST_PROMPTS };
constexpr List operator|(List a, List b) noexcept {
    return static_cast<List>(static_cast<uint32_t>(a) | static_cast<uint32_t>(b));
}

/* 1.1, MCPP_CACHE_*: who may keep a cached result (2026-07-28 cacheScope). */
enum class CacheScope : int32_t {
    private_ = MCPP_CACHE_PRIVATE, /* "private": only within the same authorization context (the default) */
    public_ = MCPP_CACHE_PUBLIC,   /* "public": holds no user-specific data */
};

/* 1.1, MCPP_INPUT_ELICIT/SAMPLE/ROOTS: what a call asks the client for (Call::ask). */
enum class Input : int32_t {
    elicitation = MCPP_INPUT_ELICIT, /* elicitation/create */
    sampling = MCPP_INPUT_SAMPLE,    /* sampling/createMessage */
    roots = MCPP_INPUT_ROOTS,        /* roots/list */
};

/* 1.1: how an input request ended, as a continuation sees it. (MCPP_INPUT_SUSPENDED never reaches a
 * continuation: the wrapper finishes the call and the handler runs again on the client's retry.) */
enum class InputStatus : int32_t {
    answered = MCPP_INPUT_ANSWERED,       /* Answer::json() is the client's result */
    refused = MCPP_INPUT_REFUSED,         /* the client answered with an error (Answer::error_message()) */
    unsupported = MCPP_INPUT_UNSUPPORTED, /* the client lacks the capability; nothing was sent */
    cancelled = MCPP_INPUT_CANCELLED,     /* the call was cancelled or passed its deadline while waiting */
};

/* 1.1, MCPP_JSON_*: the type of a value read with Call::json_get. */
enum class JsonType : int32_t {
    null = MCPP_JSON_NULL,
    boolean = MCPP_JSON_BOOL,
    number = MCPP_JSON_NUMBER,
    string = MCPP_JSON_STRING,
    array = MCPP_JSON_ARRAY,
    object = MCPP_JSON_OBJECT,
};

/* ======================================================================================================== */
/* 2. Exceptions a handler may throw to choose its outcome. Anything else becomes MCPP_OUTCOME_INTERNAL.     */
/* ======================================================================================================== */

class Failure : public std::runtime_error {
  public:
    Failure(Outcome outcome, const std::string &message) : std::runtime_error(message), outcome_(outcome) {}
    Outcome outcome() const noexcept { return outcome_; }

  private:
    Outcome outcome_;
};

/* tools/call: a result with isError = true and the message as a text block; the model reads it.
 * (Thrown from a resource, prompt or completion handler it becomes an internal error: the outcome is
 * tools/call only.) */
struct ToolError : Failure {
    explicit ToolError(const std::string &m) : Failure(Outcome::tool_error, m) {}
};
/* The arguments are wrong (JSON-RPC -32602). Call::string() & co. throw it for a missing/mistyped argument. */
struct InvalidParams : Failure {
    explicit InvalidParams(const std::string &m) : Failure(Outcome::invalid_params, m) {}
};
/* Unknown tool, prompt or resource. */
struct NotFound : Failure {
    explicit NotFound(const std::string &m) : Failure(Outcome::not_found, m) {}
};
/* The plugin failed for a reason of its own (JSON-RPC -32603). */
struct InternalError : Failure {
    explicit InternalError(const std::string &m) : Failure(Outcome::internal, m) {}
};
/* 1.1: the call cannot go on without a client capability (Answer::require() throws it for an unsupported input
 * request; the host adds data.requiredCapabilities). */
struct NeedsCapability : Failure {
    explicit NeedsCapability(const std::string &m) : Failure(Outcome::needs_capability, m) {}
};

namespace detail {
/* A std::string_view as the (pointer, length) pair of mcpp_str. The view must outlive the mcpp_str. */
inline mcpp_str str(std::string_view s) noexcept { return mcpp_str{s.data(), s.size()}; }
/* A host (pointer, length) pair as a view; (NULL, 0) is "". */
inline std::string_view view(const char *p, size_t n) noexcept { return p ? std::string_view(p, n) : std::string_view(); }
/* At most `max` bytes, for names quoted in messages. (May cut a UTF-8 sequence; the host checks its input.) */
inline std::string clip(std::string_view s, size_t max = 200) { return std::string(s.substr(0, max)); }
/* A non-NULL pointer for (possibly empty) text passed to the host. */
inline const char *ptr(std::string_view s) noexcept { return s.data() ? s.data() : ""; }
/* Appends `s` to `out` as a JSON string literal (quotes and escapes included). */
inline void json_quote(std::string &out, std::string_view s) {
    static const char hex[] = "0123456789abcdef";
    out += '"';
    for (char ch : s) {
        unsigned char c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20) {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += ch;
        }
    }
    out += '"';
}

/* The call handle a Call destructor hands back instead of finishing it, while a handler or continuation
 * boundary on this thread waits for exactly that handle (see Call::~Call). */
struct Rescue {
    mcpp_call *expect = nullptr;
    mcpp_call *got = nullptr;
};
inline Rescue *&rescue_slot() noexcept {
    static thread_local Rescue *slot = nullptr;
    return slot;
}
/* Arms the slot for one boundary; restores the previous one (nesting) when it goes out of scope. */
class RescueScope {
  public:
    explicit RescueScope(Rescue *r) noexcept : previous_(std::exchange(rescue_slot(), r)) {}
    ~RescueScope() { rescue_slot() = previous_; }
    RescueScope(const RescueScope &) = delete;
    RescueScope &operator=(const RescueScope &) = delete;

  private:
    Rescue *previous_;
};

struct PendingBase;
template <typename F> struct Pending;
} // namespace detail
class Call;
namespace detail {
inline void input_callback(void *user, mcpp_call *raw, int32_t status, const char *answer, size_t len) noexcept;
inline void reclaim(Call &call, Rescue &rescue) noexcept;
} // namespace detail

/* ======================================================================================================== */
/* 3. Host: the mcpp_host table create() received. Static for the life of the process, every function [any]. */
/* ======================================================================================================== */

class Host {
  public:
    Host() noexcept = default;
    explicit Host(const mcpp_host *raw) noexcept : raw_(raw) {}

    /* mcpp_host.log: a line in the host's log (stderr, collected by the supervisor). */
    void log(Level level, std::string_view msg) const noexcept {
        if (raw_ && raw_->log)
            raw_->log(raw_->ctx, static_cast<int32_t>(level), msg.data(), msg.size());
    }
    /* mcpp_host.notify_resource_updated: the content of a resource changed. */
    void notify_resource_updated(std::string_view uri) const noexcept {
        if (raw_ && raw_->notify_resource_updated)
            raw_->notify_resource_updated(raw_->ctx, uri.data(), uri.size());
    }
    /* mcpp_host.abi_minor: the minor the host implements (>= MCPP_ABI_MINOR). */
    uint32_t abi_minor() const noexcept { return raw_ ? raw_->abi_minor : 0; }
    /* The C table, for anything this wrapper does not cover (get_extension, ...). */
    const mcpp_host *raw() const noexcept { return raw_; }

  private:
    const mcpp_host *raw_ = nullptr;
};

/* ======================================================================================================== */
/* 3b. ABI 1.1 values: a JSON value read with mcpp_host.json_get, and the answer to an input request.       */
/* ======================================================================================================== */

class Call;

/* One value out of JSON text (Call::json_get, Answer::get). Copied: it outlives the call. */
struct Json {
    JsonType type = JsonType::null;
    std::string text; /* a string's unescaped text; the JSON text of any other type ("true", "42", "{...}") */
    bool is_true() const noexcept { return type == JsonType::boolean && text == "true"; }
};

/* The end of one input request as the continuation receives it. A value: the text is copied, so it stays
 * valid wherever the continuation moves it. Reading inside it goes through the (live) call: get(c, pointer). */
class Answer {
  public:
    Answer(Input kind, InputStatus status, std::string json, std::string error_message, std::string noun)
        : kind_(kind), status_(status), json_(std::move(json)), error_message_(std::move(error_message)),
          noun_(std::move(noun)) {}

    Input kind() const noexcept { return kind_; }
    InputStatus status() const noexcept { return status_; }
    bool answered() const noexcept { return status_ == InputStatus::answered; }
    /* ANSWERED: the client's result (an ElicitResult, a CreateMessageResult, {"roots": [...]}); REFUSED: the
     * JSON-RPC error object; otherwise empty. */
    std::string_view json() const noexcept { return json_; }
    /* REFUSED: the error's "message" (may be empty). */
    std::string_view error_message() const noexcept { return error_message_; }

    /* Returns *this when answered; otherwise throws what ends the call the usual way:
     *   unsupported -> NeedsCapability "this tool needs the client's elicitation capability"
     *   refused     -> ToolError       "the client refused the elicitation request: <message>"
     *   cancelled   -> InternalError   "cancelled while waiting for the client" */
    const Answer &require() const {
        switch (status_) {
        case InputStatus::answered:
            return *this;
        case InputStatus::unsupported:
            throw NeedsCapability("this " + noun_ + " needs the client's " + kind_name() + " capability");
        case InputStatus::refused:
            throw ToolError("the client refused the " + kind_name() + " request: " + error_message_);
        default:
            throw InternalError("cancelled while waiting for the client");
        }
    }

    /* mcpp_host.json_get on json() at an RFC 6901 pointer ("/content/confirm"; "" = the whole answer):
     * std::nullopt when it leads nowhere. `c` must be the live call (throws std::logic_error otherwise). */
    std::optional<Json> get(const Call &c, std::string_view pointer) const;
    /* The string / boolean / number at `pointer`; std::nullopt when absent or of another type. */
    std::optional<std::string> string(const Call &c, std::string_view pointer) const;
    std::optional<bool> boolean(const Call &c, std::string_view pointer) const;
    std::optional<double> number(const Call &c, std::string_view pointer) const;

    /* "elicitation", "sampling" or "roots". */
    std::string kind_name() const {
        return kind_ == Input::elicitation ? "elicitation" : kind_ == Input::sampling ? "sampling" : "roots";
    }

  private:
    Input kind_;
    InputStatus status_;
    std::string json_, error_message_, noun_;
};

/* ======================================================================================================== */
/* 4. Call: one request in flight (mcpp_call *), owned RAII-style. Finished exactly once.                    */
/*    Use one Call from one thread at a time (the host functions are [any]; this object is not locked).      */
/* ======================================================================================================== */

class Call {
  public:
    /* What the call is: the thunks use it for messages and to map ToolError outside tools/call. */
    enum class Kind { tool, resource, prompt, completion };

    Call(const mcpp_host *host, mcpp_call *raw, Kind kind) noexcept : host_(host), raw_(raw), kind_(kind) {}

    /* Move-only: the new object owns the handle, the old one is empty (finishing it is a no-op). */
    Call(Call &&other) noexcept
        : host_(other.host_), raw_(std::exchange(other.raw_, nullptr)), kind_(other.kind_),
          what_(std::move(other.what_)), asked_(other.asked_) {}
    Call &operator=(Call &&) = delete;
    Call(const Call &) = delete;
    Call &operator=(const Call &) = delete;

    /* The last line of defence: an owner that forgot to finish finishes as an internal error. Inside a handler or
     * continuation on this thread, the handle goes back to that boundary instead (a Call taken by value dies
     * before the boundary's catch sees the exception that killed it), which finishes it with the exception's
     * outcome or as "returned without finishing". */
    ~Call() {
        if (raw_ != nullptr) {
            detail::Rescue *r = detail::rescue_slot();
            if (r != nullptr && r->expect == raw_ && r->got == nullptr) {
                r->got = std::exchange(raw_, nullptr);
                return;
            }
        }
        finish(Outcome::internal, "the plugin did not finish the call");
    }

    /* --- Finishing: mcpp_host.finish. Each returns true if it finished the call, false if this object no
     *     longer owns a live call (already finished, or moved away): finish is never called twice. --- */
    bool ok() noexcept { return finish(Outcome::ok, {}); }
    bool tool_error(std::string_view message) noexcept { return finish(Outcome::tool_error, message); }
    bool finish(Outcome outcome, std::string_view message) noexcept {
        if (raw_ == nullptr)
            return false;
        mcpp_call *raw = std::exchange(raw_, nullptr); /* never used again, whatever happens below */
        if (outcome == Outcome::tool_error && kind_ != Kind::tool)
            outcome = Outcome::internal; /* MCPP_OUTCOME_TOOL_ERROR is for tools/call only */
        if (outcome == Outcome::ok)
            message = {};
        host_->finish(raw, static_cast<int32_t>(outcome), message.data(), message.size());
        return true;
    }
    /* True until finished or moved from. */
    bool live() const noexcept { return raw_ != nullptr; }

    /* --- Arguments: mcpp_host.arg_*. tools/call and prompts/get: the top-level keys of "arguments";
     *     resources/read: the URI template's variables; completion: the context's resolved arguments.
     *     A missing (or null) or mistyped argument throws InvalidParams with the same text as the C
     *     reference plugin; optional_*() return std::nullopt for missing/null instead.
     *     Views are borrowed from the host until the call is finished. --- */
    std::string_view string(std::string_view key) const { return required(optional_string(key), key); }
    int64_t integer(std::string_view key) const { return required(optional_integer(key), key); }
    double number(std::string_view key) const { return required(optional_number(key), key); }
    bool boolean(std::string_view key) const { return required(optional_boolean(key), key); }
    /* The value as JSON text. */
    std::string_view json(std::string_view key) const { return required(optional_json(key), key); }
    /* The whole arguments object as JSON text (mcpp_host.arg_json with key NULL). */
    std::string_view args_json() const {
        const char *p = nullptr;
        size_t n = 0;
        check_arg(live_host().arg_json(raw_, nullptr, 0, &p, &n), "arguments", "an object");
        return detail::view(p, n);
    }

    std::optional<std::string_view> optional_string(std::string_view key) const {
        const char *p = nullptr;
        size_t n = 0;
        if (!check_arg(live_host().arg_string(raw_, key.data(), key.size(), &p, &n), key, "a string"))
            return std::nullopt;
        return detail::view(p, n);
    }
    std::optional<int64_t> optional_integer(std::string_view key) const {
        int64_t v = 0;
        if (!check_arg(live_host().arg_int(raw_, key.data(), key.size(), &v), key, "an integer"))
            return std::nullopt;
        return v;
    }
    std::optional<double> optional_number(std::string_view key) const {
        double v = 0;
        if (!check_arg(live_host().arg_double(raw_, key.data(), key.size(), &v), key, "a number"))
            return std::nullopt;
        return v;
    }
    std::optional<bool> optional_boolean(std::string_view key) const {
        int32_t v = 0;
        if (!check_arg(live_host().arg_bool(raw_, key.data(), key.size(), &v), key, "a boolean"))
            return std::nullopt;
        return v != 0;
    }
    std::optional<std::string_view> optional_json(std::string_view key) const {
        const char *p = nullptr;
        size_t n = 0;
        if (!check_arg(live_host().arg_json(raw_, key.data(), key.size(), &p, &n), key, "JSON"))
            return std::nullopt;
        return detail::view(p, n);
    }

    /* --- Building the result: mcpp_host.add_* / set_*. The host copies before returning. A result that
     *     grew too large (MCPP_E_TOO_LARGE) or rejected output throws InternalError; after a cancellation
     *     (MCPP_E_CANCELLED) output is discarded silently — still finish the call. --- */
    void add_text(std::string_view text) { check_out(live_host().add_text(raw_, text.data(), text.size())); }
    void add_image(std::string_view mime, std::string_view bytes) {
        check_out(live_host().add_image(raw_, mime.data(), mime.size(), bytes_of(bytes), bytes.size()));
    }
    void add_audio(std::string_view mime, std::string_view bytes) {
        check_out(live_host().add_audio(raw_, mime.data(), mime.size(), bytes_of(bytes), bytes.size()));
    }
    /* resources/read: uri empty = the requested uri. */
    void add_resource_text(std::string_view uri, std::string_view mime, std::string_view text) {
        check_out(live_host().add_resource_text(raw_, uri.data(), uri.size(), mime.data(), mime.size(), text.data(),
                                                text.size()));
    }
    void add_resource_blob(std::string_view uri, std::string_view mime, std::string_view bytes) {
        check_out(live_host().add_resource_blob(raw_, uri.data(), uri.size(), mime.data(), mime.size(),
                                                bytes_of(bytes), bytes.size()));
    }
    void add_content_json(std::string_view json) { check_out(live_host().add_content_json(raw_, json.data(), json.size())); }
    /* tools/call: structuredContent as JSON text. */
    void set_structured(std::string_view json) { check_out(live_host().set_structured(raw_, json.data(), json.size())); }
    /* prompts/get */
    void set_role(Role role) { check_out(live_host().set_role(raw_, static_cast<int32_t>(role))); }
    void set_description(std::string_view text) { check_out(live_host().set_description(raw_, text.data(), text.size())); }
    /* completion/complete */
    void add_completion(std::string_view value) { check_out(live_host().add_completion(raw_, value.data(), value.size())); }
    void set_completion_info(int64_t total, bool has_more) {
        check_out(live_host().set_completion_info(raw_, total, has_more ? 1 : 0));
    }

    /* --- While the call runs. --- */
    /* mcpp_host.progress: total < 0 = unknown. Dropped by the host when the client did not ask for progress. */
    void progress(double done, double total = -1, std::string_view message = {}) {
        check_out(live_host().progress(raw_, done, total, message.data(), message.size()));
    }
    /* mcpp_host.call_log: notifications/message for this call (and always the host's log). */
    void log(Level level, std::string_view message) {
        check_out(live_host().call_log(raw_, static_cast<int32_t>(level), message.data(), message.size()));
    }
    /* mcpp_host.is_cancelled: cheap, poll it in loops. True too once this object no longer owns the call. */
    bool is_cancelled() const noexcept { return raw_ == nullptr || host_->is_cancelled(raw_) != 0; }

    /* --- ABI 1.1: asking the client (mcpp_host.request_input). Each moves this Call into the request (this
     *     object is empty afterwards: return from the handler) and runs `then(mcpp::Call, mcpp::Answer)` later,
     *     exactly once, on a handler thread, with the call. Ask before you act: in 2026-07-28 sessions the first
     *     attempt ends when the handler returns (the wrapper finishes it, the host sends input_required) and the
     *     handler runs again from the start on the client's retry, where the same request (same key) is
     *     answered. Automatic keys number the requests of a call in the order they are made ("elicit-1",
     *     "sample-2", ...), the same in every attempt. If the host refuses the request (MCPP_E_INVALID and the
     *     like) the Call stays here and InternalError is thrown. --- */

    /* elicitation/create in form mode: params {"message", "requestedSchema"} (a JSON Schema object as text). */
    template <typename F> void elicit(std::string_view message, std::string_view requested_schema, F &&then) {
        std::string params = "{\"message\":";
        detail::json_quote(params, message);
        params += ",\"requestedSchema\":";
        params.append(requested_schema.empty() ? std::string_view(R"({"type":"object","properties":{}})")
                                               : requested_schema);
        params += '}';
        ask(Input::elicitation, next_key("elicit"), params, std::forward<F>(then));
    }
    /* sampling/createMessage with one user message. */
    template <typename F> void sample(std::string_view prompt, int64_t max_tokens, F &&then) {
        std::string params = R"({"messages":[{"role":"user","content":{"type":"text","text":)";
        detail::json_quote(params, prompt);
        params += "}}],\"maxTokens\":" + std::to_string(max_tokens) + "}";
        ask(Input::sampling, next_key("sample"), params, std::forward<F>(then));
    }
    /* roots/list: the answer is {"roots": [{"uri", "name"}]}. */
    template <typename F> void list_roots(F &&then) { ask(Input::roots, next_key("roots"), {}, std::forward<F>(then)); }
    /* Any input request with your own key (unique within the call, the same in every attempt) and params
     * object as JSON text (empty for roots). */
    template <typename F> void ask(Input kind, std::string_view key, std::string_view params_json, F &&then) {
        using Fn = std::decay_t<F>;
        static_assert(std::is_invocable_v<Fn &, Call, Answer>,
                      "the continuation must be callable as then(mcpp::Call, mcpp::Answer)");
        const mcpp_host &h = live_host();
        need_11(MCPP_HAS(&h, mcpp_host, request_input) && h.request_input != nullptr, "request_input");
        /* The Call moves into the request; the callback owns (and frees) it from the moment the host accepts. */
        std::unique_ptr<detail::Pending<Fn>> pending(new detail::Pending<Fn>(std::forward<F>(then), std::move(*this), kind));
        mcpp_call *raw = pending->held.raw_;
        detail::PendingBase *user = pending.get();
        mcpp_status st = h.request_input(raw, static_cast<int32_t>(kind), detail::ptr(key), key.size(),
                                         detail::ptr(params_json), params_json.size(), &detail::input_callback, user);
        if (st == MCPP_OK) {
            (void)pending.release(); /* the callback may already be running on another thread: never touch it again */
            return;
        }
        raw_ = std::exchange(pending->held.raw_, nullptr); /* no callback will come: the call is ours again */
        if (st == MCPP_E_CANCELLED)
            throw InternalError("the call was cancelled before the client was asked");
        throw InternalError("could not ask the client (request_input returned status " + std::to_string(st) + ")");
    }

    /* --- ABI 1.1: state across attempts and cache hints. --- */
    /* mcpp_host.set_request_state: bytes the retry of this call gets back (2026-07-28; at most 64 KiB, sealed). */
    void set_request_state(std::string_view bytes) {
        const mcpp_host &h = live_host();
        need_11(MCPP_HAS(&h, mcpp_host, set_request_state) && h.set_request_state != nullptr, "set_request_state");
        mcpp_status st = h.set_request_state(raw_, bytes_of(bytes), bytes.size());
        if (st == MCPP_E_TOO_LARGE)
            throw InternalError("the request state is larger than the host allows");
        check_out(st);
    }
    /* mcpp_host.get_request_state: what the attempt this one retries set; std::nullopt on a first attempt.
     * Borrowed until the call is finished. */
    std::optional<std::string_view> request_state() const {
        const mcpp_host &h = live_host();
        need_11(MCPP_HAS(&h, mcpp_host, get_request_state) && h.get_request_state != nullptr, "get_request_state");
        const uint8_t *p = nullptr;
        size_t n = 0;
        mcpp_status st = h.get_request_state(raw_, &p, &n);
        if (st == MCPP_E_NOT_FOUND)
            return std::nullopt;
        check_out(st);
        return detail::view(reinterpret_cast<const char *>(p), n);
    }
    /* mcpp_host.set_cache (resources/read): 2026-07-28 ttlMs and cacheScope of this result. */
    void set_cache(std::chrono::milliseconds ttl, CacheScope scope = CacheScope::private_) {
        const mcpp_host &h = live_host();
        need_11(MCPP_HAS(&h, mcpp_host, set_cache) && h.set_cache != nullptr, "set_cache");
        check_out(h.set_cache(raw_, static_cast<int64_t>(ttl.count()), static_cast<int32_t>(scope)));
    }
    /* mcpp_host.json_get: the value at an RFC 6901 pointer in any JSON text ("" = the whole text), copied;
     * std::nullopt when the pointer leads nowhere; InternalError when `json` is not JSON. */
    std::optional<Json> json_get(std::string_view json, std::string_view pointer) const {
        const mcpp_host &h = live_host();
        need_11(MCPP_HAS(&h, mcpp_host, json_get) && h.json_get != nullptr, "json_get");
        int32_t type = 0;
        const char *p = nullptr;
        size_t n = 0;
        mcpp_status st = h.json_get(raw_, detail::ptr(json), json.size(), detail::ptr(pointer), pointer.size(), &type, &p, &n);
        if (st == MCPP_E_NOT_FOUND)
            return std::nullopt;
        if (st != MCPP_OK)
            throw InternalError("json_get failed (status " + std::to_string(st) + "): not JSON text?");
        return Json{static_cast<JsonType>(type), std::string(detail::view(p, n))};
    }

    Host host() const noexcept { return Host(host_); }
    Kind kind() const noexcept { return kind_; }
    /* "tool 'x'", "resource 'u'", ... as the wrapper names this call in messages (empty before dispatch). */
    const std::string &what() const noexcept { return what_; }
    /* The C handle, for host functions this class does not cover. Never pass it to finish yourself. */
    mcpp_call *raw() const noexcept { return raw_; }

  private:
    friend class Plugin;
    template <typename F> friend struct detail::Pending;
    friend void detail::input_callback(void *, mcpp_call *, int32_t, const char *, size_t) noexcept;
    friend void detail::reclaim(Call &, detail::Rescue &) noexcept;

    std::string next_key(const char *prefix) { return std::string(prefix) + "-" + std::to_string(++asked_); }
    /* A 1.1 function the host table lacks: say which, and what the table is. */
    void need_11(bool present, const char *function) const {
        if (!present || host_->abi_minor < 1)
            throw InternalError(std::string("the host does not implement mcpp_host.") + function +
                                " (ABI 1.1; its table has struct_size " + std::to_string(host_->struct_size) +
                                ", abi_minor " + std::to_string(host_->abi_minor) + ")");
    }
    const mcpp_host &live_host() const {
        if (raw_ == nullptr) /* "Functions taking a call handle may be used only until finish()" */
            throw std::logic_error("mcpp::Call used after it was finished or moved from");
        return *host_;
    }
    /* true: the value was read; false: absent or null; throws InvalidParams otherwise. */
    static bool check_arg(mcpp_status st, std::string_view key, const char *want) {
        if (st == MCPP_OK)
            return true;
        if (st == MCPP_E_NOT_FOUND)
            return false;
        if (st == MCPP_E_TYPE)
            throw InvalidParams("argument '" + detail::clip(key) + "' must be " + want);
        throw InvalidParams("argument '" + detail::clip(key) + "' is invalid (status " + std::to_string(st) + ")");
    }
    template <typename T> static T required(std::optional<T> v, std::string_view key) {
        if (!v)
            throw InvalidParams("missing required argument '" + detail::clip(key) + "'");
        return *v;
    }
    static void check_out(mcpp_status st) {
        if (st == MCPP_OK || st == MCPP_E_CANCELLED)
            return;
        if (st == MCPP_E_TOO_LARGE)
            throw InternalError("the result is too large");
        throw InternalError("could not build the result (status " + std::to_string(st) + ")");
    }
    static const uint8_t *bytes_of(std::string_view b) noexcept { return reinterpret_cast<const uint8_t *>(b.data()); }

    const mcpp_host *host_;
    mcpp_call *raw_; /* nullptr once finished or moved from */
    Kind kind_;
    std::string what_;   /* for messages: "tool 'x'" */
    uint32_t asked_ = 0; /* input requests made with automatic keys */
};

/* ======================================================================================================== */
/* 4b. Input requests: the heap object behind mcpp_host.request_input's user pointer, and its callback.      */
/* ======================================================================================================== */

namespace detail {
struct PendingBase {
    explicit PendingBase(Input k) noexcept : kind(k) {}
    virtual ~PendingBase() = default;
    virtual Call &call() noexcept = 0;
    virtual void invoke(Call &&c, Answer &&a) = 0;
    Input kind;
};
template <typename F> struct Pending final : PendingBase {
    F fn;      /* constructed first: if moving the continuation throws, the Call has not moved yet */
    Call held; /* owns the handle while the client thinks */
    template <typename G>
    Pending(G &&g, Call &&c, Input k) : PendingBase(k), fn(std::forward<G>(g)), held(std::move(c)) {}
    Call &call() noexcept override { return held; }
    void invoke(Call &&c, Answer &&a) override { fn(std::move(c), std::move(a)); }
};
} // namespace detail

inline std::optional<Json> Answer::get(const Call &c, std::string_view pointer) const { return c.json_get(json_, pointer); }
inline std::optional<std::string> Answer::string(const Call &c, std::string_view pointer) const {
    std::optional<Json> v = get(c, pointer);
    if (!v || v->type != JsonType::string)
        return std::nullopt;
    return std::move(v->text);
}
inline std::optional<bool> Answer::boolean(const Call &c, std::string_view pointer) const {
    std::optional<Json> v = get(c, pointer);
    if (!v || v->type != JsonType::boolean)
        return std::nullopt;
    return v->text == "true";
}
inline std::optional<double> Answer::number(const Call &c, std::string_view pointer) const {
    std::optional<Json> v = get(c, pointer);
    if (!v || v->type != JsonType::number)
        return std::nullopt;
    return std::strtod(v->text.c_str(), nullptr);
}

/* ======================================================================================================== */
/* 4c. The boundary: how a handler or continuation that threw, or returned without finishing, ends its call. */
/* ======================================================================================================== */

namespace detail {
/* The type name of the exception being handled (demangled where the C++ ABI allows). */
inline std::string current_exception_type() {
#if defined(__GNUC__) || defined(__clang__)
    if (const std::type_info *t = abi::__cxa_current_exception_type()) {
        int status = 0;
        char *name = abi::__cxa_demangle(t->name(), nullptr, nullptr, &status);
        std::string out = (status == 0 && name) ? name : t->name();
        std::free(name);
        return out;
    }
#endif
    return "an exception";
}

/* Called inside a catch block: finishes `call` according to the exception being handled. Logs an
 * exception that is not an mcpp::Failure. Never throws. */
inline void finish_after_exception(Call &call, std::string_view what) noexcept {
    Host host = call.host();
    try {
        std::string msg;
        Outcome outcome = Outcome::internal;
        bool unexpected = true;
        try {
            throw;
        } catch (const Failure &f) {
            outcome = f.outcome();
            msg = f.what();
            unexpected = false;
        } catch (const std::exception &e) {
            msg = std::string(what) + " threw " + current_exception_type() + ": " + e.what();
        } catch (...) {
            msg = std::string(what) + " threw " + current_exception_type();
        }
        if (unexpected)
            host.log(Level::error, msg);
        if (!call.finish(outcome, msg) && unexpected)
            host.log(Level::error, std::string(what) + ": the exception came after the call was finished or handed on");
    } catch (...) { /* bad_alloc while building the message */
        call.finish(Outcome::internal, "the plugin threw an exception");
    }
}

/* After a handler returned: a call it neither finished nor moved away is an internal error. */
inline void finish_unfinished(Call &call, std::string_view what) noexcept {
    if (!call.live())
        return;
    try {
        std::string msg = std::string(what) + " returned without finishing the call";
        call.host().log(Level::error, msg);
        call.finish(Outcome::internal, msg);
    } catch (...) {
        call.finish(Outcome::internal, "the handler returned without finishing the call");
    }
}

/* A handle a Call destructor handed back to this boundary (see Call::~Call) goes back into `call`. */
inline void reclaim(Call &call, Rescue &rescue) noexcept {
    if (rescue.got != nullptr && call.raw_ == nullptr)
        call.raw_ = std::exchange(rescue.got, nullptr);
}

/* mcpp_input_callback for every request made through Call::ask: runs exactly once per accepted request. */
inline void input_callback(void *user, mcpp_call *raw, int32_t status, const char *answer, size_t len) noexcept {
    std::unique_ptr<PendingBase> pending(static_cast<PendingBase *>(user)); /* freed whatever happens below */
    if (!pending)
        return;
    Call call(std::move(pending->call()));
    (void)raw; /* the same handle as call.raw() */
    if (status == MCPP_INPUT_SUSPENDED) {
        /* 2026-07-28: the client answers in a retry of the whole request. The host sends input_required for
         * this attempt (whatever the outcome); the handler runs again from the start on the retry. */
        call.ok();
        return;
    }
    std::string what = "the plugin";
    Rescue rescue{call.raw_, nullptr};
    try {
        what = call.what_.empty() ? std::string("a continuation") : call.what_ + " (continuation)";
        InputStatus st = status == MCPP_INPUT_ANSWERED  ? InputStatus::answered
                         : status == MCPP_INPUT_REFUSED ? InputStatus::refused
                         : status == MCPP_INPUT_UNSUPPORTED ? InputStatus::unsupported
                                                            : InputStatus::cancelled;
        std::string text(view(answer, len)), message;
        if (st == InputStatus::refused) {
            try {
                if (std::optional<Json> m = call.json_get(text, "/message"))
                    message = m->text;
            } catch (const Failure &) { /* not JSON: no message */
            }
        }
        const char *noun = call.kind_ == Call::Kind::tool       ? "tool"
                           : call.kind_ == Call::Kind::resource ? "resource"
                           : call.kind_ == Call::Kind::prompt   ? "prompt"
                                                                : "completion";
        Answer a(pending->kind, st, std::move(text), std::move(message), noun);
        {
            RescueScope armed(&rescue);
            pending->invoke(std::move(call), std::move(a));
        }
        reclaim(call, rescue);
        finish_unfinished(call, what);
    } catch (...) {
        reclaim(call, rescue);
        finish_after_exception(call, what);
    }
}
} // namespace detail

/* ======================================================================================================== */
/* 5. Declarations (copied into the plugin when it is built; the host copies them again in describe()).     */
/* ======================================================================================================== */

/* mcpp_tool. input_schema empty = {"type":"object"}. */
class Tool {
  public:
    explicit Tool(std::string name) : name_(std::move(name)) {}
    Tool &title(std::string v) { return title_ = std::move(v), *this; }
    Tool &description(std::string v) { return description_ = std::move(v), *this; }
    Tool &input_schema(std::string json) { return input_schema_ = std::move(json), *this; }
    Tool &output_schema(std::string json) { return output_schema_ = std::move(json), *this; }
    Tool &annotations(std::string json) { return annotations_ = std::move(json), *this; }
    /* MCPP_TOOL_NONBLOCKING: the handler returns within microseconds and never blocks (no I/O, sleeping,
     * locks, logging to stderr): a CONCURRENT plugin's host may run it on its network thread. */
    Tool &nonblocking() { return flags_ |= MCPP_TOOL_NONBLOCKING, *this; }
    const std::string &name() const noexcept { return name_; }

    /* The C declaration, pointing into this object. */
    mcpp_tool raw() const noexcept {
        mcpp_tool t{}; /* value-initialised: fields a later minor appends stay zero */
        t.struct_size = sizeof(mcpp_tool);
        t.flags = flags_;
        t.name = detail::str(name_);
        t.title = detail::str(title_);
        t.description = detail::str(description_);
        t.input_schema = detail::str(input_schema_);
        t.output_schema = detail::str(output_schema_);
        t.annotations = detail::str(annotations_);
        return t;
    }

  private:
    std::string name_, title_, description_, input_schema_, output_schema_, annotations_;
    uint32_t flags_ = 0;
};

/* mcpp_resource: a plain resource with a fixed URI. */
class Resource {
  public:
    Resource(std::string uri, std::string name) : uri_(std::move(uri)), name_(std::move(name)) {}
    Resource &title(std::string v) { return title_ = std::move(v), *this; }
    Resource &description(std::string v) { return description_ = std::move(v), *this; }
    Resource &mime_type(std::string v) { return mime_type_ = std::move(v), *this; }
    Resource &size(int64_t bytes) { return size_ = bytes, *this; }
    const std::string &uri() const noexcept { return uri_; }

    mcpp_resource raw() const noexcept {
        mcpp_resource r{};
        r.struct_size = sizeof(mcpp_resource);
        r.uri = detail::str(uri_);
        r.name = detail::str(name_);
        r.title = detail::str(title_);
        r.description = detail::str(description_);
        r.mime_type = detail::str(mime_type_);
        r.size = size_;
        return r;
    }

  private:
    std::string uri_, name_, title_, description_, mime_type_;
    int64_t size_ = -1; /* unknown */
};

/* Completes one argument: (call, argument name, partial value). Add values with call.add_completion(),
 * optionally call.set_completion_info(), then call.ok(). */
using Completer = std::function<void(Call &, std::string_view arg, std::string_view value)>;

/* mcpp_resource_template: an RFC 6570 level-1 template; the handler reads its variables with call.string(). */
class ResourceTemplate {
  public:
    ResourceTemplate(std::string uri_template, std::string name)
        : uri_template_(std::move(uri_template)), name_(std::move(name)) {}
    ResourceTemplate &title(std::string v) { return title_ = std::move(v), *this; }
    ResourceTemplate &description(std::string v) { return description_ = std::move(v), *this; }
    ResourceTemplate &mime_type(std::string v) { return mime_type_ = std::move(v), *this; }
    /* completion/complete with ref/resource = this template. */
    ResourceTemplate &completer(Completer fn) { return completer_ = std::move(fn), *this; }
    const std::string &uri_template() const noexcept { return uri_template_; }
    const Completer &completer() const noexcept { return completer_; }

    mcpp_resource_template raw() const noexcept {
        mcpp_resource_template r{};
        r.struct_size = sizeof(mcpp_resource_template);
        r.uri_template = detail::str(uri_template_);
        r.name = detail::str(name_);
        r.title = detail::str(title_);
        r.description = detail::str(description_);
        r.mime_type = detail::str(mime_type_);
        return r;
    }

  private:
    std::string uri_template_, name_, title_, description_, mime_type_;
    Completer completer_;
};

/* mcpp_prompt with its mcpp_prompt_arg array. */
class Prompt {
  public:
    explicit Prompt(std::string name) : name_(std::move(name)) {}
    Prompt &title(std::string v) { return title_ = std::move(v), *this; }
    Prompt &description(std::string v) { return description_ = std::move(v), *this; }
    /* One argument; required sets MCPP_ARG_REQUIRED. */
    Prompt &arg(std::string name, std::string description, bool required = false) {
        args_.push_back(Arg{std::move(name), std::move(description), required});
        return *this;
    }
    /* completion/complete with ref/prompt = this prompt. */
    Prompt &completer(Completer fn) { return completer_ = std::move(fn), *this; }
    const std::string &name() const noexcept { return name_; }
    const Completer &completer() const noexcept { return completer_; }

    /* The C argument array, pointing into this object; raw() points at it, so build it first and keep it. */
    std::vector<mcpp_prompt_arg> raw_args() const {
        std::vector<mcpp_prompt_arg> out;
        for (const Arg &a : args_) {
            mcpp_prompt_arg r{};
            r.struct_size = sizeof(mcpp_prompt_arg); /* the host steps through the array by args[0].struct_size */
            r.flags = a.required ? MCPP_ARG_REQUIRED : 0;
            r.name = detail::str(a.name);
            r.description = detail::str(a.description);
            out.push_back(r);
        }
        return out;
    }
    mcpp_prompt raw(const std::vector<mcpp_prompt_arg> &args) const noexcept {
        mcpp_prompt p{};
        p.struct_size = sizeof(mcpp_prompt);
        p.arg_count = static_cast<uint32_t>(args.size());
        p.name = detail::str(name_);
        p.title = detail::str(title_);
        p.description = detail::str(description_);
        p.args = args.empty() ? nullptr : args.data();
        return p;
    }

  private:
    struct Arg {
        std::string name, description;
        bool required;
    };
    std::string name_, title_, description_;
    std::vector<Arg> args_;
    Completer completer_;
};

/* Handlers. Each must finish its call (ok(), tool_error(), finish()) or throw; returning without finishing
 * ends the call with an internal error. */
using ToolHandler = std::function<void(Call &)>;
using ResourceHandler = std::function<void(Call &, std::string_view uri)>; /* the uri that was read */
using PromptHandler = std::function<void(Call &)>;

/* The answer of a health check (mcpp_plugin.health): one line of detail. */
struct Health {
    bool healthy;
    std::string detail;
    static Health ok(std::string detail = "ok") { return Health{true, std::move(detail)}; }
    static Health failing(std::string detail) { return Health{false, std::move(detail)}; }
};

/* ======================================================================================================== */
/* 6. Definition: everything the plugin declares, as a copyable value built with chained calls.             */
/* ======================================================================================================== */

class Definition {
  public:
    /* mcpp_plugin.name / version: serverInfo.name and serverInfo.version. */
    Definition(std::string name, std::string version) : name_(std::move(name)), version_(std::move(version)) {}

    Definition &title(std::string v) { return title_ = std::move(v), *this; }               /* mcpp_plugin.title */
    Definition &instructions(std::string v) { return instructions_ = std::move(v), *this; } /* .instructions */
    /* MCPP_THREADING_CONCURRENT, up to max_concurrency handlers at once (0 = the host's default). Only when
     * every handler is thread-safe; the default is MCPP_THREADING_SERIAL. */
    Definition &concurrent(uint32_t max_concurrency = 0) {
        threading_ = MCPP_THREADING_CONCURRENT;
        max_concurrency_ = max_concurrency;
        return *this;
    }

    Definition &tool(Tool decl, ToolHandler fn) { return tools_.push_back({std::move(decl), std::move(fn)}), *this; }
    Definition &resource(Resource decl, ResourceHandler fn) {
        return resources_.push_back({std::move(decl), std::move(fn)}), *this;
    }
    Definition &resource_template(ResourceTemplate decl, ResourceHandler fn) {
        return templates_.push_back({std::move(decl), std::move(fn)}), *this;
    }
    Definition &prompt(Prompt decl, PromptHandler fn) { return prompts_.push_back({std::move(decl), std::move(fn)}), *this; }

    /* mcpp_plugin.create, after the wrapper's own setup: config is the plugin configuration as JSON text
     * ("{}" when none). Throw to refuse to start: the message goes to the host's error writer. [main] */
    Definition &on_create(std::function<void(Host, std::string_view config)> fn) { return on_create_ = std::move(fn), *this; }
    /* mcpp_plugin.destroy, at graceful shutdown after every call finished. [main] */
    Definition &on_destroy(std::function<void()> fn) { return on_destroy_ = std::move(fn), *this; }
    /* mcpp_plugin.health. [any]: runs beside handlers even for a SERIAL plugin, must not block. */
    Definition &on_health(std::function<Health()> fn) { return on_health_ = std::move(fn), *this; }
    /* 1.1, mcpp_registry.set_list_cache: 2026-07-28 clients may reuse a page of these lists (List::resources
     * covers resources/list and resources/templates/list) for `ttl` within `scope`. Default 0 / private. */
    Definition &list_cache(List lists, std::chrono::milliseconds ttl, CacheScope scope = CacheScope::private_) {
        return list_caches_.push_back({static_cast<uint32_t>(lists), static_cast<int64_t>(ttl.count()),
                                       static_cast<int32_t>(scope)}),
               *this;
    }

  private:
    friend class Plugin;
    template <typename D, typename H> struct Entry {
        D decl;
        H handler;
    };
    std::string name_, version_, title_, instructions_;
    uint32_t threading_ = MCPP_THREADING_SERIAL;
    uint32_t max_concurrency_ = 0;
    std::vector<Entry<Tool, ToolHandler>> tools_;
    std::vector<Entry<Resource, ResourceHandler>> resources_;
    std::vector<Entry<ResourceTemplate, ResourceHandler>> templates_;
    std::vector<Entry<Prompt, PromptHandler>> prompts_;
    std::function<void(Host, std::string_view)> on_create_;
    std::function<void()> on_destroy_;
    std::function<Health()> on_health_;
    struct ListCache {
        uint32_t lists;
        int64_t ttl_ms;
        int32_t scope;
    };
    std::vector<ListCache> list_caches_;
};

/* ======================================================================================================== */
/* 7. Plugin: a Definition turned into the static mcpp_plugin table and its noexcept thunks.                */
/* ======================================================================================================== */

class Plugin {
  public:
    /* Built while the .so loads (a static object), before the host can call mcpp_negotiate_v1. The table
     * lives on the heap and is never freed. (Like any C++ static initializer, an exception escaping here —
     * only std::bad_alloc is possible — terminates the process: the host reports a crash, not a hang.) */
    explicit Plugin(Definition def) : impl_(new Impl(std::move(def))) {
        Impl *&slot = current();
        if (slot != nullptr)
            impl_->error = "more than one mcpp::Plugin in this shared object";
        else
            slot = impl_;
    }
    Plugin(const Plugin &) = delete;
    Plugin &operator=(const Plugin &) = delete;
    ~Plugin() = default; /* impl_ is leaked on purpose: see "Ownership" at the top */

    /* The table mcpp_negotiate_v1 returns (MCPP_PLUGIN). */
    const mcpp_plugin &table() const noexcept { return impl_->table; }

  private:
    struct Impl {
        Definition def;
        std::string error; /* a definition the host would refuse: reported by create() */
        std::vector<std::vector<mcpp_prompt_arg>> prompt_args;
        /* name -> index, with std::less<> so a std::string_view finds a std::string without a copy */
        std::map<std::string, size_t, std::less<>> tool_index, resource_index, template_index, prompt_index;
        mcpp_plugin table{};

        explicit Impl(Definition d) : def(std::move(d)) {
            if (def.name_.empty())
                error = "the plugin has no name";
            for (size_t i = 0; i < def.tools_.size(); i++) {
                if (!def.tools_[i].handler)
                    error = "tool '" + def.tools_[i].decl.name() + "' has no handler";
                tool_index.emplace(def.tools_[i].decl.name(), i);
            }
            for (size_t i = 0; i < def.resources_.size(); i++)
                resource_index.emplace(def.resources_[i].decl.uri(), i);
            for (size_t i = 0; i < def.templates_.size(); i++)
                template_index.emplace(def.templates_[i].decl.uri_template(), i);
            for (size_t i = 0; i < def.prompts_.size(); i++) {
                prompt_index.emplace(def.prompts_[i].decl.name(), i);
                prompt_args.push_back(def.prompts_[i].decl.raw_args()); /* moved in whole: data() stays put */
            }
            bool completes = false;
            for (auto &t : def.templates_)
                completes = completes || static_cast<bool>(t.decl.completer());
            for (auto &p : def.prompts_)
                completes = completes || static_cast<bool>(p.decl.completer());

            table.struct_size = sizeof(mcpp_plugin);
            table.threading = def.threading_;
            table.max_concurrency = def.max_concurrency_;
            table.name = detail::str(def.name_);
            table.version = detail::str(def.version_);
            table.title = detail::str(def.title_);
            table.instructions = detail::str(def.instructions_);
            table.create = &Plugin::create;
            table.destroy = &Plugin::destroy;
            table.describe = &Plugin::describe;
            table.call_tool = def.tools_.empty() ? nullptr : &Plugin::call_tool;
            table.read_resource = def.resources_.empty() && def.templates_.empty() ? nullptr : &Plugin::read_resource;
            table.get_prompt = def.prompts_.empty() ? nullptr : &Plugin::get_prompt;
            table.complete = completes ? &Plugin::complete : nullptr;
            table.cancel = nullptr; /* handlers poll Call::is_cancelled() */
            table.health = def.on_health_ ? &Plugin::health : nullptr;
            table.diagnose = nullptr;
            table.get_extension = nullptr;
        }
    };

    /* What create() returns as the instance; every thunk receives it. */
    struct Instance {
        const mcpp_host *host;
        const Impl *impl;
    };

    static Impl *&current() noexcept {
        static Impl *impl = nullptr;
        return impl;
    }

    /* mcpp_writer.write, checked with MCPP_HAS; one line (newlines become spaces). */
    static void write_line(const mcpp_writer *w, std::string_view text) noexcept {
        if (w == nullptr || !MCPP_HAS(w, mcpp_writer, write) || w->write == nullptr)
            return;
        char buf[1024];
        size_t n = text.size() < sizeof buf ? text.size() : sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (text[i] == '\n' || text[i] == '\r') ? ' ' : text[i];
        w->write(w->ctx, buf, n);
    }

    /* Runs a handler on a fresh Call: the one place where handler code meets the C boundary. */
    template <typename Body>
    static void run(const Instance *self, mcpp_call *raw, Call::Kind kind, Body &&body) noexcept {
        Call call(self->host, raw, kind);
        std::string what = "the plugin";
        detail::Rescue rescue{raw, nullptr};
        try {
            {
                detail::RescueScope armed(&rescue);
                body(call, what);
            }
            detail::reclaim(call, rescue);
            detail::finish_unfinished(call, what);
        } catch (...) {
            detail::reclaim(call, rescue);
            detail::finish_after_exception(call, what);
        }
    }
    /* Names the call for messages, here and in its continuations. */
    static void name_call(Call &call, std::string &what, std::string text) {
        what = std::move(text);
        call.what_ = what;
    }

    // ---- the thunks: one per mcpp_plugin function pointer --------------------------------------------

    /* mcpp_plugin.create [main] */
    static mcpp_status create(const mcpp_host *host, const char *config, size_t config_len, const mcpp_writer *err,
                              void **instance) noexcept {
        try {
            const Impl *impl = current();
            if (host == nullptr || instance == nullptr || impl == nullptr) {
                write_line(err, "create() called without a host table or instance pointer");
                return MCPP_E_INVALID;
            }
            if (!MCPP_HAS(host, mcpp_host, finish)) { /* finish is the last field of ABI 1.0 */
                write_line(err, "the host's function table is smaller than ABI 1.0 (struct_size " +
                                    std::to_string(host->struct_size) + ")");
                return MCPP_E_VERSION;
            }
            if (!impl->error.empty()) {
                write_line(err, impl->error);
                return MCPP_E_FAILED;
            }
            Instance *self = new Instance{host, impl};
            try {
                if (impl->def.on_create_)
                    impl->def.on_create_(Host(host), config ? std::string_view(config, config_len) : "{}");
            } catch (...) {
                delete self;
                throw;
            }
            *instance = self;
            return MCPP_OK;
        } catch (const std::exception &e) {
            write_line(err, std::string("create failed: ") + e.what());
        } catch (...) {
            write_line(err, "create failed: a non-standard C++ exception");
        }
        return MCPP_E_FAILED;
    }

    /* mcpp_plugin.destroy [main] */
    static void destroy(void *instance) noexcept {
        Instance *self = static_cast<Instance *>(instance);
        if (self == nullptr)
            return;
        try {
            if (self->impl->def.on_destroy_)
                self->impl->def.on_destroy_();
        } catch (...) {
            Host(self->host).log(Level::error, "on_destroy threw an exception (ignored)");
        }
        delete self;
    }

    /* mcpp_plugin.describe [main]: adds every declaration; the first failed add_* fails the whole describe. */
    static mcpp_status describe(void *instance, const mcpp_registry *reg) noexcept {
        const Instance *self = static_cast<const Instance *>(instance);
        if (self == nullptr || reg == nullptr)
            return MCPP_E_INVALID;
        const Definition &def = self->impl->def;
        try {
            mcpp_status st = MCPP_OK;
            if (!def.tools_.empty() && !MCPP_HAS(reg, mcpp_registry, add_tool))
                return MCPP_E_VERSION;
            for (size_t i = 0; i < def.tools_.size() && st == MCPP_OK; i++) {
                mcpp_tool t = def.tools_[i].decl.raw();
                st = reg->add_tool(reg->ctx, &t);
            }
            if (!def.resources_.empty() && !MCPP_HAS(reg, mcpp_registry, add_resource))
                return MCPP_E_VERSION;
            for (size_t i = 0; i < def.resources_.size() && st == MCPP_OK; i++) {
                mcpp_resource r = def.resources_[i].decl.raw();
                st = reg->add_resource(reg->ctx, &r);
            }
            if (!def.templates_.empty() && !MCPP_HAS(reg, mcpp_registry, add_resource_template))
                return MCPP_E_VERSION;
            for (size_t i = 0; i < def.templates_.size() && st == MCPP_OK; i++) {
                mcpp_resource_template r = def.templates_[i].decl.raw();
                st = reg->add_resource_template(reg->ctx, &r);
            }
            if (!def.prompts_.empty() && !MCPP_HAS(reg, mcpp_registry, add_prompt))
                return MCPP_E_VERSION;
            for (size_t i = 0; i < def.prompts_.size() && st == MCPP_OK; i++) {
                mcpp_prompt p = def.prompts_[i].decl.raw(self->impl->prompt_args[i]);
                st = reg->add_prompt(reg->ctx, &p);
            }
            if (!def.list_caches_.empty() && !(MCPP_HAS(reg, mcpp_registry, set_list_cache) && reg->set_list_cache)) {
                /* a hint only: a registry without it (ABI 1.0) serves the lists uncached */
                Host(self->host).log(Level::warning, "the host's registry has no set_list_cache (ABI 1.1): list cache hints dropped");
                return st;
            }
            for (size_t i = 0; i < def.list_caches_.size() && st == MCPP_OK; i++) {
                const Definition::ListCache &c = def.list_caches_[i];
                st = reg->set_list_cache(reg->ctx, c.lists, c.ttl_ms, c.scope);
            }
            return st;
        } catch (...) {
            Host(self->host).log(Level::error, "describe failed: a C++ exception");
            return MCPP_E_FAILED;
        }
    }

    /* mcpp_plugin.call_tool [handler]: dispatch by name. */
    static void call_tool(void *instance, mcpp_call *raw, const char *name, size_t name_len) noexcept {
        const Instance *self = static_cast<const Instance *>(instance);
        if (self == nullptr)
            return; /* a host bug: without the instance there is no host table to finish with */
        run(self, raw, Call::Kind::tool, [&](Call &call, std::string &what) {
            std::string_view n = detail::view(name, name_len);
            auto it = self->impl->tool_index.find(n);
            if (it == self->impl->tool_index.end())
                throw NotFound("unknown tool '" + detail::clip(n, 100) + "'");
            name_call(call, what, "tool '" + detail::clip(n, 100) + "'");
            self->impl->def.tools_[it->second].handler(call);
        });
    }

    /* mcpp_plugin.read_resource [handler]: a plain resource (template empty) or a matched template. */
    static void read_resource(void *instance, mcpp_call *raw, const char *uri, size_t uri_len, const char *tmpl,
                              size_t tmpl_len) noexcept {
        const Instance *self = static_cast<const Instance *>(instance);
        if (self == nullptr)
            return;
        run(self, raw, Call::Kind::resource, [&](Call &call, std::string &what) {
            std::string_view u = detail::view(uri, uri_len), t = detail::view(tmpl, tmpl_len);
            const Definition &def = self->impl->def;
            if (t.empty()) {
                auto it = self->impl->resource_index.find(u);
                if (it == self->impl->resource_index.end())
                    throw NotFound("unknown resource '" + detail::clip(u) + "'");
                name_call(call, what, "resource '" + detail::clip(u) + "'");
                def.resources_[it->second].handler(call, u);
            } else {
                auto it = self->impl->template_index.find(t);
                if (it == self->impl->template_index.end())
                    throw NotFound("unknown resource template '" + detail::clip(t) + "'");
                name_call(call, what, "resource template '" + detail::clip(t) + "'");
                def.templates_[it->second].handler(call, u);
            }
        });
    }

    /* mcpp_plugin.get_prompt [handler] */
    static void get_prompt(void *instance, mcpp_call *raw, const char *name, size_t name_len) noexcept {
        const Instance *self = static_cast<const Instance *>(instance);
        if (self == nullptr)
            return;
        run(self, raw, Call::Kind::prompt, [&](Call &call, std::string &what) {
            std::string_view n = detail::view(name, name_len);
            auto it = self->impl->prompt_index.find(n);
            if (it == self->impl->prompt_index.end())
                throw NotFound("unknown prompt '" + detail::clip(n, 100) + "'");
            name_call(call, what, "prompt '" + detail::clip(n, 100) + "'");
            self->impl->def.prompts_[it->second].handler(call);
        });
    }

    /* mcpp_plugin.complete [handler]: the prompt's or template's completer; a declared one without a
     * completer answers with no values; an unknown reference is NOT_FOUND. */
    static void complete(void *instance, mcpp_call *raw, int32_t ref_kind, const char *ref, size_t ref_len,
                         const char *arg, size_t arg_len, const char *value, size_t value_len) noexcept {
        const Instance *self = static_cast<const Instance *>(instance);
        if (self == nullptr)
            return;
        run(self, raw, Call::Kind::completion, [&](Call &call, std::string &what) {
            std::string_view r = detail::view(ref, ref_len);
            const Completer *fn = nullptr;
            const Impl &impl = *self->impl;
            if (ref_kind == MCPP_REF_PROMPT) {
                auto it = impl.prompt_index.find(r);
                if (it != impl.prompt_index.end())
                    fn = &impl.def.prompts_[it->second].decl.completer();
            } else if (ref_kind == MCPP_REF_RESOURCE_TEMPLATE) {
                auto it = impl.template_index.find(r);
                if (it != impl.template_index.end())
                    fn = &impl.def.templates_[it->second].decl.completer();
            }
            if (fn == nullptr)
                throw NotFound("nothing to complete for '" + detail::clip(r) + "'");
            name_call(call, what, "the completer of '" + detail::clip(r) + "'");
            if (*fn) {
                (*fn)(call, detail::view(arg, arg_len), detail::view(value, value_len));
            } else {
                call.set_completion_info(0, false);
                call.ok();
            }
        });
    }

    /* mcpp_plugin.health [any, must not block] */
    static mcpp_status health(void *instance, const mcpp_writer *detail) noexcept {
        const Instance *self = static_cast<const Instance *>(instance);
        if (self == nullptr)
            return MCPP_E_FAILED;
        try {
            Health h = self->impl->def.on_health_();
            write_line(detail, h.detail);
            return h.healthy ? MCPP_OK : MCPP_E_FAILED;
        } catch (const std::exception &e) {
            write_line(detail, std::string("health check threw: ") + e.what());
        } catch (...) {
            write_line(detail, "health check threw a non-standard C++ exception");
        }
        return MCPP_E_FAILED;
    }

    Impl *impl_;
};

} // namespace mcpp

/* Exports mcpp_negotiate_v1 for `plugin` (an mcpp::Plugin with static storage), with exactly the body of
 * MCPP_DEFINE_ENTRY (it *is* MCPP_DEFINE_ENTRY): the function has C linkage (declared extern "C" in
 * mcp_plugin.h) and default visibility (MCPP_EXPORT); it cannot throw. Write it with a semicolon. */
#define MCPP_PLUGIN(plugin) MCPP_DEFINE_ENTRY((plugin).table())

#endif /* MCP_PLUGIN_HPP */
