import SupervisorCore

/// The `mcp-plugin-host` arguments that carry a server's trust policy (owned by the trust work, issue 13).
enum TrustArguments {
    static func host(for server: ServerConfig, config: SupervisorConfig) -> [String] { [] }
}
