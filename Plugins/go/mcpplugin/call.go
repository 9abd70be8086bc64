package mcpplugin

// C side of the calls *into the host*. Go cannot call a C function pointer, so each mcpp_host /
// mcpp_registry / mcpp_writer function pointer gets a tiny static C function here that calls it.
//
// Strings go down as cgo's _GoString_ (pointer + length of the Go string's bytes, no copy). That is
// allowed by the cgo pointer rules: the bytes contain no Go pointers, and C uses them only for the
// duration of the call. The header promises exactly that: every host function copies before it
// returns ("Nothing is freed across the boundary ... Output goes through host callbacks that copy").
// The declaration structs (mcpp_tool) are built on the C stack from such strings, for the same reason:
// C never keeps a Go pointer after the call.
//
// (This file has definitions in its preamble, so it must not contain //export; see exports.go.)

/*
#cgo CFLAGS: -I${SRCDIR}/../../../Sources/PluginABI/include -O2
#include <stdlib.h>
#include <string.h>
#include "mcp_plugin.h"

// A Go string as (ptr, len); never NULL, so hosts that dislike NULL with len 0 are safe too.
static inline const char *gs_ptr(_GoString_ s) { const char *p = _GoStringPtr(s); return p ? p : ""; }
static inline size_t gs_len(_GoString_ s) { return _GoStringLen(s); }
static inline mcpp_str gs_str(_GoString_ s) { mcpp_str r = { gs_ptr(s), gs_len(s) }; return r; }

// --- mcpp_writer (create's err, health's detail) ---
static inline void shim_write(const mcpp_writer *w, _GoString_ s) {
    if (w && w->write) w->write(w->ctx, gs_ptr(s), gs_len(s));
}

// --- mcpp_registry.add_tool: the mcpp_tool lives on this C stack frame; the host copies it. ---
static inline mcpp_status shim_add_tool(const mcpp_registry *r, uint32_t flags, _GoString_ name, _GoString_ title,
                                        _GoString_ description, _GoString_ input_schema, _GoString_ output_schema,
                                        _GoString_ annotations) {
    if (!r || !r->add_tool) return MCPP_E_FAILED;
    mcpp_tool t;
    memset(&t, 0, sizeof t);
    t.struct_size = sizeof(mcpp_tool); // struct_size rule: the size as this header defines it
    t.flags = flags;
    t.name = gs_str(name);
    t.title = gs_str(title);
    t.description = gs_str(description);
    t.input_schema = gs_str(input_schema);
    t.output_schema = gs_str(output_schema);
    t.annotations = gs_str(annotations);
    return r->add_tool(r->ctx, &t);
}

// --- mcpp_registry: resources, templates, prompts, list cache hints (copied by the host) ---
static inline mcpp_status shim_add_resource(const mcpp_registry *r, _GoString_ uri, _GoString_ name, _GoString_ title,
                                            _GoString_ description, _GoString_ mime, int64_t size) {
    if (!r || !MCPP_HAS(r, mcpp_registry, add_resource) || !r->add_resource) return MCPP_E_VERSION;
    mcpp_resource d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof(mcpp_resource);
    d.uri = gs_str(uri);
    d.name = gs_str(name);
    d.title = gs_str(title);
    d.description = gs_str(description);
    d.mime_type = gs_str(mime);
    d.size = size;
    return r->add_resource(r->ctx, &d);
}
static inline mcpp_status shim_add_resource_template(const mcpp_registry *r, _GoString_ tmpl, _GoString_ name,
                                                     _GoString_ title, _GoString_ description, _GoString_ mime) {
    if (!r || !MCPP_HAS(r, mcpp_registry, add_resource_template) || !r->add_resource_template) return MCPP_E_VERSION;
    mcpp_resource_template d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof(mcpp_resource_template);
    d.uri_template = gs_str(tmpl);
    d.name = gs_str(name);
    d.title = gs_str(title);
    d.description = gs_str(description);
    d.mime_type = gs_str(mime);
    return r->add_resource_template(r->ctx, &d);
}
// Prompt arguments live in C memory (an array of structs pointing at strings: no Go pointer may be stored in it),
// built with shim_args_new/shim_args_set and freed with shim_args_free after add_prompt returned.
static inline mcpp_str c_copy(_GoString_ s) {
    mcpp_str r = { NULL, 0 };
    size_t n = gs_len(s);
    if (n == 0) return r;
    char *p = malloc(n);
    if (!p) return r;
    memcpy(p, gs_ptr(s), n);
    r.ptr = p;
    r.len = n;
    return r;
}
static inline mcpp_prompt_arg *shim_args_new(uint32_t n) { return n ? calloc(n, sizeof(mcpp_prompt_arg)) : NULL; }
static inline void shim_args_set(mcpp_prompt_arg *a, uint32_t i, uint32_t flags, _GoString_ name, _GoString_ title,
                                 _GoString_ description) {
    a[i].struct_size = sizeof(mcpp_prompt_arg);
    a[i].flags = flags;
    a[i].name = c_copy(name);
    a[i].title = c_copy(title);
    a[i].description = c_copy(description);
}
static inline void shim_args_free(mcpp_prompt_arg *a, uint32_t n) {
    if (!a) return;
    for (uint32_t i = 0; i < n; i++) {
        free((void *)a[i].name.ptr);
        free((void *)a[i].title.ptr);
        free((void *)a[i].description.ptr);
    }
    free(a);
}
static inline mcpp_status shim_add_prompt(const mcpp_registry *r, _GoString_ name, _GoString_ title,
                                          _GoString_ description, const mcpp_prompt_arg *args, uint32_t n) {
    if (!r || !MCPP_HAS(r, mcpp_registry, add_prompt) || !r->add_prompt) return MCPP_E_VERSION;
    if (n > 0 && !args) return MCPP_E_FAILED; // calloc failed
    mcpp_prompt d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof(mcpp_prompt);
    d.arg_count = n;
    d.name = gs_str(name);
    d.title = gs_str(title);
    d.description = gs_str(description);
    d.args = args;
    return r->add_prompt(r->ctx, &d);
}
// 1 when the registry has set_list_cache (1.1).
static inline int shim_has_list_cache(const mcpp_registry *r) {
    return r && MCPP_HAS(r, mcpp_registry, set_list_cache) && r->set_list_cache;
}
static inline mcpp_status shim_set_list_cache(const mcpp_registry *r, uint32_t lists, int64_t ttl, int32_t scope) {
    return r->set_list_cache(r->ctx, lists, ttl, scope);
}

// --- mcpp_host: process-wide functions ([any]) ---
static inline void shim_log(const mcpp_host *h, int32_t level, _GoString_ msg) {
    if (h && h->log) h->log(h->ctx, level, gs_ptr(msg), gs_len(msg));
}
static inline void shim_notify_list_changed(const mcpp_host *h, uint32_t lists) {
    if (h && h->notify_list_changed) h->notify_list_changed(h->ctx, lists);
}
static inline void shim_notify_resource_updated(const mcpp_host *h, _GoString_ uri) {
    if (h && h->notify_resource_updated) h->notify_resource_updated(h->ctx, gs_ptr(uri), gs_len(uri));
}

// --- mcpp_host: arguments of a call. Out pointers are borrowed until finish(); Go copies them at once. ---
static inline mcpp_status shim_arg_string(const mcpp_host *h, mcpp_call *c, _GoString_ key, const char **out,
                                          size_t *out_len) {
    return h->arg_string ? h->arg_string(c, gs_ptr(key), gs_len(key), out, out_len) : MCPP_E_FAILED;
}
static inline mcpp_status shim_arg_int(const mcpp_host *h, mcpp_call *c, _GoString_ key, int64_t *out) {
    return h->arg_int ? h->arg_int(c, gs_ptr(key), gs_len(key), out) : MCPP_E_FAILED;
}
static inline mcpp_status shim_arg_double(const mcpp_host *h, mcpp_call *c, _GoString_ key, double *out) {
    return h->arg_double ? h->arg_double(c, gs_ptr(key), gs_len(key), out) : MCPP_E_FAILED;
}
static inline mcpp_status shim_arg_bool(const mcpp_host *h, mcpp_call *c, _GoString_ key, int32_t *out) {
    return h->arg_bool ? h->arg_bool(c, gs_ptr(key), gs_len(key), out) : MCPP_E_FAILED;
}
// whole != 0: key NULL, the whole arguments object.
static inline mcpp_status shim_arg_json(const mcpp_host *h, mcpp_call *c, int whole, _GoString_ key,
                                        const char **out, size_t *out_len) {
    if (!h->arg_json) return MCPP_E_FAILED;
    return whole ? h->arg_json(c, NULL, 0, out, out_len) : h->arg_json(c, gs_ptr(key), gs_len(key), out, out_len);
}

// --- mcpp_host: building the result (each copies before it returns) ---
static inline mcpp_status shim_add_text(const mcpp_host *h, mcpp_call *c, _GoString_ s) {
    return h->add_text ? h->add_text(c, gs_ptr(s), gs_len(s)) : MCPP_E_FAILED;
}
// kind 0: image, 1: audio. data points into a Go []byte (no Go pointers inside) for this call only.
static inline mcpp_status shim_add_media(const mcpp_host *h, mcpp_call *c, int kind, _GoString_ mime,
                                         const uint8_t *data, size_t len) {
    static const uint8_t empty[1];
    if (!data) data = empty;
    if (kind == 0) return h->add_image ? h->add_image(c, gs_ptr(mime), gs_len(mime), data, len) : MCPP_E_FAILED;
    return h->add_audio ? h->add_audio(c, gs_ptr(mime), gs_len(mime), data, len) : MCPP_E_FAILED;
}
static inline mcpp_status shim_add_resource_text(const mcpp_host *h, mcpp_call *c, _GoString_ uri, _GoString_ mime,
                                                 _GoString_ text) {
    return h->add_resource_text ? h->add_resource_text(c, gs_ptr(uri), gs_len(uri), gs_ptr(mime), gs_len(mime),
                                                       gs_ptr(text), gs_len(text))
                                : MCPP_E_FAILED;
}
static inline mcpp_status shim_add_resource_blob(const mcpp_host *h, mcpp_call *c, _GoString_ uri, _GoString_ mime,
                                                 const uint8_t *data, size_t len) {
    static const uint8_t empty[1];
    if (!data) data = empty;
    return h->add_resource_blob
               ? h->add_resource_blob(c, gs_ptr(uri), gs_len(uri), gs_ptr(mime), gs_len(mime), data, len)
               : MCPP_E_FAILED;
}
static inline mcpp_status shim_add_content_json(const mcpp_host *h, mcpp_call *c, _GoString_ s) {
    return h->add_content_json ? h->add_content_json(c, gs_ptr(s), gs_len(s)) : MCPP_E_FAILED;
}
static inline mcpp_status shim_set_structured(const mcpp_host *h, mcpp_call *c, _GoString_ s) {
    return h->set_structured ? h->set_structured(c, gs_ptr(s), gs_len(s)) : MCPP_E_FAILED;
}

// --- mcpp_host: while the call runs ---
static inline mcpp_status shim_progress(const mcpp_host *h, mcpp_call *c, double p, double total, _GoString_ msg) {
    return h->progress ? h->progress(c, p, total, gs_ptr(msg), gs_len(msg)) : MCPP_E_FAILED;
}
static inline mcpp_status shim_call_log(const mcpp_host *h, mcpp_call *c, int32_t level, _GoString_ msg) {
    return h->call_log ? h->call_log(c, level, gs_ptr(msg), gs_len(msg)) : MCPP_E_FAILED;
}
static inline int32_t shim_is_cancelled(const mcpp_host *h, mcpp_call *c) {
    return h->is_cancelled ? h->is_cancelled(c) : 0;
}
static inline void shim_finish(const mcpp_host *h, mcpp_call *c, int32_t outcome, _GoString_ msg) {
    if (h && h->finish) h->finish(c, outcome, gs_ptr(msg), gs_len(msg));
}

// --- mcpp_host: prompts and completions ---
static inline mcpp_status shim_set_role(const mcpp_host *h, mcpp_call *c, int32_t role) {
    return h->set_role ? h->set_role(c, role) : MCPP_E_FAILED;
}
static inline mcpp_status shim_set_description(const mcpp_host *h, mcpp_call *c, _GoString_ s) {
    return h->set_description ? h->set_description(c, gs_ptr(s), gs_len(s)) : MCPP_E_FAILED;
}
static inline mcpp_status shim_add_completion(const mcpp_host *h, mcpp_call *c, _GoString_ s) {
    return h->add_completion ? h->add_completion(c, gs_ptr(s), gs_len(s)) : MCPP_E_FAILED;
}
static inline mcpp_status shim_set_completion_info(const mcpp_host *h, mcpp_call *c, int64_t total, int32_t more) {
    return h->set_completion_info ? h->set_completion_info(c, total, more) : MCPP_E_FAILED;
}

// --- mcpp_host 1.1. Each is checked first with shim_has_11 (abi_minor and struct_size). ---
#define GOMCPP_REQUEST_INPUT 0
#define GOMCPP_SET_REQUEST_STATE 1
#define GOMCPP_GET_REQUEST_STATE 2
#define GOMCPP_SET_CACHE 3
#define GOMCPP_JSON_GET 4
static inline int shim_has_11(const mcpp_host *h, int which) {
    if (!h || h->abi_minor < 1) return 0;
    switch (which) {
    case GOMCPP_REQUEST_INPUT: return MCPP_HAS(h, mcpp_host, request_input) && h->request_input;
    case GOMCPP_SET_REQUEST_STATE: return MCPP_HAS(h, mcpp_host, set_request_state) && h->set_request_state;
    case GOMCPP_GET_REQUEST_STATE: return MCPP_HAS(h, mcpp_host, get_request_state) && h->get_request_state;
    case GOMCPP_SET_CACHE: return MCPP_HAS(h, mcpp_host, set_cache) && h->set_cache;
    case GOMCPP_JSON_GET: return MCPP_HAS(h, mcpp_host, json_get) && h->json_get;
    }
    return 0;
}
// The mcpp_input_callback of every request (entry.c): hands the outcome to Go. user is a cgo.Handle value.
extern void gomcpp_c_input_callback(void *user, mcpp_call *call, int32_t status, const char *answer, size_t len);
static inline mcpp_status shim_request_input(const mcpp_host *h, mcpp_call *c, int32_t kind, _GoString_ key,
                                             _GoString_ params, uintptr_t user) {
    return h->request_input(c, kind, gs_ptr(key), gs_len(key), gs_ptr(params), gs_len(params),
                            gomcpp_c_input_callback, (void *)user);
}
static inline mcpp_status shim_set_request_state(const mcpp_host *h, mcpp_call *c, const uint8_t *data, size_t len) {
    static const uint8_t empty[1];
    return h->set_request_state(c, data ? data : empty, len);
}
static inline mcpp_status shim_get_request_state(const mcpp_host *h, mcpp_call *c, const uint8_t **out, size_t *len) {
    return h->get_request_state(c, out, len);
}
static inline mcpp_status shim_set_cache(const mcpp_host *h, mcpp_call *c, int64_t ttl, int32_t scope) {
    return h->set_cache(c, ttl, scope);
}
static inline mcpp_status shim_json_get(const mcpp_host *h, mcpp_call *c, _GoString_ json, _GoString_ pointer,
                                        int32_t *type, const char **out, size_t *len) {
    return h->json_get(c, gs_ptr(json), gs_len(json), gs_ptr(pointer), gs_len(pointer), type, out, len);
}
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/cgo"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// goString copies borrowed host text (pointer + length, NULL allowed when the length is 0) into Go memory.
func goString(p *C.char, n C.size_t) string {
	if p == nil || n == 0 {
		return ""
	}
	return C.GoStringN(p, C.int(n))
}

func bytesPtr(b []byte) (*C.uint8_t, C.size_t) {
	if len(b) == 0 {
		return nil, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

func writeTo(w *C.mcpp_writer, s string) { C.shim_write(w, s) }

// ---------------------------------------------------------------------------------------------------------
// Host: the mcpp_host table (static for the life of the process; every function [any]).
// ---------------------------------------------------------------------------------------------------------

// Host is the host's function table. Its methods may be called from any goroutine.
type Host struct {
	h *C.mcpp_host // C memory, static: a C pointer held by Go is fine under the cgo rules
}

// Log writes a line to the host's log (stderr, collected by the supervisor). mcpp_host.log
func (h *Host) Log(level LogLevel, msg string) { C.shim_log(h.h, C.int32_t(level), msg) }

// NotifyListChanged tells the host that declarations changed (ListTools, ...). mcpp_host.notify_list_changed
func (h *Host) NotifyListChanged(lists uint32) { C.shim_notify_list_changed(h.h, C.uint32_t(lists)) }

// NotifyResourceUpdated tells the host the content of a resource changed. mcpp_host.notify_resource_updated
func (h *Host) NotifyResourceUpdated(uri string) { C.shim_notify_resource_updated(h.h, uri) }

// ---------------------------------------------------------------------------------------------------------
// Call: one request in flight (mcpp_call*), valid until the kit calls finish after the handler returned.
// ---------------------------------------------------------------------------------------------------------

// callKind is what a Call answers.
type callKind int

const (
	kindTool callKind = iota
	kindResource
	kindPrompt
	kindCompletion
)

func (k callKind) noun() string {
	return [...]string{"tool", "resource", "prompt", "completion"}[k]
}

// Call is the request a handler answers (tools/call, resources/read, prompts/get, completion/complete). Its
// methods are safe to use from several goroutines while the handler runs; once the call is finished they return
// ErrFinished.
type Call struct {
	host        *C.mcpp_host
	call        *C.mcpp_call // opaque host handle (C memory)
	kind        callKind
	name        string // the tool or prompt name, the resource URI, the completion's reference
	interactive bool   // the handler runs in a goroutine of its own and may ask the client
	serial      bool   // the plugin is Serial: the handler holds serialMu while it runs

	mu   sync.RWMutex // readers: host calls on the handle; writer: finish
	done bool

	asked          atomic.Uint32 // input requests with automatic keys
	completionInfo atomic.Bool   // the completer called SetCompletionInfo

	ctxMu     sync.Mutex // guards the lazily made context
	ctx       context.Context
	cancelCtx context.CancelFunc
	ended     bool // cancelled by the host or finished

	serialMu    sync.Mutex // guards holdsSerial
	holdsSerial bool
}

// serialLock keeps a Serial plugin serial although Interactive handlers run in goroutines: every handler holds it
// while it runs, and releases it only while it waits for the client.
var serialLock sync.Mutex

func (c *Call) acquireSerial() {
	if !c.serial {
		return
	}
	c.serialMu.Lock()
	defer c.serialMu.Unlock()
	if !c.holdsSerial {
		serialLock.Lock()
		c.holdsSerial = true
	}
}

func (c *Call) releaseSerial() {
	c.serialMu.Lock()
	defer c.serialMu.Unlock()
	if c.holdsSerial {
		c.holdsSerial = false
		serialLock.Unlock()
	}
}

// Tool is the name of the tool being called ("" for other calls).
func (c *Call) Tool() string {
	if c.kind != kindTool {
		return ""
	}
	return c.name
}

// Name is the tool or prompt name, the resource URI, or the completion's reference (prompt name or template).
func (c *Call) Name() string { return c.name }

// Host is the host table, e.g. for Host().Log.
func (c *Call) Host() *Host { return &Host{c.host} }

// Context is cancelled when the host cancels the call (mcpp_plugin.cancel: the client cancelled, disconnected or
// the deadline passed) and when the call is finished. Use it with select, or pass it to code that takes one.
func (c *Call) Context() context.Context {
	c.ctxMu.Lock()
	defer c.ctxMu.Unlock()
	if c.ctx == nil {
		c.ctx, c.cancelCtx = context.WithCancel(context.Background())
		if c.ended {
			c.cancelCtx()
		}
	}
	return c.ctx
}

// Done is Context().Done().
func (c *Call) Done() <-chan struct{} { return c.Context().Done() }

// endContext cancels the context (made now or later). Never blocks: mcpp_plugin.cancel calls it.
func (c *Call) endContext() {
	c.ctxMu.Lock()
	defer c.ctxMu.Unlock()
	c.ended = true
	if c.cancelCtx != nil {
		c.cancelCtx()
	}
}

// use runs f with the handle while the call is not finished. false: finished, f did not run.
func (c *Call) use(f func()) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.done {
		return false
	}
	f()
	return true
}

func (c *Call) status(op string, st C.mcpp_status, ran bool) error {
	if !ran {
		return ErrFinished
	}
	if st == C.MCPP_OK {
		return nil
	}
	return &StatusError{Op: op, Status: Status(st)}
}

// finish ends the call exactly once (mcpp_host.finish). Later uses of c return ErrFinished.
func (c *Call) finish(outcome Outcome, msg string) bool {
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return false
	}
	c.done = true
	if outcome == OutcomeToolError && c.kind != kindTool {
		outcome = OutcomeInternal // MCPP_OUTCOME_TOOL_ERROR is for tools/call only
	}
	if outcome == OutcomeOK {
		msg = ""
	}
	// Bookkeeping first: whoever sees the finish (the host, diagnose right after it) sees the call gone. A cancel
	// that arrives meanwhile finds nothing to wake, which is right: the call is ending.
	forgetCall(c)
	c.endContext()
	C.shim_finish(c.host, c.call, C.int32_t(outcome), msg)
	c.mu.Unlock()
	return true
}

// ---------------------------------------------------------------------------------------------------------
// Calls in flight, by handle: mcpp_plugin.cancel finds its Call here; diagnose counts them.
// ---------------------------------------------------------------------------------------------------------

var (
	callsMu    sync.Mutex
	callsByKey = map[uintptr]*Call{}
	// Interactive handlers still running in their goroutines; cgo handles of input requests not yet answered;
	// handlers waiting for an answer now. Reported by diagnose.
	handlerGoroutines atomic.Int64
	inputHandles      atomic.Int64
	waitingForInput   atomic.Int64
)

func handleKey(call *C.mcpp_call) uintptr { return uintptr(unsafe.Pointer(call)) }

func rememberCall(c *Call) {
	callsMu.Lock()
	callsByKey[handleKey(c.call)] = c
	callsMu.Unlock()
}

func forgetCall(c *Call) {
	callsMu.Lock()
	if callsByKey[handleKey(c.call)] == c {
		delete(callsByKey, handleKey(c.call))
	}
	callsMu.Unlock()
}

func lookupCall(call *C.mcpp_call) *Call {
	callsMu.Lock()
	defer callsMu.Unlock()
	return callsByKey[handleKey(call)]
}

func callsInFlight() int {
	callsMu.Lock()
	defer callsMu.Unlock()
	return len(callsByKey)
}

// argError turns an arg_* status into the error a handler returns (texts as in the C reference plugin).
func argError(key, want string, st C.mcpp_status) error {
	switch Status(st) {
	case StatusNotFound:
		return &Error{Outcome: OutcomeInvalidParams, Message: "missing required argument '" + key + "'", missing: true}
	case StatusType:
		return InvalidParams("argument '%s' must be %s", key, want)
	case StatusFinished:
		return ErrFinished
	}
	return InvalidParams("argument '%s' is invalid (status %d)", key, int32(st))
}

// Has reports whether the argument is present and not null.
func (c *Call) Has(key string) bool {
	var p *C.char
	var n C.size_t
	var st C.mcpp_status
	ran := c.use(func() { st = C.shim_arg_json(c.host, c.call, 0, key, &p, &n) })
	return ran && st == C.MCPP_OK && goString(p, n) != "null"
}

// String returns the string argument key (mcpp_host.arg_string), copied. Absent, null or not a string:
// an InvalidParams error naming the key.
func (c *Call) String(key string) (string, error) {
	var p *C.char
	var n C.size_t
	var st C.mcpp_status
	var s string
	ran := c.use(func() {
		st = C.shim_arg_string(c.host, c.call, key, &p, &n)
		if st == C.MCPP_OK {
			s = goString(p, n) // borrowed until finish: copy while the handle is held
		}
	})
	if !ran {
		return "", ErrFinished
	}
	if st != C.MCPP_OK {
		return "", argError(key, "a string", st)
	}
	return s, nil
}

// Int returns the integer argument key (mcpp_host.arg_int: integers and integral numbers in int64 range).
func (c *Call) Int(key string) (int64, error) {
	var v C.int64_t
	var st C.mcpp_status
	if !c.use(func() { st = C.shim_arg_int(c.host, c.call, key, &v) }) {
		return 0, ErrFinished
	}
	if st != C.MCPP_OK {
		return 0, argError(key, "an integer", st)
	}
	return int64(v), nil
}

// Float returns the number argument key (mcpp_host.arg_double).
func (c *Call) Float(key string) (float64, error) {
	var v C.double
	var st C.mcpp_status
	if !c.use(func() { st = C.shim_arg_double(c.host, c.call, key, &v) }) {
		return 0, ErrFinished
	}
	if st != C.MCPP_OK {
		return 0, argError(key, "a number", st)
	}
	return float64(v), nil
}

// Bool returns the boolean argument key (mcpp_host.arg_bool).
func (c *Call) Bool(key string) (bool, error) {
	var v C.int32_t
	var st C.mcpp_status
	if !c.use(func() { st = C.shim_arg_bool(c.host, c.call, key, &v) }) {
		return false, ErrFinished
	}
	if st != C.MCPP_OK {
		return false, argError(key, "a boolean", st)
	}
	return v != 0, nil
}

// JSON returns the argument key as JSON text (mcpp_host.arg_json).
func (c *Call) JSON(key string) (string, error) { return c.json(false, key) }

// Arguments returns the whole arguments object as JSON text (mcpp_host.arg_json with key NULL).
func (c *Call) Arguments() (string, error) { return c.json(true, "") }

func (c *Call) json(whole bool, key string) (string, error) {
	var p *C.char
	var n C.size_t
	var st C.mcpp_status
	var s string
	w := C.int(0)
	if whole {
		w = 1
	}
	ran := c.use(func() {
		st = C.shim_arg_json(c.host, c.call, w, key, &p, &n)
		if st == C.MCPP_OK {
			s = goString(p, n)
		}
	})
	if !ran {
		return "", ErrFinished
	}
	if st != C.MCPP_OK {
		return "", argError(key, "JSON", st)
	}
	return s, nil
}

// OptString is String with a default for an absent or null argument.
func (c *Call) OptString(key, def string) (string, error) {
	s, err := c.String(key)
	if isMissing(err) {
		return def, nil
	}
	return s, err
}

// OptInt is Int with a default for an absent or null argument.
func (c *Call) OptInt(key string, def int64) (int64, error) {
	v, err := c.Int(key)
	if isMissing(err) {
		return def, nil
	}
	return v, err
}

// OptFloat is Float with a default for an absent or null argument.
func (c *Call) OptFloat(key string, def float64) (float64, error) {
	v, err := c.Float(key)
	if isMissing(err) {
		return def, nil
	}
	return v, err
}

// OptBool is Bool with a default for an absent or null argument.
func (c *Call) OptBool(key string, def bool) (bool, error) {
	v, err := c.Bool(key)
	if isMissing(err) {
		return def, nil
	}
	return v, err
}

func isMissing(err error) bool {
	e, ok := err.(*Error)
	return ok && e.missing
}

// AddText appends a text content block (mcpp_host.add_text; copied by the host).
func (c *Call) AddText(text string) error {
	var st C.mcpp_status
	ran := c.use(func() { st = C.shim_add_text(c.host, c.call, text) })
	return c.status("add_text", st, ran)
}

// AddImage appends an image block; data is raw, the host base64-encodes it (mcpp_host.add_image).
func (c *Call) AddImage(mime string, data []byte) error {
	var st C.mcpp_status
	ran := c.use(func() {
		p, n := bytesPtr(data)
		st = C.shim_add_media(c.host, c.call, 0, mime, p, n)
	})
	return c.status("add_image", st, ran)
}

// AddAudio appends an audio block (mcpp_host.add_audio).
func (c *Call) AddAudio(mime string, data []byte) error {
	var st C.mcpp_status
	ran := c.use(func() {
		p, n := bytesPtr(data)
		st = C.shim_add_media(c.host, c.call, 1, mime, p, n)
	})
	return c.status("add_audio", st, ran)
}

// AddResourceText appends an embedded text resource (mcpp_host.add_resource_text).
func (c *Call) AddResourceText(uri, mime, text string) error {
	var st C.mcpp_status
	ran := c.use(func() { st = C.shim_add_resource_text(c.host, c.call, uri, mime, text) })
	return c.status("add_resource_text", st, ran)
}

// AddResourceBlob appends an embedded binary resource (mcpp_host.add_resource_blob).
func (c *Call) AddResourceBlob(uri, mime string, data []byte) error {
	var st C.mcpp_status
	ran := c.use(func() {
		p, n := bytesPtr(data)
		st = C.shim_add_resource_blob(c.host, c.call, uri, mime, p, n)
	})
	return c.status("add_resource_blob", st, ran)
}

// AddContentJSON appends a content block given as JSON text (mcpp_host.add_content_json).
func (c *Call) AddContentJSON(json string) error {
	var st C.mcpp_status
	ran := c.use(func() { st = C.shim_add_content_json(c.host, c.call, json) })
	return c.status("add_content_json", st, ran)
}

// SetStructured sets structuredContent, a JSON object as text (mcpp_host.set_structured).
func (c *Call) SetStructured(json string) error {
	var st C.mcpp_status
	ran := c.use(func() { st = C.shim_set_structured(c.host, c.call, json) })
	return c.status("set_structured", st, ran)
}

// Progress reports progress; total < 0 = unknown. Dropped when the client did not ask (mcpp_host.progress).
func (c *Call) Progress(progress, total float64, msg string) error {
	var st C.mcpp_status
	ran := c.use(func() { st = C.shim_progress(c.host, c.call, C.double(progress), C.double(total), msg) })
	return c.status("progress", st, ran)
}

// Log sends a log message related to this call (mcpp_host.call_log).
func (c *Call) Log(level LogLevel, msg string) error {
	var st C.mcpp_status
	ran := c.use(func() { st = C.shim_call_log(c.host, c.call, C.int32_t(level), msg) })
	return c.status("call_log", st, ran)
}

// Cancelled reports whether the client cancelled, disconnected or the deadline passed (mcpp_host.is_cancelled).
// Cheap: poll it in loops. True once the call is finished.
func (c *Call) Cancelled() bool {
	var v C.int32_t = 1
	c.use(func() { v = C.shim_is_cancelled(c.host, c.call) })
	return v != 0
}

// SetRole sets the role of the prompt messages added next (prompts/get; default user). mcpp_host.set_role
func (c *Call) SetRole(role Role) error {
	var st C.mcpp_status
	ran := c.use(func() { st = C.shim_set_role(c.host, c.call, C.int32_t(role)) })
	return c.status("set_role", st, ran)
}

// SetDescription sets the prompts/get result's description. mcpp_host.set_description
func (c *Call) SetDescription(text string) error {
	var st C.mcpp_status
	ran := c.use(func() { st = C.shim_set_description(c.host, c.call, text) })
	return c.status("set_description", st, ran)
}

// AddCompletion adds one completion value (the host keeps the first 100). mcpp_host.add_completion. A
// Completer's returned values are added by the kit; use this only for values you add yourself.
func (c *Call) AddCompletion(value string) error {
	var st C.mcpp_status
	ran := c.use(func() { st = C.shim_add_completion(c.host, c.call, value) })
	return c.status("add_completion", st, ran)
}

// SetCompletionInfo reports the total number of values (-1 unknown) and whether more exist; the kit then does
// not report its own count. mcpp_host.set_completion_info
func (c *Call) SetCompletionInfo(total int64, hasMore bool) error {
	more := C.int32_t(0)
	if hasMore {
		more = 1
	}
	var st C.mcpp_status
	ran := c.use(func() { st = C.shim_set_completion_info(c.host, c.call, C.int64_t(total), more) })
	c.completionInfo.Store(true)
	return c.status("set_completion_info", st, ran)
}

// ---------------------------------------------------------------------------------------------------------
// ABI 1.1: asking the client, state across attempts, cache hints, JSON pointers.
// ---------------------------------------------------------------------------------------------------------

// need11 reports a 1.1 function the host table lacks, naming it and the table.
func (c *Call) need11(which C.int, name string) error {
	if C.shim_has_11(c.host, which) != 0 {
		return nil
	}
	var size, minor uint32
	if c.host != nil {
		size, minor = uint32(c.host.struct_size), uint32(c.host.abi_minor)
	}
	return Internal("the host does not implement mcpp_host.%s (ABI 1.1; its table has struct_size %d, abi_minor %d)",
		name, size, minor)
}

// inputResult is what the host's callback hands the waiting handler.
type inputResult struct {
	status InputStatus
	answer string
}

// Answer is the client's answer to an input request: JSON is its result as JSON text (an ElicitResult
// {"action", "content"}, a CreateMessageResult {"role", "content", "model"}, {"roots": [...]}). Read it with
// Get/String/Bool/Float (mcpp_host.json_get, RFC 6901 pointers) while the call is live, or with Unmarshal.
type Answer struct {
	Kind InputKind
	JSON string
	c    *Call
}

// Get returns the value at an RFC 6901 pointer ("/content/confirm"; "" = the whole answer); ErrNoValue when it
// leads nowhere. mcpp_host.json_get
func (a Answer) Get(pointer string) (JSONValue, error) {
	if a.c == nil {
		return JSONValue{}, ErrNoValue
	}
	return a.c.JSONGet(a.JSON, pointer)
}

// String returns the string at pointer; false when absent or of another type.
func (a Answer) String(pointer string) (string, bool) {
	v, err := a.Get(pointer)
	if err != nil || v.Type != JSONString {
		return "", false
	}
	return v.Text, true
}

// Bool returns the boolean at pointer; false, false when absent or of another type.
func (a Answer) Bool(pointer string) (value bool, ok bool) {
	v, err := a.Get(pointer)
	if err != nil || v.Type != JSONBool {
		return false, false
	}
	return v.Text == "true", true
}

// Float returns the number at pointer; false when absent or of another type.
func (a Answer) Float(pointer string) (float64, bool) {
	v, err := a.Get(pointer)
	if err != nil || v.Type != JSONNumber {
		return 0, false
	}
	f, err := strconv.ParseFloat(v.Text, 64)
	return f, err == nil
}

// Unmarshal decodes the whole answer with encoding/json.
func (a Answer) Unmarshal(v any) error { return json.Unmarshal([]byte(a.JSON), v) }

// ErrNoValue: the JSON pointer leads nowhere (Call.JSONGet, Answer.Get).
var ErrNoValue = errors.New("no value at that JSON pointer")

func (c *Call) nextKey(prefix string) string {
	return prefix + "-" + strconv.FormatUint(uint64(c.asked.Add(1)), 10)
}

// Elicit asks the user (elicitation/create in form mode): message and requestedSchema (a JSON Schema object as
// text; "" = no fields). It blocks this goroutine until the client answers; the handler must be Interactive.
// The key is automatic ("elicit-N", numbering the call's requests in order), so ask in the same order in every
// attempt: in 2026-07-28 sessions the first attempt ends here with an error matching ErrSuspended (the kit has
// finished the call; return the error), the client retries the whole request, the handler runs again from the
// start and this same request is then answered. Ask before you act.
func (c *Call) Elicit(message, requestedSchema string) (Answer, error) {
	msg, _ := json.Marshal(message)
	if requestedSchema == "" {
		requestedSchema = `{"type":"object","properties":{}}`
	}
	return c.Ask(InputElicitation, c.nextKey("elicit"), `{"message":`+string(msg)+`,"requestedSchema":`+requestedSchema+`}`)
}

// Sample asks the client's model (sampling/createMessage) with one user message. See Elicit.
func (c *Call) Sample(prompt string, maxTokens int) (Answer, error) {
	text, _ := json.Marshal(prompt)
	return c.Ask(InputSampling, c.nextKey("sample"),
		`{"messages":[{"role":"user","content":{"type":"text","text":`+string(text)+`}}],"maxTokens":`+
			strconv.Itoa(maxTokens)+`}`)
}

// Roots asks the client for its roots (roots/list); the answer is {"roots": [{"uri", "name"}]}. See Elicit.
func (c *Call) Roots() (Answer, error) { return c.Ask(InputRoots, c.nextKey("roots"), "") }

// Ask makes any input request (mcpp_host.request_input) with your own key (unique within the call, the same in
// every attempt) and params object as JSON text ("" for roots), and waits for its end. Errors: an *InputError
// (match ErrSuspended, ErrRefused, ErrUnsupported, ErrInputCancelled), ErrNotInteractive, ErrFinished, or an
// internal error when the host refused the request.
func (c *Call) Ask(kind InputKind, key, params string) (Answer, error) {
	if !c.interactive {
		return Answer{}, ErrNotInteractive
	}
	if err := c.need11(C.GOMCPP_REQUEST_INPUT, "request_input"); err != nil {
		return Answer{}, err
	}
	ch := make(chan inputResult, 1) // the callback never blocks
	h := cgo.NewHandle(ch)
	inputHandles.Add(1)
	var st C.mcpp_status
	ran := c.use(func() {
		st = C.shim_request_input(c.host, c.call, C.int32_t(kind), key, params, C.uintptr_t(h))
	})
	if !ran || st != C.MCPP_OK { // no callback will come
		h.Delete()
		inputHandles.Add(-1)
		switch {
		case !ran || Status(st) == StatusFinished:
			return Answer{}, ErrFinished
		case Status(st) == StatusCancelled:
			return Answer{}, &InputError{Kind: kind, Status: InputCancelled, noun: c.kind.noun()}
		}
		return Answer{}, Internal("could not ask the client (request_input returned status %d)", int32(st))
	}
	waitingForInput.Add(1)
	c.releaseSerial() // other handlers of a Serial plugin may run while the user thinks
	r := <-ch
	c.acquireSerial()
	waitingForInput.Add(-1)
	switch r.status {
	case InputAnswered:
		return Answer{Kind: kind, JSON: r.answer, c: c}, nil
	case InputSuspended:
		// 2026-07-28: the host answers this attempt with input_required, whatever the outcome.
		c.finish(OutcomeOK, "")
		return Answer{}, &InputError{Kind: kind, Status: InputSuspended, noun: c.kind.noun()}
	case InputRefused:
		e := &InputError{Kind: kind, Status: InputRefused, noun: c.kind.noun()}
		if v, err := c.JSONGet(r.answer, "/message"); err == nil && v.Type == JSONString {
			e.Message = v.Text
		}
		if v, err := c.JSONGet(r.answer, "/code"); err == nil && v.Type == JSONNumber {
			e.Code, _ = strconv.ParseInt(v.Text, 10, 64)
		}
		return Answer{}, e
	case InputUnsupported:
		return Answer{}, &InputError{Kind: kind, Status: InputUnsupported, noun: c.kind.noun()}
	}
	return Answer{}, &InputError{Kind: kind, Status: InputCancelled, noun: c.kind.noun()}
}

// deliverInput is the host's callback: exactly once per accepted request, on a host thread. Never blocks.
func deliverInput(user uintptr, status int32, answer string) {
	h := cgo.Handle(user)
	ch, _ := h.Value().(chan inputResult)
	h.Delete()
	inputHandles.Add(-1)
	if ch != nil {
		ch <- inputResult{status: InputStatus(status), answer: answer}
	}
}

// SetRequestState sets bytes the retry of this call gets back (2026-07-28; at most 64 KiB, sealed by the host).
// mcpp_host.set_request_state
func (c *Call) SetRequestState(state []byte) error {
	if err := c.need11(C.GOMCPP_SET_REQUEST_STATE, "set_request_state"); err != nil {
		return err
	}
	var st C.mcpp_status
	ran := c.use(func() {
		p, n := bytesPtr(state)
		st = C.shim_set_request_state(c.host, c.call, p, n)
	})
	return c.status("set_request_state", st, ran)
}

// RequestState returns (a copy of) what the attempt this one retries set; false on a first attempt.
// mcpp_host.get_request_state
func (c *Call) RequestState() ([]byte, bool) {
	if c.need11(C.GOMCPP_GET_REQUEST_STATE, "get_request_state") != nil {
		return nil, false
	}
	var p *C.uint8_t
	var n C.size_t
	var st C.mcpp_status
	var out []byte
	ran := c.use(func() {
		st = C.shim_get_request_state(c.host, c.call, &p, &n)
		if st == C.MCPP_OK {
			out = C.GoBytes(unsafe.Pointer(p), C.int(n))
		}
	})
	return out, ran && st == C.MCPP_OK
}

// SetCache sets the cache hint of a resources/read result (2026-07-28 ttlMs and cacheScope). mcpp_host.set_cache
func (c *Call) SetCache(ttl time.Duration, scope CacheScope) error {
	if err := c.need11(C.GOMCPP_SET_CACHE, "set_cache"); err != nil {
		return err
	}
	var st C.mcpp_status
	ran := c.use(func() { st = C.shim_set_cache(c.host, c.call, C.int64_t(ttl.Milliseconds()), C.int32_t(scope)) })
	return c.status("set_cache", st, ran)
}

// JSONGet reads the value at an RFC 6901 pointer out of JSON text ("" = the whole text), copied; ErrNoValue when
// the pointer leads nowhere. mcpp_host.json_get
func (c *Call) JSONGet(jsonText, pointer string) (JSONValue, error) {
	if err := c.need11(C.GOMCPP_JSON_GET, "json_get"); err != nil {
		return JSONValue{}, err
	}
	var typ C.int32_t
	var p *C.char
	var n C.size_t
	var st C.mcpp_status
	var v JSONValue
	ran := c.use(func() {
		st = C.shim_json_get(c.host, c.call, jsonText, pointer, &typ, &p, &n)
		if st == C.MCPP_OK {
			v = JSONValue{Type: JSONType(typ), Text: goString(p, n)}
		}
	})
	switch {
	case !ran:
		return JSONValue{}, ErrFinished
	case st == C.MCPP_E_NOT_FOUND:
		return JSONValue{}, ErrNoValue
	case st != C.MCPP_OK:
		return JSONValue{}, Internal("json_get failed (status %d): not JSON text?", int32(st))
	}
	return v, nil
}

// describeTools declares every tool through the registry (mcpp_registry.add_tool; the host copies).
func describeTools(reg *C.mcpp_registry, tools []Tool) C.mcpp_status {
	for i := range tools {
		t := &tools[i]
		var flags C.uint32_t
		if t.NonBlocking {
			flags |= C.MCPP_TOOL_NONBLOCKING
		}
		st := C.shim_add_tool(reg, flags, t.Name, t.Title, t.Description, t.InputSchema, t.OutputSchema, t.Annotations)
		if st != C.MCPP_OK {
			return st
		}
	}
	return C.MCPP_OK
}

// describeRest declares resources, templates, prompts and the list cache hints.
func describeRest(reg *C.mcpp_registry, p *Plugin) C.mcpp_status {
	for i := range p.Resources {
		r := &p.Resources[i]
		size := C.int64_t(-1)
		if r.Size > 0 {
			size = C.int64_t(r.Size)
		}
		if st := C.shim_add_resource(reg, r.URI, r.Name, r.Title, r.Description, r.MIMEType, size); st != C.MCPP_OK {
			return st
		}
	}
	for i := range p.ResourceTemplates {
		t := &p.ResourceTemplates[i]
		if st := C.shim_add_resource_template(reg, t.URITemplate, t.Name, t.Title, t.Description, t.MIMEType); st != C.MCPP_OK {
			return st
		}
	}
	for i := range p.Prompts {
		pr := &p.Prompts[i]
		n := C.uint32_t(len(pr.Args))
		args := C.shim_args_new(n)
		for j, a := range pr.Args {
			flags := C.uint32_t(0)
			if a.Required {
				flags = C.MCPP_ARG_REQUIRED
			}
			if args != nil {
				C.shim_args_set(args, C.uint32_t(j), flags, a.Name, a.Title, a.Description)
			}
		}
		st := C.shim_add_prompt(reg, pr.Name, pr.Title, pr.Description, args, n)
		C.shim_args_free(args, n)
		if st != C.MCPP_OK {
			return st
		}
	}
	if len(p.ListCache) > 0 {
		if C.shim_has_list_cache(reg) == 0 {
			logf(LogWarning, "mcpplugin: the host's registry has no set_list_cache (ABI 1.1): list cache hints dropped")
			return C.MCPP_OK
		}
		for _, lc := range p.ListCache {
			st := C.shim_set_list_cache(reg, C.uint32_t(lc.Lists), C.int64_t(lc.TTL.Milliseconds()), C.int32_t(lc.Scope))
			if st != C.MCPP_OK {
				return st
			}
		}
	}
	return C.MCPP_OK
}

// diagnoseReport is the kit's part of mcpp_plugin.diagnose.
func diagnoseReport() string {
	return fmt.Sprintf(`{"kit":"mcpplugin","calls_in_flight":%d,"handler_goroutines":%d,"input_handles":%d,`+
		`"waiting_for_input":%d}`, callsInFlight(), handlerGoroutines.Load(), inputHandles.Load(), waitingForInput.Load())
}
