import Contracts
import SupervisorCore

/// What the supervisor tells the gateway (docs/gateway.md): every other server, its port and its state, pushed
/// over the gateway's control channel when the gateway is ready and again whenever that table changes. The
/// supervisor still never reads MCP traffic; the gateway talks MCP to the servers on their ports.
extension Supervisor {
    /// The table as of now: one row per server with a port, in name order.
    func gatewayTable() -> [GatewayBackend] {
        let classes = Self.equivalenceClasses(servers.values.map(\.config).filter { !$0.isGateway })
        return servers.values.filter { !$0.config.isGateway }.sorted { $0.name < $1.name }.compactMap { s in
            guard let port = s.port else { return nil }
            let primary = classes[s.name] ?? s.name
            return GatewayBackend(
                name: s.name, prefix: servers[primary]?.config.gatewayPrefix ?? s.config.gatewayPrefix, port: port,
                group: s.config.group, state: Self.gatewayState(s),
                generation: gatewayGenerations[s.name, default: 0], equivalence: primary,
                health: HealthAggregate.score(s.replicas.map(\.health.state)))
        }
    }

    /// Each server's class of equivalents (`equivalent_to` both ways, transitively), named by its first member.
    static func equivalenceClasses(_ configs: [ServerConfig]) -> [String: String] {
        var parent: [String: String] = [:]
        func find(_ x: String) -> String {
            var x = x
            while let p = parent[x], p != x { x = p }
            return x
        }
        for c in configs { parent[c.name] = parent[c.name] ?? c.name }
        for c in configs {
            for other in c.equivalentTo where parent[other] != nil {
                let (a, b) = (find(c.name), find(other))
                if a != b { parent[max(a, b)] = min(a, b) }
            }
        }
        return Dictionary(uniqueKeysWithValues: configs.map { ($0.name, find($0.name)) })
    }

    /// How the gateway routes to a server in this state (GatewayBackend.State).
    static func gatewayState(_ s: ServerState) -> GatewayBackend.State {
        switch s.status {
        case .running: return .running
        case .starting, .waiting: return .starting
        case .stopping:
            // `mcpctl restart` and a reload that changes the server stop it to start it again: it comes back.
            if case .stopping(then: .start) = s.phase { return .starting }
            return .stopped
        case .stopped: return .stopped
        case .failed: return .fatal
        case .down:
            // Every replica is down: waiting out a backoff comes back by itself, a fatal one not before its
            // cool-down, an exit the policy does not restart not at all.
            if s.replicas.contains(where: { if case .backoff = $0.lifecycle.phase { true } else { false } }) {
                return .starting
            }
            if s.replicas.contains(where: { if case .fatal = $0.lifecycle.phase { true } else { false } }) {
                return .fatal
            }
            return .exited
        }
    }

    /// A server's lists may differ from what the gateway read: after each ready (a restart, a reload) and each
    /// list change its plugin reported.
    func bumpGatewayGeneration(_ server: String) {
        guard config.gateway != nil else { return }
        gatewayGenerations[server, default: 0] += 1
    }

    /// Sends the table to every gateway replica that is ready and knows the message, if it changed since the
    /// last push (or to `fresh`, a replica that just became ready, in any case).
    func pushGatewayTable(fresh: ReplicaID? = nil) {
        guard config.gateway != nil else { return }
        let table = gatewayTable()
        let changed = table != gatewayPushed
        guard changed || fresh != nil else { return }
        gatewayPushed = table
        for (id, child) in children where id.server == GatewaySettings.serverName {
            guard changed || id == fresh else { continue }
            guard (metricsState.protocols[id]?.1 ?? 1) >= 4, metricsState.protocols[id]?.0 == child.pid else {
                continue
            }
            _ = child.send(.servers(table))
        }
    }
}
