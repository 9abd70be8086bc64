import Contracts

/// The host's MCP side: one loaded plugin (or a command server's program) and the dispatcher serving it. The
/// HTTP server feeds the dispatcher; the supervisor's control channel reads the server's health, the calls in
/// flight and the traffic from here.
public final class MCPEngine: Sendable {
    let plugin: any HostedServer
    let dispatcher: MCPDispatcher

    public convenience init(plugin: PluginInstance, config: HostConfig) {
        self.init(server: plugin, config: config)
    }

    public convenience init(program: BridgedServer, config: HostConfig) {
        self.init(server: program, config: config)
    }

    public convenience init(gateway: GatewayServer, config: HostConfig) {
        self.init(server: gateway, config: config)
    }

    init(server: any HostedServer, config: HostConfig) {
        self.plugin = server
        self.dispatcher = MCPDispatcher(plugin: server, config: config)
    }

    public var config: HostConfig { dispatcher.config }
    public var isDraining: Bool { dispatcher.isDraining }
    public var callsInFlight: Int { dispatcher.callsInFlight }

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
    public func beginDrain() { dispatcher.beginDrain() }

    /// Ends the drain's grace period: new requests are answered 503 with Retry-After from now on.
    public func refuseNewRequests() { dispatcher.refuseNewRequests() }

    /// Waits until no call is in flight (after `beginDrain`), or `timeout` passed; returns the calls left.
    public func waitForCalls(timeout: Duration) -> Int { dispatcher.waitForCalls(timeout: timeout) }
}
