import Locking
import MCPProtocol
import NIOCore
import NIOHTTP1
import NIOPosix

/// The host's side of a `transport = "http"` program (docs/servers.md): a Streamable HTTP client on loopback
/// that carries the bridge's JSON-RPC messages to the program's endpoint. Each message is one POST (a request
/// holds its connection until its JSON answer or its SSE stream ends; idle connections are kept alive and reused),
/// the session id and protocol version the program gave at `initialize` go on every later request, and a GET
/// stream receives what the program sends outside a request. Every message that comes back, whatever the route,
/// goes to `deliver`, exactly as a stdio line would.
final class HTTPProgramClient: Sendable {
    let port: Int
    let path: String
    private let group: EventLoopGroup
    private let loops: [EventLoop]
    private let deliver: @Sendable (JSONValue, Int?) -> Void
    private let failed: @Sendable (Int64, String, Bool) -> Void
    private let state = Locked(ClientState())

    private struct ClientState {
        var idle: [Channel] = []
        var sessionID: String?
        var protocolVersion: String?
        var connectedOnce = false
        var connectDeadline: ContinuousClock.Instant
        var closed = false
        var getStream: Channel?
        var open: [ObjectIdentifier: Channel] = [:]
        /// The connection each request in flight is on (to cancel it by closing it, as 2026-07-28 asks).
        var carrying: [Int64: Channel] = [:]
        /// Requests cancelled before their connection was there.
        var cancelled: Set<Int64> = []

        init() { connectDeadline = .now }
    }

    /// `failed(id, why, unsent)` ends the request `id` when its POST fails (no connection, an HTTP error status);
    /// `unsent` when the server provably never got it (ProgramRPCError.unsent).
    init(
        group: EventLoopGroup, port: Int, path: String, connectWithin: Duration,
        deliver: @escaping @Sendable (JSONValue, Int?) -> Void,
        failed: @escaping @Sendable (Int64, String, Bool) -> Void
    ) {
        self.group = group
        self.loops = Array(group.makeIterator())
        self.port = port
        self.path = path
        self.deliver = deliver
        self.failed = failed
        state.withLock { $0.connectDeadline = .now + connectWithin }
    }

    /// The loop this thread runs, if it is one of `group`'s (a gateway call arrives on one).
    private var currentLoop: EventLoop? {
        guard let here = MultiThreadedEventLoopGroup.currentEventLoop else { return nil }
        return loops.contains { $0 === here } ? here : nil
    }

    /// Whether the program ever accepted a connection.
    var reached: Bool { state.withLock { $0.connectedOnce } }

    /// The revision agreed at `initialize` (sent as `MCP-Protocol-Version` from then on).
    func agreed(protocolVersion: String) { state.withLock { $0.protocolVersion = protocolVersion } }

    /// POSTs one JSON-RPC message; `requestID` is its id when it is a request (its failure ends that request).
    /// `headers` go on this request only (the gateway's 2026-07-28 Mcp-Method, Mcp-Name, Mcp-Param-*).
    func post(_ message: JSONValue, requestID: Int64?, headers extra: [(String, String)] = []) {
        post(body: JSONWriter.serialize(message), requestID: requestID, headers: extra)
    }

    /// POSTs one JSON-RPC message already serialized (the gateway writes its requests' bytes itself).
    func post(body: [UInt8], requestID: Int64?, headers extra: [(String, String)] = []) {
        connection { [self] result in
            switch result {
            case .failure(let why):
                if let requestID { failed(requestID, why.message, true) }
            case .success(let channel):
                if let requestID {
                    let gone = state.withLock { s -> Bool in
                        if s.cancelled.remove(requestID) != nil { return true }
                        s.carrying[requestID] = channel
                        return false
                    }
                    if gone {
                        state.withLock { s in if !s.closed { s.idle.append(channel) } }
                        failed(requestID, "cancelled before it was sent", true)
                        return
                    }
                }
                let exchange = Exchange(client: self, requestID: requestID, stream: false)
                send(method: .POST, body: body, extra: extra, on: channel, exchange: exchange)
            }
        }
    }

    /// Cancels request `id` the 2026-07-28 way: the connection that carries it is closed (a disconnect is the
    /// cancellation, streamable-http.mdx); a request not sent yet is not sent.
    func cancel(_ id: Int64) {
        let channel = state.withLock { s -> Channel? in
            guard let c = s.carrying.removeValue(forKey: id) else {
                // Not on a connection yet: remembered until its connection comes (bounded: past 4096, one
                // remembered cancel, maybe of a request that ended already, is forgotten).
                if s.cancelled.count >= 4096 { s.cancelled.removeFirst() }
                s.cancelled.insert(id)
                return nil
            }
            return c
        }
        channel?.close(promise: nil)
    }

    /// The request's exchange ended: its connection no longer carries it.
    fileprivate func ended(_ id: Int64?) {
        guard let id else { return }
        state.withLock { s in
            s.carrying[id] = nil
            s.cancelled.remove(id)
        }
    }

    /// Opens the GET stream for what the program sends outside a request (a 405 means it has none).
    func openListenStream() {
        connection { [self] result in
            guard case .success(let channel) = result else { return }
            state.withLock { $0.getStream = channel }
            send(method: .GET, body: [], on: channel, exchange: Exchange(client: self, requestID: nil, stream: true))
        }
    }

    /// Closes the idle connections (after a restart of the server they may lead to a replica that is gone).
    func dropIdle() {
        let idle = state.withLock { s -> [Channel] in
            defer { s.idle = [] }
            return s.idle
        }
        for c in idle { c.close(promise: nil) }
    }

    /// Closes every connection; nothing is sent after this.
    func close() {
        let channels = state.withLock { s -> [Channel] in
            s.closed = true
            defer {
                s.idle = []
                s.open = [:]
            }
            return s.idle + Array(s.open.values)
        }
        for c in channels { c.close(promise: nil) }
    }

    // MARK: Connections

    private func connection(_ done: @escaping @Sendable (Result<Channel, ProgramRPCError>) -> Void) {
        // An idle connection on this thread's event loop first (no hop between threads), else any idle one.
        let here = currentLoop
        let reused = state.withLock { s -> Channel?? in
            if s.closed { return .some(nil) }
            s.idle.removeAll { !$0.isActive }
            if let here, let i = s.idle.lastIndex(where: { $0.eventLoop === here }) {
                return .some(s.idle.remove(at: i))
            }
            if here == nil, let c = s.idle.popLast() { return .some(c) }
            return nil
        }
        switch reused {
        case .some(.some(let c)): done(.success(c))
        case .some(.none): done(.failure(.closed("the bridge is closing")))
        case .none: connect(done)
        }
    }

    private func connect(_ done: @escaping @Sendable (Result<Channel, ProgramRPCError>) -> Void) {
        // On the caller's event loop when it is one of ours (the gateway's calls), so the request stays there.
        let loop: EventLoopGroup = currentLoop ?? group
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(5))
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHTTPClientHandlers()
                    try ch.pipeline.syncOperations.addHandler(ProgramResponseHandler())
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    let closed = state.withLock { s -> Bool in
                        s.connectedOnce = true
                        if !s.closed { s.open[ObjectIdentifier(channel)] = channel }
                        return s.closed
                    }
                    if closed {
                        channel.close(promise: nil)
                        done(.failure(.closed("the bridge is closing")))
                        return
                    }
                    channel.closeFuture.whenComplete { [self] _ in
                        state.withLock { s in
                            s.open[ObjectIdentifier(channel)] = nil
                            s.idle.removeAll { $0 === channel }
                        }
                    }
                    done(.success(channel))
                case .failure(let error):
                    // Until the program first accepts, refusal means it is still starting: try again shortly.
                    let retry = state.withLock { s in
                        !s.connectedOnce && !s.closed && ContinuousClock.now < s.connectDeadline
                    }
                    if retry {
                        group.next().scheduleTask(in: .milliseconds(10)) { [self] in connect(done) }
                    } else {
                        done(
                            .failure(
                                .closed("the program's HTTP endpoint 127.0.0.1:\(port) cannot be reached: \(error)")))
                    }
                }
            }
    }

    private func send(
        method: HTTPMethod, body: [UInt8], extra: [(String, String)] = [], on channel: Channel, exchange: Exchange
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "127.0.0.1:\(port)")
        headers.add(name: "Accept", value: method == .GET ? "text/event-stream" : "application/json, text/event-stream")
        let (session, version) = state.withLock { ($0.sessionID, $0.protocolVersion) }
        if let session { headers.add(name: "Mcp-Session-Id", value: session) }
        if let version { headers.add(name: "MCP-Protocol-Version", value: version) }
        for (name, value) in extra { headers.add(name: name, value: value) }
        if method == .POST {
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(body.count))
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
        channel.eventLoop.execute {
            guard channel.isActive,
                let handler = try? channel.pipeline.syncOperations.handler(type: ProgramResponseHandler.self)
            else {
                exchange.fail("the connection to the program closed", unsent: true)
                return
            }
            handler.exchange = exchange
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if !body.isEmpty {
                var buffer = channel.allocator.buffer(capacity: body.count)
                buffer.writeBytes(body)
                channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
            }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenComplete { result in
                switch result {
                case .success: exchange.wrote = true
                case .failure(let error): exchange.fail("cannot send to the program: \(error)", unsent: true)
                }
            }
        }
    }

    // MARK: Exchanges

    /// One request and its response: a JSON body, an SSE stream of messages, or 202 with nothing.
    final class Exchange: @unchecked Sendable {
        // Touched only on the connection's event loop.
        let client: HTTPProgramClient
        let requestID: Int64?
        let stream: Bool
        var status: UInt = 0
        var eventStream = false
        var body: [UInt8] = []
        var sse = SSEParser()
        var finished = false
        /// The whole request was handed to the kernel (from then on the server may have read it).
        var wrote = false

        init(client: HTTPProgramClient, requestID: Int64?, stream: Bool) {
            self.client = client
            self.requestID = requestID
            self.stream = stream
        }

        func head(_ head: HTTPResponseHead) {
            status = head.status.code
            if let session = head.headers.first(name: "Mcp-Session-Id") {
                client.state.withLock { $0.sessionID = session }
            }
            eventStream = head.headers.first(name: "Content-Type")?.lowercased().hasPrefix("text/event-stream") == true
        }

        func bytes(_ buffer: ByteBuffer) {
            if eventStream && (200..<300).contains(status) {
                for data in sse.feed(buffer.readableBytesView) { client.received(data) }
            } else if body.count < 1 << 26 {
                body.append(contentsOf: buffer.readableBytesView)
            }
        }

        /// The response ended; `reusable` when the connection may carry another request.
        func end(channel: Channel, reusable: Bool) {
            guard !finished else { return }
            finished = true
            client.ended(requestID)
            if (200..<300).contains(status) {
                if !eventStream, !body.isEmpty { client.received(body) }
                // A stream that ended without the answer (the answer, if it came, already ended the request).
                if eventStream { fail("the response stream ended without an answer") }
            } else if !body.isEmpty, let value = try? JSONParser.parse(body), value["error"] != nil,
                value["id"] != nil
            {
                // An HTTP error that carries the JSON-RPC error (a 2026-07-28 server's 400 for a bad header).
                client.received(body)
                fail("the program answered HTTP \(status)")
            } else if status == 503 {
                // Refused unread (a draining host answers 503 before it looks at the request).
                fail("the program answered HTTP 503 (refused, not run)", unsent: true)
            } else if status == 404, client.state.withLock({ $0.sessionID }) != nil {
                fail("the program ended its session (HTTP 404)")
            } else if !stream {
                let text = String(decoding: body.prefix(200), as: UTF8.self)
                fail("the program answered HTTP \(status)\(text.isEmpty ? "" : ": \(text)")")
            }
            if reusable && !stream {
                client.state.withLock { s in if !s.closed { s.idle.append(channel) } }
            } else {
                channel.close(promise: nil)
            }
        }

        func fail(_ why: String, unsent: Bool = false) {
            finished = true
            client.ended(requestID)
            if let requestID { client.failed(requestID, why, unsent) }
        }
    }

    fileprivate func received(_ bytes: [UInt8]) {
        guard let value = try? JSONParser.parse(bytes) else {
            deliver(
                .object([
                    "jsonrpc": "2.0", "method": "$/nonjson",
                    "params": [
                        "line": .string(
                            String(decoding: bytes.prefix(200), as: UTF8.self))
                    ],
                ]), bytes.count)
            return
        }
        if case .array(let messages) = value {
            for m in messages { deliver(m, nil) }
        } else {
            deliver(value, bytes.count)
        }
    }
}

/// Routes a connection's response parts to the exchange it carries.
private final class ProgramResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    var exchange: HTTPProgramClient.Exchange?
    private var keepAlive = true

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            exchange?.head(head)
        case .body(let buffer):
            exchange?.bytes(buffer)
        case .end:
            let e = exchange
            exchange = nil
            e?.end(channel: context.channel, reusable: keepAlive)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let e = exchange, !e.finished {
            exchange = nil
            if e.eventStream && (200..<300).contains(e.status) {
                e.end(channel: context.channel, reusable: false)
            } else {
                // Before the request was written the server cannot have read it; after, it may have.
                e.fail("the program closed the connection", unsent: !e.wrote)
            }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Server-sent events, as far as MCP uses them: each event's `data` lines, joined, are one JSON-RPC message.
struct SSEParser {
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false

    mutating func feed<C: Collection>(_ bytes: C) -> [[UInt8]] where C.Element == UInt8 {
        var events: [[UInt8]] = []
        for b in bytes {
            if b == 0x0A {
                if line.last == 0x0D { line.removeLast() }
                if line.isEmpty {
                    if hasData { events.append(data) }
                    data = []
                    hasData = false
                } else if line.starts(with: Array("data:".utf8)) {
                    var value = line.dropFirst(5)
                    if value.first == 0x20 { value = value.dropFirst() }
                    if hasData { data.append(0x0A) }
                    data.append(contentsOf: value)
                    hasData = true
                }
                line = []
            } else {
                line.append(b)
            }
        }
        return events
    }
}
