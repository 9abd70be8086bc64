/// The command range (50-59) and the program's exit (21): a command server's program (docs/servers.md,
/// docs/plugin-host.md "Exit statuses").
extension HostExitStatus {
    /// The running program exited or closed its standard output; restarting may help (the restart policy decides).
    public static let programExited = HostExitStatus(rawValue: 21)

    /// The command's program is not found (no such file, or not on the program's PATH).
    public static let commandNotFound = HostExitStatus(rawValue: 50)
    /// The program is found but cannot be executed (permissions, not an executable format).
    public static let commandNotExecutable = HostExitStatus(rawValue: 51)
    /// The program could not be started: its working directory, the descriptors or fork failed.
    public static let commandCannotStart = HostExitStatus(rawValue: 52)
    /// The program does not speak MCP: it refused `initialize`, answered with an unknown protocol revision, or
    /// wrote something other than JSON-RPC as its answer.
    public static let commandNotMCP = HostExitStatus(rawValue: 53)
    /// `transport = "http"`: the program did not serve MCP at its private port and path within the start timeout.
    public static let commandHTTPUnreachable = HostExitStatus(rawValue: 54)
}
