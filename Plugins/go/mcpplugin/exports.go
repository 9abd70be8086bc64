package mcpplugin

// The Go side of the calls *from the host*. entry.c holds the static mcpp_plugin table whose function
// pointers are small C thunks; each thunk calls one of the //export functions below:
//
//	mcpp_negotiate_v1 (C, entry.c)  first call only: gomcpp_fill_table (name, version, threading, ...)
//	mcpp_plugin.create              gomcpp_create        [main]
//	mcpp_plugin.destroy             gomcpp_destroy       [main]
//	mcpp_plugin.describe            gomcpp_describe      [main]
//	mcpp_plugin.call_tool           gomcpp_call_tool     [handler] on a host worker (or network) thread
//	mcpp_plugin.read_resource       gomcpp_read_resource [handler]
//	mcpp_plugin.get_prompt          gomcpp_get_prompt    [handler]
//	mcpp_plugin.complete            gomcpp_complete      [handler]
//	mcpp_plugin.cancel              gomcpp_cancel        [any, must not block]
//	mcpp_plugin.health              gomcpp_health        [any]
//	mcpp_plugin.diagnose            gomcpp_diagnose      [any, must not block]
//	mcpp_input_callback (1.1)       gomcpp_input_callback, on a host handler thread
//
// Interactive handlers run in a goroutine of their own: the export starts it and returns at once.
//
// Every one of them recovers: a Go panic never unwinds into C (that would crash the host).
// The exports are named gomcpp_* (never mcpp_*); Plugins/go/build.sh links with exports.map so that the
// shared object's dynamic symbol table holds nothing but mcpp_negotiate_v1.
//
// (A file with //export may only have declarations in its preamble: the definitions are in call.go.)

/*
#include "mcp_plugin.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync/atomic"
	"time"
)

// Crashes that no recover can catch (a panic in a goroutine of your own, a fatal runtime error such as
// "concurrent map writes") need nothing from the kit: in a c-shared library the Go runtime adds "crash" to
// GOTRACEBACK, so it prints its traceback and raises SIGABRT, which it leaves to the host's handler. The host
// then reports "plugin crashed with SIGABRT ... during <call>" and exits 70, as for a C plugin, and the
// supervisor restarts it (Tests/integration/test_go_plugin.py checks this).

// instance is what mcpp_plugin.create returns, as a cgo.Handle: C holds an integer, never a Go pointer.
type instance struct {
	host      *Host
	plugin    *Plugin
	tools     map[string]*Tool
	resources map[string]*Resource
	templates map[string]*ResourceTemplate
	prompts   map[string]*Prompt
}

// hostTable is the mcpp_host pointer create() received (static for the life of the process), kept apart from
// the instance so that a call can still be finished when the instance handle is unusable.
var hostTable atomic.Pointer[C.mcpp_host]

func instanceOf(h C.uintptr_t) *instance { return cgo.Handle(h).Value().(*instance) }

func logf(level LogLevel, format string, a ...any) {
	if h := hostTable.Load(); h != nil {
		(&Host{h}).Log(level, fmt.Sprintf(format, a...))
	}
}

// cString copies s into C memory that is never freed: the plugin table is static for the life of the process.
func cString(s string) C.mcpp_str {
	if s == "" {
		return C.mcpp_str{}
	}
	return C.mcpp_str{ptr: (*C.char)(C.CBytes([]byte(s))), len: C.size_t(len(s))}
}

// Features gomcpp_fill_table reports, so that entry.c sets only the table entries the plugin uses.
const (
	featureResources   = 1
	featurePrompts     = 2
	featureCompletions = 4
)

//export gomcpp_fill_table
func gomcpp_fill_table(t *C.mcpp_plugin) (features C.uint32_t) {
	defer func() { recover() }() // nothing to report to yet; the table keeps its defaults
	p, err := registration()
	if p == nil {
		t.name = cString("unregistered-go-plugin") // create() reports the error
		t.version = cString("0")
		return 0
	}
	_ = err
	if len(p.Resources) > 0 || len(p.ResourceTemplates) > 0 {
		features |= featureResources
	}
	if len(p.Prompts) > 0 {
		features |= featurePrompts
	}
	for i := range p.Prompts {
		if p.Prompts[i].Complete != nil {
			features |= featureCompletions
		}
	}
	for i := range p.ResourceTemplates {
		if p.ResourceTemplates[i].Complete != nil {
			features |= featureCompletions
		}
	}
	t.threading = C.MCPP_THREADING_CONCURRENT
	if p.Serial {
		t.threading = C.MCPP_THREADING_SERIAL
	}
	t.max_concurrency = C.uint32_t(p.MaxConcurrency)
	t.name = cString(p.Name)
	t.version = cString(p.Version)
	t.title = cString(p.Title)
	t.instructions = cString(p.Instructions)
	return features
}

// panicText is "<value> (at file:line)" for the frame that panicked (runtime frames skipped).
func panicText(r any) (msg, where string) {
	msg = fmt.Sprint(r)
	pcs := make([]uintptr, 32)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "runtime.") && !strings.Contains(f.Function, "/mcpplugin.") && f.File != "" {
			where = fmt.Sprintf("%s:%d", f.File, f.Line)
			break
		}
		if !more {
			break
		}
	}
	return msg, where
}

//export gomcpp_create
func gomcpp_create(host *C.mcpp_host, config *C.char, configLen C.size_t, errw *C.mcpp_writer,
	out *C.uintptr_t) (status C.mcpp_status) {
	defer func() {
		if r := recover(); r != nil {
			msg, where := panicText(r)
			writeTo(errw, fmt.Sprintf("create panicked at %s: %s", where, msg))
			status = C.MCPP_E_FAILED
		}
	}()
	hostTable.Store(host)
	// The Go runtime opens its poller (an epoll descriptor and a pipe) lazily, with the first timer (time.Sleep,
	// time.After, a context deadline). Start it here, on the control thread during create, so that the
	// descriptors exist before the host starts serving instead of appearing in the middle of the first call
	// (the host's descriptor accounting, and a box that is stricter later, see them at a predictable moment).
	time.NewTimer(time.Hour).Stop()
	p, err := registration()
	if err != nil {
		writeTo(errw, err.Error())
		return C.MCPP_E_FAILED
	}
	h := &Host{host}
	if p.Create != nil {
		if err := p.Create(h, goString(config, configLen)); err != nil {
			writeTo(errw, err.Error())
			return C.MCPP_E_FAILED
		}
	}
	in := &instance{host: h, plugin: p, tools: map[string]*Tool{}, resources: map[string]*Resource{},
		templates: map[string]*ResourceTemplate{}, prompts: map[string]*Prompt{}}
	for i := range p.Tools {
		in.tools[p.Tools[i].Name] = &p.Tools[i]
	}
	for i := range p.Resources {
		in.resources[p.Resources[i].URI] = &p.Resources[i]
	}
	for i := range p.ResourceTemplates {
		in.templates[p.ResourceTemplates[i].URITemplate] = &p.ResourceTemplates[i]
	}
	for i := range p.Prompts {
		in.prompts[p.Prompts[i].Name] = &p.Prompts[i]
	}
	*out = C.uintptr_t(cgo.NewHandle(in))
	return C.MCPP_OK
}

//export gomcpp_destroy
func gomcpp_destroy(inst C.uintptr_t) {
	defer func() {
		if r := recover(); r != nil {
			msg, where := panicText(r)
			logf(LogError, "mcpplugin: Destroy panicked at %s: %s", where, msg)
		}
	}()
	h := cgo.Handle(inst)
	in := h.Value().(*instance)
	h.Delete()
	if in.plugin.Destroy != nil {
		in.plugin.Destroy()
	}
}

//export gomcpp_describe
func gomcpp_describe(inst C.uintptr_t, reg *C.mcpp_registry) (status C.mcpp_status) {
	defer func() {
		if r := recover(); r != nil {
			msg, where := panicText(r)
			logf(LogError, "mcpplugin: describe panicked at %s: %s", where, msg)
			status = C.MCPP_E_FAILED
		}
	}()
	p := instanceOf(inst).plugin
	if st := describeTools(reg, p.Tools); st != C.MCPP_OK {
		return st
	}
	return describeRest(reg, p)
}

//export gomcpp_health
func gomcpp_health(inst C.uintptr_t, detail *C.mcpp_writer) (status C.mcpp_status) {
	defer func() {
		if r := recover(); r != nil {
			msg, _ := panicText(r)
			writeTo(detail, "Health panicked: "+msg)
			status = C.MCPP_E_FAILED
		}
	}()
	in := instanceOf(inst)
	if in.plugin.Health == nil {
		writeTo(detail, "ok")
		return C.MCPP_OK
	}
	if err := in.plugin.Health(); err != nil {
		writeTo(detail, err.Error())
		return C.MCPP_E_FAILED
	}
	writeTo(detail, "ok")
	return C.MCPP_OK
}

//export gomcpp_diagnose
func gomcpp_diagnose(inst C.uintptr_t, report *C.mcpp_writer) (status C.mcpp_status) {
	defer func() {
		if r := recover(); r != nil {
			status = C.MCPP_E_FAILED
		}
	}()
	writeTo(report, diagnoseReport())
	return C.MCPP_OK
}

// outcomeOf maps a handler's error to the finish() outcome and message.
func outcomeOf(err error) (Outcome, string) {
	if err == nil {
		return OutcomeOK, ""
	}
	var ie *InputError
	if errors.As(err, &ie) {
		switch ie.Status {
		case InputSuspended:
			return OutcomeOK, "" // the kit finished the call already; this is a no-op
		case InputRefused:
			return OutcomeToolError, ie.Error()
		case InputUnsupported:
			return OutcomeNeedsCapability, ie.Error()
		}
		return OutcomeInternal, ie.Error()
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Outcome, e.Message
	}
	var se *StatusError
	if errors.As(err, &se) {
		switch se.Status {
		case StatusCancelled:
			return OutcomeOK, "" // the host discards the output; finish is still required
		case StatusTooLarge:
			return OutcomeInternal, "the result is too large"
		}
		return OutcomeInternal, "could not build the result (" + se.Error() + ")"
	}
	return OutcomeToolError, err.Error()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// newCall makes the Call for a handle the host passed and remembers it (mcpp_plugin.cancel looks it up).
func newCall(in *instance, call *C.mcpp_call, kind callKind, name string) *Call {
	c := &Call{host: in.host.h, call: call, kind: kind, name: name, serial: in.plugin.Serial}
	rememberCall(c)
	return c
}

// dispatch runs body for c: on this host thread, or (interactive) in a goroutine of its own while the host's
// handler returns at once. Either way: the panic is recovered, the call finished exactly once, a Serial plugin's
// lock held while body runs, and the goroutine (if any) ends with body.
func dispatch(c *Call, interactive bool, what string, body func() error) {
	if !interactive {
		runBody(c, what, body)
		return
	}
	c.interactive = true
	handlerGoroutines.Add(1) // down again in runBody, just before the call is finished
	go runBody(c, what, body)
}

func runBody(c *Call, what string, body func() error) {
	returned := false
	var err error
	defer func() {
		outcome, msg := outcomeOf(err)
		if r := recover(); r != nil {
			text, where := panicText(r)
			logf(LogError, "mcpplugin: %s panicked at %s: %s", what, where, text)
			outcome, msg = OutcomeInternal, fmt.Sprintf("%s panicked: %s", what, text)
		} else if !returned {
			outcome, msg = OutcomeInternal, fmt.Sprintf("%s did not return (panic(nil) or runtime.Goexit)", what)
		}
		c.releaseSerial()
		if c.interactive {
			// Counted as ended before the call is: whoever sees the finish sees no handler goroutine of it left
			// that does anything but return.
			handlerGoroutines.Add(-1)
		}
		c.finish(outcome, msg) // exactly once: a no-op if the call was finished already (a suspended request)
	}()
	c.acquireSerial()
	err = body()
	returned = true
}

//export gomcpp_call_tool
func gomcpp_call_tool(inst C.uintptr_t, call *C.mcpp_call, name *C.char, nameLen C.size_t) {
	tool := goString(name, nameLen) // borrowed until finish: copied
	var c *Call
	defer func() { // a failure before dispatch (a bad instance handle): still finish the call
		if r := recover(); r != nil {
			msg, where := panicText(r)
			logf(LogError, "mcpplugin: tool '%s' panicked at %s: %s", tool, where, msg)
			if c == nil {
				c = &Call{host: hostTable.Load(), call: call}
			}
			c.finish(OutcomeInternal, fmt.Sprintf("tool '%s' panicked: %s", tool, msg))
		}
	}()
	in := instanceOf(inst)
	c = newCall(in, call, kindTool, tool)
	t := in.tools[tool]
	if t == nil || t.Handler == nil {
		c.finish(OutcomeNotFound, fmt.Sprintf("unknown tool '%s'", truncate(tool, 100)))
		return
	}
	dispatch(c, t.Interactive, fmt.Sprintf("tool '%s'", tool), func() error { return t.Handler(c) })
}

//export gomcpp_read_resource
func gomcpp_read_resource(inst C.uintptr_t, call *C.mcpp_call, uri *C.char, uriLen C.size_t, tmpl *C.char,
	tmplLen C.size_t) {
	u, t := goString(uri, uriLen), goString(tmpl, tmplLen)
	var c *Call
	defer func() {
		if r := recover(); r != nil {
			msg, _ := panicText(r)
			if c == nil {
				c = &Call{host: hostTable.Load(), call: call}
			}
			c.finish(OutcomeInternal, "resources/read panicked: "+msg)
		}
	}()
	in := instanceOf(inst)
	c = newCall(in, call, kindResource, u)
	if t == "" {
		r := in.resources[u]
		if r == nil || r.Handler == nil {
			c.finish(OutcomeNotFound, fmt.Sprintf("unknown resource '%s'", truncate(u, 200)))
			return
		}
		dispatch(c, r.Interactive, fmt.Sprintf("resource '%s'", truncate(u, 200)), func() error { return r.Handler(c, u) })
		return
	}
	rt := in.templates[t]
	if rt == nil || rt.Handler == nil {
		c.finish(OutcomeNotFound, fmt.Sprintf("unknown resource template '%s'", truncate(t, 200)))
		return
	}
	dispatch(c, rt.Interactive, fmt.Sprintf("resource template '%s'", truncate(t, 200)),
		func() error { return rt.Handler(c, u) })
}

//export gomcpp_get_prompt
func gomcpp_get_prompt(inst C.uintptr_t, call *C.mcpp_call, name *C.char, nameLen C.size_t) {
	n := goString(name, nameLen)
	var c *Call
	defer func() {
		if r := recover(); r != nil {
			msg, _ := panicText(r)
			if c == nil {
				c = &Call{host: hostTable.Load(), call: call}
			}
			c.finish(OutcomeInternal, "prompts/get panicked: "+msg)
		}
	}()
	in := instanceOf(inst)
	c = newCall(in, call, kindPrompt, n)
	p := in.prompts[n]
	if p == nil || p.Handler == nil {
		c.finish(OutcomeNotFound, fmt.Sprintf("unknown prompt '%s'", truncate(n, 100)))
		return
	}
	dispatch(c, p.Interactive, fmt.Sprintf("prompt '%s'", truncate(n, 100)), func() error { return p.Handler(c) })
}

//export gomcpp_complete
func gomcpp_complete(inst C.uintptr_t, call *C.mcpp_call, refKind C.int32_t, ref *C.char, refLen C.size_t,
	arg *C.char, argLen C.size_t, value *C.char, valueLen C.size_t) {
	r, a, v := goString(ref, refLen), goString(arg, argLen), goString(value, valueLen)
	var c *Call
	defer func() {
		if p := recover(); p != nil {
			msg, _ := panicText(p)
			if c == nil {
				c = &Call{host: hostTable.Load(), call: call}
			}
			c.finish(OutcomeInternal, "completion/complete panicked: "+msg)
		}
	}()
	in := instanceOf(inst)
	c = newCall(in, call, kindCompletion, r)
	var fn Completer
	found := false
	switch refKind {
	case C.MCPP_REF_PROMPT:
		if p := in.prompts[r]; p != nil {
			fn, found = p.Complete, true
		}
	case C.MCPP_REF_RESOURCE_TEMPLATE:
		if t := in.templates[r]; t != nil {
			fn, found = t.Complete, true
		}
	}
	if !found {
		c.finish(OutcomeNotFound, fmt.Sprintf("nothing to complete for '%s'", truncate(r, 200)))
		return
	}
	dispatch(c, false, fmt.Sprintf("the completer of '%s'", truncate(r, 200)), func() error {
		var values []string
		if fn != nil {
			var err error
			if values, err = fn(c, a, v); err != nil {
				return err
			}
		}
		for _, value := range values {
			if err := c.AddCompletion(value); err != nil {
				return err
			}
		}
		if !c.completionInfo.Load() {
			return c.SetCompletionInfo(int64(len(values)), len(values) > 100)
		}
		return nil
	})
}

//export gomcpp_cancel
func gomcpp_cancel(inst C.uintptr_t, call *C.mcpp_call) {
	defer func() { recover() }()
	if c := lookupCall(call); c != nil {
		c.endContext() // closes Done(); the handler still finishes the call (the kit does, when it returns)
	}
}

//export gomcpp_input_callback
func gomcpp_input_callback(user C.uintptr_t, call *C.mcpp_call, status C.int32_t, answer *C.char, answerLen C.size_t) {
	defer func() {
		if r := recover(); r != nil {
			msg, _ := panicText(r)
			logf(LogError, "mcpplugin: input callback panicked: %s", msg)
		}
	}()
	deliverInput(uintptr(user), int32(status), goString(answer, answerLen)) // borrowed for the callback: copied
}
