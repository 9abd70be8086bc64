import CSupervisorSupport
import Contracts
import Locking
import MCPProtocol
import SupervisorCore

#if canImport(Glibc)
    import Glibc
#endif

/// Turns a server's `BoxConfig` into the `BoxSpec` a replica's host applies, and prepares what the spec names:
/// the per-server state folder and private /tmp, the replica's cgroup folders, the secrets (docs/security.md,
/// "The box: options"). Owned by the box work (issue 13). Everything runs on the supervisor's queue; the lock only
/// makes the shared bookkeeping `Sendable`.
enum ChildBox {
    struct Failure: Error { let message: String }

    /// One replica's cgroup folders and what is needed to explain its end.
    private struct Leases: Sendable {
        var leaves: [ReplicaKey: Lease] = [:]
        /// Leaf folders whose rmdir failed (processes still dying): retried at every `sweep`.
        var pending: [String] = []
        var generation = 0
    }

    private struct ReplicaKey: Hashable, Sendable {
        let server: String
        let replica: Int
    }

    private struct Lease: Sendable {
        var folders: [String]
        /// The memory controller's folder and whether it is v2 (memory.events) or v1 (memory.oom_control).
        var memoryFolder: String?
        var memoryV2 = false
        var memoryMaxText: String?
    }

    private static let leases = Locked(Leases())

    /// The spec and environment for one replica (`MCP_BOX`, the env files' variables, `CREDENTIALS_DIRECTORY`).
    /// Creates the state folder and the cgroup folders; a failure is a spawn failure with this message.
    static func environment(for server: ServerConfig, replica: Int, stateDirectory: String) throws(Failure)
        -> [String: String]
    {
        let box = server.box
        var env: [String: String] = [:]
        let folder = stateFolder(server, stateDirectory: stateDirectory)
        try prepareStateFolder(folder, stateDirectory: stateDirectory, box: box)
        for file in box.envFiles {
            for (key, value) in try readEnvFile(file, box: box) { env[key] = value }
        }
        if !box.credentials.isEmpty {
            env["CREDENTIALS_DIRECTORY"] = try copyCredentials(box, into: Path.join(folder, "credentials"))
        }
        var spec = BoxSpec()
        spec.enabled = box.enabled
        guard box.enabled else {
            env[ChildEnvironment.box] = JSONWriter.string(spec.encode())
            return env
        }
        spec.uid = box.uid
        spec.gid = box.gid
        spec.coreDumps = box.coreDumps
        spec.openFilesMax = box.openFilesMax
        spec.syscallsAllow = box.syscallsAllow
        spec.network = box.network
        spec.unixSockets = box.unixSockets
        // A plugin's folder; a program's working directory and the prefixes of the program and its interpreter
        // (ProgramLookup.readPaths; anything else it reads: read_paths).
        spec.readPaths =
            (server.isCommand ? commandReadPaths(server) : [Path.directory(of: server.plugin)])
            + box.readPaths
        spec.writePaths = [folder] + box.writePaths
        // A boxed program's home is its state folder (its dotfiles and caches stay its own, as with systemd's
        // StateDirectory); `env.HOME` in the server file chooses another.
        if server.isCommand, server.environment["HOME"] == nil { env["HOME"] = folder }
        // The fixed system set the host needs after the box (BoxSpec+System.swift, the host's list).
        spec = spec.withSystemPaths()
        if box.privateTmp, privateTmpPossible(server, folder: folder) {
            let tmp = Path.join(folder, "tmp")
            try makeFolder(tmp, mode: 0o700, box: box)
            spec.privateTmp = tmp
        }
        let applied = Cgroups.detected.mechanisms(for: box)
        if box.memoryMax != nil || box.processesMax != nil || box.cpuMax != nil {
            spec.cgroupProcsFiles = try createCgroup(for: server, replica: replica)
        }
        if let memory = box.memoryMax, applied.memory == .rlimit { spec.memoryMax = memory }
        if let processes = box.processesMax, applied.processes == .rlimit { spec.processesMax = processes }
        env[ChildEnvironment.box] = JSONWriter.string(spec.encode())
        return env
    }

    /// A command server's own read paths: its working directory, then where its program and interpreter live.
    static func commandReadPaths(_ server: ServerConfig) -> [String] {
        let searchPath =
            server.environment["PATH"] ?? getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        return (server.workingDirectory.map { [$0] } ?? [])
            + ProgramLookup.readPaths(
                command: server.command, searchPath: searchPath, workingDirectory: server.workingDirectory)
    }

    // MARK: Folders

    private static func prepareStateFolder(_ folder: String, stateDirectory: String, box: BoxConfig) throws(Failure) {
        _ = mkdir(stateDirectory, 0o750)
        let servers = Path.join(stateDirectory, "servers")
        // Traversable, not listable: a boxed user reaches its own folder and no other's.
        if mkdir(servers, 0o711) != 0, errno != EEXIST { throw failure("cannot create \(servers)") }
        if let uid = box.uid, uid != 0 {
            // The user must be able to traverse state_dir to reach its folder (only x for others: nothing in
            // state_dir becomes readable; the files keep their own modes).
            var st = stat()
            if stat(stateDirectory, &st) == 0, st.st_mode & 0o001 == 0 {
                _ = chmod(stateDirectory, (st.st_mode & 0o7777) | 0o001)
            }
        }
        try makeFolder(folder, mode: 0o700, box: box)
    }

    /// mkdir (if absent), then mode and owner as the box says (the server's user, else the supervisor's).
    private static func makeFolder(_ path: String, mode: mode_t, box: BoxConfig) throws(Failure) {
        if mkdir(path, mode) != 0, errno != EEXIST { throw failure("cannot create \(path)") }
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw Failure(message: "\(path) is not a folder")
        }
        let uid = box.uid ?? getuid()
        let gid = box.gid ?? getgid()
        // The mode while the folder is still ours (chmod is the owner's, or CAP_FOWNER's), then the owner.
        if st.st_uid == getuid(), st.st_mode & 0o7777 != mode, chmod(path, mode) != 0 {
            throw failure("cannot chmod \(path)")
        }
        if st.st_uid != uid || st.st_gid != gid, chown(path, uid, gid) != 0 { throw failure("cannot chown \(path)") }
        if st.st_uid != getuid(), st.st_mode & 0o7777 != mode, chmod(path, mode) != 0 {
            throw failure("cannot chmod \(path)")
        }
    }

    private static func failure(_ what: String) -> Failure {
        Failure(message: "\(what): \(String(cString: strerror(errno)))")
    }

    // MARK: Secrets

    /// KEY=VALUE lines ('#' comments and blank lines skipped, one pair of surrounding quotes removed), read at
    /// every spawn, so a changed secret needs a restart, not a reload. Checked again as it is opened.
    static func readEnvFile(_ file: String, box: BoxConfig) throws(Failure) -> [(String, String)] {
        let fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw failure("env file \(file)") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw Failure(message: "env file \(file) is not a regular file")
        }
        let owner = box.uid ?? getuid()
        guard st.st_uid == 0 || st.st_uid == owner || st.st_uid == getuid(), st.st_mode & 0o077 == 0 else {
            throw Failure(
                message:
                    "env file \(file) must be owned by root, uid \(owner) or the supervisor's uid \(getuid()) with no access for group or others (it is uid \(st.st_uid), mode \(String(st.st_mode & 0o7777, radix: 8)))"
            )
        }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 { throw failure("env file \(file)") }
            if n == 0 { break }
            bytes += buf[0..<n]
            if bytes.count > 1 << 20 { throw Failure(message: "env file \(file) is larger than 1 MiB") }
        }
        var out: [(String, String)] = []
        for (index, raw) in String(decoding: bytes, as: UTF8.self).split(
            separator: "\n", omittingEmptySubsequences: false
        ).enumerated() {
            var line = Substring(raw)
            if line.hasSuffix("\r") { line = line.dropLast() }
            while line.first == " " || line.first == "\t" { line = line.dropFirst() }
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = line.dropFirst("export ".count) }
            guard let eq = line.firstIndex(of: "=") else {
                throw Failure(message: "env file \(file):\(index + 1): not a KEY=VALUE line")
            }
            let key = String(line[..<eq])
            var value = line[line.index(after: eq)...]
            if value.count >= 2, let q = value.first, q == "\"" || q == "'", value.last == q {
                value = value.dropFirst().dropLast()
            }
            guard !key.isEmpty, !key.contains(" "), !key.contains("\0") else {
                throw Failure(message: "env file \(file):\(index + 1): '\(key)' is not a variable name")
            }
            guard !key.hasPrefix("MCP_") else {
                throw Failure(message: "env file \(file):\(index + 1): \(key): MCP_ variables are the supervisor's")
            }
            out.append((key, String(value)))
        }
        return out
    }

    /// Copies the named credentials from the supervisor's `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`)
    /// into `folder` (0500, files 0400, owned by the server's user); returns the folder for the child's
    /// `CREDENTIALS_DIRECTORY`.
    private static func copyCredentials(_ box: BoxConfig, into folder: String) throws(Failure) -> String {
        guard let raw = getenv("CREDENTIALS_DIRECTORY"), raw.pointee != 0 else {
            throw Failure(
                message:
                    "credentials \(box.credentials.joined(separator: ", ")): the supervisor has no $CREDENTIALS_DIRECTORY (LoadCredential= in its unit)"
            )
        }
        let source = String(cString: raw)
        var writable = box
        writable.uid = nil
        writable.gid = nil
        try makeFolder(folder, mode: 0o700, box: writable)
        for name in box.credentials {
            let from = Path.join(source, name)
            let to = Path.join(folder, name)
            let fd = open(from, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw failure("credential '\(name)' (\(from))") }
            defer { close(fd) }
            var bytes: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 16384)
            while true {
                let n = read(fd, &buf, buf.count)
                if n < 0 { throw failure("credential '\(name)'") }
                if n == 0 { break }
                bytes += buf[0..<n]
            }
            let rc = bytes.withUnsafeBytes { mcps_write_atomic(to, $0.baseAddress, $0.count, 0o400) }
            guard rc == 0 else { throw Failure(message: "cannot write \(to): \(String(cString: strerror(rc)))") }
            if let uid = box.uid { _ = chown(to, uid, box.gid ?? getgid()) }
        }
        try makeFolder(folder, mode: 0o500, box: box)
        return folder
    }

    // MARK: Cgroups

    /// Creates `<supervisor's cgroup>/mcp-supervisor-<pid>/<server>/<replica>.<n>` in each controller the box
    /// uses and writes its limits; returns the files the host joins.
    private static func createCgroup(for server: ServerConfig, replica: Int) throws(Failure) -> [String] {
        let box = server.box
        let cg = Cgroups.detected
        let key = ReplicaKey(server: server.name, replica: replica)
        release(server: server.name, replica: replica)
        let generation = leases.withLock { l in
            l.generation += 1
            return l.generation
        }
        let leaf = "\(replica).\(generation)"
        var lease = Lease(folders: [], memoryMaxText: box.memoryMaxText)
        var procs: [String] = []
        do throws(Failure) {
            if let base = cg.v2Base {
                let folder = try cg.v2Leaf(base, server: server.name, leaf: leaf)
                lease.folders.append(folder)
                if let m = box.memoryMax, cg.v2Controllers.contains("memory") {
                    try write(Path.join(folder, "memory.max"), String(m))
                    _ = try? write(Path.join(folder, "memory.swap.max"), "0")
                    lease.memoryFolder = folder
                    lease.memoryV2 = true
                }
                if let p = box.processesMax, cg.v2Controllers.contains("pids") {
                    try write(Path.join(folder, "pids.max"), String(p))
                }
                if let c = box.cpuMax, cg.v2Controllers.contains("cpu") {
                    try write(Path.join(folder, "cpu.max"), "\(Int(c * 100_000)) 100000")
                }
                procs.append(Path.join(folder, "cgroup.procs"))
            } else {
                for (controller, base) in cg.v1Bases {
                    let wanted: Bool
                    switch controller {
                    case "memory": wanted = box.memoryMax != nil
                    case "pids": wanted = box.processesMax != nil
                    default: wanted = box.cpuMax != nil
                    }
                    guard wanted else { continue }
                    let folder = try Cgroups.makePath(base, [Cgroups.topName, server.name, leaf])
                    lease.folders.append(folder)
                    switch controller {
                    case "memory":
                        let m = box.memoryMax!
                        try write(Path.join(folder, "memory.limit_in_bytes"), String(m))
                        // No swapping around the limit where swap accounting exists.
                        _ = try? write(Path.join(folder, "memory.memsw.limit_in_bytes"), String(m))
                        lease.memoryFolder = folder
                    case "pids": try write(Path.join(folder, "pids.max"), String(box.processesMax!))
                    default:
                        try write(Path.join(folder, "cpu.cfs_period_us"), "100000")
                        try write(Path.join(folder, "cpu.cfs_quota_us"), String(Int(box.cpuMax! * 100_000)))
                    }
                    procs.append(Path.join(folder, "cgroup.procs"))
                }
            }
        } catch {
            leases.withLock { $0.leaves[key] = lease }
            release(server: server.name, replica: replica)
            throw error
        }
        leases.withLock { $0.leaves[key] = lease }
        return procs
    }

    private static func write(_ path: String, _ text: String) throws(Failure) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot open \(path)") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw failure("cannot write '\(text)' to \(path)")
        }
    }

    /// The replica's process ended: why, if its cgroup knows ("killed: out of memory (memory_max 256M)" when the
    /// memory controller's OOM killer fired), read before its folders are removed.
    static func outOfMemory(server: String, replica: Int) -> String? {
        guard let lease = leases.withLock({ $0.leaves[ReplicaKey(server: server, replica: replica)] }),
            let folder = lease.memoryFolder
        else { return nil }
        let file = Path.join(folder, lease.memoryV2 ? "memory.events" : "memory.oom_control")
        guard let text = Cgroups.read(file) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == "oom_kill", let n = Int(parts[1]), n > 0 {
                return "killed: out of memory (memory_max \(lease.memoryMaxText ?? "?"))"
            }
        }
        return nil
    }

    /// Removes the replica's cgroup folders (after killing anything still in them), then its server's folder
    /// and the supervisor's own when empty. A folder still busy is retried at the next `sweep`.
    static func release(server: String, replica: Int) {
        guard
            let lease = leases.withLock({ $0.leaves.removeValue(forKey: ReplicaKey(server: server, replica: replica)) })
        else { return }
        for folder in lease.folders { remove(folder) }
    }

    /// Retries the removals that found processes still dying.
    static func sweep() {
        let pending = leases.withLock { l in
            let p = l.pending
            l.pending = []
            return p
        }
        for folder in pending { remove(folder) }
    }

    private static func remove(_ folder: String) {
        if let text = Cgroups.read(Path.join(folder, "cgroup.procs")) {
            for line in text.split(separator: "\n") { if let pid = Int32(line), pid > 0 { _ = kill(pid, SIGKILL) } }
        }
        if rmdir(folder) != 0, errno != ENOENT {
            leases.withLock { $0.pending.append(folder) }
            return
        }
        // The server's folder, then the supervisor's: only once empty (rmdir refuses otherwise).
        let serverFolder = Path.directory(of: folder)
        if rmdir(serverFolder) == 0 { _ = rmdir(Path.directory(of: serverFolder)) }
    }

    // MARK: Status

    /// `box` in `mcpctl status`: whether the box is on and which mechanism applies each limit.
    /// A private /tmp hides the host's /tmp: not possible without CAP_SYS_ADMIN, nor when the plugin, a read or
    /// write path or the server's state folder is under /tmp (the box would hide what it must reach).
    static func privateTmpPossible(_ server: ServerConfig, folder: String) -> Bool {
        guard canMountPrivateTmp else { return false }
        let paths =
            [server.plugin, server.workingDirectory ?? "", folder] + server.box.readPaths + server.box.writePaths
        return !paths.contains { $0 == "/tmp" || $0.hasPrefix("/tmp/") }
    }

    /// The server's state folder (`<state_dir>/servers/<name>`).
    static func stateFolder(_ server: ServerConfig, stateDirectory: String) -> String {
        Path.join(Path.join(stateDirectory, "servers"), server.name)
    }

    static func statusJSON(_ server: ServerConfig, stateDirectory: String) -> JSONValue {
        let box = server.box
        guard box.enabled else { return .object(["enabled": .bool(false)]) }
        let m = Cgroups.detected.mechanisms(for: box)
        var o: [String: JSONValue] = [
            "enabled": .bool(true), "memory": .string(m.memory.text), "processes": .string(m.processes.text),
            "cpu": .string(m.cpu.text), "network": .string(box.network.rawValue),
            "private_tmp": .bool(
                box.privateTmp
                    && privateTmpPossible(server, folder: stateFolder(server, stateDirectory: stateDirectory))),
        ]
        let abi = landlockABI
        o["filesystem"] = .string(abi > 0 ? "landlock abi \(abi)" : "filesystem not restricted")
        let uid = box.uid ?? getuid()
        o["user"] = .string(box.user.map { Accounts.userName(uid) ?? $0 } ?? (Accounts.userName(uid) ?? String(uid)))
        return .object(o)
    }

    static let landlockABI = Int(mcps_landlock_abi())

    /// "Where possible": the host's mount namespace needs CAP_SYS_ADMIN, which it has from us (root, or the
    /// unit's ambient set). Without it the box has no private /tmp (and status says so) rather than failing.
    static let canMountPrivateTmp: Bool = {
        guard let text = Cgroups.read("/proc/self/status") else { return false }
        for line in text.split(separator: "\n") where line.hasPrefix("CapEff:") {
            let hex = line.dropFirst("CapEff:".count).trimmingPrefix(while: { $0 == " " || $0 == "\t" })
            guard let caps = UInt64(hex, radix: 16) else { return false }
            return caps & (1 << 21) != 0  // CAP_SYS_ADMIN
        }
        return false
    }()
}

/// Which cgroup mechanism the supervisor may use (docs/security.md): a v2 subtree it may write to (systemd
/// `Delegate=yes`), else the v1 memory, pids and cpu hierarchies where its own cgroup in them is writable.
struct Cgroups: Sendable {
    enum Mechanism: Sendable, Equatable {
        case v1, v2, rlimit, none, unlimited
        var text: String {
            switch self {
            case .v1: return "cgroup v1"
            case .v2: return "cgroup v2"
            case .rlimit: return "rlimit"
            case .none: return "not limited (no cgroup controller)"
            case .unlimited: return "no limit set"
            }
        }
    }

    /// The supervisor's own v2 cgroup folder when it is writable with controllers; nil: v2 not usable.
    var v2Base: String?
    var v2Controllers: Set<String> = []
    /// controller → the supervisor's own folder in that v1 hierarchy (writable).
    var v1Bases: [(String, String)] = []

    static let topName = "mcp-supervisor-\(getpid())"
    static let detected = detect()

    func has(_ controller: String) -> Mechanism? {
        if v2Base != nil { return v2Controllers.contains(controller) ? .v2 : nil }
        return v1Bases.contains { $0.0 == controller } ? .v1 : nil
    }

    func mechanisms(for box: BoxConfig) -> (memory: Mechanism, processes: Mechanism, cpu: Mechanism) {
        let memory: Mechanism = box.memoryMax == nil ? .unlimited : has("memory") ?? .rlimit
        let nonRoot = (box.uid ?? getuid()) != 0
        let processes: Mechanism =
            box.processesMax == nil ? .unlimited : has("pids") ?? (nonRoot ? .rlimit : .none)
        let cpu: Mechanism = box.cpuMax == nil ? .unlimited : has("cpu") ?? .none
        return (memory, processes, cpu)
    }

    static func detect() -> Cgroups {
        var result = Cgroups()
        guard let own = read("/proc/self/cgroup"), let mountinfo = read("/proc/self/mountinfo") else { return result }
        // mountinfo: "... mountpoint ... - fstype source superoptions"
        var v2Mount: String?
        var v1Mounts: [String: String] = [:]
        for line in mountinfo.split(separator: "\n") {
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2 else { continue }
            let left = halves[0].split(separator: " ")
            let right = halves[1].split(separator: " ")
            guard left.count >= 5, right.count >= 3 else { continue }
            let mountPoint = String(left[4])
            if right[0] == "cgroup2" {
                if v2Mount == nil { v2Mount = mountPoint }
            } else if right[0] == "cgroup" {
                for option in right[2].split(separator: ",") where ["memory", "pids", "cpu"].contains(String(option)) {
                    v1Mounts[String(option)] = mountPoint
                }
            }
        }
        var v1Paths: [String: String] = [:]
        var v2Path: String?
        for line in own.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[0] == "0" && parts[1].isEmpty {
                v2Path = String(parts[2])
            } else {
                for c in parts[1].split(separator: ",") { v1Paths[String(c)] = String(parts[2]) }
            }
        }
        if let mount = v2Mount, let path = v2Path {
            let base = path == "/" ? mount : mount + path
            let controllers = Set(
                (read(Path.join(base, "cgroup.controllers")) ?? "").split(whereSeparator: \.isWhitespace).map(
                    String.init)
            )
            .intersection(["memory", "pids", "cpu"])
            if !controllers.isEmpty, access(base, W_OK) == 0,
                access(Path.join(base, "cgroup.subtree_control"), W_OK) == 0
            {
                result.v2Base = base
                result.v2Controllers = controllers
                return result
            }
        }
        for controller in ["memory", "pids", "cpu"] {
            guard let mount = v1Mounts[controller], let path = v1Paths[controller] else { continue }
            let base = path == "/" ? mount : mount + path
            if access(base, W_OK) == 0 { result.v1Bases.append((controller, base)) }
        }
        return result
    }

    /// v2: the supervisor leaves its folder for a leaf of its own (no process may sit in a folder whose
    /// controllers are delegated further), then each level down enables the controllers for the next.
    func v2Leaf(_ base: String, server: String, leaf: String) throws(ChildBox.Failure) -> String {
        let enable = v2Controllers.sorted().map { "+" + $0 }.joined(separator: " ")
        if let procs = Cgroups.read(Path.join(base, "cgroup.procs")), !procs.isEmpty {
            let own = try Cgroups.makePath(base, ["supervisor"])
            try Cgroups.writeFile(Path.join(own, "cgroup.procs"), "0")
        }
        try Cgroups.writeFile(Path.join(base, "cgroup.subtree_control"), enable)
        let top = try Cgroups.makePath(base, [Cgroups.topName])
        try Cgroups.writeFile(Path.join(top, "cgroup.subtree_control"), enable)
        let serverFolder = try Cgroups.makePath(top, [server])
        try Cgroups.writeFile(Path.join(serverFolder, "cgroup.subtree_control"), enable)
        return try Cgroups.makePath(serverFolder, [leaf])
    }

    static func makePath(_ base: String, _ parts: [String]) throws(ChildBox.Failure) -> String {
        var path = base
        for part in parts {
            path = Path.join(path, part)
            if mkdir(path, 0o755) != 0, errno != EEXIST {
                throw ChildBox.Failure(message: "cannot create cgroup \(path): \(String(cString: strerror(errno)))")
            }
        }
        return path
    }

    static func writeFile(_ path: String, _ text: String) throws(ChildBox.Failure) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ChildBox.Failure(message: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw ChildBox.Failure(message: "cannot write '\(text)' to \(path): \(String(cString: strerror(errno)))")
        }
    }

    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = Glibc.read(fd, &buf, buf.count)
            if n <= 0 { break }
            bytes += buf[0..<n]
            if bytes.count > 1 << 20 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Removes what a supervisor that died without cleaning up left: `mcp-supervisor-<pid>` folders of dead
    /// pids, depth first (rmdir only removes a cgroup with no process in it).
    static func removeStale() {
        var bases = detected.v1Bases.map(\.1)
        if let v2 = detected.v2Base { bases.append(v2) }
        for base in bases {
            for name in list(base) where name.hasPrefix("mcp-supervisor-") {
                guard let pid = Int32(name.dropFirst("mcp-supervisor-".count)), pid != getpid(),
                    kill(pid, 0) != 0, errno == ESRCH
                else { continue }
                removeTree(Path.join(base, name))
            }
        }
    }

    private static func removeTree(_ path: String) {
        for name in list(path) {
            let child = Path.join(path, name)
            var st = stat()
            if lstat(child, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR { removeTree(child) }
        }
        _ = rmdir(path)
    }

    private static func list(_ directory: String) -> [String] {
        guard let d = opendir(directory) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) {
                String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != "..", e.pointee.d_type == UInt8(DT_DIR) { names.append(name) }
        }
        return names
    }
}
