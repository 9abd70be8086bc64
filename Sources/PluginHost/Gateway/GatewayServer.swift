import Contracts
import Dispatch
import Locking
import MCPProtocol
import NIOCore
import PluginABI

/// What `mcp-gateway` serves (docs/gateway.md): the tools, resources, templates and prompts of every server the
/// supervisor runs, behind one endpoint, through the host's own protocol engine (both eras, limits, deadlines,
/// pagination, listen streams). The supervisor pushes its table of servers (`serversChanged`); each server's
/// lists are read over its port and merged under the server's prefix, and a call goes to the server that owns the
/// name, as a 2026-07-28 request on its port.
public final class GatewayServer: Sendable {
    public static let version = "1.0.0"

    /// One backend as the gateway holds it.
    struct Backend: Sendable {
        var row: GatewayBackend
        var client: BackendClient
        var handlers: PluginHandlers = []
        var lists = RemoteLists()
        /// The generation whose lists were read (nil: never read).
        var readGeneration: Int?
        /// A read of this backend's lists is due (its generation moved, it said its lists changed, a read failed).
        var stale = true
        /// The id of its open `subscriptions/listen` request, and the resources it subscribes to.
        var listen: Int64?
        var listenURIs: [String] = []
        /// Bumped whenever what the gateway cached of this server must go (a restart, a list change): an answer
        /// that left before the bump is not stored after it.
        var epoch = 0
    }

    /// Which backend serves a name on the gateway, and under what name there.
    struct Route: Sendable {
        var backend: String
        var name: String
        /// A tool's, worked out once per list rather than once per call: its `x-mcp-header` arguments and whether
        /// its server says running it twice is harmless.
        var mirrored: [(header: String, path: [String])] = []
        var readOnly = false
        var idempotent = false
    }

    struct Routes: Sendable {
        var tools: [String: Route] = [:]
        var prompts: [String: Route] = [:]
        var resources: [String: String] = [:]
        var templates: [String: String] = [:]
    }

    struct State: Sendable {
        var backends: [String: Backend] = [:]
        var routes = Routes()
        /// Each class of equivalent servers (by its first server's name): its members, in name order.
        var classes: [String: [String]] = [:]
        var calls: [UInt: GatewayCall] = [:]
        var nextCall: UInt = 1
        var closing = false
        /// A refresh is scheduled to try the failed reads again (one at a time, however many pushes come).
        var retryScheduled = false
        /// What was left out of the merged lists, and why (logged once per reason).
        var omitted: [String] = []
    }

    final class GatewayCall: Sendable {
        let backend: String
        let rpcID: Int64
        let call: PluginCall
        init(backend: String, rpcID: Int64, call: PluginCall) {
            self.backend = backend
            self.rpcID = rpcID
            self.call = call
        }
    }

    private let state = Locked(State())
    private let catalogBox = Locked(Catalog())
    private let handlersBox = Locked(PluginHandlers())
    private let changeHandlers = Locked<[@Sendable (UInt32, String?) -> Void]>([])
    private let refreshQueue = DispatchQueue(label: "mcp-gateway.refresh")
    private let group: EventLoopGroup
    private let logSink: @Sendable (String) -> Void
    private let listTimeout: Duration
    public let concurrency: Int
    /// `[gateway.groups.<name>] tools = [...]`: a group's allowlist of served tool names (none: all its tools).
    private let allow: [String: Set<String>]
    private let views = Locked<[String: GatewayView]>([:])
    private let callTimeout: Duration
    let retryPolicy: RetryPolicy
    let metrics = GatewayMetrics()
    let cache = GatewayCache()
    /// `[gateway.cache_ttl]`: how long a read-only tool's answer is kept, by its name on the gateway.
    private let cacheTTL: [String: Duration]
    private let warned = Locked<Set<String>>([])
    /// Where the items left out of the lists are reported (the supervisor, for `mcpctl status`).
    private let leftOutSink = Locked<(@Sendable ([String]) -> Void)?>(nil)
    /// `[gateway.rate_limits]`: calls per second of a tool, across every client (a token bucket each).
    private let toolLimits: [String: RateBuckets]
    /// `[gateway.composites]` by name (docs/gateway.md, "Composite tools").
    let composites: [String: CompositeTool]
    let checkpoints = CompositeCheckpoints()

    public init(
        group: EventLoopGroup, maxConcurrency: Int, listTimeout: Duration = .seconds(10),
        callTimeout: Duration = .seconds(60), retryAttempts: Int = 10, allow: [String: [String]] = [:],
        cacheTTL: [String: Duration] = [:], composites: [CompositeTool] = [], toolRates: [String: Double] = [:],
        log: @escaping @Sendable (String) -> Void
    ) {
        self.toolLimits = toolRates.mapValues { RateBuckets(perSecond: $0, burst: max(1, Int(($0 * 2).rounded(.up)))) }
        self.cacheTTL = cacheTTL
        self.composites = Dictionary(composites.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.callTimeout = callTimeout
        var retry = RetryPolicy()
        retry.attempts = max(1, retryAttempts)
        self.retryPolicy = retry
        self.allow = allow.mapValues(Set.init)
        self.group = group
        self.concurrency = maxConcurrency
        self.listTimeout = listTimeout
        self.logSink = log
    }

    /// `--backend NAME=PORT` (standalone use, without a supervisor): a fixed table of running servers.
    public func serve(fixed backends: [(name: String, port: Int)]) {
        serversChanged(
            backends.map {
                GatewayBackend(name: $0.name, prefix: $0.name, port: $0.port, group: "", state: .running, generation: 1)
            })
    }

    /// The names' separator (SupervisorCore's `GatewaySettings.separator`, which config load keeps out of every
    /// prefix).
    static let separator = "__"
    /// Clients cap tool names at 64 characters (docs/gateway.md, "Names").
    static let maxNameLength = 64

    // MARK: The supervisor's table

    func serversChanged(_ table: [GatewayBackend]) {
        refreshQueue.async { [self] in apply(table) }
    }

    private func apply(_ table: [GatewayBackend]) {
        var closed: [BackendClient] = []
        state.withLock { s in
            let names = Set(table.map(\.name))
            for (name, b) in s.backends where !names.contains(name) {
                closed.append(b.client)
                s.backends[name] = nil
                cache.invalidate(backend: name)
            }
            for row in table {
                if var b = s.backends[row.name], b.row.port == row.port {
                    if b.row.generation != row.generation {
                        b.stale = true
                        b.epoch += 1
                        b.client.dropIdle()
                        cache.invalidate(backend: row.name)  // it restarted or reloaded: its answers may differ
                    }
                    b.row = row
                    s.backends[row.name] = b
                } else {
                    if let old = s.backends[row.name] { closed.append(old.client) }
                    s.backends[row.name] = Backend(row: row, client: client(for: row))
                }
            }
        }
        for c in closed { c.close("the server left the gateway") }
        refresh()
    }

    private func client(for row: GatewayBackend) -> BackendClient {
        let name = row.name
        return BackendClient(name: row.name, port: row.port, group: group) { [weak self] method, params in
            self?.notification(from: name, method, params)
        }
    }

    /// Reads the lists of every running backend that is stale (in parallel), then merges. Runs on refreshQueue.
    private func refresh() {
        let due = state.withLock { s in
            s.backends.values.filter { $0.stale && $0.row.state == .running }.map { ($0.row, $0.client) }
        }
        let reads = DispatchGroup()
        let results = Locked<[String: Result<(PluginHandlers, RemoteLists), RemoteLists.ReadError>]>([:])
        for (row, client) in due {
            DispatchQueue.global().async(group: reads) { [self] in
                let r = read(client)
                results.withLock { $0[row.name] = r }
            }
        }
        reads.wait()
        var retry = false
        var listens: [(String, BackendClient, [String])] = []
        var replaced: [(BackendClient, Int64)] = []
        for (row, client) in due {
            guard let result = results.withLock({ $0[row.name] }) else { continue }
            switch result {
            case .success(let (handlers, lists)):
                state.withLock { s in
                    guard var b = s.backends[row.name], b.client === client else { return }
                    b.handlers = handlers
                    b.lists = lists
                    b.readGeneration = row.generation
                    b.stale = false
                    b.epoch += 1
                    cache.invalidate(backend: row.name)  // restarted, reloaded or changed: its answers may differ
                    let uris = lists.resources.compactMap { $0["uri"]?.stringValue }
                    if b.listen == nil || b.listenURIs != uris {
                        // A new stream for the resources there are now; the old one (if any) is closed.
                        if let old = b.listen { replaced.append((client, old)) }
                        b.listen = nil
                        listens.append((row.name, client, uris))
                    }
                    s.backends[row.name] = b
                }
            case .failure(let e):
                log("\(row.name) (port \(row.port)): cannot read its lists, trying again: \(e.message)")
                retry = true
            }
        }
        merge()
        for (client, id) in replaced { client.cancel(id) }
        for (name, client, uris) in listens { listen(name, client, uris: uris) }
        if retry { scheduleRetry() }
    }

    /// Tries the failed reads again in a second, once: a second failure schedules the next.
    private func scheduleRetry() {
        let first = state.withLock { s -> Bool in
            defer { s.retryScheduled = true }
            return !s.retryScheduled
        }
        guard first else { return }
        refreshQueue.asyncAfter(deadline: .now() + 1) { [weak self] in
            guard let self else { return }
            self.state.withLock { $0.retryScheduled = false }
            self.refresh()
        }
    }

    /// One backend's capabilities and lists, blocking (off the refresh queue's thread of control).
    private func read(_ client: BackendClient) -> Result<(PluginHandlers, RemoteLists), RemoteLists.ReadError> {
        let timeout = listTimeout
        func send(
            _ method: String, _ params: [String: JSONValue],
            _ done: @escaping @Sendable (Result<JSONValue, ProgramRPCError>) -> Void
        ) {
            client.request(method, params, timeout: timeout) { result, _ in done(result) }
        }
        let discovered: JSONValue
        do {
            discovered = try RemoteLists.readOne("server/discover", send)
        } catch {
            return .failure(error)
        }
        let caps = discovered["capabilities"]?.objectValue ?? [:]
        var handlers: PluginHandlers = []
        if caps["tools"] != nil { handlers.insert(.tools) }
        if caps["resources"] != nil { handlers.insert(.resources) }
        if caps["prompts"] != nil { handlers.insert(.prompts) }
        if caps["completions"] != nil { handlers.insert(.completions) }
        do {
            let lists = try RemoteLists.read(
                handlers, send: send, log: { [self] line in log("\(client.name): \(line)") })
            return .success((handlers, lists))
        } catch {
            return .failure(error)
        }
    }

    /// Rebuilds the merged catalog from every backend's lists (in name order, so the order is the same on every
    /// run) and tells the listeners which lists changed.
    private func merge() {
        var catalog = Catalog()
        var routes = Routes()
        var handlers: PluginHandlers = []
        var omitted: [String] = []
        let backends = state.withLock { s in s.backends.values.sorted { $0.row.name < $1.row.name } }
        // Of a class of equivalent servers only the first one read lists its tools; calls go to any member.
        var listed = Set<String>()
        var classes: [String: [String]] = [:]
        for b in backends { classes[b.row.equivalence, default: []].append(b.row.name) }
        for b in backends where b.readGeneration != nil && listed.insert(b.row.equivalence).inserted {
            handlers.formUnion(b.handlers)
            let prefix = b.row.prefix
            let name = b.row.equivalence
            func prefixed(_ own: String) throws(Catalog.DeclarationError) -> String {
                let full = prefix + Self.separator + own
                guard full.utf8.count <= Self.maxNameLength else {
                    throw Catalog.DeclarationError(
                        description:
                            "'\(full)' is longer than \(Self.maxNameLength) characters (clients cap names there); give server '\(name)' a shorter alias"
                    )
                }
                return full
            }
            var before = (catalog.resources.count, catalog.templates.count)
            b.lists.add(to: &catalog, toolName: prefixed, promptName: prefixed) { e in
                omitted.append("\(name): \(e.description)")
            }
            for t in b.lists.tools {
                if let own = t["name"]?.stringValue, let full = try? prefixed(own), routes.tools[full] == nil,
                    let tool = catalog.tool(named: full)
                {
                    var hints = t["annotations"]
                    if case .raw(let bytes)? = hints { hints = try? JSONParser.parse(bytes) }
                    routes.tools[full] = Route(
                        backend: name, name: own, mirrored: tool.mirroredHeaders,
                        readOnly: hints?["readOnlyHint"]?.boolValue == true,
                        idempotent: hints?["idempotentHint"]?.boolValue == true)
                }
            }
            for p in b.lists.prompts {
                if let own = p["name"]?.stringValue, let full = try? prefixed(own), catalog.prompt(named: full) != nil {
                    routes.prompts[full] = Route(backend: name, name: own)
                }
            }
            // Resources keep their URIs: the first server (in name order) that lists one owns it.
            for r in catalog.resources[before.0...] { routes.resources[r.uri] = name }
            for t in catalog.templates[before.1...] { routes.templates[t.template.text] = name }
            before = (catalog.resources.count, catalog.templates.count)
        }
        // Cache hints that never promise more than a server does: per list, the shortest ttlMs and the narrowest
        // scope of the servers that serve it; a server that gave none makes it 0 and private.
        for kind in [Catalog.ListKind.tools, .resources, .templates, .prompts] {
            var hint: (ttlMs: Int64, scope: String)?
            for b in backends where b.readGeneration != nil && listed.contains(b.row.equivalence) {
                let serves: Bool
                switch kind {
                case .tools: serves = !b.lists.tools.isEmpty
                case .resources: serves = !b.lists.resources.isEmpty
                case .templates: serves = !b.lists.templates.isEmpty
                case .prompts: serves = !b.lists.prompts.isEmpty
                }
                guard serves else { continue }
                let own = b.lists.hints[kind] ?? (0, "private")
                hint =
                    hint.map {
                        (
                            min($0.ttlMs, own.ttlMs),
                            $0.scope == "private" || own.scope == "private" ? "private" : "public"
                        )
                    } ?? own
            }
            catalog.cacheHints[kind] = hint ?? (0, "private")
        }
        // The composites come after every server's tools, in name order.
        for c in composites.values.sorted(by: { $0.name < $1.name }) {
            do {
                try catalog.addTool(
                    name: c.name, title: nil,
                    description: c.description.isEmpty
                        ? "A \(c.policy.rawValue) composite of \(c.steps.map(\.tool).joined(separator: ", "))"
                        : c.description,
                    inputSchema: JSONWriter.string(c.inputSchema), outputSchema: nil, annotations: nil)
                handlers.insert(.tools)
            } catch {
                omitted.append("composite \(c.name): \(error.description)")
            }
        }
        let old = catalogBox.withLock { c in
            defer { c = catalog }
            return c
        }
        handlersBox.withLock { $0 = handlers }
        let (newlyOmitted, changedOmitted) = state.withLock { s -> ([String], Bool) in
            s.routes = routes
            s.classes = classes
            let fresh = omitted.filter { !s.omitted.contains($0) }
            let changed = omitted != s.omitted
            s.omitted = omitted
            return (fresh, changed)
        }
        for line in newlyOmitted { log("left out of the gateway's lists: \(line)") }
        if changedOmitted { leftOutSink.withLock { $0 }?(omitted) }
        let lists = Self.changedLists(old, catalog)
        if lists != 0 { deliver(lists: lists, uri: nil) }
    }

    /// The MCPP_LIST_* bits of the lists that differ between two catalogs.
    static func changedLists(_ old: Catalog, _ new: Catalog) -> UInt32 {
        var lists: UInt32 = 0
        if differ(old.tools.map(\.json), new.tools.map(\.json)) { lists |= UInt32(MCPP_LIST_TOOLS) }
        if differ(
            old.resources.map(\.json) + old.templates.map(\.json),
            new.resources.map(\.json) + new.templates.map(\.json))
        {
            lists |= UInt32(MCPP_LIST_RESOURCES)
        }
        if differ(old.prompts.map(\.json), new.prompts.map(\.json)) { lists |= UInt32(MCPP_LIST_PROMPTS) }
        return lists
    }

    private static func differ(_ a: [JSONValue], _ b: [JSONValue]) -> Bool {
        a.count != b.count || JSONWriter.serialize(.array(a)) != JSONWriter.serialize(.array(b))
    }

    private func deliver(lists: UInt32, uri: String?) {
        for handler in changeHandlers.withLock({ $0 }) { handler(lists, uri) }
        for view in views.withLock({ Array($0.values) }) { view.gatewayChanged(lists: lists, uri: uri) }
    }

    /// Reports what is left out of the lists to `sink` now and whenever it changes.
    func onLeftOut(_ sink: @escaping @Sendable ([String]) -> Void) {
        leftOutSink.withLock { $0 = sink }
        let now = state.withLock { $0.omitted }
        if !now.isEmpty { sink(now) }
    }

    // MARK: Groups

    /// The groups there are: every backend's `group` and every group with an allowlist, sorted.
    var groupNames: [String] {
        let fromTable = state.withLock { s in s.backends.values.map(\.row.group).filter { !$0.isEmpty } }
        return Set(fromTable).union(allow.keys).sorted()
    }

    /// `/mcp/<group>`'s view (made once), or nil when no server is in that group and it has no allowlist.
    func view(group name: String) -> GatewayView? {
        if let v = views.withLock({ $0[name] }) { return v }
        guard groupNames.contains(name) else { return nil }
        let v = GatewayView(group: name, gateway: self)
        return views.withLock { views in
            if let existing = views[name] { return existing }
            views[name] = v
            return v
        }
    }

    /// The merged lists narrowed to one group's servers and its allowlist, with what those servers can do.
    func lists(forGroup name: String) -> (RemoteLists, PluginHandlers) {
        let catalog = self.catalog
        let allowed = allow[name]
        return state.withLock { s in
            let members = Set(s.backends.values.filter { $0.row.group == name }.map(\.row.name))
            var handlers: PluginHandlers = []
            for b in s.backends.values where members.contains(b.row.name) { handlers.formUnion(b.handlers) }
            var lists = RemoteLists()
            lists.tools = catalog.tools.filter { t in
                guard let route = s.routes.tools[t.name], members.contains(route.backend) else { return false }
                return allowed?.contains(t.name) ?? true
            }.map(\.json)
            lists.prompts = catalog.prompts.filter { p in
                s.routes.prompts[p.name].map { members.contains($0.backend) } ?? false
            }.map(\.json)
            lists.resources = catalog.resources.filter { r in
                s.routes.resources[r.uri].map(members.contains) ?? false
            }.map(\.json)
            lists.templates = catalog.templates.filter { t in
                s.routes.templates[t.template.text].map(members.contains) ?? false
            }.map(\.json)
            return (lists, handlers)
        }
    }

    // MARK: What backends send unasked

    /// A listen stream per backend: its list changes make the gateway read its lists again; its resource
    /// updates reach the gateway's listeners. When the stream ends (the replica exited), it is opened again
    /// after a second if the server is still there.
    private func listen(_ name: String, _ client: BackendClient, uris: [String]) {
        let params: [String: JSONValue] = [
            "notifications": [
                "toolsListChanged": true, "resourcesListChanged": true, "promptsListChanged": true,
                "resourceSubscriptions": .array(uris.map { .string($0) }),
            ]
        ]
        // The id is filed before the request goes, so an answer that comes at once (a draining replica's 503)
        // finds it; a stream that ends, or is replaced, acts only for its own id.
        let id = client.reserveID()
        let filed = state.withLock { s -> Bool in
            guard var b = s.backends[name], b.client === client, !s.closing else { return false }
            b.listen = id
            b.listenURIs = uris
            s.backends[name] = b
            return true
        }
        guard filed else { return }
        client.request("subscriptions/listen", params, id: id, timeout: nil) { [weak self] _, _ in
            guard let self else { return }
            let again = self.state.withLock { s -> Bool in
                guard var b = s.backends[name], b.client === client, b.listen == id, !s.closing else { return false }
                b.listen = nil
                b.stale = true
                s.backends[name] = b
                return true
            }
            if again { self.scheduleRetry() }
        }
    }

    private func notification(from backend: String, _ method: String, _ params: [String: JSONValue]) {
        switch method {
        case "notifications/tools/list_changed", "notifications/resources/list_changed",
            "notifications/prompts/list_changed":
            refreshQueue.async { [self] in
                state.withLock { s in s.backends[backend]?.stale = true }
                refresh()
            }
        case "notifications/resources/updated":
            if let uri = params["uri"]?.stringValue {
                state.withLock { s in s.backends[backend]?.epoch += 1 }  // an answer on its way is not stored
                cache.remove(GatewayCache.key(method: "resources/read", name: uri, arguments: [:]))
            }
            guard let uri = params["uri"]?.stringValue,
                state.withLock({ s in s.routes.resources[uri] == backend || s.routes.resources[uri] == nil })
            else { return }
            deliver(lists: 0, uri: uri)
        case "notifications/progress":
            guard let token = params["progressToken"]?.intValue,
                let call = state.withLock({ s in s.calls.values.first { $0.rpcID == token && $0.backend == backend } }),
                let progress = params["progress"]?.numberValue
            else { return }
            call.call.observer.callProgress(
                progress: progress, total: params["total"]?.numberValue, message: params["message"]?.stringValue)
        default:
            break
        }
    }

    // MARK: Calls

    /// Which server serves a call, and the name there: among the members of the class that owns the name, one
    /// that can answer (running or starting, and listing the tool), picked at random weighted by health score,
    /// avoiding `avoid` (members a failed attempt went to) while another is left. `.down` when none can answer.
    /// `pinned`: only that member (a retry carrying a server's requestState goes back to the server that asked).
    private func route(_ call: PluginCall, avoid: Set<String>, pinned: String? = nil) -> RouteChoice {
        state.withLock { s -> RouteChoice in
            let owner: String?
            var own: String? = nil
            switch call.kind {
            case .tool(let name):
                owner = s.routes.tools[name]?.backend
                own = s.routes.tools[name]?.name
            case .prompt(let name):
                owner = s.routes.prompts[name]?.backend
                own = s.routes.prompts[name]?.name
            case .resource(let uri, let template, _):
                owner = s.routes.resources[uri] ?? template.flatMap { s.routes.templates[$0] }
            case .complete(let refKind, let ref, _, _):
                if refKind == MCPP_REF_PROMPT {
                    owner = s.routes.prompts[ref]?.backend
                    own = s.routes.prompts[ref]?.name
                } else {
                    owner = s.routes.resources[ref] ?? s.routes.templates[ref]
                }
            }
            guard let owner else { return .unknown }
            if s.classes[owner] == nil, pinned == nil || pinned == owner {
                // One server, no equivalents (the usual case): no weighing, no copies of the table's rows.
                guard let b = s.backends[owner] else { return pinned == nil ? .unknown : .gone(owner) }
                guard b.row.state == .running || b.row.state == .starting else { return .down([b.row]) }
                return .to(b, own)
            }
            var members = (s.classes[owner] ?? [owner]).compactMap { s.backends[$0] }
            if let pinned {
                members = members.filter { $0.row.name == pinned }
                guard !members.isEmpty else { return .gone(pinned) }
            }
            guard !members.isEmpty else { return .unknown }
            let able = members.filter { b in
                guard b.row.state == .running || b.row.state == .starting else { return false }
                guard case .tool = call.kind, let own, members.count > 1 else { return true }
                return b.readGeneration == nil || b.lists.tools.contains { $0["name"]?.stringValue == own }
            }
            guard !able.isEmpty else { return .down(members.map(\.row)) }
            let fresh = able.filter { !avoid.contains($0.row.name) }
            let pool = fresh.isEmpty ? able : fresh
            // Health weighs the choice; a member not yet probed (score 0) still gets a little.
            let weights = pool.map { max($0.row.health, 0.05) }
            var pick = Double.random(in: 0..<weights.reduce(0, +))
            for (b, w) in zip(pool, weights) {
                if pick < w { return .to(b, own) }
                pick -= w
            }
            return .to(pool[pool.count - 1], own)
        }
    }

    enum RouteChoice: Sendable {
        case to(Backend, String?)
        case unknown
        /// Every member is stopped, fatal or exited.
        case down([GatewayBackend])
        /// The server a retry is pinned to no longer serves the name.
        case gone(String)
    }

    /// How often, and how far apart, a call is sent again (docs/gateway.md, "Retries").
    struct RetryPolicy: Sendable {
        var attempts = 10
        var initial: Duration = .milliseconds(25)
        var max: Duration = .seconds(1)

        /// The pause before attempt `n` (1-based: the first retry), ±50 % jitter.
        func delay(before n: Int) -> Duration {
            var d = initial
            for _ in 1..<n where d < max { d = d * 2 }
            d = min(d, max)
            return d * Double.random(in: 0.5..<1.5)
        }
    }

    private func start(_ call: PluginCall) {
        if call.isCancelled {
            _ = call.finish(with: .internalError("cancelled before it started"))
            return
        }
        if case .tool(let name) = call.kind, let bucket = toolLimits[name], let wait = bucket.take("") {
            let seconds = max(1, Int(wait.rounded(.up)))
            metrics.rateLimited(tool: name)
            _ = call.finish(
                with: .rateLimited(
                    "rate limited: '\(name)' takes at most \(bucket.perSecond) calls per second; retry after \(seconds) s",
                    retryAfterSeconds: seconds))
            return
        }
        if case .tool(let name) = call.kind, let composite = composites[name] {
            return runComposite(call, composite)
        }
        // A 2026-07-28 retry after input_required: the gateway's sealed state names the server that asked.
        var input: BackendInput?
        if let sealed = call.priorState {
            guard let opened = BackendInput.open(sealed, answers: call.priorAnswers) else {
                _ = call.finish(with: .invalidParams("Invalid requestState: it was not issued by this gateway"))
                return
            }
            input = opened
        }
        let key = call.id
        call.onCancel { [weak self] in self?.cancelled(key) }
        attempt(call, number: 0, started: .now, deadline: .now + callTimeout, input: input)
    }

    /// Sends the call (attempt `number`, 0 first). A failure is retried, with backoff, while the call's deadline
    /// and the attempt budget allow, when it provably never reached the server, or when it was lost with its
    /// connection and the tool says running it twice is harmless (readOnlyHint or idempotentHint). `input`: the
    /// client's answers to a server's input requests, sent to that server with its requestState.
    func attempt(
        _ call: PluginCall, number: Int, started: ContinuousClock.Instant, deadline: ContinuousClock.Instant,
        avoid: Set<String> = [], input: BackendInput? = nil
    ) {
        guard !call.isCancelled else {
            _ = call.finish(with: .internalError("cancelled"))
            return
        }
        // A starting server is not failed: its socket holds the connection until a replica accepts it.
        let backend: Backend
        let own: String?
        switch route(call, avoid: avoid, pinned: input?.backend) {
        case .to(let b, let o):
            (backend, own) = (b, o)
            // A retry that goes to another equivalent server than the one that failed is a failover.
            if !avoid.isEmpty, !avoid.contains(b.row.name) { metrics.failedOver(to: b.row.name) }
        case .unknown:
            _ = call.finish(with: .invalidParams("no server behind the gateway serves \(call.kind.activity)"))
            return
        case .down(let rows):
            state.withLock { _ = $0.calls.removeValue(forKey: call.id) }
            let what = rows.map { "server '\($0.name)' is \(Self.describe($0.state))" }.joined(separator: ", ")
            _ = call.finish(
                with: .internalError("\(what); the gateway cannot reach \(rows.count == 1 ? "it" : "any of them")"))
            return
        case .gone(let name):
            _ = call.finish(
                with: .internalError(
                    "server '\(name)', which asked the client for input, no longer serves \(call.kind.activity)"))
            return
        }
        var (method, params) = RemoteOutcome.request(for: call, name: own)
        if let input {
            params["inputResponses"] = .object(input.responses)
            if let state = input.requestState { params["requestState"] = .string(state) }
        }
        var headers: [(String, String)] = []
        var harmless = false
        var cacheKey: String?
        var toolTTL: Duration?
        // A retry that carries the client's input depends on more than the key (caching.mdx): never cached.
        let cacheable = call.priorAnswers.isEmpty && call.priorState == nil && input == nil
        if case .tool(let full) = call.kind, own != nil, let route = state.withLock({ $0.routes.tools[full] }) {
            if !route.mirrored.isEmpty {
                headers = ModernRequestRules.paramHeaders(mirrored: route.mirrored, arguments: call.arguments)
            }
            let readOnly = route.readOnly
            harmless = readOnly || route.idempotent
            if let ttl = cacheTTL[full], cacheable {
                if readOnly {
                    toolTTL = ttl
                    cacheKey = GatewayCache.key(method: method, name: full, arguments: call.arguments)
                } else {
                    warnOnce("cache_ttl for '\(full)' is ignored: its server does not annotate it readOnlyHint")
                }
            }
        } else if case .resource(let uri, _, _) = call.kind {
            harmless = true  // reading a resource changes nothing
            if cacheable { cacheKey = GatewayCache.key(method: method, name: uri, arguments: [:]) }
        }
        if let cacheKey, number == 0 {
            if let hit = cache.lookup(cacheKey) {
                metrics.cache(backend: hit.backend, hit: true)
                var value = hit.value
                if case .object(var o) = value, o["ttlMs"] != nil {
                    // Fresh for what is left of the server's ttlMs, not for a whole new one (caching.mdx).
                    let left = ContinuousClock.now.duration(to: hit.expires).components
                    o["ttlMs"] = .int(max(0, left.seconds * 1000 + left.attoseconds / 1_000_000_000_000_000))
                    value = .object(o)
                }
                RemoteOutcome.finish(call, kind: call.kind, .success(value), size: hit.size, who: "the cache")
                return
            }
            metrics.cache(backend: backend.row.name, hit: false)
        }
        let client = backend.client
        let name = backend.row.name
        let key = call.id
        let rpcID = client.reserveID()
        enum Filed { case yes(epoch: Int), closing, cancelled }
        let filed = state.withLock { s -> Filed in
            guard !s.closing else { return .closing }
            // A cancel that came since the check above found nothing to cancel: it is seen here.
            guard !call.isCancelled else { return .cancelled }
            s.calls[key] = GatewayCall(backend: name, rpcID: rpcID, call: call)
            return .yes(epoch: s.backends[name]?.epoch ?? 0)
        }
        let epoch: Int
        switch filed {
        case .closing:
            _ = call.finish(with: .internalError("the gateway is stopping"))
            return
        case .cancelled:
            _ = call.finish(with: .internalError("cancelled"))
            return
        case .yes(let e):
            epoch = e
        }
        let retry = retryPolicy
        let mayRepeat = harmless
        let storeKey = cacheKey
        let storeTTL = toolTTL
        client.request(
            method, params, headers: headers, progress: true, id: rpcID,
            capabilities: call.observer.inputCapabilities, timeout: nil
        ) {
            [weak self] result, size in
            guard let self else { return }
            guard
                let entry = self.state.withLock({ s -> GatewayCall? in
                    guard s.calls[key]?.rpcID == rpcID else { return nil }
                    return s.calls.removeValue(forKey: key)
                })
            else { return }
            if case .failure(let e) = result, e.unsent || (e.transport && mayRepeat), number + 1 < retry.attempts {
                let pause = retry.delay(before: number + 1)
                if ContinuousClock.now + pause < deadline, !entry.call.isCancelled {
                    self.metrics.retried(backend: name)
                    self.group.next().scheduleTask(in: .nanoseconds(Int64(pause.nanoseconds))) { [weak self] in
                        // The next attempt goes to another equivalent server if there is one (failover).
                        self?.attempt(
                            entry.call, number: number + 1, started: started, deadline: deadline,
                            avoid: avoid.union([name]), input: input)
                    }
                    return
                }
            }
            self.count(entry.call, backend: name, result, since: started)
            if let storeKey, case .success(let value) = result, value["isError"]?.boolValue != true,
                value["resultType"]?.stringValue ?? "complete" == "complete"
            {
                // A tool's answer for its configured time; a resource for what its server said it may be kept,
                // if every caller may see it.
                var ttl = storeTTL
                if storeTTL == nil, value["cacheScope"]?.stringValue == "public", let ms = value["ttlMs"]?.intValue,
                    ms > 0
                {
                    ttl = .milliseconds(ms)
                }
                // Not if the server restarted or changed its lists while this answer was on its way.
                let current = self.state.withLock { $0.backends[name]?.epoch }
                if let ttl, current == epoch {
                    self.cache.store(
                        storeKey, value: value, size: size ?? JSONWriter.serialize(value).count, backend: name, ttl: ttl
                    )
                }
            }
            if case .success(let value) = result, value["resultType"]?.stringValue == "input_required" {
                // The server asks the client: carried through the engine in the client's era (GatewayInput.swift).
                self.relayInput(
                    entry.call, from: name, value, round: (input?.round ?? -1) + 1, number: number, started: started,
                    deadline: deadline)
                return
            }
            RemoteOutcome.finish(entry.call, kind: entry.call.kind, result, size: size, who: "server '\(name)'")
        }
    }

    private func count(
        _ call: PluginCall, backend: String, _ result: Result<JSONValue, ProgramRPCError>,
        since: ContinuousClock.Instant
    ) {
        let (method, name): (String, String)
        switch call.kind {
        case .tool(let n): (method, name) = ("tools/call", n)
        case .prompt(let n): (method, name) = ("prompts/get", n)
        case .resource: (method, name) = ("resources/read", "")
        case .complete: (method, name) = ("completion/complete", "")
        }
        let outcome: String
        switch result {
        case .success(let v): outcome = v["isError"]?.boolValue == true ? "tool_error" : "ok"
        case .failure: outcome = "error"
        }
        let elapsed = since.duration(to: .now)
        metrics.call(
            backend: backend, method: method, name: name, outcome: outcome,
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    // MARK: Composite tools

    private func runComposite(_ call: PluginCall, _ composite: CompositeTool) {
        var input = call.arguments
        var done: [CompositeRun.StepResult] = []
        if composite.policy == .sequential, let token = input.removeValue(forKey: "checkpoint") {
            guard let t = token.stringValue, let saved = checkpoints.take(t, tool: composite.name) else {
                _ = call.finish(
                    with: .invalidParams(
                        "checkpoint: unknown, used already or expired (a checkpoint resumes one run, within 10 minutes)"
                    ))
                return
            }
            input = saved.input
            done = saved.done
        }
        CompositeRun(call: call, tool: composite, gateway: self, input: input, done: done).start()
    }

    /// Whether running the tool twice is harmless (its server says readOnlyHint or idempotentHint).
    func isHarmless(_ tool: String) -> Bool {
        state.withLock { s in s.routes.tools[tool].map { $0.readOnly || $0.idempotent } ?? false }
    }

    /// A call of one of the gateway's own tools that a composite makes; `done` hears how it ended.
    func makeStepCall(
        tool: String, arguments: [String: JSONValue], done: @escaping @Sendable (CompositeRun.StepResult) -> Void
    ) -> PluginCall {
        let id = state.withLock { s in
            defer { s.nextCall += 1 }
            return s.nextCall
        }
        return PluginCall(
            id: id, kind: .tool(name: tool), arguments: arguments, observer: CompositeStepObserver(done),
            maxOutputBytes: 16 << 20)
    }

    /// Starts a step (a composite's steps are not composites themselves: config load checks their names).
    func startStep(_ call: PluginCall) {
        guard case .tool(let name) = call.kind, catalog.tool(named: name) != nil, composites[name] == nil else {
            _ = call.finish(with: .invalidParams("no tool '\(call.kind.activity)' on the gateway for this step"))
            return
        }
        start(call)
    }

    private func cancelled(_ key: UInt) {
        guard let entry = state.withLock({ $0.calls.removeValue(forKey: key) }) else { return }
        let client = state.withLock { $0.backends[entry.backend]?.client }
        // 2026-07-28 over HTTP: closing the request's connection is the cancellation (no notification).
        client?.cancel(entry.rpcID)
        _ = entry.call.finish(with: .internalError("cancelled"))
    }

    static func describe(_ state: GatewayBackend.State) -> String {
        switch state {
        case .running: return "running"
        case .starting: return "starting"
        case .fatal: return "fatal (restarted too often; waiting out its cool-down)"
        case .stopped: return "stopped by an admin"
        case .exited: return "down (exited, and its restart policy does not restart it)"
        }
    }

    func log(_ line: String) { logSink(line) }

    /// Logs `line` the first time only.
    private func warnOnce(_ line: String) {
        if warned.withLock({ $0.insert(line).inserted }) { log(line) }
    }
}

extension GatewayServer: NonPluginServer {
    var serverName: String { "mcp-gateway" }
    var serverVersion: String { Self.version }
    var serverTitle: String? { "mcp-supervisor gateway" }
    var instructions: String? { nil }
    var catalog: Catalog { catalogBox.withLock { $0 } }
    var handlers: PluginHandlers { handlersBox.withLock { $0 } }

    func makeCall(
        kind: CallKind, arguments: [String: JSONValue], observer: any CallObserver, maxOutputBytes: Int,
        input: RetryInput
    ) -> PluginCall {
        let id = state.withLock { s in
            defer { s.nextCall += 1 }
            return s.nextCall
        }
        return PluginCall(
            id: id, kind: kind, arguments: arguments, observer: observer, maxOutputBytes: maxOutputBytes,
            priorAnswers: input.answers, priorState: input.pluginState)
    }

    /// Starting a call only writes a request to a connection: always on the calling thread.
    func mayRunInline(_ tool: Catalog.Tool) -> Bool { true }
    func runInline(_ call: PluginCall) { start(call) }
    func submit(_ call: PluginCall) { start(call) }
    func cancel(_ call: PluginCall) { call.markCancelled() }
    func checkOverrun(_ call: PluginCall) {}

    func onChange(_ handler: @escaping @Sendable (UInt32, String?) -> Void) {
        changeHandlers.withLock { $0.append(handler) }
    }

    var slotsBusy: Int { state.withLock { $0.calls.count } }
    /// The gateway's own series (docs/gateway.md, "Metrics").
    func pluginSeries() -> [PluginMetricFamily] {
        let backends = state.withLock { s in
            s.backends.values.sorted { $0.row.name < $1.row.name }.map {
                (name: $0.row.name, state: $0.row.state.rawValue)
            }
        }
        return metrics.families(backends: backends)
    }

    /// Healthy while it runs; the detail says how many backends answer.
    func checkHealth(diagnose: Bool, _ done: @escaping @Sendable (PluginInstance.HealthCheck) -> Void) {
        let (running, total) = state.withLock { s in
            (s.backends.values.filter { $0.row.state == .running && $0.readGeneration != nil }.count, s.backends.count)
        }
        done(.answered(ok: true, detail: "\(running) of \(total) servers read", report: nil, seconds: 0))
    }

    func destroy(healthWait: Duration) {
        let clients = state.withLock { s -> [BackendClient] in
            s.closing = true
            return s.backends.values.map(\.client)
        }
        for c in clients { c.close("the gateway is stopping") }
    }
}
