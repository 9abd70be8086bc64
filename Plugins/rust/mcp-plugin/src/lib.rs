//! `mcp-plugin`: write an mcp-plugin-host plugin in safe Rust, with std only.
//!
//! The host owns the Model Context Protocol; a plugin declares tools and answers calls through the C ABI of
//! `Sources/PluginABI/include/mcp_plugin.h` (ABI 1.0, and the 1.1 functions when the host has them). This crate
//! is that ABI in two layers:
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
//! # Asking the client (ABI 1.1)
//!
//! A tool declared [`Tool::interactive`] runs on a thread of the kit's own; the host's handler thread returns
//! at once. Its handler may block in [`Call::elicit`], [`Call::sample`], [`Call::roots`] or [`Call::ask`],
//! which wait on a `std::sync::mpsc` channel fed by the host's answer callback and return an [`Answer`] or an
//! [`InputError`]. Every `InputError` converts into the right [`Outcome`], so `?` is the usual handling; in
//! 2026-07-28 sessions the first attempt gets [`InputError::Suspended`] (the host answers `input_required`, the
//! client retries, the handler runs again and the same key is answered at once): ask before you act.
//! [`Call::set_request_state`], [`Call::request_state`], [`Call::set_cache`], [`Call::json_get`] and
//! [`Plugin::LIST_CACHE`] wrap the rest of 1.1.
//!
//! ```no_run
//! use mcp_plugin::{Call, Outcome, Tool};
//!
//! const YES_NO: &str = r#"{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]}"#;
//!
//! // Declared with Tool::new("deploy").interactive(); called from Plugin::call_tool as deploy(call).into().
//! fn deploy(call: &Call) -> Result<(), Outcome> {
//!     call.set_request_state(b"ticket-1")?; // 2026-07-28: comes back (sealed) in the client's retry
//!     let answer = call.elicit("deploy", "Deploy now?", YES_NO)?; // suspended/refused/unsupported/cancelled
//!     if !answer.accepted() || answer.bool("/content/ok") != Ok(true) {
//!         call.add_text("not deploying")?;
//!         return Ok(());
//!     }
//!     call.add_text("deploying")?; // act only once every answer is in
//!     Ok(())
//! }
//! # let _ = (deploy, Tool::new("deploy").interactive());
//! ```
//!
//! The kit still negotiates minor 0, so a plugin loads on a 1.0 host too; there every 1.1 call fails with
//! [`Error::NotImplemented`] naming the function, and nothing past the host table's `struct_size` is read.
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
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use ffi::*;

mod input;
pub use input::{json_string, Answer, CacheScope, InputError, InputKind, JsonValue, ListCache, Lists};

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
    /// The host's table lacks this ABI 1.1 function (an older host): nothing was called. Carries the
    /// function's name and what the table says about itself.
    NotImplemented { function: &'static str, struct_size: u32, abi_minor: u32 },
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
            Error::NotImplemented { .. } => MCPP_E_VERSION,
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
            Error::NotImplemented { function, struct_size, abi_minor } => {
                return write!(
                    f,
                    "the host does not implement mcpp_host.{function} (ABI 1.1; its table has struct_size \
                     {struct_size}, abi_minor {abi_minor})"
                )
            }
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
    /// ABI 1.1: the call cannot go on without a client capability (after [`InputError::Unsupported`]):
    /// 2026-07-28 `-32021` with `data.requiredCapabilities` (HTTP 400), earlier `-32602`.
    NeedsCapability(String),
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
            Outcome::NeedsCapability(_) => MCPP_OUTCOME_NEEDS_CAPABILITY,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Outcome::Ok => "",
            Outcome::ToolError(m)
            | Outcome::NotFound(m)
            | Outcome::InvalidParams(m)
            | Outcome::Internal(m)
            | Outcome::NeedsCapability(m) => m,
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
            e @ Error::NotImplemented { .. } => Outcome::Internal(e.to_string()),
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

/// Size of `mcpp_host` in ABI 1.0: everything before `request_input`.
pub(crate) const HOST_SIZE_1_0: usize = std::mem::offset_of!(mcpp_host, request_input);

impl Host {
    /// The host's table as a full-size `&'static mcpp_host`.
    ///
    /// A table as large as this crate's declaration is used as it is. A smaller one (a 1.0 host: the 1.1
    /// functions are not there) is copied, once per table, into a zeroed full-size table that the kit keeps
    /// for the life of the process, so the missing entries read as `None` and nothing past the host's
    /// `struct_size` is ever read. `None` when the table is smaller than ABI 1.0.
    ///
    /// # Safety
    /// `table` points to a host table of at least `(*table).struct_size` bytes that lives as long as the
    /// process (the header makes it static).
    pub(crate) unsafe fn from_table(table: *const mcpp_host) -> Option<Host> {
        use std::sync::Mutex;
        // SAFETY: reading struct_size (the first field) through the raw pointer forms no reference.
        let size = unsafe { (*table).struct_size } as usize;
        if size < HOST_SIZE_1_0 {
            return None;
        }
        if size >= std::mem::size_of::<mcpp_host>() {
            // SAFETY: the whole declaration is inside the host's table; static per the contract.
            return Some(Host { raw: unsafe { &*table } });
        }
        // (host table address, copy) pairs; Host is Send + Sync (see below).
        static COPIES: Mutex<Vec<(usize, Host)>> = Mutex::new(Vec::new());
        let mut copies = COPIES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&(_, copy)) = copies.iter().find(|(addr, _)| *addr == table as usize) {
            return Some(copy);
        }
        let mut copy = Box::new(std::mem::MaybeUninit::<mcpp_host>::zeroed());
        // SAFETY: `size` bytes are readable at `table` and fit in the copy (size < size_of). All-zero bytes
        // are a valid mcpp_host (integers 0, NULL ctx, `None` function pointers), and the copied prefix holds
        // the host's own valid values.
        let copy: &'static mcpp_host = unsafe {
            std::ptr::copy_nonoverlapping(table.cast::<u8>(), copy.as_mut_ptr().cast::<u8>(), size);
            Box::leak(copy).assume_init_ref()
        };
        copies.push((table as usize, Host { raw: copy }));
        Some(Host { raw: copy })
    }

    /// The raw table, for what this crate does not wrap (resources, prompts, extensions). Entries past the
    /// host's `struct_size` (a 1.0 host's 1.1 functions) read as `None`.
    pub fn raw(&self) -> &'static mcpp_host {
        self.raw
    }

    /// True when the host implements the ABI 1.1 functions (`abi_minor >= 1` and a table that has them).
    pub fn has_1_1(&self) -> bool {
        self.raw.abi_minor >= 1 && self.raw.struct_size as usize >= std::mem::size_of::<mcpp_host>()
    }

    /// A 1.1 entry of the table, or [`Error::NotImplemented`] naming it.
    pub(crate) fn need<F>(&self, f: Option<F>, function: &'static str) -> Result<F, Error> {
        match f {
            Some(f) if self.raw.abi_minor >= 1 => Ok(f),
            _ => Err(Error::NotImplemented {
                function,
                struct_size: self.raw.struct_size,
                abi_minor: self.raw.abi_minor,
            }),
        }
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
    /// Kit-side only (not sent to the host): the handler runs on a thread of the kit's own and may ask
    /// the client ([`Call::elicit`], [`Call::sample`], [`Call::roots`], [`Call::ask`]). Needs a `Sync`
    /// plugin type; excludes `nonblocking`.
    pub interactive: bool,
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
            interactive: false,
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

    /// Runs the handler on a thread of the kit's own, so that it may block waiting for the client
    /// (ABI 1.1 input requests): the host's handler thread is given back at once, and the call is
    /// finished when the handler returns, as for any tool. Needs a `Sync` plugin type (the handler shares
    /// `&self` with the host's threads); a SERIAL (`FORCE_SERIAL`) plugin stays serial: the kit holds a
    /// lock while a handler runs and releases it only while an interactive handler waits for the client.
    pub fn interactive(mut self) -> Tool {
        self.interactive = true;
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
    /// The handler runs on a kit thread (an interactive tool) and may wait for the client.
    interactive: bool,
    /// SERIAL plugins: the lock every handler holds while it runs, and whether this call holds it now.
    gate: Option<Arc<Gate>>,
    holds_gate: Mutex<bool>,
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
        Call { host, raw, finished: false, interactive: false, gate: None, holds_gate: Mutex::new(false) }
    }

    /// A call whose handler runs on a kit thread; `gate` is the serial lock of a SERIAL plugin.
    fn new_interactive(host: Host, raw: *mut mcpp_call, gate: Option<Arc<Gate>>) -> Call {
        Call { host, raw, finished: false, interactive: true, gate, holds_gate: Mutex::new(false) }
    }

    /// True when the handler runs on a kit thread and may ask the client ([`Tool::interactive`]).
    pub fn is_interactive(&self) -> bool {
        self.interactive
    }

    /// Takes the serial lock (SERIAL plugins), unless this call holds it already.
    pub(crate) fn acquire_gate(&self) {
        if let Some(gate) = &self.gate {
            let mut holds = lock(&self.holds_gate);
            if !*holds {
                gate.acquire();
                *holds = true;
            }
        }
    }

    /// Gives the serial lock back, if this call holds it.
    pub(crate) fn release_gate(&self) {
        if let Some(gate) = &self.gate {
            let mut holds = lock(&self.holds_gate);
            if *holds {
                *holds = false;
                gate.release();
            }
        }
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
        self.release_gate();
    }
}

/// Locks a mutex of the kit, ignoring poisoning (the kit's own critical sections never panic half-way).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The serial lock of a SERIAL plugin whose handlers may run on kit threads: a binary semaphore (not a
/// guard), because an interactive handler gives it back while it waits for the client and takes it again
/// afterwards, from the same thread but across host calls.
pub(crate) struct Gate {
    busy: Mutex<GateState>,
    free: Condvar,
}

struct GateState {
    busy: bool,
    /// Threads waiting in acquire (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    waiting: usize,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate { busy: Mutex::new(GateState { busy: false, waiting: 0 }), free: Condvar::new() }
    }

    pub(crate) fn acquire(&self) {
        let mut s = lock(&self.busy);
        s.waiting += 1;
        while s.busy {
            s = self.free.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.waiting -= 1;
        s.busy = true;
    }

    pub(crate) fn release(&self) {
        lock(&self.busy).busy = false;
        self.free.notify_one();
    }

    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        lock(&self.busy).waiting
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
    /// ABI 1.1 cache hints for the lists (2026-07-28 `ttlMs` / `cacheScope` of tools/list and the
    /// others), declared at every `describe` through `mcpp_registry.set_list_cache`. A 1.0 host's registry
    /// has no such function: the hints are then dropped (one line in the host's log). Default: none (the
    /// host says 0 / private).
    const LIST_CACHE: &'static [ListCache] = &[];

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
    use std::collections::HashSet;
    use std::marker::PhantomData;
    use std::sync::RwLock;
    use std::thread::JoinHandle;

    /// The plugin table in a `static`. `#[repr(transparent)]`: a pointer to it is a pointer to the table.
    #[repr(transparent)]
    pub struct PluginTable(pub mcpp_plugin);

    // SAFETY: the table is immutable; its pointers are to 'static string constants and to functions.
    unsafe impl Sync for PluginTable {}

    /// The instance behind the `void *` the host holds.
    pub(crate) struct Instance<T> {
        host: Host,
        pub(crate) plugin: T,
        kit: Kit,
    }

    /// The kit's own state beside the plugin: which tools are interactive, their threads, the serial lock.
    pub(crate) struct Kit {
        /// Names of the tools declared [`Tool::interactive`] by the last successful describe.
        interactive: RwLock<HashSet<String>>,
        /// Threads of interactive handlers: finished ones are joined at the next spawn, the rest at destroy.
        threads: Mutex<Vec<JoinHandle<()>>>,
        /// SERIAL (`FORCE_SERIAL`) Sync plugins: held by every handler while it runs.
        gate: Arc<Gate>,
    }

    impl Kit {
        fn new() -> Kit {
            Kit { interactive: RwLock::new(HashSet::new()), threads: Mutex::new(Vec::new()), gate: Arc::new(Gate::new()) }
        }

        fn is_interactive(&self, name: &str) -> bool {
            self.interactive.read().unwrap_or_else(|e| e.into_inner()).contains(name)
        }

        /// Joins every handler thread (destroy: every call is finished, so each has ended or is ending).
        fn join_all(&self) {
            let threads = std::mem::take(&mut *lock(&self.threads));
            for t in threads {
                let _ = t.join(); // a handler's panic was caught inside the thread
            }
        }
    }

    /// Handler threads of an instance that have not been joined yet (finished or not). For the tests.
    #[cfg(test)]
    ///
    /// # Safety
    /// `instance` is a live instance of `T` made by this kit's `create`.
    pub(crate) unsafe fn unjoined_threads<T>(instance: *mut c_void) -> usize {
        // SAFETY: per the contract.
        lock(&unsafe { &*instance.cast::<Instance<T>>() }.kit.threads).len()
    }

    /// The serial lock of an instance. For the tests.
    ///
    /// # Safety
    /// `instance` is a live instance of `T` made by this kit's `create`, and outlives the returned reference.
    #[cfg(test)]
    pub(crate) unsafe fn serial_gate<'a, T>(instance: *mut c_void) -> &'a Gate {
        // SAFETY: per the contract.
        &unsafe { &*instance.cast::<Instance<T>>() }.kit.gate
    }

    /// What an interactive handler's thread needs: raw pointers made `Send`.
    struct Handoff<T> {
        instance: *const Instance<T>,
        call: *mut mcpp_call,
    }
    // SAFETY: the instance is `T: Sync` (only Sync plugin tables spawn) and lives until destroy, which joins
    // the thread first; the call handle is valid until finish on any thread (every host function is [any]).
    unsafe impl<T: Sync> Send for Handoff<T> {}

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
            describe: Some(thunk_describe::<T, false> as _),
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
        t.describe = Some(thunk_describe::<T, true> as _);
        t.call_tool = Some(thunk_call_tool_sync::<T> as _);
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
                    // A 1.0 table (no 1.1 functions) is fine: the kit reads nothing past its struct_size.
                    let Some(host) = Host::from_table(host) else {
                        write_line(err, &format!(
                            "the host's function table has {} bytes, this plugin needs {} (ABI 1.0)",
                            (*host).struct_size,
                            HOST_SIZE_1_0
                        ));
                        return MCPP_E_VERSION;
                    };
                    let Some(config) = raw_str(config, config_len) else {
                        write_line(err, "the plugin configuration is not valid UTF-8");
                        return MCPP_E_INVALID;
                    };
                    if T::PANIC_HOOK {
                        install_panic_hook(host);
                    }
                    match T::create(host, config) {
                        Ok(plugin) => {
                            *instance = Box::into_raw(Box::new(Instance { host, plugin, kit: Kit::new() })).cast::<c_void>();
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
                    // every call finished, with nothing running beside it. The handler threads of
                    // interactive tools (which finished their calls, so they have ended or are ending)
                    // are joined before the instance they borrow goes.
                    let inst = unsafe { Box::from_raw(instance.cast::<Instance<T>>()) };
                    inst.kit.join_all();
                    drop(inst);
                }
            },
            |_| (),
            (),
        )
    }

    /// `SYNC`: the plugin type is `Sync` (its table is [`table_sync`]), so interactive tools may run.
    unsafe extern "C" fn thunk_describe<T: Plugin, const SYNC: bool>(
        instance: *mut c_void,
        reg: *const mcpp_registry,
    ) -> mcpp_status {
        if instance.is_null() {
            return MCPP_E_INVALID;
        }
        // SAFETY: the instance lives until destroy, which never runs beside describe.
        let inst = unsafe { &*instance.cast::<Instance<T>>() };
        guard(
            || {
                if reg.is_null() {
                    return MCPP_E_INVALID;
                }
                // The registry may be smaller than this crate's declaration (a 1.0 host's has no
                // set_list_cache): no reference to the whole struct is formed, and each field is read through
                // the raw pointer only after struct_size says it is there.
                // SAFETY: the registry is valid for struct_size bytes during this call.
                let size = unsafe { (*reg).struct_size } as usize;
                let has = |end: usize| size >= end;
                if !has(std::mem::offset_of!(mcpp_registry, add_tool) + std::mem::size_of::<usize>()) {
                    return MCPP_E_INVALID;
                }
                // SAFETY: inside struct_size (ctx comes before add_tool).
                let (ctx, add_tool) = unsafe { ((*reg).ctx, (*reg).add_tool) };
                let Some(add_tool) = add_tool else { return MCPP_E_FAILED };
                let mut interactive = HashSet::new();
                for tool in inst.plugin.tools() {
                    if tool.interactive {
                        let refuse = if !SYNC {
                            Some("needs a Sync plugin type (its handler runs on a kit thread beside the host's)")
                        } else if tool.nonblocking {
                            Some("cannot also be nonblocking (it waits for the client)")
                        } else {
                            None
                        };
                        if let Some(why) = refuse {
                            inst.host.log(
                                LogLevel::Error,
                                &format!("describe: tool '{}' is interactive and {why}", truncate(&tool.name, 100)),
                            );
                            return MCPP_E_INVALID;
                        }
                        interactive.insert(tool.name.clone().into_owned());
                    }
                    let raw = tool.as_raw();
                    // SAFETY: on the describe thread during describe; the host copies the declaration.
                    let st = unsafe { add_tool(ctx, &raw) };
                    if st != MCPP_OK {
                        return st;
                    }
                }
                if !T::LIST_CACHE.is_empty() {
                    let set = if has(std::mem::offset_of!(mcpp_registry, set_list_cache) + std::mem::size_of::<usize>()) {
                        // SAFETY: inside struct_size, checked just above.
                        unsafe { (*reg).set_list_cache }
                    } else {
                        None
                    };
                    match set {
                        None => inst.host.log(
                            LogLevel::Warning,
                            "the host's registry has no set_list_cache (ABI 1.1): list cache hints dropped",
                        ),
                        Some(set) => {
                            for hint in T::LIST_CACHE {
                                // SAFETY: on the describe thread during describe.
                                let st = unsafe { set(ctx, hint.lists.bits(), hint.ttl_ms(), hint.scope.raw()) };
                                if st != MCPP_OK {
                                    inst.host.log(
                                        LogLevel::Error,
                                        &format!("describe: set_list_cache({:?}) failed with status {st}", hint),
                                    );
                                    return st;
                                }
                            }
                        }
                    }
                }
                *inst.kit.interactive.write().unwrap_or_else(|e| e.into_inner()) = interactive;
                MCPP_OK
            },
            |msg| {
                inst.host.log(LogLevel::Error, &format!("describe panicked: {}", truncate_owned(msg)));
                MCPP_E_FAILED
            },
            MCPP_E_FAILED,
        )
    }

    /// Runs the handler on `call` and returns how it ends (a panic becomes an internal error).
    fn run_handler<T: Plugin>(plugin: &T, name: &str, call: &mut Call) -> Outcome {
        match catch_unwind(AssertUnwindSafe(|| plugin.call_tool(name, call))) {
            Ok(outcome) => outcome,
            Err(payload) => {
                let msg = panic_message(&*payload);
                drop_payload(payload);
                Outcome::Internal(format!("tool '{}' panicked: {}", truncate(name, 100), truncate(&msg, 300)))
            }
        }
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
                    Some(name) => run_handler(&inst.plugin, name, &mut call),
                };
                call.finish(&outcome);
            },
            |_| (),
            (),
        )
    }

    /// `call_tool` of a `Sync` plugin: interactive tools go to a kit thread (the host's thread returns at
    /// once); the others run here. A SERIAL (`FORCE_SERIAL`) plugin's handlers all hold the serial lock.
    unsafe extern "C" fn thunk_call_tool_sync<T: Plugin + Sync>(
        instance: *mut c_void,
        call: *mut mcpp_call,
        name: *const c_char,
        name_len: usize,
    ) {
        if instance.is_null() || call.is_null() {
            return; // a host bug; without the instance there is no host table to finish with
        }
        // SAFETY: the instance lives until destroy, which runs only after every call finished; T: Sync.
        let inst = unsafe { &*instance.cast::<Instance<T>>() };
        guard(
            || {
                let gate = if T::FORCE_SERIAL { Some(inst.kit.gate.clone()) } else { None };
                // SAFETY: name is borrowed until finish(), which comes after the handler returned.
                let name = unsafe { raw_str(name, name_len) };
                if let Some(name) = name.filter(|n| inst.kit.is_interactive(n)) {
                    spawn_interactive(inst, call, name.to_owned(), gate);
                    return;
                }
                let mut call = Call::new(inst.host, call);
                call.gate = gate;
                call.acquire_gate();
                let outcome = match name {
                    None => Outcome::InvalidParams("the tool name is not valid UTF-8".into()),
                    Some(name) => run_handler(&inst.plugin, name, &mut call),
                };
                call.finish(&outcome);
                call.release_gate();
            },
            |_| (),
            (),
        )
    }

    /// Hands an interactive tool's call to a thread of its own, which runs the handler and finishes the call.
    fn spawn_interactive<T: Plugin + Sync>(inst: &Instance<T>, call: *mut mcpp_call, name: String, gate: Option<Arc<Gate>>) {
        let handoff = Handoff { instance: inst as *const Instance<T>, call };
        // The list is locked across the spawn, so a destroy (after this call finished) finds the thread in it.
        let mut threads = lock(&inst.kit.threads);
        let mut i = 0;
        while i < threads.len() {
            if threads[i].is_finished() {
                let _ = threads.swap_remove(i).join();
            } else {
                i += 1;
            }
        }
        let spawned = std::thread::Builder::new().name("mcp-interactive".into()).spawn(move || {
            let handoff = handoff;
            // SAFETY: see Handoff: the instance outlives this thread (destroy joins it first).
            let inst = unsafe { &*handoff.instance };
            guard(
                || {
                    let mut call = Call::new_interactive(inst.host, handoff.call, gate);
                    call.acquire_gate();
                    let outcome = run_handler(&inst.plugin, &name, &mut call);
                    call.finish(&outcome);
                    call.release_gate();
                },
                |_| (),
                (),
            )
        });
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                drop(threads);
                let mut call = Call::new(inst.host, call);
                call.finish(&Outcome::Internal(format!("could not start a thread for an interactive tool: {e}")));
            }
        }
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
