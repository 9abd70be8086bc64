import Contracts
import Locking

/// The host's MCP side: one loaded plugin (or a command server's program) and the dispatcher serving it. The
/// HTTP server feeds the dispatcher; the supervisor's control channel reads the server's health, the calls in
/// flight and the traffic from here.
public final class MCPEngine: Sendable {
    let plugin: any HostedServer
    let dispatcher: MCPDispatcher
    /// The gateway's group endpoints (`/mcp/<group>`, docs/gateway.md), each a dispatcher of its own over a view
    /// of the gateway, made on first use; nil for a host (only `/mcp`).
    private let groups = Locked<[String: MCPDispatcher]>([:])
    private let gateway: GatewayServer?
    private let sessionEnds: SessionEndRelay

    public convenience init(plugin: PluginInstance, config: HostConfig) {
        self.init(server: plugin, config: config)
    }

    public convenience init(program: BridgedServer, config: HostConfig) {
        self.init(server: program, config: config)
    }

    public init(gateway: GatewayServer, config: HostConfig) {
        self.plugin = gateway
        self.sessionEnds = SessionEndRelay()
        self.dispatcher = MCPDispatcher(plugin: gateway, config: config, sessionEnds: sessionEnds)
        self.gateway = gateway
    }

    init(server: any HostedServer, config: HostConfig) {
        self.plugin = server
        self.sessionEnds = SessionEndRelay()
        self.dispatcher = MCPDispatcher(plugin: server, config: config, sessionEnds: sessionEnds)
        self.gateway = nil
    }

    /// The dispatcher of `/mcp/<group>`, or why there is none.
    func group(_ name: String) -> Result<MCPDispatcher, GroupMissing> {
        guard let gateway else { return .failure(GroupMissing(known: nil)) }
        if let d = groups.withLock({ $0[name] }) { return .success(d) }
        guard let view = gateway.view(group: name) else { return .failure(GroupMissing(known: gateway.groupNames)) }
        let d = MCPDispatcher(plugin: view, config: dispatcher.config, sessionEnds: sessionEnds)
        if isDraining { d.beginDrain() }
        return .success(
            groups.withLock { g in
                if let existing = g[name] { return existing }
                g[name] = d
                return d
            })
    }

    struct GroupMissing: Error {
        /// The groups there are (nil: this endpoint has none, it is not a gateway).
        var known: [String]?
    }

    private var allDispatchers: [MCPDispatcher] { [dispatcher] + groups.withLock { Array($0.values) } }

    /// Where a legacy session a DELETE ended here is reported: the supervisor, which tells the server's other
    /// replicas (they would otherwise adopt its sealed id again; docs/protocol.md "Legacy sessions across replicas").
    public func relaySessionEnds(to relay: @escaping @Sendable (String) -> Void) {
        sessionEnds.set(relay)
    }

    /// Another replica ended this legacy session (DELETE): end it here too and never adopt its id again.
    public func endSession(_ id: String) { for d in allDispatchers { d.endSessionEndedElsewhere(id) } }

    public var config: HostConfig { dispatcher.config }
    public var isDraining: Bool { dispatcher.isDraining }
    public var callsInFlight: Int { allDispatchers.reduce(0) { $0 + $1.callsInFlight } }

    /// The traffic counters and the handler slots now, for the `metrics` op. Reads atomics (and the session
    /// table's size), never waits for a plugin call. With `--no-metrics` only the slots and the calls in flight.
    public func trafficSnapshot() -> TrafficSnapshot {
        var s = dispatcher.trafficSnapshot() ?? TrafficSnapshot()
        if dispatcher.traffic == nil { s.callsInFlight = callsInFlight }
        s.slotsBusy = plugin.slotsBusy
        s.slotsTotal = plugin.concurrency
        s.plugin = plugin.pluginSeries()
        return s
    }

    /// Starts the drain: legacy GET streams end, calls in flight run on, and every response from now on closes
    /// its connection.
    public func beginDrain() { for d in allDispatchers { d.beginDrain() } }

    /// Ends the drain's grace period: new requests are answered 503 with Retry-After from now on.
    public func refuseNewRequests() { for d in allDispatchers { d.refuseNewRequests() } }

    /// Waits until no call is in flight (after `beginDrain`), or `timeout` passed; returns the calls left.
    public func waitForCalls(timeout: Duration) -> Int {
        let deadline = ContinuousClock.now + timeout
        var left = 0
        for d in allDispatchers {
            left += d.waitForCalls(timeout: max(.zero, ContinuousClock.now.duration(to: deadline)))
        }
        return left
    }
}
