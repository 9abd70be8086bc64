import Contracts
import MCPProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// Applies the child's box (`BoxSpec`, docs/security.md) to this process before the plugin loads (owned by the
/// box work, issue 13). Failures are `HostFailure`s in the sandbox range (40-49).
public enum Box {
    /// Reads `MCP_BOX` and applies it; no `MCP_BOX` (a host run by hand): nothing to apply.
    public static func applyFromEnvironment() throws(HostFailure) {
        guard let raw = getenv(ChildEnvironment.box) else { return }
        let text = String(cString: raw)
        guard let value = try? JSONParser.parse(Array(text.utf8)), let spec = BoxSpec.decode(value) else {
            throw HostFailure(HostExitStatus(rawValue: 40), "\(ChildEnvironment.box) is not a valid box description")
        }
        try apply(spec)
    }

    public static func apply(_ spec: BoxSpec) throws(HostFailure) {}
}
