import MCPProtocol
import NIOCore
import NIOHTTP1

/// Reads requests off one connection, enforces the body limit, the path and the Host/Origin policy, and hands
/// the rest to the dispatcher as plain values.
final class HTTPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let dispatcher: MCPDispatcher
    /// The gateway's `/mcp/<group>` endpoints (nil for a host).
    private let engine: MCPEngine?
    private let maxBodyBytes: Int
    private let originPolicy: OriginPolicy
    private let edge: EdgePolicy?
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var rejected = false
    private var current: HTTPResponder?

    init(dispatcher: MCPDispatcher, engine: MCPEngine? = nil, edge: EdgePolicy? = nil) {
        self.dispatcher = dispatcher
        self.engine = engine
        self.maxBodyBytes = dispatcher.config.maxBodyBytes
        self.edge = edge.flatMap { $0.isEmpty ? nil : $0 }
        self.originPolicy = OriginPolicy(
            allowedHosts: dispatcher.config.allowedHosts,
            allowedOrigins: dispatcher.config.allowedOrigins + dispatcher.config.edge.corsOrigins)
    }

    func channelInactive(context: ChannelHandlerContext) {
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
            if let len = h.headers.first(name: "Content-Length").flatMap(Int.init), len > maxBodyBytes {
                reject(context: context, version: h.version)
            }
        case .body(var buf):
            guard !rejected else { return }
            if body.count + buf.readableBytes > maxBodyBytes {
                reject(context: context, version: head?.version ?? .http1_1)
                return
            }
            dispatcher.traffic?.addBytesIn(buf.readableBytes)
            body.append(contentsOf: buf.readBytes(length: buf.readableBytes) ?? [])
        case .end:
            guard let h = head, !rejected else { return }
            head = nil
            let responder = HTTPResponder(
                channel: context.channel, keepAlive: h.isKeepAlive && !dispatcher.isDraining,
                traffic: dispatcher.traffic, common: edge?.corsHeaders(h.headers.first(name: "Origin")) ?? [])
            current = responder
            if let edge, let refused = Self.edgeRefusal(edge, h, address: context.channel.remoteAddress?.ipAddress) {
                responder.respond(status: refused.status, headers: refused.headers, body: refused.body)
            } else {
                serve(h, body, responder)
            }
            body = []
        }
    }

    /// The endpoint's transport rules (one path, DNS rebinding protection), then the dispatcher.
    private func serve(_ head: HTTPRequestHead, _ body: [UInt8], _ out: HTTPResponder) {
        let uri = head.uri.utf8
        let path = uri[uri.startIndex..<(uri.firstIndex(of: UInt8(ascii: "?")) ?? uri.endIndex)]
        var target = dispatcher
        if !path.elementsEqual("/mcp".utf8) {
            let text = String(decoding: path, as: UTF8.self)
            guard let engine, text.hasPrefix("/mcp/") else {
                return out.respond(
                    status: 404, headers: [("Content-Type", "text/plain; charset=utf-8")],
                    body: Array("not found: the MCP endpoint is /mcp\n".utf8))
            }
            switch engine.group(String(text.dropFirst(5))) {
            case .success(let d): target = d
            case .failure(let missing) where missing.known == nil:
                return out.respond(
                    status: 404, headers: [("Content-Type", "text/plain; charset=utf-8")],
                    body: Array("not found: the MCP endpoint is /mcp\n".utf8))
            case .failure(let missing):
                let known = (missing.known ?? []).map { "/mcp/\($0)" }.joined(separator: ", ")
                return out.respond(
                    status: 404, headers: [("Content-Type", "text/plain; charset=utf-8")],
                    body: Array(
                        "not found: \(text.prefix(200)) is no group of this gateway (endpoints: /mcp\(known.isEmpty ? "" : ", " + known))\n"
                            .utf8))
            }
        }
        if let problem = originPolicy.problem(
            host: head.headers.first(name: "Host"), origin: head.headers.first(name: "Origin"))
        {
            return out.respond(
                status: 403, headers: [("Content-Type", "application/json")],
                body: MCPDispatcher.errorBody(id: nil, code: JSONRPC.invalidRequest, message: problem))
        }
        let verb: MCPRequest.Verb
        switch head.method {
        case .POST: verb = .post
        case .GET: verb = .get
        case .DELETE: verb = .delete
        default: verb = .other("\(head.method)")
        }
        let headers = RequestHeaders(head.headers.map { (name: $0.name, value: $0.value) })
        target.handle(MCPRequest(verb: verb, headers: headers, body: body), out)
    }

    /// What the edge answers instead of the endpoint (EdgePolicy; docs/gateway.md, "Edge"), or nil to go on: a
    /// CORS preflight, a client over its rate, a request without the bearer token.
    static func edgeRefusal(_ edge: EdgePolicy, _ head: HTTPRequestHead, address: String?)
        -> (status: Int, headers: [(String, String)], body: [UInt8])?
    {
        let origin = head.headers.first(name: "Origin")
        if head.method == .OPTIONS {
            guard let origin, edge.allowsCORS(origin) else {
                return (403, [("Content-Type", "text/plain; charset=utf-8")], Array("no CORS for this origin\n".utf8))
            }
            return (
                204,
                edge.preflightHeaders(origin, requested: head.headers.first(name: "Access-Control-Request-Headers")), []
            )
        }
        if let wait = edge.throttle(address ?? "unknown") {
            let seconds = max(1, Int(wait.rounded(.up)))
            let limit = edge.settings.ratePerSecond ?? 0
            return (
                429, [("Content-Type", "application/json"), ("Retry-After", String(seconds))],
                MCPDispatcher.errorBody(
                    id: nil, code: JSONRPC.rateLimited,
                    message:
                        "rate limited: more than \(limit) requests per second from \(address ?? "this address"); retry after \(seconds) s",
                    data: ["retryAfterSeconds": .int(Int64(seconds))])
            )
        }
        if !edge.authorized(head.headers.first(name: "Authorization")) {
            return (
                401, [("Content-Type", "application/json"), ("WWW-Authenticate", "Bearer realm=\"mcp-gateway\"")],
                MCPDispatcher.errorBody(
                    id: nil, code: JSONRPC.unauthorized,
                    message: "this endpoint needs Authorization: Bearer <token> (the gateway's --bearer-token-file)")
            )
        }
        return nil
    }

    /// Answers 413 and closes: the rest of an oversized body is never read into memory.
    private func reject(context: ChannelHandlerContext, version: HTTPVersion) {
        rejected = true
        let payload = MCPDispatcher.errorBody(
            id: nil, code: JSONRPC.invalidRequest, message: "request body exceeds the limit of \(maxBodyBytes) bytes")
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(payload.count))
        headers.add(name: "Connection", value: "close")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .payloadTooLarge, headers: headers))),
            promise: nil)
        dispatcher.traffic?.addBytesOut(payload.count)
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
