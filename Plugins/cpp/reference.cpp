// reference.cpp — the C++ reference plugin for mcp-plugin-host, written only against mcp_plugin.hpp
// (the header-only C++17 wrapper over the plugin ABI 1.1).
//
// Build: Plugins/cpp/build.sh  ->  .build-plugins/libcpp_reference.so
// Run:   mcp-plugin-host --plugin .build-plugins/libcpp_reference.so --listen 127.0.0.1:0
//
// What it declares (the C reference plugin's set, plus two tools that show the wrapper's safety nets):
//   tools      echo {text}, add {a, b}, slow_count {seconds?}, fail {message}   (as Plugins/reference-c)
//              throw {message?, kind?}  throws a C++ exception: the call ends with an internal error
//              unfinished {}            returns without finishing: the call ends with an internal error
//              confirm {action, twice?} asks the user (elicitation, ABI 1.1), as the C plugin's confirm
//              ask_model {question}     asks the client's model (sampling, ABI 1.1)
//              list_roots {}            asks the client for its roots (ABI 1.1)
//   resource   cpp-reference://readme
//   template   cpp-reference://notes/{id}        (notes 1, 2 and 3 exist)
//   prompt     greet {name, style?}
//   completion greet.style, cpp-reference://notes/{id}.id
//   cache      every list public for a minute, the readme public for five (2026-07-28 ttlMs/cacheScope)
//
// Threading: CONCURRENT. The handlers share no mutable state.
#include "mcp_plugin.hpp"

#include <array>
#include <charconv>
#include <chrono>
#include <optional>
#include <cmath>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

namespace {

// ---------------------------------------------------------------------------------------------------
// Schemas (JSON text; the host parses arguments, so no JSON library is needed)
// ---------------------------------------------------------------------------------------------------

constexpr const char *ECHO_SCHEMA = R"({"type":"object",)"
                                    R"("properties":{"text":{"type":"string","description":"The text to send back"}},)"
                                    R"("required":["text"]})";
constexpr const char *ADD_SCHEMA = R"({"type":"object",)"
                                   R"("properties":{"a":{"type":"number","description":"First addend"},)"
                                   R"("b":{"type":"number","description":"Second addend"}},)"
                                   R"("required":["a","b"]})";
constexpr const char *ADD_OUTPUT_SCHEMA = R"({"type":"object","properties":{"sum":{"type":"number"}},"required":["sum"]})";
constexpr const char *PURE = R"({"readOnlyHint":true,"idempotentHint":true,"openWorldHint":false})";
constexpr const char *SLOW_COUNT_SCHEMA =
    R"({"type":"object",)"
    R"("properties":{"seconds":{"type":"integer","minimum":0,"maximum":30,"default":3,)"
    R"~("description":"How long to count, in seconds (10 steps per second)"}},)~"
    R"("required":[]})";
constexpr const char *FAIL_SCHEMA = R"({"type":"object",)"
                                    R"("properties":{"message":{"type":"string","description":"The error message"}},)"
                                    R"("required":["message"]})";
constexpr const char *THROW_SCHEMA =
    R"({"type":"object","properties":{)"
    R"("message":{"type":"string","description":"The exception's message"},)"
    R"("kind":{"type":"string","enum":["std","other"],)"
    R"("description":"std: a std::runtime_error (default); other: an int, not a std::exception"}}})";
constexpr const char *EMPTY_SCHEMA = R"({"type":"object","properties":{}})";
constexpr const char *CONFIRM_SCHEMA =
    R"({"type":"object","properties":{"action":{"type":"string","description":"What to confirm"},)"
    R"("twice":{"type":"boolean","description":"Ask a second time after a yes"}},"required":["action"]})";
constexpr const char *CONFIRM_REQUESTED =
    R"({"type":"object","properties":{"confirm":{"type":"boolean","title":"Confirm"}},"required":["confirm"]})";
constexpr const char *ASK_MODEL_SCHEMA =
    R"({"type":"object","properties":{"question":{"type":"string"}},"required":["question"]})";

constexpr std::string_view README_URI = "cpp-reference://readme";
constexpr std::string_view NOTES_TEMPLATE = "cpp-reference://notes/{id}";
constexpr std::string_view README_TEXT =
    "This is the C++ reference plugin of mcp-supervisor, written against mcp_plugin.hpp (plugin ABI 1.1).\n"
    "Tools: echo, add, slow_count, fail, throw, unfinished, confirm, ask_model, list_roots. Notes 1 to 3 live at\n"
    "cpp-reference://notes/{id}.\n";

constexpr std::array<std::string_view, 4> STYLES = {"friendly", "formal", "pirate", "poetic"};
constexpr std::array<std::string_view, 3> NOTE_IDS = {"1", "2", "3"};

// ---------------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------------

// A missing or mistyped argument makes call.string() throw mcpp::InvalidParams: the wrapper finishes the
// call with MCPP_OUTCOME_INVALID_PARAMS and the message "missing required argument 'text'".
void echo(mcpp::Call &call) {
    call.add_text(call.string("text")); // the view is borrowed from the host; add_text copies it
    call.ok();
}

// Shortest decimal text that reads back as the same double ("5", "5.5", "0.30000000000000004").
std::string format_number(double v) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

void add(mcpp::Call &call) {
    double sum = call.number("a") + call.number("b");
    if (!std::isfinite(sum)) // JSON has no inf/nan
        throw mcpp::ToolError("the sum is too large to represent");
    std::string text = format_number(sum);
    call.add_text(text);
    call.set_structured("{\"sum\":" + text + "}");
    call.ok();
}

void slow_count(mcpp::Call &call) {
    int64_t seconds = call.optional_integer("seconds").value_or(3); // absent or null: the default
    if (seconds < 0 || seconds > 30)
        throw mcpp::InvalidParams("argument 'seconds' must be between 0 and 30");
    const int steps = static_cast<int>(seconds) * 10;
    call.log(mcpp::Level::info, "counting " + std::to_string(steps) + " steps of 100 ms");
    for (int step = 0; step < steps; step++) {
        if (call.is_cancelled()) {
            call.tool_error("cancelled after " + std::to_string(step) + " steps");
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        call.progress(step + 1, steps, "step " + std::to_string(step + 1) + " of " + std::to_string(steps));
    }
    if (call.is_cancelled()) { // cancelled during the last sleep
        call.tool_error("cancelled after " + std::to_string(steps) + " steps");
        return;
    }
    call.add_text("counted to " + std::to_string(steps));
    call.ok();
}

// mcpp::ToolError -> MCPP_OUTCOME_TOOL_ERROR: a result with isError = true whose text is the message.
void fail(mcpp::Call &call) { throw mcpp::ToolError(std::string(call.string("message"))); }

// Any other exception -> MCPP_OUTCOME_INTERNAL ("tool 'throw' threw std::runtime_error: ..."), logged by the
// wrapper; the exception never reaches the host and the plugin keeps serving.
void throw_tool(mcpp::Call &call) {
    std::string message(call.optional_string("message").value_or("the throw tool threw on purpose"));
    if (call.optional_string("kind").value_or("std") == "other")
        throw 42; // not a std::exception
    throw std::runtime_error(message);
}

// Returns without finishing the call: the wrapper finishes it with MCPP_OUTCOME_INTERNAL.
void unfinished(mcpp::Call &call) { call.add_text("this text is never sent"); }

// ---------------------------------------------------------------------------------------------------
// Asking the client (ABI 1.1). The same code serves both protocol eras: in 2025-11-25 the continuation gets
// the answer while the call waits; in 2026-07-28 the first attempt is suspended (the wrapper finishes it and
// the host answers input_required) and the client's retry runs the handler again, where the same request
// (same automatic key) is answered at once. So the handlers ask before they act.
// ---------------------------------------------------------------------------------------------------

void ask_confirmation(mcpp::Call &call, bool again);

// The continuation: the Call was moved into the request and comes back here with the answer.
void confirmed(mcpp::Call c, const mcpp::Answer &a, bool again) {
    a.require(); // refused -> tool error, unsupported -> needs capability, cancelled -> internal error
    std::string action = a.string(c, "/action").value_or("nothing");
    if (action != "accept") {
        c.add_text("Not confirmed: the user chose " + action.substr(0, 20));
        c.ok();
        return;
    }
    std::optional<mcpp::Json> yes = a.get(c, "/content/confirm");
    if (!yes || !yes->is_true()) {
        c.add_text("Not confirmed: the user said no");
        c.ok();
        return;
    }
    if (!again && c.optional_boolean("twice").value_or(false)) {
        ask_confirmation(c, true); // a second round: the Call moves on into the next request
        return;
    }
    std::string text = "Confirmed: " + std::string(c.string("action").substr(0, 500));
    if (std::optional<std::string_view> ticket = c.request_state()) // 2026-07-28 retries carry it back
        text += " (after a retry carrying " + std::string(ticket->substr(0, 100)) + ")";
    c.add_text(text);
    c.ok();
}

void ask_confirmation(mcpp::Call &call, bool again) {
    std::string action(call.string("action").substr(0, 500));
    call.set_request_state("ticket-1"); // sealed by the host; comes back in the retry
    call.elicit((again ? "Are you sure: " : "Really do this: ") + action + "?", CONFIRM_REQUESTED,
                [again](mcpp::Call c, mcpp::Answer a) { confirmed(std::move(c), a, again); });
}

void confirm(mcpp::Call &call) { ask_confirmation(call, false); }

void ask_model(mcpp::Call &call) {
    std::string question(call.string("question").substr(0, 2000));
    call.sample(question, 200, [](mcpp::Call c, mcpp::Answer a) {
        a.require();
        std::string model = a.string(c, "/model").value_or("unknown");
        std::string text = a.string(c, "/content/text").value_or("");
        c.add_text("The model (" + model.substr(0, 100) + ") says: " + text.substr(0, 2000));
        c.ok();
    });
}

void list_roots(mcpp::Call &call) {
    call.list_roots([](mcpp::Call c, mcpp::Answer a) {
        a.require();
        int count = 0;
        for (;; count++) {
            std::optional<std::string> uri = a.string(c, "/roots/" + std::to_string(count) + "/uri");
            if (!uri)
                break;
            c.add_text(*uri);
        }
        c.add_text(std::to_string(count) + (count == 1 ? " root" : " roots"));
        c.ok();
    });
}

// ---------------------------------------------------------------------------------------------------
// Resources, prompt and completions
// ---------------------------------------------------------------------------------------------------

void read_readme(mcpp::Call &call, std::string_view uri) {
    call.set_cache(std::chrono::minutes(5), mcpp::CacheScope::public_); // the same for everyone
    call.add_resource_text(uri, "text/plain", README_TEXT);
    call.ok();
}

void read_note(mcpp::Call &call, std::string_view uri) {
    std::string_view id = call.string("id"); // the {id} variable of the template, percent-decoded
    if (id != "1" && id != "2" && id != "3")
        throw mcpp::NotFound("no note with id '" + std::string(id.substr(0, 100)) + "'");
    call.add_resource_text(uri, "text/plain", "Note " + std::string(id));
    call.ok();
}

void greet(mcpp::Call &call) {
    std::string_view who = call.string("name");
    std::string_view style = call.optional_string("style").value_or("friendly");
    if (style.empty())
        style = "friendly";
    call.set_description("A greeting");
    call.add_text("Please greet " + std::string(who) + " in a " + std::string(style) + " way."); // role: user
    call.ok();
}

// Offers the values that start with the typed prefix.
template <size_t N>
void complete_from(mcpp::Call &call, const std::array<std::string_view, N> &values, std::string_view prefix) {
    int64_t total = 0;
    for (std::string_view v : values)
        if (v.substr(0, prefix.size()) == prefix) {
            call.add_completion(v);
            total++;
        }
    call.set_completion_info(total, false);
    call.ok();
}

void complete_greet(mcpp::Call &call, std::string_view arg, std::string_view value) {
    if (arg == "style")
        complete_from(call, STYLES, value);
    else
        complete_from(call, std::array<std::string_view, 0>{}, value); // names: nothing to offer
}

void complete_note(mcpp::Call &call, std::string_view arg, std::string_view value) {
    if (arg == "id")
        complete_from(call, NOTE_IDS, value);
    else
        complete_from(call, std::array<std::string_view, 0>{}, value);
}

// ---------------------------------------------------------------------------------------------------
// The plugin
// ---------------------------------------------------------------------------------------------------

const mcpp::Plugin plugin{
    mcpp::Definition("cpp-reference", "1.0.0")
        .title("Reference plugin (C++)")
        .instructions("A demonstration server written in C++: echo text, add numbers, count slowly, read notes, "
                      "get a greeting prompt, ask the user or the client's model, and two tools that misbehave on "
                      "purpose.")
        .concurrent()
        .tool(mcpp::Tool("echo")
                  .title("Echo")
                  .description("Returns the text it was given.")
                  .input_schema(ECHO_SCHEMA)
                  .annotations(PURE)
                  .nonblocking(),
              echo)
        .tool(mcpp::Tool("add")
                  .title("Add")
                  .description("Adds two numbers and returns the sum.")
                  .input_schema(ADD_SCHEMA)
                  .output_schema(ADD_OUTPUT_SCHEMA)
                  .annotations(PURE)
                  .nonblocking(),
              add)
        .tool(mcpp::Tool("slow_count")
                  .title("Slow count")
                  .description("Counts in steps of 100 ms, reporting progress; can be cancelled.")
                  .input_schema(SLOW_COUNT_SCHEMA),
              slow_count)
        .tool(mcpp::Tool("fail")
                  .title("Fail")
                  .description("Always fails with the given message.")
                  .input_schema(FAIL_SCHEMA),
              fail)
        // Not NONBLOCKING: the wrapper logs the exception to the host's log (stderr).
        .tool(mcpp::Tool("throw")
                  .title("Throw")
                  .description("Throws a C++ exception; the call fails with an internal error.")
                  .input_schema(THROW_SCHEMA),
              throw_tool)
        .tool(mcpp::Tool("unfinished")
                  .title("Unfinished")
                  .description("Returns without finishing its call; the call fails with an internal error.")
                  .input_schema(EMPTY_SCHEMA),
              unfinished)
        .tool(mcpp::Tool("confirm")
                  .title("Confirm")
                  .description("Asks the user to confirm an action (elicitation) and reports the answer.")
                  .input_schema(CONFIRM_SCHEMA),
              confirm)
        .tool(mcpp::Tool("ask_model")
                  .title("Ask the model")
                  .description("Asks the client's model a question (sampling) and reports its answer.")
                  .input_schema(ASK_MODEL_SCHEMA),
              ask_model)
        .tool(mcpp::Tool("list_roots")
                  .title("List roots")
                  .description("Asks the client for its roots and lists their URIs.")
                  .input_schema(EMPTY_SCHEMA),
              list_roots)
        .resource(mcpp::Resource(std::string(README_URI), "readme")
                      .title("Read me")
                      .description("What this plugin is.")
                      .mime_type("text/plain")
                      .size(static_cast<int64_t>(README_TEXT.size())),
                  read_readme)
        .resource_template(mcpp::ResourceTemplate(std::string(NOTES_TEMPLATE), "note")
                               .title("Note")
                               .description("A short note; ids 1, 2 and 3 exist.")
                               .mime_type("text/plain")
                               .completer(complete_note),
                           read_note)
        .prompt(mcpp::Prompt("greet")
                    .title("Greet someone")
                    .description("Asks the model to greet a person in a given style.")
                    .arg("name", "Who to greet", true)
                    .arg("style", "friendly (default), formal, pirate or poetic")
                    .completer(complete_greet),
                greet)
        .list_cache(mcpp::List::tools | mcpp::List::resources | mcpp::List::prompts, std::chrono::minutes(1),
                    mcpp::CacheScope::public_)
        .on_create([](mcpp::Host host, std::string_view) { host.log(mcpp::Level::debug, "cpp-reference: created"); })
        .on_health([] { return mcpp::Health::ok("ok"); })};

} // namespace

MCPP_PLUGIN(plugin);
