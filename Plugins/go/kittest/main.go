// The mcpplugin kit's test plugin: every edge of the kit's handler dispatch and ABI 1.1 input requests, driven
// by the C mock host in Tests/integration/test_go_plugin.py (test_kit_against_a_mock_host). Not for serving.
//
// Build: Plugins/go/build.sh kittest  ->  libgo_kittest.so
//
// It is Serial on purpose: Interactive handlers run in goroutines, and the kit must keep them serial with the
// others (its lock is released only while a handler waits for the client).
package main

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"mcp-supervisor/plugins/go/mcpplugin"
)

func main() {}

var host *mcpplugin.Host

func elicitAndReport(c *mcpplugin.Call) error {
	a, err := c.Elicit("Sure?", "")
	if err != nil {
		return err
	}
	action, _ := a.String("/action")
	if yes, ok := a.Bool("/content/confirm"); ok && yes {
		action += "+yes"
	}
	return c.AddText(action)
}

func tools() []mcpplugin.Tool {
	interactive := func(name string, h func(c *mcpplugin.Call) error) mcpplugin.Tool {
		return mcpplugin.Tool{Name: name, Interactive: true, Handler: h}
	}
	return []mcpplugin.Tool{
		interactive("ask_ok", elicitAndReport),
		interactive("ask_refused", elicitAndReport),
		interactive("ask_unsupported", elicitAndReport),
		interactive("ask_cancelled", elicitAndReport),
		interactive("ask_suspended", func(c *mcpplugin.Call) error {
			_, err := c.Elicit("Sure?", "")
			after := c.AddText("after the suspension") // the kit finished the call: ErrFinished, no host call
			host.Log(mcpplugin.LogInfo, fmt.Sprintf("ask_suspended: suspended=%v after=%v",
				errors.Is(err, mcpplugin.ErrSuspended), after == mcpplugin.ErrFinished))
			return err
		}),
		interactive("ask_panics", func(c *mcpplugin.Call) error {
			if _, err := c.Elicit("Sure?", ""); err != nil {
				return err
			}
			panic("boom after the answer")
		}),
		interactive("ask_goexit", func(c *mcpplugin.Call) error {
			if _, err := c.Elicit("Sure?", ""); err != nil {
				return err
			}
			runtime.Goexit()
			return nil
		}),
		{Name: "not_interactive", Handler: func(c *mcpplugin.Call) error {
			_, err := c.Elicit("Sure?", "")
			return err
		}},
		interactive("ask_rejected", func(c *mcpplugin.Call) error {
			_, err := c.Ask(mcpplugin.InputElicitation, "bad", "{}") // the mock host refuses the key "bad"
			return err
		}),
		interactive("ask_twice", func(c *mcpplugin.Call) error {
			a, err := c.Sample(`q "1"`, 7)
			if err != nil {
				return err
			}
			model, _ := a.String("/model")
			b, err := c.Roots()
			if err != nil {
				return err
			}
			roots, err := b.Get("/roots")
			if err != nil {
				return err
			}
			return c.AddText(model + roots.Text)
		}),
		{Name: "state", Handler: func(c *mcpplugin.Call) error {
			if err := c.SetRequestState([]byte("abc")); err != nil {
				return err
			}
			prior, _ := c.RequestState()
			if err := c.AddText(string(prior)); err != nil {
				return err
			}
			return c.SetCache(5*time.Second, mcpplugin.CachePublic)
		}},
		interactive("wait_cancel", func(c *mcpplugin.Call) error {
			<-c.Done() // closed by mcpp_plugin.cancel
			return mcpplugin.ToolError("cancelled: %v", c.Context().Err())
		}),
		interactive("serial_wait", elicitAndReport),
		{Name: "serial_other", Handler: func(c *mcpplugin.Call) error { return c.AddText("other") }},
	}
}

func init() {
	mcpplugin.Register(mcpplugin.Plugin{
		Name:    "go-kittest",
		Version: "0.1",
		Serial:  true,
		Create: func(h *mcpplugin.Host, config string) error {
			host = h
			return nil
		},
		Tools: tools(),
		Prompts: []mcpplugin.Prompt{{Name: "ask", Interactive: true,
			Args:    []mcpplugin.PromptArg{{Name: "a", Description: "first", Required: true}, {Name: "b"}},
			Handler: elicitAndReport}},
		ListCache: []mcpplugin.ListCache{{Lists: mcpplugin.ListTools | mcpplugin.ListPrompts, TTL: time.Minute,
			Scope: mcpplugin.CachePublic}},
	})
}
