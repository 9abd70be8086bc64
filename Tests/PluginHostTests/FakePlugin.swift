import Dispatch
import MCPProtocol
import PluginABI
import Synchronization

@testable import PluginHost

/// A plugin made of Swift closures instead of a `.so`, so the dispatcher is tested alone. Its tools:
/// `echo` (runs inline, returns its `text`; with `outcome` "toolError", "notFound" or "internal" it finishes with
/// that outcome instead), `progress` (reports `steps` progress events from another thread, then finishes), `slow`
/// (finishes only when cancelled), and `tool-000`… for pagination. `addTool` declares one more later (as a
/// plugin's list-changed event does).
final class FakePlugin: DispatchedPlugin {
    let serverName = "fake"
    let serverVersion = "1.2.3"
    let serverTitle: String? = "Fake Plugin"
    let instructions: String? = nil
    var catalog: Catalog { state.withLock { $0.catalog } }
    let handlers: PluginHandlers = [.tools]
    private let nextID = Atomic<UInt>(1)
    private let state = Mutex<State>(State())
    private let slowStarted = DispatchSemaphore(value: 0)
    private let cancelledCallFinished = DispatchSemaphore(value: 0)
    private let submittedCallReturned = DispatchSemaphore(value: 0)

    struct State {
        var cancelled: [String] = []
        var logs: [String] = []
        var running: [UInt: PluginCall] = [:]
        var catalog = Catalog()
    }

    init(extraTools: Int = 0) throws {
        var catalog = Catalog()
        try catalog.addTool(
            name: "echo", title: nil, description: "returns its text", inputSchema: #"{"type":"object"}"#,
            outputSchema: nil, annotations: nil, nonblocking: true)
        try catalog.addTool(
            name: "progress", title: nil, description: "reports progress", inputSchema: nil, outputSchema: nil,
            annotations: nil)
        try catalog.addTool(
            name: "slow", title: nil, description: "waits to be cancelled", inputSchema: nil, outputSchema: nil,
            annotations: nil)
        for i in 0..<extraTools {
            let name = "tool-" + String(String(i + 1000).dropFirst())
            try catalog.addTool(
                name: name, title: nil, description: nil, inputSchema: nil, outputSchema: nil, annotations: nil)
        }
        state.withLock { $0.catalog = catalog }
    }

    /// Declares another tool (it answers like the default: an empty success).
    func addTool(_ name: String) throws {
        try state.withLock { s in
            try s.catalog.addTool(
                name: name, title: nil, description: nil, inputSchema: nil, outputSchema: nil, annotations: nil)
        }
    }

    /// Names of the tools whose calls were cancelled, in order.
    var cancelled: [String] { state.withLock { $0.cancelled } }
    var runningCount: Int { state.withLock { $0.running.count } }

    /// Waits until a `slow` call has started in the plugin; false if none did within `seconds`.
    func waitForSlowCall(seconds: Double = 5) -> Bool { slowStarted.wait(timeout: .now() + seconds) == .success }

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
    /// Runs the call on another thread, like a handler thread; `waitForSubmittedCall` waits until it returned.
    func submit(_ call: PluginCall) {
        DispatchQueue.global().async {
            self.run(call)
            self.submittedCallReturned.signal()
        }
    }

    /// Waits until a submitted call's handler returned (for a finished call: after the dispatcher heard of it).
    func waitForSubmittedCall(seconds: Double = 5) -> Bool {
        submittedCallReturned.wait(timeout: .now() + seconds) == .success
    }

    private func run(_ call: PluginCall) {
        guard case .tool(let name) = call.kind else {
            _ = call.finish(outcome: MCPP_OUTCOME_NOT_FOUND, message: "no such thing")
            return
        }
        switch name {
        case "echo":
            let text = call.arguments["text"]?.stringValue ?? ""
            try? call.append(["type": "text", "text": .string(text)], size: text.utf8.count)
            let outcome: Int32 =
                switch call.arguments["outcome"]?.stringValue {
                case "toolError": MCPP_OUTCOME_TOOL_ERROR
                case "notFound": MCPP_OUTCOME_NOT_FOUND
                case "internal": MCPP_OUTCOME_INTERNAL
                default: MCPP_OUTCOME_OK
                }
            _ = call.finish(outcome: outcome, message: "")
        case "progress":
            let steps = Int(call.arguments["steps"]?.numberValue ?? 3)
            for step in 1...steps {
                call.observer.callProgress(progress: Double(step), total: Double(steps), message: "step \(step)")
            }
            call.observer.callLog(level: 6, message: "done")
            try? call.append(["type": "text", "text": "finished"], size: 8)
            _ = call.finish(outcome: MCPP_OUTCOME_OK, message: "")
        case "slow":
            state.withLock { $0.running[call.id] = call }
            slowStarted.signal()
            if call.isCancelled { finishCancelled(call) }
        default:
            _ = call.finish(outcome: MCPP_OUTCOME_OK, message: "")
        }
    }

    /// Like a real plugin, the handler notices the cancellation on its own thread and finishes there.
    func cancel(_ call: PluginCall) {
        guard call.markCancelled() else { return }
        if case .tool(let name) = call.kind { state.withLock { $0.cancelled.append(name) } }
        DispatchQueue.global().async {
            self.finishCancelled(call)
            self.cancelledCallFinished.signal()
        }
    }

    /// Waits until a cancelled call has finished (and the dispatcher has heard of it).
    func waitForCancelledCall(seconds: Double = 5) -> Bool {
        cancelledCallFinished.wait(timeout: .now() + seconds) == .success
    }

    private func finishCancelled(_ call: PluginCall) {
        // `ignoreCancel`: a handler that overruns its deadline, so the host's own deadline answer is the one sent.
        if call.arguments["ignoreCancel"] == true { return }
        let wasRunning = state.withLock { $0.running.removeValue(forKey: call.id) } != nil
        if wasRunning { _ = call.finish(outcome: MCPP_OUTCOME_INTERNAL, message: "cancelled") }
    }

    func checkOverrun(_ call: PluginCall) {}
    func log(_ line: String) { state.withLock { $0.logs.append(line) } }
    func onChange(_ handler: @escaping @Sendable (UInt32, String?) -> Void) {}
}

/// Records what the dispatcher answers, and lets a test wait for the answer to end (with a deadline).
final class RecordingSink: ReplySink {
    struct Reply {
        var status: Int?
        var headers: [(String, String)] = []
        var body: [UInt8] = []
        var streamed = false
        var events: [[UInt8]] = []
        /// The `id:` of each event (nil: none), and of each priming event (an id, no data).
        var eventIDs: [String?] = []
        var primingIDs: [String?] = []
        var comments = 0
        var finished = false
    }

    private let state = Mutex<
        (reply: Reply, goneHandlers: [@Sendable () -> Void], gone: Bool, goAwayAfterEvents: Int?)
    >((Reply(), [], false, nil))

    /// A sink whose connection drops after it received `events` data events.
    convenience init(goAwayAfterEvents events: Int) {
        self.init()
        state.withLock { $0.goAwayAfterEvents = events }
    }
    private let ended = DispatchSemaphore(value: 0)

    var isFinished: Bool { state.withLock { $0.reply.finished || $0.gone } }
    var reply: Reply { state.withLock { $0.reply } }

    func respond(status: Int, headers: [(String, String)], body: [UInt8]) {
        let first = state.withLock { s -> Bool in
            guard !s.reply.finished, !s.reply.streamed, !s.gone else { return false }
            s.reply.status = status
            s.reply.headers = headers
            s.reply.body = body
            s.reply.finished = true
            return true
        }
        if first { ended.signal() }
    }

    func startStream(headers: [(String, String)]) -> Bool {
        state.withLock { s in
            guard !s.reply.finished, !s.reply.streamed, !s.gone else { return false }
            s.reply.status = 200
            s.reply.headers = headers
            s.reply.streamed = true
            return true
        }
    }

    func sendEvent(_ json: [UInt8], comment: Bool, id: String?) {
        state.withLock { s in
            guard s.reply.streamed, !s.reply.finished, !s.gone else { return }
            if let limit = s.goAwayAfterEvents, s.reply.events.count >= limit {
                s.gone = true  // the connection dropped: this event and the later ones never arrive
                return
            }
            if comment {
                s.reply.comments += 1
            } else if !json.isEmpty {
                s.reply.events.append(json)
                s.reply.eventIDs.append(id)
            } else {
                s.reply.primingIDs.append(id)
            }
        }
    }

    func endStream() {
        let first = state.withLock { s -> Bool in
            guard s.reply.streamed, !s.reply.finished else { return false }
            s.reply.finished = true
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

    /// The client disconnects.
    func goAway() {
        let handlers = state.withLock { s -> [@Sendable () -> Void] in
            s.gone = true
            defer { s.goneHandlers = [] }
            return s.reply.finished ? [] : s.goneHandlers
        }
        for handler in handlers { handler() }
    }

    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) -> any DispatchTimer {
        let item = DispatchWorkItem(block: body)
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(delay.wholeNanoseconds)), execute: item)
        return WorkItemTimer(item: item)
    }

    /// Waits until the response is complete; false if it was not within `seconds`.
    func waitUntilFinished(seconds: Double = 5) -> Bool {
        if state.withLock({ $0.reply.finished }) { return true }
        return ended.wait(timeout: .now() + seconds) == .success || state.withLock { $0.reply.finished }
    }

    /// The whole JSON response, parsed.
    func json() throws -> JSONValue { try JSONParser.parse(reply.body) }

    /// Each SSE event, parsed.
    func eventMessages() throws -> [JSONValue] { try reply.events.map { try JSONParser.parse($0) } }

    func header(_ name: String) -> String? {
        reply.headers.first { RequestHeaders.sameName($0.0, name) }?.1
    }
}

struct WorkItemTimer: DispatchTimer, @unchecked Sendable {
    // @unchecked: DispatchWorkItem is thread-safe but not marked Sendable.
    let item: DispatchWorkItem
    func cancel() { item.cancel() }
}
