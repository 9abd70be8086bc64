import Dispatch
import Locking
import MCPProtocol
import PluginABI
import Synchronization

/// What a call asks the plugin to do.
public enum CallKind: Sendable {
    case tool(name: String)
    case resource(uri: String, template: String?, mimeType: String?)
    case prompt(name: String)
    case complete(refKind: Int32, ref: String, argument: String, value: String)

    /// Short text naming the call, for logs and crash reports ("tools/call echo").
    public var activity: String {
        switch self {
        case .tool(let n): return "tools/call \(n)"
        case .resource(let u, _, _): return "resources/read \(u)"
        case .prompt(let n): return "prompts/get \(n)"
        case .complete(_, let r, let a, _): return "completion/complete \(r) \(a)"
        }
    }
}

/// How a plugin ended a call, before the engine shapes it for the client's protocol revision.
public enum CallOutcome: Sendable {
    /// The result object's fields, without era-specific ones (resultType, _meta).
    case result([String: JSONValue])
    case notFound(String)
    case invalidParams(String)
    case internalError(String)
    /// ABI 1.1, 2026-07-28: the call asked for input the client gives in a retry (see `InputRequired`).
    case inputRequired(InputRequired)
    /// ABI 1.1: the call cannot go on without these client capabilities (`MCPP_OUTCOME_NEEDS_CAPABILITY`).
    case needsCapability(String, missing: JSONValue)
    /// The gateway refused the call: its tool's rate limit is reached (docs/gateway.md, "Edge").
    case rateLimited(String, retryAfterSeconds: Int)
}

/// What an attempt that ends in `input_required` hands the dispatcher: the requests to embed (key, method,
/// params), the answers of every round so far and the plugin's own bytes, to seal into `requestState`.
public struct InputRequired: Sendable {
    public var requests: [(key: String, method: String, params: JSONValue)]
    public var answers: [String: JSONValue]
    public var pluginState: [UInt8]?
}

/// What a 2026-07-28 retry brings to the new attempt of a call: every answer so far (keyed as the plugin
/// asked) and the bytes the plugin set in the attempt before. Empty for a first attempt and in legacy sessions.
public struct RetryInput: Sendable {
    public var answers: [String: JSONValue] = [:]
    public var pluginState: [UInt8]?
    public static let none = RetryInput()
    public init(answers: [String: JSONValue] = [:], pluginState: [UInt8]? = nil) {
        self.answers = answers
        self.pluginState = pluginState
    }
}

/// An input request a call made (`mcpp_host.request_input`), handed to the observer to route for its era.
public struct InputRequest: Sendable {
    public var key: String
    /// elicitation/create, sampling/createMessage or roots/list.
    public var method: String
    public var params: JSONValue
    /// Delivers the outcome (`MCPP_INPUT_*`, the answer) to the plugin's callback, once; later calls do nothing.
    public var resolve: @Sendable (Int32, JSONValue?) -> Void
}

/// Events a running call reports to whoever serves the request.
public protocol CallObserver: AnyObject, Sendable {
    func callProgress(progress: Double, total: Double?, message: String?)
    func callLog(level: Int32, message: String)
    func callFinished(_ outcome: CallOutcome)
    /// ABI 1.1: routes an input request (answered now, refused, sent to the client, or suspended); returns
    /// MCPP_OK when `request.resolve` will run, else the status for the plugin (and it must not run).
    func callRequestsInput(_ call: PluginCall, _ request: InputRequest) -> Int32
    /// The input capabilities (elicitation, sampling, roots) this request's client can be asked for now: what a
    /// server behind the gateway is told the client declared (docs/gateway.md, "Input requests").
    var inputCapabilities: JSONValue { get }
}

extension CallObserver {
    public func callRequestsInput(_ call: PluginCall, _ request: InputRequest) -> Int32 { MCPP_E_INVALID }
    public var inputCapabilities: JSONValue { [:] }
}

/// One request in flight inside the plugin. The plugin sees it as an opaque `mcpp_call *`, which is an id
/// looked up in `CallRegistry`, so a stale or forged handle is detected instead of dereferenced.
public final class PluginCall: Sendable {
    public let id: UInt
    public let kind: CallKind
    let arguments: [String: JSONValue]
    let observer: any CallObserver
    let maxOutputBytes: Int
    /// Runs input callbacks where the plugin's handlers run (the handler pool).
    let callbackQueue: @Sendable (@escaping @Sendable () -> Void) -> Void
    /// 2026-07-28 retries: the answers given so far and the plugin's bytes from the attempt before.
    let priorAnswers: [String: JSONValue]
    let priorState: [UInt8]?
    private let cancelledFlag = Atomic<Bool>(false)
    /// The client's own `notifications/cancelled` ended it (2025 era): no response is sent for it.
    let cancelledByClientNotice = Atomic<Bool>(false)
    private let state: Locked<State>

    struct State {
        var finished = false
        var handlerRunning = false
        var outputBytes = 0
        var overflowed = false
        var content: [JSONValue] = []
        var structured: JSONValue?
        var role: Int32 = 0
        var description: String?
        var completions: [String] = []
        var completionTotal: Int64?
        var completionHasMore: Bool?
        /// C strings handed to the plugin; freed when the call is gone.
        var borrowed: [UnsafeMutablePointer<CChar>] = []
        var borrowedByKey: [String: (UnsafePointer<CChar>, Int)] = [:]
        // ABI 1.1
        var inputKeys: Set<String> = []
        /// Requests the client answers in a retry (2026-07-28), in the order made.
        var suspended: [(key: String, method: String, params: JSONValue)] = []
        /// Callbacks held until the handler returns (SUSPENDED ones, so every request the handler makes goes
        /// into one input_required).
        var deferred: [@Sendable () -> Void] = []
        var cancelHooks: [@Sendable () -> Void] = []
        var answersUsed: [String: JSONValue] = [:]
        var pluginState: [UInt8]?
        var cache: (ttlMs: Int64, scope: Int32)?
        var missingCapabilities: [String: JSONValue] = [:]
    }

    init(
        id: UInt, kind: CallKind, arguments: [String: JSONValue], observer: any CallObserver, maxOutputBytes: Int,
        priorAnswers: [String: JSONValue] = [:], priorState: [UInt8]? = nil,
        callbackQueue: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void = {
            DispatchQueue.global().async(execute: $0)
        }
    ) {
        self.id = id
        self.kind = kind
        self.arguments = arguments
        self.observer = observer
        self.maxOutputBytes = maxOutputBytes
        self.priorAnswers = priorAnswers
        self.priorState = priorState
        self.callbackQueue = callbackQueue
        self.state = Locked(State())
    }

    deinit {
        state.withLock { s in
            for p in s.borrowed { p.deallocate() }
        }
    }

    public var isCancelled: Bool { cancelledFlag.load(ordering: .acquiring) }
    public var isFinished: Bool { state.withLock { $0.finished } }
    /// True while the plugin's handler function has not returned.
    public var isHandlerRunning: Bool { state.withLock { $0.handlerRunning } }

    func setHandlerRunning(_ running: Bool) {
        let deferred = state.withLock { s -> [@Sendable () -> Void] in
            s.handlerRunning = running
            guard !running else { return [] }
            defer { s.deferred = [] }
            return s.deferred
        }
        for job in deferred { callbackQueue(job) }
    }

    /// Marks the call cancelled (running the cancel hooks once); returns false if it already was.
    @discardableResult
    func markCancelled() -> Bool {
        guard !cancelledFlag.exchange(true, ordering: .acquiringAndReleasing) else { return false }
        for hook in state.withLock({ s -> [@Sendable () -> Void] in
            defer { s.cancelHooks = [] }
            return s.cancelHooks
        }) { hook() }
        return true
    }

    /// Runs `hook` when the call is cancelled (at once if it already is).
    func onCancel(_ hook: @escaping @Sendable () -> Void) {
        let now = state.withLock { s -> Bool in
            if isCancelled { return true }
            s.cancelHooks.append(hook)
            return false
        }
        if now { hook() }
    }

    // MARK: Input requests (ABI 1.1)

    /// Claims `key` for a new input request; false if the call is finished or the key was used.
    func claimInputKey(_ key: String) -> Bool {
        state.withLock { s in
            guard !s.finished, !s.inputKeys.contains(key) else { return false }
            s.inputKeys.insert(key)
            return true
        }
    }

    /// Runs `job` where callbacks run: after the handler returned when `afterHandler`, else now (queued).
    func schedule(afterHandler: Bool, _ job: @escaping @Sendable () -> Void) {
        let now = state.withLock { s -> Bool in
            guard afterHandler, s.handlerRunning else { return true }
            s.deferred.append(job)
            return false
        }
        if now { callbackQueue(job) }
    }

    /// 2026-07-28: a request the client answers in the retry; the attempt ends with input_required.
    func suspend(_ key: String, method: String, params: JSONValue) {
        state.withLock { $0.suspended.append((key, method, params)) }
    }

    /// 2026-07-28: an answer from an earlier round, used again by this attempt (kept for the next round).
    func useAnswer(_ key: String, _ answer: JSONValue) { state.withLock { $0.answersUsed[key] = answer } }

    func recordMissing(_ capabilities: [String: JSONValue]) {
        state.withLock { s in s.missingCapabilities.merge(capabilities) { a, _ in a } }
    }

    // MARK: Arguments

    /// A NUL-terminated copy of `text` that lives as long as the call.
    func borrow(_ key: String, _ text: String) -> (UnsafePointer<CChar>, Int) {
        state.withLock { s in
            if let b = s.borrowedByKey[key] { return b }
            let utf8 = Array(text.utf8)
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count + 1)
            utf8.withUnsafeBufferPointer { src in
                UnsafeMutableRawPointer(p).copyMemory(from: src.baseAddress!, byteCount: utf8.count)
            }
            p[utf8.count] = 0
            s.borrowed.append(p)
            let b = (UnsafePointer(p), utf8.count)
            s.borrowedByKey[key] = b
            return b
        }
    }

    /// A copy of `data` that lives as long as the call (the same pointer for the same key).
    func borrowBytes(_ key: String, _ data: [UInt8]) -> (UnsafePointer<UInt8>, Int) {
        state.withLock { s in
            if let b = s.borrowedByKey[key] {
                return (UnsafeRawPointer(b.0).assumingMemoryBound(to: UInt8.self), b.1)
            }
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: max(data.count, 1))
            data.withUnsafeBytes { src in
                if let base = src.baseAddress {
                    UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: data.count)
                }
            }
            s.borrowed.append(p)
            s.borrowedByKey[key] = (UnsafePointer(p), data.count)
            return (UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), data.count)
        }
    }

    // MARK: Building the result

    enum AppendError: Error { case finished, tooLarge, invalid }

    /// Appends one content item, counting its size against the output limit.
    func append(_ item: JSONValue, size: Int) throws(AppendError) {
        try state.withLock { (s) throws(AppendError) in
            guard !s.finished else { throw .finished }
            guard s.outputBytes + size <= maxOutputBytes else {
                s.overflowed = true
                throw .tooLarge
            }
            s.outputBytes += size
            switch kind {
            case .prompt:
                s.content.append(["role": s.role == 1 ? "assistant" : "user", "content": item])
            default:
                s.content.append(item)
            }
        }
    }

    func update(_ body: (inout State) throws(AppendError) -> Void) throws(AppendError) {
        try state.withLock { (s) throws(AppendError) in
            guard !s.finished else { throw .finished }
            try body(&s)
        }
    }

    /// Ends the call once; later calls return false.
    func finish(outcome code: Int32, message: String) -> Bool {
        let outcome: CallOutcome? = state.withLock { s in
            guard !s.finished else { return nil }
            s.finished = true
            return buildOutcome(s, code: code, message: message)
        }
        guard let outcome else { return false }
        observer.callFinished(outcome)
        return true
    }

    /// Ends the call once with an outcome built elsewhere (a command server's program answered); later calls
    /// return false. A result larger than the output limit becomes the same internal error a plugin's would.
    func finish(with outcome: CallOutcome, size: Int = 0) -> Bool {
        let final: CallOutcome? = state.withLock { s in
            guard !s.finished else { return nil }
            s.finished = true
            if size > maxOutputBytes {
                return .internalError("the program's result exceeds the host's limit of \(maxOutputBytes) bytes")
            }
            return outcome
        }
        guard let final else { return false }
        observer.callFinished(final)
        return true
    }

    private func buildOutcome(_ s: State, code: Int32, message: String) -> CallOutcome {
        if s.overflowed {
            return .internalError("the plugin's result exceeds the host's limit of \(maxOutputBytes) bytes")
        }
        if !s.suspended.isEmpty {
            // Earlier answers the plugin did not ask for again are kept too: it may ask for them later.
            return .inputRequired(
                InputRequired(
                    requests: s.suspended, answers: priorAnswers.merging(s.answersUsed) { _, b in b },
                    pluginState: s.pluginState))
        }
        switch code {
        case 5:
            return .needsCapability(
                message.isEmpty ? "the call needs a capability the client did not declare" : message,
                missing: .object(s.missingCapabilities))
        case 2: return .notFound(message)
        case 3: return .invalidParams(message.isEmpty ? "invalid arguments" : message)
        case 0, 1: break
        default: return .internalError(message.isEmpty ? "the plugin failed" : message)
        }
        var o: [String: JSONValue] = [:]
        switch kind {
        case .tool:
            var content = s.content
            if code == 1 {
                if !message.isEmpty { content.append(["type": "text", "text": .string(message)]) }
                o["isError"] = true
            }
            o["content"] = .array(content)
            if let st = s.structured { o["structuredContent"] = st }
        case .resource:
            o["contents"] = .array(s.content)
            if let cache = s.cache {
                o["ttlMs"] = .int(cache.ttlMs)
                o["cacheScope"] = cache.scope == 1 ? "public" : "private"
            }
        case .prompt:
            o["messages"] = .array(s.content)
            if let d = s.description { o["description"] = .string(d) }
        case .complete:
            var c: [String: JSONValue] = ["values": .array(s.completions.prefix(100).map { .string($0) })]
            if let t = s.completionTotal, t >= 0 { c["total"] = .int(t) }
            if let m = s.completionHasMore {
                c["hasMore"] = .bool(m || s.completions.count > 100)
            } else if s.completions.count > 100 {
                c["hasMore"] = true
            }
            o["completion"] = .object(c)
        }
        if code == 1, case .tool = kind {
        } else if code == 1 {
            // TOOL_ERROR outside tools/call: the plugin misused the outcome; report it as an internal error.
            return .internalError(message.isEmpty ? "the plugin reported an error" : message)
        }
        return .result(o)
    }
}

/// Maps the integer handles the plugin holds to live calls.
final class CallRegistry: Sendable {
    private let calls = Locked<[UInt: PluginCall]>([:])
    private let nextID = Atomic<UInt>(1)

    func makeID() -> UInt { nextID.add(1, ordering: .relaxed).oldValue }

    func insert(_ call: PluginCall) { calls.withLock { $0[call.id] = call } }

    func lookup(_ handle: OpaquePointer?) -> PluginCall? {
        guard let handle else { return nil }
        let id = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(handle)))
        return calls.withLock { $0[id] }
    }

    @discardableResult
    func remove(_ id: UInt) -> PluginCall? { calls.withLock { $0.removeValue(forKey: id) } }

    static func handle(for call: PluginCall) -> OpaquePointer {
        OpaquePointer(bitPattern: call.id)!
    }
}
