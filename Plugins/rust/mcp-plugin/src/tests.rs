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
