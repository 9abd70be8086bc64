//! The Rust reference plugin for mcp-plugin-host, built on the `mcp-plugin` kit (std only).
//!
//! Build: `Plugins/rust/build.sh` → `.build-plugins/librust_reference.so`
//! Run:   `mcp-plugin-host --plugin .build-plugins/librust_reference.so --listen 127.0.0.1:0`
//!
//! Tools:
//!   reverse {text}      the text reversed (by Unicode scalar value)
//!   word_count {text}   "N words" plus structuredContent {"words": N} (declared by an outputSchema)
//!   panic {message?}    panics on purpose: the kit turns it into an internal error, the host keeps serving
//!
//! ABI 1.1 (interactive tools: each handler runs on a kit thread and blocks until the client answers), with the
//! names, schemas and answer texts of the C reference plugin's tools (Plugins/reference-c/reference.c, 4b):
//!   confirm {action, twice?}  asks the user to confirm (elicitation; `twice` asks again after a yes)
//!   ask_model {question}      asks the client's model (sampling) and reports its answer
//!   list_roots {}             asks the client for its roots and lists their URIs
//! The tools list carries a cache hint (2026-07-28 ttlMs 60000, public).
//!
//! The plugin type holds nothing but the host table, so it is `Sync` and the kit declares it CONCURRENT.
use std::time::Duration;

use mcp_plugin::{
    export_plugin, CacheScope, Call, Host, ListCache, Lists, LogLevel, OptionalArg, Outcome, Plugin, Tool,
};

pub struct RustReference {
    host: Host,
}

const TEXT_SCHEMA: &str = concat!(
    r#"{"type":"object","#,
    r#""properties":{"text":{"type":"string","description":"The text to work on"}},"#,
    r#""required":["text"]}"#
);
const WORD_COUNT_OUTPUT_SCHEMA: &str = concat!(
    r#"{"type":"object","#,
    r#""properties":{"words":{"type":"integer","minimum":0}},"#,
    r#""required":["words"]}"#
);
const PANIC_SCHEMA: &str = concat!(
    r#"{"type":"object","#,
    r#""properties":{"message":{"type":"string","description":"The panic message"}}}"#
);
const CONFIRM_SCHEMA: &str = concat!(
    r#"{"type":"object","properties":{"action":{"type":"string","description":"What to confirm"},"#,
    r#""twice":{"type":"boolean","description":"Ask a second time after a yes"}},"#,
    r#""required":["action"]}"#
);
/// The form the user fills in (the elicitation's requestedSchema).
const CONFIRM_FORM: &str =
    r#"{"type":"object","properties":{"confirm":{"type":"boolean","title":"Confirm"}},"required":["confirm"]}"#;
const ASK_MODEL_SCHEMA: &str =
    r#"{"type":"object","properties":{"question":{"type":"string"}},"required":["question"]}"#;
const PURE: &str = r#"{"readOnlyHint":true,"idempotentHint":true,"openWorldHint":false}"#;

fn reverse(call: &Call) -> Result<(), Outcome> {
    let text = call.arg_str("text")?;
    let reversed: String = text.chars().rev().collect();
    call.add_text(&reversed)?;
    Ok(())
}

fn word_count(call: &Call) -> Result<(), Outcome> {
    let text = call.arg_str("text")?;
    let words = text.split_whitespace().count();
    call.add_text(&format!("{words} {}", if words == 1 { "word" } else { "words" }))?;
    call.set_structured(&format!("{{\"words\":{words}}}"))?;
    Ok(())
}

fn panic_tool(call: &Call) -> Result<(), Outcome> {
    let message = call.arg_str("message").optional()?.unwrap_or("the panic tool panicked on purpose");
    panic!("{message}");
}

/// confirm: asks (and with `twice`, asks again after a yes) before it acts, so that in 2026-07-28 each
/// retry runs the same questions in the same order; only after every answer is in does it "act".
fn confirm(call: &Call) -> Result<(), Outcome> {
    let action = truncate(call.arg_str("action")?, 500);
    let twice = call.arg_bool("twice").unwrap_or(false);
    for (key, question) in [("confirm", "Really do this"), ("confirm_again", "Are you sure")] {
        // What comes back in the retry (2026-07-28): the host seals it; here, just a marker.
        call.set_request_state(b"ticket-1")?;
        // Suspended (2026-07-28: input_required), refused, unsupported, cancelled: `?` ends the call right.
        let answer = call.elicit(key, &format!("{question}: {action}?"), CONFIRM_FORM)?;
        match answer.action() {
            Ok("accept") => {}
            chose => {
                let chose = chose.map(|a| truncate(a, 20)).unwrap_or("nothing");
                call.add_text(&format!("Not confirmed: the user chose {chose}"))?;
                return Ok(());
            }
        }
        if answer.bool("/content/confirm") != Ok(true) {
            call.add_text("Not confirmed: the user said no")?;
            return Ok(());
        }
        if !twice {
            break;
        }
    }
    let reply = match call.request_state()? {
        Some(ticket) => format!(
            "Confirmed: {action} (after a retry carrying {})",
            String::from_utf8_lossy(&ticket[..ticket.len().min(100)])
        ),
        None => format!("Confirmed: {action}"),
    };
    call.add_text(&reply)?;
    Ok(())
}

fn ask_model(call: &Call) -> Result<(), Outcome> {
    let question = call.arg_str("question")?;
    let answer = call.sample("answer", truncate(question, 2000), 200)?;
    let model = answer.string("/model").map(|m| truncate(m, 100)).unwrap_or("unknown");
    let text = answer.text().map(|t| truncate(t, 2000)).unwrap_or("");
    call.add_text(&format!("The model ({model}) says: {text}"))?;
    Ok(())
}

fn list_roots(call: &Call) -> Result<(), Outcome> {
    let answer = call.roots("roots")?;
    let uris = answer.root_uris();
    for uri in &uris {
        call.add_text(uri)?;
    }
    call.add_text(&format!("{} root{}", uris.len(), if uris.len() == 1 { "" } else { "s" }))?;
    Ok(())
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Plugin for RustReference {
    const NAME: &'static str = "rust-reference";
    const VERSION: &'static str = "1.0.0";
    const TITLE: &'static str = "Reference plugin (Rust)";
    const INSTRUCTIONS: &'static str =
        "A demonstration server written in Rust: reverse text, count words, a tool that panics, and tools that \
         ask the client (confirm, ask_model, list_roots).";
    const LIST_CACHE: &'static [ListCache] =
        &[ListCache::new(Lists::TOOLS, Duration::from_secs(60), CacheScope::Public)];

    fn create(host: Host, _config: &str) -> Result<Self, String> {
        host.log(LogLevel::Debug, "rust-reference: created");
        Ok(RustReference { host })
    }

    fn tools(&self) -> Vec<Tool> {
        vec![
            Tool::new("reverse")
                .title("Reverse")
                .description("Returns the text reversed.")
                .input_schema(TEXT_SCHEMA)
                .annotations(PURE)
                .nonblocking(),
            Tool::new("word_count")
                .title("Word count")
                .description("Counts the whitespace-separated words of the text.")
                .input_schema(TEXT_SCHEMA)
                .output_schema(WORD_COUNT_OUTPUT_SCHEMA)
                .annotations(PURE)
                .nonblocking(),
            // Not NONBLOCKING: the panic hook writes to stderr.
            Tool::new("panic")
                .title("Panic")
                .description("Panics inside the plugin; the call fails with an internal error.")
                .input_schema(PANIC_SCHEMA),
            Tool::new("confirm")
                .title("Confirm")
                .description("Asks the user to confirm an action (elicitation) and reports the answer.")
                .input_schema(CONFIRM_SCHEMA)
                .interactive(),
            Tool::new("ask_model")
                .title("Ask the model")
                .description("Asks the client's model a question (sampling) and reports its answer.")
                .input_schema(ASK_MODEL_SCHEMA)
                .interactive(),
            Tool::new("list_roots")
                .title("List roots")
                .description("Asks the client for its roots and lists their URIs.")
                .interactive(),
        ]
    }

    fn call_tool(&self, name: &str, call: &mut Call) -> Outcome {
        match name {
            "reverse" => reverse(call).into(),
            "word_count" => word_count(call).into(),
            "panic" => panic_tool(call).into(),
            "confirm" => confirm(call).into(),
            "ask_model" => ask_model(call).into(),
            "list_roots" => list_roots(call).into(),
            _ => {
                self.host.log(LogLevel::Warning, &format!("rust-reference: unknown tool {name:?}"));
                Outcome::unknown_tool(name)
            }
        }
    }
}

export_plugin!(RustReference);
