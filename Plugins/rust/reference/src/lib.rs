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
//! The plugin type holds nothing but the host table, so it is `Sync` and the kit declares it CONCURRENT.
use mcp_plugin::{export_plugin, Call, Host, LogLevel, OptionalArg, Outcome, Plugin, Tool};

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

impl Plugin for RustReference {
    const NAME: &'static str = "rust-reference";
    const VERSION: &'static str = "1.0.0";
    const TITLE: &'static str = "Reference plugin (Rust)";
    const INSTRUCTIONS: &'static str =
        "A demonstration server written in Rust: reverse text, count words, and a tool that panics.";

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
        ]
    }

    fn call_tool(&self, name: &str, call: &mut Call) -> Outcome {
        match name {
            "reverse" => reverse(call).into(),
            "word_count" => word_count(call).into(),
            "panic" => panic_tool(call).into(),
            _ => {
                self.host.log(LogLevel::Warning, &format!("rust-reference: unknown tool {name:?}"));
                Outcome::unknown_tool(name)
            }
        }
    }
}

export_plugin!(RustReference);
