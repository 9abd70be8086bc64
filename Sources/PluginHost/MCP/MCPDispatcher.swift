import Contracts
import Dispatch
import Locking
import MCPProtocol
import PluginABI
import Synchronization

/// The MCP protocol for both eras on one endpoint, apart from any transport: a request in (verb, headers,
/// body), a reply or a stream of messages out through a `ReplySink`. 2026-07-28 requests are served
/// statelessly; 2025-11-25 and earlier ones live in sessions that `initialize` opens. Plugin calls are
/// started, streamed, timed out and cancelled here. The rules are listed in docs/protocol.md.
final class MCPDispatcher: Sendable {
    let plugin: any DispatchedPlugin
    let config: HostConfig
    let sessions: SessionStore
    private let draining = Atomic<Bool>(false)
    private let refusing = Atomic<Bool>(false)
    private let activeCalls = Atomic<Int>(0)
    /// The traffic counters (nil with `--no-metrics`): every POSTed request is counted once, when answered.
    let traffic: TrafficCounters?
    private let serverInfo: JSONValue
    /// Signalled when the last call ends while draining.
    private let drained = DispatchSemaphore(value: 0)
    let sealer: RequestStateSealer
    /// Legacy-era requests the host sent a client for a call (elicitation, sampling, roots), by session and id.
    private let pendingInputs = Locked<[String: InputRequest]>([:])
    private let nextInputID = Atomic<Int>(1)
    /// Open 2026-07-28 subscriptions/listen streams.
    private let listeners = Locked<[ObjectIdentifier: Listener]>([:])

    struct Listener: Sendable {
        var out: any ReplySink
        var id: JSONValue
        var tools = false
        var resources = false
        var prompts = false
        var uris: Set<String> = []
    }

    /// Where a legacy session this dispatcher's DELETE ended is reported (the supervisor, for the other replicas).
    private let sessionEnds: SessionEndRelay?

    init(plugin: any DispatchedPlugin, config: HostConfig, sessionEnds: SessionEndRelay? = nil) {
        self.plugin = plugin
        self.config = config
        self.sessionEnds = sessionEnds
        let key = config.requestStateKey ?? RequestStateKey.random()
        self.sessions = SessionStore(
            maxSessions: config.maxSessions, idleTimeout: config.sessionIdleTimeout,
            replayLimits: .init(maxBytes: config.replayBufferBytes, maxStreams: config.replayStreams),
            key: key, server: plugin.serverName)
        self.traffic = config.metrics ? TrafficCounters(tools: plugin.catalog.tools.map(\.name)) : nil
        self.sealer = RequestStateSealer(key: key, ttl: config.requestStateTTL)
        var info: [String: JSONValue] = [
            "name": .string(plugin.serverName), "version": .string(plugin.serverVersion),
        ]
        if let title = plugin.serverTitle { info["title"] = .string(title) }
        self.serverInfo = .object(info)
        plugin.onChange { [weak self] lists, uri in self?.broadcastChange(lists: lists, uri: uri) }
    }

    /// Draining: every response closes its connection (clients reconnect to another replica), GET streams end.
    var isDraining: Bool { draining.load(ordering: .relaxed) }
    /// After the drain's grace period: new requests are answered 503 with Retry-After.
    var isRefusing: Bool { refusing.load(ordering: .relaxed) }
    var callsInFlight: Int { activeCalls.load(ordering: .relaxed) }

    /// The traffic counters now, with the sessions open (nil with `--no-metrics`).
    func trafficSnapshot() -> TrafficSnapshot? {
        guard let traffic else { return nil }
        var s = traffic.snapshot()
        s.sessionsOpen = sessions.count
        return s
    }

    /// Starts the drain: legacy GET streams end, sessions' calls keep running until they finish, and requests
    /// still arriving on accepted connections are served with `Connection: close` (a new GET stream is refused,
    /// since it would only be ended) until `refuseNewRequests`.
    func beginDrain() {
        draining.store(true, ordering: .relaxed)
        for stream in sessions.allStreams() { stream.endStream() }
        // 2026-07-28: a listen the server ends gets its result first, so the client knows to listen again.
        for listener in listeners.withLock({ l -> [Listener] in
            defer { l.removeAll() }
            return Array(l.values)
        }) {
            listener.out.sendEvent(
                JSONWriter.serialize(
                    JSONRPC.result(
                        id: listener.id,
                        [
                            "resultType": "complete",
                            "_meta": [
                                Self.subscriptionIDKey: listener.id, ModernRequestRules.metaServerInfoKey: serverInfo,
                            ],
                        ])))
            listener.out.endStream()
        }
    }

    /// Ends the drain's grace period: from now on a new request is answered 503 with Retry-After.
    func refuseNewRequests() {
        refusing.store(true, ordering: .relaxed)
    }

    /// Waits until no call is in flight (after `beginDrain`), or `timeout` passed; returns the calls left.
    func waitForCalls(timeout: Duration) -> Int {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while callsInFlight > 0 {
            let left = clock.now.duration(to: deadline)
            guard left > .zero else { break }
            _ = drained.wait(timeout: .now() + .nanoseconds(Int(left.wholeNanoseconds)))
        }
        return callsInFlight
    }

    static func errorBody(id: JSONValue?, code: Int64, message: String, data: JSONValue? = nil) -> [UInt8] {
        JSONWriter.serialize(JSONRPC.error(id: id, code: code, message: message, data: data))
    }

    // MARK: Entry

    /// Serves one request that the transport accepted (path, Host, Origin and size already checked).
    func handle(_ req: MCPRequest, _ out: any ReplySink) {
        if isRefusing || (isDraining && req.verb == .get) {
            if req.verb == .post, let traffic { traffic.end(traffic.begin(), .protocolError) }
            return reply(
                out, status: 503,
                Self.errorBody(id: nil, code: JSONRPC.internalError, message: "server is shutting down; retry"),
                headers: [("Retry-After", "1")])
        }
        switch req.verb {
        case .post: handlePost(req, out, traffic?.begin() ?? Meter.unmetered)
        case .get: handleGet(req, out)
        case .delete: handleDelete(req, out)
        case .other(let verb):
            out.respond(
                status: 405, headers: [("Allow", "GET, POST, DELETE"), ("Content-Type", "application/json")],
                body: Self.errorBody(id: nil, code: JSONRPC.invalidRequest, message: "method \(verb) not allowed"))
        }
    }

    private func reply(_ out: any ReplySink, status: Int, _ body: [UInt8], headers: [(String, String)] = []) {
        out.respond(status: status, headers: [("Content-Type", "application/json")] + headers, body: body)
    }

    typealias Meter = TrafficCounters.Meter

    /// Counts a request as answered (just before the answer goes to the transport); nil: a success.
    @inline(__always)
    fileprivate func count(_ meter: Meter, _ error: TrafficMetrics.ErrorType?) { traffic?.end(meter, error) }

    /// A POSTed request refused before it reaches a method (malformed, unknown session, bad headers): counted as
    /// a protocol error, then answered.
    private func refuse(_ out: any ReplySink, _ meter: Meter, status: Int, _ body: [UInt8]) {
        count(meter, .protocolError)
        reply(out, status: status, body)
    }

    // MARK: POST

    struct Accepts: Sendable {
        var json: Bool
        var sse: Bool
    }

    static func accepts(_ headers: RequestHeaders) -> Accepts {
        let values = headers.values("Accept")
        if values.isEmpty { return Accepts(json: true, sse: true) }
        var acc = Accepts(json: false, sse: false)
        for value in values {
            switch RequestHeaders.mediaType(value) {
            case "application/json", "application/*": acc.json = true
            case "text/event-stream", "text/*": acc.sse = true
            case "*/*":
                acc.json = true
                acc.sse = true
            default: break
            }
        }
        return acc
    }

    private func handlePost(_ req: MCPRequest, _ out: any ReplySink, _ start: Meter) {
        var meter = start
        let contentType = req.headers.first("Content-Type").map(RequestHeaders.mediaType)
        guard contentType == "application/json" else {
            return refuse(
                out, meter, status: 415,
                Self.errorBody(id: nil, code: JSONRPC.invalidRequest, message: "Content-Type must be application/json"))
        }
        let acc = Self.accepts(req.headers)
        guard acc.json || acc.sse else {
            return refuse(
                out, meter, status: 406,
                Self.errorBody(
                    id: nil, code: JSONRPC.invalidRequest,
                    message: "Accept must list application/json and text/event-stream"))
        }
        let value: JSONValue
        do { value = try JSONParser.parse(req.body) } catch {
            return refuse(
                out, meter, status: 400,
                Self.errorBody(id: nil, code: JSONRPC.parseError, message: "Parse error: \(error.description)"))
        }
        let headers = req.headers
        let header: @Sendable (String) -> String? = { headers.first($0) }
        let sessionID = header("Mcp-Session-Id")
        switch JSONRPC.decode(value) {
        case .batch:
            guard case .array(let elements) = value else { return }
            handleBatch(elements, sessionID: sessionID, acc: acc, header: header, meter, out)
        case .invalid(let reason, let id):
            refuse(
                out, meter, status: 400,
                Self.errorBody(id: id, code: JSONRPC.invalidRequest, message: "Invalid Request: \(reason)"))
        case .response(let id, let result, let error):
            traffic?.forget(meter)
            if let sessionID {
                guard sessions.touch(sessionID) != nil else { return sessionNotFound(out, id: nil) }
                receiveResponse(sessionID: sessionID, id: id, result: result, error: error)
            }
            out.respond(status: 202, body: [])
        case .notification(let method, let params):
            if let traffic { meter.row = traffic.row(method: method, tool: nil) }
            if let sessionID {
                guard sessions.touch(sessionID) != nil else { return sessionNotFound(out, id: nil, meter) }
                receiveNotification(sessionID: sessionID, method: method, params: params)
            }
            count(meter, nil)
            out.respond(status: 202, body: [])
        case .request(let id, let method, let params):
            if let traffic {
                meter.row = traffic.row(
                    method: method, tool: method == "tools/call" ? params["name"]?.stringValue : nil)
            }
            if method == "initialize" {
                return initialize(id: id, params: params, acc: acc, meter, out)
            }
            // A request with modern _meta is served statelessly even if it carries a session header
            // (2026-07-28: ignore Mcp-Session-Id).
            if let sessionID, ModernRequestRules.declaredVersion(params) == nil {
                return legacyRequest(
                    id: id, method: method, params: params, sessionID: sessionID, acc: acc, header: header, meter,
                    out)
            }
            let headerVersion = header("MCP-Protocol-Version")
            if ModernRequestRules.declaredVersion(params) != nil || headerVersion.map(ProtocolVersion.isModern) == true
                || (headerVersion != nil && !ProtocolVersion.isLegacy(headerVersion!))
            {
                return modernRequest(
                    id: id, method: method, params: params, acc: acc, header: header, meter, out)
            }
            refuse(
                out, meter, status: 400,
                Self.errorBody(
                    id: id, code: JSONRPC.invalidRequest,
                    message: "Bad Request: no Mcp-Session-Id (send initialize first) and no "
                        + "params._meta[\"\(ModernRequestRules.metaVersionKey)\"] (protocol 2026-07-28)"))
        }
    }

    /// The answer to an elicitation, sampling or roots request the host sent in a legacy session.
    private func receiveResponse(sessionID: String, id: JSONValue, result: JSONValue?, error: JSONValue?) {
        guard let pending = takeInput(sessionID: sessionID, id: id) else { return }
        if let result, error == nil {
            pending.resolve(MCPP_INPUT_ANSWERED, result)
        } else {
            pending.resolve(MCPP_INPUT_REFUSED, error ?? [:])
        }
    }

    private func receiveNotification(sessionID: String, method: String, params: [String: JSONValue]) {
        if method == "notifications/initialized" { sessions.markInitialized(sessionID) }
        if method == "notifications/cancelled", let requestID = params["requestId"] {
            cancelSessionRequest(sessionID, key: JSONWriter.string(requestID))
        }
    }

    /// A JSON-RPC batch (2025-03-26 sessions only; 2025-06-18 removed batches): each request is served as if
    /// POSTed alone with `Accept: application/json` (so no progress and no input requests inside a batch), and
    /// the answers go back together, in the order of the requests, as one JSON array (docs/protocol.md).
    private func handleBatch(
        _ elements: [JSONValue], sessionID: String?, acc: Accepts, header: @escaping @Sendable (String) -> String?,
        _ meter: Meter, _ out: any ReplySink
    ) {
        guard let sessionID, let session = sessions.touch(sessionID) else {
            return refuse(
                out, meter, status: 400,
                Self.errorBody(
                    id: nil, code: JSONRPC.invalidRequest,
                    message: "JSON-RPC batches exist only in protocol 2025-03-26 (removed in 2025-06-18), within a "
                        + "session; send one message per POST"))
        }
        guard session.version == ProtocolVersion.batches else {
            return refuse(
                out, meter, status: 400,
                Self.errorBody(
                    id: nil, code: JSONRPC.invalidRequest,
                    message: "JSON-RPC batches were removed in 2025-06-18 and this session speaks "
                        + "\(session.version); send one message per POST"))
        }
        guard !elements.isEmpty else {
            return refuse(
                out, meter, status: 400,
                Self.errorBody(id: nil, code: JSONRPC.invalidRequest, message: "Invalid Request: an empty batch"))
        }
        traffic?.forget(meter)  // each request of the batch is counted on its own
        let collector = BatchCollector(out: out, asJSON: acc.json)
        let single = Accepts(json: true, sse: false)
        var requests: [(slot: Int, id: JSONValue, method: String, params: [String: JSONValue])] = []
        for element in elements {
            switch JSONRPC.decode(element) {
            case .request(let id, let method, let params):
                requests.append((collector.reserve(), id, method, params))
            case .notification(let method, let params):
                if let traffic {
                    var m = traffic.begin()
                    m.row = traffic.row(method: method, tool: nil)
                    count(m, nil)
                }
                receiveNotification(sessionID: sessionID, method: method, params: params)
            case .response(let id, let result, let error):
                receiveResponse(sessionID: sessionID, id: id, result: result, error: error)
            case .invalid(let reason, let id):
                collector.fill(
                    collector.reserve(),
                    Self.errorBody(id: id, code: JSONRPC.invalidRequest, message: "Invalid Request: \(reason)"))
            case .batch:
                collector.fill(
                    collector.reserve(),
                    Self.errorBody(id: nil, code: JSONRPC.invalidRequest, message: "Invalid Request: a nested batch"))
            }
        }
        collector.sealed()
        for r in requests {
            var m = traffic?.begin() ?? Meter.unmetered
            if let traffic {
                m.row = traffic.row(
                    method: r.method, tool: r.method == "tools/call" ? r.params["name"]?.stringValue : nil)
            }
            let sink = collector.sink(r.slot)
            if r.method == "initialize" {
                refuse(
                    sink, m, status: 200,
                    Self.errorBody(
                        id: r.id, code: JSONRPC.invalidRequest, message: "initialize must not be part of a batch"))
                continue
            }
            legacyRequest(
                id: r.id, method: r.method, params: r.params, sessionID: sessionID, acc: single, header: header, m, sink
            )
        }
    }

    private func sessionNotFound(_ out: any ReplySink, id: JSONValue?, _ meter: Meter? = nil) {
        if let meter { count(meter, .protocolError) }
        reply(
            out, status: 404,
            Self.errorBody(
                id: id, code: JSONRPC.invalidRequest,
                message: "Session not found: it ended or never existed; send initialize to start a new one"))
    }

    // MARK: Legacy era

    private func initialize(
        id: JSONValue, params: [String: JSONValue], acc: Accepts, _ meter: Meter, _ out: any ReplySink
    ) {
        guard let requested = params["protocolVersion"]?.stringValue else {
            return refuse(
                out, meter, status: 400,
                Self.errorBody(id: id, code: JSONRPC.invalidParams, message: "params.protocolVersion is required"))
        }
        let version = ProtocolVersion.negotiateLegacy(requested: requested)
        var caps: JSONValue = [:]
        if let declared = params["capabilities"], case .object = declared { caps = declared }
        let sessionID = sessions.create(version: version, capabilities: caps)
        var result: [String: JSONValue] = [
            "protocolVersion": .string(version),
            "capabilities": capabilities(modern: false),
            "serverInfo": serverInfo,
        ]
        if let instructions = plugin.instructions { result["instructions"] = .string(instructions) }
        let ctx = RequestContext(
            id: id, version: version, modern: false, sessionID: sessionID, progressToken: nil, logThreshold: nil,
            acc: acc, meter: meter)
        deliver(
            ctx, JSONRPC.result(id: id, .object(result)), out, headers: [("Mcp-Session-Id", sessionID)], error: nil)
    }

    private func legacyRequest(
        id: JSONValue, method: String, params: [String: JSONValue], sessionID: String, acc: Accepts,
        header: @escaping @Sendable (String) -> String?, _ meter: Meter, _ out: any ReplySink
    ) {
        guard let session = sessions.touch(sessionID) else { return sessionNotFound(out, id: id, meter) }
        if let version = header("MCP-Protocol-Version"), !ProtocolVersion.isLegacy(version) {
            return refuse(
                out, meter, status: 400,
                Self.errorBody(
                    id: id, code: JSONRPC.invalidRequest,
                    message: "Unsupported MCP-Protocol-Version '\(version)' in session of version \(session.version)"))
        }
        // An answer that may stream goes through the session's replay buffer, so the client can resume it.
        let out: any ReplySink = acc.sse ? session.replay.open(on: out) : out
        var ctx = RequestContext(
            id: id, version: session.version, modern: false, sessionID: sessionID,
            progressToken: params["_meta"]?["progressToken"], logThreshold: session.logThreshold, acc: acc,
            meter: meter)
        ctx.clientCapabilities = session.clientCapabilities
        switch method {
        case "ping":
            deliver(ctx, JSONRPC.result(id: id, [:]), out, error: nil)
        case "logging/setLevel":
            guard let name = params["level"]?.stringValue, let severity = LogLevel.severity(name) else {
                return deliverError(ctx, .invalidParams("params.level must be a log level", httpStatus: 200), out)
            }
            sessions.update(sessionID) { $0.logThreshold = severity }
            deliver(ctx, JSONRPC.result(id: id, [:]), out, error: nil)
        case "resources/subscribe", "resources/unsubscribe":
            guard let uri = params["uri"]?.stringValue else {
                return deliverError(ctx, .invalidParams("params.uri must be a string", httpStatus: 200), out)
            }
            let subscribe = method == "resources/subscribe"
            sessions.update(sessionID) { s in
                if subscribe { s.subscriptions.insert(uri) } else { s.subscriptions.remove(uri) }
            }
            deliver(ctx, JSONRPC.result(id: id, [:]), out, error: nil)
        default:
            dispatch(ctx, method: method, params: params, header: header, out)
        }
    }

    private func handleGet(_ req: MCPRequest, _ out: any ReplySink) {
        guard let sessionID = req.headers.first("Mcp-Session-Id") else {
            return out.respond(
                status: 405, headers: [("Allow", "POST"), ("Content-Type", "application/json")],
                body: Self.errorBody(
                    id: nil, code: JSONRPC.invalidRequest,
                    message:
                        "GET opens a legacy session's event stream and needs Mcp-Session-Id; 2026-07-28 has no GET stream"
                ))
        }
        guard Self.accepts(req.headers).sse else {
            return reply(
                out, status: 406,
                Self.errorBody(id: nil, code: JSONRPC.invalidRequest, message: "Accept must list text/event-stream"))
        }
        guard let session = sessions.touch(sessionID) else { return sessionNotFound(out, id: nil) }
        if let lastEventID = req.headers.first("Last-Event-ID") {
            // Resumes the stream the id belongs to (the GET stream or a POST's), replaying what came after it.
            do {
                _ = try session.replay.resume(lastEventID, on: out)
            } catch {
                let why =
                    error == .malformed
                    ? "is not an event id of this server (<stream>-<number>)"
                    : "names no stream this session still keeps (see --replay-buffer-bytes)"
                reply(
                    out, status: 400,
                    Self.errorBody(
                        id: nil, code: JSONRPC.invalidRequest, message: "Last-Event-ID '\(lastEventID)' \(why)"))
            }
            return
        }
        if let old = session.stream, old.isAttached {
            return reply(
                out, status: 409,
                Self.errorBody(id: nil, code: JSONRPC.invalidRequest, message: "this session already has a GET stream"))
        }
        // A GET without Last-Event-ID starts afresh: the old GET stream and what it kept are forgotten.
        if let old = session.stream { session.replay.drop(old.number) }
        let stream = session.replay.open(on: out)
        sessions.update(sessionID) { $0.stream = stream }
        stream.startStream()
        // Something at once, so the client sees the stream open: the priming event, or else a comment.
        if !session.replay.primesStreams { stream.sendEvent([], comment: true) }
    }

    private func handleDelete(_ req: MCPRequest, _ out: any ReplySink) {
        guard let sessionID = req.headers.first("Mcp-Session-Id") else {
            return out.respond(
                status: 405, headers: [("Allow", "POST"), ("Content-Type", "application/json")],
                body: Self.errorBody(
                    id: nil, code: JSONRPC.invalidRequest,
                    message: "DELETE ends a legacy session and needs Mcp-Session-Id"))
        }
        guard let session = sessions.remove(sessionID) else { return sessionNotFound(out, id: nil) }
        end(session)
        // A sealed id opens on every replica: tell the others it is over (a random one lives here only).
        if SessionStore.isSealed(sessionID) { sessionEnds?.report(sessionID) }
        out.respond(status: 204, body: [])
    }

    /// Another replica answered a DELETE of this legacy session: end it here too (this replica may have adopted
    /// it), and never adopt the id again.
    func endSessionEndedElsewhere(_ id: String) {
        if let session = sessions.endedElsewhere(id) { end(session) }
    }

    private func end(_ session: SessionStore.Session) {
        for call in session.inFlight.values { plugin.cancel(call) }
        session.stream?.endStream()
    }

    private func cancelSessionRequest(_ sessionID: String, key: String) {
        var call: PluginCall?
        sessions.update(sessionID) { call = $0.inFlight[key] }
        if let call {
            call.cancelledByClientNotice.store(true, ordering: .releasing)
            plugin.cancel(call)
        }
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
        let streams = sessions.allStreams()
        for message in messages {
            let bytes = JSONWriter.serialize(message)
            for stream in streams { stream.sendEvent(bytes) }
        }
        if let uri {
            let bytes = JSONWriter.serialize(
                JSONRPC.notification(method: "notifications/resources/updated", params: ["uri": .string(uri)]))
            for stream in sessions.streams(subscribedTo: uri) { stream.sendEvent(bytes) }
        }
        // 2026-07-28 listeners: only what each asked for, tagged with its subscription id.
        for listener in listeners.withLock({ Array($0.values) }) {
            var methods: [String] = []
            if lists & UInt32(MCPP_LIST_TOOLS) != 0, listener.tools {
                methods.append("notifications/tools/list_changed")
            }
            if lists & UInt32(MCPP_LIST_RESOURCES) != 0, listener.resources {
                methods.append("notifications/resources/list_changed")
            }
            if lists & UInt32(MCPP_LIST_PROMPTS) != 0, listener.prompts {
                methods.append("notifications/prompts/list_changed")
            }
            let meta: JSONValue = [Self.subscriptionIDKey: listener.id]
            for method in methods {
                listener.out.sendEvent(
                    JSONWriter.serialize(JSONRPC.notification(method: method, params: ["_meta": meta])))
            }
            if let uri, listener.uris.contains(uri) {
                listener.out.sendEvent(
                    JSONWriter.serialize(
                        JSONRPC.notification(
                            method: "notifications/resources/updated", params: ["_meta": meta, "uri": .string(uri)])))
            }
        }
    }

    static let subscriptionIDKey = "io.modelcontextprotocol/subscriptionId"

    // MARK: Input requests (ABI 1.1)

    /// Registers a legacy-era request the host sends for a call; returns its JSON-RPC id (unique in the process).
    fileprivate func registerInput(sessionID: String, _ request: InputRequest) -> JSONValue {
        let id: JSONValue = .string("mcph-\(nextInputID.add(1, ordering: .relaxed).oldValue)")
        pendingInputs.withLock { $0[sessionID + " " + JSONWriter.string(id)] = request }
        return id
    }

    /// Removes and returns a pending legacy-era input request (nil if it was answered or ended already).
    fileprivate func takeInput(sessionID: String, id: JSONValue) -> InputRequest? {
        pendingInputs.withLock { $0.removeValue(forKey: sessionID + " " + JSONWriter.string(id)) }
    }

    /// How long a legacy input request waits for the client's `notifications/initialized`.
    static let initializedGrace: Duration = .seconds(2)

    /// The capabilities `method` with `params` needs that `declared` lacks (nil when all are there).
    static func missingCapability(method: String, params: JSONValue, declared: JSONValue, version: String)
        -> [String: JSONValue]?
    {
        switch method {
        case "elicitation/create":
            let url = params["mode"]?.stringValue == "url"
            // 2025-03-26 has no elicitation; 2025-06-18 only the form mode.
            if version == "2025-03-26" || (url && version == "2025-06-18") {
                return ["elicitation": url ? ["url": [:]] : [:]]
            }
            guard case .object(let e) = declared["elicitation"] else {
                return ["elicitation": url ? ["url": [:]] : [:]]
            }
            if url { return e["url"] == nil ? ["elicitation": ["url": [:]]] : nil }
            // An empty elicitation capability means form only.
            return e["form"] != nil || e["url"] == nil ? nil : ["elicitation": ["form": [:]]]
        case "sampling/createMessage":
            guard case .object(let sampling) = declared["sampling"] else { return ["sampling": [:]] }
            if let tools = params["tools"], !tools.isNull, sampling["tools"] == nil {
                return ["sampling": ["tools": [:]]]
            }
            // Soft-deprecated context inclusion only with sampling.context (2025-11-25 sampling.mdx).
            if let include = params["includeContext"]?.stringValue, include != "none", sampling["context"] == nil {
                return ["sampling": ["context": [:]]]
            }
            return nil
        default:
            return declared["roots"]?.objectValue == nil ? ["roots": [:]] : nil
        }
    }

    /// 2026-07-28 retries of tools/call, prompts/get and resources/read: opens `requestState` and collects the
    /// answers in `inputResponses` (only to the keys asked last round; others are ignored, as the spec says).
    private func retryInput(
        _ ctx: inout RequestContext, method: String, target: String, arguments: [String: JSONValue],
        params: [String: JSONValue]
    ) throws(ProtocolError) -> RetryInput {
        guard ctx.modern else { return .none }
        ctx.binding = RequestStateSealer.binding(
            server: plugin.serverName, method: method, target: target, arguments: arguments)
        var responses: [String: JSONValue] = [:]
        if let given = params["inputResponses"], !given.isNull {
            guard case .object(let object) = given, object.values.allSatisfy({ $0.objectValue != nil }) else {
                throw .invalidParams("params.inputResponses must be an object of result objects")
            }
            responses = object
        }
        guard let token = params["requestState"], !token.isNull else {
            return RetryInput(answers: responses)
        }
        guard let text = token.stringValue else { throw .invalidParams("params.requestState must be a string") }
        let payload: RequestStateSealer.Payload
        do { payload = try sealer.open(text, binding: ctx.binding) } catch {
            plugin.log("requestState of \(method) \(target) refused: \(error)")
            throw .invalidParams(
                error == .expired
                    ? "Expired requestState: send the request again without it"
                    : "Invalid requestState: it was not issued by this server for this request")
        }
        var answers = payload.answers
        for key in payload.asked { if let answer = responses[key] { answers[key] = answer } }
        return RetryInput(answers: answers, pluginState: payload.pluginState)
    }

    // MARK: Modern era

    private func modernRequest(
        id: JSONValue, method: String, params: [String: JSONValue], acc: Accepts,
        header: @escaping @Sendable (String) -> String?, _ meter: Meter, _ out: any ReplySink
    ) {
        if let e = ModernRequestRules.validate(method: method, params: params, header: header) {
            return refuse(out, meter, status: e.httpStatus, JSONWriter.serialize(e.response(id: id)))
        }
        let meta = params["_meta"]?.objectValue ?? [:]
        let threshold = meta[ModernRequestRules.metaLogLevelKey]?.stringValue.flatMap(LogLevel.severity)
        var ctx = RequestContext(
            id: id, version: ModernRequestRules.declaredVersion(params) ?? ProtocolVersion.modern[0], modern: true,
            sessionID: nil, progressToken: meta["progressToken"], logThreshold: threshold, acc: acc, meter: meter)
        ctx.clientCapabilities = meta[ModernRequestRules.metaCapabilitiesKey] ?? [:]
        if method == "subscriptions/listen" { return listen(ctx, params: params, out) }
        if method == "server/discover" {
            var result: [String: JSONValue] = [
                "supportedVersions": .array(ProtocolVersion.all.map { .string($0) }),
                "capabilities": capabilities(modern: true),
            ]
            if let instructions = plugin.instructions { result["instructions"] = .string(instructions) }
            return sendResult(ctx, result, cacheable: true, out)
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
        /// Its traffic row and arrival time.
        var meter: Meter
        /// What the client declared: per request in 2026-07-28, at initialize in a legacy session.
        var clientCapabilities: JSONValue = [:]
        /// 2026-07-28 tools/call, prompts/get, resources/read: what requestState is bound to.
        var binding: [UInt8] = []
    }

    private func capabilities(modern: Bool) -> JSONValue {
        let catalog = plugin.catalog
        let handlers = plugin.handlers
        var caps: [String: JSONValue] = ["logging": [:]]
        let listChanged: JSONValue = ["listChanged": true]
        if handlers.contains(.tools) || !catalog.tools.isEmpty { caps["tools"] = listChanged }
        if handlers.contains(.resources) || !catalog.resources.isEmpty || !catalog.templates.isEmpty {
            caps["resources"] = ["listChanged": true, "subscribe": true]
        }
        if handlers.contains(.prompts) || !catalog.prompts.isEmpty { caps["prompts"] = listChanged }
        if handlers.contains(.completions) { caps["completions"] = [:] }
        return .object(caps)
    }

    private func dispatch(
        _ ctx: RequestContext, method: String, params: [String: JSONValue], header: (String) -> String?,
        _ out: any ReplySink
    ) {
        let catalog = plugin.catalog
        func list(_ kind: Catalog.ListKind, _ key: String) {
            var cursor: String? = nil
            if let given = params["cursor"], !given.isNull {
                guard let text = given.stringValue else {
                    return deliverError(ctx, .invalidParams("params.cursor must be a string"), out)
                }
                cursor = text
            }
            do {
                let page = try catalog.page(kind, cursor: cursor, pageSize: config.pageSize)
                var result: [String: JSONValue] = [key: .array(page.items)]
                if let next = page.nextCursor { result["nextCursor"] = .string(next) }
                if let hint = catalog.cacheHints[kind] {
                    result["ttlMs"] = .int(hint.ttlMs)
                    result["cacheScope"] = .string(hint.scope)
                }
                sendResult(ctx, result, cacheable: true, out)
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
            if let given = params["arguments"], !given.isNull {
                guard case .object(let object) = given else {
                    return deliverError(ctx, .invalidParams("params.arguments must be an object"), out)
                }
                args = object
            }
            if ctx.modern, !tool.mirroredHeaders.isEmpty,
                let e = ModernRequestRules.validateParamHeaders(
                    mirrored: tool.mirroredHeaders, arguments: args, header: header)
            {
                return refuse(out, ctx.meter, status: e.httpStatus, JSONWriter.serialize(e.response(id: ctx.id)))
            }
            var ctx = ctx
            let input: RetryInput
            do { input = try retryInput(&ctx, method: method, target: name, arguments: args, params: params) } catch {
                return deliverError(ctx, error, out)
            }
            run(ctx, kind: .tool(name: name), arguments: args, out, inline: plugin.mayRunInline(tool), input: input)
        case "resources/read":
            guard let uri = params["uri"]?.stringValue else {
                return deliverError(ctx, .invalidParams("params.uri must be a string"), out)
            }
            var ctx = ctx
            let input: RetryInput
            do { input = try retryInput(&ctx, method: method, target: uri, arguments: [:], params: params) } catch {
                return deliverError(ctx, error, out)
            }
            if let resource = catalog.resources.first(where: { $0.uri == uri }) {
                run(
                    ctx, kind: .resource(uri: uri, template: nil, mimeType: resource.json["mimeType"]?.stringValue),
                    arguments: [:], out, input: input)
            } else if let (template, vars) = catalog.matchTemplate(uri) {
                run(
                    ctx,
                    kind: .resource(
                        uri: uri, template: template.template.text, mimeType: template.json["mimeType"]?.stringValue),
                    arguments: vars.mapValues { .string($0) }, out, input: input)
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
            if let given = params["arguments"], !given.isNull {
                guard case .object(let object) = given else {
                    return deliverError(ctx, .invalidParams("params.arguments must be an object"), out)
                }
                for (key, value) in object {
                    guard case .string = value else {
                        return deliverError(ctx, .invalidParams("prompt argument '\(key)' must be a string"), out)
                    }
                }
                args = object
            }
            if let missing = prompt.requiredArguments.first(where: { args[$0] == nil }) {
                return deliverError(
                    ctx, .invalidParams("Missing required argument '\(missing)' for prompt \(name)"), out)
            }
            var ctx = ctx
            let input: RetryInput
            do { input = try retryInput(&ctx, method: method, target: name, arguments: args, params: params) } catch {
                return deliverError(ctx, error, out)
            }
            run(ctx, kind: .prompt(name: name), arguments: args, out, input: input)
        case "completion/complete":
            guard plugin.handlers.contains(.completions) else {
                return deliverError(ctx, .methodNotFound(method, httpStatus: ctx.modern ? 404 : 200), out)
            }
            guard let ref = params["ref"]?.objectValue, let refType = ref["type"]?.stringValue,
                let argument = params["argument"]?.objectValue, let argName = argument["name"]?.stringValue,
                let argValue = argument["value"]?.stringValue
            else {
                return deliverError(
                    ctx, .invalidParams("params.ref and params.argument {name, value} are required"), out)
            }
            let kind: CallKind
            switch refType {
            case "ref/prompt":
                guard let name = ref["name"]?.stringValue, catalog.prompt(named: name) != nil else {
                    return deliverError(ctx, .invalidParams("Unknown prompt in ref"), out)
                }
                kind = .complete(refKind: Int32(MCPP_REF_PROMPT), ref: name, argument: argName, value: argValue)
            case "ref/resource":
                guard let uri = ref["uri"]?.stringValue, catalog.template(withText: uri) != nil else {
                    return deliverError(ctx, .invalidParams("Unknown resource template in ref"), out)
                }
                kind = .complete(
                    refKind: Int32(MCPP_REF_RESOURCE_TEMPLATE), ref: uri, argument: argName, value: argValue)
            default:
                return deliverError(ctx, .invalidParams("params.ref.type must be ref/prompt or ref/resource"), out)
            }
            var args: [String: JSONValue] = [:]
            if case .object(let context) = params["context"]?["arguments"] { args = context }
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

    private func sendResult(_ ctx: RequestContext, _ fields: [String: JSONValue], cacheable: Bool, _ out: any ReplySink)
    {
        deliver(ctx, JSONRPC.result(id: ctx.id, .object(shape(ctx, fields, cacheable: cacheable))), out, error: nil)
    }

    fileprivate func shape(_ ctx: RequestContext, _ fields: [String: JSONValue], cacheable: Bool) -> [String: JSONValue]
    {
        var result = fields
        guard ctx.modern else {
            result["ttlMs"] = nil
            result["cacheScope"] = nil
            return result
        }
        result["resultType"] = "complete"
        result["_meta"] = [ModernRequestRules.metaServerInfoKey: serverInfo]
        if cacheable {
            // The plugin's hint (ABI 1.1), else: the host cannot know how long an answer stays true.
            if result["ttlMs"] == nil { result["ttlMs"] = 0 }
            if result["cacheScope"] == nil { result["cacheScope"] = "private" }
        } else {
            result["ttlMs"] = nil
            result["cacheScope"] = nil
        }
        return result
    }

    /// Errors found while executing a method (unknown tool, bad arguments, bad cursor): JSON-RPC errors on
    /// HTTP 200 in both eras, except an unknown method, which 2026-07-28 answers with 404. (A modern 400 would
    /// tell a dual-era client this server is legacy, since -32602 is not one of the transport's modern errors.)
    private func deliverError(_ ctx: RequestContext, _ e: ProtocolError, _ out: any ReplySink) {
        let status = ctx.modern && e.code == JSONRPC.methodNotFound ? 404 : 200
        deliver(ctx, e.response(id: ctx.id), out, status: status, error: .protocolError)
    }

    /// Sends one JSON-RPC message as the response: JSON when the client accepts it, else a one-event SSE stream.
    /// The request is counted first, as a success or with its `error` type.
    fileprivate func deliver(
        _ ctx: RequestContext, _ message: JSONValue, _ out: any ReplySink, status: Int = 200,
        headers: [(String, String)] = [], error: TrafficMetrics.ErrorType?
    ) {
        count(ctx.meter, error)
        let body = JSONWriter.serialize(message)
        if ctx.acc.json || status != 200 {
            out.respond(status: status, headers: [("Content-Type", "application/json")] + headers, body: body)
        } else {
            out.startStream(headers: headers)
            out.sendEvent(body)
            out.endStream()
        }
    }

    // MARK: Plugin calls

    private func run(
        _ ctx: RequestContext, kind: CallKind, arguments: [String: JSONValue], _ out: any ReplySink,
        inline: Bool = false, input: RetryInput = .none
    ) {
        activeCalls.add(1, ordering: .relaxed)
        let active = ActiveRequest(dispatcher: self, ctx: ctx, out: out)
        let call = plugin.makeCall(
            kind: kind, arguments: arguments, observer: active, maxOutputBytes: config.maxOutputBytes, input: input)
        active.attach(call)
        if let sessionID = ctx.sessionID {
            let key = JSONWriter.string(ctx.id)
            sessions.update(sessionID) { $0.inFlight[key] = call }
        }
        if inline {
            plugin.runInline(call)
            if call.isFinished { return }
        }
        active.setDeadlineTimer(out.schedule(after: config.callTimeout) { active.deadlinePassed() })
        // 2026-07-28: closing the response stream cancels the request. 2025-11-25 and earlier: a disconnect
        // SHOULD NOT be read as cancellation (clients send notifications/cancelled), so the call runs on.
        if ctx.modern { out.onClientGone { active.clientGone() } }
        if !inline { plugin.submit(call) }
    }

    fileprivate func callEnded(_ ctx: RequestContext) {
        let left = activeCalls.subtract(1, ordering: .acquiringAndReleasing).newValue
        if left == 0, isDraining { drained.signal() }
        if let sessionID = ctx.sessionID {
            let key = JSONWriter.string(ctx.id)
            sessions.update(sessionID) { $0.inFlight.removeValue(forKey: key) }
        }
    }

    fileprivate func scheduleOverrunCheck(_ call: PluginCall, on out: any ReplySink) {
        let plugin = self.plugin
        _ = out.schedule(after: config.hangGrace) { plugin.checkOverrun(call) }
    }

    fileprivate func outcomeMessage(_ ctx: RequestContext, _ outcome: CallOutcome, kind: CallKind) -> (JSONValue, Int) {
        switch outcome {
        case .result(let fields):
            var cacheable = false
            if case .resource = kind { cacheable = true }
            return (JSONRPC.result(id: ctx.id, .object(shape(ctx, fields, cacheable: cacheable))), 200)
        case .notFound(let message):
            if case .resource(let uri, _, _) = kind {
                return (resourceNotFound(ctx, uri).response(id: ctx.id), 200)
            }
            return (
                JSONRPC.error(
                    id: ctx.id, code: JSONRPC.invalidParams, message: message.isEmpty ? "not found" : message),
                200
            )
        case .invalidParams(let message):
            return (JSONRPC.error(id: ctx.id, code: JSONRPC.invalidParams, message: message), 200)
        case .internalError(let message):
            return (JSONRPC.error(id: ctx.id, code: JSONRPC.internalError, message: message), 200)
        case .rateLimited(let message, let seconds):
            // 2026-07-28 answers carry their own status: 429, as the edge's limit per address does.
            return (
                JSONRPC.error(
                    id: ctx.id, code: JSONRPC.rateLimited, message: message,
                    data: ["retryAfterSeconds": .int(Int64(seconds))]),
                ctx.modern ? 429 : 200
            )
        case .needsCapability(let message, let missing):
            // 2026-07-28: -32021 with HTTP 400; earlier revisions define no code for it: invalid params.
            return (
                JSONRPC.error(
                    id: ctx.id, code: ctx.modern ? JSONRPC.missingClientCapability : JSONRPC.invalidParams,
                    message: message, data: ["requiredCapabilities": missing]),
                ctx.modern ? 400 : 200
            )
        case .inputRequired(let input):
            var requests: [String: JSONValue] = [:]
            for r in input.requests {
                var request: [String: JSONValue] = ["method": .string(r.method)]
                if r.params.objectValue?.isEmpty == false { request["params"] = r.params }
                requests[r.key] = .object(request)
            }
            let token: String
            do {
                token = try sealer.seal(
                    .init(answers: input.answers, asked: input.requests.map(\.key), pluginState: input.pluginState),
                    binding: ctx.binding)
            } catch {
                return (
                    JSONRPC.error(
                        id: ctx.id, code: JSONRPC.internalError,
                        message: "the call's input requests and answers exceed the requestState limit"), 200
                )
            }
            // Not cacheable: no ttlMs or cacheScope.
            let result: JSONValue = [
                "resultType": "input_required", "inputRequests": .object(requests), "requestState": .string(token),
                "_meta": [ModernRequestRules.metaServerInfoKey: serverInfo],
            ]
            return (JSONRPC.result(id: ctx.id, result), 200)
        }
    }

    // MARK: subscriptions/listen (2026-07-28)

    private func listen(_ ctx: RequestContext, params: [String: JSONValue], _ out: any ReplySink) {
        guard case .object(let filter) = params["notifications"] else {
            return deliverError(ctx, .invalidParams("params.notifications must be an object"), out)
        }
        for key in ["toolsListChanged", "resourcesListChanged", "promptsListChanged"] {
            if let v = filter[key], !v.isNull, v.boolValue == nil {
                return deliverError(ctx, .invalidParams("params.notifications.\(key) must be a boolean"), out)
            }
        }
        var uris: [String] = []
        if let given = filter["resourceSubscriptions"], !given.isNull {
            guard case .array(let items) = given, items.allSatisfy({ $0.stringValue != nil }) else {
                return deliverError(
                    ctx, .invalidParams("params.notifications.resourceSubscriptions must be an array of strings"), out)
            }
            uris = items.compactMap(\.stringValue)
        }
        guard ctx.acc.sse else {
            return deliverError(
                ctx,
                .invalidParams("subscriptions/listen answers with an event stream: Accept must list text/event-stream"),
                out)
        }
        // Honour what the server can send: list changes for what it serves, updates for resources it knows.
        let caps = capabilities(modern: true)
        let catalog = plugin.catalog
        var listener = Listener(out: out, id: ctx.id)
        var honored: [String: JSONValue] = [:]
        if caps["tools"] != nil, filter["toolsListChanged"]?.boolValue == true {
            listener.tools = true
            honored["toolsListChanged"] = true
        }
        if caps["prompts"] != nil, filter["promptsListChanged"]?.boolValue == true {
            listener.prompts = true
            honored["promptsListChanged"] = true
        }
        if caps["resources"] != nil {
            if filter["resourcesListChanged"]?.boolValue == true {
                listener.resources = true
                honored["resourcesListChanged"] = true
            }
            let known = uris.filter { uri in
                catalog.resources.contains { $0.uri == uri } || catalog.matchTemplate(uri) != nil
            }
            listener.uris = Set(known)
            if filter["resourceSubscriptions"] != nil {
                honored["resourceSubscriptions"] = .array(known.map { .string($0) })
            }
        }
        count(ctx.meter, nil)
        guard out.startStream(headers: []) else { return }
        let key = ObjectIdentifier(out)
        listeners.withLock { $0[key] = listener }
        out.onClientGone { [weak self] in _ = self?.listeners.withLock { $0.removeValue(forKey: key) } }
        out.sendEvent(
            JSONWriter.serialize(
                JSONRPC.notification(
                    method: "notifications/subscriptions/acknowledged",
                    params: ["notifications": .object(honored), "_meta": [Self.subscriptionIDKey: ctx.id]])),
            comment: false)
        keepAlive(out)
    }

    /// An SSE comment every `keepAliveInterval` while the listen stream is open (proxies drop idle streams).
    private func keepAlive(_ out: any ReplySink) {
        _ = out.schedule(after: config.keepAliveInterval) { [weak self] in
            guard let self, !out.isFinished else { return }
            out.sendEvent([], comment: true)
            self.keepAlive(out)
        }
    }

    fileprivate var timeoutSeconds: String {
        let ns = config.callTimeout.wholeNanoseconds
        return ns % 1_000_000_000 == 0 ? "\(ns / 1_000_000_000)" : "\(Double(ns) / 1e9)"
    }
}

/// One request waiting on a plugin call: streams progress and logs as SSE when the client accepts it,
/// and answers exactly once, whichever comes first of the plugin's finish, the deadline or the client leaving.
final class ActiveRequest: CallObserver, Sendable {
    private let dispatcher: MCPDispatcher
    private let ctx: MCPDispatcher.RequestContext
    private let out: any ReplySink
    private let lock = Locked<State>(State())

    private struct State {
        var call: PluginCall?
        var streaming = false
        var done = false
        var deadline: (any DispatchTimer)?
        /// Why the host ended the request, when it did (the deadline, the client leaving): set before the call
        /// is cancelled, so the plugin's answer to the cancellation cannot count as something else.
        var endedBy: TrafficMetrics.ErrorType?
        /// The answer the host gives when it ended the request (the deadline's): it wins over whatever the
        /// plugin finishes with once cancelled, which can arrive first from another thread.
        var hostAnswer: (JSONValue, Int)?
        /// Legacy era: ids of the requests sent to the client for this call and not answered yet.
        var inputIDs: [JSONValue] = []
    }

    init(dispatcher: MCPDispatcher, ctx: MCPDispatcher.RequestContext, out: any ReplySink) {
        self.dispatcher = dispatcher
        self.ctx = ctx
        self.out = out
    }

    func attach(_ call: PluginCall) { lock.withLock { $0.call = call } }

    func setDeadlineTimer(_ timer: any DispatchTimer) {
        let cancelNow = lock.withLock { s -> Bool in
            if s.done { return true }
            s.deadline = timer
            return false
        }
        if cancelNow { timer.cancel() }
    }

    private func send(_ message: JSONValue) {
        // Called with the lock held, so events reach the transport in the order they happened.
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
            var params: [String: JSONValue] = ["progressToken": token, "progress": .double(progress)]
            if let total { params["total"] = .double(total) }
            if let message { params["message"] = .string(message) }
            send(JSONRPC.notification(method: "notifications/progress", params: .object(params)))
        }
    }

    func callLog(level: Int32, message: String) {
        let activity = lock.withLock { $0.call?.kind.activity } ?? "call"
        dispatcher.plugin.log("[\(LogLevel.name(level))] \(activity): \(message)")
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
                        "level": .string(LogLevel.name(level)), "logger": .string(dispatcher.plugin.serverName),
                        "data": .string(message),
                    ]))
        }
    }

    var inputCapabilities: JSONValue {
        // A 2025-era client is asked on this request's stream, so only with a session and an SSE answer.
        guard ctx.modern || (ctx.sessionID != nil && ctx.acc.sse), case .object(let declared) = ctx.clientCapabilities
        else { return [:] }
        return .object(declared.filter { ["elicitation", "sampling", "roots"].contains($0.key) })
    }

    func callRequestsInput(_ call: PluginCall, _ request: InputRequest) -> Int32 {
        let missing = MCPDispatcher.missingCapability(
            method: request.method, params: request.params, declared: ctx.clientCapabilities, version: ctx.version)
        if ctx.modern {
            if let answer = call.priorAnswers[request.key] {
                call.useAnswer(request.key, answer)
                request.resolve(MCPP_INPUT_ANSWERED, answer)
            } else if let missing {
                call.recordMissing(missing)
                request.resolve(MCPP_INPUT_UNSUPPORTED, nil)
            } else {
                call.suspend(request.key, method: request.method, params: request.params)
                request.resolve(MCPP_INPUT_SUSPENDED, nil)
            }
            return MCPP_OK
        }
        // Legacy: a real request on this call's response stream (an SSE stream: a JSON answer cannot carry it).
        guard let sessionID = ctx.sessionID, missing == nil, ctx.acc.sse else {
            if let missing { call.recordMissing(missing) }
            request.resolve(MCPP_INPUT_UNSUPPORTED, nil)
            return MCPP_OK
        }
        // No request to a client before its `notifications/initialized` (lifecycle.mdx): a call that overtook it
        // on another connection waits for it, up to the initialize grace; then the plugin hears UNSUPPORTED.
        let waited = Atomic<Int>(0)  // 0 waiting, 1 sent, 2 gave up
        let ready = dispatcher.sessions.whenInitialized(sessionID) { [weak self] in
            guard waited.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged else {
                return
            }
            guard let self, self.sendInput(sessionID: sessionID, call, request) == MCPP_OK else {
                return request.resolve(MCPP_INPUT_CANCELLED, nil)
            }
        }
        if !ready {
            _ = out.schedule(after: MCPDispatcher.initializedGrace) {
                guard waited.compareExchange(expected: 0, desired: 2, ordering: .acquiringAndReleasing).exchanged
                else { return }
                request.resolve(MCPP_INPUT_UNSUPPORTED, nil)
            }
            return MCPP_OK
        }
        return sendInput(sessionID: sessionID, call, request)
    }

    /// Sends a legacy input request on this call's stream; MCPP_E_FINISHED if the call's answer has ended.
    private func sendInput(sessionID: String, _ call: PluginCall, _ request: InputRequest) -> Int32 {
        let id = dispatcher.registerInput(sessionID: sessionID, request)
        let sent = lock.withLock { s -> Bool in
            guard !s.done else { return false }
            if !s.streaming {
                s.streaming = out.startStream()
                guard s.streaming else { return false }
            }
            s.inputIDs.append(id)
            send(JSONRPC.request(id: id, method: request.method, params: request.params))
            return true
        }
        guard sent else {
            _ = dispatcher.takeInput(sessionID: sessionID, id: id)
            return MCPP_E_FINISHED
        }
        call.onCancel { [weak self] in self?.cancelInput(id, sessionID: sessionID) }
        return MCPP_OK
    }

    /// The call was cancelled while the client had a request of it: the plugin hears CANCELLED, the client a
    /// notifications/cancelled for the host's request.
    private func cancelInput(_ id: JSONValue, sessionID: String) {
        guard let pending = dispatcher.takeInput(sessionID: sessionID, id: id) else { return }
        lock.withLock { s in
            s.inputIDs.removeAll { $0 == id }
            guard !s.done, s.streaming else { return }
            send(
                JSONRPC.notification(
                    method: "notifications/cancelled",
                    params: ["requestId": id, "reason": "the call that asked was cancelled"]))
        }
        pending.resolve(MCPP_INPUT_CANCELLED, nil)
    }

    func callFinished(_ outcome: CallOutcome) {
        let call = lock.withLock { $0.call }
        guard let call else { return complete(with: nil, error: .cancelled) }  // already ended: a no-op
        let error: TrafficMetrics.ErrorType?
        if call.isCancelled {
            error = .cancelled  // notifications/cancelled, or the session's DELETE
        } else if case .result(let fields) = outcome {
            error = fields["isError"] == .bool(true) ? .toolError : nil
        } else {
            error = .toolError
        }
        complete(
            with: dispatcher.outcomeMessage(ctx, outcome, kind: call.kind), error: error,
            unanswered: call.isCancelled && call.cancelledByClientNotice.load(ordering: .acquiring))
    }

    /// Sends the final message (if any) and ends the request once, counting it first (with the reason the host
    /// ended it, if it did, else `error`).
    private func complete(with final: (JSONValue, Int)?, error: TrafficMetrics.ErrorType?, unanswered: Bool = false) {
        let (ended, deadline) = lock.withLock { s -> (Bool, (any DispatchTimer)?) in
            guard !s.done else { return (false, nil) }
            s.done = true
            let error = s.endedBy ?? error
            // 2025 era, the client cancelled it with notifications/cancelled: no response for that request
            // (cancellation.mdx). An SSE answer ends without one; a client that accepts only JSON still gets the
            // error, since a POST must be answered. (A DELETE of the session answers its calls with an error.)
            let unanswered =
                unanswered && !ctx.modern && s.endedBy == nil && s.hostAnswer == nil && (s.streaming || ctx.acc.sse)
            if unanswered, final != nil {
                dispatcher.count(ctx.meter, error)
                if !s.streaming { s.streaming = out.startStream() }
                out.endStream()
            } else if let (message, status) = s.hostAnswer ?? final {
                if s.streaming {
                    dispatcher.count(ctx.meter, error)
                    send(message)
                    out.endStream()
                } else {
                    dispatcher.deliver(ctx, message, out, status: status, error: error)
                }
            } else {
                dispatcher.count(ctx.meter, error)
            }
            let timer = s.deadline
            s.deadline = nil
            s.call = nil  // the call holds this observer: break the cycle
            return (true, timer)
        }
        guard ended else { return }
        deadline?.cancel()
        // Requests still out for a call that ended: their callbacks run (CANCELLED), late answers are ignored.
        if let sessionID = ctx.sessionID {
            for id in lock.withLock({ s -> [JSONValue] in
                defer { s.inputIDs = [] }
                return s.inputIDs
            }) {
                dispatcher.takeInput(sessionID: sessionID, id: id)?.resolve(MCPP_INPUT_CANCELLED, nil)
            }
        }
        dispatcher.callEnded(ctx)
    }

    func deadlinePassed() {
        guard let call = lock.withLock({ s in s.done ? nil : s.call }) else { return }
        let timeout = dispatcher.timeoutSeconds
        let message = deadlineAnswer(call, timeout: timeout)
        let running = lock.withLock { s -> Bool in
            guard !s.done, s.call != nil else { return false }
            s.endedBy = .deadline
            s.hostAnswer = message
            return true
        }
        guard running else { return }
        dispatcher.plugin.cancel(call)
        dispatcher.plugin.log("\(call.kind.activity) exceeded its deadline of \(timeout) s and was cancelled")
        dispatcher.scheduleOverrunCheck(call, on: out)
        complete(with: message, error: .deadline)
    }

    private func deadlineAnswer(_ call: PluginCall, timeout: String) -> (JSONValue, Int) {
        let message: (JSONValue, Int)
        if case .tool(let name) = call.kind {
            let fields: [String: JSONValue] = [
                "content": [
                    [
                        "type": "text",
                        "text": .string(
                            "Tool '\(name)' did not finish within its deadline of \(timeout) s and was cancelled."),
                    ]
                ],
                "isError": true,
            ]
            message = (JSONRPC.result(id: ctx.id, .object(dispatcher.shape(ctx, fields, cacheable: false))), 200)
        } else {
            message = (
                JSONRPC.error(
                    id: ctx.id, code: JSONRPC.internalError,
                    message: "\(call.kind.activity) did not finish within its deadline of \(timeout) s"),
                200
            )
        }
        return message
    }

    func clientGone() {
        let running = lock.withLock { s -> PluginCall? in
            guard !s.done, let call = s.call else { return nil }
            s.endedBy = .cancelled
            return call
        }
        guard let call = running else { return }
        dispatcher.plugin.cancel(call)
        complete(with: nil, error: .cancelled)
    }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to what an `Int64` holds.
    var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return scaled.addingReportingOverflow(attoseconds / 1_000_000_000).overflow
            ? .max : scaled + attoseconds / 1_000_000_000
    }
}
