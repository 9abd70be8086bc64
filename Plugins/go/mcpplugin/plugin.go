// Package mcpplugin writes an mcp-plugin-host plugin in Go (std + cgo only).
//
// The host owns the Model Context Protocol; a plugin declares tools and answers calls through the C ABI of
// Sources/PluginABI/include/mcp_plugin.h (ABI 1.0). This package is that ABI for Go:
//
//	mcpplugin.Register(mcpplugin.Plugin{...})  in an init()   ->  the static mcpp_plugin table (entry.c)
//	Plugin.Name/Version/Title/Instructions                      ->  mcpp_plugin.name/version/title/instructions
//	Plugin.Serial / MaxConcurrency                              ->  mcpp_plugin.threading / max_concurrency
//	Plugin.Create(host, config)                                 ->  mcpp_plugin.create
//	Plugin.Destroy()                                            ->  mcpp_plugin.destroy
//	Plugin.Tools ([]Tool)                                       ->  mcpp_plugin.describe -> mcpp_registry.add_tool
//	Tool.Handler(*Call) error                                   ->  mcpp_plugin.call_tool, then mcpp_host.finish
//	Plugin.Health() error                                       ->  mcpp_plugin.health
//	Call.String/Int/Float/Bool/JSON                             ->  mcpp_host.arg_string/arg_int/arg_double/...
//	Call.AddText/AddImage/SetStructured/...                     ->  mcpp_host.add_text/add_image/set_structured/...
//	Call.Progress/Log/Cancelled                                 ->  mcpp_host.progress/call_log/is_cancelled
//	Host.Log/NotifyListChanged                                  ->  mcpp_host.log/notify_list_changed
//
// The entry point mcpp_negotiate_v1 is written in C (entry.c) and behaves exactly like MCPP_DEFINE_ENTRY; it
// is the only mcpp_* symbol of the shared object. Resources, prompts, completions, cancel and extensions are
// not wrapped yet: their table entries are NULL ("feature absent").
//
// Guarantees:
//   - A Go panic never crosses into C: every function the host calls recovers. A panicking tool handler ends
//     its call with MCPP_OUTCOME_INTERNAL (the client sees a JSON-RPC internal error) and the host keeps
//     serving; a panicking Create fails create(); Describe/Health report MCPP_E_FAILED; Destroy swallows it.
//   - Every call is finished exactly once, by the kit, after the handler returned. A Call used after that
//     (e.g. from a goroutine the handler started) returns ErrFinished and never touches the stale handle.
//   - cgo pointer rules: C never holds a Go pointer. The instance the host keeps is a runtime/cgo.Handle
//     (an integer); strings go down as (pointer, length) for the duration of one host call, which copies;
//     strings coming up (argument values, names, the configuration) are copied into Go strings at once.
package mcpplugin

import (
	"errors"
	"fmt"
	"sync"
)

// Outcome is how a call ends (mcpp_host.finish, MCPP_OUTCOME_*).
type Outcome int32

const (
	OutcomeOK            Outcome = 0 // MCPP_OUTCOME_OK
	OutcomeToolError     Outcome = 1 // MCPP_OUTCOME_TOOL_ERROR: a result with isError = true
	OutcomeNotFound      Outcome = 2 // MCPP_OUTCOME_NOT_FOUND
	OutcomeInvalidParams Outcome = 3 // MCPP_OUTCOME_INVALID_PARAMS: JSON-RPC -32602
	OutcomeInternal      Outcome = 4 // MCPP_OUTCOME_INTERNAL: JSON-RPC -32603
)

// Status is an mcpp_status returned by a host function.
type Status int32

const (
	StatusOK        Status = 0 // MCPP_OK
	StatusFailed    Status = 1 // MCPP_E_FAILED
	StatusVersion   Status = 2 // MCPP_E_VERSION
	StatusInvalid   Status = 3 // MCPP_E_INVALID
	StatusNotFound  Status = 4 // MCPP_E_NOT_FOUND: the argument is absent or null
	StatusType      Status = 5 // MCPP_E_TYPE: the argument has another JSON type
	StatusTooLarge  Status = 6 // MCPP_E_TOO_LARGE
	StatusFinished  Status = 7 // MCPP_E_FINISHED
	StatusCancelled Status = 8 // MCPP_E_CANCELLED: output is discarded
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusFailed:
		return "failed"
	case StatusVersion:
		return "ABI version mismatch"
	case StatusInvalid:
		return "invalid argument"
	case StatusNotFound:
		return "not found"
	case StatusType:
		return "wrong JSON type"
	case StatusTooLarge:
		return "the result is too large"
	case StatusFinished:
		return "the call was already finished"
	case StatusCancelled:
		return "the call was cancelled"
	}
	return fmt.Sprintf("status %d", int32(s))
}

// LogLevel is an RFC 5424 severity (MCPP_LOG_*).
type LogLevel int32

const (
	LogEmergency LogLevel = 0
	LogAlert     LogLevel = 1
	LogCritical  LogLevel = 2
	LogError     LogLevel = 3
	LogWarning   LogLevel = 4
	LogNotice    LogLevel = 5
	LogInfo      LogLevel = 6
	LogDebug     LogLevel = 7
)

// Lists for Host.NotifyListChanged (MCPP_LIST_*).
const (
	ListTools     uint32 = 1
	ListResources uint32 = 2
	ListPrompts   uint32 = 4
)

// Error ends a call with a chosen outcome. Return it from a handler (or use the constructors below).
type Error struct {
	Outcome Outcome
	Message string
	missing bool // an absent or null argument (the Opt* helpers turn it into the default)
}

func (e *Error) Error() string { return e.Message }

// ToolError: a tool result with isError = true; the model reads the message. (Any error that is not an
// *Error or a *StatusError is treated the same way.)
func ToolError(format string, a ...any) error {
	return &Error{Outcome: OutcomeToolError, Message: fmt.Sprintf(format, a...)}
}

// InvalidParams: the arguments are wrong (JSON-RPC -32602).
func InvalidParams(format string, a ...any) error {
	return &Error{Outcome: OutcomeInvalidParams, Message: fmt.Sprintf(format, a...)}
}

// NotFound: unknown tool or item.
func NotFound(format string, a ...any) error {
	return &Error{Outcome: OutcomeNotFound, Message: fmt.Sprintf(format, a...)}
}

// Internal: the plugin failed for a reason of its own (JSON-RPC -32603).
func Internal(format string, a ...any) error {
	return &Error{Outcome: OutcomeInternal, Message: fmt.Sprintf(format, a...)}
}

// StatusError: a host function returned a non-OK status. Returned from a handler it ends the call with an
// internal error, except StatusCancelled (the host discards the output anyway: the call ends OK).
type StatusError struct {
	Op     string // the host function, e.g. "add_text"
	Status Status
}

func (e *StatusError) Error() string { return fmt.Sprintf("%s: %s", e.Op, e.Status) }

// ErrFinished is returned by every Call method once the call was finished (the handler returned).
var ErrFinished = &StatusError{Op: "call", Status: StatusFinished}

// Tool declares one tool (mcpp_tool) and its handler.
type Tool struct {
	Name         string // required, unique
	Title        string
	Description  string
	InputSchema  string // JSON Schema object as JSON text; "" = {"type":"object"}
	OutputSchema string // optional JSON Schema of structuredContent
	Annotations  string // optional ToolAnnotations object as JSON text
	// NonBlocking sets MCPP_TOOL_NONBLOCKING: the host may run the handler on its network thread. Only for
	// handlers that finish in microseconds and never wait for anything (see README: entering Go from C can
	// wait for a P during a GC stop-the-world, so keep this for trivial handlers).
	NonBlocking bool
	// Handler answers tools/call. It runs on a host worker thread; nil error = success.
	Handler func(c *Call) error
}

// Plugin is the whole declaration. Register it once, from an init() function of package main.
type Plugin struct {
	Name         string // serverInfo.name (required)
	Version      string // serverInfo.version (required)
	Title        string
	Instructions string

	// Serial declares MCPP_THREADING_SERIAL (one handler at a time). The default is CONCURRENT: handlers run
	// on several host threads at once, so shared state needs a sync.Mutex or atomics.
	Serial bool
	// MaxConcurrency: CONCURRENT only; most handlers at once, 0 = the host's default.
	MaxConcurrency uint32

	// Create runs once on the host's control thread with the configuration (JSON text, "{}" when none).
	// A returned error fails create(): the host prints it and exits.
	Create func(h *Host, config string) error
	// Destroy runs once at graceful shutdown (may be skipped when the process dies).
	Destroy func()
	// Health is [any] and must not block: nil = healthy. May run beside handlers, even for Serial plugins.
	Health func() error

	Tools []Tool
}

var (
	regMu       sync.Mutex
	registered  *Plugin
	registerErr error
)

// Register declares the plugin. Call it exactly once, from an init() function (the host negotiates as soon
// as the library is loaded, and the kit's entry point waits for package initialization to complete).
// The declaration is copied; later changes to p have no effect.
func Register(p Plugin) {
	regMu.Lock()
	defer regMu.Unlock()
	if registered != nil {
		registerErr = errors.New("mcpplugin.Register was called more than once")
		return
	}
	cp := p
	cp.Tools = append([]Tool(nil), p.Tools...)
	registered = &cp
}

func registration() (*Plugin, error) {
	regMu.Lock()
	defer regMu.Unlock()
	if registerErr != nil {
		return registered, registerErr
	}
	if registered == nil {
		return nil, errors.New("no plugin registered: call mcpplugin.Register from an init() function of package main")
	}
	return registered, nil
}
