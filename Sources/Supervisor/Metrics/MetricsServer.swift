import Contracts
import Dispatch
import NIOCore
import NIOHTTP1
import NIOPosix
import SupervisorCore

/// The HTTP listener on `metrics_listen` (docs/metrics.md): `/metrics`, `/status.json`, `/healthz`, `/readyz` and
/// the status page `/`. SwiftNIO on one event-loop thread, created only when `metrics_listen` is set; the loop
/// only speaks HTTP: everything that reads the supervisor's state hops to `Supervisor.queue` and the answer hops
/// back to the loop.
///
/// What a request may be: GET or HEAD (405 with `Allow` otherwise), without a body (413), headers at most
/// `maxHeaderBytes` (431; NIO's decoder refuses beyond its own limits with a 400), a path we serve (404); a
/// request NIO cannot parse gets a 400 from `HTTPServerProtocolErrorHandler` and the connection closes. A
/// connection must send a complete request head within `headerTimeout` of opening or of its last answer (an idle
/// or slow-header client is closed), and at most `maxConnections` are open at once (more are closed at accept).
final class MetricsServer: Sendable {
    static let maxConnections = 64
    static let headerTimeout = TimeAmount.seconds(10)
    static let maxHeaderBytes = 8192
    /// /healthz: the supervisor's queue must answer within this.
    static let healthTimeout = TimeAmount.seconds(1)

    let address: MetricsAddress
    let channel: any Channel

    private init(address: MetricsAddress, channel: any Channel) {
        self.address = address
        self.channel = channel
    }

    /// Binds and listens (blocks the caller for the bind only); throws what the bind threw.
    static func bind(
        _ address: MetricsAddress, group: MultiThreadedEventLoopGroup, routes: MetricsRoutes
    ) throws -> MetricsServer {
        let connections = ConnectionCount()
        let limits = NIOHTTPDecoderLimitConfiguration.metrics
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                // One loop: the count is only touched on it.
                let count = connections
                guard count.open < maxConnections else {
                    return channel.close()
                }
                count.open += 1
                channel.closeFuture.whenComplete { _ in
                    channel.eventLoop.execute { connections.open -= 1 }
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withErrorHandling: true,
                        withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(routes: routes))
                }
            }
        let channel = try bootstrap.bind(host: address.host, port: address.port).wait()
        return MetricsServer(address: address, channel: channel)
    }

    /// Stops listening (connections in progress finish on their own or by their timeout).
    func close() {
        channel.close(promise: nil)
    }

    /// The port actually bound.
    var boundPort: Int? { channel.localAddress?.port }
}

extension NIOHTTPDecoderLimitConfiguration {
    /// Above `MetricsServer.maxHeaderBytes` (which the handler answers with 431), NIO's decoder stops reading.
    static var metrics: NIOHTTPDecoderLimitConfiguration {
        var c = NIOHTTPDecoderLimitConfiguration()
        c.maxHeaderFieldSize = 16 * 1024
        c.maxHeaderListSize = 16 * 1024
        c.maxHeaderFieldCount = 100
        return c
    }
}

/// Open connections. @unchecked Sendable: the listener has one event loop, and the count is only touched on it.
private final class ConnectionCount: @unchecked Sendable {
    var open = 0
}

/// What the listener answers, computed on the supervisor's queue (`Supervisor+Metrics`).
struct MetricsRoutes: Sendable {
    let supervisor: Supervisor

    struct Response: Sendable {
        var status: HTTPResponseStatus
        var contentType: String
        var body: [UInt8]
        var headers: [(String, String)] = []
    }

    static let paths: Set<String> = ["/metrics", "/status.json", "/healthz", "/readyz", "/"]

    /// Answers `path` on the supervisor's queue; `done` runs there too.
    func answer(_ path: String, accept: [String], _ done: @escaping @Sendable (Response) -> Void) {
        let supervisor = self.supervisor
        supervisor.queue.async {
            switch path {
            case "/metrics":
                let format = Exposition.Format.negotiate(accept: accept)
                supervisor.metricsPage(format) { body in
                    done(Response(status: .ok, contentType: format.contentType, body: body))
                }
            case "/status.json":
                done(Response(status: .ok, contentType: "application/json", body: supervisor.statusPageJSON()))
            case "/readyz":
                let (ready, body) = supervisor.readiness()
                done(Response(status: ready ? .ok : .serviceUnavailable, contentType: "application/json", body: body))
            case "/healthz":
                done(Response(status: .ok, contentType: "text/plain; charset=utf-8", body: Array("ok\n".utf8)))
            default:
                done(
                    Response(
                        status: .ok, contentType: "text/html; charset=utf-8",
                        body: Array(StatusPage.render(supervisor.statusPageModel()).utf8)))
            }
        }
    }
}

/// One connection: checks each request, asks `MetricsRoutes`, writes the answer. Runs on the connection's loop.
private final class MetricsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let routes: MetricsRoutes
    private var request: HTTPRequestHead?
    /// The head was refused: the rest of the request is dropped and the connection closes after the answer.
    private var refused = false
    private var deadline: Scheduled<Void>?

    init(routes: MetricsRoutes) { self.routes = routes }

    func handlerAdded(context: ChannelHandlerContext) { armDeadline(context) }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    /// The next request head must arrive in time (a slow-header or idle client is closed).
    private func armDeadline(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: MetricsServer.headerTimeout) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            deadline?.cancel()
            deadline = nil
            guard !refused else { return }
            if let refusal = check(head) {
                refused = true
                write(context, refusal, head: head.method == .HEAD, keepAlive: false)
                return
            }
            request = head
        case .body:
            break  // only possible after a refusal (a body is refused at the head)
        case .end:
            guard let head = request, !refused else { return }
            request = nil
            let path = String(head.uri.prefix { $0 != "?" && $0 != "#" })
            let keepAlive = head.isKeepAlive
            let isHead = head.method == .HEAD
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let loop = context.eventLoop
            let answered = NIOLoopBound(Answered(), eventLoop: loop)
            if path == "/healthz" {
                // 503 if the queue has not answered within the limit (the supervisor is stuck).
                loop.scheduleTask(in: MetricsServer.healthTimeout) {
                    guard !answered.value.done else { return }
                    answered.value.done = true
                    let (handler, context) = bound.value
                    handler.write(
                        context,
                        .init(
                            status: .serviceUnavailable, contentType: "text/plain; charset=utf-8",
                            body: Array("the supervisor did not answer within 1 s\n".utf8)),
                        head: isHead, keepAlive: keepAlive)
                }
            }
            let routes = self.routes
            routes.answer(path, accept: head.headers["accept"]) { response in
                guard !routes.supervisor.metricsListenerStopped else { return }
                loop.execute {
                    guard !answered.value.done else { return }
                    answered.value.done = true
                    let (handler, context) = bound.value
                    handler.write(context, response, head: isHead, keepAlive: keepAlive)
                }
            }
        }
    }

    private final class Answered {
        var done = false
    }

    /// Why a request is refused, as the answer; nil when it is one we serve.
    private func check(_ head: HTTPRequestHead) -> MetricsRoutes.Response? {
        func text(_ status: HTTPResponseStatus, _ message: String, _ headers: [(String, String)] = [])
            -> MetricsRoutes.Response
        {
            .init(
                status: status, contentType: "text/plain; charset=utf-8", body: Array((message + "\n").utf8),
                headers: headers)
        }
        let headerBytes = head.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
        if headerBytes + head.uri.utf8.count > MetricsServer.maxHeaderBytes {
            return text(
                .init(statusCode: 431, reasonPhrase: "Request Header Fields Too Large"),
                "request headers over \(MetricsServer.maxHeaderBytes) bytes")
        }
        guard head.method == .GET || head.method == .HEAD else {
            return text(.methodNotAllowed, "only GET and HEAD", [("Allow", "GET, HEAD")])
        }
        let length = head.headers["content-length"].first.flatMap { Int($0.trimmingCharacters) }
        if (length ?? 0) > 0 || !head.headers["transfer-encoding"].isEmpty
            || (head.headers["content-length"].first != nil && length == nil)
        {
            return text(.payloadTooLarge, "request bodies are not accepted")
        }
        let path = String(head.uri.prefix { $0 != "?" && $0 != "#" })
        guard MetricsRoutes.paths.contains(path) else {
            return text(.notFound, "not found: /metrics, /status.json, /healthz, /readyz, /")
        }
        return nil
    }

    private func write(
        _ context: ChannelHandlerContext, _ response: MetricsRoutes.Response, head: Bool, keepAlive: Bool
    ) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))),
            promise: nil)
        if !head, !response.body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let channel = context.channel
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if keepAlive {
            armDeadline(context)
        } else {
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

extension String {
    fileprivate var trimmingCharacters: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
