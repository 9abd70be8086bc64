import Contracts
import Locking
import SupervisorCore

/// The `mcp-plugin-host` arguments that carry a server's trust policy (owned by the trust work, issue 13;
/// docs/security.md, "Plugin trust").
enum TrustArguments {
    /// The arguments for one spawn; warns about `trust = "any"` the first time a server spawns.
    static func host(for server: ServerConfig, config: SupervisorConfig, log: SupervisorLog) -> [String] {
        warnIfUntrusted(server, log: log)
        return host(for: server, config: config)
    }

    static func host(for server: ServerConfig, config: SupervisorConfig) -> [String] {
        switch server.trust {
        case .any: return ["--trust", "any"]
        case .signed:
            // The loader refuses `signed` without trusted_keys_dir; should it ever get here, the host refuses too.
            return ["--trust", "signed"] + (config.trustedKeysDirectory.map { ["--trusted-keys-dir", $0] } ?? [])
        case .sha256(let digest): return ["--trust", "any", "--sha256", digest]
        }
    }

    /// The servers already warned about during this run of the supervisor.
    private static let warned = Locked<Set<String>>([])

    /// `trust = "any"`: a warning, once per server per start of the supervisor (not per replica, restart or
    /// reload). Returns whether it logged.
    @discardableResult
    static func warnIfUntrusted(_ server: ServerConfig, log: SupervisorLog) -> Bool {
        guard !server.isCommand, server.trust == .any, warned.withLock({ $0.insert(server.name).inserted }) else {
            return false
        }
        log.event(
            .warning, LogEventName.trustAny, server: server.name,
            message:
                "trust = any: \(server.plugin) is loaded without a signature or digest check; set trusted_keys_dir "
                + "in the main file (and sign the plugin) or sha256 in \(server.file) (docs/security.md)")
        return true
    }
}
