//! `mcp-plugin`: write an mcp-plugin-host plugin in safe Rust, with std only.
//!
//! The host owns the Model Context Protocol; a plugin declares tools and answers calls through the C ABI of
//! `Sources/PluginABI/include/mcp_plugin.h` (ABI 1.0). This crate is that ABI in two layers:
//!
//! - [`ffi`]: the header's declarations by hand (`#[repr(C)]`, fixed-width integers, no Rust enums across
//!   the boundary), with compile-time size/offset checks against `Tests/abi/layout.golden`;
//! - this module: a safe API — the [`Plugin`] trait, [`Tool`] declarations, the [`Call`] a handler works
//!   on, the [`Outcome`] it returns — and [`export_plugin!`], which exports `mcpp_negotiate_v1`.
//!
//! ```no_run
//! use mcp_plugin::{export_plugin, Call, Host, Outcome, Plugin, Tool};
//!
//! struct Echo;
//!
//! fn echo(call: &Call) -> Result<(), Outcome> {
//!     let text = call.arg_str("text")?; // a missing/mistyped argument -> invalid params
//!     call.add_text(text)?;             // a failed add -> internal error
//!     Ok(())
//! }
//!
//! impl Plugin for Echo {
//!     const NAME: &'static str = "echo";
//!     const VERSION: &'static str = "1.0.0";
//!     fn create(_host: Host, _config: &str) -> Result<Self, String> { Ok(Echo) }
//!     fn tools(&self) -> Vec<Tool> {
//!         vec![Tool::new("echo")
//!             .description("Returns the text it was given.")
//!             .input_schema(r#"{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}"#)]
//!     }
//!     fn call_tool(&self, name: &str, call: &mut Call) -> Outcome {
//!         match name {
//!             "echo" => echo(call).into(),
//!             _ => Outcome::unknown_tool(name),
//!         }
//!     }
//! }
//! export_plugin!(Echo); // Echo is Sync: declared CONCURRENT
//! ```
//!
//! # Guarantees
//!
//! - **Panics never cross the boundary.** Every `extern "C"` function of the kit runs its body under
//!   `std::panic::catch_unwind`. A panicking tool handler ends its call with `MCPP_OUTCOME_INTERNAL` (the
//!   client sees a JSON-RPC internal error, the host keeps serving); a panicking `create` fails with the
//!   panic message; `describe`/`health` report `MCPP_E_FAILED`; `destroy` swallows it. The crate refuses to
//!   build with `panic = "abort"`. (Since Rust 1.81 an unwind escaping an `extern "C"` function aborts the
//!   process instead of being undefined behaviour; the kit never relies on that.)
//! - **Every call is finished exactly once.** The handler returns an [`Outcome`]; the kit calls
//!   `mcpp_host.finish` with it after the handler returned, so the borrowed tool name and argument strings
//!   are never used after `finish`. [`Call`] also finishes itself on drop (with an internal error) if a
//!   panic ever interrupted the kit between the handler and `finish`.
//! - **Threading follows the type system.** The table declares `MCPP_THREADING_CONCURRENT` only when the
//!   plugin type is `Sync`; otherwise `MCPP_THREADING_SERIAL` (one handler at a time, so `Send` suffices:
//!   `RefCell`/`Cell` state is fine). The `[any]` callbacks that may run beside a handler even for SERIAL
//!   plugins (`health`) are only wired for `Sync` types; `cancel` is left NULL (poll
//!   [`Call::is_cancelled`]).
//! - **Borrowed text stays borrowed.** Strings from the host are checked for UTF-8 and borrowed from the
//!   [`Call`] (valid until `finish`, which happens after the handler returns); a `(NULL, 0)` pair is read
//!   as `""` without ever forming a slice from NULL.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod ffi;

#[cfg(not(panic = "unwind"))]
compile_error!(
    "mcp-plugin needs panic = \"unwind\": it catches panics at the C boundary. Remove panic = \"abort\" from the profile."
);

use std::borrow::Cow;
use std::ffi::{c_char, c_void};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ffi::*;

// ---------------------------------------------------------------------------------------------------
// Errors and statuses
// ---------------------------------------------------------------------------------------------------

/// A non-OK `mcpp_status` returned by a host function (or detected before calling it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// `MCPP_E_FAILED`, or a host function the table does not provide.
    Failed,
    /// `MCPP_E_VERSION`
    Version,
    /// `MCPP_E_INVALID`: bad argument (also: text from the host that is not UTF-8, a non-finite number).
    Invalid,
    /// `MCPP_E_NOT_FOUND`: the argument is absent or null.
    NotFound,
    /// `MCPP_E_TYPE`: the argument has another JSON type.
    Type,
    /// `MCPP_E_TOO_LARGE`: the result exceeds the host's limit.
    TooLarge,
    /// `MCPP_E_FINISHED`: the call was already finished.
    Finished,
    /// `MCPP_E_CANCELLED`: the call was cancelled; output is discarded.
    Cancelled,
    /// A status this version of the kit does not know.
    Other(i32),
}

impl Error {
    /// `Ok(())` for `MCPP_OK`, the error otherwise.
    pub fn check(status: mcpp_status) -> Result<(), Error> {
        Err(match status {
            MCPP_OK => return Ok(()),
            MCPP_E_FAILED => Error::Failed,
            MCPP_E_VERSION => Error::Version,
            MCPP_E_INVALID => Error::Invalid,
            MCPP_E_NOT_FOUND => Error::NotFound,
            MCPP_E_TYPE => Error::Type,
            MCPP_E_TOO_LARGE => Error::TooLarge,
            MCPP_E_FINISHED => Error::Finished,
            MCPP_E_CANCELLED => Error::Cancelled,
            other => Error::Other(other),
        })
    }

    /// The `mcpp_status` value.
    pub fn status(self) -> mcpp_status {
        match self {
            Error::Failed => MCPP_E_FAILED,
            Error::Version => MCPP_E_VERSION,
            Error::Invalid => MCPP_E_INVALID,
            Error::NotFound => MCPP_E_NOT_FOUND,
            Error::Type => MCPP_E_TYPE,
            Error::TooLarge => MCPP_E_TOO_LARGE,
            Error::Finished => MCPP_E_FINISHED,
            Error::Cancelled => MCPP_E_CANCELLED,
            Error::Other(s) => s,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Error::Failed => "failed",
            Error::Version => "ABI version mismatch",
            Error::Invalid => "invalid argument",
            Error::NotFound => "not found",
            Error::Type => "wrong JSON type",
            Error::TooLarge => "the result is too large",
            Error::Finished => "the call was already finished",
            Error::Cancelled => "the call was cancelled",
            Error::Other(s) => return write!(f, "status {s}"),
        };
        f.write_str(what)
    }
}

impl std::error::Error for Error {}

/// An argument could not be read: which key, what was expected, and the host's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError {
    key: String,
    want: &'static str,
    error: Error,
}

impl ArgError {
    fn new(key: &str, want: &'static str, error: Error) -> ArgError {
        ArgError { key: key.to_owned(), want, error }
    }
    /// The key is absent or its value is null.
    pub fn is_missing(&self) -> bool {
        self.error == Error::NotFound
    }
    pub fn key(&self) -> &str {
        &self.key
    }
    pub fn error(&self) -> Error {
        self.error
    }
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error {
            Error::NotFound => write!(f, "missing required argument '{}'", self.key),
            Error::Type => write!(f, "argument '{}' must be {}", self.key, self.want),
            e => write!(f, "argument '{}' is invalid ({e})", self.key),
        }
    }
}

impl std::error::Error for ArgError {}

/// `call.arg_i64("n").optional()?` — an absent (or null) argument becomes `None`.
pub trait OptionalArg<T> {
    fn optional(self) -> Result<Option<T>, ArgError>;
}

impl<T> OptionalArg<T> for Result<T, ArgError> {
    fn optional(self) -> Result<Option<T>, ArgError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_missing() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Outcome
// ---------------------------------------------------------------------------------------------------

/// How a call ends (`MCPP_OUTCOME_*`). The host maps it to the right protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Success: the content added so far is sent.
    Ok,
    /// A tool result with `isError: true`; the message is appended as a text block.
    ToolError(String),
    /// Unknown tool.
    NotFound(String),
    /// The arguments are wrong (JSON-RPC -32602).
    InvalidParams(String),
    /// The plugin failed for a reason of its own (JSON-RPC -32603).
    Internal(String),
}

impl Outcome {
    pub fn tool_error(msg: impl Into<String>) -> Outcome {
        Outcome::ToolError(msg.into())
    }
    pub fn invalid_params(msg: impl Into<String>) -> Outcome {
        Outcome::InvalidParams(msg.into())
    }
    pub fn internal(msg: impl Into<String>) -> Outcome {
        Outcome::Internal(msg.into())
    }
    /// `NotFound` with the usual message for a tool name the plugin does not know.
    pub fn unknown_tool(name: &str) -> Outcome {
        Outcome::NotFound(format!("unknown tool '{}'", truncate(name, 100)))
    }

    /// The `MCPP_OUTCOME_*` value.
    pub fn code(&self) -> i32 {
        match self {
            Outcome::Ok => MCPP_OUTCOME_OK,
            Outcome::ToolError(_) => MCPP_OUTCOME_TOOL_ERROR,
            Outcome::NotFound(_) => MCPP_OUTCOME_NOT_FOUND,
            Outcome::InvalidParams(_) => MCPP_OUTCOME_INVALID_PARAMS,
            Outcome::Internal(_) => MCPP_OUTCOME_INTERNAL,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Outcome::Ok => "",
            Outcome::ToolError(m) | Outcome::NotFound(m) | Outcome::InvalidParams(m) | Outcome::Internal(m) => m,
        }
    }
}

impl From<ArgError> for Outcome {
    fn from(e: ArgError) -> Outcome {
        Outcome::InvalidParams(e.to_string())
    }
}

/// A failed `add_*`/`set_*`: as the C reference plugin does it. After a cancellation the host discards the
/// output but the call must still end, so `Cancelled` ends it normally.
impl From<Error> for Outcome {
    fn from(e: Error) -> Outcome {
        match e {
            Error::Cancelled => Outcome::Ok,
            Error::TooLarge => Outcome::Internal("the result is too large".into()),
            e => Outcome::Internal(format!("could not build the result ({e})")),
        }
    }
}

/// Lets a handler written with `?` end in `.into()`: `Ok(())` is [`Outcome::Ok`].
impl<E: Into<Outcome>> From<Result<(), E>> for Outcome {
    fn from(r: Result<(), E>) -> Outcome {
        match r {
            Ok(()) => Outcome::Ok,
            Err(e) => e.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Host
// ---------------------------------------------------------------------------------------------------

/// Log levels (RFC 5424 severities). Converted to the header's `int32_t` values at the boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl LogLevel {
    pub fn raw(self) -> i32 {
        match self {
            LogLevel::Debug => MCPP_LOG_DEBUG,
            LogLevel::Info => MCPP_LOG_INFO,
            LogLevel::Notice => MCPP_LOG_NOTICE,
            LogLevel::Warning => MCPP_LOG_WARNING,
            LogLevel::Error => MCPP_LOG_ERROR,
            LogLevel::Critical => MCPP_LOG_CRITICAL,
            LogLevel::Alert => MCPP_LOG_ALERT,
            LogLevel::Emergency => MCPP_LOG_EMERGENCY,
        }
    }
}

/// The host's function table. Copy it into the plugin instance at `create` to log or to announce
/// changed declarations later, from any thread.
#[derive(Clone, Copy)]
pub struct Host {
    raw: &'static mcpp_host,
}

// SAFETY: the header makes the host table static for the life of the process and every function in it
// [any] ("callable from any thread, including the plugin's own").
unsafe impl Send for Host {}
unsafe impl Sync for Host {}

impl Host {
    /// The raw table, for what this crate does not wrap (resources, prompts, extensions).
    pub fn raw(&self) -> &'static mcpp_host {
        self.raw
    }

    /// The ABI minor the host implements.
    pub fn abi_minor(&self) -> u32 {
        self.raw.abi_minor
    }

    /// Writes a line to the host's log (stderr, collected by the supervisor).
    pub fn log(&self, level: LogLevel, msg: &str) {
        if let Some(f) = self.raw.log {
            // SAFETY: [any]; msg is valid for the call and copied by the host.
            unsafe { f(self.raw.ctx, level.raw(), msg.as_ptr().cast(), msg.len()) }
        }
    }

    /// Tells the host that declarations changed (`MCPP_LIST_*` bits); it calls `describe` again
    /// ([`Plugin::tools`]) and notifies subscribed clients.
    pub fn notify_list_changed(&self, lists: u32) {
        if let Some(f) = self.raw.notify_list_changed {
            // SAFETY: [any].
            unsafe { f(self.raw.ctx, lists) }
        }
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host").field("abi_minor", &self.raw.abi_minor).finish()
    }
}

// ---------------------------------------------------------------------------------------------------
// Tool declarations
// ---------------------------------------------------------------------------------------------------

/// A tool as the plugin declares it; [`Plugin::tools`] returns them and the kit passes each to
/// `mcpp_registry.add_tool` (which copies it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tool {
    pub name: Cow<'static, str>,
    pub title: Cow<'static, str>,
    pub description: Cow<'static, str>,
    /// JSON Schema object as JSON text; empty = `{"type":"object"}`.
    pub input_schema: Cow<'static, str>,
    /// Optional JSON Schema object describing `structuredContent`.
    pub output_schema: Cow<'static, str>,
    /// Optional ToolAnnotations object as JSON text.
    pub annotations: Cow<'static, str>,
    /// `MCPP_TOOL_NONBLOCKING`: the handler finishes within microseconds and never blocks.
    pub nonblocking: bool,
}

impl Tool {
    pub fn new(name: impl Into<Cow<'static, str>>) -> Tool {
        Tool {
            name: name.into(),
            title: Cow::Borrowed(""),
            description: Cow::Borrowed(""),
            input_schema: Cow::Borrowed(""),
            output_schema: Cow::Borrowed(""),
            annotations: Cow::Borrowed(""),
            nonblocking: false,
        }
    }
    pub fn title(mut self, v: impl Into<Cow<'static, str>>) -> Tool {
        self.title = v.into();
        self
    }
    pub fn description(mut self, v: impl Into<Cow<'static, str>>) -> Tool {
        self.description = v.into();
        self
    }
    pub fn input_schema(mut self, json: impl Into<Cow<'static, str>>) -> Tool {
        self.input_schema = json.into();
        self
    }
    pub fn output_schema(mut self, json: impl Into<Cow<'static, str>>) -> Tool {
        self.output_schema = json.into();
        self
    }
    pub fn annotations(mut self, json: impl Into<Cow<'static, str>>) -> Tool {
        self.annotations = json.into();
        self
    }
    /// Marks the tool `MCPP_TOOL_NONBLOCKING`. Only for handlers that never wait for anything.
    pub fn nonblocking(mut self) -> Tool {
        self.nonblocking = true;
        self
    }

    /// The declaration as the ABI struct, borrowing this tool's strings.
    pub fn as_raw(&self) -> mcpp_tool {
        mcpp_tool {
            struct_size: std::mem::size_of::<mcpp_tool>() as u32,
            flags: if self.nonblocking { MCPP_TOOL_NONBLOCKING } else { 0 },
            name: mcpp_str::from_str(&self.name),
            title: mcpp_str::from_str(&self.title),
            description: mcpp_str::from_str(&self.description),
            input_schema: mcpp_str::from_str(&self.input_schema),
            output_schema: mcpp_str::from_str(&self.output_schema),
            annotations: mcpp_str::from_str(&self.annotations),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Call
// ---------------------------------------------------------------------------------------------------

/// One tool call in flight. Handed to [`Plugin::call_tool`] as `&mut Call`; the kit ends it with the
/// handler's [`Outcome`] after the handler returns, so everything borrowed from it (argument strings)
/// is valid for the whole handler.
///
/// `Call` is `Sync` (every host function is [any]): scoped threads of the handler may report progress
/// or add content through `&Call`. It is not `Send` and cannot outlive the handler.
pub struct Call {
    host: Host,
    raw: *mut mcpp_call,
    finished: bool,
}

// SAFETY: all methods taking &self call host functions documented [any] on a handle that stays valid until
// finish(), and finish() needs &mut self (only the kit calls it, after the handler and its borrows ended).
unsafe impl Sync for Call {}

/// Builds a `&str` from a pointer + length that the host passed. `(NULL, 0)` and `(_, 0)` are `""`;
/// `(NULL, n > 0)` and invalid UTF-8 are `None`.
///
/// # Safety
/// When `len > 0` and `ptr` is not NULL, `ptr..ptr+len` must be readable for `'a`.
pub unsafe fn raw_str<'a>(ptr: *const c_char, len: usize) -> Option<&'a str> {
    if len == 0 {
        return Some("");
    }
    if ptr.is_null() || len > isize::MAX as usize {
        return None;
    }
    // SAFETY: per the caller's contract.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    std::str::from_utf8(bytes).ok()
}

macro_rules! host_fn {
    ($self:ident . $f:ident) => {
        match $self.host.raw.$f {
            Some(f) => f,
            None => return Err(Error::Failed),
        }
    };
}

impl Call {
    fn new(host: Host, raw: *mut mcpp_call) -> Call {
        Call { host, raw, finished: false }
    }

    /// The host table (to log to the host's own log, or reach functions this crate does not wrap).
    pub fn host(&self) -> Host {
        self.host
    }

    /// The raw handle, for host functions this crate does not wrap. Valid until the handler returns;
    /// never call `finish` on it (the kit does).
    pub fn as_raw(&self) -> *mut mcpp_call {
        self.raw
    }

    fn read_text(
        &self,
        f: unsafe extern "C" fn(*mut mcpp_call, *const c_char, usize, *mut *const c_char, *mut usize) -> mcpp_status,
        key: &str,
        want: &'static str,
    ) -> Result<&str, ArgError> {
        let mut out: *const c_char = std::ptr::null();
        let mut len: usize = 0;
        let (kp, kl) = if key.is_empty() { (std::ptr::null(), 0) } else { (key.as_ptr().cast(), key.len()) };
        // SAFETY: [any]; the handle is live (not finished) while &self exists.
        let st = unsafe { f(self.raw, kp, kl, &mut out, &mut len) };
        Error::check(st).map_err(|e| ArgError::new(key, want, e))?;
        // SAFETY: the host keeps the text until finish(), which happens after every borrow of self ended.
        unsafe { raw_str(out, len) }.ok_or_else(|| ArgError::new(key, want, Error::Invalid))
    }

    /// A string argument (borrowed until the call ends).
    pub fn arg_str(&self, key: &str) -> Result<&str, ArgError> {
        match self.host.raw.arg_string {
            Some(f) => self.read_text(f, key, "a string"),
            None => Err(ArgError::new(key, "a string", Error::Failed)),
        }
    }

    /// An integer argument (integral numbers like 3.0 pass; 2.5 is a type error).
    pub fn arg_i64(&self, key: &str) -> Result<i64, ArgError> {
        let f = self.host.raw.arg_int.ok_or_else(|| ArgError::new(key, "an integer", Error::Failed))?;
        let mut out = 0i64;
        // SAFETY: [any]; live handle; key valid for the call.
        let st = unsafe { f(self.raw, key.as_ptr().cast(), key.len(), &mut out) };
        Error::check(st).map_err(|e| ArgError::new(key, "an integer", e))?;
        Ok(out)
    }

    /// A number argument.
    pub fn arg_f64(&self, key: &str) -> Result<f64, ArgError> {
        let f = self.host.raw.arg_double.ok_or_else(|| ArgError::new(key, "a number", Error::Failed))?;
        let mut out = 0f64;
        // SAFETY: as arg_i64.
        let st = unsafe { f(self.raw, key.as_ptr().cast(), key.len(), &mut out) };
        Error::check(st).map_err(|e| ArgError::new(key, "a number", e))?;
        Ok(out)
    }

    /// A boolean argument.
    pub fn arg_bool(&self, key: &str) -> Result<bool, ArgError> {
        let f = self.host.raw.arg_bool.ok_or_else(|| ArgError::new(key, "a boolean", Error::Failed))?;
        let mut out = 0i32;
        // SAFETY: as arg_i64.
        let st = unsafe { f(self.raw, key.as_ptr().cast(), key.len(), &mut out) };
        Error::check(st).map_err(|e| ArgError::new(key, "a boolean", e))?;
        Ok(out != 0)
    }

    /// The value of `key` as JSON text (any type). An empty key means the whole arguments object,
    /// as in the header (key NULL, length 0); see also [`Call::args_json`].
    pub fn arg_json(&self, key: &str) -> Result<&str, ArgError> {
        match self.host.raw.arg_json {
            Some(f) => self.read_text(f, key, "JSON"),
            None => Err(ArgError::new(key, "JSON", Error::Failed)),
        }
    }

    /// The whole arguments object as JSON text.
    pub fn args_json(&self) -> Result<&str, ArgError> {
        self.arg_json("")
    }

    /// Appends a text content block.
    pub fn add_text(&self, text: &str) -> Result<(), Error> {
        let f = host_fn!(self.add_text);
        // SAFETY: [any]; the host copies the text before returning.
        Error::check(unsafe { f(self.raw, text.as_ptr().cast(), text.len()) })
    }

    /// Appends an image block; `data` is raw bytes (the host base64-encodes them).
    pub fn add_image(&self, mime: &str, data: &[u8]) -> Result<(), Error> {
        let f = host_fn!(self.add_image);
        // SAFETY: as add_text.
        Error::check(unsafe { f(self.raw, mime.as_ptr().cast(), mime.len(), data.as_ptr(), data.len()) })
    }

    /// Appends an audio block; `data` is raw bytes.
    pub fn add_audio(&self, mime: &str, data: &[u8]) -> Result<(), Error> {
        let f = host_fn!(self.add_audio);
        // SAFETY: as add_text.
        Error::check(unsafe { f(self.raw, mime.as_ptr().cast(), mime.len(), data.as_ptr(), data.len()) })
    }

    /// Appends a content block given as JSON text (for block kinds without a helper).
    pub fn add_content_json(&self, json: &str) -> Result<(), Error> {
        let f = host_fn!(self.add_content_json);
        // SAFETY: as add_text.
        Error::check(unsafe { f(self.raw, json.as_ptr().cast(), json.len()) })
    }

    /// Sets the result's `structuredContent` (a JSON object as text).
    pub fn set_structured(&self, json: &str) -> Result<(), Error> {
        let f = host_fn!(self.set_structured);
        // SAFETY: as add_text.
        Error::check(unsafe { f(self.raw, json.as_ptr().cast(), json.len()) })
    }

    /// Reports progress (dropped by the host when the client did not ask for it). `total: None` is
    /// unknown. Non-finite numbers are refused with [`Error::Invalid`] (JSON has no NaN or infinity).
    pub fn progress(&self, progress: f64, total: Option<f64>, message: &str) -> Result<(), Error> {
        if !progress.is_finite() || total.is_some_and(|t| !t.is_finite()) {
            return Err(Error::Invalid);
        }
        let f = host_fn!(self.progress);
        // SAFETY: as add_text.
        Error::check(unsafe { f(self.raw, progress, total.unwrap_or(-1.0), message.as_ptr().cast(), message.len()) })
    }

    /// A log message about this call: sent to the client when its level passes the client's threshold,
    /// always written to the host's log.
    pub fn log(&self, level: LogLevel, msg: &str) -> Result<(), Error> {
        let f = host_fn!(self.call_log);
        // SAFETY: as add_text.
        Error::check(unsafe { f(self.raw, level.raw(), msg.as_ptr().cast(), msg.len()) })
    }

    /// True once the client cancelled, disconnected or the deadline passed. Cheap: poll it in loops.
    pub fn is_cancelled(&self) -> bool {
        match self.host.raw.is_cancelled {
            // SAFETY: [any]; live handle.
            Some(f) => unsafe { f(self.raw) != 0 },
            None => false,
        }
    }

    /// Ends the call (once; later calls do nothing).
    fn finish(&mut self, outcome: &Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Some(f) = self.host.raw.finish {
            let msg = outcome.message();
            let (p, n) = if msg.is_empty() { (std::ptr::null(), 0) } else { (msg.as_ptr().cast(), msg.len()) };
            // SAFETY: [any]; first and only finish on this handle; the message is copied by the host.
            unsafe { f(self.raw, outcome.code(), p, n) }
        }
    }
}

impl Drop for Call {
    /// The last line of defence: a call that was not finished (only possible when a panic interrupted
    /// the kit itself) ends with an internal error, so the host never waits for it forever.
    fn drop(&mut self) {
        self.finish(&Outcome::Internal("the plugin did not finish the call".into()));
    }
}

// ---------------------------------------------------------------------------------------------------
// The Plugin trait
// ---------------------------------------------------------------------------------------------------

/// A plugin. Implement it for your instance type and export it with [`export_plugin!`].
///
/// `Send` is required because the host creates the instance on its control thread and runs handlers on
/// worker threads. If the type is also `Sync`, the plugin is declared CONCURRENT (handlers run in
/// parallel, up to [`Plugin::MAX_CONCURRENCY`]); otherwise SERIAL (one handler at a time).
pub trait Plugin: Send + Sized + 'static {
    /// serverInfo.name; must not be empty.
    const NAME: &'static str;
    /// serverInfo.version.
    const VERSION: &'static str;
    /// Optional human-readable name.
    const TITLE: &'static str = "";
    /// Optional guidance for the model.
    const INSTRUCTIONS: &'static str = "";
    /// CONCURRENT plugins: the most handlers at once; 0 = the host's default.
    const MAX_CONCURRENCY: u32 = 0;
    /// Set to true to be declared SERIAL even though the type is `Sync`.
    const FORCE_SERIAL: bool = false;
    /// Install the kit's panic hook at `create`: each panic becomes one line in the host's log
    /// (`panic at FILE:LINE: MESSAGE`) instead of a multi-line report on stderr; with `RUST_BACKTRACE`
    /// set (not `0`) the standard report follows it. Set to false to keep std's hook (or install your own).
    const PANIC_HOOK: bool = true;

    /// Creates the instance from the plugin configuration (JSON text, `{}` when none). An `Err` is the
    /// one-line reason the host prints before it exits (status 16).
    fn create(host: Host, config: &str) -> Result<Self, String>;

    /// The tools to declare. Called after `create` and again after [`Host::notify_list_changed`]; for a
    /// CONCURRENT plugin the later calls may run while handlers are running.
    fn tools(&self) -> Vec<Tool>;

    /// Runs tool `name`. Read arguments and add content through `call`, then return how the call ends;
    /// the kit passes it to `finish`. A panic here ends the call with an internal error.
    fn call_tool(&self, name: &str, call: &mut Call) -> Outcome;

    /// Health of the instance (`Ok(detail)` healthy, `Err(detail)` not). Runs on any thread, beside
    /// handlers, and must not block; wired only for `Sync` plugin types.
    fn health(&self) -> Result<String, String>
    where
        Self: Sync,
    {
        Ok("ok".into())
    }
}

// ---------------------------------------------------------------------------------------------------
// Exporting
// ---------------------------------------------------------------------------------------------------

/// Exports `mcpp_negotiate_v1` for a [`Plugin`] type: `export_plugin!(MyPlugin);` (once per cdylib).
///
/// The plugin table is a `static` built at compile time. It says CONCURRENT when the type is `Sync`
/// (and not [`Plugin::FORCE_SERIAL`]), SERIAL otherwise.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        /// The plugin ABI entry point (ABI 1.0), generated by `mcp_plugin::export_plugin!`.
        ///
        /// # Safety
        /// `n` must be NULL or point to a host-owned `mcpp_negotiation` of at least `n.struct_size` bytes.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn mcpp_negotiate_v1(
            n: *mut $crate::ffi::mcpp_negotiation,
        ) -> $crate::ffi::mcpp_status {
            #[allow(unused_imports)]
            use $crate::__private::SelectSerial as _;
            // The inherent constant (CONCURRENT table) exists only when the type is Sync; otherwise the
            // SelectSerial trait's constant (SERIAL table) is the one this path resolves to.
            static TABLE: $crate::__private::PluginTable = <$crate::__private::Select<$ty>>::TABLE;
            unsafe { $crate::__private::negotiate(n, &TABLE) }
        }
    };
}

#[doc(hidden)]
pub mod __private {
    //! Implementation details of `export_plugin!`: the tables and the `extern "C"` thunks.
    use super::*;
    use std::any::Any;
    use std::marker::PhantomData;

    /// The plugin table in a `static`. `#[repr(transparent)]`: a pointer to it is a pointer to the table.
    #[repr(transparent)]
    pub struct PluginTable(pub mcpp_plugin);

    // SAFETY: the table is immutable; its pointers are to 'static string constants and to functions.
    unsafe impl Sync for PluginTable {}

    /// The instance behind the `void *` the host holds.
    struct Instance<T> {
        host: Host,
        plugin: T,
    }

    // ---- panic containment ----------------------------------------------------------------------

    /// The text of a panic payload.
    pub fn panic_message(payload: &(dyn Any + Send)) -> String {
        if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a non-string payload".to_owned()
        }
    }

    /// Drops a panic payload; a payload whose own Drop panics is leaked instead of unwinding further.
    fn drop_payload(payload: Box<dyn Any + Send>) {
        if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(again);
        }
    }

    /// Runs `body`; on a panic runs `on_panic(message)`; if that panics too, returns `last_resort`.
    /// Nothing unwinds out of it.
    pub fn guard<R>(body: impl FnOnce() -> R, on_panic: impl FnOnce(&str) -> R, last_resort: R) -> R {
        match catch_unwind(AssertUnwindSafe(body)) {
            Ok(r) => r,
            Err(payload) => {
                let msg = catch_unwind(AssertUnwindSafe(|| panic_message(&*payload)));
                drop_payload(payload);
                let msg = match msg {
                    Ok(m) => m,
                    Err(p) => {
                        std::mem::forget(p);
                        return last_resort;
                    }
                };
                match catch_unwind(AssertUnwindSafe(move || on_panic(&msg))) {
                    Ok(r) => r,
                    Err(p) => {
                        std::mem::forget(p);
                        last_resort
                    }
                }
            }
        }
    }

    /// Writes one line to a host writer (newlines become spaces). Ignores a NULL or too-small writer.
    ///
    /// # Safety
    /// `w` is NULL or the writer the host passed to the current call.
    unsafe fn write_line(w: *const mcpp_writer, text: &str) {
        // SAFETY: per the contract; the struct_size check comes before reading `write`.
        let Some(w) = (unsafe { w.as_ref() }) else { return };
        if (w.struct_size as usize) < std::mem::offset_of!(mcpp_writer, write) + std::mem::size_of::<usize>() {
            return;
        }
        let Some(write) = w.write else { return };
        let line: String = text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
        if !line.is_empty() {
            // SAFETY: on the thread that received the writer, during that call; the host copies.
            unsafe { write(w.ctx, line.as_ptr().cast(), line.len()) }
        }
    }

    /// Routes panic reports to the host's log, one line each (once per process; see Plugin::PANIC_HOOK).
    fn install_panic_hook(host: Host) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let previous = std::panic::take_hook();
            let backtrace = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
            std::panic::set_hook(Box::new(move |info| {
                let msg = panic_message(info.payload());
                let line = match info.location() {
                    Some(l) => format!("panic at {}:{}: {}", l.file(), l.line(), msg),
                    None => format!("panic: {msg}"),
                };
                let line: String = line.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
                host.log(LogLevel::Error, truncate(&line, 2000));
                if backtrace {
                    previous(info);
                }
            }));
        });
    }

    fn truncate_owned(s: &str) -> String {
        truncate(s, 300).to_owned()
    }

    // ---- negotiation ----------------------------------------------------------------------------

    /// The body of `mcpp_negotiate_v1`: as MCPP_DEFINE_ENTRY in the header.
    ///
    /// # Safety
    /// `n` is NULL or points to a host-owned record of at least `n.struct_size` bytes.
    pub unsafe fn negotiate(n: *mut mcpp_negotiation, table: &'static PluginTable) -> mcpp_status {
        guard(
            || {
                if n.is_null() {
                    return MCPP_E_INVALID;
                }
                // SAFETY: n is valid for struct_size bytes; we check that before touching any other field,
                // and write only fields inside the 1.0 size. No reference to host memory is formed.
                unsafe {
                    if ((*n).struct_size as usize) < MCPP_NEGOTIATION_SIZE_1_0 {
                        return MCPP_E_INVALID;
                    }
                    (*n).plugin_abi_minor = MCPP_ABI_MINOR;
                    (*n).plugin = &table.0;
                    #[allow(unused_comparisons, clippy::absurd_extreme_comparisons)]
                    let too_old = (*n).host_abi_minor < MCPP_ABI_MINOR;
                    if (*n).host_abi_major != MCPP_ABI_MAJOR || too_old {
                        return MCPP_E_VERSION;
                    }
                }
                MCPP_OK
            },
            |_| MCPP_E_FAILED,
            MCPP_E_FAILED,
        )
    }

    // ---- tables ---------------------------------------------------------------------------------

    const fn base<T: Plugin>(threading: u32, max_concurrency: u32) -> mcpp_plugin {
        assert!(!T::NAME.is_empty(), "Plugin::NAME must not be empty");
        mcpp_plugin {
            struct_size: std::mem::size_of::<mcpp_plugin>() as u32,
            threading,
            max_concurrency,
            reserved: 0,
            name: mcpp_str::from_str(T::NAME),
            version: mcpp_str::from_str(T::VERSION),
            title: mcpp_str::from_str(T::TITLE),
            instructions: mcpp_str::from_str(T::INSTRUCTIONS),
            create: Some(thunk_create::<T> as _),
            destroy: Some(thunk_destroy::<T> as _),
            describe: Some(thunk_describe::<T> as _),
            call_tool: Some(thunk_call_tool::<T> as _),
            read_resource: None,
            get_prompt: None,
            complete: None,
            cancel: None,
            health: None,
            diagnose: None,
            get_extension: None,
        }
    }

    /// SERIAL: the type needs only `Send`; no [any] callback touches the instance.
    pub const fn table_serial<T: Plugin>() -> PluginTable {
        PluginTable(base::<T>(MCPP_THREADING_SERIAL, 0))
    }

    /// CONCURRENT (unless FORCE_SERIAL): handlers share `&T` across threads, which `Sync` makes sound;
    /// `health` (which is [any]) is wired too.
    pub const fn table_sync<T: Plugin + Sync>() -> PluginTable {
        let mut t = if T::FORCE_SERIAL {
            base::<T>(MCPP_THREADING_SERIAL, 0)
        } else {
            base::<T>(MCPP_THREADING_CONCURRENT, T::MAX_CONCURRENCY)
        };
        t.health = Some(thunk_health::<T> as _);
        PluginTable(t)
    }

    /// `<Select<T>>::TABLE` resolves to the inherent constant when `T: Sync` and to
    /// [`SelectSerial::TABLE`] otherwise (inherent items win when their bounds hold).
    pub struct Select<T>(PhantomData<T>);

    impl<T: Plugin + Sync> Select<T> {
        pub const TABLE: PluginTable = table_sync::<T>();
    }

    pub trait SelectSerial {
        const TABLE: PluginTable;
    }

    impl<T: Plugin> SelectSerial for Select<T> {
        const TABLE: PluginTable = table_serial::<T>();
    }

    // ---- thunks: every one runs its body under guard() -------------------------------------------

    unsafe extern "C" fn thunk_create<T: Plugin>(
        host: *const mcpp_host,
        config: *const c_char,
        config_len: usize,
        err: *const mcpp_writer,
        instance: *mut *mut c_void,
    ) -> mcpp_status {
        guard(
            || {
                // SAFETY (whole block): the host passes a valid table, config text, writer and out pointer
                // for the duration of this call; each is checked for NULL first.
                unsafe {
                    if host.is_null() || instance.is_null() {
                        write_line(err, "create: the host passed a NULL table or instance pointer");
                        return MCPP_E_INVALID;
                    }
                    let table: &'static mcpp_host = &*host; // static for the life of the process
                    if (table.struct_size as usize) < std::mem::size_of::<mcpp_host>() {
                        write_line(err, &format!(
                            "the host's function table has {} bytes, this plugin needs {} (ABI 1.0)",
                            table.struct_size,
                            std::mem::size_of::<mcpp_host>()
                        ));
                        return MCPP_E_VERSION;
                    }
                    let Some(config) = raw_str(config, config_len) else {
                        write_line(err, "the plugin configuration is not valid UTF-8");
                        return MCPP_E_INVALID;
                    };
                    let host = Host { raw: table };
                    if T::PANIC_HOOK {
                        install_panic_hook(host);
                    }
                    match T::create(host, config) {
                        Ok(plugin) => {
                            *instance = Box::into_raw(Box::new(Instance { host, plugin })).cast::<c_void>();
                            MCPP_OK
                        }
                        Err(reason) => {
                            write_line(err, if reason.is_empty() { "create failed" } else { &reason });
                            MCPP_E_FAILED
                        }
                    }
                }
            },
            // SAFETY: same writer, same call.
            |msg| {
                unsafe { write_line(err, &format!("create panicked: {}", truncate_owned(msg))) };
                MCPP_E_FAILED
            },
            MCPP_E_FAILED,
        )
    }

    unsafe extern "C" fn thunk_destroy<T: Plugin>(instance: *mut c_void) {
        guard(
            || {
                if !instance.is_null() {
                    // SAFETY: created by Box::into_raw in thunk_create; the host calls destroy once, after
                    // every call finished, with nothing running beside it.
                    drop(unsafe { Box::from_raw(instance.cast::<Instance<T>>()) });
                }
            },
            |_| (),
            (),
        )
    }

    unsafe extern "C" fn thunk_describe<T: Plugin>(instance: *mut c_void, reg: *const mcpp_registry) -> mcpp_status {
        if instance.is_null() {
            return MCPP_E_INVALID;
        }
        // SAFETY: the instance lives until destroy, which never runs beside describe.
        let inst = unsafe { &*instance.cast::<Instance<T>>() };
        guard(
            || {
                // SAFETY: the registry is valid during this call; struct_size is checked before add_tool.
                let reg = match unsafe { reg.as_ref() } {
                    Some(r) => r,
                    None => return MCPP_E_INVALID,
                };
                if (reg.struct_size as usize) < std::mem::offset_of!(mcpp_registry, add_tool) + std::mem::size_of::<usize>() {
                    return MCPP_E_INVALID;
                }
                let Some(add_tool) = reg.add_tool else { return MCPP_E_FAILED };
                for tool in inst.plugin.tools() {
                    let raw = tool.as_raw();
                    // SAFETY: on the describe thread during describe; the host copies the declaration.
                    let st = unsafe { add_tool(reg.ctx, &raw) };
                    if st != MCPP_OK {
                        return st;
                    }
                }
                MCPP_OK
            },
            |msg| {
                inst.host.log(LogLevel::Error, &format!("describe panicked: {}", truncate_owned(msg)));
                MCPP_E_FAILED
            },
            MCPP_E_FAILED,
        )
    }

    unsafe extern "C" fn thunk_call_tool<T: Plugin>(
        instance: *mut c_void,
        call: *mut mcpp_call,
        name: *const c_char,
        name_len: usize,
    ) {
        if instance.is_null() || call.is_null() {
            return; // a host bug; without the instance there is no host table to finish with
        }
        // SAFETY: the instance lives until destroy, which runs only after every call finished. Sharing
        // &T here is sound: SERIAL plugins get one handler at a time (T: Send), CONCURRENT ones are Sync.
        let inst = unsafe { &*instance.cast::<Instance<T>>() };
        guard(
            || {
                // Dropping `call` on any unwind below finishes the call with an internal error.
                let mut call = Call::new(inst.host, call);
                // SAFETY: name is borrowed until finish(), which comes after the handler returned.
                let outcome = match unsafe { raw_str(name, name_len) } {
                    None => Outcome::InvalidParams("the tool name is not valid UTF-8".into()),
                    Some(name) => match catch_unwind(AssertUnwindSafe(|| inst.plugin.call_tool(name, &mut call))) {
                        Ok(outcome) => outcome,
                        Err(payload) => {
                            let msg = panic_message(&*payload);
                            drop_payload(payload);
                            Outcome::Internal(format!("tool '{}' panicked: {}", truncate(name, 100), truncate(&msg, 300)))
                        }
                    },
                };
                call.finish(&outcome);
            },
            |_| (),
            (),
        )
    }

    unsafe extern "C" fn thunk_health<T: Plugin + Sync>(instance: *mut c_void, detail: *const mcpp_writer) -> mcpp_status {
        guard(
            || {
                if instance.is_null() {
                    return MCPP_E_FAILED;
                }
                // SAFETY: live instance; T: Sync, so &T may be used beside running handlers.
                let inst = unsafe { &*instance.cast::<Instance<T>>() };
                let (status, text) = match inst.plugin.health() {
                    Ok(d) => (MCPP_OK, d),
                    Err(d) => (MCPP_E_FAILED, d),
                };
                // SAFETY: the writer the host passed to this call, on this thread.
                unsafe { write_line(detail, &text) };
                status
            },
            |msg| {
                // SAFETY: as above.
                unsafe { write_line(detail, &format!("health panicked: {}", truncate_owned(msg))) };
                MCPP_E_FAILED
            },
            MCPP_E_FAILED,
        )
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
