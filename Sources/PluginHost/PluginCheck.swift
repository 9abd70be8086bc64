import CHostSupport
import MCPProtocol
import PluginABI

#if canImport(Glibc)
    import Glibc
#endif

/// `mcp-plugin-host --check`: tells whether a plugin file will load, without serving it.
///
/// The file is read as ELF first (class, machine, type, exported entry symbol, needed libraries resolved the
/// way the dynamic loader would: RPATH, LD_LIBRARY_PATH, RUNPATH, ld.so.conf and default folders, or already
/// loaded in this process) — nothing is loaded and nothing is executed for that (never `ldd`). Only when all
/// of that passes is the plugin loaded, negotiated, created and asked for its declarations, in a child process,
/// so a crash or hang in the plugin's code is a verdict, not a dead checker.
public struct PluginCheck {
    public struct Step: Sendable {
        public var name: String
        public var ok: Bool
        public var detail: String
    }

    public var path: String
    public var steps: [Step] = []
    public var loads = false
    /// The exit status `mcp-plugin-host` would end with when serving this plugin (0 when it loads).
    public var hostStatus: Int32 = 0
    public var problem: String?
    public var elf: JSONValue = .null
    public var needed: [JSONValue] = []
    public var declarations: JSONValue = .null
    /// The trust verdict (docs/security.md): the requirement, whether it passed, the signing key and the digest.
    public var trust: JSONValue = .null
    /// Under `any`: the line the text report shows in place of a trust step.
    public var trustNote: String?

    /// - Parameter trust: what the file must prove (`--trust`, `--sha256`); it is verified the way serving does,
    ///   and the rest of the check reads the verified copy.
    public static func run(
        path: String, config: String, trust: TrustRequirement = .any, timeoutSeconds: Int = 30
    ) -> PluginCheck {
        var check = PluginCheck(path: path)
        check.inspect(config: config, requirement: trust, timeoutSeconds: timeoutSeconds)
        return check
    }

    private mutating func fail(_ name: String, _ detail: String, status: HostFailure.ExitStatus) {
        steps.append(Step(name: name, ok: false, detail: detail))
        problem = detail
        hostStatus = status.rawValue
        loads = false
    }

    private mutating func pass(_ name: String, _ detail: String) {
        steps.append(Step(name: name, ok: true, detail: detail))
    }

    private mutating func inspect(config: String, requirement: TrustRequirement, timeoutSeconds: Int) {
        let opened = open(path, O_RDONLY | O_CLOEXEC)
        var fd = opened
        guard fd >= 0 else {
            return fail("file", "cannot open the plugin file: \(String(cString: strerror(errno)))", status: .cannotOpen)
        }
        defer { close(opened) }
        var fileStatus = stat()
        guard fstat(fd, &fileStatus) == 0, (fileStatus.st_mode & S_IFMT) == S_IFREG else {
            return fail("file", "not a regular file", status: .cannotOpen)
        }
        let writable = fileStatus.st_mode & (S_IWGRP | S_IWOTH) != 0
        pass("file", "\(fileStatus.st_size) bytes" + (writable ? "; warning: writable by group or others" : ""))

        var trustReport: [String: JSONValue] = ["policy": .string(requirement.description)]
        if let expected = requirement.sha256 { trustReport["expectedSha256"] = .string(expected) }
        if let dir = requirement.keysDirectory { trustReport["trustedKeysDir"] = .string(dir) }
        let verified: VerifiedPlugin?
        do {
            verified = try PluginTrust.verify(path: path, requirement: requirement)
        } catch {
            trustReport["verified"] = .bool(false)
            trustReport["problem"] = .string(error.message)
            trust = .object(trustReport)
            return fail("trust", error.message, status: HostFailure.ExitStatus(rawValue: error.status))
        }
        defer { verified?.close() }
        if let verified {
            trustReport["verified"] = .bool(true)
            trustReport["sha256"] = .string(verified.sha256)
            if let key = verified.signedBy {
                trustReport["key"] = .string(key.fingerprint)
                trustReport["keyFile"] = .string(key.file)
            }
            trust = .object(trustReport)
            pass("trust", "\(requirement): " + verified.summary)
            fd = verified.fd  // the rest reads the verified bytes
        } else {
            let digest = PluginTrust.digest(fd: fd)
            trustReport["verified"] = .bool(false)
            trustReport["sha256"] = digest.map { .string($0) } ?? .null
            trust = .object(trustReport)
            // Not a step (nothing was checked): a line of the report, with the digest to pin in `sha256`.
            trustNote = "any: not verified, any file loads" + (digest.map { "; sha256 \($0)" } ?? "")
        }

        var info = mcph_elf_info()
        var reason = [CChar](repeating: 0, count: 512)
        let rc = mcph_elf_inspect(fd, &info, &reason, reason.count)
        let machine = String(cString: mcph_elf_machine_name(info.machine))
        elf = [
            "class": .int(Int64(info.elf_class)), "machine": .string(machine),
            "type": .string(info.type == 3 ? "shared object" : info.type == 2 ? "executable" : "other"),
        ]
        guard rc == MCPH_ELF_OK else {
            let text = reason.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            return fail("elf", text, status: rc == MCPH_ELF_READ_ERROR ? .cannotOpen : .notLoadable)
        }
        pass("elf", "64-bit \(machine) shared object" + (info.has_textrel != 0 ? " (has text relocations)" : ""))

        let majors = withUnsafeBytes(of: info.entry_major) { raw in
            (1...9).filter { raw.load(fromByteOffset: $0 * MemoryLayout<Int32>.stride, as: Int32.self) != 0 }
        }
        if !majors.contains(1) {
            if let other = majors.first {
                return fail(
                    "entry",
                    "the plugin is built for plugin ABI major \(other) (exports mcpp_negotiate_v\(other)); "
                        + "this host implements major 1 only", status: .abiMajor)
            }
            if info.entry_hidden != 0 {
                return fail(
                    "entry",
                    "mcpp_negotiate_v1 is defined but not exported (hidden visibility or local binding); "
                        + "mark it MCPP_EXPORT", status: .noEntrySymbol)
            }
            return fail("entry", "no entry symbol mcpp_negotiate_v1: not an MCP plugin", status: .noEntrySymbol)
        }
        pass("entry", "mcpp_negotiate_v1 exported")

        let names: [String] = withUnsafeBytes(of: info.needed) { raw in
            (0..<Int(info.needed_count)).map { i in
                let p = raw.baseAddress!.advanced(by: i * 128).assumingMemoryBound(to: CChar.self)
                return String(cString: p)
            }
        }
        let runpath = withUnsafeBytes(of: info.runpath) {
            String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
        let rpath = withUnsafeBytes(of: info.rpath) {
            String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
        let resolver = LibraryResolver(pluginPath: path, runpath: runpath, rpath: rpath, machine: info.machine)
        var unresolved: [String] = []
        for name in names {
            var entry: [String: JSONValue] = ["name": .string(name)]
            if let found = resolver.resolve(name) {
                entry["resolved"] = .string(found)
            } else {
                unresolved.append(name)
            }
            needed.append(.object(entry))
        }
        guard unresolved.isEmpty else {
            return fail(
                "libraries",
                "needed librar\(unresolved.count == 1 ? "y" : "ies") not found: \(unresolved.joined(separator: ", "))",
                status: .loaderRefused)
        }
        pass("libraries", names.isEmpty ? "no needed libraries" : "\(names.count) needed, all found")

        // Everything readable checks out: load it for real, in a child.
        let (status, out, err) = spawnSelf(
            ["--check-load", "--plugin", path, "--config", config] + requirement.arguments, timeoutSeconds)
        if status == 0, let summary = try? JSONParser.parse(out) {
            declarations = summary
            var abi: Int64 = 0
            if case .int(let minor) = summary["abiMinor"] ?? .null { abi = minor }
            pass("abi", "plugin ABI 1.\(abi) (host implements 1.\(PluginLoader.hostABIMinor))")
            let threading = summary["threading"]?.stringValue ?? "serial"
            let concurrency = summary["concurrency"].map { JSONWriter.string($0) } ?? "1"
            pass(
                "create",
                "\(summary["name"]?.stringValue ?? "?") \(summary["version"]?.stringValue ?? "?"), \(threading), "
                    + "concurrency \(concurrency)"
            )
            loads = true
            hostStatus = 0
            return
        }
        let line = err.split(separator: "\n").last.map(String.init) ?? ""
        let prefix = "mcp-plugin-host: \(path): "
        let detail =
            line.hasPrefix(prefix)
            ? String(line.dropFirst(prefix.count)) : (line.isEmpty ? "exit status \(status)" : line)
        let step: String
        switch status {
        case 15: step = "abi"
        case 16, 70: step = "create"
        case 17: step = "describe"
        case 30...39: step = "trust"
        case -1: step = "create"
        default: step = "load"
        }
        fail(
            step, status == -1 ? "the plugin did not finish loading within \(timeoutSeconds) s" : detail,
            status: HostFailure.ExitStatus(rawValue: status == -1 ? HostFailure.ExitStatus.hung.rawValue : status))
    }

    /// Runs this executable with `args`; returns (exit status or -1 on timeout, stdout, stderr).
    private func spawnSelf(_ args: [String], _ timeoutSeconds: Int) -> (Int32, String, String) {
        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { return (1, "", "pipe failed") }
        for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let argv = ["mcp-plugin-host"] + args
        var cargs = argv.map { strdup($0) }
        cargs.append(nil)
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/proc/self/exe", &actions, nil, &cargs, environ)
        posix_spawn_file_actions_destroy(&actions)
        for p in cargs { free(p) }
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            return (1, "", "cannot start the checker: \(String(cString: strerror(rc)))")
        }
        var out: [UInt8] = []
        var err: [UInt8] = []
        var open_ = [outPipe[0], errPipe[0]]
        let deadline = clockMillis() + timeoutSeconds * 1000
        var timedOut = false
        while !open_.isEmpty {
            let left = deadline - clockMillis()
            if left <= 0 {
                timedOut = true
                kill(pid, SIGKILL)
                break
            }
            var fds = open_.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let n = poll(&fds, nfds_t(fds.count), Int32(min(left, 1000)))
            if n <= 0 { continue }
            for f in fds where f.revents != 0 {
                var buf = [UInt8](repeating: 0, count: 65536)
                let r = read(f.fd, &buf, buf.count)
                if r <= 0 {
                    close(f.fd)
                    open_.removeAll { $0 == f.fd }
                } else if f.fd == outPipe[0] {
                    out += buf[0..<r]
                } else {
                    err += buf[0..<r]
                }
            }
        }
        for fd in open_ { close(fd) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code: Int32 = timedOut ? -1 : ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f))
        return (code, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    private func clockMillis() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }

    // MARK: Output

    public var json: JSONValue {
        var report: [String: JSONValue] = [
            "plugin": .string(path), "loads": .bool(loads), "hostExitStatus": .int(Int64(hostStatus)),
            "elf": elf, "needed": .array(needed),
            "checks": .array(
                steps.map { ["name": .string($0.name), "ok": .bool($0.ok), "detail": .string($0.detail)] }),
        ]
        if let problem { report["problem"] = .string(problem) }
        if case .object = trust { report["trust"] = trust }
        if case .object = declarations { report["declared"] = declarations }
        return .object(report)
    }

    public var text: String {
        var lines = ["plugin \(path)"]
        for step in steps { lines.append("  \(step.ok ? "ok  " : "FAIL") \(step.name): \(step.detail)") }
        if let trustNote { lines.append("       trust: \(trustNote)") }
        if case .object(let declared) = declarations {
            for key in ["tools", "resources", "resourceTemplates", "prompts"] {
                if case .array(let items) = declared[key] ?? .null {
                    let names = items.compactMap(\.stringValue)
                    lines.append("       \(key): " + (names.isEmpty ? "none" : names.joined(separator: ", ")))
                }
            }
            lines.append("       completions: \(declared["completions"] == .bool(true) ? "yes" : "no")")
        }
        lines.append(loads ? "verdict: loads" : "verdict: will not load: \(problem ?? "unknown")")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Finds a DT_NEEDED library the way ld.so does, by reading files only.
struct LibraryResolver {
    var pluginPath: String
    var runpath: String
    var rpath: String
    var machine: UInt16

    func resolve(_ name: String) -> String? {
        if name.contains("/") { return usable(name) ? name : nil }
        // Already in this process (the host's own libc, Swift runtime, ...): the loader reuses it by soname.
        var loaded = [CChar](repeating: 0, count: 1024)
        if mcph_loaded_path(name, &loaded, loaded.count) == 1 {
            return loaded.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } + " (already loaded in the host)"
        }
        var dirs: [String] = []
        if runpath.isEmpty { dirs += split(rpath) }
        if let env = getenv("LD_LIBRARY_PATH") { dirs += split(String(cString: env)) }
        dirs += split(runpath)
        dirs += ldConfDirs()
        dirs += [
            "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
        ]
        for d in dirs where !d.isEmpty {
            let candidate = d.hasSuffix("/") ? d + name : d + "/" + name
            if usable(candidate) { return candidate }
        }
        return nil
    }

    private func split(_ s: String) -> [String] {
        let origin = pluginPath.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(
            separator: "/")
        return s.split(separator: ":").map {
            String($0).replacingAll("$ORIGIN", with: origin.isEmpty ? "." : origin).replacingAll(
                "${ORIGIN}", with: origin.isEmpty ? "." : origin)
        }
    }

    /// A file the loader would accept: exists and is an ELF for this machine.
    private func usable(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var reason = [CChar](repeating: 0, count: 256)
        return mcph_elf_check(fd, &reason, reason.count) == MCPH_ELF_OK
    }

    private func ldConfDirs() -> [String] {
        var out: [String] = []
        var seen = Set<String>()
        func read(_ file: String, depth: Int) {
            guard depth < 4, seen.insert(file).inserted, let f = fopen(file, "r") else { return }
            defer { fclose(f) }
            var line = [CChar](repeating: 0, count: 1024)
            while fgets(&line, Int32(line.count), f) != nil {
                var s = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                if let hash = s.firstIndex(of: "#") { s = String(s[..<hash]) }
                let t = s.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
                guard let first = t.first else { continue }
                if first == "include", t.count > 1 {
                    for pattern in t.dropFirst() {
                        var g = glob_t()
                        if glob(String(pattern), 0, nil, &g) == 0 {
                            for i in 0..<Int(g.gl_pathc) {
                                if let p = g.gl_pathv[i] { read(String(cString: p), depth: depth + 1) }
                            }
                        }
                        globfree(&g)
                    }
                } else {
                    out.append(String(first))
                }
            }
        }
        read("/etc/ld.so.conf", depth: 0)
        return out
    }
}
