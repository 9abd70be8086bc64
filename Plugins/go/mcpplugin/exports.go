package mcpplugin

// The Go side of the calls *from the host*. entry.c holds the static mcpp_plugin table whose function
// pointers are small C thunks; each thunk calls one of the //export functions below:
//
//	mcpp_negotiate_v1 (C, entry.c)  first call only: gomcpp_fill_table (name, version, threading, ...)
//	mcpp_plugin.create              gomcpp_create        [main]
//	mcpp_plugin.destroy             gomcpp_destroy       [main]
//	mcpp_plugin.describe            gomcpp_describe      [main]
//	mcpp_plugin.call_tool           gomcpp_call_tool     [handler] on a host worker (or network) thread
//	mcpp_plugin.health              gomcpp_health        [any]
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
	host   *Host
	plugin *Plugin
	tools  map[string]*Tool
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

//export gomcpp_fill_table
func gomcpp_fill_table(t *C.mcpp_plugin) {
	defer func() { recover() }() // nothing to report to yet; the table keeps its defaults
	p, err := registration()
	if p == nil {
		t.name = cString("unregistered-go-plugin") // create() reports the error
		t.version = cString("0")
		return
	}
	_ = err
	t.threading = C.MCPP_THREADING_CONCURRENT
	if p.Serial {
		t.threading = C.MCPP_THREADING_SERIAL
	}
	t.max_concurrency = C.uint32_t(p.MaxConcurrency)
	t.name = cString(p.Name)
	t.version = cString(p.Version)
	t.title = cString(p.Title)
	t.instructions = cString(p.Instructions)
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
	in := &instance{host: h, plugin: p, tools: make(map[string]*Tool, len(p.Tools))}
	for i := range p.Tools {
		in.tools[p.Tools[i].Name] = &p.Tools[i]
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
	return describeTools(reg, instanceOf(inst).plugin.Tools)
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

// outcomeOf maps a handler's error to the finish() outcome and message.
func outcomeOf(err error) (Outcome, string) {
	if err == nil {
		return OutcomeOK, ""
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

//export gomcpp_call_tool
func gomcpp_call_tool(inst C.uintptr_t, call *C.mcpp_call, name *C.char, nameLen C.size_t) {
	c := &Call{host: hostTable.Load(), call: call}
	returned := false
	defer func() {
		if r := recover(); r != nil {
			msg, where := panicText(r)
			logf(LogError, "mcpplugin: tool '%s' panicked at %s: %s", c.tool, where, msg)
			c.finish(OutcomeInternal, fmt.Sprintf("tool '%s' panicked: %s", c.tool, msg))
		} else if !returned {
			c.finish(OutcomeInternal, fmt.Sprintf("tool '%s' did not return (panic(nil) or runtime.Goexit)", c.tool))
		}
		// Exactly once: every path above finished already; finish is a no-op the second time.
	}()
	c.tool = goString(name, nameLen) // borrowed until finish: copied
	in := instanceOf(inst)
	c.host = in.host.h
	t := in.tools[c.tool]
	if t == nil || t.Handler == nil {
		c.finish(OutcomeNotFound, fmt.Sprintf("unknown tool '%s'", truncate(c.tool, 100)))
		returned = true
		return
	}
	err := t.Handler(c)
	returned = true
	c.finish(outcomeOf(err))
}
