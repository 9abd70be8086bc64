import Locking
import NIOCore
import NIOHTTP1
import Synchronization

/// Writes the response to one HTTP request, from any thread; everything hops to the channel's event loop in order.
final class HTTPResponder: ReplySink {
    let channel: Channel
    let keepAlive: Bool
    /// Counts the response body bytes written (nil with `--no-metrics`).
    let traffic: TrafficCounters?
    /// Headers every response to this request carries (the edge's CORS headers).
    let common: [(String, String)]
    private let state = Locked<State>(State())
    /// Writes enqueued on the event loop and not yet run; while any is pending, later writes queue behind it.
    private let pending = Atomic<Int>(0)

    struct State {
        var finished = false
        var streaming = false
        var closeHandlers: [@Sendable () -> Void] = []
    }

    init(channel: Channel, keepAlive: Bool, traffic: TrafficCounters? = nil, common: [(String, String)] = []) {
        self.channel = channel
        self.keepAlive = keepAlive
        self.traffic = traffic
        self.common = common
    }

    var isFinished: Bool { state.withLock { $0.finished } }

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

    func onClientGone(_ body: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { s -> Bool in
            if s.finished { return false }
            if !channel.isActive { return true }
            s.closeHandlers.append(body)
            return false
        }
        if runNow { body() }
    }

    /// Timers run on the connection's event loop, in order with its writes.
    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) -> any DispatchTimer {
        channel.eventLoop.scheduleTask(in: .nanoseconds(delay.wholeNanoseconds), body)
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
    }

    /// Marks the response complete if it is unfinished and streaming is as given (a whole response: not
    /// streaming; the end of a stream: streaming); false if it is not.
    private func finish(streaming: Bool) -> Bool {
        state.withLock { s -> Bool in
            guard !s.finished, s.streaming == streaming else { return false }
            s.finished = true
            s.closeHandlers = []
            return true
        }
    }

    /// Sends a whole response. Ignored if a response was already completed.
    func respond(status: Int, headers extra: [(String, String)], body: [UInt8]) {
        guard finish(streaming: false) else { return }
        traffic?.addBytesOut(body.count)
        let keepAlive = self.keepAlive
        let channel = self.channel
        let common = self.common
        onLoop {
            var headers = HTTPHeaders()
            for (k, v) in extra + common { headers.add(name: k, value: v) }
            headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
            if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
            let head = HTTPResponseHead(
                version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
            channel.write(HTTPServerResponsePart.head(head), promise: nil)
            if !body.isEmpty {
                var buf = channel.allocator.buffer(capacity: body.count)
                buf.writeBytes(body)
                channel.write(HTTPServerResponsePart.body(.byteBuffer(buf)), promise: nil)
            }
            Self.end(channel, keepAlive: keepAlive)
        }
    }

    /// The end of a response; the connection closes after it unless kept alive.
    private static func end(_ channel: Channel, keepAlive: Bool) {
        let done = channel.writeAndFlush(HTTPServerResponsePart.end(nil))
        if !keepAlive { done.whenComplete { _ in channel.close(promise: nil) } }
    }

    @discardableResult
    func startStream(headers extra: [(String, String)]) -> Bool {
        let ok = state.withLock { s -> Bool in
            guard !s.finished, !s.streaming else { return false }
            s.streaming = true
            return true
        }
        guard ok else { return false }
        let keepAlive = self.keepAlive
        let channel = self.channel
        let common = self.common
        onLoop {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/event-stream")
            headers.add(name: "Cache-Control", value: "no-cache")
            headers.add(name: "X-Accel-Buffering", value: "no")
            for (k, v) in extra + common { headers.add(name: k, value: v) }
            if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
            channel.writeAndFlush(
                HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)),
                promise: nil)
        }
        return true
    }

    /// The SSE `retry` of every legacy stream: about a replacement host's start (docs/protocol.md).
    static let reconnectMilliseconds = 1000

    func sendEvent(_ json: [UInt8], comment: Bool, id: String?) {
        let ok = state.withLock { s in s.streaming && !s.finished }
        guard ok else { return }
        let channel = self.channel
        let traffic = self.traffic
        onLoop {
            var buf = channel.allocator.buffer(capacity: json.count + 24 + (id?.utf8.count ?? 0))
            if comment {
                buf.writeString(":\n\n")
            } else if let id, json.isEmpty {
                // A priming event: nothing to parse, an id to resume from, and how long to wait before reconnecting
                // when the host closes the connection before the stream ends (its drain: transports.mdx's retry).
                buf.writeString("id: \(id)\nretry: \(Self.reconnectMilliseconds)\ndata: \n\n")
            } else {
                if let id { buf.writeString("id: \(id)\n") }
                buf.writeString("event: message\ndata: ")
                buf.writeBytes(json)
                buf.writeString("\n\n")
            }
            traffic?.addBytesOut(buf.readableBytes)
            channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buf)), promise: nil)
        }
    }

    func endStream() {
        guard finish(streaming: true) else { return }
        let keepAlive = self.keepAlive
        let channel = self.channel
        onLoop { Self.end(channel, keepAlive: keepAlive) }
    }
}

extension Scheduled: DispatchTimer where T == Void {}
