//! Raw declarations of `Sources/PluginABI/include/mcp_plugin.h` (plugin ABI 1.1), written by hand.
//!
//! The kit still negotiates minor 0 (`MCPP_ABI_MINOR` below), so a Rust plugin loads on a 1.0 host; the
//! 1.1 fields are read only after checking `struct_size` (the header's `MCPP_HAS`).
//!
//! Rules kept here, as in the header:
//! - fixed-width integers and plain constants only: no Rust enums cross the boundary;
//! - every struct is `#[repr(C)]` and (except [`mcpp_str`]) starts with `struct_size`;
//! - every function pointer is `Option<unsafe extern "C" fn ...>`, which has the size and ABI of a
//!   nullable C function pointer, so a NULL entry is `None` and never called;
//! - [`mcpp_call`] is opaque: only pointers to it exist.
//!
//! The `layout!` block at the end checks, at compile time, every size and every field offset and size
//! against `Tests/abi/layout.golden` (x86_64 LP64). If a declaration here drifts from the header, this
//! crate does not compile. `Tests/integration/test_rust_plugin.py` checks that the block lists exactly
//! the structs and fields of the golden file.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_void};
use std::marker::{PhantomData, PhantomPinned};

pub const MCPP_ABI_MAJOR: u32 = 1;
pub const MCPP_ABI_MINOR: u32 = 0;

/// Status codes returned by ABI functions. Never renumbered, never reused.
pub type mcpp_status = i32;
pub const MCPP_OK: mcpp_status = 0;
pub const MCPP_E_FAILED: mcpp_status = 1;
pub const MCPP_E_VERSION: mcpp_status = 2;
pub const MCPP_E_INVALID: mcpp_status = 3;
pub const MCPP_E_NOT_FOUND: mcpp_status = 4;
pub const MCPP_E_TYPE: mcpp_status = 5;
pub const MCPP_E_TOO_LARGE: mcpp_status = 6;
pub const MCPP_E_FINISHED: mcpp_status = 7;
pub const MCPP_E_CANCELLED: mcpp_status = 8;

/// Threading models (`mcpp_plugin.threading`).
pub const MCPP_THREADING_SERIAL: u32 = 0;
pub const MCPP_THREADING_CONCURRENT: u32 = 1;

/// Log levels (RFC 5424 severities).
pub const MCPP_LOG_DEBUG: i32 = 7;
pub const MCPP_LOG_INFO: i32 = 6;
pub const MCPP_LOG_NOTICE: i32 = 5;
pub const MCPP_LOG_WARNING: i32 = 4;
pub const MCPP_LOG_ERROR: i32 = 3;
pub const MCPP_LOG_CRITICAL: i32 = 2;
pub const MCPP_LOG_ALERT: i32 = 1;
pub const MCPP_LOG_EMERGENCY: i32 = 0;

/// How a call ends (`mcpp_host.finish`).
pub const MCPP_OUTCOME_OK: i32 = 0;
pub const MCPP_OUTCOME_TOOL_ERROR: i32 = 1;
pub const MCPP_OUTCOME_NOT_FOUND: i32 = 2;
pub const MCPP_OUTCOME_INVALID_PARAMS: i32 = 3;
pub const MCPP_OUTCOME_INTERNAL: i32 = 4;
/// 1.1: the call cannot go on without a client capability.
pub const MCPP_OUTCOME_NEEDS_CAPABILITY: i32 = 5;

/// Roles of prompt messages (`mcpp_host.set_role`).
pub const MCPP_ROLE_USER: i32 = 0;
pub const MCPP_ROLE_ASSISTANT: i32 = 1;

/// Which list changed (`mcpp_host.notify_list_changed`).
pub const MCPP_LIST_TOOLS: u32 = 1;
pub const MCPP_LIST_RESOURCES: u32 = 2;
pub const MCPP_LIST_PROMPTS: u32 = 4;

/// What a completion request refers to (`mcpp_plugin.complete`).
pub const MCPP_REF_PROMPT: i32 = 0;
pub const MCPP_REF_RESOURCE_TEMPLATE: i32 = 1;

/// 1.1: what a call can ask the client for (`mcpp_host.request_input`).
pub const MCPP_INPUT_ELICIT: i32 = 0;
pub const MCPP_INPUT_SAMPLE: i32 = 1;
pub const MCPP_INPUT_ROOTS: i32 = 2;

/// 1.1: how an input request ended (the status passed to an [`mcpp_input_callback`]).
pub const MCPP_INPUT_ANSWERED: i32 = 0;
pub const MCPP_INPUT_REFUSED: i32 = 1;
pub const MCPP_INPUT_UNSUPPORTED: i32 = 2;
pub const MCPP_INPUT_CANCELLED: i32 = 3;
pub const MCPP_INPUT_SUSPENDED: i32 = 4;

/// 1.1: JSON value types (`mcpp_host.json_get`).
pub const MCPP_JSON_NULL: i32 = 0;
pub const MCPP_JSON_BOOL: i32 = 1;
pub const MCPP_JSON_NUMBER: i32 = 2;
pub const MCPP_JSON_STRING: i32 = 3;
pub const MCPP_JSON_ARRAY: i32 = 4;
pub const MCPP_JSON_OBJECT: i32 = 5;

/// 1.1: cache scopes (`mcpp_registry.set_list_cache`, `mcpp_host.set_cache`).
pub const MCPP_CACHE_PRIVATE: i32 = 0;
pub const MCPP_CACHE_PUBLIC: i32 = 1;

/// Flags of a prompt argument.
pub const MCPP_ARG_REQUIRED: u32 = 1;

/// Flags of a tool (`mcpp_tool.flags`).
pub const MCPP_TOOL_NONBLOCKING: u32 = 1;

/// UTF-8 text: pointer + length. `ptr` may be NULL only when `len` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct mcpp_str {
    pub ptr: *const c_char,
    pub len: usize,
}

impl mcpp_str {
    pub const EMPTY: mcpp_str = mcpp_str { ptr: std::ptr::null(), len: 0 };

    /// Borrows `s` (usable in constants). The result is valid as long as `s` is.
    pub const fn from_str(s: &str) -> mcpp_str {
        if s.is_empty() {
            mcpp_str::EMPTY
        } else {
            mcpp_str { ptr: s.as_ptr() as *const c_char, len: s.len() }
        }
    }
}

/// A host-owned sink for text.
#[repr(C)]
pub struct mcpp_writer {
    pub struct_size: u32,
    pub reserved: u32,
    pub ctx: *mut c_void,
    pub write: Option<unsafe extern "C" fn(ctx: *mut c_void, bytes: *const c_char, len: usize)>,
}

/// The opaque handle of one request in flight.
#[repr(C)]
pub struct mcpp_call {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct mcpp_tool {
    pub struct_size: u32,
    pub flags: u32,
    pub name: mcpp_str,
    pub title: mcpp_str,
    pub description: mcpp_str,
    pub input_schema: mcpp_str,
    pub output_schema: mcpp_str,
    pub annotations: mcpp_str,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct mcpp_resource {
    pub struct_size: u32,
    pub reserved: u32,
    pub uri: mcpp_str,
    pub name: mcpp_str,
    pub title: mcpp_str,
    pub description: mcpp_str,
    pub mime_type: mcpp_str,
    pub size: i64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct mcpp_resource_template {
    pub struct_size: u32,
    pub reserved: u32,
    pub uri_template: mcpp_str,
    pub name: mcpp_str,
    pub title: mcpp_str,
    pub description: mcpp_str,
    pub mime_type: mcpp_str,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct mcpp_prompt_arg {
    pub struct_size: u32,
    pub flags: u32,
    pub name: mcpp_str,
    pub title: mcpp_str,
    pub description: mcpp_str,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct mcpp_prompt {
    pub struct_size: u32,
    pub arg_count: u32,
    pub name: mcpp_str,
    pub title: mcpp_str,
    pub description: mcpp_str,
    pub args: *const mcpp_prompt_arg,
}

#[repr(C)]
pub struct mcpp_registry {
    pub struct_size: u32,
    pub reserved: u32,
    pub ctx: *mut c_void,
    pub add_tool: Option<unsafe extern "C" fn(ctx: *mut c_void, tool: *const mcpp_tool) -> mcpp_status>,
    pub add_resource:
        Option<unsafe extern "C" fn(ctx: *mut c_void, resource: *const mcpp_resource) -> mcpp_status>,
    pub add_resource_template:
        Option<unsafe extern "C" fn(ctx: *mut c_void, tmpl: *const mcpp_resource_template) -> mcpp_status>,
    pub add_prompt: Option<unsafe extern "C" fn(ctx: *mut c_void, prompt: *const mcpp_prompt) -> mcpp_status>,
    // --- 1.1 (check struct_size) ---
    pub set_list_cache: Option<unsafe extern "C" fn(ctx: *mut c_void, lists: u32, ttl_ms: i64, scope: i32) -> mcpp_status>,
}

/// The host's functions; static for the life of the process, every function [any].
#[repr(C)]
pub struct mcpp_host {
    pub struct_size: u32,
    pub abi_minor: u32,
    pub ctx: *mut c_void,

    pub log: Option<unsafe extern "C" fn(ctx: *mut c_void, level: i32, msg: *const c_char, len: usize)>,
    pub notify_list_changed: Option<unsafe extern "C" fn(ctx: *mut c_void, lists: u32)>,
    pub notify_resource_updated: Option<unsafe extern "C" fn(ctx: *mut c_void, uri: *const c_char, uri_len: usize)>,
    pub get_extension: Option<unsafe extern "C" fn(ctx: *mut c_void, id: *const c_char) -> *const c_void>,

    pub arg_string: Option<
        unsafe extern "C" fn(
            call: *mut mcpp_call,
            key: *const c_char,
            key_len: usize,
            out: *mut *const c_char,
            out_len: *mut usize,
        ) -> mcpp_status,
    >,
    pub arg_int: Option<
        unsafe extern "C" fn(call: *mut mcpp_call, key: *const c_char, key_len: usize, out: *mut i64) -> mcpp_status,
    >,
    pub arg_double: Option<
        unsafe extern "C" fn(call: *mut mcpp_call, key: *const c_char, key_len: usize, out: *mut f64) -> mcpp_status,
    >,
    pub arg_bool: Option<
        unsafe extern "C" fn(call: *mut mcpp_call, key: *const c_char, key_len: usize, out: *mut i32) -> mcpp_status,
    >,
    pub arg_json: Option<
        unsafe extern "C" fn(
            call: *mut mcpp_call,
            key: *const c_char,
            key_len: usize,
            out: *mut *const c_char,
            out_len: *mut usize,
        ) -> mcpp_status,
    >,

    pub add_text: Option<unsafe extern "C" fn(call: *mut mcpp_call, text: *const c_char, len: usize) -> mcpp_status>,
    pub add_image: Option<
        unsafe extern "C" fn(
            call: *mut mcpp_call,
            mime: *const c_char,
            mime_len: usize,
            data: *const u8,
            len: usize,
        ) -> mcpp_status,
    >,
    pub add_audio: Option<
        unsafe extern "C" fn(
            call: *mut mcpp_call,
            mime: *const c_char,
            mime_len: usize,
            data: *const u8,
            len: usize,
        ) -> mcpp_status,
    >,
    pub add_resource_text: Option<
        unsafe extern "C" fn(
            call: *mut mcpp_call,
            uri: *const c_char,
            uri_len: usize,
            mime: *const c_char,
            mime_len: usize,
            text: *const c_char,
            len: usize,
        ) -> mcpp_status,
    >,
    pub add_resource_blob: Option<
        unsafe extern "C" fn(
            call: *mut mcpp_call,
            uri: *const c_char,
            uri_len: usize,
            mime: *const c_char,
            mime_len: usize,
            data: *const u8,
            len: usize,
        ) -> mcpp_status,
    >,
    pub add_content_json:
        Option<unsafe extern "C" fn(call: *mut mcpp_call, json: *const c_char, len: usize) -> mcpp_status>,
    pub set_structured:
        Option<unsafe extern "C" fn(call: *mut mcpp_call, json: *const c_char, len: usize) -> mcpp_status>,
    pub set_role: Option<unsafe extern "C" fn(call: *mut mcpp_call, role: i32) -> mcpp_status>,
    pub set_description:
        Option<unsafe extern "C" fn(call: *mut mcpp_call, text: *const c_char, len: usize) -> mcpp_status>,
    pub add_completion:
        Option<unsafe extern "C" fn(call: *mut mcpp_call, value: *const c_char, len: usize) -> mcpp_status>,
    pub set_completion_info:
        Option<unsafe extern "C" fn(call: *mut mcpp_call, total: i64, has_more: i32) -> mcpp_status>,

    pub progress: Option<
        unsafe extern "C" fn(
            call: *mut mcpp_call,
            progress: f64,
            total: f64,
            msg: *const c_char,
            len: usize,
        ) -> mcpp_status,
    >,
    pub call_log:
        Option<unsafe extern "C" fn(call: *mut mcpp_call, level: i32, msg: *const c_char, len: usize) -> mcpp_status>,
    pub is_cancelled: Option<unsafe extern "C" fn(call: *mut mcpp_call) -> i32>,

    pub finish: Option<unsafe extern "C" fn(call: *mut mcpp_call, outcome: i32, msg: *const c_char, len: usize)>,

    // --- 1.1 (check abi_minor >= 1 or struct_size) ---
    pub request_input: Option<
        unsafe extern "C" fn(
            call: *mut mcpp_call,
            kind: i32,
            key: *const c_char,
            key_len: usize,
            params: *const c_char,
            params_len: usize,
            callback: mcpp_input_callback,
            user: *mut c_void,
        ) -> mcpp_status,
    >,
    pub set_request_state:
        Option<unsafe extern "C" fn(call: *mut mcpp_call, data: *const u8, len: usize) -> mcpp_status>,
    pub get_request_state:
        Option<unsafe extern "C" fn(call: *mut mcpp_call, out: *mut *const u8, out_len: *mut usize) -> mcpp_status>,
    pub set_cache: Option<unsafe extern "C" fn(call: *mut mcpp_call, ttl_ms: i64, scope: i32) -> mcpp_status>,
    pub json_get: Option<
        unsafe extern "C" fn(
            call: *mut mcpp_call,
            json: *const c_char,
            json_len: usize,
            pointer: *const c_char,
            pointer_len: usize,
            kind: *mut i32,
            out: *mut *const c_char,
            out_len: *mut usize,
        ) -> mcpp_status,
    >,
}

/// 1.1: receives the end of one input request, exactly once.
pub type mcpp_input_callback = Option<
    unsafe extern "C" fn(user: *mut c_void, call: *mut mcpp_call, status: i32, answer: *const c_char, answer_len: usize),
>;

/// The plugin's table, returned by `mcpp_negotiate_v1`; static for the life of the process.
#[repr(C)]
pub struct mcpp_plugin {
    pub struct_size: u32,
    pub threading: u32,
    pub max_concurrency: u32,
    pub reserved: u32,
    pub name: mcpp_str,
    pub version: mcpp_str,
    pub title: mcpp_str,
    pub instructions: mcpp_str,

    pub create: Option<
        unsafe extern "C" fn(
            host: *const mcpp_host,
            config: *const c_char,
            config_len: usize,
            err: *const mcpp_writer,
            instance: *mut *mut c_void,
        ) -> mcpp_status,
    >,
    pub destroy: Option<unsafe extern "C" fn(instance: *mut c_void)>,
    pub describe: Option<unsafe extern "C" fn(instance: *mut c_void, reg: *const mcpp_registry) -> mcpp_status>,

    pub call_tool:
        Option<unsafe extern "C" fn(instance: *mut c_void, call: *mut mcpp_call, name: *const c_char, name_len: usize)>,
    pub read_resource: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            call: *mut mcpp_call,
            uri: *const c_char,
            uri_len: usize,
            uri_template: *const c_char,
            uri_template_len: usize,
        ),
    >,
    pub get_prompt:
        Option<unsafe extern "C" fn(instance: *mut c_void, call: *mut mcpp_call, name: *const c_char, name_len: usize)>,
    pub complete: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            call: *mut mcpp_call,
            ref_kind: i32,
            ref_: *const c_char,
            ref_len: usize,
            arg: *const c_char,
            arg_len: usize,
            value: *const c_char,
            value_len: usize,
        ),
    >,

    pub cancel: Option<unsafe extern "C" fn(instance: *mut c_void, call: *mut mcpp_call)>,
    pub health: Option<unsafe extern "C" fn(instance: *mut c_void, detail: *const mcpp_writer) -> mcpp_status>,
    pub diagnose: Option<unsafe extern "C" fn(instance: *mut c_void, report: *const mcpp_writer) -> mcpp_status>,
    pub get_extension: Option<unsafe extern "C" fn(instance: *mut c_void, id: *const c_char) -> *const c_void>,
}

/// `MCPP_METRICS_EXTENSION`: the id `get_extension` answers with an `mcpp_metrics` table (NUL-terminated).
pub const MCPP_METRICS_EXTENSION: &[u8] = b"org.mcp-supervisor.metrics/1\0";
pub const MCPP_METRIC_COUNTER: i32 = 0;
pub const MCPP_METRIC_GAUGE: i32 = 1;
pub const MCPP_METRIC_HISTOGRAM: i32 = 2;

/// One registered series (opaque, host-owned, valid for the life of the process).
#[repr(C)]
pub struct mcpp_metric {
    _opaque: [u8; 0],
}

/// The metrics extension's table (`org.mcp-supervisor.metrics/1`), host-owned.
#[repr(C)]
pub struct mcpp_metrics {
    pub struct_size: u32,
    pub reserved: u32,
    pub ctx: *mut c_void,
    pub register_metric: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            kind: i32,
            name: *const c_char,
            name_len: usize,
            help: *const c_char,
            help_len: usize,
            labels: *const mcpp_str,
            label_count: usize,
            buckets: *const f64,
            bucket_count: usize,
            out: *mut *mut mcpp_metric,
        ) -> mcpp_status,
    >,
    pub add: Option<unsafe extern "C" fn(metric: *mut mcpp_metric, delta: f64) -> mcpp_status>,
    pub set: Option<unsafe extern "C" fn(metric: *mut mcpp_metric, value: f64) -> mcpp_status>,
    pub observe: Option<unsafe extern "C" fn(metric: *mut mcpp_metric, value: f64) -> mcpp_status>,
}

/// Negotiation record, host-owned, passed to `mcpp_negotiate_v1`.
#[repr(C)]
pub struct mcpp_negotiation {
    pub struct_size: u32,
    pub host_abi_major: u32,
    pub host_abi_minor: u32,
    pub plugin_abi_minor: u32,
    pub plugin: *const mcpp_plugin,
}

/// `MCPP_NEGOTIATION_SIZE_1_0`: hosts of any 1.x pass at least this much.
pub const MCPP_NEGOTIATION_SIZE_1_0: usize =
    std::mem::offset_of!(mcpp_negotiation, plugin) + std::mem::size_of::<*const c_void>();

/// The entry point's signature (`mcpp_negotiate_v1`).
pub type mcpp_negotiate_fn = unsafe extern "C" fn(n: *mut mcpp_negotiation) -> mcpp_status;

// ---------------------------------------------------------------------------------------------------
// Compile-time layout checks against Tests/abi/layout.golden (x86_64 LP64).
// `layout!(T size N { field offset size; ... })` asserts size_of::<T>() == N and, for every field,
// offset_of!(T, field) == offset and the size of the field's own type == size. The field's type is taken
// from the struct itself (through a field projection), so a changed type is caught too.
// ---------------------------------------------------------------------------------------------------

/// Size of the type a projection `fn(&T) -> &F` returns; the function is never called.
#[doc(hidden)]
pub const fn field_size<T, F>(_projection: fn(&T) -> &F) -> usize {
    std::mem::size_of::<F>()
}

macro_rules! layout {
    ($t:ident size $size:literal { $($field:ident $offset:literal $fsize:literal;)* }) => {
        const _: () = {
            assert!(std::mem::size_of::<$t>() == $size, concat!("size of ", stringify!($t)));
            $(
                assert!(std::mem::offset_of!($t, $field) == $offset,
                        concat!("offset of ", stringify!($t), ".", stringify!($field)));
                assert!(field_size(|s: &$t| &s.$field) == $fsize,
                        concat!("size of ", stringify!($t), ".", stringify!($field)));
            )*
        };
    };
}

#[cfg(all(target_pointer_width = "64", not(windows)))]
mod layout_checks {
    use super::*;

    layout!(mcpp_str size 16 {
        ptr 0 8;
        len 8 8;
    });
    layout!(mcpp_writer size 24 {
        struct_size 0 4;
        reserved 4 4;
        ctx 8 8;
        write 16 8;
    });
    layout!(mcpp_tool size 104 {
        struct_size 0 4;
        flags 4 4;
        name 8 16;
        title 24 16;
        description 40 16;
        input_schema 56 16;
        output_schema 72 16;
        annotations 88 16;
    });
    layout!(mcpp_resource size 96 {
        struct_size 0 4;
        reserved 4 4;
        uri 8 16;
        name 24 16;
        title 40 16;
        description 56 16;
        mime_type 72 16;
        size 88 8;
    });
    layout!(mcpp_resource_template size 88 {
        struct_size 0 4;
        reserved 4 4;
        uri_template 8 16;
        name 24 16;
        title 40 16;
        description 56 16;
        mime_type 72 16;
    });
    layout!(mcpp_prompt_arg size 56 {
        struct_size 0 4;
        flags 4 4;
        name 8 16;
        title 24 16;
        description 40 16;
    });
    layout!(mcpp_prompt size 64 {
        struct_size 0 4;
        arg_count 4 4;
        name 8 16;
        title 24 16;
        description 40 16;
        args 56 8;
    });
    layout!(mcpp_registry size 56 {
        struct_size 0 4;
        reserved 4 4;
        ctx 8 8;
        add_tool 16 8;
        add_resource 24 8;
        add_resource_template 32 8;
        add_prompt 40 8;
        set_list_cache 48 8;
    });
    layout!(mcpp_host size 248 {
        struct_size 0 4;
        abi_minor 4 4;
        ctx 8 8;
        log 16 8;
        notify_list_changed 24 8;
        notify_resource_updated 32 8;
        get_extension 40 8;
        arg_string 48 8;
        arg_int 56 8;
        arg_double 64 8;
        arg_bool 72 8;
        arg_json 80 8;
        add_text 88 8;
        add_image 96 8;
        add_audio 104 8;
        add_resource_text 112 8;
        add_resource_blob 120 8;
        add_content_json 128 8;
        set_structured 136 8;
        set_role 144 8;
        set_description 152 8;
        add_completion 160 8;
        set_completion_info 168 8;
        progress 176 8;
        call_log 184 8;
        is_cancelled 192 8;
        finish 200 8;
        request_input 208 8;
        set_request_state 216 8;
        get_request_state 224 8;
        set_cache 232 8;
        json_get 240 8;
    });
    layout!(mcpp_metrics size 48 {
        struct_size 0 4;
        reserved 4 4;
        ctx 8 8;
        register_metric 16 8;
        add 24 8;
        set 32 8;
        observe 40 8;
    });
    layout!(mcpp_plugin size 168 {
        struct_size 0 4;
        threading 4 4;
        max_concurrency 8 4;
        reserved 12 4;
        name 16 16;
        version 32 16;
        title 48 16;
        instructions 64 16;
        create 80 8;
        destroy 88 8;
        describe 96 8;
        call_tool 104 8;
        read_resource 112 8;
        get_prompt 120 8;
        complete 128 8;
        cancel 136 8;
        health 144 8;
        diagnose 152 8;
        get_extension 160 8;
    });
    layout!(mcpp_negotiation size 24 {
        struct_size 0 4;
        host_abi_major 4 4;
        host_abi_minor 8 4;
        plugin_abi_minor 12 4;
        plugin 16 8;
    });

    // MCPP_NEGOTIATION_SIZE_1_0 is the whole 1.0 record.
    const _: () = assert!(MCPP_NEGOTIATION_SIZE_1_0 == 24);
}

// Alignment: every struct is pointer-aligned, as in C (mcpp_str and the tables hold pointers).
const _: () = {
    assert!(std::mem::align_of::<mcpp_str>() == std::mem::align_of::<*const c_void>());
    assert!(std::mem::align_of::<mcpp_host>() == std::mem::align_of::<*const c_void>());
    assert!(std::mem::align_of::<mcpp_plugin>() == std::mem::align_of::<*const c_void>());
    assert!(std::mem::align_of::<mcpp_negotiation>() == std::mem::align_of::<*const c_void>());
};
