// The Swift reference plugin: the same kinds of things as the C one, declared as Swift values with
// MCPPluginKit, exported through the ABI's one entry point with @c. Built by `swift build` as the dynamic
// library .build/<config>/libSwiftReferencePlugin.so (same toolchain as the host: see docs/plugin-authors.md).
import MCPPluginKit

// The plugin's own series on the supervisor's metrics endpoint (docs/metrics.md, "Plugin series"): registered on
// first use (a global is initialised lazily), nil on a host without the metrics extension.
let shouts = PluginMetric.counter("swift_reference_shouts_total", help: "Texts shouted.")
let shoutBytes = PluginMetric.histogram(
    "swift_reference_shout_bytes", help: "Bytes of the texts shouted.", buckets: [8, 64, 512])

let plugin = PluginDefinition(
    name: "swift-reference", version: "1.0.0", title: "Reference plugin (Swift)",
    instructions: "Text utilities written in Swift.",
    health: { .healthy("ok") },
    completions: { ref, argument, value in
        guard ref == .prompt("haiku"), argument == "season" else { return [] }
        return ["spring", "summer", "autumn", "winter"].filter { $0.hasPrefix(value) }
    },
    listCache: [ListCache([.tools, .prompts], ttlMs: 60000, scope: .public)]
) {
    Tool(
        "shout", title: "Shout", description: "Upper-cases the text.",
        inputSchema: #"{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}"#,
        nonblocking: true
    ) { call in
        let text = try call.string("text")
        shouts?.add()
        shoutBytes?.observe(Double(text.utf8.count))
        return .text(text.uppercased())
    }

    Tool(
        "stats", description: "Counts characters and words.",
        inputSchema: #"{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}"#,
        outputSchema:
            #"{"type":"object","properties":{"characters":{"type":"integer"},"words":{"type":"integer"}},"required":["characters","words"]}"#
    ) { call in
        let text = try call.string("text")
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).count
        return ToolResult(
            content: [.text("\(text.count) characters, \(words) words")],
            structured: #"{"characters":\#(text.count),"words":\#(words)}"#)
    }

    Tool(
        "countdown", description: "Counts down from n, one step per 100 ms, reporting progress; honours cancellation.",
        inputSchema:
            #"{"type":"object","properties":{"n":{"type":"integer","minimum":1,"maximum":100}},"required":["n"]}"#
    ) { call in
        let n = try call.int("n")
        call.log(.info, "counting down from \(n)")
        for i in 0..<n {
            if call.isCancelled || Task.isCancelled { return .error("cancelled at \(n - i)") }
            call.progress(Double(i + 1), total: Double(n), message: "\(n - i - 1) left")
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
        return .text("liftoff after \(n)")
    }

    // ABI 1.1: asking the client. The same code serves both eras: in 2026-07-28 the first attempt ends with
    // InputError.suspended (propagated by `try`), and the retry gets the answer at once.
    Tool(
        "confirm", description: "Asks the user to confirm an action (elicitation).",
        inputSchema: #"{"type":"object","properties":{"action":{"type":"string"}},"required":["action"]}"#
    ) { call in
        let action = try call.string("action")
        try call.setRequestState(Array("swift-ticket".utf8))
        let answer = try await call.elicit(
            key: "confirm", message: "Really do this: \(action)?",
            schema:
                #"{"type":"object","properties":{"confirm":{"type":"boolean","title":"Confirm"}},"required":["confirm"]}"#
        )
        guard answer.accepted else { return .text("Not confirmed: the user chose \(answer.action)") }
        guard call.jsonValue(answer.json, at: "/content/confirm") == .bool(true) else {
            return .text("Not confirmed: the user said no")
        }
        let retried = call.requestState.map { " (after a retry carrying \(String(decoding: $0, as: UTF8.self)))" }
        return .text("Confirmed: \(action)\(retried ?? "")")
    }

    Tool(
        "ask_model", description: "Asks the client's model a question (sampling).",
        inputSchema: #"{"type":"object","properties":{"question":{"type":"string"}},"required":["question"]}"#
    ) { call in
        let reply = try await call.sample(key: "ask", prompt: try call.string("question"), maxTokens: 100)
        return .text("The model says: \(reply)")
    }

    Tool("refuse", description: "Always fails with a tool error.") { _ in
        throw ToolError("refuse always refuses")
    }

    Resource("swift://about", name: "about", mimeType: "text/plain") { _ in
        [.text("A plugin written in Swift against mcp_plugin.h.")]
    }

    ResourceTemplate("swift://echo/{word}", name: "echo-word", mimeType: "text/plain") { call in
        [.text("You said \(try call.string("word"))")]
    }

    Prompt(
        "haiku", description: "Asks for a haiku.",
        arguments: [PromptArgument("topic", required: true), PromptArgument("season")]
    ) { call in
        let topic = try call.string("topic")
        let season = try call.optionalString("season") ?? "any season"
        return PromptResult(
            description: "A haiku about \(topic)",
            messages: [.user(.text("Write a haiku about \(topic), set in \(season)."))])
    }
}

@c(mcpp_negotiate_v1)
public func mcppNegotiateV1(_ n: UnsafeMutablePointer<mcpp_negotiation>?) -> mcpp_status {
    plugin.negotiate(n)
}
