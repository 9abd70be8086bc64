import Locking
import MCPProtocol
import NIOCore

/// The gateway's MCP client for one backend (docs/gateway.md): 2026-07-28 requests on the server's stable port,
/// over kept-alive loopback connections. That revision is stateless (every request carries its own version,
/// client info and capabilities), so any replica behind the server's shared socket may answer any request.
final class BackendClient: Sendable {
    let name: String
    let port: Int
    private let http: HTTPProgramClient
    private let pending: Pending
    private let loop: EventLoop

    static let version = ProtocolVersion.modern[0]

    /// `onNotification` hears what the backend sends outside an answer (list changes, resource updates on the
    /// listen stream; progress during a call).
    init(
        name: String, port: Int, group: EventLoopGroup,
        onNotification: @escaping @Sendable (_ method: String, _ params: [String: JSONValue]) -> Void
    ) {
        self.name = name
        self.port = port
        let pending = Pending(onNotification: onNotification)
        self.pending = pending
        self.loop = group.next()
        http = HTTPProgramClient(
            group: group, port: port, path: "/mcp", connectWithin: .zero,
            deliver: { value, size in pending.receive(value, size: size) },
            failed: { id, why, unsent in pending.fail(id, why, unsent: unsent) })
        http.agreed(protocolVersion: Self.version)
    }

    /// What waits for answers, shared with the HTTP client's callbacks.
    private final class Pending: Sendable {
        struct State {
            var next: Int64 = 1
            var waiting: [Int64: Waiting] = [:]
            var closed = false
        }
        let state = Locked(State())
        let onNotification: @Sendable (String, [String: JSONValue]) -> Void

        init(onNotification: @escaping @Sendable (String, [String: JSONValue]) -> Void) {
            self.onNotification = onNotification
        }

        func receive(_ value: JSONValue, size: Int?) {
            switch JSONRPC.decode(value) {
            case .response(let id, let result, let error):
                guard let n = id.intValue, let waiting = state.withLock({ $0.waiting.removeValue(forKey: n) }) else {
                    return
                }
                waiting(ProgramRPCError.outcome(result: result, error: error, of: "the server"), size)
            case .notification(let method, let params):
                onNotification(method, params)
            case .request, .batch, .invalid:
                break  // a 2026-07-28 server asks the client nothing outside an answer
            }
        }

        func fail(_ id: Int64, _ why: String, unsent: Bool) {
            state.withLock { $0.waiting.removeValue(forKey: id) }?(.failure(.closed(why, unsent: unsent)), nil)
        }
    }

    /// The `_meta` every 2026-07-28 request carries.
    static func meta(progressToken: Int64? = nil, capabilities: JSONValue = [:]) -> JSONValue {
        var m: [String: JSONValue] = [
            ModernRequestRules.metaVersionKey: .string(version),
            ModernRequestRules.metaClientInfoKey: ["name": "mcp-gateway", "version": .string(GatewayServer.version)],
            ModernRequestRules.metaCapabilitiesKey: capabilities,
        ]
        if let progressToken { m["progressToken"] = .int(progressToken) }
        return .object(m)
    }

    /// `_meta` without a progress token and with no client capabilities, serialized once: most requests carry it.
    private static let plainMeta = JSONWriter.serialize(meta())
    /// The same without its braces, to follow a progress token.
    private static let plainMetaMembers = Array(plainMeta.dropFirst().dropLast())

    /// The bytes of a request: the envelope and `_meta` written around the serialized params, so only the params
    /// are built as an object per request (JSON leaves the order of an object's members free; the gateway's
    /// request costs about 15,000 instructions less, bench/profile/callgrind-gateway.sh).
    static func body(
        id: Int64, method: String, params: [String: JSONValue], progress: Bool, capabilities: JSONValue
    ) -> [UInt8] {
        var w = JSONWriter(capacity: 320)
        w.writeString(method)
        var out = Array("{\"jsonrpc\":\"2.0\",\"id\":\(id),\"method\":".utf8)
        out.reserveCapacity(320)
        out += w.bytes
        out += Array(",\"params\":{\"_meta\":".utf8)
        if capabilities.objectValue?.isEmpty ?? true {
            if progress {
                out += Array("{\"progressToken\":\(id),".utf8)
                out += plainMetaMembers
                out.append(UInt8(ascii: "}"))
            } else {
                out += plainMeta
            }
        } else {
            out += JSONWriter.serialize(meta(progressToken: progress ? id : nil, capabilities: capabilities))
        }
        if !params.isEmpty {
            let rest = JSONWriter.serialize(
                .object(params["_meta"] == nil ? params : params.filter { $0.key != "_meta" }))
            if rest.count > 2 {
                out.append(UInt8(ascii: ","))
                out += rest.dropFirst().dropLast()
            }
        }
        out += Array("}}".utf8)
        return out
    }

    /// Sends a request; `done` runs once with the answer (and its length as received) or the error: the
    /// backend's, `timeout`'s, or the connection's. Returns the request's id. `capabilities`: the client's, as
    /// the server is told them (the input capabilities of the client the gateway serves the call for).
    @discardableResult
    func request(
        _ method: String, _ params: [String: JSONValue], headers: [(String, String)] = [], progress: Bool = false,
        id reserved: Int64? = nil, capabilities: JSONValue = [:], timeout: Duration?, _ done: @escaping Waiting
    ) -> Int64 {
        let (id, closed) = pending.state.withLock { s -> (Int64, Bool) in
            let id = reserved ?? s.next
            if reserved == nil { s.next += 1 }
            if !s.closed { s.waiting[id] = done }
            return (id, s.closed)
        }
        if closed {
            done(.failure(.closed("the gateway's connection to \(name) is closed")), nil)
            return id
        }
        var h: [(String, String)] = [("Mcp-Method", method)]
        switch method {
        case "tools/call", "prompts/get": if let n = params["name"]?.stringValue { h.append(("Mcp-Name", n)) }
        case "resources/read": if let u = params["uri"]?.stringValue { h.append(("Mcp-Name", u)) }
        default: break
        }
        http.post(
            body: Self.body(id: id, method: method, params: params, progress: progress, capabilities: capabilities),
            requestID: id, headers: h + headers)
        if let timeout {
            let pending = self.pending
            let http = self.http
            loop.scheduleTask(in: .nanoseconds(Int64(timeout.nanoseconds))) {
                // No answer in time: the request is cancelled at the server too (its connection is closed).
                guard let waiting = pending.state.withLock({ $0.waiting.removeValue(forKey: id) }) else { return }
                http.cancel(id)
                waiting(
                    .failure(ProgramRPCError(code: -32001, message: "no answer within \(timeout)", transport: true)),
                    nil)
            }
        }
        return id
    }

    /// An id for a request sent later (so its caller can file it before any answer can come).
    func reserveID() -> Int64 {
        pending.state.withLock { s in
            defer { s.next += 1 }
            return s.next
        }
    }

    /// Stops waiting for `id` (its call was cancelled or timed out); a late answer is dropped.
    func forget(_ id: Int64) { _ = pending.state.withLock { $0.waiting.removeValue(forKey: id) } }

    /// Cancels `id` at the server: its connection is closed (the 2026-07-28 cancellation), and the answer, if it
    /// still comes, is dropped.
    func cancel(_ id: Int64) {
        forget(id)
        http.cancel(id)
    }

    /// Closes the idle connections (the server restarted: they may lead to a replica that is gone).
    func dropIdle() { http.dropIdle() }

    /// Ends every request with `why` and closes the connections.
    func close(_ why: String) {
        let waiting = pending.state.withLock { s -> [Waiting] in
            s.closed = true
            defer { s.waiting = [:] }
            return Array(s.waiting.values)
        }
        http.close()
        for w in waiting { w(.failure(.closed(why)), nil) }
    }
}
