// Package mcpplugin writes an mcp-plugin-host plugin in Go (std + cgo only).
//
// The host owns the Model Context Protocol; a plugin declares tools, resources, resource templates and prompts
// and answers calls through the C ABI of Sources/PluginABI/include/mcp_plugin.h (ABI 1.1). This package is that
// ABI for Go:
//
//	mcpplugin.Register(mcpplugin.Plugin{...})  in an init()   ->  the static mcpp_plugin table (entry.c)
//	Plugin.Name/Version/Title/Instructions                      ->  mcpp_plugin.name/version/title/instructions
//	Plugin.Serial / MaxConcurrency                              ->  mcpp_plugin.threading / max_concurrency
//	Plugin.Create(host, config) / Destroy() / Health()          ->  mcpp_plugin.create / destroy / health
//	Plugin.Tools, Resources, ResourceTemplates, Prompts         ->  mcpp_plugin.describe -> mcpp_registry.add_*
//	Plugin.ListCache                                            ->  mcpp_registry.set_list_cache (1.1)
//	Tool.Handler(*Call) error                                   ->  mcpp_plugin.call_tool, then mcpp_host.finish
//	Resource.Handler / ResourceTemplate.Handler(*Call, uri)     ->  mcpp_plugin.read_resource
//	Prompt.Handler(*Call)                                       ->  mcpp_plugin.get_prompt
//	Prompt.Complete / ResourceTemplate.Complete                 ->  mcpp_plugin.complete
//	Call.Done/Context                                           ->  mcpp_plugin.cancel (and finish)
//	Call.String/Int/Float/Bool/JSON                             ->  mcpp_host.arg_string/arg_int/arg_double/...
//	Call.AddText/AddImage/SetStructured/SetRole/...             ->  mcpp_host.add_text/add_image/set_structured/...
//	Call.Progress/Log/Cancelled                                 ->  mcpp_host.progress/call_log/is_cancelled
//	Call.Elicit/Sample/Roots/Ask                                ->  mcpp_host.request_input (1.1), waiting
//	Call.SetRequestState/RequestState/SetCache/JSONGet          ->  mcpp_host.set_request_state/... (1.1)
//	Host.Log/NotifyListChanged/NotifyResourceUpdated            ->  mcpp_host.log/notify_list_changed/...
//	(the kit's own counters)                                    ->  mcpp_plugin.diagnose
//
// The entry point mcpp_negotiate_v1 is written in C (entry.c) and behaves exactly like MCPP_DEFINE_ENTRY; it
// is the only mcpp_* symbol of the shared object. Built against the 1.1 header, a plugin is refused by a host
// that offers only ABI 1.0 (it is told the plugin needs minor 1). Extensions are not wrapped.
//
// Guarantees:
//   - A Go panic never crosses into C: every function the host calls recovers. A panicking handler ends its
//     call with MCPP_OUTCOME_INTERNAL (the client sees a JSON-RPC internal error) and the host keeps serving; a
//     panicking Create fails create(); Describe/Health report MCPP_E_FAILED; Destroy swallows it.
//   - Every call is finished exactly once, by the kit, after the handler returned (or earlier, when an input
//     request was suspended). A Call used after that (e.g. from a goroutine the handler started) returns
//     ErrFinished and never touches the stale handle.
//   - Asking the client blocks the goroutine, never a host thread: handlers of Interactive tools (and prompts,
//     resources) run in a goroutine of their own and the host's handler returns at once; the host's callback
//     feeds a channel. In 2026-07-28 sessions the host calls back SUSPENDED only after its handler returned
//     (which is why a wait on the host thread would deadlock): the kit then finishes the call itself and Elicit
//     returns an error matching ErrSuspended; return it. The cgo.Handle behind each request is deleted when
//     the answer arrives (or when the host refuses the request), and the goroutine ends with the handler.
//   - Serial plugins stay serial: a kit lock is held while a handler runs and released only while it waits for
//     the client.
//   - cgo pointer rules: C never holds a Go pointer. The instance the host keeps and the user pointer of an
//     input request are runtime/cgo.Handle values (integers); strings go down as (pointer, length) for the
//     duration of one host call, which copies; strings coming up (argument values, names, answers, the
//     configuration) are copied into Go strings at once.
package mcpplugin

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Outcome is how a call ends (mcpp_host.finish, MCPP_OUTCOME_*).
type Outcome int32

const (
	OutcomeOK            Outcome = 0 // MCPP_OUTCOME_OK
	OutcomeToolError     Outcome = 1 // MCPP_OUTCOME_TOOL_ERROR: a result with isError = true
	OutcomeNotFound      Outcome = 2 // MCPP_OUTCOME_NOT_FOUND
	OutcomeInvalidParams Outcome = 3 // MCPP_OUTCOME_INVALID_PARAMS: JSON-RPC -32602
	OutcomeInternal      Outcome = 4 // MCPP_OUTCOME_INTERNAL: JSON-RPC -32603
	// MCPP_OUTCOME_NEEDS_CAPABILITY (1.1): the call needs a client capability; 2026-07-28 -32021 with
	// data.requiredCapabilities (HTTP 400), earlier -32602.
	OutcomeNeedsCapability Outcome = 5
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

// Role of the prompt messages added next (Call.SetRole, MCPP_ROLE_*).
type Role int32

const (
	RoleUser      Role = 0
	RoleAssistant Role = 1
)

// CacheScope says who may keep a cached result (1.1, MCPP_CACHE_*; 2026-07-28 cacheScope).
type CacheScope int32

const (
	CachePrivate CacheScope = 0 // "private": only within the same authorization context (the default)
	CachePublic  CacheScope = 1 // "public": holds no user-specific data
)

// ListCache is a cache hint for lists (1.1, mcpp_registry.set_list_cache): 2026-07-28 clients may reuse a page of
// Lists (ListTools | ListResources | ListPrompts; ListResources covers resources/templates/list too) for TTL.
type ListCache struct {
	Lists uint32
	TTL   time.Duration
	Scope CacheScope
}

// InputKind is what a call asks the client for (1.1, MCPP_INPUT_*).
type InputKind int32

const (
	InputElicitation InputKind = 0 // elicitation/create
	InputSampling    InputKind = 1 // sampling/createMessage
	InputRoots       InputKind = 2 // roots/list
)

func (k InputKind) String() string {
	switch k {
	case InputElicitation:
		return "elicitation"
	case InputSampling:
		return "sampling"
	case InputRoots:
		return "roots"
	}
	return fmt.Sprintf("input kind %d", int32(k))
}

// InputStatus is how an input request ended (1.1, MCPP_INPUT_*).
type InputStatus int32

const (
	InputAnswered    InputStatus = 0
	InputRefused     InputStatus = 1 // the client answered with an error
	InputUnsupported InputStatus = 2 // the client did not declare the capability; nothing was sent
	InputCancelled   InputStatus = 3 // the call was cancelled or passed its deadline while waiting
	InputSuspended   InputStatus = 4 // 2026-07-28: the client answers in a retry; the kit finished the call
)

// JSONType is the type of a value read with Call.JSONGet (1.1, MCPP_JSON_*).
type JSONType int32

const (
	JSONNull   JSONType = 0
	JSONBool   JSONType = 1
	JSONNumber JSONType = 2
	JSONString JSONType = 3
	JSONArray  JSONType = 4
	JSONObject JSONType = 5
)

// JSONValue is one value read out of JSON text: Text is a string's unescaped text, or the value's JSON text
// for the other types ("true", "42", "{...}").
type JSONValue struct {
	Type JSONType
	Text string
}

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

// NeedsCapability: the call cannot go on without a client capability (MCPP_OUTCOME_NEEDS_CAPABILITY). An input
// request that came back unsupported already makes its error end the call this way.
func NeedsCapability(format string, a ...any) error {
	return &Error{Outcome: OutcomeNeedsCapability, Message: fmt.Sprintf(format, a...)}
}

// Sentinels for the ends of an input request other than an answer; match them with errors.Is on the error that
// Elicit, Sample, Roots or Ask returned (an *InputError). Returned from the handler as they are, they end the
// call as the C reference plugin does.
var (
	// ErrSuspended (2026-07-28): the client answers in a retry of the whole request. The kit has finished the
	// call already (the host sends input_required); the handler runs again, from the start, on the retry and
	// the same request is then answered. Return it (or anything: the call is over).
	ErrSuspended = errors.New("the client answers in a retry of the request")
	// ErrRefused: the client answered with an error. As a handler's result: a tool error naming it.
	ErrRefused = errors.New("the client refused the request")
	// ErrUnsupported: the client lacks the capability; nothing was sent. As a handler's result:
	// MCPP_OUTCOME_NEEDS_CAPABILITY (-32021 with requiredCapabilities in 2026-07-28, -32602 before).
	ErrUnsupported = errors.New("the client lacks the capability")
	// ErrInputCancelled: the call was cancelled or passed its deadline while waiting. As a result: internal.
	ErrInputCancelled = errors.New("cancelled while waiting for the client")
)

// ErrNotInteractive: Elicit, Sample, Roots or Ask from a handler not declared Interactive. Its host thread would
// wait for an answer that (in 2026-07-28 sessions) comes only after it returned.
var ErrNotInteractive = &Error{Outcome: OutcomeInternal,
	Message: "the handler asked the client but is not declared Interactive (it would block the host's handler thread)"}

// InputError is how an input request ended when it was not answered.
type InputError struct {
	Kind    InputKind
	Status  InputStatus // InputRefused, InputUnsupported, InputCancelled or InputSuspended
	Message string      // InputRefused: the client's error message
	Code    int64       // InputRefused: the client's error code
	noun    string      // "tool", "prompt", "resource"
}

func (e *InputError) Error() string {
	switch e.Status {
	case InputSuspended:
		return "the client answers the " + e.Kind.String() + " request in a retry of the whole request"
	case InputRefused:
		return "the client refused the " + e.Kind.String() + " request: " + e.Message
	case InputUnsupported:
		noun := e.noun
		if noun == "" {
			noun = "call"
		}
		return "this " + noun + " needs the client's " + e.Kind.String() + " capability"
	}
	return "cancelled while waiting for the client"
}

// Is makes errors.Is(err, ErrSuspended) (and the other sentinels) true for the matching status.
func (e *InputError) Is(target error) bool {
	switch target {
	case ErrSuspended:
		return e.Status == InputSuspended
	case ErrRefused:
		return e.Status == InputRefused
	case ErrUnsupported:
		return e.Status == InputUnsupported
	case ErrInputCancelled:
		return e.Status == InputCancelled
	}
	return false
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
	// Interactive: the handler may ask the client (Call.Elicit, Sample, Roots, Ask). It then runs in a goroutine
	// of its own and the host's handler thread returns at once, so waiting for the answer blocks nothing of the
	// host's. (Not with NonBlocking.)
	Interactive bool
	// Handler answers tools/call. It runs on a host worker thread (Interactive: a goroutine); nil error = success.
	Handler func(c *Call) error
}

// Resource declares a plain resource with a fixed URI (mcpp_resource) and its reader.
type Resource struct {
	URI         string // required, unique
	Name        string // required
	Title       string
	Description string
	MIMEType    string
	Size        int64 // bytes, if known; 0 = unknown (sent as -1)
	Interactive bool  // as Tool.Interactive
	// Handler answers resources/read for URI: add contents with c.AddResourceText/AddResourceBlob ("" = URI).
	Handler func(c *Call, uri string) error
}

// ResourceTemplate declares an RFC 6570 level-1 template ("notes://{id}", mcpp_resource_template). The handler
// reads its variables with c.String("id").
type ResourceTemplate struct {
	URITemplate string // required, unique
	Name        string // required
	Title       string
	Description string
	MIMEType    string
	Interactive bool
	Handler     func(c *Call, uri string) error
	// Complete answers completion/complete for the template's variables (nil: no values).
	Complete Completer
}

// PromptArg is one argument of a prompt (mcpp_prompt_arg).
type PromptArg struct {
	Name        string
	Title       string
	Description string
	Required    bool
}

// Prompt declares a prompt (mcpp_prompt). The handler adds messages with c.AddText (role: c.SetRole, default
// user) and may set c.SetDescription.
type Prompt struct {
	Name        string // required, unique
	Title       string
	Description string
	Args        []PromptArg
	Interactive bool
	Handler     func(c *Call) error
	// Complete answers completion/complete for the prompt's arguments (nil: no values).
	Complete Completer
}

// Completer offers values for argument arg whose partial value is value; c.String & co. read the context's
// already-resolved arguments. The kit adds the values (the host keeps the first 100) and reports their count as
// the total, unless the completer called c.SetCompletionInfo itself.
type Completer func(c *Call, arg, value string) ([]string, error)

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

	Tools             []Tool
	Resources         []Resource
	ResourceTemplates []ResourceTemplate
	Prompts           []Prompt
	// ListCache: cache hints for the lists (1.1); a host registry without set_list_cache drops them (logged).
	ListCache []ListCache
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
	cp.Resources = append([]Resource(nil), p.Resources...)
	cp.ResourceTemplates = append([]ResourceTemplate(nil), p.ResourceTemplates...)
	cp.Prompts = append([]Prompt(nil), p.Prompts...)
	for i := range cp.Prompts {
		cp.Prompts[i].Args = append([]PromptArg(nil), cp.Prompts[i].Args...)
	}
	cp.ListCache = append([]ListCache(nil), p.ListCache...)
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
