// The Go reference plugin for mcp-plugin-host, built on the mcpplugin package (std + cgo only).
//
// Build: Plugins/go/build.sh  ->  .build-plugins/libgo_reference.so
// Run:   mcp-plugin-host --plugin .build-plugins/libgo_reference.so --listen 127.0.0.1:0
//
// Tools (the first four as in Plugins/reference-c/reference.c):
//
//	echo {text}               the text back (NonBlocking)
//	add {a, b}                the sum as text plus structuredContent {"sum": N} (outputSchema)
//	slow_count {seconds?}     counts in 100 ms steps with progress and a call log line; polls cancellation
//	fail {message}            a tool error result (isError: true)
//	panic {message?, nil?}    panics (or dereferences a nil pointer): the kit turns it into an internal error
//	crash {}                  an unrecoverable Go fatal error, only when the configuration says
//	                          {"allow_crash": true}: shows that the host's crash report still works
//
// Handlers share no mutable state, so the plugin is CONCURRENT (the kit's default).
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mcp-supervisor/plugins/go/mcpplugin"
)

// main is never run in a c-shared library, but package main needs one.
func main() {}

const (
	echoSchema = `{"type":"object",` +
		`"properties":{"text":{"type":"string","description":"The text to send back"}},` +
		`"required":["text"]}`
	addSchema = `{"type":"object",` +
		`"properties":{"a":{"type":"number","description":"First addend"},` +
		`"b":{"type":"number","description":"Second addend"}},` +
		`"required":["a","b"]}`
	addOutputSchema = `{"type":"object","properties":{"sum":{"type":"number"}},"required":["sum"]}`
	pure            = `{"readOnlyHint":true,"idempotentHint":true,"openWorldHint":false}`
	slowCountSchema = `{"type":"object",` +
		`"properties":{"seconds":{"type":"integer","minimum":0,"maximum":30,"default":3,` +
		`"description":"How long to count, in seconds (10 steps per second)"}},` +
		`"required":[]}`
	failSchema = `{"type":"object",` +
		`"properties":{"message":{"type":"string","description":"The error message"}},` +
		`"required":["message"]}`
	panicSchema = `{"type":"object",` +
		`"properties":{"message":{"type":"string","description":"The panic message"},` +
		`"nil":{"type":"boolean","description":"Dereference a nil pointer instead (a runtime error)"}}}`
	crashSchema = `{"type":"object","properties":{}}`
)

// Set once by create() (the configuration {"allow_crash": true}, the host table); read by handlers.
var (
	allowCrash atomic.Bool
	host       *mcpplugin.Host
)

func echo(c *mcpplugin.Call) error {
	text, err := c.String("text")
	if err != nil {
		return err // missing or not a string: invalid params naming "text"
	}
	return c.AddText(text)
}

func add(c *mcpplugin.Call) error {
	a, err := c.Float("a")
	if err != nil {
		return err
	}
	b, err := c.Float("b")
	if err != nil {
		return err
	}
	sum := a + b
	if math.IsInf(sum, 0) || math.IsNaN(sum) { // JSON has no inf/nan
		return mcpplugin.ToolError("the sum is too large to represent")
	}
	text := strconv.FormatFloat(sum, 'g', -1, 64) // shortest text that reads back as the same double
	if err := c.AddText(text); err != nil {
		return err
	}
	return c.SetStructured(`{"sum":` + text + `}`)
}

func slowCount(c *mcpplugin.Call) error {
	seconds, err := c.OptInt("seconds", 3)
	if err != nil {
		return err
	}
	if seconds < 0 || seconds > 30 {
		return mcpplugin.InvalidParams("argument 'seconds' must be between 0 and 30")
	}
	steps := int(seconds) * 10
	c.Log(mcpplugin.LogInfo, fmt.Sprintf("counting %d steps of 100 ms", steps))
	for step := 0; step < steps; {
		if c.Cancelled() {
			return mcpplugin.ToolError("cancelled after %d steps", step)
		}
		time.Sleep(100 * time.Millisecond)
		step++
		c.Progress(float64(step), float64(steps), fmt.Sprintf("step %d of %d", step, steps))
	}
	if c.Cancelled() {
		return mcpplugin.ToolError("cancelled after %d steps", steps)
	}
	return c.AddText(fmt.Sprintf("counted to %d", steps))
}

func fail(c *mcpplugin.Call) error {
	msg, err := c.String("message")
	if err != nil {
		return err
	}
	return mcpplugin.ToolError("%s", msg) // the host appends it as a text block of an isError result
}

type node struct{ next *node }

func panicTool(c *mcpplugin.Call) error {
	deref, err := c.OptBool("nil", false)
	if err != nil {
		return err
	}
	if deref {
		var n *node
		return fmt.Errorf("unreachable %p", n.next) // SIGSEGV inside Go code: Go turns it into a panic
	}
	msg, err := c.OptString("message", "the panic tool panicked on purpose")
	if err != nil {
		return err
	}
	panic(msg)
}

func crash(c *mcpplugin.Call) error {
	if !allowCrash.Load() {
		return mcpplugin.ToolError(`crash is disabled; start the host with --config '{"allow_crash":true}'`)
	}
	var mu sync.Mutex
	mu.Unlock() // "fatal error: sync: unlock of unlocked mutex": a Go runtime throw, never recoverable
	return nil
}

func create(h *mcpplugin.Host, config string) error {
	var cfg struct {
		AllowCrash bool `json:"allow_crash"`
	}
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		return fmt.Errorf("go-reference: the configuration is not a JSON object: %v", err)
	}
	allowCrash.Store(cfg.AllowCrash)
	host = h
	h.Log(mcpplugin.LogDebug, "go-reference: created")
	return nil
}

func init() {
	mcpplugin.Register(mcpplugin.Plugin{
		Name:    "go-reference",
		Version: "1.0.0",
		Title:   "Reference plugin (Go)",
		Instructions: "A demonstration server written in Go: echo text, add numbers, count slowly, " +
			"fail on request, and a tool that panics.",
		Create:  create,
		Destroy: func() { host.Log(mcpplugin.LogInfo, "go-reference: destroyed") },
		Tools: []mcpplugin.Tool{
			{Name: "echo", Title: "Echo", Description: "Returns the text it was given.",
				InputSchema: echoSchema, NonBlocking: true, Handler: echo},
			{Name: "add", Title: "Add", Description: "Adds two numbers and returns the sum.",
				InputSchema: addSchema, OutputSchema: addOutputSchema, Annotations: pure, NonBlocking: true,
				Handler: add},
			{Name: "slow_count", Title: "Slow count",
				Description: "Counts in steps of 100 ms, reporting progress; can be cancelled.",
				InputSchema: slowCountSchema, Handler: slowCount},
			{Name: "fail", Title: "Fail", Description: "Always fails with the given message.",
				InputSchema: failSchema, Handler: fail},
			{Name: "panic", Title: "Panic",
				Description: "Panics inside the plugin; the call fails with an internal error.",
				InputSchema: panicSchema, Handler: panicTool},
			{Name: "crash", Title: "Crash",
				Description: "Crashes the plugin with an unrecoverable Go fatal error (only when allowed by the configuration).",
				InputSchema: crashSchema, Handler: crash},
		},
	})
}
