import Contracts

/// The child's box as configured (docs/security.md, "The box: options"): the `[sandbox]` table of a server file,
/// with defaults from `[defaults]` (a key the server's table sets replaces the default's value, arrays included).
/// The supervisor turns it into a `BoxSpec` per replica (Sources/Supervisor/Box/). Owned by the box work
/// (issue 13); the loader reads it in ConfigLoader+Box.swift.
public struct BoxConfig: Sendable, Equatable {
    /// `[sandbox] enabled = false`: the box switched off explicitly (secrets are still passed).
    public var enabled = true
    /// `user` as written (a name or a number) and the ids it resolved to at load; nil: the supervisor's own.
    public var user: String?
    public var uid: UInt32?
    /// `group` as written, or the user's primary group; nil: the supervisor's own.
    public var group: String?
    public var gid: UInt32?
    public var coreDumps = false
    /// `memory_max` in bytes, and as written ("256M") for messages.
    public var memoryMax: Int?
    public var memoryMaxText: String?
    public var openFilesMax: Int?
    public var processesMax: Int?
    /// `cpu_max` in cores ("50%" = 0.5).
    public var cpuMax: Double?
    public var syscallsAllow: [String] = []
    /// Absolute (resolved against the file that named them).
    public var readPaths: [String] = []
    public var writePaths: [String] = []
    public var network: BoxSpec.Network = .outbound
    /// `unix_sockets = true`: the plugin may create AF_UNIX sockets (to reach a local database or agent by path);
    /// off by default, so a plugin cannot reach path sockets that trust its uid (the control socket, D-Bus).
    public var unixSockets = false
    public var privateTmp = true
    /// Files of KEY=VALUE lines, read at every spawn (absolute).
    public var envFiles: [String] = []
    /// systemd credential names, copied from `$CREDENTIALS_DIRECTORY` at every spawn.
    public var credentials: [String] = []

    public init() {}
}
