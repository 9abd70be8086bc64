import Foundation
import Testing

@testable import SupervisorCore

/// The `[sandbox]` table of server files and `[defaults]` (docs/security.md, "The box: options").
struct BoxConfigTests {
    let loader = ConfigLoaderTests()
    static let main = ConfigLoaderTests.main
    static let file = ConfigLoaderTests.server("w.toml")

    func box(_ table: String, defaults: String = "") throws -> BoxConfig {
        let main = defaults.isEmpty ? "" : "[defaults.sandbox]\n" + defaults
        let c = try loader.load(main: main, servers: ["w.toml": "plugin = \"w.so\"\n[sandbox]\n" + table])
        return try #require(c.servers.first).box
    }

    /// An error in the server file's `[sandbox]` (line 3 is its first key).
    func expectError(_ table: String, line: Int, key: String, _ contains: String) {
        let e = loader.loadError(servers: ["w.toml": "plugin = \"w.so\"\n[sandbox]\n" + table])
        loader.expectError(e, file: Self.file, line: line, key: "sandbox." + key, messageContains: contains)
    }

    @Test func defaultsWithoutTable() throws {
        let c = try loader.load(main: "", servers: ["w.toml": "plugin = \"w.so\"\n"])
        let b = try #require(c.servers.first).box
        #expect(b == BoxConfig())
        #expect(b.enabled && b.privateTmp && !b.coreDumps && b.network == .outbound && !b.unixSockets)
        #expect(b.uid == nil && b.memoryMax == nil && b.envFiles.isEmpty)
    }

    @Test func everyKey() throws {
        let b = try box(
            """
            enabled = true
            user = "nobody"
            core_dumps = true
            memory_max = "256M"
            open_files_max = 256
            processes_max = 32
            cpu_max = "50%"
            syscalls_allow = ["io_uring_setup"]
            read_paths = ["data", "/opt/x"]
            write_paths = ["/var/lib/w"]
            network = "none"
            unix_sockets = true
            private_tmp = false
            credentials = ["token"]
            """)
        #expect(b.user == "nobody" && b.uid == 65534 && b.gid == 65534 && b.group == "nogroup")
        #expect(b.coreDumps)
        #expect(b.memoryMax == 256 << 20 && b.memoryMaxText == "256M")
        #expect(b.openFilesMax == 256 && b.processesMax == 32 && b.cpuMax == 0.5)
        #expect(b.syscallsAllow == ["io_uring_setup"])
        #expect(b.readPaths == [ConfigLoaderTests.serversDir + "/data", "/opt/x"])
        #expect(b.writePaths == ["/var/lib/w"])
        #expect(b.network == .none && b.unixSockets && !b.privateTmp && b.credentials == ["token"])
    }

    @Test(arguments: [
        ("\"1G\"", 1 << 30), ("\"512K\"", nil), ("\"4M\"", 4 << 20), ("2097152", 2 << 20), ("\"1.5G\"", 3 << 29),
        ("\"64MiB\"", 64 << 20), ("\"1T\"", 1 << 40),
    ])
    func sizes(_ text: String, _ bytes: Int?) throws {
        if let bytes {
            #expect(try box("memory_max = \(text)\n").memoryMax == bytes)
        } else {
            expectError("memory_max = \(text)\n", line: 3, key: "memory_max", "at least 1M")
        }
    }

    @Test func cpuForms() throws {
        #expect(try box("cpu_max = 0.25\n").cpuMax == 0.25)
        #expect(try box("cpu_max = 2\n").cpuMax == 2)
        #expect(try box("cpu_max = \"150%\"\n").cpuMax == 1.5)
    }

    @Test func numericIDs() throws {
        let b = try box("user = \"4242\"\ngroup = \"4343\"\n")
        #expect(b.uid == 4242 && b.gid == 4343)
        let root = try box("user = \"root\"\n")
        #expect(root.uid == 0 && root.gid == 0)
    }

    @Test func defaultsMergeAndServerOverrides() throws {
        let main = "[defaults.sandbox]\nuser = \"nobody\"\nmemory_max = \"1G\"\nread_paths = [\"shared\"]\n"
        let c = try loader.load(
            main: main,
            servers: [
                "a.toml": "plugin = \"a.so\"\n",
                "b.toml": "plugin = \"b.so\"\n[sandbox]\nmemory_max = \"64M\"\nread_paths = [\"own\"]\n",
            ])
        let a = try #require(c.server(named: "a")).box
        let b = try #require(c.server(named: "b")).box
        #expect(a.uid == 65534 && a.memoryMax == 1 << 30 && a.readPaths == ["/etc/mcp/shared"])
        #expect(b.uid == 65534 && b.memoryMax == 64 << 20 && b.readPaths == [ConfigLoaderTests.serversDir + "/own"])
        let off = try box("enabled = false\n", defaults: "user = \"nobody\"\n")
        #expect(!off.enabled && off.uid == 65534)
    }

    @Test(arguments: [
        ("enabled = 1\n", "enabled", "true or false"),
        ("user = \"no-such-user-mcp\"\n", "user", "no such user 'no-such-user-mcp'"),
        ("group = \"no-such-group-mcp\"\n", "group", "no such group 'no-such-group-mcp'"),
        ("core_dumps = \"yes\"\n", "core_dumps", "true or false"),
        ("unix_sockets = 1\n", "unix_sockets", "true or false"),
        ("memory_max = \"lots\"\n", "memory_max", "a size"),
        ("memory_max = 0\n", "memory_max", "at least 1M"),
        ("open_files_max = 3\n", "open_files_max", "16-1048576"),
        ("processes_max = 0\n", "processes_max", "1-4194304"),
        ("cpu_max = \"fast\"\n", "cpu_max", "share of CPU"),
        ("cpu_max = 0\n", "cpu_max", "share of CPU"),
        ("syscalls_allow = [\"ptrace;\"]\n", "syscalls_allow", "not a system call name"),
        ("syscalls_allow = \"ptrace\"\n", "syscalls_allow", "an array of strings"),
        ("read_paths = [\"\"]\n", "read_paths", "not a path"),
        ("write_paths = [1]\n", "write_paths", "an array of strings"),
        ("network = \"inbound\"\n", "network", "outbound or none, not 'inbound'"),
        ("private_tmp = 0\n", "private_tmp", "true or false"),
        ("credentials = [\"../x\"]\n", "credentials", "not a credential name"),
        ("colour = \"red\"\n", "colour", "unknown setting"),
    ])
    func errors(_ table: String, _ key: String, _ contains: String) {
        // The bad key on the second line of the table: the line number is the key's.
        expectError("# the box\n" + table, line: 4, key: key, contains)
    }

    @Test func errorInDefaultsNamesTheMainFile() {
        let e = loader.loadError(main: "state_dir = \"s\"\n[defaults.sandbox]\nnetwork = \"lan\"\n")
        loader.expectError(e, file: Self.main, line: 3, key: "defaults.sandbox.network", messageContains: "'lan'")
    }

    // MARK: env_files (real files: owner and mode are checked with stat)

    func tempFile(_ text: String, mode: Int) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("boxcfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("secrets.env").path
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, mode_t(mode))
        return path
    }

    func remove(_ path: String) {
        try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
    }

    @Test func envFileAccepted() throws {
        let path = try tempFile("TOKEN=x\n", mode: 0o600)
        defer { remove(path) }
        #expect(try box("env_files = [\"\(path)\"]\n").envFiles == [path])
    }

    @Test func envFileReadableByOthers() throws {
        let path = try tempFile("TOKEN=x\n", mode: 0o644)
        defer { remove(path) }
        expectError(
            "env_files = [\"\(path)\"]\n", line: 3, key: "env_files",
            "must not be readable or writable by group or others")
    }

    @Test func envFileOwnedByAnotherUser() throws {
        let path = try tempFile("TOKEN=x\n", mode: 0o600)
        defer { remove(path) }
        #expect(chown(path, 4242, 4242) == 0)
        expectError("env_files = [\"\(path)\"]\n", line: 3, key: "env_files", "owned by uid 4242")
        // Owned by the server's user: accepted.
        #expect(try box("user = \"4242\"\nenv_files = [\"\(path)\"]\n").envFiles == [path])
    }

    @Test func envFileMissing() {
        expectError("env_files = [\"/nonexistent/mcp.env\"]\n", line: 3, key: "env_files", "No such file")
    }
}
