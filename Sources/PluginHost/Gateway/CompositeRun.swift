import Contracts
import Dispatch
import Locking
import MCPProtocol
import Synchronization

/// One run of a composite tool (docs/gateway.md, "Composite tools"): its steps are calls the gateway makes to its
/// own tools (so each is routed, retried, cached and counted like a client's), run by the composite's policy. The
/// run reports progress after each step, cancels every running step when the client cancels, and answers once.
final class CompositeRun: Sendable {
    /// How a step ended.
    enum StepResult: Sendable {
        case ok([String: JSONValue])
        /// The tool answered with `isError`.
        case toolError([String: JSONValue])
        case failed(String)

        var succeeded: Bool { if case .ok = self { true } else { false } }

        var summary: String {
            switch self {
            case .ok(let r): return Self.text(r) ?? "ok"
            case .toolError(let r): return "tool error: " + (Self.text(r) ?? "")
            case .failed(let why): return why
            }
        }

        var result: [String: JSONValue]? {
            switch self {
            case .ok(let r), .toolError(let r): return r
            case .failed: return nil
            }
        }

        /// The first text block of a result.
        static func text(_ r: [String: JSONValue]) -> String? {
            guard case .array(let blocks)? = r["content"] else { return nil }
            return blocks.lazy.compactMap { $0["type"]?.stringValue == "text" ? $0["text"]?.stringValue : nil }.first
        }
    }

    /// Receives a step call's end.
    final class StepObserver: CallObserver {
        let done: @Sendable (StepResult) -> Void
        init(_ done: @escaping @Sendable (StepResult) -> Void) { self.done = done }
        func callProgress(progress: Double, total: Double?, message: String?) {}
        func callLog(level: Int32, message: String) {}
        func callFinished(_ outcome: CallOutcome) {
            switch outcome {
            case .result(let r): done(r["isError"]?.boolValue == true ? .toolError(r) : .ok(r))
            case .notFound(let m), .invalidParams(let m), .internalError(let m): done(.failed(m))
            case .inputRequired: done(.failed("the step asked for input, which a composite cannot give"))
            case .needsCapability(let m, _), .rateLimited(let m, _): done(.failed(m))
            }
        }
    }

    private struct State {
        var results: [StepResult?]
        var running: [Int: PluginCall] = [:]
        var next = 0
        var finished = false
    }

    let call: PluginCall
    let tool: CompositeTool
    private let gateway: GatewayServer
    private let input: [String: JSONValue]
    private let state: Locked<State>
    /// Progress notifications sent (see `progress`).
    private let progressLock = Locked(0)
    /// Sequential: steps already done when a checkpoint resumed the run.
    private let resumedAt: Int

    init(
        call: PluginCall, tool: CompositeTool, gateway: GatewayServer, input: [String: JSONValue],
        done: [StepResult] = []
    ) {
        self.call = call
        self.tool = tool
        self.gateway = gateway
        self.input = input
        self.resumedAt = done.count
        var results = [StepResult?](repeating: nil, count: tool.steps.count)
        for (i, r) in done.enumerated() { results[i] = r }
        self.state = Locked(State(results: results, next: done.count))
    }

    func start() {
        call.onCancel { [self] in cancelAll() }
        switch tool.policy {
        case .parallel, .aggregate:
            for _ in 0..<min(tool.maxConcurrency, tool.steps.count) { launchNext() }
        case .sequential:
            runSequential(tool.steps.count == resumedAt ? tool.steps.count : resumedAt)
        case .failover:
            runFailover(step: 0, attempt: 1)
        }
    }

    // MARK: Steps

    /// Runs step `i` as a call of the gateway's own tool, with its deadline; `done` hears how it ended.
    private func run(_ i: Int, arguments: [String: JSONValue], _ done: @escaping @Sendable (StepResult) -> Void) {
        let step = tool.steps[i]
        let timedOut = Atomic<Bool>(false)
        let sub = gateway.makeStepCall(tool: step.tool, arguments: arguments) { [self] result in
            state.withLock { _ = $0.running.removeValue(forKey: i) }
            if timedOut.load(ordering: .acquiring) {
                done(.failed("step \(i) (\(step.tool)) took longer than \(tool.stepTimeout ?? 0) s"))
            } else {
                done(result)
            }
        }
        let live = state.withLock { s -> Bool in
            guard !s.finished else { return false }
            s.running[i] = sub
            return true
        }
        guard live else { return }
        if let seconds = tool.stepTimeout {
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds) {
                if !sub.isCancelled, self.state.withLock({ $0.running[i] === sub }) {
                    timedOut.store(true, ordering: .releasing)
                    _ = sub.markCancelled()
                }
            }
        }
        gateway.startStep(sub)
    }

    /// One progress notification per finished step, counting up: the count and the send are one step under a
    /// lock of their own, so parallel steps never send a smaller count after a larger one.
    private func progress(_ i: Int, _ r: StepResult) {
        progressLock.withLock { sent in
            sent += 1
            call.observer.callProgress(
                progress: Double(sent), total: Double(tool.steps.count),
                message: "step \(i) (\(tool.steps[i].tool)): \(r.succeeded ? "ok" : "failed")")
        }
    }

    // MARK: parallel, aggregate

    private func launchNext() {
        let i = state.withLock { s -> Int? in
            guard !s.finished, s.next < tool.steps.count else { return nil }
            defer { s.next += 1 }
            return s.next
        }
        guard let i else { return }
        let args = tool.steps[i].arguments.map { render($0, results: []) }?.objectValue ?? input
        run(i, arguments: args) { [self] r in
            let all = state.withLock { s -> Bool in
                s.results[i] = r
                return s.results.allSatisfy { $0 != nil }
            }
            progress(i, r)
            if all { finishFanOut() } else { launchNext() }
        }
    }

    private func finishFanOut() {
        let results = state.withLock { $0.results.map { $0! } }
        let good = results.filter(\.succeeded).count
        var content: [JSONValue] = []
        var structured: [JSONValue] = []
        for (i, r) in results.enumerated() {
            let step = tool.steps[i]
            var entry: [String: JSONValue] = [
                "step": .int(Int64(i)), "tool": .string(step.tool), "ok": .bool(r.succeeded),
            ]
            if let s = r.result?["structuredContent"] { entry["structuredContent"] = s }
            if !r.succeeded { entry["error"] = .string(r.summary) }
            structured.append(.object(entry))
            if tool.policy == .aggregate {
                if case .ok(let res) = r, case .array(let blocks)? = res["content"] { content += blocks }
            } else {
                content.append(
                    [
                        "type": "text",
                        "text": .string("step \(i) (\(step.tool)): \(r.succeeded ? "" : "FAILED: ")\(r.summary)"),
                    ])
            }
        }
        if tool.policy == .aggregate, good < results.count {
            content.append([
                "type": "text", "text": .string("\(results.count - good) of \(results.count) steps failed"),
            ])
        }
        finish(
            .result([
                "content": .array(content), "isError": .bool(good == 0),
                "structuredContent": [
                    "policy": .string(tool.policy.rawValue), "succeeded": .int(Int64(good)),
                    "failed": .int(Int64(results.count - good)), "steps": .array(structured),
                ],
            ]))
    }

    // MARK: sequential

    private func runSequential(_ i: Int) {
        guard i < tool.steps.count else {
            let results = state.withLock { $0.results.map { $0! } }
            var last = results.last!.result ?? [:]
            last["structuredContent"] =
                last["structuredContent"] ?? [
                    "policy": "sequential", "steps": .array(results.map { .string($0.summary) }),
                ]
            return finish(.result(last))
        }
        let done = state.withLock { s in s.results.prefix(i).map { $0! } }
        let args = tool.steps[i].arguments.map { render($0, results: done) }?.objectValue ?? input
        run(i, arguments: args) { [self] r in
            state.withLock { $0.results[i] = r }
            progress(i, r)
            if r.succeeded {
                runSequential(i + 1)
            } else {
                let token = gateway.checkpoints.save(tool: tool.name, input: input, done: done)
                finish(
                    .result([
                        "isError": true,
                        "content": [
                            [
                                "type": "text",
                                "text": .string(
                                    "step \(i) (\(tool.steps[i].tool)) failed: \(r.summary); \(i) step(s) done; call again with checkpoint=\(token) to resume at step \(i)"
                                ),
                            ]
                        ],
                        "structuredContent": [
                            "policy": "sequential", "completed": .int(Int64(i)), "failedStep": .int(Int64(i)),
                            "checkpoint": .string(token),
                        ],
                    ]))
            }
        }
    }

    // MARK: failover

    private func runFailover(step i: Int, attempt: Int) {
        guard i < tool.steps.count else {
            let results = state.withLock { $0.results.compactMap { $0 } }
            return finish(
                .result([
                    "isError": true,
                    "content": [
                        [
                            "type": "text",
                            "text": .string(
                                "every alternative failed: "
                                    + results.enumerated().map { "\(tool.steps[$0].tool): \($1.summary)" }.joined(
                                        separator: "; ")),
                        ]
                    ],
                ]))
        }
        let args = tool.steps[i].arguments.map { render($0, results: []) }?.objectValue ?? input
        run(i, arguments: args) { [self] r in
            if case .ok(var res) = r {
                state.withLock { $0.results[i] = r }
                progress(i, r)
                var meta = res["structuredContent"]?.objectValue ?? [:]
                if res["structuredContent"] == nil {
                    meta = ["policy": "failover", "answeredBy": .string(tool.steps[i].tool)]
                    res["structuredContent"] = .object(meta)
                }
                return finish(.result(res))
            }
            // Tried again only when running it twice is harmless; otherwise the next alternative is the retry.
            if attempt < tool.steps[i].retries, gateway.isHarmless(tool.steps[i].tool) {
                let pause = 0.05 * Double(1 << min(attempt - 1, 5)) * Double.random(in: 0.5..<1.5)
                DispatchQueue.global().asyncAfter(deadline: .now() + pause) { [self] in
                    runFailover(step: i, attempt: attempt + 1)
                }
                return
            }
            state.withLock { $0.results[i] = r }
            progress(i, r)
            runFailover(step: i + 1, attempt: 1)
        }
    }

    // MARK: The end

    private func finish(_ outcome: CallOutcome) {
        let first = state.withLock { s -> Bool in
            defer { s.finished = true }
            return !s.finished
        }
        guard first else { return }
        _ = call.finish(with: outcome)
    }

    private func cancelAll() {
        let running = state.withLock { s -> [PluginCall] in
            s.finished = true
            return Array(s.running.values)
        }
        for sub in running { _ = sub.markCancelled() }
        _ = call.finish(with: .internalError("cancelled"))
    }

    // MARK: Templates

    /// A step's arguments with its templates filled in: a string that is one template becomes the value itself
    /// (its JSON type kept), a template inside text becomes text.
    private func render(_ v: JSONValue, results: [StepResult]) -> JSONValue {
        switch v {
        case .string(let s):
            let pieces = CompositeTool.pieces(s)
            if pieces.count == 1, case .template(let path) = pieces[0] { return value(path, results) ?? .null }
            guard pieces.contains(where: { if case .template = $0 { true } else { false } }) else { return v }
            var out = ""
            for p in pieces {
                switch p {
                case .text(let t): out += t
                case .template(let path):
                    let x = value(path, results) ?? .null
                    out += x.stringValue ?? (x == .null ? "" : JSONWriter.string(x))
                }
            }
            return .string(out)
        case .array(let a): return .array(a.map { render($0, results: results) })
        case .object(let o): return .object(o.mapValues { render($0, results: results) })
        default: return v
        }
    }

    private func value(_ path: [String], _ results: [StepResult]) -> JSONValue? {
        var rest = path[...]
        let result: [String: JSONValue]?
        switch rest.popFirst() {
        case "input":
            return rest.first.flatMap { input[$0] }
        case "steps":
            guard let n = rest.popFirst().flatMap({ Int($0) }), n < results.count else { return nil }
            result = results[n].result
        case "previous":
            result = results.last?.result
        default:
            return nil
        }
        guard let result else { return nil }
        switch rest.popFirst() {
        case "text": return StepResult.text(result).map { .string($0) }
        case "structured":
            var v: JSONValue? = result["structuredContent"]
            for key in rest { v = v?[key] }
            return v
        default: return nil
        }
    }
}

/// Sequential composites' checkpoints: what a failed run had done, kept 10 minutes for a call that resumes it.
final class CompositeCheckpoints: Sendable {
    struct Saved: Sendable {
        var tool: String
        var input: [String: JSONValue]
        var done: [CompositeRun.StepResult]
        var expires: ContinuousClock.Instant
    }

    static let keep: Duration = .seconds(600)
    static let maxSaved = 1024
    private let saved = Locked<[String: Saved]>([:])

    func save(tool: String, input: [String: JSONValue], done: [CompositeRun.StepResult]) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        let token = bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
            .joined()
        saved.withLock { s in
            let now = ContinuousClock.now
            s = s.filter { $0.value.expires > now }
            if s.count >= Self.maxSaved, let oldest = s.min(by: { $0.value.expires < $1.value.expires })?.key {
                s[oldest] = nil
            }
            s[token] = Saved(tool: tool, input: input, done: done, expires: now + Self.keep)
        }
        return token
    }

    /// The saved run of `tool` (and forgets it: a checkpoint resumes once).
    func take(_ token: String, tool: String) -> Saved? {
        saved.withLock { s in
            guard let v = s[token], v.tool == tool, v.expires > .now else { return nil }
            s[token] = nil
            return v
        }
    }
}

typealias CompositeStepObserver = CompositeRun.StepObserver
