import MCPProtocol

/// The child's box (docs/security.md): what `mcp-plugin-host` does to itself before it loads the plugin. The
/// supervisor resolves names (users, groups, paths, cgroup folders) and passes the result in `MCP_BOX` as one JSON
/// object; the host applies it in a fixed order and exits in the sandbox range (40-49) when a step fails.
///
/// Absent `MCP_BOX` (a host run by hand): nothing is applied. `enabled = false` (`sandbox = false` in the server
/// file): only what never depends on configuration is applied — nothing; the box is off and status says so.
public struct BoxSpec: Sendable, Equatable {
    public enum Network: String, Sendable, Equatable {
        /// The plugin may open outbound connections (the default: a plugin that calls remote APIs needs it).
        case outbound
        /// Nothing beyond the inherited listening socket and the control channel.
        case none
    }

    public var enabled = true
    /// Numeric ids to drop to (the supervisor resolved `user`/`group`); nil: keep the supervisor's.
    public var uid: UInt32?
    public var gid: UInt32?
    public var coreDumps = false
    /// RLIMIT_NOFILE.
    public var openFilesMax: Int?
    /// RLIMIT_NPROC, set only when no cgroup pids controller applies (`processesMaxByCgroup` false).
    public var processesMax: Int?
    /// RLIMIT_DATA, set only when no cgroup memory controller applies.
    public var memoryMax: Int?
    /// `cgroup.procs` (v2) or `tasks`/`cgroup.procs` (v1) files the host writes "0" into before it drops anything,
    /// so it and everything the plugin starts are counted there. The supervisor created and configured them.
    public var cgroupProcsFiles: [String] = []
    /// Syscall names added back to the default seccomp deny list (`syscalls_allow`).
    public var syscallsAllow: [String] = []
    /// Landlock: read-only and read-write path beneath rules (absolute; the supervisor already added the
    /// plugin's folder, the fixed system set and the per-server state folder).
    public var readPaths: [String] = []
    public var writePaths: [String] = []
    public var network: Network = .outbound
    /// AF_UNIX sockets allowed (`unix_sockets`); denied by the seccomp filter otherwise.
    public var unixSockets = false
    /// A folder mounted on /tmp in a private mount namespace; nil: /tmp as it is.
    public var privateTmp: String?

    public init() {}

    public func encode() -> JSONValue {
        var o: [String: JSONValue] = [
            "enabled": .bool(enabled), "core_dumps": .bool(coreDumps),
            "syscalls_allow": .array(syscallsAllow.map(JSONValue.string)),
            "read_paths": .array(readPaths.map(JSONValue.string)),
            "write_paths": .array(writePaths.map(JSONValue.string)),
            "cgroup_procs_files": .array(cgroupProcsFiles.map(JSONValue.string)),
            "network": .string(network.rawValue), "unix_sockets": .bool(unixSockets),
        ]
        if let uid { o["uid"] = .int(Int64(uid)) }
        if let gid { o["gid"] = .int(Int64(gid)) }
        if let openFilesMax { o["open_files_max"] = .int(Int64(openFilesMax)) }
        if let processesMax { o["processes_max"] = .int(Int64(processesMax)) }
        if let memoryMax { o["memory_max"] = .int(Int64(memoryMax)) }
        if let privateTmp { o["private_tmp"] = .string(privateTmp) }
        return .object(o)
    }

    /// nil when `value` is not a box object (the host then refuses to start: a box it cannot read is not applied).
    public static func decode(_ value: JSONValue) -> BoxSpec? {
        guard case .object(let o) = value else { return nil }
        var s = BoxSpec()
        func strings(_ key: String) -> [String]? {
            guard let v = o[key] else { return [] }
            guard case .array(let a) = v else { return nil }
            var out: [String] = []
            for item in a {
                guard case .string(let t) = item else { return nil }
                out.append(t)
            }
            return out
        }
        func int(_ key: String) -> Int?? {
            guard let v = o[key] else { return .some(nil) }
            guard case .int(let n) = v, n >= 0 else { return nil }
            return .some(Int(n))
        }
        func bool(_ key: String, _ fallback: Bool) -> Bool? {
            guard let v = o[key] else { return fallback }
            guard case .bool(let b) = v else { return nil }
            return b
        }
        guard let enabled = bool("enabled", true), let core = bool("core_dumps", false),
            let unix = bool("unix_sockets", false),
            let allow = strings("syscalls_allow"), let read = strings("read_paths"), let write = strings("write_paths"),
            let procs = strings("cgroup_procs_files"), let uid = int("uid"), let gid = int("gid"),
            let nofile = int("open_files_max"), let nproc = int("processes_max"), let mem = int("memory_max")
        else { return nil }
        s.enabled = enabled
        s.coreDumps = core
        s.unixSockets = unix
        s.syscallsAllow = allow
        s.readPaths = read
        s.writePaths = write
        s.cgroupProcsFiles = procs
        if let uid {
            guard uid <= Int(UInt32.max) else { return nil }
            s.uid = UInt32(uid)
        }
        if let gid {
            guard gid <= Int(UInt32.max) else { return nil }
            s.gid = UInt32(gid)
        }
        s.openFilesMax = nofile
        s.processesMax = nproc
        s.memoryMax = mem
        if let n = o["network"] {
            guard case .string(let t) = n, let net = Network(rawValue: t) else { return nil }
            s.network = net
        }
        if let t = o["private_tmp"] {
            guard case .string(let p) = t else { return nil }
            s.privateTmp = p
        }
        return s
    }
}
