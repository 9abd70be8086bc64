//! Unit tests of the kit against a mock host table (no host process needed): `cargo test --offline`.
use super::__private::{negotiate, PluginTable, Select, SelectSerial as _};
use super::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;

// ---- a mock host ---------------------------------------------------------------------------------

#[derive(Default)]
struct MockCall {
    args: HashMap<&'static str, &'static str>,
    texts: Vec<String>,
    structured: Option<String>,
    finishes: Vec<(i32, String)>,
}

unsafe fn mock(call: *mut mcpp_call) -> &'static Mutex<MockCall> {
    unsafe { &*(call as *const Mutex<MockCall>) }
}

unsafe fn bytes(p: *const c_char, n: usize) -> String {
    unsafe { raw_str(p, n) }.expect("utf-8").to_owned()
}

unsafe extern "C" fn m_arg_string(
    call: *mut mcpp_call,
    key: *const c_char,
    key_len: usize,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> mcpp_status {
    let key = unsafe { bytes(key, key_len) };
    let m = unsafe { mock(call) }.lock().unwrap();
    if !m.finishes.is_empty() {
        return MCPP_E_FINISHED;
    }
    match m.args.get(key.as_str()) {
        Some(v) if v.starts_with('"') => {
            let s = &v[1..v.len() - 1];
            unsafe {
                // (NULL, 0) for the empty string: the kit must read it as "".
                *out = if s.is_empty() { std::ptr::null() } else { s.as_ptr().cast() };
                *out_len = s.len();
            }
            MCPP_OK
        }
        Some(_) => MCPP_E_TYPE,
        None => MCPP_E_NOT_FOUND,
    }
}

unsafe extern "C" fn m_arg_int(call: *mut mcpp_call, key: *const c_char, key_len: usize, out: *mut i64) -> mcpp_status {
    let key = unsafe { bytes(key, key_len) };
    let m = unsafe { mock(call) }.lock().unwrap();
    match m.args.get(key.as_str()).map(|v| v.parse::<i64>()) {
        Some(Ok(v)) => {
            unsafe { *out = v };
            MCPP_OK
        }
        Some(Err(_)) => MCPP_E_TYPE,
        None => MCPP_E_NOT_FOUND,
    }
}

unsafe extern "C" fn m_add_text(call: *mut mcpp_call, text: *const c_char, len: usize) -> mcpp_status {
    let mut m = unsafe { mock(call) }.lock().unwrap();
    if !m.finishes.is_empty() {
        return MCPP_E_FINISHED;
    }
    m.texts.push(unsafe { bytes(text, len) });
    MCPP_OK
}

unsafe extern "C" fn m_set_structured(call: *mut mcpp_call, json: *const c_char, len: usize) -> mcpp_status {
    let mut m = unsafe { mock(call) }.lock().unwrap();
    m.structured = Some(unsafe { bytes(json, len) });
    MCPP_OK
}

unsafe extern "C" fn m_is_cancelled(_call: *mut mcpp_call) -> i32 {
    0
}

unsafe extern "C" fn m_finish(call: *mut mcpp_call, outcome: i32, msg: *const c_char, len: usize) {
    let text = unsafe { bytes(msg, len) };
    unsafe { mock(call) }.lock().unwrap().finishes.push((outcome, text));
}

static MOCK_HOST: HostTable = HostTable(mcpp_host {
    struct_size: std::mem::size_of::<mcpp_host>() as u32,
    abi_minor: 0,
    ctx: std::ptr::null_mut(),
    log: None,
    notify_list_changed: None,
    notify_resource_updated: None,
    get_extension: None,
    arg_string: Some(m_arg_string),
    arg_int: Some(m_arg_int),
    arg_double: None,
    arg_bool: None,
    arg_json: None,
    add_text: Some(m_add_text),
    add_image: None,
    add_audio: None,
    add_resource_text: None,
    add_resource_blob: None,
    add_content_json: None,
    set_structured: Some(m_set_structured),
    set_role: None,
    set_description: None,
    add_completion: None,
    set_completion_info: None,
    progress: None,
    call_log: None,
    is_cancelled: Some(m_is_cancelled),
    finish: Some(m_finish),
    request_input: None,
    set_request_state: None,
    get_request_state: None,
    set_cache: None,
    json_get: None,
});

struct HostTable(mcpp_host);
unsafe impl Sync for HostTable {}

unsafe extern "C" fn collect(ctx: *mut c_void, bytes: *const c_char, len: usize) {
    let out = unsafe { &mut *(ctx as *mut String) };
    out.push_str(unsafe { raw_str(bytes, len) }.unwrap());
}

fn writer(out: &mut String) -> mcpp_writer {
    mcpp_writer {
        struct_size: std::mem::size_of::<mcpp_writer>() as u32,
        reserved: 0,
        ctx: out as *mut String as *mut c_void,
        write: Some(collect),
    }
}

// ---- plugins under test ----------------------------------------------------------------------------

struct Shared; // Sync

impl Plugin for Shared {
    const NAME: &'static str = "shared";
    const VERSION: &'static str = "0.1.0";
    const MAX_CONCURRENCY: u32 = 3;
    const PANIC_HOOK: bool = false; // keep libtest's reports of failed assertions
    fn create(_host: Host, config: &str) -> Result<Self, String> {
        match config {
            "panic" => panic!("boom in create"),
            "fail" => Err("bad\nconfig".into()),
            _ => Ok(Shared),
        }
    }
    fn tools(&self) -> Vec<Tool> {
        vec![Tool::new("echo").input_schema(r#"{"type":"object"}"#).nonblocking(), Tool::new("boom")]
    }
    fn call_tool(&self, name: &str, call: &mut Call) -> Outcome {
        match name {
            "echo" => (|| -> Result<(), Outcome> {
                let text = call.arg_str("text")?;
                let times = call.arg_i64("times").optional()?.unwrap_or(1);
                for _ in 0..times {
                    call.add_text(text)?;
                }
                call.set_structured(&format!("{{\"times\":{times}}}"))?;
                Ok(())
            })()
            .into(),
            "boom" => {
                call.add_text("partial").unwrap();
                let v: Vec<u8> = Vec::new();
                let _ = v[7]; // index out of bounds: panics
                Outcome::Ok
            }
            _ => Outcome::unknown_tool(name),
        }
    }
}

struct Local {
    _count: RefCell<u32>, // !Sync
}

impl Plugin for Local {
    const NAME: &'static str = "local";
    const VERSION: &'static str = "0.1.0";
    fn create(_host: Host, _config: &str) -> Result<Self, String> {
        Ok(Local { _count: RefCell::new(0) })
    }
    fn tools(&self) -> Vec<Tool> {
        Vec::new()
    }
    fn call_tool(&self, name: &str, _call: &mut Call) -> Outcome {
        Outcome::unknown_tool(name)
    }
}

struct SyncButSerial;
impl Plugin for SyncButSerial {
    const NAME: &'static str = "serial";
    const VERSION: &'static str = "0.1.0";
    const FORCE_SERIAL: bool = true;
    fn create(_host: Host, _config: &str) -> Result<Self, String> {
        Ok(SyncButSerial)
    }
    fn tools(&self) -> Vec<Tool> {
        Vec::new()
    }
    fn call_tool(&self, name: &str, _call: &mut Call) -> Outcome {
        Outcome::unknown_tool(name)
    }
}

static SHARED: PluginTable = <Select<Shared>>::TABLE;
static LOCAL: PluginTable = <Select<Local>>::TABLE;
static FORCED: PluginTable = <Select<SyncButSerial>>::TABLE;

fn negotiation(major: u32, minor: u32) -> mcpp_negotiation {
    mcpp_negotiation {
        struct_size: std::mem::size_of::<mcpp_negotiation>() as u32,
        host_abi_major: major,
        host_abi_minor: minor,
        plugin_abi_minor: 99,
        plugin: std::ptr::null(),
    }
}

fn create(table: &PluginTable, config: &str) -> (mcpp_status, *mut c_void, String) {
    let mut err = String::new();
    let w = writer(&mut err);
    let mut instance: *mut c_void = std::ptr::null_mut();
    let st = unsafe { table.0.create.unwrap()(&MOCK_HOST.0, config.as_ptr().cast(), config.len(), &w, &mut instance) };
    (st, instance, err)
}

fn call(table: &PluginTable, instance: *mut c_void, name: &str, args: &[(&'static str, &'static str)]) -> MockCall {
    let m = Mutex::new(MockCall { args: args.iter().copied().collect(), ..Default::default() });
    let handle = &m as *const Mutex<MockCall> as *mut mcpp_call;
    unsafe { table.0.call_tool.unwrap()(instance, handle, name.as_ptr().cast(), name.len()) };
    m.into_inner().unwrap()
}

// ---- tests --------------------------------------------------------------------------------------------

#[test]
fn threading_follows_sync() {
    assert_eq!(SHARED.0.threading, MCPP_THREADING_CONCURRENT);
    assert_eq!(SHARED.0.max_concurrency, 3);
    assert!(SHARED.0.health.is_some());
    assert_eq!(LOCAL.0.threading, MCPP_THREADING_SERIAL);
    assert_eq!(LOCAL.0.max_concurrency, 0);
    assert!(LOCAL.0.health.is_none(), "health is [any]: never wired for a !Sync type");
    assert_eq!(FORCED.0.threading, MCPP_THREADING_SERIAL);
    assert_eq!(SHARED.0.struct_size as usize, std::mem::size_of::<mcpp_plugin>());
    assert!(SHARED.0.cancel.is_none() && SHARED.0.read_resource.is_none());
    assert_eq!(unsafe { raw_str(SHARED.0.name.ptr, SHARED.0.name.len) }, Some("shared"));
    assert!(SHARED.0.title.ptr.is_null() && SHARED.0.title.len == 0);
}

#[test]
fn negotiation_rules() {
    unsafe {
        assert_eq!(negotiate(std::ptr::null_mut(), &SHARED), MCPP_E_INVALID);
        let mut n = negotiation(1, 0);
        n.struct_size = 16;
        assert_eq!(negotiate(&mut n, &SHARED), MCPP_E_INVALID);
        assert!(n.plugin.is_null());

        let mut n = negotiation(1, 0);
        assert_eq!(negotiate(&mut n, &SHARED), MCPP_OK);
        assert_eq!(n.plugin_abi_minor, 0);
        assert_eq!(n.plugin, &SHARED.0 as *const mcpp_plugin);

        let mut n = negotiation(1, 5); // a newer host minor is fine
        assert_eq!(negotiate(&mut n, &SHARED), MCPP_OK);

        let mut n = negotiation(2, 0);
        assert_eq!(negotiate(&mut n, &SHARED), MCPP_E_VERSION);
        assert_eq!(n.plugin_abi_minor, 0, "filled anyway so the host can name the versions");
    }
}

#[test]
fn create_reports_failures_and_panics() {
    let (st, inst, err) = create(&SHARED, "fail");
    assert_eq!((st, inst.is_null(), err.as_str()), (MCPP_E_FAILED, true, "bad config"));
    let (st, inst, err) = create(&SHARED, "panic");
    assert_eq!(st, MCPP_E_FAILED);
    assert!(inst.is_null());
    assert_eq!(err, "create panicked: boom in create");
    let (st, inst, err) = create(&SHARED, "{}");
    assert_eq!((st, err.as_str()), (MCPP_OK, ""));
    unsafe { SHARED.0.destroy.unwrap()(inst) };
}

#[test]
fn create_refuses_a_small_host_table() {
    let mut small = mcpp_host { ..unsafe { std::ptr::read(&MOCK_HOST.0) } };
    small.struct_size = 100;
    let mut err = String::new();
    let w = writer(&mut err);
    let mut instance: *mut c_void = std::ptr::null_mut();
    let st = unsafe { SHARED.0.create.unwrap()(&small, c"{}".as_ptr(), 2, &w, &mut instance) };
    assert_eq!(st, MCPP_E_VERSION);
    assert!(instance.is_null());
    assert!(err.contains("100 bytes"), "{err}");
}

#[test]
fn calls_finish_exactly_once() {
    let (_, inst, _) = create(&SHARED, "{}");

    let m = call(&SHARED, inst, "echo", &[("text", "\"hi\""), ("times", "2")]);
    assert_eq!(m.texts, ["hi", "hi"]);
    assert_eq!(m.structured.as_deref(), Some("{\"times\":2}"));
    assert_eq!(m.finishes, [(MCPP_OUTCOME_OK, String::new())]);

    let m = call(&SHARED, inst, "echo", &[("text", "\"\"")]); // (NULL, 0) from the host
    assert_eq!(m.texts, [""]);
    assert_eq!(m.finishes, [(MCPP_OUTCOME_OK, String::new())]);

    let m = call(&SHARED, inst, "echo", &[]);
    assert_eq!(m.finishes, [(MCPP_OUTCOME_INVALID_PARAMS, "missing required argument 'text'".to_owned())]);

    let m = call(&SHARED, inst, "echo", &[("text", "5")]);
    assert_eq!(m.finishes, [(MCPP_OUTCOME_INVALID_PARAMS, "argument 'text' must be a string".to_owned())]);

    let m = call(&SHARED, inst, "nope", &[]);
    assert_eq!(m.finishes, [(MCPP_OUTCOME_NOT_FOUND, "unknown tool 'nope'".to_owned())]);

    let m = call(&SHARED, inst, "boom", &[]);
    assert_eq!(m.texts, ["partial"]);
    assert_eq!(m.finishes.len(), 1, "{:?}", m.finishes);
    assert_eq!(m.finishes[0].0, MCPP_OUTCOME_INTERNAL);
    assert!(m.finishes[0].1.starts_with("tool 'boom' panicked: index out of bounds"), "{}", m.finishes[0].1);

    unsafe { SHARED.0.destroy.unwrap()(inst) };
}

#[test]
fn describe_declares_tools() {
    struct Seen(Vec<(String, u32, String)>);
    unsafe extern "C" fn add_tool(ctx: *mut c_void, tool: *const mcpp_tool) -> mcpp_status {
        let seen = unsafe { &mut *(ctx as *mut Seen) };
        let t = unsafe { &*tool };
        assert_eq!(t.struct_size as usize, std::mem::size_of::<mcpp_tool>());
        let name = unsafe { raw_str(t.name.ptr, t.name.len) }.unwrap().to_owned();
        let schema = unsafe { raw_str(t.input_schema.ptr, t.input_schema.len) }.unwrap().to_owned();
        seen.0.push((name, t.flags, schema));
        MCPP_OK
    }
    let (_, inst, _) = create(&SHARED, "{}");
    let mut seen = Seen(Vec::new());
    let reg = mcpp_registry {
        struct_size: std::mem::size_of::<mcpp_registry>() as u32,
        reserved: 0,
        ctx: &mut seen as *mut Seen as *mut c_void,
        add_tool: Some(add_tool),
        add_resource: None,
        add_resource_template: None,
        add_prompt: None,
        set_list_cache: None,
    };
    assert_eq!(unsafe { SHARED.0.describe.unwrap()(inst, &reg) }, MCPP_OK);
    assert_eq!(
        seen.0,
        [
            ("echo".to_owned(), MCPP_TOOL_NONBLOCKING, r#"{"type":"object"}"#.to_owned()),
            ("boom".to_owned(), 0, String::new())
        ]
    );
    unsafe { SHARED.0.destroy.unwrap()(inst) };
}

#[test]
fn health_of_a_sync_plugin() {
    let (_, inst, _) = create(&SHARED, "{}");
    let mut out = String::new();
    let w = writer(&mut out);
    assert_eq!(unsafe { SHARED.0.health.unwrap()(inst, &w) }, MCPP_OK);
    assert_eq!(out, "ok");
    unsafe { SHARED.0.destroy.unwrap()(inst) };
}

#[test]
fn guard_survives_a_panicking_payload_drop() {
    struct Nasty;
    impl Drop for Nasty {
        fn drop(&mut self) {
            panic!("drop of the payload panics too");
        }
    }
    let r = __private::guard(|| -> i32 { std::panic::panic_any(Nasty) }, |m| {
        assert_eq!(m, "a panic with a non-string payload");
        7
    }, 9);
    assert_eq!(r, 7);
}

#[test]
fn text_helpers() {
    assert_eq!(unsafe { raw_str(std::ptr::null(), 0) }, Some(""));
    assert_eq!(unsafe { raw_str(std::ptr::null(), 3) }, None);
    let bad = [0xffu8, 0xfe];
    assert_eq!(unsafe { raw_str(bad.as_ptr().cast(), 2) }, None);
    assert_eq!(truncate("héllo", 2), "h");
    assert_eq!(Outcome::from(Error::Cancelled), Outcome::Ok);
    assert_eq!(Outcome::from(Result::<(), Error>::Ok(())), Outcome::Ok);
}

// ==== ABI 1.1 ==========================================================================================
//
// A second mock host implementing the 1.1 functions. Its call handle is a `&Mock` that the test keeps alive
// until the call is finished and the instance destroyed (which joins the kit's threads). The mock records what
// the kit asks and lets the test deliver the host's answer callback, from the test's thread.

use std::sync::Condvar;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

struct Request {
    kind: i32,
    key: String,
    params: String,
    thread: std::thread::ThreadId,
    callback: mcpp_input_callback,
    user: usize,
}

#[derive(Default)]
struct State11 {
    args: HashMap<&'static str, &'static str>,
    texts: Vec<String>,
    finishes: Vec<(i32, String)>,
    requests: Vec<Request>,
    /// What request_input returns (MCPP_OK unless a test says otherwise).
    request_status: i32,
    /// json_get answers by pointer; the (json, pointer) pairs the kit asked.
    json: HashMap<&'static str, (i32, &'static str)>,
    json_asked: Vec<(String, String)>,
    prior_state: Option<Vec<u8>>,
    state_set: Vec<Vec<u8>>,
    cache: Vec<(i64, i32)>,
    /// Text handed out by json_get / get_request_state, kept until the mock is dropped.
    borrowed: Vec<Vec<u8>>,
}

#[derive(Default)]
struct Mock {
    s: Mutex<State11>,
    changed: Condvar,
}

impl Mock {
    fn new(args: &[(&'static str, &'static str)]) -> Mock {
        let m = Mock::default();
        m.s.lock().unwrap().args = args.iter().copied().collect();
        m
    }
    fn handle(&self) -> *mut mcpp_call {
        self as *const Mock as *mut mcpp_call
    }
    /// Waits (with a deadline) until `ready` holds for the state; returns what `ready` returned.
    fn wait<R>(&self, what: &str, mut ready: impl FnMut(&State11) -> Option<R>) -> R {
        let end = Instant::now() + DEADLINE;
        let mut s = self.s.lock().unwrap();
        loop {
            if let Some(r) = ready(&s) {
                return r;
            }
            let now = Instant::now();
            assert!(now < end, "timed out waiting for {what}");
            s = self.changed.wait_timeout(s, end - now).unwrap().0;
        }
    }
    fn wait_finish(&self) -> (i32, String) {
        self.wait("finish", |s| s.finishes.first().cloned())
    }
    fn wait_requests(&self, n: usize) {
        self.wait("an input request", |s| (s.requests.len() >= n).then_some(()))
    }
    /// Plays the host: calls back request `i` with `status` and `answer` (never while holding the lock).
    fn deliver(&self, i: usize, status: i32, answer: &str) {
        let (cb, user) = {
            let s = self.s.lock().unwrap();
            (s.requests[i].callback, s.requests[i].user)
        };
        let (p, n) = if answer.is_empty() { (std::ptr::null(), 0) } else { (answer.as_ptr().cast(), answer.len()) };
        unsafe { cb.expect("a callback")(user as *mut c_void, self.handle(), status, p, n) };
    }
}

unsafe fn mock11(call: *mut mcpp_call) -> &'static Mock {
    unsafe { &*(call as *const Mock) }
}

unsafe extern "C" fn k_arg_string(
    call: *mut mcpp_call,
    key: *const c_char,
    key_len: usize,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> mcpp_status {
    let key = unsafe { bytes(key, key_len) };
    let m = unsafe { mock11(call) }.s.lock().unwrap();
    match m.args.get(key.as_str()) {
        Some(v) if v.starts_with('"') => {
            let s = &v[1..v.len() - 1];
            unsafe {
                *out = s.as_ptr().cast();
                *out_len = s.len();
            }
            MCPP_OK
        }
        Some(_) => MCPP_E_TYPE,
        None => MCPP_E_NOT_FOUND,
    }
}

unsafe extern "C" fn k_add_text(call: *mut mcpp_call, text: *const c_char, len: usize) -> mcpp_status {
    let m = unsafe { mock11(call) };
    let mut s = m.s.lock().unwrap();
    if !s.finishes.is_empty() {
        return MCPP_E_FINISHED;
    }
    s.texts.push(unsafe { bytes(text, len) });
    MCPP_OK
}

unsafe extern "C" fn k_finish(call: *mut mcpp_call, outcome: i32, msg: *const c_char, len: usize) {
    let m = unsafe { mock11(call) };
    m.s.lock().unwrap().finishes.push((outcome, unsafe { bytes(msg, len) }));
    m.changed.notify_all();
}

unsafe extern "C" fn k_request_input(
    call: *mut mcpp_call,
    kind: i32,
    key: *const c_char,
    key_len: usize,
    params: *const c_char,
    params_len: usize,
    callback: mcpp_input_callback,
    user: *mut c_void,
) -> mcpp_status {
    let m = unsafe { mock11(call) };
    let mut s = m.s.lock().unwrap();
    s.requests.push(Request {
        kind,
        key: unsafe { bytes(key, key_len) },
        params: unsafe { bytes(params, params_len) },
        thread: std::thread::current().id(),
        callback,
        user: user as usize,
    });
    m.changed.notify_all();
    s.request_status
}

unsafe extern "C" fn k_set_request_state(call: *mut mcpp_call, data: *const u8, len: usize) -> mcpp_status {
    let bytes = if len == 0 { Vec::new() } else { unsafe { std::slice::from_raw_parts(data, len) }.to_vec() };
    unsafe { mock11(call) }.s.lock().unwrap().state_set.push(bytes);
    MCPP_OK
}

unsafe extern "C" fn k_get_request_state(call: *mut mcpp_call, out: *mut *const u8, out_len: *mut usize) -> mcpp_status {
    let mut s = unsafe { mock11(call) }.s.lock().unwrap();
    let Some(prior) = s.prior_state.clone() else { return MCPP_E_NOT_FOUND };
    unsafe {
        *out = prior.as_ptr();
        *out_len = prior.len();
    }
    s.borrowed.push(prior); // moving the Vec keeps its heap buffer where it is
    MCPP_OK
}

unsafe extern "C" fn k_set_cache(call: *mut mcpp_call, ttl_ms: i64, scope: i32) -> mcpp_status {
    unsafe { mock11(call) }.s.lock().unwrap().cache.push((ttl_ms, scope));
    MCPP_OK
}

unsafe extern "C" fn k_json_get(
    call: *mut mcpp_call,
    json: *const c_char,
    json_len: usize,
    pointer: *const c_char,
    pointer_len: usize,
    kind: *mut i32,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> mcpp_status {
    let json = unsafe { bytes(json, json_len) };
    let pointer = unsafe { bytes(pointer, pointer_len) };
    let mut s = unsafe { mock11(call) }.s.lock().unwrap();
    s.json_asked.push((json, pointer.clone()));
    let Some(&(k, text)) = s.json.get(pointer.as_str()) else { return MCPP_E_NOT_FOUND };
    let copy = text.as_bytes().to_vec();
    unsafe {
        *kind = k;
        *out = copy.as_ptr().cast();
        *out_len = copy.len();
    }
    s.borrowed.push(copy);
    MCPP_OK
}

static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn k_log(_ctx: *mut c_void, _level: i32, msg: *const c_char, len: usize) {
    LOGS.lock().unwrap().push(unsafe { bytes(msg, len) });
}

const fn host11(abi_minor: u32) -> mcpp_host {
    mcpp_host {
        struct_size: std::mem::size_of::<mcpp_host>() as u32,
        abi_minor,
        ctx: std::ptr::null_mut(),
        log: Some(k_log),
        notify_list_changed: None,
        notify_resource_updated: None,
        get_extension: None,
        arg_string: Some(k_arg_string),
        arg_int: None,
        arg_double: None,
        arg_bool: None,
        arg_json: None,
        add_text: Some(k_add_text),
        add_image: None,
        add_audio: None,
        add_resource_text: None,
        add_resource_blob: None,
        add_content_json: None,
        set_structured: None,
        set_role: None,
        set_description: None,
        add_completion: None,
        set_completion_info: None,
        progress: None,
        call_log: None,
        is_cancelled: Some(m_is_cancelled),
        finish: Some(k_finish),
        request_input: Some(k_request_input),
        set_request_state: Some(k_set_request_state),
        get_request_state: Some(k_get_request_state),
        set_cache: Some(k_set_cache),
        json_get: Some(k_json_get),
    }
}

static HOST_11: HostTable = HostTable(host11(1));

const FORM: &str = r#"{"type":"object","properties":{"ok":{"type":"boolean"}}}"#;

/// A Sync plugin with interactive tools (CONCURRENT; `SerialAsker` below is the FORCE_SERIAL twin).
struct Asker;

fn asker_tools() -> Vec<Tool> {
    vec![
        Tool::new("ask").interactive(),
        Tool::new("sample").interactive(),
        Tool::new("roots").interactive(),
        Tool::new("state").interactive(),
        Tool::new("not_interactive"),
        Tool::new("plain"),
        Tool::new("boom").interactive(),
    ]
}

fn asker_call(name: &str, call: &mut Call) -> Outcome {
    let run = || -> Result<(), Outcome> {
        match name {
            "ask" => {
                assert!(call.is_interactive());
                let a = call.elicit("k", &format!("Sure about {}?", call.arg_str("what")?), FORM)?;
                call.add_text(a.json())?;
                call.add_text(a.action()?)?;
                call.add_text(&format!("ok={:?}", a.bool("/content/ok")))?;
            }
            "sample" => {
                let a = call.sample("s", "say \"hi\"\n", 7)?;
                call.add_text(a.text()?)?;
                call.add_text(&format!("{:?}", a.number("/n")))?;
            }
            "roots" => {
                let a = call.roots("r")?;
                for uri in a.root_uris() {
                    call.add_text(uri)?;
                }
            }
            "state" => {
                call.set_request_state(b"ticket")?;
                let prior = call.request_state()?.map(|b| String::from_utf8_lossy(b).into_owned());
                call.add_text(&format!("{prior:?}"))?;
                call.set_cache(Duration::from_millis(1500), CacheScope::Public)?;
            }
            "not_interactive" => {
                assert!(!call.is_interactive());
                call.elicit("k", "never sent", FORM)?;
            }
            "plain" => call.add_text("plain")?,
            "boom" => panic!("boom on a kit thread"),
            _ => return Err(Outcome::unknown_tool(name)),
        }
        Ok(())
    };
    run().into()
}

impl Plugin for Asker {
    const NAME: &'static str = "asker";
    const VERSION: &'static str = "0.1.0";
    const PANIC_HOOK: bool = false;
    const LIST_CACHE: &'static [ListCache] = &[
        ListCache::new(Lists::TOOLS.and(Lists::PROMPTS), Duration::from_secs(60), CacheScope::Public),
        ListCache::new(Lists::RESOURCES, Duration::from_millis(250), CacheScope::Private),
    ];
    fn create(_host: Host, _config: &str) -> Result<Self, String> {
        Ok(Asker)
    }
    fn tools(&self) -> Vec<Tool> {
        asker_tools()
    }
    fn call_tool(&self, name: &str, call: &mut Call) -> Outcome {
        asker_call(name, call)
    }
}

static ASKER: PluginTable = <Select<Asker>>::TABLE;

/// What describe passed to the registry.
#[derive(Default)]
struct Declared {
    tools: Vec<String>,
    list_cache: Vec<(u32, i64, i32)>,
}

unsafe extern "C" fn r_add_tool(ctx: *mut c_void, tool: *const mcpp_tool) -> mcpp_status {
    let d = unsafe { &mut *(ctx as *mut Declared) };
    let t = unsafe { &*tool };
    d.tools.push(unsafe { raw_str(t.name.ptr, t.name.len) }.unwrap().to_owned());
    MCPP_OK
}

unsafe extern "C" fn r_set_list_cache(ctx: *mut c_void, lists: u32, ttl_ms: i64, scope: i32) -> mcpp_status {
    let d = unsafe { &mut *(ctx as *mut Declared) };
    d.list_cache.push((lists, ttl_ms, scope));
    MCPP_OK
}

fn registry(d: &mut Declared) -> mcpp_registry {
    mcpp_registry {
        struct_size: std::mem::size_of::<mcpp_registry>() as u32,
        reserved: 0,
        ctx: d as *mut Declared as *mut c_void,
        add_tool: Some(r_add_tool),
        add_resource: None,
        add_resource_template: None,
        add_prompt: None,
        set_list_cache: Some(r_set_list_cache),
    }
}

/// create + describe against `host`; the instance.
fn start(table: &PluginTable, host: *const mcpp_host) -> *mut c_void {
    let mut err = String::new();
    let w = writer(&mut err);
    let mut inst: *mut c_void = std::ptr::null_mut();
    let st = unsafe { table.0.create.unwrap()(host, c"{}".as_ptr(), 2, &w, &mut inst) };
    assert_eq!((st, err.as_str()), (MCPP_OK, ""));
    let mut d = Declared::default();
    let reg = registry(&mut d);
    assert_eq!(unsafe { table.0.describe.unwrap()(inst, &reg) }, MCPP_OK);
    inst
}

fn call_on(table: &PluginTable, inst: *mut c_void, m: &Mock, name: &str) {
    unsafe { table.0.call_tool.unwrap()(inst, m.handle(), name.as_ptr().cast(), name.len()) };
}

#[test]
fn interactive_handler_runs_on_a_kit_thread_and_gets_the_answer() {
    let inst = start(&ASKER, &HOST_11.0);
    let m = Mock::new(&[("what", r#""the "db"""#)]); // the mock strips the outer quotes only
    {
        let mut s = m.s.lock().unwrap();
        s.json.insert("/action", (MCPP_JSON_STRING, "accept"));
        s.json.insert("/content/ok", (MCPP_JSON_BOOL, "true"));
    }
    call_on(&ASKER, inst, &m, "ask");
    // The host's thread is back before the client answered: the handler waits on a thread of the kit's.
    m.wait_requests(1);
    {
        let s = m.s.lock().unwrap();
        assert!(s.finishes.is_empty(), "finished before the answer: {:?}", s.finishes);
        let r = &s.requests[0];
        assert_eq!((r.kind, r.key.as_str()), (MCPP_INPUT_ELICIT, "k"));
        assert_eq!(r.params, format!(r#"{{"message":"Sure about the \"db\"?","requestedSchema":{FORM}}}"#));
        assert_ne!(r.thread, std::thread::current().id(), "request_input was called on the host's thread");
    }
    assert_eq!(unsafe { __private::unjoined_threads::<Asker>(inst) }, 1);
    let answer = r#"{"action":"accept","content":{"ok":true}}"#;
    m.deliver(0, MCPP_INPUT_ANSWERED, answer);
    assert_eq!(m.wait_finish(), (MCPP_OUTCOME_OK, String::new()));
    let s = m.s.lock().unwrap();
    assert_eq!(s.texts, [answer, "accept", "ok=Ok(true)"]);
    // The getters read the answer through the host's json_get.
    assert_eq!(s.json_asked, [(answer.to_owned(), "/action".to_owned()), (answer.to_owned(), "/content/ok".to_owned())]);
    drop(s);
    unsafe { ASKER.0.destroy.unwrap()(inst) }; // joins the handler's thread
}

/// Runs `tool` on a fresh mock, answers its one request with (status, answer), returns the finish and texts.
fn answered(tool: &str, status: i32, answer: &str, json: &[(&'static str, (i32, &'static str))]) -> ((i32, String), Vec<String>, Mock) {
    let inst = start(&ASKER, &HOST_11.0);
    let m = Mock::new(&[("what", "\"x\"")]);
    m.s.lock().unwrap().json.extend(json.iter().copied());
    call_on(&ASKER, inst, &m, tool);
    m.wait_requests(1);
    m.deliver(0, status, answer);
    let fin = m.wait_finish();
    unsafe { ASKER.0.destroy.unwrap()(inst) };
    let texts = m.s.lock().unwrap().texts.clone();
    (fin, texts, m)
}

#[test]
fn every_input_status_ends_the_call_right() {
    let (fin, texts, m) = answered(
        "ask",
        MCPP_INPUT_REFUSED,
        r#"{"code":-1,"message":"no humans here"}"#,
        &[("/message", (MCPP_JSON_STRING, "no humans here")), ("/code", (MCPP_JSON_NUMBER, "-1"))],
    );
    assert_eq!(fin, (MCPP_OUTCOME_TOOL_ERROR, "the client refused the elicitation request: no humans here".into()));
    assert!(texts.is_empty());
    assert_eq!(m.s.lock().unwrap().json_asked.len(), 2);

    let (fin, _, _) = answered("ask", MCPP_INPUT_UNSUPPORTED, "", &[]);
    assert_eq!(fin, (MCPP_OUTCOME_NEEDS_CAPABILITY, "this tool needs the client's elicitation capability".into()));
    let (fin, _, _) = answered("sample", MCPP_INPUT_UNSUPPORTED, "", &[]);
    assert_eq!(fin, (MCPP_OUTCOME_NEEDS_CAPABILITY, "this tool needs the client's sampling capability".into()));
    let (fin, _, _) = answered("roots", MCPP_INPUT_UNSUPPORTED, "", &[]);
    assert_eq!(fin, (MCPP_OUTCOME_NEEDS_CAPABILITY, "this tool needs the client's roots capability".into()));

    let (fin, _, _) = answered("ask", MCPP_INPUT_CANCELLED, "", &[]);
    assert_eq!(fin, (MCPP_OUTCOME_INTERNAL, "cancelled while waiting for the client".into()));

    // 2026-07-28: suspended; the handler returns the error with `?` and the kit finishes the attempt (OK: the
    // host answers input_required); nothing after the question ran.
    let (fin, texts, _) = answered("ask", MCPP_INPUT_SUSPENDED, "", &[]);
    assert_eq!((fin, texts), ((MCPP_OUTCOME_OK, String::new()), Vec::<String>::new()));
}

#[test]
fn sampling_and_roots_requests() {
    let (fin, texts, m) = answered(
        "sample",
        MCPP_INPUT_ANSWERED,
        r#"{"role":"assistant","content":{"type":"text","text":"hi"},"model":"m","n":2.5}"#,
        &[("/content/text", (MCPP_JSON_STRING, "hi")), ("/n", (MCPP_JSON_NUMBER, "2.5"))],
    );
    assert_eq!(fin, (MCPP_OUTCOME_OK, String::new()));
    assert_eq!(texts, ["hi", "Ok(2.5)"]);
    {
        let s = m.s.lock().unwrap();
        assert_eq!((s.requests[0].kind, s.requests[0].key.as_str()), (MCPP_INPUT_SAMPLE, "s"));
        assert_eq!(
            s.requests[0].params,
            r#"{"messages":[{"role":"user","content":{"type":"text","text":"say \"hi\"\n"}}],"maxTokens":7}"#
        );
    }

    let (fin, texts, m) = answered(
        "roots",
        MCPP_INPUT_ANSWERED,
        r#"{"roots":[{"uri":"file:///a"},{"uri":"file:///b"}]}"#,
        &[("/roots/0/uri", (MCPP_JSON_STRING, "file:///a")), ("/roots/1/uri", (MCPP_JSON_STRING, "file:///b"))],
    );
    assert_eq!((fin.0, texts), (MCPP_OUTCOME_OK, vec!["file:///a".to_owned(), "file:///b".to_owned()]));
    let s = m.s.lock().unwrap();
    assert_eq!((s.requests[0].kind, s.requests[0].key.as_str(), s.requests[0].params.as_str()), (MCPP_INPUT_ROOTS, "r", ""));
    // It stopped at the first pointer that led nowhere.
    assert_eq!(s.json_asked.last().unwrap().1, "/roots/2/uri");
}

#[test]
fn a_refused_request_gets_no_callback_and_ends_the_call() {
    for (status, want) in [
        (MCPP_E_INVALID, "request_input refused the elicitation request 'k' (MCPP_E_INVALID)"),
        (MCPP_E_CANCELLED, "cancelled while waiting for the client"),
        (MCPP_E_FINISHED, "request_input: the call is already finished"),
    ] {
        let inst = start(&ASKER, &HOST_11.0);
        let m = Mock::new(&[("what", "\"x\"")]);
        m.s.lock().unwrap().request_status = status;
        call_on(&ASKER, inst, &m, "ask");
        let (outcome, msg) = m.wait_finish();
        assert_eq!(outcome, MCPP_OUTCOME_INTERNAL);
        assert!(msg.starts_with(want), "{msg}");
        unsafe { ASKER.0.destroy.unwrap()(inst) };
    }
}

#[test]
fn a_panic_on_a_kit_thread_ends_the_call() {
    let inst = start(&ASKER, &HOST_11.0);
    let m = Mock::new(&[]);
    call_on(&ASKER, inst, &m, "boom");
    assert_eq!(m.wait_finish(), (MCPP_OUTCOME_INTERNAL, "tool 'boom' panicked: boom on a kit thread".to_owned()));
    unsafe { ASKER.0.destroy.unwrap()(inst) };
    assert_eq!(m.s.lock().unwrap().finishes.len(), 1);
}

#[test]
fn a_handler_on_the_host_thread_cannot_ask() {
    let inst = start(&ASKER, &HOST_11.0);
    let m = Mock::new(&[]);
    call_on(&ASKER, inst, &m, "not_interactive");
    // Finished before call_tool returned (on the host's thread), and nothing was asked.
    let s = m.s.lock().unwrap();
    assert_eq!(s.finishes.len(), 1);
    assert_eq!(s.finishes[0].0, MCPP_OUTCOME_INTERNAL);
    assert!(s.finishes[0].1.contains("not declared interactive"), "{}", s.finishes[0].1);
    assert!(s.requests.is_empty());
    drop(s);
    assert_eq!(unsafe { __private::unjoined_threads::<Asker>(inst) }, 0);
    unsafe { ASKER.0.destroy.unwrap()(inst) };
}

#[test]
fn request_state_and_cache() {
    for (prior, want) in [(None, "None"), (Some(b"ticket-1".to_vec()), "Some(\"ticket-1\")")] {
        let inst = start(&ASKER, &HOST_11.0);
        let m = Mock::new(&[]);
        m.s.lock().unwrap().prior_state = prior;
        call_on(&ASKER, inst, &m, "state");
        assert_eq!(m.wait_finish(), (MCPP_OUTCOME_OK, String::new()));
        let s = m.s.lock().unwrap();
        assert_eq!(s.texts, [want]);
        assert_eq!(s.state_set, [b"ticket".to_vec()]);
        assert_eq!(s.cache, [(1500, MCPP_CACHE_PUBLIC)]);
        drop(s);
        unsafe { ASKER.0.destroy.unwrap()(inst) };
    }
}

#[test]
fn describe_passes_list_cache_hints() {
    let (_, inst, _) = create(&ASKER, "{}");
    let mut d = Declared::default();
    let reg = registry(&mut d);
    assert_eq!(unsafe { ASKER.0.describe.unwrap()(inst, &reg) }, MCPP_OK);
    assert_eq!(d.tools, ["ask", "sample", "roots", "state", "not_interactive", "plain", "boom"]);
    assert_eq!(
        d.list_cache,
        [(MCPP_LIST_TOOLS | MCPP_LIST_PROMPTS, 60_000, MCPP_CACHE_PUBLIC), (MCPP_LIST_RESOURCES, 250, MCPP_CACHE_PRIVATE)]
    );
    unsafe { ASKER.0.destroy.unwrap()(inst) };
}

/// Interactive tools need a Sync plugin type and cannot be nonblocking: describe fails, naming the tool.
#[test]
fn describe_refuses_impossible_interactive_tools() {
    struct LocalAsker(RefCell<u32>); // !Sync: SERIAL table
    impl Plugin for LocalAsker {
        const NAME: &'static str = "local-asker";
        const VERSION: &'static str = "0.1.0";
        const PANIC_HOOK: bool = false;
        fn create(_host: Host, _config: &str) -> Result<Self, String> {
            Ok(LocalAsker(RefCell::new(0)))
        }
        fn tools(&self) -> Vec<Tool> {
            *self.0.borrow_mut() += 1;
            vec![Tool::new("fine"), Tool::new("wants_to_ask").interactive()]
        }
        fn call_tool(&self, name: &str, _call: &mut Call) -> Outcome {
            Outcome::unknown_tool(name)
        }
    }
    struct FastAsker;
    impl Plugin for FastAsker {
        const NAME: &'static str = "fast-asker";
        const VERSION: &'static str = "0.1.0";
        const PANIC_HOOK: bool = false;
        fn create(_host: Host, _config: &str) -> Result<Self, String> {
            Ok(FastAsker)
        }
        fn tools(&self) -> Vec<Tool> {
            vec![Tool::new("quick").interactive().nonblocking()]
        }
        fn call_tool(&self, name: &str, _call: &mut Call) -> Outcome {
            Outcome::unknown_tool(name)
        }
    }
    static LOCAL_ASKER: PluginTable = <Select<LocalAsker>>::TABLE;
    static FAST_ASKER: PluginTable = <Select<FastAsker>>::TABLE;
    assert_eq!(LOCAL_ASKER.0.threading, MCPP_THREADING_SERIAL);
    for (table, want) in [
        (&LOCAL_ASKER, "describe: tool 'wants_to_ask' is interactive and needs a Sync plugin type"),
        (&FAST_ASKER, "describe: tool 'quick' is interactive and cannot also be nonblocking"),
    ] {
        let mut err = String::new();
        let w = writer(&mut err);
        let mut inst: *mut c_void = std::ptr::null_mut();
        assert_eq!(unsafe { table.0.create.unwrap()(&HOST_11.0, c"{}".as_ptr(), 2, &w, &mut inst) }, MCPP_OK);
        let mut d = Declared::default();
        let reg = registry(&mut d);
        assert_eq!(unsafe { table.0.describe.unwrap()(inst, &reg) }, MCPP_E_INVALID);
        assert!(LOGS.lock().unwrap().iter().any(|l| l.starts_with(want)), "{want}");
        unsafe { table.0.destroy.unwrap()(inst) };
    }
}

// ---- a 1.0 host: its table (and registry) end exactly at a page that cannot be read --------------------------

extern "C" {
    fn mmap(addr: *mut c_void, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut c_void;
    fn mprotect(addr: *mut c_void, len: usize, prot: i32) -> i32;
    fn sysconf(name: i32) -> i64;
}
const PROT_NONE: i32 = 0;
const PROT_READ: i32 = 1;
const PROT_WRITE: i32 = 2;
const MAP_PRIVATE: i32 = 2;
const MAP_ANONYMOUS: i32 = 0x20;
const SC_PAGESIZE: i32 = 30;

/// `bytes` of `value` placed so that they end where an unreadable page begins (any read past them faults).
/// The pages are never unmapped: the kit caches its copy of a small host table by address.
unsafe fn guarded<T>(value: &T, bytes: usize) -> *const T {
    unsafe {
        let page = sysconf(SC_PAGESIZE) as usize;
        let base = mmap(std::ptr::null_mut(), 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert!(!base.is_null() && base as isize != -1, "mmap failed");
        assert_eq!(mprotect(base.cast::<u8>().add(page).cast(), page, PROT_NONE), 0);
        let at = base.cast::<u8>().add(page - bytes);
        assert_eq!(at as usize % std::mem::align_of::<T>(), 0);
        std::ptr::copy_nonoverlapping((value as *const T).cast::<u8>(), at, bytes);
        at.cast::<T>()
    }
}

fn old_host() -> *const mcpp_host {
    struct Ptr(*const mcpp_host);
    unsafe impl Send for Ptr {}
    unsafe impl Sync for Ptr {}
    static OLD: std::sync::OnceLock<Ptr> = std::sync::OnceLock::new();
    OLD.get_or_init(|| {
        let mut t = host11(0);
        t.struct_size = HOST_SIZE_1_0 as u32;
        Ptr(unsafe { guarded(&t, HOST_SIZE_1_0) })
    })
    .0
}

#[test]
fn a_1_0_host_is_served_and_1_1_calls_fail_naming_the_function() {
    assert_eq!(HOST_SIZE_1_0, 208);
    let inst = start(&ASKER, old_host());
    let m = Mock::new(&[("what", "\"x\"")]);
    call_on(&ASKER, inst, &m, "ask");
    assert_eq!(
        m.wait_finish(),
        (
            MCPP_OUTCOME_INTERNAL,
            "the host does not implement mcpp_host.request_input (ABI 1.1; its table has struct_size 208, abi_minor 0)"
                .to_owned()
        )
    );
    let m = Mock::new(&[]);
    call_on(&ASKER, inst, &m, "state");
    assert_eq!(
        m.wait_finish(),
        (
            MCPP_OUTCOME_INTERNAL,
            "the host does not implement mcpp_host.set_request_state (ABI 1.1; its table has struct_size 208, abi_minor 0)"
                .to_owned()
        )
    );
    // The 1.0 functions work as before.
    let m = Mock::new(&[]);
    call_on(&ASKER, inst, &m, "plain");
    assert_eq!(m.wait_finish(), (MCPP_OUTCOME_OK, String::new()));
    assert_eq!(m.s.lock().unwrap().texts, ["plain"]);
    unsafe { ASKER.0.destroy.unwrap()(inst) };

    // A second create on the same table reuses the kit's one copy of it.
    let (a, b) = unsafe { (Host::from_table(old_host()).unwrap(), Host::from_table(old_host()).unwrap()) };
    assert!(std::ptr::eq(a.raw(), b.raw()));
    assert!(a.raw().request_input.is_none() && a.raw().json_get.is_none() && !a.has_1_1());
    assert!(unsafe { Host::from_table(&HOST_11.0) }.unwrap().has_1_1());
}

#[test]
fn a_1_0_registry_drops_list_cache_hints() {
    let (_, inst, _) = create(&ASKER, "{}");
    let mut d = Declared::default();
    let mut reg = registry(&mut d);
    let size_1_0 = std::mem::offset_of!(mcpp_registry, set_list_cache);
    reg.struct_size = size_1_0 as u32;
    let small = unsafe { guarded(&reg, size_1_0) };
    assert_eq!(unsafe { ASKER.0.describe.unwrap()(inst, small) }, MCPP_OK);
    assert_eq!(d.tools.len(), 7);
    assert!(d.list_cache.is_empty());
    unsafe { ASKER.0.destroy.unwrap()(inst) };
}

// ---- SERIAL stays serial ---------------------------------------------------------------------------------

/// FORCE_SERIAL and Sync: interactive handlers run on kit threads, and every handler holds the serial lock,
/// given back only while an interactive handler waits for the client.
struct SerialAsker {
    log: Mutex<Vec<String>>,
    /// The `hold` tool waits here (after its answer, holding the lock) until the test lets it go.
    release: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Plugin for SerialAsker {
    const NAME: &'static str = "serial-asker";
    const VERSION: &'static str = "0.1.0";
    const FORCE_SERIAL: bool = true;
    const PANIC_HOOK: bool = false;
    fn create(_host: Host, _config: &str) -> Result<Self, String> {
        Ok(SerialAsker { log: Mutex::new(Vec::new()), release: Mutex::new(None) })
    }
    fn tools(&self) -> Vec<Tool> {
        vec![Tool::new("hold").interactive(), Tool::new("plain")]
    }
    fn call_tool(&self, name: &str, call: &mut Call) -> Outcome {
        match name {
            "hold" => {
                if let Err(e) = call.elicit("k", "hold?", FORM) {
                    return e.into();
                }
                self.log.lock().unwrap().push("hold answered".into());
                let rx = self.release.lock().unwrap().take().unwrap();
                rx.recv_timeout(DEADLINE).expect("released by the test");
                self.log.lock().unwrap().push("hold done".into());
                Outcome::Ok
            }
            "plain" => {
                self.log.lock().unwrap().push("plain".into());
                Outcome::Ok
            }
            _ => Outcome::unknown_tool(name),
        }
    }
}

static SERIAL_ASKER: PluginTable = <Select<SerialAsker>>::TABLE;

#[test]
fn a_serial_plugin_stays_serial() {
    assert_eq!(SERIAL_ASKER.0.threading, MCPP_THREADING_SERIAL);
    let inst = start(&SERIAL_ASKER, &HOST_11.0);
    let plugin = unsafe { &(*inst.cast::<SerialAskerInstance>()).plugin };
    let (tx, rx) = std::sync::mpsc::channel();
    *plugin.release.lock().unwrap() = Some(rx);

    let hold = Mock::new(&[]);
    call_on(&SERIAL_ASKER, inst, &hold, "hold");
    hold.wait_requests(1);
    // While `hold` waits for the client, another handler runs (on this, the host's, thread) and finishes.
    let plain = Mock::new(&[]);
    call_on(&SERIAL_ASKER, inst, &plain, "plain");
    assert_eq!(plain.s.lock().unwrap().finishes, [(MCPP_OUTCOME_OK, String::new())]);

    // Once answered, `hold` runs holding the lock again: a handler that starts meanwhile waits for it.
    hold.deliver(0, MCPP_INPUT_ANSWERED, r#"{"action":"accept"}"#);
    let end = Instant::now() + DEADLINE;
    while !plugin.log.lock().unwrap().iter().any(|l| l == "hold answered") {
        assert!(Instant::now() < end, "hold never got its answer");
        std::thread::yield_now();
    }
    let second = Mock::new(&[]);
    std::thread::scope(|scope| {
        struct Inst(*mut c_void);
        unsafe impl Send for Inst {}
        let handed = Inst(inst);
        let second = &second;
        let runner = scope.spawn(move || {
            let handed = handed;
            call_on(&SERIAL_ASKER, handed.0, second, "plain")
        });
        // Wait until that handler's thread is blocked on the serial lock, then let `hold` finish.
        let gate = unsafe { __private::serial_gate::<SerialAsker>(inst) };
        while gate.waiting() == 0 {
            assert!(Instant::now() < end, "the second handler never waited for the lock");
            std::thread::yield_now();
        }
        assert!(second.s.lock().unwrap().finishes.is_empty());
        tx.send(()).unwrap();
        runner.join().unwrap();
    });
    assert_eq!(hold.wait_finish(), (MCPP_OUTCOME_OK, String::new()));
    assert_eq!(second.wait_finish(), (MCPP_OUTCOME_OK, String::new()));
    assert_eq!(*plugin.log.lock().unwrap(), ["plain", "hold answered", "hold done", "plain"]);
    unsafe { SERIAL_ASKER.0.destroy.unwrap()(inst) };
}

/// The layout of the kit's instance, to reach the plugin value in a test.
type SerialAskerInstance = __private::Instance<SerialAsker>;

#[test]
fn input_error_outcomes_and_json_string() {
    assert_eq!(Outcome::from(InputError::Suspended), Outcome::Ok);
    assert_eq!(Outcome::from(InputError::Cancelled).code(), MCPP_OUTCOME_INTERNAL);
    assert_eq!(Outcome::from(InputError::NotInteractive).code(), MCPP_OUTCOME_INTERNAL);
    assert_eq!(
        Outcome::from(InputError::Unsupported(InputKind::Roots)),
        Outcome::NeedsCapability("this tool needs the client's roots capability".into())
    );
    assert_eq!(Outcome::NeedsCapability(String::new()).code(), 5);
    assert_eq!(json_string("a\"b\\c\n\u{1}é"), r#""a\"b\\c\n\u0001é""#);
    assert_eq!(Lists::TOOLS | Lists::RESOURCES, Lists::TOOLS.and(Lists::RESOURCES));
    let e = Error::NotImplemented { function: "json_get", struct_size: 208, abi_minor: 0 };
    assert_eq!(e.status(), MCPP_E_VERSION);
    assert_eq!(Outcome::from(e).message(), e.to_string());
}
