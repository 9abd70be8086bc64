import Contracts
import SupervisorCore

/// Turns a server's `BoxConfig` into the `BoxSpec` a replica's host applies (owned by the box work, issue 13).
enum ChildBox {
    /// Extra environment for one replica (`MCP_BOX`); empty: no box.
    static func environment(for server: ServerConfig, replica: Int, stateDirectory: String) -> [String: String] {
        [:]
    }
}
