import Testing

@testable import SupervisorCore

struct ConfigDiffTests {
    func config(_ servers: [ServerConfig]) -> SupervisorConfig {
        var c = SupervisorConfig(mainFile: "/etc/mcp/supervisor.toml", stateDirectory: "/s", serversDirectory: "/d")
        c.servers = servers
        return c
    }

    @Test func addedRemovedChangedUnchanged() {
        var bChanged = makeServer("b")
        bChanged.replicas = 4
        let old = config([makeServer("a"), makeServer("b"), makeServer("c")])
        let new = config([bChanged, makeServer("c"), makeServer("d")])
        let diff = ConfigDiff(old: old, new: new)
        #expect(diff.added == ["d"])
        #expect(diff.removed == ["a"])
        #expect(diff.changed == ["b"])
        #expect(diff.unchanged == ["c"])
    }

    @Test func identicalConfigurations() {
        let c = config([makeServer("a"), makeServer("b", dependsOn: ["a"])])
        let diff = ConfigDiff(old: c, new: c)
        #expect(diff.added.isEmpty)
        #expect(diff.removed.isEmpty)
        #expect(diff.changed.isEmpty)
        #expect(Set(diff.unchanged) == ["a", "b"])
    }

    @Test func fromNothingAndToNothing() {
        let c = config([makeServer("a"), makeServer("b")])
        let up = ConfigDiff(old: config([]), new: c)
        #expect(Set(up.added) == ["a", "b"])
        #expect(up.removed.isEmpty && up.changed.isEmpty && up.unchanged.isEmpty)
        let down = ConfigDiff(old: c, new: config([]))
        #expect(Set(down.removed) == ["a", "b"])
        #expect(down.added.isEmpty && down.changed.isEmpty && down.unchanged.isEmpty)
    }

    static let mutations: [(String, @Sendable (inout ServerConfig) -> Void)] = [
        ("plugin", { $0.plugin = "/plugins/other.so" }),
        ("pluginConfig", { $0.pluginConfig = #"{"greeting":"hello"}"# }),
        ("file", { $0.file = "/etc/mcp/servers.d/renamed.toml" }),
        ("port", { $0.port = 9000 }),
        ("replicas", { $0.replicas = 2 }),
        ("restart", { $0.restart = .always }),
        ("backoff.initial", { $0.backoff.initial = 1 }),
        ("backoff.max", { $0.backoff.max = 5 }),
        ("backoff.multiplier", { $0.backoff.multiplier = 3 }),
        ("backoff.jitter", { $0.backoff.jitter = 0 }),
        ("backoff.resetAfter", { $0.backoff.resetAfter = 1 }),
        ("intensity.maxRestarts", { $0.intensity.maxRestarts = 1 }),
        ("intensity.window", { $0.intensity.window = 1 }),
        ("intensity.cooldown", { $0.intensity.cooldown = 1 }),
        ("startTimeout", { $0.startTimeout = 1 }),
        ("stopTimeout", { $0.stopTimeout = 1 }),
        ("heartbeatInterval", { $0.heartbeatInterval = 1 }),
        ("heartbeatTimeout", { $0.heartbeatTimeout += 45 }),
        ("environment", { $0.environment = ["A": "1"] }),
        ("dependsOn", { $0.dependsOn = ["x"] }),
        ("hostArguments", { $0.hostArguments = ["--call-timeout", "5"] }),
    ]

    @Test(arguments: 0..<mutations.count)
    func anyFieldChangeIsAChange(_ index: Int) {
        let (field, mutate) = Self.mutations[index]
        var changed = makeServer("s")
        mutate(&changed)
        #expect(changed != makeServer("s"), "the mutation of \(field) must change the value")
        let diff = ConfigDiff(
            old: config([makeServer("s"), makeServer("t")]), new: config([changed, makeServer("t")]))
        #expect(diff.changed == ["s"], "\(field)")
        #expect(diff.unchanged == ["t"], "\(field)")
        #expect(diff.added.isEmpty && diff.removed.isEmpty)
    }

    @Test func pluginConfigChangeFromLoadedFiles() throws {
        func load(_ greeting: String) throws -> SupervisorConfig {
            let files = [
                "/m/supervisor.toml": "",
                "/m/servers.d/a.toml": "plugin = \"a.so\"\n[config]\ngreeting = \"\(greeting)\"\n",
                "/m/servers.d/b.toml": "plugin = \"b.so\"\n",
            ]
            return try ConfigLoader(source: MemoryFileSource(files)).load(mainFile: "/m/supervisor.toml")
        }
        let diff = ConfigDiff(old: try load("hi"), new: try load("hello"))
        #expect(diff.changed == ["a"])
        #expect(diff.unchanged == ["b"])
        let same = ConfigDiff(old: try load("hi"), new: try load("hi"))
        #expect(same.changed.isEmpty)
        #expect(Set(same.unchanged) == ["a", "b"])
    }

    @Test func hostOrListenAddressChangeChangesEveryServer() {
        let old = config([makeServer("a"), makeServer("b")])
        var newHost = old
        newHost.hostExecutable = "/usr/local/bin/mcp-plugin-host"
        var d = ConfigDiff(old: old, new: newHost)
        #expect(Set(d.changed) == ["a", "b"])
        #expect(d.unchanged.isEmpty)
        var newAddress = old
        newAddress.listenAddress = "0.0.0.0"
        d = ConfigDiff(old: old, new: newAddress)
        #expect(Set(d.changed) == ["a", "b"])
        #expect(d.unchanged.isEmpty)
    }

    @Test func renameIsRemovePlusAdd() {
        let diff = ConfigDiff(old: config([makeServer("old-name")]), new: config([makeServer("new-name")]))
        #expect(diff.added == ["new-name"])
        #expect(diff.removed == ["old-name"])
        #expect(diff.changed.isEmpty && diff.unchanged.isEmpty)
    }
}
