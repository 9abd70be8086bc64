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
*/
import "C"

import (
	"sync"
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

// Call is the tools/call request a handler answers. Its methods are safe to use from several goroutines
// while the handler runs; once the handler returned (and the kit called finish) they return ErrFinished.
type Call struct {
	host *C.mcpp_host
	call *C.mcpp_call // opaque host handle (C memory)
	tool string

	mu   sync.RWMutex // readers: host calls on the handle; writer: finish
	done bool
}

// Tool is the name of the tool being called.
func (c *Call) Tool() string { return c.tool }

// Host is the host table, e.g. for Host().Log.
func (c *Call) Host() *Host { return &Host{c.host} }

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
	defer c.mu.Unlock()
	if c.done {
		return false
	}
	c.done = true
	C.shim_finish(c.host, c.call, C.int32_t(outcome), msg)
	return true
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
