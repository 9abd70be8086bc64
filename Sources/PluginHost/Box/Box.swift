import CBox
import Contracts
import MCPProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// Applies the child's box (`BoxSpec`, docs/security.md) to this process before the plugin loads (owned by the
/// box work, issue 13). Failures are `HostFailure`s in the sandbox range (40-49) naming the step and the errno.
public enum Box {
    /// What is in force after `apply`: the fields of the one `host.box_applied` line the host logs at start.
    public struct Report: Sendable, Equatable {
        public var enabled = true
        public var uid: UInt32 = 0
        public var gid: UInt32 = 0
        public var cgroups = 0
        public var privateTmp = false
        /// 0: the kernel has no Landlock (the filesystem is not restricted).
        public var landlockABI = 0
        /// "trap" (denied calls get EPERM and one stderr line naming them), "errno" (EPERM only) or "off".
        public var seccomp = "off"
        public var seccompRules = 0
        public var network = BoxSpec.Network.outbound
        public var capabilities = "kept"
        public var noNewPrivs = false

        /// The filesystem line: "landlock" or "not restricted".
        public var filesystem: String { landlockABI > 0 ? "landlock" : "not restricted" }

        public var summary: String {
            guard enabled else { return "box off" }
            return "box applied: uid \(uid), capabilities \(capabilities), no_new_privs \(noNewPrivs ? 1 : 0), "
                + "filesystem \(filesystem)\(landlockABI > 0 ? " (ABI \(landlockABI))" : ""), "
                + "seccomp \(seccomp) (\(seccompRules) rules), network \(network.rawValue)"
                + (privateTmp ? ", private /tmp" : "") + (cgroups > 0 ? ", \(cgroups) cgroup(s)" : "")
        }

        /// Structured fields for the log line.
        public var fields: [(String, String)] {
            [
                ("mechanism", enabled ? "landlock+seccomp+capabilities" : "off"),
                ("landlock_abi", "\(landlockABI)"), ("filesystem", filesystem), ("seccomp", seccomp),
                ("seccomp_rules", "\(seccompRules)"), ("network", network.rawValue), ("uid", "\(uid)"),
                ("gid", "\(gid)"), ("capabilities", capabilities), ("no_new_privs", noNewPrivs ? "1" : "0"),
                ("private_tmp", privateTmp ? "1" : "0"), ("cgroups", "\(cgroups)"),
            ]
        }
    }

    /// Reads `MCP_BOX` and applies it; no `MCP_BOX` (a host run by hand): nothing to apply (nil). `jsonLines`:
    /// the line seccomp's SIGSYS handler writes for a denied call is one JSON object (`host.syscall_denied`, the
    /// host's `--log-format json`) instead of text.
    @discardableResult
    public static func applyFromEnvironment(jsonLines: Bool = false) throws(HostFailure) -> Report? {
        guard let raw = getenv(ChildEnvironment.box) else { return nil }
        cbox_seccomp_json_lines(jsonLines ? 1 : 0)
        let text = String(cString: raw)
        guard let value = try? JSONParser.parse(Array(text.utf8)), let spec = BoxSpec.decode(value) else {
            throw HostFailure(.boxInvalid, "\(ChildEnvironment.box) is not a valid box description")
        }
        return try apply(spec)
    }

    /// Applies `spec` in the documented order. The host is single-threaded here (the call site is before the
    /// event loops start): capset, PR_SET_NO_NEW_PRIVS and Landlock act on the calling thread only.
    @discardableResult
    public static func apply(_ spec: BoxSpec) throws(HostFailure) -> Report {
        var report = Report()
        guard spec.enabled else {
            report.enabled = false
            return report
        }
        // Checked first, so that a bad name fails before anything changed.
        for name in spec.syscallsAllow where cbox_syscall_number(name) < 0 {
            throw HostFailure(
                .boxUnknownSyscall, "box: syscalls_allow names '\(name)', not a system call of this machine")
        }
        // capset, no_new_privs and Landlock act on the calling thread (and threads it starts later) only.
        let threads = cbox_thread_count()
        if threads != 1 {
            throw HostFailure(
                .boxCapabilities,
                "box: \(threads) threads are running before the box; it would apply to one of them (start it earlier)")
        }
        // 1. cgroups. The supervisor writes the host's pid into these files while the host starts (the migration
        // waits for an RCU grace period, milliseconds, which then overlap the exec); joined only where it is not
        // there yet.
        for file in spec.cgroupProcsFiles where cbox_cgroup_member(file) == 0 {
            let e = cbox_write_file(file, "0")
            if e != 0 { throw failure(.boxCgroup, "joining the cgroup \(file)", e) }
        }
        report.cgroups = spec.cgroupProcsFiles.count
        // 2. private /tmp.
        var writePaths = spec.writePaths
        if let folder = spec.privateTmp {
            var step: UnsafePointer<CChar>?
            let e = cbox_private_tmp(folder, &step)
            if e != 0 {
                let what = step.map { String(cString: $0) } ?? "mount"
                throw failure(.boxPrivateTmp, "private /tmp from \(folder): \(what)", e)
            }
            report.privateTmp = true
            writePaths.append("/tmp")  // the private one: the plugin's scratch space
        }
        // 3. resource limits.
        let limits: [(Int32, Int?, String)] = [
            (CBOX_LIMIT_NOFILE, spec.openFilesMax, "RLIMIT_NOFILE"),
            (CBOX_LIMIT_NPROC, spec.processesMax, "RLIMIT_NPROC"),
            (CBOX_LIMIT_DATA, spec.memoryMax, "RLIMIT_DATA"),
            (CBOX_LIMIT_CORE, spec.coreDumps ? nil : 0, "RLIMIT_CORE"),
        ]
        for (which, value, name) in limits {
            guard let value else { continue }
            let e = cbox_set_limit(which, UInt64(value))
            if e != 0 { throw failure(.boxLimits, "setrlimit(\(name), \(value))", e) }
        }
        if !spec.coreDumps {
            let e = cbox_set_dumpable(0)
            if e != 0 { throw failure(.boxLimits, "prctl(PR_SET_DUMPABLE, 0)", e) }
        }
        // 4. capabilities out of the bounding and ambient sets: needs CAP_SETPCAP, so before the uid changes.
        var lastCap: Int32 = 0
        var e = cbox_drop_bounding_and_ambient(&lastCap)
        if e != 0 { throw failure(.boxCapabilities, "dropping the bounding set (PR_CAPBSET_DROP 0...\(lastCap))", e) }
        // 5. the user.
        if spec.uid != nil || spec.gid != nil {
            var step: UnsafePointer<CChar>?
            e = cbox_drop_user(spec.uid.map { Int64($0) } ?? -1, spec.gid.map { Int64($0) } ?? -1, &step)
            if e != 0 {
                let what = step.map { String(cString: $0) } ?? "setresuid"
                throw failure(
                    .boxUser,
                    "\(what) to uid \(spec.uid.map(String.init) ?? "-") gid \(spec.gid.map(String.init) ?? "-")", e)
            }
        }
        report.uid = getuid()
        report.gid = getgid()
        // 6. effective, permitted and inheritable capabilities: none, even as uid 0.
        e = cbox_clear_capabilities()
        if e != 0 { throw failure(.boxCapabilities, "capset (all sets empty)", e) }
        report.capabilities = "none"
        // 7. no new privileges (setuid bits and file capabilities are ignored by exec from here on).
        e = cbox_no_new_privs()
        if e != 0 { throw failure(.boxNoNewPrivs, "prctl(PR_SET_NO_NEW_PRIVS, 1)", e) }
        report.noNewPrivs = true
        // 8. Landlock.
        report.network = spec.network
        var abi: Int32 = 0
        var err = [CChar](repeating: 0, count: 512)
        e = withCStrings(spec.readPaths) { read in
            withCStrings(writePaths) { write in
                cbox_landlock_apply(
                    read.baseAddress, read.count, write.baseAddress, write.count, spec.network == .none ? 1 : 0, &abi,
                    &err, err.count)
            }
        }
        if e != 0 { throw failure(.boxLandlock, "Landlock: \(text(err))", e) }
        report.landlockABI = Int(abi)
        // 9. seccomp.
        var mode: UnsafePointer<CChar>?
        var rules: Int32 = 0
        e = withCStrings(spec.syscallsAllow) { allow in
            cbox_seccomp_apply(
                allow.baseAddress, allow.count, spec.network == .none ? 1 : 0, spec.unixSockets ? 1 : 0, &mode, &rules,
                &err, err.count)
        }
        if e != 0 { throw failure(.boxSeccomp, "seccomp: \(text(err))", e) }
        report.seccomp = mode.map { String(cString: $0) } ?? "errno"
        report.seccompRules = Int(rules)
        return report
    }

    /// The default seccomp deny list (the names; docs/security.md lists them too).
    public static var seccompDenyList: [String] {
        var out: [String] = []
        guard var p = cbox_seccomp_deny_list() else { return out }
        while let name = p.pointee {
            out.append(String(cString: name))
            p += 1
        }
        return out
    }

    private static func failure(_ status: HostExitStatus, _ what: String, _ e: Int32) -> HostFailure {
        let name = errnoName(e)
        return HostFailure(status, "box: \(what) failed: \(name) (\(String(cString: strerror(e))))")
    }

    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func errnoName(_ e: Int32) -> String {
        String(cString: cbox_errno_name(e))
    }

    /// Calls body with a C array of the strings (alive for the call).
    private static func withCStrings<R>(
        _ strings: [String], _ body: (UnsafeBufferPointer<UnsafePointer<CChar>?>) -> R
    ) -> R {
        let copies = strings.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers = copies.map { UnsafePointer($0) }
        return pointers.withUnsafeBufferPointer(body)
    }
}
