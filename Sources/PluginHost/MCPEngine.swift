import Dispatch
import MCPProtocol
import NIOCore
import NIOHTTP1
import PluginABI
import Synchronization

/// Settings of the protocol engine (see docs/plugin-host.md for the command-line flags behind them).
public struct HostConfig: Sendable {
    public var maxBodyBytes = 4 << 20
    public var callTimeout: TimeAmount = .seconds(60)
    public var hangGrace: TimeAmount = .seconds(5)
    public var allowedHosts: [String] = []
    public var allowedOrigins: [String] = []
    public var pageSize = 100
    public var maxOutputBytes = 16 << 20
    public var maxSessions = 4096
    public var sessionIdleTimeout: TimeAmount = .hours(1)

    public init() {}
}

/// The MCP protocol engine: serves both eras on one endpoint and turns requests into plugin calls.
public final class MCPEngine: Sendable {
    let plugin: PluginInstance
    let config: HostConfig
    let sessions: SessionStore
    private let draining = Atomic<Bool>(false)
    private let activeCalls = Atomic<Int>(0)
    private let serverInfo: JSONValue
    /// Signalled when the last call ends while draining.
    private let drained = DispatchSemaphore(value: 0)

    public init(plugin: PluginInstance, config: HostConfig) {
        self.plugin = plugin
        self.config = config
        self.sessions = SessionStore(maxSessions: config.maxSessions, idleTimeout: config.sessionIdleTimeout)
        var info: [String: JSONValue] = [
            "name": .string(plugin.serverName), "version": .string(plugin.serverVersion),
        ]
        if let t = plugin.serverTitle { info["title"] = .string(t) }
        self.serverInfo = .object(info)
        plugin.changeHandlers.withLock {
            $0.append { [weak self] lists, uri in self?.broadcastChange(lists: lists, uri: uri) }
        }
    }

    public var isDraining: Bool { draining.load(ordering: .relaxed) }
    public var callsInFlight: Int { activeCalls.load(ordering: .relaxed) }

    /// Stops taking requests: legacy GET streams end, sessions' calls keep running until they finish.
    public func beginDrain() {
        draining.store(true, ordering: .relaxed)
        for s in sessions.allStreams() { s.endStream() }
    }

    /// Waits until no call is in flight (after `beginDrain`), or the deadline; returns the calls left.
    public func waitForCalls(until deadline: NIODeadline) -> Int {
        while callsInFlight > 0 {
            let ns =
                deadline.uptimeNanoseconds > NIODeadline.now().uptimeNanoseconds
                ? deadline.uptimeNanoseconds - NIODeadline.now().uptimeNanoseconds : 0
            if ns == 0 { break }
            _ = drained.wait(timeout: .now() + .nanoseconds(Int(min(ns, UInt64(Int.max)))))
        }
        return callsInFlight
    }

    static func errorBody(id: JSONValue?, code: Int64, message: String, data: JSONValue? = nil) -> [UInt8] {
        JSONWriter.serialize(JSONRPC.error(id: id, code: code, message: message, data: data))
    }

    // MARK: Entry

    public func handle(_ req: HTTPRequest, _ out: HTTPResponder) {
        let path = req.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? req.uri
        guard path == "/mcp" else {
            return out.respond(
                status: .notFound, headers: [("Content-Type", "text/plain; charset=utf-8")],
                body: Array("not found: the MCP endpoint is /mcp\n".utf8))
        }
        if let problem = checkHostAndOrigin(req.headers) {
            return reply(
                out, status: .forbidden, Self.errorBody(id: nil, code: JSONRPC.invalidRequest, message: problem))
        }
        if isDraining {
            return reply(
                out, status: .serviceUnavailable,
                Self.errorBody(id: nil, code: JSONRPC.internalError, message: "server is shutting down; retry"),
                headers: [("Retry-After", "1")])
        }
        switch req.method {
        case .POST: handlePost(req, out)
        case .GET: handleGet(req, out)
        case .DELETE: handleDelete(req, out)
        default:
            out.respond(
                status: .methodNotAllowed,
                headers: [("Allow", "GET, POST, DELETE"), ("Content-Type", "application/json")],
                body: Self.errorBody(id: nil, code: JSONRPC.invalidRequest, message: "method \(req.method) not allowed")
            )
        }
    }

    private func reply(
        _ out: HTTPResponder, status: HTTPResponseStatus, _ body: [UInt8], headers: [(String, String)] = []
    ) {
        out.respond(status: status, headers: [("Content-Type", "application/json")] + headers, body: body)
    }

    // MARK: Origin and Host (DNS rebinding protection)

    private static let loopbackNames: Set<String> = ["localhost", "127.0.0.1", "::1", "[::1]"]

    private func hostName(_ authority: Substring) -> String {
        if authority.hasPrefix("[") {
            if let end = authority.firstIndex(of: "]") { return String(authority[...end]).lowercased() }
            return String(authority).lowercased()
        }
        return String(authority.split(separator: ":", maxSplits: 1).first ?? "").lowercased()
    }

    private func checkHostAndOrigin(_ headers: HTTPHeaders) -> String? {
        guard let host = headers.first(name: "Host") else { return "the Host header is required" }
        let name = hostName(Substring(host))
        guard
            Self.loopbackNames.contains(name) || config.allowedHosts.contains(name)
                || config.allowedHosts.contains(host)
        else { return "Host '\(host)' is not allowed (DNS rebinding protection); see --allowed-host" }
        if let origin = headers.first(name: "Origin") {
            if config.allowedOrigins.contains(origin) { return nil }
            let parts = origin.split(separator: "/", omittingEmptySubsequences: true)
            guard parts.count == 2, parts[0] == "http:" || parts[0] == "https:",
                Self.loopbackNames.contains(hostName(parts[1]))
            else { return "Origin '\(origin)' is not allowed; see --allowed-origin" }
        }
        return nil
    }

    // MARK: POST

    struct Accepts {
        var json: Bool
        var sse: Bool
    }

    func accepts(_ headers: HTTPHeaders) -> Accepts {
        let values = headers[canonicalForm: "Accept"]
        if values.isEmpty { return Accepts(json: true, sse: true) }
        var a = Accepts(json: false, sse: false)
        for v in values {
            let type = v.split(separator: ";").first.map { $0.trimmingSpaces().lowercased() } ?? ""
            switch type {
            case "application/json", "application/*": a.json = true
            case "text/event-stream", "text/*": a.sse = true
            case "*/*":
                a.json = true
                a.sse = true
            default: break
            }
        }
        return a
    }

    private func handlePost(_ req: HTTPRequest, _ out: HTTPResponder) {
        let contentType = req.headers.first(name: "Content-Type")?.split(separator: ";").first?.trimmingSpaces()
            .lowercased()
        guard contentType == "application/json" else {
            return reply(
                out, status: .unsupportedMediaType,
                Self.errorBody(id: nil, code: JSONRPC.invalidRequest, message: "Content-Type must be application/json"))
        }
        let acc = accepts(req.headers)
        guard acc.json || acc.sse else {
            return reply(
                out, status: .notAcceptable,
                Self.errorBody(
                    id: nil, code: JSONRPC.invalidRequest,
                    message: "Accept must list application/json and text/event-stream"))
        }
        let value: JSONValue
        do { value = try JSONParser.parse(req.body) } catch {
            return reply(
                out, status: .badRequest,
                Self.errorBody(id: nil, code: JSONRPC.parseError, message: "Parse error: \(error.description)"))
        }
        let header: (String) -> String? = { req.headers.first(name: $0) }
        let sessionID = header("Mcp-Session-Id")
        switch JSONRPC.decode(value) {
        case .batch:
            reply(
                out, status: .badRequest,
                Self.errorBody(
                    id: nil, code: JSONRPC.invalidRequest,
                    message:
                        "JSON-RPC batches are not supported (removed from MCP in 2025-06-18); send one message per POST"
                ))
        case .invalid(let reason, let id):
            reply(
                out, status: .badRequest,
                Self.errorBody(id: id, code: JSONRPC.invalidRequest, message: "Invalid Request: \(reason)"))
        case .response:
            // Answers to server-to-client requests; this server sends none, so there is nothing to match.
            out.respond(status: .accepted, body: [])
        case .notification(let method, let params):
            if let sessionID {
                guard sessions.touch(sessionID) != nil else { return sessionNotFound(out, id: nil) }
                if method == "notifications/cancelled", let rid = params["requestId"] {
                    cancelSessionRequest(sessionID, key: JSONWriter.string(rid))
                }
            }
            out.respond(status: .accepted, body: [])
        case .request(let id, let method, let params):
            if method == "initialize" {
                return initialize(id: id, params: params, acc: acc, out)
            }
            // A request with modern _meta is served statelessly even if it carries a session header
            // (2026-07-28: ignore Mcp-Session-Id).
            if let sessionID, ModernRequestRules.declaredVersion(params) == nil {
                return legacyRequest(id: id, method: method, params: params, sessionID: sessionID, acc: acc, req, out)
            }
            let headerVersion = header("MCP-Protocol-Version")
            if ModernRequestRules.declaredVersion(params) != nil || headerVersion.map(ProtocolVersion.isModern) == true
                || (headerVersion != nil && !ProtocolVersion.isLegacy(headerVersion!))
            {
                return modernRequest(id: id, method: method, params: params, acc: acc, header: header, out)
            }
            reply(
                out, status: .badRequest,
                Self.errorBody(
                    id: id, code: JSONRPC.invalidRequest,
                    message: "Bad Request: no Mcp-Session-Id (send initialize first) and no "
                        + "params._meta[\"\(ModernRequestRules.metaVersionKey)\"] (protocol 2026-07-28)"))
        }
    }

    private func sessionNotFound(_ out: HTTPResponder, id: JSONValue?) {
        reply(
            out, status: .notFound,
            Self.errorBody(
                id: id, code: JSONRPC.invalidRequest,
                message: "Session not found: it ended or never existed; send initialize to start a new one"))
    }

    // MARK: Legacy era

    private func initialize(id: JSONValue, params: [String: JSONValue], acc: Accepts, _ out: HTTPResponder) {
        guard let requested = params["protocolVersion"]?.stringValue else {
            return reply(
                out, status: .badRequest,
                Self.errorBody(id: id, code: JSONRPC.invalidParams, message: "params.protocolVersion is required"))
        }
        let version = ProtocolVersion.negotiateLegacy(requested: requested)
        let sid = sessions.create(version: version)
        var result: [String: JSONValue] = [
            "protocolVersion": .string(version),
            "capabilities": capabilities(modern: false),
            "serverInfo": serverInfo,
        ]
        if let i = plugin.instructions { result["instructions"] = .string(i) }
        let ctx = RequestContext(
            id: id, version: version, modern: false, sessionID: sid, progressToken: nil, logThreshold: nil,
            acc: acc)
        deliver(ctx, JSONRPC.result(id: id, .object(result)), out, headers: [("Mcp-Session-Id", sid)])
    }

    private func legacyRequest(
        id: JSONValue, method: String, params: [String: JSONValue], sessionID: String, acc: Accepts,
        _ req: HTTPRequest, _ out: HTTPResponder
    ) {
        guard let session = sessions.touch(sessionID) else { return sessionNotFound(out, id: id) }
        if let v = req.headers.first(name: "MCP-Protocol-Version"), !ProtocolVersion.isLegacy(v) {
            return reply(
                out, status: .badRequest,
                Self.errorBody(
                    id: id, code: JSONRPC.invalidRequest,
                    message: "Unsupported MCP-Protocol-Version '\(v)' in session of version \(session.version)"))
        }
        let ctx = RequestContext(
            id: id, version: session.version, modern: false, sessionID: sessionID,
            progressToken: params["_meta"]?["progressToken"], logThreshold: session.logThreshold, acc: acc)
        switch method {
        case "ping":
            deliver(ctx, JSONRPC.result(id: id, [:]), out)
        case "logging/setLevel":
            guard let name = params["level"]?.stringValue, let sev = LogLevel.severity(name) else {
                return deliverError(ctx, .invalidParams("params.level must be a log level", httpStatus: 200), out)
            }
            sessions.update(sessionID) { $0.logThreshold = sev }
            deliver(ctx, JSONRPC.result(id: id, [:]), out)
        default:
            dispatch(ctx, method: method, params: params, header: { req.headers.first(name: $0) }, out)
        }
    }

    private func handleGet(_ req: HTTPRequest, _ out: HTTPResponder) {
        guard let sid = req.headers.first(name: "Mcp-Session-Id") else {
            return out.respond(
                status: .methodNotAllowed, headers: [("Allow", "POST"), ("Content-Type", "application/json")],
                body: Self.errorBody(
                    id: nil, code: JSONRPC.invalidRequest,
                    message:
                        "GET opens a legacy session's event stream and needs Mcp-Session-Id; 2026-07-28 has no GET stream"
                ))
        }
        guard accepts(req.headers).sse else {
            return reply(
                out, status: .notAcceptable,
                Self.errorBody(id: nil, code: JSONRPC.invalidRequest, message: "Accept must list text/event-stream"))
        }
        guard let session = sessions.touch(sid) else { return sessionNotFound(out, id: nil) }
        if let old = session.stream, !old.isFinished {
            return reply(
                out, status: .conflict,
                Self.errorBody(id: nil, code: JSONRPC.invalidRequest, message: "this session already has a GET stream"))
        }
        sessions.update(sid) { $0.stream = out }
        out.onClientGone { [weak self] in self?.sessions.update(sid) { if $0.stream === out { $0.stream = nil } } }
        out.startStream()
        out.sendEvent([], comment: true)
    }

    private func handleDelete(_ req: HTTPRequest, _ out: HTTPResponder) {
        guard let sid = req.headers.first(name: "Mcp-Session-Id") else {
            return out.respond(
                status: .methodNotAllowed, headers: [("Allow", "POST"), ("Content-Type", "application/json")],
                body: Self.errorBody(
                    id: nil, code: JSONRPC.invalidRequest,
                    message: "DELETE ends a legacy session and needs Mcp-Session-Id"))
        }
        guard let session = sessions.remove(sid) else { return sessionNotFound(out, id: nil) }
        for call in session.inFlight.values { plugin.cancel(call) }
        session.stream?.endStream()
        out.respond(status: .noContent, body: [])
    }

    private func cancelSessionRequest(_ sid: String, key: String) {
        var call: PluginCall?
        sessions.update(sid) { call = $0.inFlight[key] }
        if let call { plugin.cancel(call) }
    }

    private func broadcastChange(lists: UInt32, uri: String?) {
        var messages: [JSONValue] = []
        if lists & UInt32(MCPP_LIST_TOOLS) != 0 {
            messages.append(JSONRPC.notification(method: "notifications/tools/list_changed", params: [:]))
        }
        if lists & UInt32(MCPP_LIST_RESOURCES) != 0 {
            messages.append(JSONRPC.notification(method: "notifications/resources/list_changed", params: [:]))
        }
        if lists & UInt32(MCPP_LIST_PROMPTS) != 0 {
            messages.append(JSONRPC.notification(method: "notifications/prompts/list_changed", params: [:]))
        }
        if let uri {
            messages.append(
                JSONRPC.notification(method: "notifications/resources/updated", params: ["uri": .string(uri)]))
        }
        let streams = sessions.allStreams()
        for m in messages {
            let bytes = JSONWriter.serialize(m)
            for s in streams { s.sendEvent(bytes) }
        }
    }

    // MARK: Modern era

    private func modernRequest(
        id: JSONValue, method: String, params: [String: JSONValue], acc: Accepts, header: @escaping (String) -> String?,
        _ out: HTTPResponder
    ) {
        if let e = ModernRequestRules.validate(method: method, params: params, header: header) {
            return reply(
                out, status: HTTPResponseStatus(statusCode: e.httpStatus), JSONWriter.serialize(e.response(id: id)))
        }
        let meta = params["_meta"]?.objectValue ?? [:]
        let threshold = meta[ModernRequestRules.metaLogLevelKey]?.stringValue.flatMap(LogLevel.severity)
        let ctx = RequestContext(
            id: id, version: ModernRequestRules.declaredVersion(params) ?? ProtocolVersion.modern[0], modern: true,
            sessionID: nil, progressToken: meta["progressToken"], logThreshold: threshold, acc: acc)
        if method == "server/discover" {
            var r: [String: JSONValue] = [
                "supportedVersions": .array(ProtocolVersion.all.map { .string($0) }),
                "capabilities": capabilities(modern: true),
            ]
            if let i = plugin.instructions { r["instructions"] = .string(i) }
            return sendResult(ctx, r, cacheable: true, out)
        }
        dispatch(ctx, method: method, params: params, header: header, out)
    }

    // MARK: Methods common to both eras

    struct RequestContext: Sendable {
        var id: JSONValue
        var version: String
        var modern: Bool
        var sessionID: String?
        var progressToken: JSONValue?
        /// Most verbose severity to forward as notifications/message; nil forwards none.
        var logThreshold: Int?
        var acc: Accepts
    }

    private func capabilities(modern: Bool) -> JSONValue {
        let catalog = plugin.catalog
        let t = plugin.table
        var caps: [String: JSONValue] = ["logging": [:]]
        let listChanged: JSONValue = modern ? [:] : ["listChanged": true]
        if t.call_tool != nil || !catalog.tools.isEmpty { caps["tools"] = listChanged }
        if t.read_resource != nil || !catalog.resources.isEmpty || !catalog.templates.isEmpty {
            caps["resources"] = listChanged
        }
        if t.get_prompt != nil || !catalog.prompts.isEmpty { caps["prompts"] = listChanged }
        if plugin.hasCompletions { caps["completions"] = [:] }
        return .object(caps)
    }

    private func dispatch(
        _ ctx: RequestContext, method: String, params: [String: JSONValue], header: (String) -> String?,
        _ out: HTTPResponder
    ) {
        let catalog = plugin.catalog
        func list(_ kind: Catalog.ListKind, _ key: String) {
            var cursor: String? = nil
            if let c = params["cursor"], !c.isNull {
                guard let s = c.stringValue else {
                    return deliverError(ctx, .invalidParams("params.cursor must be a string"), out)
                }
                cursor = s
            }
            do {
                let page = try catalog.page(kind, cursor: cursor, pageSize: config.pageSize)
                var r: [String: JSONValue] = [key: .array(page.items)]
                if let n = page.nextCursor { r["nextCursor"] = .string(n) }
                sendResult(ctx, r, cacheable: true, out)
            } catch {
                deliverError(ctx, error, out)
            }
        }
        switch method {
        case "tools/list": list(.tools, "tools")
        case "resources/list": list(.resources, "resources")
        case "resources/templates/list": list(.templates, "resourceTemplates")
        case "prompts/list": list(.prompts, "prompts")
        case "tools/call":
            guard let name = params["name"]?.stringValue else {
                return deliverError(ctx, .invalidParams("params.name must be a string"), out)
            }
            guard let tool = catalog.tool(named: name) else {
                return deliverError(ctx, .invalidParams("Unknown tool: \(name)"), out)
            }
            var args: [String: JSONValue] = [:]
            if let a = params["arguments"], !a.isNull {
                guard case .object(let o) = a else {
                    return deliverError(ctx, .invalidParams("params.arguments must be an object"), out)
                }
                args = o
            }
            if ctx.modern, !tool.mirroredHeaders.isEmpty,
                let e = ModernRequestRules.validateParamHeaders(
                    mirrored: tool.mirroredHeaders, arguments: args, header: header)
            {
                return reply(
                    out, status: HTTPResponseStatus(statusCode: e.httpStatus),
                    JSONWriter.serialize(e.response(id: ctx.id)))
            }
            run(ctx, kind: .tool(name: name), arguments: args, out, inline: plugin.mayRunInline(tool))
        case "resources/read":
            guard let uri = params["uri"]?.stringValue else {
                return deliverError(ctx, .invalidParams("params.uri must be a string"), out)
            }
            if let r = catalog.resources.first(where: { $0.uri == uri }) {
                run(
                    ctx, kind: .resource(uri: uri, template: nil, mimeType: r.json["mimeType"]?.stringValue),
                    arguments: [:], out)
            } else if let (t, vars) = catalog.matchTemplate(uri) {
                run(
                    ctx,
                    kind: .resource(uri: uri, template: t.template.text, mimeType: t.json["mimeType"]?.stringValue),
                    arguments: vars.mapValues { .string($0) }, out)
            } else {
                deliverError(ctx, resourceNotFound(ctx, uri), out)
            }
        case "prompts/get":
            guard let name = params["name"]?.stringValue else {
                return deliverError(ctx, .invalidParams("params.name must be a string"), out)
            }
            guard let prompt = catalog.prompt(named: name) else {
                return deliverError(ctx, .invalidParams("Unknown prompt: \(name)"), out)
            }
            var args: [String: JSONValue] = [:]
            if let a = params["arguments"], !a.isNull {
                guard case .object(let o) = a else {
                    return deliverError(ctx, .invalidParams("params.arguments must be an object"), out)
                }
                for (k, v) in o {
                    guard case .string = v else {
                        return deliverError(ctx, .invalidParams("prompt argument '\(k)' must be a string"), out)
                    }
                }
                args = o
            }
            if let missing = prompt.requiredArguments.first(where: { args[$0] == nil }) {
                return deliverError(
                    ctx, .invalidParams("Missing required argument '\(missing)' for prompt \(name)"), out)
            }
            run(ctx, kind: .prompt(name: name), arguments: args, out)
        case "completion/complete":
            guard plugin.hasCompletions else {
                return deliverError(ctx, .methodNotFound(method, httpStatus: ctx.modern ? 404 : 200), out)
            }
            guard let ref = params["ref"]?.objectValue, let refType = ref["type"]?.stringValue,
                let arg = params["argument"]?.objectValue, let argName = arg["name"]?.stringValue,
                let argValue = arg["value"]?.stringValue
            else {
                return deliverError(
                    ctx, .invalidParams("params.ref and params.argument {name, value} are required"), out)
            }
            let kind: CallKind
            switch refType {
            case "ref/prompt":
                guard let n = ref["name"]?.stringValue, catalog.prompt(named: n) != nil else {
                    return deliverError(ctx, .invalidParams("Unknown prompt in ref"), out)
                }
                kind = .complete(refKind: Int32(MCPP_REF_PROMPT), ref: n, argument: argName, value: argValue)
            case "ref/resource":
                guard let u = ref["uri"]?.stringValue, catalog.template(withText: u) != nil else {
                    return deliverError(ctx, .invalidParams("Unknown resource template in ref"), out)
                }
                kind = .complete(refKind: Int32(MCPP_REF_RESOURCE_TEMPLATE), ref: u, argument: argName, value: argValue)
            default:
                return deliverError(ctx, .invalidParams("params.ref.type must be ref/prompt or ref/resource"), out)
            }
            var args: [String: JSONValue] = [:]
            if case .object(let c) = params["context"]?["arguments"] { args = c }
            run(ctx, kind: kind, arguments: args, out)
        default:
            deliverError(ctx, .methodNotFound(method, httpStatus: ctx.modern ? 404 : 200), out)
        }
    }

    private func resourceNotFound(_ ctx: RequestContext, _ uri: String) -> ProtocolError {
        if ctx.modern {
            return ProtocolError(
                httpStatus: 200, code: JSONRPC.invalidParams, message: "Resource not found: \(uri)",
                data: ["uri": .string(uri)])
        }
        return ProtocolError(
            httpStatus: 200, code: JSONRPC.legacyResourceNotFound, message: "Resource not found",
            data: ["uri": .string(uri)])
    }

    // MARK: Responses

    private func sendResult(
        _ ctx: RequestContext, _ fields: [String: JSONValue], cacheable: Bool, _ out: HTTPResponder
    ) {
        deliver(ctx, JSONRPC.result(id: ctx.id, .object(shape(ctx, fields, cacheable: cacheable))), out)
    }

    fileprivate func shape(_ ctx: RequestContext, _ fields: [String: JSONValue], cacheable: Bool) -> [String: JSONValue]
    {
        guard ctx.modern else { return fields }
        var r = fields
        r["resultType"] = "complete"
        r["_meta"] = [ModernRequestRules.metaServerInfoKey: serverInfo]
        if cacheable {
            r["ttlMs"] = 0
            r["cacheScope"] = "private"
        }
        return r
    }

    /// Errors found while executing a method (unknown tool, bad arguments, bad cursor): JSON-RPC errors on
    /// HTTP 200 in both eras, except an unknown method, which 2026-07-28 answers with 404. (A modern 400 would
    /// tell a dual-era client this server is legacy, since -32602 is not one of the transport's modern errors.)
    private func deliverError(_ ctx: RequestContext, _ e: ProtocolError, _ out: HTTPResponder) {
        let status: HTTPResponseStatus = ctx.modern && e.code == JSONRPC.methodNotFound ? .notFound : .ok
        deliver(ctx, e.response(id: ctx.id), out, status: status)
    }

    /// Sends one JSON-RPC message as the response: JSON when the client accepts it, else a one-event SSE stream.
    fileprivate func deliver(
        _ ctx: RequestContext, _ message: JSONValue, _ out: HTTPResponder, status: HTTPResponseStatus = .ok,
        headers: [(String, String)] = []
    ) {
        let body = JSONWriter.serialize(message)
        if ctx.acc.json || status != .ok {
            out.respond(status: status, headers: [("Content-Type", "application/json")] + headers, body: body)
        } else {
            out.startStream(headers: headers)
            out.sendEvent(body)
            out.endStream()
        }
    }

    // MARK: Plugin calls

    private func run(
        _ ctx: RequestContext, kind: CallKind, arguments: [String: JSONValue], _ out: HTTPResponder,
        inline: Bool = false
    ) {
        activeCalls.add(1, ordering: .relaxed)
        let active = ActiveRequest(engine: self, ctx: ctx, out: out)
        let call = plugin.makeCall(
            kind: kind, arguments: arguments, observer: active, maxOutputBytes: config.maxOutputBytes)
        active.attach(call)
        if let sid = ctx.sessionID {
            let key = JSONWriter.string(ctx.id)
            sessions.update(sid) { $0.inFlight[key] = call }
        }
        if inline {
            plugin.runInline(call)
            if call.isFinished { return }
        }
        let loop = out.channel.eventLoop
        active.setDeadlineTask(loop.scheduleTask(in: config.callTimeout) { active.deadlinePassed() })
        // 2026-07-28: closing the response stream cancels the request. 2025-11-25 and earlier: a disconnect
        // SHOULD NOT be read as cancellation (clients send notifications/cancelled), so the call runs on.
        if ctx.modern { out.onClientGone { active.clientGone() } }
        if !inline { plugin.submit(call) }
    }

    fileprivate func callEnded(_ ctx: RequestContext) {
        let left = activeCalls.subtract(1, ordering: .acquiringAndReleasing).newValue
        if left == 0, isDraining { drained.signal() }
        if let sid = ctx.sessionID {
            let key = JSONWriter.string(ctx.id)
            sessions.update(sid) { $0.inFlight.removeValue(forKey: key) }
        }
    }

    fileprivate func scheduleOverrunCheck(_ call: PluginCall, on loop: EventLoop) {
        let plugin = self.plugin
        loop.scheduleTask(in: config.hangGrace) { plugin.checkOverrun(call) }
    }

    fileprivate func outcomeMessage(_ ctx: RequestContext, _ outcome: CallOutcome, kind: CallKind) -> (
        JSONValue, HTTPResponseStatus
    ) {
        switch outcome {
        case .result(let fields):
            var cacheable = false
            if case .resource = kind { cacheable = true }
            return (JSONRPC.result(id: ctx.id, .object(shape(ctx, fields, cacheable: cacheable))), .ok)
        case .notFound(let m):
            if case .resource(let uri, _, _) = kind {
                let e = resourceNotFound(ctx, uri)
                return (e.response(id: ctx.id), .ok)
            }
            return (JSONRPC.error(id: ctx.id, code: JSONRPC.invalidParams, message: m.isEmpty ? "not found" : m), .ok)
        case .invalidParams(let m):
            return (JSONRPC.error(id: ctx.id, code: JSONRPC.invalidParams, message: m), .ok)
        case .internalError(let m):
            return (JSONRPC.error(id: ctx.id, code: JSONRPC.internalError, message: m), .ok)
        }
    }

    fileprivate var timeoutSeconds: String {
        let ns = config.callTimeout.nanoseconds
        return ns % 1_000_000_000 == 0 ? "\(ns / 1_000_000_000)" : "\(Double(ns) / 1e9)"
    }
}

/// One HTTP request waiting on a plugin call: streams progress and logs as SSE when the client accepts it,
/// and answers exactly once, whichever comes first of the plugin's finish, the deadline or the client leaving.
final class ActiveRequest: CallObserver, @unchecked Sendable {
    // @unchecked: all mutable state is behind `lock`.
    private let engine: MCPEngine
    private let ctx: MCPEngine.RequestContext
    private let out: HTTPResponder
    private let lock = Mutex<State>(State())

    private struct State {
        var call: PluginCall?
        var streaming = false
        var done = false
        var deadline: Scheduled<Void>?
    }

    init(engine: MCPEngine, ctx: MCPEngine.RequestContext, out: HTTPResponder) {
        self.engine = engine
        self.ctx = ctx
        self.out = out
    }

    func attach(_ call: PluginCall) { lock.withLock { $0.call = call } }

    func setDeadlineTask(_ t: Scheduled<Void>) {
        let cancelNow = lock.withLock { s -> Bool in
            if s.done { return true }
            s.deadline = t
            return false
        }
        if cancelNow { t.cancel() }
    }

    private func send(_ message: JSONValue) {
        // Called with the lock held, so events reach the event loop in the order they happened.
        out.sendEvent(JSONWriter.serialize(message))
    }

    func callProgress(progress: Double, total: Double?, message: String?) {
        guard let token = ctx.progressToken, ctx.acc.sse else { return }
        lock.withLock { s in
            guard !s.done else { return }
            if !s.streaming {
                s.streaming = out.startStream()
                guard s.streaming else { return }
            }
            var p: [String: JSONValue] = ["progressToken": token, "progress": .double(progress)]
            if let total { p["total"] = .double(total) }
            if let message { p["message"] = .string(message) }
            send(JSONRPC.notification(method: "notifications/progress", params: .object(p)))
        }
    }

    func callLog(level: Int32, message: String) {
        let activity = lock.withLock { $0.call?.kind.activity } ?? "call"
        engine.plugin.log("[\(LogLevel.name(level))] \(activity): \(message)")
        guard let threshold = ctx.logThreshold, Int(level) <= threshold, ctx.acc.sse else { return }
        lock.withLock { s in
            guard !s.done else { return }
            if !s.streaming {
                s.streaming = out.startStream()
                guard s.streaming else { return }
            }
            send(
                JSONRPC.notification(
                    method: "notifications/message",
                    params: [
                        "level": .string(LogLevel.name(level)), "logger": .string(engine.plugin.serverName),
                        "data": .string(message),
                    ]))
        }
    }

    func callFinished(_ outcome: CallOutcome) {
        let kind = lock.withLock { $0.call?.kind }
        guard let kind else { return complete(with: nil) }
        complete(with: engine.outcomeMessage(ctx, outcome, kind: kind))
    }

    /// Sends the final message (if any) and ends the request once.
    private func complete(with final: (JSONValue, HTTPResponseStatus)?) {
        let (ended, deadline) = lock.withLock { s -> (Bool, Scheduled<Void>?) in
            guard !s.done else { return (false, nil) }
            s.done = true
            if let (message, status) = final {
                if s.streaming {
                    send(message)
                    out.endStream()
                } else {
                    engine.deliver(ctx, message, out, status: status)
                }
            }
            let d = s.deadline
            s.deadline = nil
            s.call = nil  // the call holds this observer: break the cycle
            return (true, d)
        }
        guard ended else { return }
        deadline?.cancel()
        engine.callEnded(ctx)
    }

    func deadlinePassed() {
        guard let call = lock.withLock({ $0.done ? nil : $0.call }) else { return }
        engine.plugin.cancel(call)
        engine.plugin.log("\(call.kind.activity) exceeded its deadline of \(engine.timeoutSeconds) s and was cancelled")
        engine.scheduleOverrunCheck(call, on: out.channel.eventLoop)
        let message: (JSONValue, HTTPResponseStatus)
        if case .tool(let name) = call.kind {
            let fields: [String: JSONValue] = [
                "content": [
                    [
                        "type": "text",
                        "text": .string(
                            "Tool '\(name)' did not finish within its deadline of \(engine.timeoutSeconds) s and was cancelled."
                        ),
                    ]
                ],
                "isError": true,
            ]
            message = (JSONRPC.result(id: ctx.id, .object(engine.shape(ctx, fields, cacheable: false))), .ok)
        } else {
            message = (
                JSONRPC.error(
                    id: ctx.id, code: JSONRPC.internalError,
                    message: "\(call.kind.activity) did not finish within its deadline of \(engine.timeoutSeconds) s"),
                .ok
            )
        }
        complete(with: message)
    }

    func clientGone() {
        guard let call = lock.withLock({ $0.done ? nil : $0.call }) else { return }
        engine.plugin.cancel(call)
        complete(with: nil)
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return s
    }
}
