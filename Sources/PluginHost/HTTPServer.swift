import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A complete HTTP request as the engine sees it.
public struct HTTPRequest: Sendable {
    public var method: HTTPMethod
    public var uri: String
    public var headers: HTTPHeaders
    public var body: [UInt8]
}

/// Writes the response to one HTTP request, from any thread; everything hops to the channel's event loop in order.
public final class HTTPResponder: Sendable {
    let channel: Channel
    let keepAlive: Bool
    private let state = Mutex<State>(State())
    private let onDone: @Sendable () -> Void
    /// Writes enqueued on the event loop and not yet run; while any is pending, later writes queue behind it.
    private let pending = Atomic<Int>(0)

    struct State {
        var finished = false
        var streaming = false
        var closeHandlers: [@Sendable () -> Void] = []
    }

    init(channel: Channel, keepAlive: Bool, onDone: @escaping @Sendable () -> Void) {
        self.channel = channel
        self.keepAlive = keepAlive
        self.onDone = onDone
    }

    public var isFinished: Bool { state.withLock { $0.finished } }

    /// Runs `body` on the channel's event loop, in call order: immediately when already there and nothing
    /// is queued ahead of it (the common case for a handler that ran inline), else as a queued task.
    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        let loop = channel.eventLoop
        if loop.inEventLoop, pending.load(ordering: .acquiring) == 0 {
            body()
            return
        }
        pending.add(1, ordering: .acquiringAndReleasing)
        loop.execute { [self] in
            body()
            self.pending.subtract(1, ordering: .acquiringAndReleasing)
        }
    }

    /// Registers work to run if the client goes away before the response is complete.
    public func onClientGone(_ body: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { s -> Bool in
            if s.finished { return false }
            if !channel.isActive { return true }
            s.closeHandlers.append(body)
            return false
        }
        if runNow { body() }
    }

    /// Called by the connection handler when the connection closed.
    func connectionClosed() {
        let handlers = state.withLock { s -> [@Sendable () -> Void] in
            guard !s.finished else { return [] }
            s.finished = true
            let h = s.closeHandlers
            s.closeHandlers = []
            return h
        }
        for h in handlers { h() }
        if !handlers.isEmpty { onDone() }
    }

    /// Sends a whole response. Ignored if a response was already completed.
    public func respond(status: HTTPResponseStatus, headers extra: [(String, String)] = [], body: [UInt8]) {
        let ok = state.withLock { s -> Bool in
            guard !s.finished, !s.streaming else { return false }
            s.finished = true
            s.closeHandlers = []
            return true
        }
        guard ok else { return }
        let keepAlive = self.keepAlive
        let channel = self.channel
        let onDone = self.onDone
        onLoop {
            var headers = HTTPHeaders()
            for (k, v) in extra { headers.add(name: k, value: v) }
            headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
            if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
            channel.write(
                HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)),
                promise: nil)
            if !body.isEmpty {
                var buf = channel.allocator.buffer(capacity: body.count)
                buf.writeBytes(body)
                channel.write(HTTPServerResponsePart.body(.byteBuffer(buf)), promise: nil)
            }
            let done = channel.writeAndFlush(HTTPServerResponsePart.end(nil))
            if !keepAlive { done.whenComplete { _ in channel.close(promise: nil) } }
            onDone()
        }
    }

    /// Starts an SSE response; returns false if a response was already sent.
    @discardableResult
    public func startStream(headers extra: [(String, String)] = []) -> Bool {
        let ok = state.withLock { s -> Bool in
            guard !s.finished, !s.streaming else { return false }
            s.streaming = true
            return true
        }
        guard ok else { return false }
        let keepAlive = self.keepAlive
        let channel = self.channel
        onLoop {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/event-stream")
            headers.add(name: "Cache-Control", value: "no-cache")
            headers.add(name: "X-Accel-Buffering", value: "no")
            for (k, v) in extra { headers.add(name: k, value: v) }
            if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
            channel.writeAndFlush(
                HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)),
                promise: nil)
        }
        return true
    }

    /// Sends one SSE event carrying a JSON-RPC message (or a comment when `comment` is true).
    public func sendEvent(_ json: [UInt8], comment: Bool = false) {
        let ok = state.withLock { s in s.streaming && !s.finished }
        guard ok else { return }
        let channel = self.channel
        onLoop {
            var buf = channel.allocator.buffer(capacity: json.count + 24)
            if comment {
                buf.writeString(":\n\n")
            } else {
                buf.writeString("event: message\ndata: ")
                buf.writeBytes(json)
                buf.writeString("\n\n")
            }
            channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buf)), promise: nil)
        }
    }

    /// Ends an SSE response.
    public func endStream() {
        let ok = state.withLock { s -> Bool in
            guard s.streaming, !s.finished else { return false }
            s.finished = true
            s.closeHandlers = []
            return true
        }
        guard ok else { return }
        let keepAlive = self.keepAlive
        let channel = self.channel
        let onDone = self.onDone
        onLoop {
            let done = channel.writeAndFlush(HTTPServerResponsePart.end(nil))
            if !keepAlive { done.whenComplete { _ in channel.close(promise: nil) } }
            onDone()
        }
    }
}

/// Reads requests off one connection, enforces the body limit, and hands complete requests to the engine.
final class HTTPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let engine: MCPEngine
    private let connections: ConnectionSet
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var rejected = false
    private var current: HTTPResponder?

    init(engine: MCPEngine, connections: ConnectionSet) {
        self.engine = engine
        self.connections = connections
    }

    func channelActive(context: ChannelHandlerContext) {
        connections.add(context.channel)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connections.remove(context.channel)
        current?.connectionClosed()
        current = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.removeAll(keepingCapacity: true)
            rejected = false
            if let len = h.headers.first(name: "Content-Length").flatMap(Int.init), len > engine.config.maxBodyBytes {
                reject(context: context, version: h.version)
            }
        case .body(var buf):
            guard !rejected else { return }
            if body.count + buf.readableBytes > engine.config.maxBodyBytes {
                reject(context: context, version: head?.version ?? .http1_1)
                return
            }
            body.append(contentsOf: buf.readBytes(length: buf.readableBytes) ?? [])
        case .end:
            guard let h = head, !rejected else { return }
            head = nil
            let keepAlive = h.isKeepAlive && !engine.isDraining
            let channel = context.channel
            let connections = self.connections
            let responder = HTTPResponder(channel: channel, keepAlive: keepAlive) {
                connections.requestDone(channel)
            }
            current = responder
            connections.requestStarted(channel)
            engine.handle(HTTPRequest(method: h.method, uri: h.uri, headers: h.headers, body: body), responder)
            body = []
        }
    }

    /// Answers 413 and closes: the rest of an oversized body is never read into memory.
    private func reject(context: ChannelHandlerContext, version: HTTPVersion) {
        rejected = true
        let payload = MCPEngine.errorBody(
            id: nil, code: -32600, message: "request body exceeds the limit of \(engine.config.maxBodyBytes) bytes")
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(payload.count))
        headers.add(name: "Connection", value: "close")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .payloadTooLarge, headers: headers))),
            promise: nil)
        var buf = context.channel.allocator.buffer(capacity: payload.count)
        buf.writeBytes(payload)
        context.write(wrapOutboundOut(.body(.byteBuffer(buf))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Idle between requests (or a request that stalls while arriving): close. A response in progress
        // (a long tool call, a GET stream) is not idleness.
        if event is IdleStateHandler.IdleStateEvent, current == nil || current?.isFinished == true {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Open connections and how many requests each has in flight, for the SIGTERM drain.
final class ConnectionSet: Sendable {
    private struct Entry {
        var channel: Channel
        var inFlight: Int
    }
    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])
    private let draining = Atomic<Bool>(false)

    func add(_ c: Channel) { entries.withLock { $0[ObjectIdentifier(c)] = Entry(channel: c, inFlight: 0) } }
    func remove(_ c: Channel) { _ = entries.withLock { $0.removeValue(forKey: ObjectIdentifier(c)) } }

    func requestStarted(_ c: Channel) {
        entries.withLock { $0[ObjectIdentifier(c)]?.inFlight += 1 }
    }

    func requestDone(_ c: Channel) {
        let closeIt = entries.withLock { e -> Bool in
            guard var entry = e[ObjectIdentifier(c)] else { return false }
            entry.inFlight -= 1
            e[ObjectIdentifier(c)] = entry
            return entry.inFlight <= 0 && draining.load(ordering: .relaxed)
        }
        if closeIt { c.close(promise: nil) }
    }

    /// Starts draining: idle connections close now, busy ones after their response.
    func beginDrain() {
        draining.store(true, ordering: .relaxed)
        let idle = entries.withLock { $0.values.filter { $0.inFlight <= 0 }.map(\.channel) }
        for c in idle { c.close(promise: nil) }
    }

    var inFlight: Int { entries.withLock { $0.values.reduce(0) { $0 + max(0, $1.inFlight) } } }
    var count: Int { entries.withLock { $0.count } }

    func closeAll() {
        for c in entries.withLock({ $0.values.map(\.channel) }) { c.close(promise: nil) }
    }
}
