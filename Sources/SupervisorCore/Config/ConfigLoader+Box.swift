import Contracts

#if canImport(Glibc)
    import Glibc
#endif

extension ConfigLoader {
    /// Per-server and `[defaults]` box settings: the `[sandbox]` table (docs/security.md, "The box: options").
    /// A server's table starts from the defaults' values; each key it sets replaces that value.
    func readBox(_ r: inout TableReader, into s: inout ServerConfig) throws(ConfigError) {
        // No table: the defaults' values, already checked where they were set.
        guard let t = try r.table("sandbox") else { return }
        var br = r.nested(t, "sandbox")
        let base = Path.directory(of: r.file)
        var box = s.box
        if let v = try br.bool("enabled") { box.enabled = v }
        if let v = try br.string("user") {
            guard let ids = Accounts.user(v) else {
                throw br.error(
                    "user", line: br.line("user"), "no such user '\(v)' (a name in the user database or a number)")
            }
            box.user = v
            box.uid = ids.uid
            // The user's primary group unless this table names one.
            box.group = ids.groupName ?? String(ids.gid)
            box.gid = ids.gid
        }
        if let v = try br.string("group") {
            guard let gid = Accounts.group(v) else {
                throw br.error(
                    "group", line: br.line("group"), "no such group '\(v)' (a name in the group database or a number)")
            }
            box.group = v
            box.gid = gid
        }
        if let v = try br.bool("core_dumps") { box.coreDumps = v }
        if let v = try br.bool("unix_sockets") { box.unixSockets = v }
        if let e = t["memory_max"] {
            let bytes: Int?
            let text: String
            switch e.value {
            case .integer(let i):
                bytes = Int(exactly: i)
                text = String(i)
            case .string(let s):
                bytes = Self.size(s)
                text = s
            default: bytes = nil; text = ""
            }
            _ = try? br.string("memory_max")  // marks the key as read
            guard let bytes, bytes >= 1 << 20 else {
                throw br.error(
                    "memory_max", line: e.line,
                    "must be a size of at least 1M: bytes or a number with K, M, G or T (\"256M\", \"1G\")")
            }
            box.memoryMax = bytes
            box.memoryMaxText = text
        }
        if let v = try br.int("open_files_max") {
            guard (16...1 << 20).contains(v) else {
                throw br.error("open_files_max", line: br.line("open_files_max"), "must be 16-1048576")
            }
            box.openFilesMax = v
        }
        if let v = try br.int("processes_max") {
            guard (1...4_194_304).contains(v) else {
                throw br.error("processes_max", line: br.line("processes_max"), "must be 1-4194304")
            }
            box.processesMax = v
        }
        if let e = t["cpu_max"] {
            var cores: Double?
            switch e.value {
            case .integer(let i): cores = Double(i)
            case .float(let d): cores = d
            case .string(let s) where s.hasSuffix("%"): cores = Double(s.dropLast()).map { $0 / 100 }
            default: cores = nil
            }
            _ = try? br.number("cpu_max")
            guard let c = cores, c.isFinite, c >= 0.01, c <= 1024 else {
                throw br.error(
                    "cpu_max", line: e.line, "must be a share of CPU: \"50%\" or a number of cores (0.5), 0.01-1024")
            }
            box.cpuMax = c
        }
        if let v = try br.stringArray("syscalls_allow") {
            for name in v.values where !Self.isSyscallName(name) {
                throw br.error("syscalls_allow", line: v.line, "'\(name)' is not a system call name")
            }
            box.syscallsAllow = v.values
        }
        for key in ["read_paths", "write_paths"] {
            guard let v = try br.stringArray(key) else { continue }
            let paths = v.values.map { Path.resolve($0, relativeTo: base) }
            for p in v.values where p.isEmpty || p.contains("\0") {
                throw br.error(key, line: v.line, "'\(p)' is not a path")
            }
            if key == "read_paths" { box.readPaths = paths } else { box.writePaths = paths }
        }
        if let v = try br.string("network") {
            guard let n = BoxSpec.Network(rawValue: v) else {
                throw br.error("network", line: br.line("network"), "must be outbound or none, not '\(v)'")
            }
            box.network = n
        }
        if let v = try br.bool("private_tmp") { box.privateTmp = v }
        if let v = try br.stringArray("env_files") {
            box.envFiles = v.values.map { Path.resolve($0, relativeTo: base) }
        }
        if let v = try br.stringArray("credentials") {
            for name in v.values
            where name.isEmpty || name == "." || name == ".." || name.contains("/") || name.contains("\0") {
                throw br.error("credentials", line: v.line, "'\(name)' is not a credential name")
            }
            box.credentials = v.values
        }
        try br.rejectUnknown()
        // The secrets must be the server user's or root's alone: checked against the user this table leaves.
        let key = br.line("env_files") != nil ? "env_files" : "user"
        try Self.checkEnvFiles(box, br.error(key, line: br.line(key) ?? br.line("env_files"), ""))
        s.box = box
    }

    /// Each env file is a regular file owned by root or the box's user, with no access for group or others.
    /// `at` names where to report (its message is replaced).
    static func checkEnvFiles(_ box: BoxConfig, _ at: ConfigError) throws(ConfigError) {
        for file in box.envFiles {
            var error = at
            var st = stat()
            guard stat(file, &st) == 0 else {
                error.message = "env file \(file): \(String(cString: strerror(errno)))"
                throw error
            }
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                error.message = "env file \(file) is not a regular file"
                throw error
            }
            let owner = box.uid ?? getuid()
            guard st.st_uid == 0 || st.st_uid == owner || st.st_uid == getuid() else {
                error.message =
                    "env file \(file) is owned by uid \(st.st_uid): it must be owned by root, the server's user (uid \(owner)) or the supervisor's (uid \(getuid()))"
                throw error
            }
            guard st.st_mode & 0o077 == 0 else {
                error.message =
                    "env file \(file) has mode \(String(st.st_mode & 0o7777, radix: 8)): it must not be readable or writable by group or others (chmod 600)"
                throw error
            }
        }
    }

    /// "256M", "1G", "512K", "1048576", "1.5G": bytes (binary multiples); nil if not a size.
    static func size(_ text: String) -> Int? {
        var s = Substring(text.trimmingSpaces)
        for suffix in ["iB", "B"] where s.hasSuffix(suffix) && s.count > suffix.count {
            s = s.dropLast(suffix.count)
            break
        }
        var multiplier = 1.0
        if let last = s.last,
            let m = ["K": 1024.0, "M": 1048576.0, "G": 1073741824.0, "T": 1099511627776.0][
                String(last).uppercased()]
        {
            multiplier = m
            s = s.dropLast()
        }
        guard !s.isEmpty, s.allSatisfy({ ($0 >= "0" && $0 <= "9") || $0 == "." }), let n = Double(s) else { return nil }
        let bytes = n * multiplier
        guard bytes.isFinite, bytes < 9.0e18 else { return nil }
        return Int(bytes)
    }

    static func isSyscallName(_ n: String) -> Bool {
        !n.isEmpty && n.utf8.count <= 64
            && n.unicodeScalars.allSatisfy { ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "_" }
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(String(self.drop { $0 == " " }.reversed()).drop { $0 == " " }.reversed())
    }
}

/// The user and group databases (getpwnam_r/getgrnam_r: /etc/passwd, NSS).
public enum Accounts {
    /// A name or a number; a number need not be in the database (a dynamic id): its group is then the same number.
    static func user(_ v: String) -> (uid: UInt32, gid: UInt32, groupName: String?)? {
        if let n = UInt32(v), n != UInt32.max {
            if let e = passwd(uid: n) { return (n, e.gid, groupName(e.gid)) }
            return (n, n, nil)
        }
        guard let e = passwd(name: v) else { return nil }
        return (e.uid, e.gid, groupName(e.gid))
    }

    static func group(_ v: String) -> UInt32? {
        if let n = UInt32(v), n != UInt32.max { return n }
        var g = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buf = [CChar](repeating: 0, count: 16384)
        guard getgrnam_r(v, &g, &buf, buf.count, &result) == 0, result != nil else { return nil }
        return g.gr_gid
    }

    /// The name of a group id, if the database has one.
    static func groupName(_ gid: UInt32) -> String? {
        var g = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buf = [CChar](repeating: 0, count: 16384)
        guard getgrgid_r(gid, &g, &buf, buf.count, &result) == 0, result != nil, let name = g.gr_name else {
            return nil
        }
        return String(cString: name)
    }

    /// The name of a user id, if the database has one.
    public static func userName(_ uid: UInt32) -> String? {
        var p = Glibc.passwd()
        var result: UnsafeMutablePointer<Glibc.passwd>?
        var buf = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &p, &buf, buf.count, &result) == 0, result != nil, let name = p.pw_name else {
            return nil
        }
        return String(cString: name)
    }

    private static func passwd(name: String) -> (uid: UInt32, gid: UInt32)? {
        var p = Glibc.passwd()
        var result: UnsafeMutablePointer<Glibc.passwd>?
        var buf = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(name, &p, &buf, buf.count, &result) == 0, result != nil else { return nil }
        return (p.pw_uid, p.pw_gid)
    }

    private static func passwd(uid: UInt32) -> (uid: UInt32, gid: UInt32)? {
        var p = Glibc.passwd()
        var result: UnsafeMutablePointer<Glibc.passwd>?
        var buf = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &p, &buf, buf.count, &result) == 0, result != nil else { return nil }
        return (p.pw_uid, p.pw_gid)
    }
}
