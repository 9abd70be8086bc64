import Dispatch
import Locking
import MCPProtocol
import PluginABI
import Synchronization

/// The real dispatcher over a fixed in-memory server, for `mcp-fuzz dispatcher` (docs/reliability.md): feeds it one
/// raw request (verb, headers, body) as a client could send it, in either era, and waits for the answer. Not used by
/// the hosts; public only so the fuzz executable can reach the dispatcher, which is internal.
public final class DispatcherFuzzing: Sendable {
    private let dispatcher: MCPDispatcher

    public init() {
        var config = HostConfig()
        config.callTimeout = .milliseconds(300)
        dispatcher = MCPDispatcher(plugin: FuzzedServer(), config: config)
    }

    /// One request: a first line `POST`, `GET` or `DELETE` (anything else is another verb), then header lines
    /// `Name: value`, an empty line, and the body. Returns the HTTP status, or nil when no answer came in time
    /// (a stream still open is then dropped as a client that left).
    @discardableResult
    public func feed(_ bytes: [UInt8]) -> Int? {
        let (head, body) = Self.split(bytes)
        let lines = head.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        let verb: MCPRequest.Verb =
            switch lines.first ?? "" {
            case "POST": .post
            case "GET": .get
            case "DELETE": .delete
            default: .other(lines.first ?? "")
            }
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append(
                (name: String(line[..<colon]), value: String(line[line.index(after: colon)...].drop { $0 == " " })))
        }
        let sink = FuzzSink()
        dispatcher.handle(MCPRequest(verb: verb, headers: RequestHeaders(headers), body: body), sink)
        let answered = sink.wait(seconds: 2)
        if !answered { sink.leave() }
        return sink.status
    }

    private static func split(_ bytes: [UInt8]) -> ([UInt8], [UInt8]) {
        var i = 0
        while i + 1 < bytes.count {
            if bytes[i] == UInt8(ascii: "\n") && bytes[i + 1] == UInt8(ascii: "\n") {
                return (Array(bytes[..<i]), Array(bytes[(i + 2)...]))
            }
            i += 1
        }
        return (bytes, [])
    }
}

/// A server with one of each thing a client can ask for: `echo` (inline), `later` (on another thread, with
/// progress), a resource, a template, a prompt.
final class FuzzedServer: DispatchedPlugin {
    let serverName = "fuzz"
    let serverVersion = "1.0.0"
    let serverTitle: String? = nil
    let instructions: String? = "fuzzing"
    let catalog: Catalog
    let handlers: PluginHandlers = [.tools, .resources, .prompts, .completions]
    private let nextID = Atomic<UInt>(1)

    init() {
        var c = Catalog()
        try? c.addTool(
            name: "echo", title: nil, description: "echo", inputSchema: #"{"type":"object"}"#, outputSchema: nil,
            annotations: #"{"readOnlyHint":true}"#, nonblocking: true)
        try? c.addTool(
            name: "later", title: nil, description: "later", inputSchema: nil, outputSchema: nil, annotations: nil)
        try? c.addResource(
            uri: "fuzz://readme", name: "readme", title: nil, description: nil, mimeType: "text/plain", size: nil)
        try? c.addTemplate(
            uriTemplate: "fuzz://items/{id}/{+rest}", name: "items", title: nil, description: nil, mimeType: nil)
        try? c.addPrompt(
            name: "greet", title: nil, description: nil,
            arguments: [.init(name: "who", title: nil, description: nil, required: true)])
        catalog = c
    }

    func makeCall(
        kind: CallKind, arguments: [String: JSONValue], observer: any CallObserver, maxOutputBytes: Int,
        input: RetryInput
    ) -> PluginCall {
        PluginCall(
            id: nextID.add(1, ordering: .relaxed).oldValue, kind: kind, arguments: arguments, observer: observer,
            maxOutputBytes: maxOutputBytes, priorAnswers: input.answers, priorState: input.pluginState)
    }

    func mayRunInline(_ tool: Catalog.Tool) -> Bool { tool.nonblocking }
    func runInline(_ call: PluginCall) { run(call) }
    func submit(_ call: PluginCall) { DispatchQueue.global().async { self.run(call) } }
    func cancel(_ call: PluginCall) {
        if call.markCancelled() { _ = call.finish(outcome: MCPP_OUTCOME_INTERNAL, message: "cancelled") }
    }
    func checkOverrun(_ call: PluginCall) {}
    func log(_ line: String) {}
    func onChange(_ handler: @escaping @Sendable (UInt32, String?) -> Void) {}

    private func run(_ call: PluginCall) {
        let text = JSONWriter.string(.object(call.arguments))
        switch call.kind {
        case .tool(let name):
            if name == "later" { call.observer.callProgress(progress: 1, total: 2, message: "half") }
            try? call.append(["type": "text", "text": .string(text)], size: text.utf8.count)
        case .resource(let uri, _, _):
            try? call.append(["uri": .string(uri), "text": .string(text)], size: text.utf8.count)
        case .prompt:
            try? call.append(
                ["role": "user", "content": ["type": "text", "text": .string(text)]], size: text.utf8.count)
        case .complete:
            break
        }
        _ = call.finish(outcome: MCPP_OUTCOME_OK, message: "")
    }
}

/// Records the answer's status; a stream counts as answered once it ends.
private final class FuzzSink: ReplySink {
    private let state = Locked<(status: Int?, finished: Bool, gone: Bool, goneHandlers: [@Sendable () -> Void])>(
        (nil, false, false, []))
    private let ended = DispatchSemaphore(value: 0)

    var status: Int? { state.withLock { $0.status } }
    var isFinished: Bool { state.withLock { $0.finished || $0.gone } }

    func respond(status: Int, headers: [(String, String)], body: [UInt8]) {
        let first = state.withLock { s -> Bool in
            guard s.status == nil, !s.gone else { return false }
            s.status = status
            s.finished = true
            return true
        }
        if first { ended.signal() }
    }

    func startStream(headers: [(String, String)]) -> Bool {
        state.withLock { s in
            guard s.status == nil, !s.gone else { return false }
            s.status = 200
            return true
        }
    }

    func sendEvent(_ json: [UInt8], comment: Bool, id: String?) {}

    func endStream() {
        let first = state.withLock { s -> Bool in
            guard !s.finished else { return false }
            s.finished = true
            return true
        }
        if first { ended.signal() }
    }

    func onClientGone(_ body: @escaping @Sendable () -> Void) {
        let now = state.withLock { s -> Bool in
            if s.gone { return true }
            s.goneHandlers.append(body)
            return false
        }
        if now { body() }
    }

    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) -> any DispatchTimer {
        let timer = FuzzTimer()
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(delay.nanoseconds))) {
            if !timer.cancelled.load(ordering: .acquiring) { body() }
        }
        return timer
    }

    func wait(seconds: Double) -> Bool { ended.wait(timeout: .now() + seconds) == .success }

    /// The client leaves: what waits for it to go runs.
    func leave() {
        let handlers = state.withLock { s -> [@Sendable () -> Void] in
            s.gone = true
            defer { s.goneHandlers = [] }
            return s.goneHandlers
        }
        for h in handlers { h() }
    }
}

private final class FuzzTimer: DispatchTimer {
    let cancelled = Atomic<Bool>(false)
    func cancel() { cancelled.store(true, ordering: .releasing) }
}

extension FuzzedServer: NonPluginServer {
    var slotsBusy: Int { 0 }
    var concurrency: Int { 4 }
    func checkHealth(diagnose: Bool, _ done: @escaping @Sendable (PluginInstance.HealthCheck) -> Void) {
        done(.answered(ok: true, detail: "fuzzing", report: nil, seconds: 0))
    }
    func destroy(healthWait: Duration) {}
}
