/// The environment variables through which the supervisor hands a host its descriptors and identity
/// (docs/supervisor.md, "Children"). The supervisor sets them; the host reads them; nobody else spells them.
public enum ChildEnvironment {
    /// The listening socket's descriptor number (the supervisor passes 3).
    public static let listenFD = "MCP_LISTEN_FD"
    /// The control channel's descriptor number (the supervisor passes 4).
    public static let controlFD = "MCP_CONTROL_FD"
    /// The server's name, for the host's own log lines.
    public static let serverName = "MCP_SERVER_NAME"
    /// The replica's index (0-based).
    public static let replica = "MCP_REPLICA"
    /// `json` asks the host to write its log lines as JSON objects (`LogFormat`), so the supervisor forwards
    /// their level and fields instead of wrapping text. Absent or `text`: readable lines.
    public static let logFormat = "MCP_LOG_FORMAT"
    /// The child's box (`BoxSpec`, docs/security.md) as one JSON object; absent: no box (a host run by hand).
    public static let box = "MCP_BOX"

    /// The descriptor numbers the supervisor maps in every child.
    public static let listenDescriptor: Int32 = 3
    public static let controlDescriptor: Int32 = 4
}
