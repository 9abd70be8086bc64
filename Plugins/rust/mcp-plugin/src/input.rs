//! ABI 1.1: asking the client for input (elicitation, sampling, roots), request state, cache hints and JSON
//! pointers.
//!
//! An input request blocks the handler's thread until the host calls back, so only a handler that runs on a
//! thread of the kit's own may ask: declare the tool [`Tool::interactive`](crate::Tool::interactive). The
//! host's handler thread is given back as soon as the call is handed to that thread (as the Go kit does with a
//! goroutine); the host's answer callback feeds a `std::sync::mpsc` channel the handler waits on.
//!
//! In 2026-07-28 sessions the first attempt's request ends with [`InputError::Suspended`]: the host answers the
//! client `input_required` whatever the call's outcome, so return the error (`?`); the kit finishes the call
//! when the handler returns. The client retries the whole request, the handler runs again from the start and
//! the same request (same key) is then answered at once. **Ask before you act.**
use std::ffi::{c_char, c_void};
use std::fmt;
use std::sync::mpsc;
use std::time::Duration;

use crate::ffi::*;
use crate::{raw_str, truncate, Call, Error, Outcome};

/// What a call asks the client for (`MCPP_INPUT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// `elicitation/create`: the answer is an ElicitResult `{"action", "content"}`.
    Elicitation,
    /// `sampling/createMessage`: the answer is a CreateMessageResult `{"role", "content", "model"}`.
    Sampling,
    /// `roots/list`: the answer is `{"roots": [{"uri", "name"}]}`.
    Roots,
}

impl InputKind {
    /// The `MCPP_INPUT_*` value.
    pub fn raw(self) -> i32 {
        match self {
            InputKind::Elicitation => MCPP_INPUT_ELICIT,
            InputKind::Sampling => MCPP_INPUT_SAMPLE,
            InputKind::Roots => MCPP_INPUT_ROOTS,
        }
    }

    /// The client capability it needs: "elicitation", "sampling" or "roots".
    pub fn capability(self) -> &'static str {
        match self {
            InputKind::Elicitation => "elicitation",
            InputKind::Sampling => "sampling",
            InputKind::Roots => "roots",
        }
    }
}

/// Why an input request gave no answer. Each converts into the [`Outcome`] a handler should end with, so
/// `call.elicit(...)?` in a handler returning `Result<(), Outcome>` does the right thing in both eras.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputError {
    /// 2026-07-28: the host answered the client `input_required`; the client answers in a retry of the whole
    /// request, where the handler runs again. Return it: the kit finishes the call when the handler returns
    /// (the outcome does not matter, output is discarded). As an [`Outcome`]: [`Outcome::Ok`].
    Suspended,
    /// The client answered with an error (or the user's client declined the request). As an [`Outcome`]: a
    /// tool error, "the client refused the elicitation request: MESSAGE".
    Refused {
        kind: InputKind,
        /// The JSON-RPC error's `code`, when it has an integer one.
        code: Option<i64>,
        /// The JSON-RPC error's `message` ("" when it has none).
        message: String,
        /// The whole error object, as JSON text.
        error: String,
    },
    /// The client did not declare the capability (or elicitation mode); nothing was sent. As an [`Outcome`]:
    /// [`Outcome::NeedsCapability`] ("this tool needs the client's elicitation capability"): 2026-07-28
    /// `-32021` with `data.requiredCapabilities`, earlier `-32602`.
    Unsupported(InputKind),
    /// The call was cancelled or passed its deadline while waiting. As an [`Outcome`]: an internal error.
    Cancelled,
    /// The tool is not declared [`Tool::interactive`](crate::Tool::interactive): its handler runs on the host's
    /// thread, where waiting for the answer would deadlock. Nothing was asked. As an [`Outcome`]: internal.
    NotInteractive,
    /// The host could not take the request: it lacks ABI 1.1 (the message names the function), refused it
    /// (an empty or repeated key, params that are not a JSON object of the right shape, a call other than
    /// tools/call, prompts/get and resources/read), or the call is finished. As an [`Outcome`]: internal.
    Failed(String),
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Suspended => f.write_str("the client answers in a retry of the request (input_required)"),
            InputError::Refused { kind, message, .. } => {
                write!(f, "the client refused the {} request: {message}", kind.capability())
            }
            InputError::Unsupported(kind) => write!(f, "this tool needs the client's {} capability", kind.capability()),
            InputError::Cancelled => f.write_str("cancelled while waiting for the client"),
            InputError::NotInteractive => f.write_str(
                "this tool asked the client but is not declared interactive (Tool::interactive): nothing was asked",
            ),
            InputError::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for InputError {}

impl From<InputError> for Outcome {
    fn from(e: InputError) -> Outcome {
        match e {
            InputError::Suspended => Outcome::Ok,
            e @ InputError::Refused { .. } => Outcome::ToolError(e.to_string()),
            e @ InputError::Unsupported(_) => Outcome::NeedsCapability(e.to_string()),
            e => Outcome::Internal(e.to_string()),
        }
    }
}

impl From<Error> for InputError {
    fn from(e: Error) -> InputError {
        InputError::Failed(e.to_string())
    }
}

/// One value read out of JSON text with [`Call::json_get`] (the host's `json_get`). Text is borrowed from the
/// call (valid until it ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonValue<'a> {
    Null,
    Bool(bool),
    /// The number as JSON text ("42", "2.5").
    Number(&'a str),
    /// The string, unescaped.
    String(&'a str),
    /// An array, as JSON text.
    Array(&'a str),
    /// An object, as JSON text.
    Object(&'a str),
}

impl<'a> JsonValue<'a> {
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            JsonValue::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            JsonValue::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            JsonValue::Number(n) => n.parse().ok(),
            _ => None,
        }
    }
    /// The value as JSON text (a string is quoted again).
    pub fn to_json(&self) -> String {
        match *self {
            JsonValue::Null => "null".into(),
            JsonValue::Bool(b) => b.to_string(),
            JsonValue::String(s) => json_string(s),
            JsonValue::Number(t) | JsonValue::Array(t) | JsonValue::Object(t) => t.to_owned(),
        }
    }
}

/// The client's answer to an input request: [`Answer::json`] is its result as JSON text; the getters read
/// inside it at RFC 6901 pointers through the host's `json_get` (`"/content/confirm"`, `"/roots/0/uri"`,
/// `""` = the whole answer). Getters fail with [`Error::NotFound`] when the pointer leads nowhere and
/// [`Error::Type`] when the value has another type.
pub struct Answer<'c> {
    call: &'c Call,
    kind: InputKind,
    json: String,
}

impl<'c> Answer<'c> {
    /// What was asked.
    pub fn kind(&self) -> InputKind {
        self.kind
    }
    /// The client's result (ElicitResult, CreateMessageResult, ListRootsResult) as JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }
    /// The value at `pointer`.
    pub fn get(&self, pointer: &str) -> Result<JsonValue<'c>, Error> {
        self.call.json_get(&self.json, pointer)
    }
    /// The string at `pointer` (borrowed from the call).
    pub fn string(&self, pointer: &str) -> Result<&'c str, Error> {
        self.get(pointer)?.as_str().ok_or(Error::Type)
    }
    /// The boolean at `pointer`.
    pub fn bool(&self, pointer: &str) -> Result<bool, Error> {
        self.get(pointer)?.as_bool().ok_or(Error::Type)
    }
    /// The number at `pointer`.
    pub fn number(&self, pointer: &str) -> Result<f64, Error> {
        self.get(pointer)?.as_f64().ok_or(Error::Type)
    }
    /// Elicitation: the user's action ("accept", "decline", "cancel").
    pub fn action(&self) -> Result<&'c str, Error> {
        self.string("/action")
    }
    /// Elicitation: true when the user accepted (the content is then at "/content/...").
    pub fn accepted(&self) -> bool {
        self.action() == Ok("accept")
    }
    /// Sampling: the text of the model's answer ("/content/text").
    pub fn text(&self) -> Result<&'c str, Error> {
        self.string("/content/text")
    }
    /// Roots: every root's URI, in order.
    pub fn root_uris(&self) -> Vec<&'c str> {
        (0..).map_while(|i| self.string(&format!("/roots/{i}/uri")).ok()).collect()
    }
}

impl fmt::Debug for Answer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer").field("kind", &self.kind).field("json", &self.json).finish()
    }
}

/// Who may keep a cached result (2026-07-28 `cacheScope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheScope {
    /// "private": only within the same authorization context (the host's default).
    Private,
    /// "public": holds no user-specific data; any cache may keep it.
    Public,
}

impl CacheScope {
    pub fn raw(self) -> i32 {
        match self {
            CacheScope::Private => MCPP_CACHE_PRIVATE,
            CacheScope::Public => MCPP_CACHE_PUBLIC,
        }
    }
}

/// Which lists a cache hint covers (`MCPP_LIST_*` bits; `RESOURCES` covers resources/list and
/// resources/templates/list).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lists(u32);

impl Lists {
    pub const TOOLS: Lists = Lists(MCPP_LIST_TOOLS);
    pub const RESOURCES: Lists = Lists(MCPP_LIST_RESOURCES);
    pub const PROMPTS: Lists = Lists(MCPP_LIST_PROMPTS);
    pub const ALL: Lists = Lists(MCPP_LIST_TOOLS | MCPP_LIST_RESOURCES | MCPP_LIST_PROMPTS);
    /// Both sets (usable in constants): `Lists::TOOLS.and(Lists::PROMPTS)`.
    pub const fn and(self, other: Lists) -> Lists {
        Lists(self.0 | other.0)
    }
    pub const fn bits(self) -> u32 {
        self.0
    }
}

impl std::ops::BitOr for Lists {
    type Output = Lists;
    fn bitor(self, other: Lists) -> Lists {
        self.and(other)
    }
}

/// A cache hint for lists, declared with [`Plugin::LIST_CACHE`](crate::Plugin::LIST_CACHE):
/// `ListCache::new(Lists::TOOLS, Duration::from_secs(60), CacheScope::Public)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListCache {
    pub lists: Lists,
    /// How long a client may reuse a page (milliseconds on the wire, saturating at `i64::MAX`).
    pub ttl: Duration,
    pub scope: CacheScope,
}

impl ListCache {
    pub const fn new(lists: Lists, ttl: Duration, scope: CacheScope) -> ListCache {
        ListCache { lists, ttl, scope }
    }
    pub(crate) fn ttl_ms(&self) -> i64 {
        millis(self.ttl)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `s` as a JSON string literal (quotes included), for building params: `"{\"message\":" + json_string(m)`.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What the host's input callback hands the waiting handler: the status and the answer text.
type Delivery = (i32, String);

/// The `mcpp_input_callback` of every request: exactly once per accepted request, on a host thread. It takes
/// back the sender boxed for the request and sends; it never blocks (the channel has room for the one answer).
unsafe extern "C" fn deliver(user: *mut c_void, _call: *mut mcpp_call, status: i32, answer: *const c_char, len: usize) {
    crate::__private::guard(
        || {
            if user.is_null() {
                return;
            }
            // SAFETY: `user` is the Box::into_raw of Call::ask, handed to the host with a request it accepted;
            // the host calls back exactly once, so this is the only from_raw.
            let tx = unsafe { Box::from_raw(user.cast::<mpsc::SyncSender<Delivery>>()) };
            let text = if len == 0 || answer.is_null() {
                String::new()
            } else {
                // SAFETY: the answer is borrowed for the duration of the callback; copied here.
                match unsafe { raw_str(answer, len) } {
                    Some(s) => s.to_owned(),
                    None => String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(answer.cast::<u8>(), len) })
                        .into_owned(),
                }
            };
            let _ = tx.send((status, text)); // the receiver waits for it; if it is gone, nobody needs it
        },
        |_| (),
        (),
    )
}

fn text_arg(s: &str) -> (*const c_char, usize) {
    if s.is_empty() {
        (std::ptr::null(), 0)
    } else {
        (s.as_ptr().cast(), s.len())
    }
}

impl Call {
    /// Makes any input request (`mcpp_host.request_input`) and waits for its end: `key` names it within the
    /// call (non-empty, unique per attempt, the same in every attempt), `params` is the request's params
    /// object as JSON text ("" for roots). Only in an interactive tool ([`InputError::NotInteractive`]
    /// otherwise). While it waits, a SERIAL plugin's other handlers may run.
    pub fn ask(&self, kind: InputKind, key: &str, params: &str) -> Result<Answer<'_>, InputError> {
        if !self.interactive {
            return Err(InputError::NotInteractive);
        }
        let request_input = self.host.need(self.host.raw.request_input, "request_input")?;
        let (tx, rx) = mpsc::sync_channel::<Delivery>(1);
        let user = Box::into_raw(Box::new(tx));
        let (kp, kl) = text_arg(key);
        let (pp, pl) = text_arg(params);
        // SAFETY: [any]; live handle; key and params are copied by the host; `user` stays valid until the one
        // callback takes it back.
        let st = unsafe { request_input(self.raw, kind.raw(), kp, kl, pp, pl, Some(deliver), user.cast()) };
        if st != MCPP_OK {
            // No callback will come: the sender is ours again.
            // SAFETY: the Box::into_raw above, not handed over.
            drop(unsafe { Box::from_raw(user) });
            return Err(match st {
                MCPP_E_CANCELLED => InputError::Cancelled,
                MCPP_E_FINISHED => InputError::Failed("request_input: the call is already finished".into()),
                MCPP_E_INVALID => InputError::Failed(format!(
                    "request_input refused the {} request '{}' (MCPP_E_INVALID): an empty or repeated key, params \
                     that are not a JSON object of the right shape, or a call other than tools/call, prompts/get \
                     and resources/read",
                    kind.capability(),
                    truncate(key, 100)
                )),
                other => InputError::Failed(format!("request_input failed with status {other}")),
            });
        }
        self.release_gate(); // other handlers of a SERIAL plugin may run while the client thinks
        let got = rx.recv();
        self.acquire_gate();
        let (status, answer) = got.map_err(|_| InputError::Failed("the host's input callback sent nothing".into()))?;
        match status {
            MCPP_INPUT_ANSWERED => Ok(Answer { call: self, kind, json: answer }),
            MCPP_INPUT_SUSPENDED => Err(InputError::Suspended),
            MCPP_INPUT_UNSUPPORTED => Err(InputError::Unsupported(kind)),
            MCPP_INPUT_REFUSED => {
                let message = self.json_get(&answer, "/message").ok().and_then(|v| v.as_str()).unwrap_or("");
                let code = self.json_get(&answer, "/code").ok().and_then(|v| v.as_f64()).and_then(|c| {
                    (c.fract() == 0.0 && c.abs() < 9.0e15).then_some(c as i64)
                });
                Err(InputError::Refused { kind, code, message: message.to_owned(), error: answer })
            }
            _ => Err(InputError::Cancelled), // MCPP_INPUT_CANCELLED (and any newer status)
        }
    }

    /// Asks the user (elicitation, form mode): `message`, and the `requestedSchema` as JSON text ("" = no
    /// fields). The answer's "/action" is "accept", "decline" or "cancel"; the fields are under "/content".
    pub fn elicit(&self, key: &str, message: &str, schema: &str) -> Result<Answer<'_>, InputError> {
        let schema = if schema.is_empty() { r#"{"type":"object","properties":{}}"# } else { schema };
        self.ask(InputKind::Elicitation, key, &format!("{{\"message\":{},\"requestedSchema\":{schema}}}", json_string(message)))
    }

    /// Asks the client's model (sampling) with one user text message, for at most `max_tokens`. The answer's
    /// text is [`Answer::text`], the model "/model".
    pub fn sample(&self, key: &str, prompt: &str, max_tokens: u32) -> Result<Answer<'_>, InputError> {
        let messages = format!(r#"[{{"role":"user","content":{{"type":"text","text":{}}}}}]"#, json_string(prompt));
        self.sample_messages(key, &messages, max_tokens)
    }

    /// Sampling with your own `messages` (a JSON array of SamplingMessage, as text).
    pub fn sample_messages(&self, key: &str, messages: &str, max_tokens: u32) -> Result<Answer<'_>, InputError> {
        self.ask(InputKind::Sampling, key, &format!("{{\"messages\":{messages},\"maxTokens\":{max_tokens}}}"))
    }

    /// Asks the client for its roots; see [`Answer::root_uris`].
    pub fn roots(&self, key: &str) -> Result<Answer<'_>, InputError> {
        self.ask(InputKind::Roots, key, "")
    }

    /// Reads one value out of JSON text (an answer, say) at an RFC 6901 pointer ("" = the whole text), through
    /// the host's `json_get`: [`Error::NotFound`] when the pointer leads nowhere, [`Error::Invalid`] when the
    /// text is not JSON. Text in the value is borrowed from the call.
    pub fn json_get(&self, json: &str, pointer: &str) -> Result<JsonValue<'_>, Error> {
        let f = self.host.need(self.host.raw.json_get, "json_get")?;
        let mut kind = 0i32;
        let mut out: *const c_char = std::ptr::null();
        let mut len = 0usize;
        let (jp, jl) = text_arg(json);
        let (pp, pl) = text_arg(pointer);
        // SAFETY: [any]; live handle; inputs valid for the call.
        Error::check(unsafe { f(self.raw, jp, jl, pp, pl, &mut kind, &mut out, &mut len) })?;
        // SAFETY: borrowed until finish(), which comes after every borrow of self ended.
        let text = unsafe { raw_str(out, len) }.ok_or(Error::Invalid)?;
        Ok(match kind {
            MCPP_JSON_NULL => JsonValue::Null,
            MCPP_JSON_BOOL => JsonValue::Bool(text == "true"),
            MCPP_JSON_NUMBER => JsonValue::Number(text),
            MCPP_JSON_STRING => JsonValue::String(text),
            MCPP_JSON_ARRAY => JsonValue::Array(text),
            MCPP_JSON_OBJECT => JsonValue::Object(text),
            _ => return Err(Error::Type),
        })
    }

    /// Bytes the retry of this call gets back from [`Call::request_state`] (2026-07-28; at most 64 KiB, sealed
    /// by the host, never shown to the client in clear, not single-use). Replaces what was set before.
    pub fn set_request_state(&self, bytes: &[u8]) -> Result<(), Error> {
        let f = self.host.need(self.host.raw.set_request_state, "set_request_state")?;
        let p = if bytes.is_empty() { std::ptr::null() } else { bytes.as_ptr() };
        // SAFETY: [any]; the host copies.
        Error::check(unsafe { f(self.raw, p, bytes.len()) })
    }

    /// The bytes the attempt this one retries set (borrowed until the call ends); `None` on a first attempt.
    pub fn request_state(&self) -> Result<Option<&[u8]>, Error> {
        let f = self.host.need(self.host.raw.get_request_state, "get_request_state")?;
        let mut out: *const u8 = std::ptr::null();
        let mut len = 0usize;
        // SAFETY: [any]; live handle.
        match Error::check(unsafe { f(self.raw, &mut out, &mut len) }) {
            Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
            Ok(()) if len == 0 => Ok(Some(&[])),
            Ok(()) if out.is_null() || len > isize::MAX as usize => Err(Error::Invalid),
            // SAFETY: the host keeps the bytes until finish(), after every borrow of self ended.
            Ok(()) => Ok(Some(unsafe { std::slice::from_raw_parts(out, len) })),
        }
    }

    /// resources/read: the cache hint of this result (2026-07-28 `ttlMs`, `cacheScope`; default 0 / private).
    /// The host refuses it ([`Error::Invalid`]) on other calls.
    pub fn set_cache(&self, ttl: Duration, scope: CacheScope) -> Result<(), Error> {
        let f = self.host.need(self.host.raw.set_cache, "set_cache")?;
        // SAFETY: [any]; live handle.
        Error::check(unsafe { f(self.raw, millis(ttl), scope.raw()) })
    }
}
