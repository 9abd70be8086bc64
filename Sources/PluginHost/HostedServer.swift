import Contracts

/// What one host serves: a loaded plugin (`PluginInstance`) or a command server's program (`BridgedServer`,
/// docs/servers.md). The dispatcher sees either as a `DispatchedPlugin`; the control channel (health, slots,
/// change relay, the plugin's own series) and the drain need the rest.
protocol HostedServer: DispatchedPlugin {
    var slotsBusy: Int { get }
    var concurrency: Int { get }
    var stuckCallCount: Int { get }
    /// The plugin's own series (the metrics extension); none for a program.
    func pluginSeries() -> [PluginMetricFamily]
    /// Hands changes this server originates to `relay` (the supervisor passes them to the other replicas).
    func relayChanges(to relay: @escaping @Sendable (PluginChange) -> Void)
    /// Another replica reported a change.
    func listsChanged(_ lists: UInt32)
    func resourceUpdated(_ uri: String)
    func checkHealth(diagnose: Bool, _ done: @escaping @Sendable (PluginInstance.HealthCheck) -> Void)
    /// The graceful end, after every call finished.
    func destroy(healthWait: Duration)
    /// The supervisor's table of servers (only the gateway has a use for it, docs/gateway.md).
    func serversChanged(_ table: [GatewayBackend])
}

extension HostedServer {
    func serversChanged(_ table: [GatewayBackend]) {}
}

/// A hosted server that is not a plugin: no stuck slots (its calls are not on plugin threads), no series of its own
/// unless it says so, and nothing to relay between replicas (each replica's program, or the gateway, hears of its
/// own changes). The members a plugin implements, spelled once for the others.
protocol NonPluginServer: HostedServer {}

extension NonPluginServer {
    var stuckCallCount: Int { 0 }
    func pluginSeries() -> [PluginMetricFamily] { [] }
    func relayChanges(to relay: @escaping @Sendable (PluginChange) -> Void) {}
    func listsChanged(_ lists: UInt32) {}
    func resourceUpdated(_ uri: String) {}
}

extension PluginInstance: HostedServer {
    func pluginSeries() -> [PluginMetricFamily] { metrics.snapshot() }
}
