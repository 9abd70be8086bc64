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
            for part in field.value.utf8.split(separator: UInt8(ascii: ",")) {
                let trimmed = part.trimmingSpaceBytes()
                if !trimmed.isEmpty { out.append(String(Substring(trimmed))) }
            }
        }
        return out
    }

    /// ASCII case-insensitive comparison on the bytes (header names are ASCII tokens); a different length, the
    /// usual case, answers at once. (Character-wise String operations cost 14,000 instructions a request here.)
    static func sameName(_ a: String, _ b: String) -> Bool {
        let au = a.utf8
        let bu = b.utf8
        guard au.count == bu.count else { return false }
        return au.elementsEqual(bu) { x, y in
            x == y || (x | 0x20 == y | 0x20 && x | 0x20 >= UInt8(ascii: "a") && x | 0x20 <= UInt8(ascii: "z"))
        }
    }

    /// A media type without its parameters, trimmed and lowercased: ` Application/JSON; charset=utf-8` →
    /// `application/json`.
    static func mediaType(_ value: String) -> String {
        let u = value.utf8
        return asciiLowercased(
            u[u.startIndex..<(u.firstIndex(of: UInt8(ascii: ";")) ?? u.endIndex)].trimmingSpaceBytes())
    }
}

/// The bytes as a String with ASCII letters lowercased (header tokens; other bytes pass unchanged).
func asciiLowercased(_ bytes: Substring.UTF8View) -> String {
    String(unsafeUninitializedCapacity: bytes.count) { buffer in
        var i = 0
        for b in bytes {
            buffer[i] = b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") ? b | 0x20 : b
            i += 1
        }
        return i
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
    /// One SSE event carrying `json` (with an `id:` field when `id` is given; empty `json` with an id is a
    /// priming event, `data:` empty), or an SSE comment (a keep-alive) when `comment` is true.
    func sendEvent(_ json: [UInt8], comment: Bool, id: String?)
    func endStream()
    /// Runs `body` if the client goes away before the response is complete (at once if it already has).
    func onClientGone(_ body: @escaping @Sendable () -> Void)
    /// Runs `body` after `delay` on the thread that serves this exchange, so timers fire in order with its writes.
    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) -> any DispatchTimer
}

extension ReplySink {
    func respond(status: Int, body: [UInt8]) { respond(status: status, headers: [], body: body) }
    @discardableResult func startStream() -> Bool { startStream(headers: []) }
    func sendEvent(_ json: [UInt8]) { sendEvent(json, comment: false, id: nil) }
    func sendEvent(_ json: [UInt8], comment: Bool) { sendEvent(json, comment: comment, id: nil) }
}

extension Substring.UTF8View {
    /// Without leading and trailing spaces and tabs, on the bytes (no grapheme breaking).
    func trimmingSpaceBytes() -> Substring.UTF8View {
        var s = self
        while let b = s.first, b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") { s = s.dropFirst() }
        while let b = s.last, b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") { s = s.dropLast() }
        return s
    }
}
