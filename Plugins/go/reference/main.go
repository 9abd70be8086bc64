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
//	confirm {action, twice?}  asks the user (elicitation, ABI 1.1), as the C plugin's confirm   (Interactive)
//	ask_model {question}      asks the client's model (sampling, ABI 1.1)                       (Interactive)
//	list_roots {}             asks the client for its roots (ABI 1.1)                           (Interactive)
//
// Resource go-reference://readme, template go-reference://notes/{id} (notes 1 to 3), prompt greet {name, style?},
// completions for greet.style and the template's id; every list is public for a minute and the readme for five
// (2026-07-28 cache hints).
//
// Handlers share no mutable state, so the plugin is CONCURRENT (the kit's default).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
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
	crashSchema   = `{"type":"object","properties":{}}`
	confirmSchema = `{"type":"object","properties":{"action":{"type":"string","description":"What to confirm"},` +
		`"twice":{"type":"boolean","description":"Ask a second time after a yes"}},"required":["action"]}`
	confirmRequested = `{"type":"object","properties":{"confirm":{"type":"boolean","title":"Confirm"}},` +
		`"required":["confirm"]}`
	askModelSchema = `{"type":"object","properties":{"question":{"type":"string"}},"required":["question"]}`
	emptySchema    = `{"type":"object","properties":{}}`

	readmeURI  = "go-reference://readme"
	readmeText = "This is the Go reference plugin of mcp-supervisor, written with the mcpplugin kit (plugin ABI 1.1).\n" +
		"Tools: echo, add, slow_count, fail, panic, crash, confirm, ask_model, list_roots. Notes 1 to 3 live at\n" +
		"go-reference://notes/{id}.\n"
)

var (
	styles  = []string{"friendly", "formal", "pirate", "poetic"}
	noteIDs = []string{"1", "2", "3"}
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
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for step := 0; step < steps; {
		select {
		case <-c.Done(): // mcpp_plugin.cancel: wakes the loop at once
			return mcpplugin.ToolError("cancelled after %d steps", step)
		case <-tick.C:
		}
		step++
		c.Progress(float64(step), float64(steps), fmt.Sprintf("step %d of %d", step, steps))
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

// ---------------------------------------------------------------------------------------------------------
// Asking the client (ABI 1.1). The handlers are Interactive: they run in a goroutine of their own, so Elicit
// can simply wait. The same code serves both protocol eras: in 2025-11-25 Elicit returns the answer; in
// 2026-07-28 the first attempt's Elicit returns an error matching mcpplugin.ErrSuspended (the kit has finished the
// call; the host answers input_required) and the client's retry runs the handler again from the start, where the
// same request is answered at once. So the handlers ask before they act.
// ---------------------------------------------------------------------------------------------------------

func confirm(c *mcpplugin.Call) error {
	action, err := c.String("action")
	if err != nil {
		return err
	}
	action = truncate(action, 500)
	twice, err := c.OptBool("twice", false)
	if err != nil {
		return err
	}
	c.SetRequestState([]byte("ticket-1")) // sealed by the host; comes back in the 2026-07-28 retry
	questions := []string{"Really do this: " + action + "?"}
	if twice {
		questions = append(questions, "Are you sure: "+action+"?")
	}
	for _, q := range questions {
		answer, err := c.Elicit(q, confirmRequested)
		if err != nil {
			return err // suspended, refused (tool error), unsupported (needs capability), cancelled
		}
		if choice, _ := answer.String("/action"); choice != "accept" {
			if choice == "" {
				choice = "nothing"
			}
			return c.AddText("Not confirmed: the user chose " + truncate(choice, 20))
		}
		if yes, _ := answer.Bool("/content/confirm"); !yes {
			return c.AddText("Not confirmed: the user said no")
		}
	}
	if ticket, ok := c.RequestState(); ok {
		return c.AddText(fmt.Sprintf("Confirmed: %s (after a retry carrying %s)", action, truncate(string(ticket), 100)))
	}
	return c.AddText("Confirmed: " + action)
}

func askModel(c *mcpplugin.Call) error {
	question, err := c.String("question")
	if err != nil {
		return err
	}
	answer, err := c.Sample(truncate(question, 2000), 200)
	if err != nil {
		return err
	}
	var result struct { // the whole CreateMessageResult, decoded with encoding/json
		Model   string `json:"model"`
		Content struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := answer.Unmarshal(&result); err != nil {
		return mcpplugin.Internal("the client's model answered something unreadable: %v", err)
	}
	if result.Model == "" {
		result.Model = "unknown"
	}
	return c.AddText(fmt.Sprintf("The model (%s) says: %s", truncate(result.Model, 100), truncate(result.Content.Text, 2000)))
}

func listRoots(c *mcpplugin.Call) error {
	answer, err := c.Roots()
	if errors.Is(err, mcpplugin.ErrUnsupported) {
		return mcpplugin.NeedsCapability("list_roots needs the client's roots capability")
	}
	if err != nil {
		return err
	}
	count := 0
	for ; ; count++ {
		uri, ok := answer.String(fmt.Sprintf("/roots/%d/uri", count))
		if !ok {
			break
		}
		if err := c.AddText(uri); err != nil {
			return err
		}
	}
	if count == 1 {
		return c.AddText("1 root")
	}
	return c.AddText(fmt.Sprintf("%d roots", count))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ---------------------------------------------------------------------------------------------------------
// Resources, prompt and completions
// ---------------------------------------------------------------------------------------------------------

func readReadme(c *mcpplugin.Call, uri string) error {
	if err := c.SetCache(5*time.Minute, mcpplugin.CachePublic); err != nil { // the same for everyone
		return err
	}
	return c.AddResourceText(uri, "text/plain", readmeText)
}

func readNote(c *mcpplugin.Call, uri string) error {
	id, err := c.String("id") // the {id} variable of the template, percent-decoded
	if err != nil {
		return err
	}
	if id != "1" && id != "2" && id != "3" {
		return mcpplugin.NotFound("no note with id '%s'", truncate(id, 100))
	}
	return c.AddResourceText(uri, "text/plain", "Note "+id)
}

func greet(c *mcpplugin.Call) error {
	who, err := c.String("name")
	if err != nil {
		return err
	}
	style, err := c.OptString("style", "friendly")
	if err != nil {
		return err
	}
	if style == "" {
		style = "friendly"
	}
	if err := c.SetDescription("A greeting"); err != nil {
		return err
	}
	return c.AddText("Please greet " + who + " in a " + style + " way.") // role: user
}

func startingWith(values []string, prefix string) []string {
	var out []string
	for _, v := range values {
		if strings.HasPrefix(v, prefix) {
			out = append(out, v)
		}
	}
	return out
}

func completeGreet(c *mcpplugin.Call, arg, value string) ([]string, error) {
	if arg == "style" {
		return startingWith(styles, value), nil
	}
	return nil, nil // names: nothing to offer
}

func completeNote(c *mcpplugin.Call, arg, value string) ([]string, error) {
	if arg == "id" {
		return startingWith(noteIDs, value), nil
	}
	return nil, nil
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
			"fail on request, read notes, get a greeting prompt, ask the user or the client's model, and a tool " +
			"that panics.",
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
			{Name: "confirm", Title: "Confirm",
				Description: "Asks the user to confirm an action (elicitation) and reports the answer.",
				InputSchema: confirmSchema, Interactive: true, Handler: confirm},
			{Name: "ask_model", Title: "Ask the model",
				Description: "Asks the client's model a question (sampling) and reports its answer.",
				InputSchema: askModelSchema, Interactive: true, Handler: askModel},
			{Name: "list_roots", Title: "List roots",
				Description: "Asks the client for its roots and lists their URIs.",
				InputSchema: emptySchema, Interactive: true, Handler: listRoots},
		},
		Resources: []mcpplugin.Resource{
			{URI: readmeURI, Name: "readme", Title: "Read me", Description: "What this plugin is.",
				MIMEType: "text/plain", Size: int64(len(readmeText)), Handler: readReadme},
		},
		ResourceTemplates: []mcpplugin.ResourceTemplate{
			{URITemplate: "go-reference://notes/{id}", Name: "note", Title: "Note",
				Description: "A short note; ids 1, 2 and 3 exist.", MIMEType: "text/plain",
				Handler: readNote, Complete: completeNote},
		},
		Prompts: []mcpplugin.Prompt{
			{Name: "greet", Title: "Greet someone", Description: "Asks the model to greet a person in a given style.",
				Args: []mcpplugin.PromptArg{
					{Name: "name", Description: "Who to greet", Required: true},
					{Name: "style", Description: "friendly (default), formal, pirate or poetic"},
				},
				Handler: greet, Complete: completeGreet},
		},
		ListCache: []mcpplugin.ListCache{{Lists: mcpplugin.ListTools | mcpplugin.ListResources | mcpplugin.ListPrompts,
			TTL: time.Minute, Scope: mcpplugin.CachePublic}},
	})
}
