import Contracts
import Locking
import MCPProtocol
import PluginABI

/// `/mcp/<group>` (docs/gateway.md): the servers whose `group` names it, narrowed by the group's tool allowlist
/// when it has one. A view of the gateway with a dispatcher of its own: its lists are the gateway's filtered, its
/// calls go through the gateway, and a change reaches its clients only when its own lists changed.
final class GatewayView: Sendable {
    let group: String
    private let gateway: GatewayServer
    private let catalogBox = Locked(Catalog())
    private let handlersBox = Locked(PluginHandlers())
    private let changeHandlers = Locked<[@Sendable (UInt32, String?) -> Void]>([])

    init(group: String, gateway: GatewayServer) {
        self.group = group
        self.gateway = gateway
        refresh()
    }

    /// Takes the gateway's lists again; returns the MCPP_LIST_* bits of the lists that changed.
    @discardableResult
    func refresh() -> UInt32 {
        let (lists, handlers) = gateway.lists(forGroup: group)
        var catalog = Catalog()
        lists.add(to: &catalog) { _ in }  // items the gateway served already passed every check
        catalog.cacheHints = gateway.catalog.cacheHints
        handlersBox.withLock { $0 = handlers }
        let old = catalogBox.withLock { c in
            defer { c = catalog }
            return c
        }
        return GatewayServer.changedLists(old, catalog)
    }

    /// The gateway's change: passed on for the lists of this group that changed, and resource updates of its
    /// resources.
    func gatewayChanged(lists: UInt32, uri: String?) {
        if let uri {
            let own = catalogBox.withLock { c in c.hasResource(uri) || c.matchTemplate(uri) != nil }
            if own { for h in changeHandlers.withLock({ $0 }) { h(0, uri) } }
        }
        guard lists != 0 else { return }
        let changed = refresh()
        if changed != 0 { for h in changeHandlers.withLock({ $0 }) { h(changed, nil) } }
    }
}

extension GatewayView: NonPluginServer {
    var serverName: String { "mcp-gateway" }
    var serverVersion: String { GatewayServer.version }
    var serverTitle: String? { "mcp-supervisor gateway: group \(group)" }
    var instructions: String? { nil }
    var catalog: Catalog { catalogBox.withLock { $0 } }
    var handlers: PluginHandlers { handlersBox.withLock { $0 } }

    func makeCall(
        kind: CallKind, arguments: [String: JSONValue], observer: any CallObserver, maxOutputBytes: Int,
        input: RetryInput
    ) -> PluginCall {
        gateway.makeCall(
            kind: kind, arguments: arguments, observer: observer, maxOutputBytes: maxOutputBytes, input: input)
    }

    func mayRunInline(_ tool: Catalog.Tool) -> Bool { true }
    func runInline(_ call: PluginCall) { gateway.runInline(call) }
    func submit(_ call: PluginCall) { gateway.submit(call) }
    func cancel(_ call: PluginCall) { gateway.cancel(call) }
    func checkOverrun(_ call: PluginCall) {}
    func log(_ line: String) { gateway.log(line) }

    func onChange(_ handler: @escaping @Sendable (UInt32, String?) -> Void) {
        changeHandlers.withLock { $0.append(handler) }
    }

    var slotsBusy: Int { gateway.slotsBusy }
    var concurrency: Int { gateway.concurrency }
    func checkHealth(diagnose: Bool, _ done: @escaping @Sendable (PluginInstance.HealthCheck) -> Void) {
        gateway.checkHealth(diagnose: diagnose, done)
    }
    func destroy(healthWait: Duration) {}
}
