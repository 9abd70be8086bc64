import MCPProtocol

// The dispatcher's view of one HTTP exchange, in plain values: what came in, and where the reply goes.
// Nothing here knows NIO, so the protocol can be driven by a test without a socket.

/// Header fields as received, in order, with the case-insensitive lookups HTTP needs.
public struct RequestHeaders: Sendable, ExpressibleByDictionaryLiteral {
    public var fields: [(name: String, value: String)]

    public init(_ fields: [(name: String, value: String)]) { self.fields = fields }
    public init(dictionaryLiteral elements: (String, String)...) { fields = elements.map { ($0.0, $0.1) } }

    /// The first value of the named header.
    public func first(_ name: String) -> String? {
        for field in fields where Self.sameName(field.name, name) { return field.value }
        return nil
    }

    /// Every comma-separated element of every field with this name, trimmed (`Accept: a, b` is two values).
    public func values(_ name: String) -> [String] {
        var out: [String] = []
        for field in fields where Self.sameName(field.name, name) {
            for part in field.value.split(separator: ",") {
                let trimmed = part.trimmingSpaces()
                if !trimmed.isEmpty { out.append(String(trimmed)) }
            }
        }
        return out
    }

    /// ASCII case-insensitive comparison without allocating (header names are ASCII tokens).
    static func sameName(_ a: String, _ b: String) -> Bool {
        var ai = a.utf8.makeIterator()
        var bi = b.utf8.makeIterator()
        while true {
            switch (ai.next(), bi.next()) {
            case (nil, nil): return true
            case (let x?, let y?):
                if x == y { continue }
                let lx = x >= 65 && x <= 90 ? x | 0x20 : x
                let ly = y >= 65 && y <= 90 ? y | 0x20 : y
                if lx != ly { return false }
            default: return false
            }
        }
    }
}

/// One complete request to the MCP endpoint, already past the transport's checks (path, Host, Origin, size).
public struct MCPRequest: Sendable {
    public enum Verb: Sendable, Equatable {
        case get, post, delete
        case other(String)
    }

    public var verb: Verb
    public var headers: RequestHeaders
    public var body: [UInt8]

    public init(verb: Verb, headers: RequestHeaders, body: [UInt8]) {
        self.verb = verb
        self.headers = headers
        self.body = body
    }
}

/// A timer the dispatcher armed (a call's deadline, its overrun check); cancelling an expired one does nothing.
public protocol DispatchTimer: Sendable {
    func cancel()
}

/// Where the reply to one request goes: one whole response, or a stream of SSE messages. Callable from any
/// thread; the transport keeps the order of calls. Only the first of `respond`/`startStream` takes effect.
public protocol ReplySink: AnyObject, Sendable {
    /// True once the response is complete or the client is gone.
    var isFinished: Bool { get }
    func respond(status: Int, headers: [(String, String)], body: [UInt8])
    /// Starts an SSE response (status 200); false if a response was already started.
    @discardableResult func startStream(headers: [(String, String)]) -> Bool
    /// One SSE event carrying `json`, or an SSE comment (a keep-alive) when `comment` is true.
    func sendEvent(_ json: [UInt8], comment: Bool)
    func endStream()
    /// Runs `body` if the client goes away before the response is complete (at once if it already has).
    func onClientGone(_ body: @escaping @Sendable () -> Void)
    /// Runs `body` after `delay` on the thread that serves this exchange, so timers fire in order with its writes.
    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) -> any DispatchTimer
}

extension ReplySink {
    func respond(status: Int, body: [UInt8]) { respond(status: status, headers: [], body: body) }
    @discardableResult func startStream() -> Bool { startStream(headers: []) }
    func sendEvent(_ json: [UInt8]) { sendEvent(json, comment: false) }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return s
    }
}
