import MCPProtocol
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
}

/// Events a running call reports to whoever serves the request.
public protocol CallObserver: AnyObject, Sendable {
    func callProgress(progress: Double, total: Double?, message: String?)
    func callLog(level: Int32, message: String)
    func callFinished(_ outcome: CallOutcome)
}

/// One request in flight inside the plugin. The plugin sees it as an opaque `mcpp_call *`, which is an id
/// looked up in `CallRegistry`, so a stale or forged handle is detected instead of dereferenced.
public final class PluginCall: Sendable {
    public let id: UInt
    public let kind: CallKind
    let arguments: [String: JSONValue]
    let observer: any CallObserver
    let maxOutputBytes: Int
    private let cancelledFlag = Atomic<Bool>(false)
    private let state: Mutex<State>

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
    }

    init(id: UInt, kind: CallKind, arguments: [String: JSONValue], observer: any CallObserver, maxOutputBytes: Int) {
        self.id = id
        self.kind = kind
        self.arguments = arguments
        self.observer = observer
        self.maxOutputBytes = maxOutputBytes
        self.state = Mutex(State())
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

    func setHandlerRunning(_ running: Bool) { state.withLock { $0.handlerRunning = running } }

    /// Marks the call cancelled; returns false if it already was.
    @discardableResult
    func markCancelled() -> Bool {
        !cancelledFlag.exchange(true, ordering: .acquiringAndReleasing)
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

    private func buildOutcome(_ s: State, code: Int32, message: String) -> CallOutcome {
        if s.overflowed {
            return .internalError("the plugin's result exceeds the host's limit of \(maxOutputBytes) bytes")
        }
        switch code {
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
    private let calls = Mutex<[UInt: PluginCall]>([:])
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
