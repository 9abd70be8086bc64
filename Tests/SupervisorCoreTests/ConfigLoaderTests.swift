import MCPProtocol
import Testing

@testable import SupervisorCore

struct ConfigLoaderTests {
    static let main = "/etc/mcp/supervisor.toml"
    static let serversDir = "/etc/mcp/servers.d"

    static func server(_ file: String) -> String { serversDir + "/" + file }

    /// Loads `main` plus `servers` (file name → text in the default servers folder).
    func load(main: String, servers: [String: String] = [:], extra: [String: String] = [:]) throws(ConfigError)
        -> SupervisorConfig
    {
        var files = extra
        files[Self.main] = main
        for (name, text) in servers { files[Self.server(name)] = text }
        return try ConfigLoader(source: MemoryFileSource(files, emptyDirectories: [Self.serversDir]))
            .load(mainFile: Self.main)
    }

    /// The error of loading, or nil (a test failure is recorded by the caller's #require).
    func loadError(main: String = "", servers: [String: String] = [:]) -> ConfigError? {
        do throws(ConfigError) {
            _ = try load(main: main, servers: servers)
            return nil
        } catch {
            return error
        }
    }

    func loadError(_ source: MemoryFileSource) -> ConfigError? {
        do throws(ConfigError) {
            _ = try ConfigLoader(source: source).load(mainFile: Self.main)
            return nil
        } catch {
            return error
        }
    }

    // MARK: A complete valid configuration

    static let fullMain = """
        # The supervisor's main file.
        state_dir = "var/state"
        servers_dir = "servers.d"
        host = "bin/mcp-plugin-host"
        listen_address = "0.0.0.0"
        control_socket = "/run/mcp/control.sock"
        port_range = [40000, 40099]

        [defaults]
        replicas = 2
        restart = "always"
        start_timeout = 5
        stop_timeout = 7.5
        heartbeat_interval = 2
        heartbeat_timeout = 6

        [defaults.backoff]
        initial = 0.5
        max = 20
        multiplier = 3
        jitter = 0.1
        reset_after = 120

        [defaults.intensity]
        max_restarts = 4
        window = 30
        cooldown = 600
        """

    static let alpha = """
        plugin = "plugins/alpha.so"
        port = 8080
        replicas = 3
        restart = "never"
        heartbeat_timeout = 9
        depends_on = ["beta"]
        host_args = ["--call-timeout", "30", "--max-sessions", "8"]

        [backoff]
        max = 10

        [config]
        greeting = "hi \\"there\\""
        count = 3
        ratio = 0.25
        enabled = true
        tags = ["a", "b"]
        nested = { deep = { x = 1 } }
        items = [{ id = 1 }, { id = 2 }]

        [env]
        API_KEY = "secret"
        "LOG.LEVEL" = "debug"
        """

    static let beta = """
        # No name: the file name is the server name.
        plugin = "/opt/plugins/beta.so"
        stop_timeout = 1

        [intensity]
        cooldown = 60
        """

    static let gamma = """
        name = "gamma"
        plugin = "../lib/gamma.so"
        restart = "on-failure"
        start_timeout = 2.5
        depends_on = ["alpha", "beta"]

        [backoff]
        initial = 1
        jitter = 0

        [intensity]
        max_restarts = 1
        window = 10
        """

    func loadFull() throws -> SupervisorConfig {
        try load(
            main: Self.fullMain,
            servers: [
                "alpha.toml": Self.alpha, "beta.toml": Self.beta, "30-gamma.toml": Self.gamma,
                "README.md": "not a server", ".hidden.toml": "this is = not even TOML",
                "notes.toml.bak": "neither",
            ])
    }

    @Test func mainSettings() throws {
        let c = try loadFull()
        #expect(c.mainFile == "/etc/mcp/supervisor.toml")
        #expect(c.stateDirectory == "/etc/mcp/var/state")
        #expect(c.serversDirectory == "/etc/mcp/servers.d")
        #expect(c.hostExecutable == "/etc/mcp/bin/mcp-plugin-host")
        #expect(c.listenAddress == "0.0.0.0")
        #expect(c.controlSocket == "/run/mcp/control.sock")
        #expect(c.portRange == 40000...40099)
    }

    @Test func onlyTomlFilesAreServers() throws {
        let c = try loadFull()
        #expect(Set(c.servers.map(\.name)) == ["alpha", "beta", "gamma"])
        #expect(c.server(named: "alpha")?.file == "/etc/mcp/servers.d/alpha.toml")
        #expect(c.server(named: "beta")?.file == "/etc/mcp/servers.d/beta.toml")
        #expect(c.server(named: "gamma")?.file == "/etc/mcp/servers.d/30-gamma.toml")
    }

    @Test func serverWithOverrides() throws {
        let c = try loadFull()
        let a = try #require(c.server(named: "alpha"))
        #expect(a.plugin == "/etc/mcp/servers.d/plugins/alpha.so")
        #expect(a.port == 8080)
        #expect(a.replicas == 3)
        #expect(a.restart == .never)
        #expect(a.dependsOn == ["beta"])
        #expect(a.hostArguments == ["--call-timeout", "30", "--max-sessions", "8"])
        #expect(a.environment == ["API_KEY": "secret", "LOG.LEVEL": "debug"])
        // From [defaults]:
        #expect(a.startTimeout == 5)
        #expect(a.stopTimeout == 7.5)
        #expect(a.heartbeatInterval == 2)
        #expect(a.heartbeatTimeout == 9)
        // [backoff] overrides only `max`; the other fields come from [defaults.backoff].
        #expect(a.backoff.max == 10)
        #expect(a.backoff.initial == 0.5)
        #expect(a.backoff.multiplier == 3)
        #expect(a.backoff.jitter == 0.1)
        #expect(a.backoff.resetAfter == 120)
        #expect(a.intensity.maxRestarts == 4)
        #expect(a.intensity.window == 30)
        #expect(a.intensity.cooldown == 600)
    }

    @Test func pluginConfigBecomesJSON() throws {
        let c = try loadFull()
        let a = try #require(c.server(named: "alpha"))
        let json = try JSONParser.parse(a.pluginConfig)
        let expected: JSONValue = [
            "greeting": "hi \"there\"",
            "count": 3,
            "ratio": .double(0.25),
            "enabled": true,
            "tags": ["a", "b"],
            "nested": ["deep": ["x": 1]],
            "items": [["id": 1], ["id": 2]],
        ]
        #expect(json == expected)
    }

    @Test func serverTakingDefaults() throws {
        let c = try loadFull()
        let b = try #require(c.server(named: "beta"))
        #expect(b.name == "beta")
        #expect(b.plugin == "/opt/plugins/beta.so")  // absolute: unchanged
        #expect(b.port == nil)  // dynamic
        #expect(b.replicas == 2)
        #expect(b.restart == .always)
        #expect(b.startTimeout == 5)
        #expect(b.stopTimeout == 1)
        #expect(b.heartbeatInterval == 2)
        #expect(b.heartbeatTimeout == 6)
        var backoff = BackoffPolicy()
        backoff.initial = 0.5
        backoff.max = 20
        backoff.multiplier = 3
        backoff.jitter = 0.1
        backoff.resetAfter = 120
        #expect(b.backoff == backoff)
        #expect(b.intensity.maxRestarts == 4)
        #expect(b.intensity.window == 30)
        #expect(b.intensity.cooldown == 60)
        #expect(b.environment.isEmpty)
        #expect(b.dependsOn.isEmpty)
        #expect(b.hostArguments.isEmpty)
        #expect(try JSONParser.parse(b.pluginConfig) == .object([:]))
    }

    @Test func serverNamedExplicitly() throws {
        let c = try loadFull()
        let g = try #require(c.server(named: "gamma"))
        #expect(g.plugin == "/etc/mcp/servers.d/../lib/gamma.so")
        #expect(g.restart == .onFailure)
        #expect(g.startTimeout == 2.5)
        #expect(g.stopTimeout == 7.5)
        #expect(g.replicas == 2)
        #expect(g.dependsOn == ["alpha", "beta"])
        #expect(g.backoff.initial == 1)
        #expect(g.backoff.jitter == 0)
        #expect(g.backoff.max == 20)
        #expect(g.backoff.multiplier == 3)
        #expect(g.intensity.maxRestarts == 1)
        #expect(g.intensity.window == 10)
        #expect(g.intensity.cooldown == 600)
    }

    @Test func minimalConfigurationUsesBuiltInDefaults() throws {
        let c = try load(main: "", servers: ["only.toml": "plugin = \"x.so\"\n"])
        #expect(c.stateDirectory == "/etc/mcp/state")
        #expect(c.serversDirectory == "/etc/mcp/servers.d")
        #expect(c.hostExecutable == nil)
        #expect(c.controlSocket == nil)
        #expect(c.listenAddress == "127.0.0.1")
        #expect(c.portRange == 39000...39999)
        // A server that sets nothing but its plugin is exactly a default ServerConfig.
        var expected = ServerConfig(
            name: "only", file: "/etc/mcp/servers.d/only.toml", plugin: "/etc/mcp/servers.d/x.so")
        expected.pluginConfig = try #require(c.servers.first?.pluginConfig)
        #expect(c.servers == [expected])
        #expect(try JSONParser.parse(expected.pluginConfig) == .object([:]))
    }

    @Test func emptyServersFolder() throws {
        let c = try load(main: "")
        #expect(c.servers.isEmpty)
    }

    @Test func mainFileWithoutAFolderResolvesAgainstDot() throws {
        let source = MemoryFileSource(["supervisor.toml": "", "./servers.d/a.toml": "plugin = \"a.so\"\n"])
        let c = try ConfigLoader(source: source).load(mainFile: "supervisor.toml")
        #expect(c.stateDirectory == "./state")
        #expect(c.servers.first?.plugin == "./servers.d/a.so")
    }

    @Test func absoluteServersFolder() throws {
        let source = MemoryFileSource([
            Self.main: "servers_dir = \"/srv/mcp\"\nstate_dir = \"/var/lib/mcp\"\n",
            "/srv/mcp/x.toml": "plugin = \"p/x.so\"\n",
        ])
        let c = try ConfigLoader(source: source).load(mainFile: Self.main)
        #expect(c.serversDirectory == "/srv/mcp")
        #expect(c.stateDirectory == "/var/lib/mcp")
        #expect(c.servers.map(\.plugin) == ["/srv/mcp/p/x.so"])
    }

    /// `SupervisorConfig.servers` is documented as "Servers sorted by name".
    @Test func serversAreSortedByName() throws {
        let c = try load(
            main: "",
            servers: [
                "a.toml": "name = \"zeta\"\nplugin = \"z.so\"\n",
                "b.toml": "name = \"alpha\"\nplugin = \"a.so\"\n",
                "c.toml": "plugin = \"c.so\"\n",
            ])
        #expect(Set(c.servers.map(\.name)) == ["zeta", "alpha", "c"])
        // Regression test (fixed): the loader keeps the order of the *file* names (a.toml, b.toml, c.toml), not the server
        // names, so a server named in its file ends up out of order.
        #expect(c.servers.map(\.name) == ["alpha", "c", "zeta"])
    }

    @Test func envKeysMayBeQuoted() throws {
        let c = try load(
            main: "", servers: ["e.toml": "plugin = \"e.so\"\n[env]\n\"WITH SPACE\" = \"1\"\nEMPTY = \"\"\n"])
        #expect(c.servers.first?.environment == ["WITH SPACE": "1", "EMPTY": ""])
    }

    // MARK: Errors: exact file, line and key

    func expectError(
        _ e: ConfigError?, file: String, line: Int?, key: String?, messageContains fragment: String? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard let e else {
            Issue.record("expected a ConfigError", sourceLocation: sourceLocation)
            return
        }
        #expect(e.file == file, sourceLocation: sourceLocation)
        #expect(e.line == line, sourceLocation: sourceLocation)
        #expect(e.key == key, sourceLocation: sourceLocation)
        if let fragment { #expect(e.message.contains(fragment), "\(e)", sourceLocation: sourceLocation) }
    }

    @Test func unknownKeyInMainFile() {
        let e = loadError(main: "state_dir = \"s\"\n\nlisten_adress = \"0.0.0.0\"\n")
        expectError(e, file: Self.main, line: 3, key: "listen_adress")
    }

    @Test func unknownKeyInDefaults() {
        let e = loadError(main: "[defaults]\nreplicas = 2\nrestrat = \"always\"\n")
        expectError(e, file: Self.main, line: 3, key: "defaults.restrat")
    }

    @Test func unknownKeyInDefaultsBackoff() {
        let e = loadError(main: "port_range = [1000, 2000]\n\n[defaults.backoff]\nmax = 5\ninital = 0.1\n")
        expectError(e, file: Self.main, line: 5, key: "defaults.backoff.inital")
    }

    @Test func unknownKeyInDefaultsIntensity() {
        let e = loadError(main: "[defaults]\n[defaults.intensity]\nwindow = 5\nmax_restart = 3\n")
        expectError(e, file: Self.main, line: 4, key: "defaults.intensity.max_restart")
    }

    @Test func unknownTableInDefaults() {
        let e = loadError(main: "[defaults]\nreplicas = 1\n\n[defaults.backof]\nmax = 5\n")
        expectError(e, file: Self.main, line: 4, key: "defaults.backof")
    }

    @Test func unknownKeyInServerFile() {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\nreplica = 2\n"])
        expectError(e, file: Self.server("web.toml"), line: 2, key: "replica")
    }

    @Test func unknownKeyInServerBackoff() {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\n\n[backoff]\nmultipler = 2\n"])
        expectError(e, file: Self.server("web.toml"), line: 4, key: "backoff.multipler")
    }

    @Test func unknownKeyInServerIntensity() {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\nintensity = { window = 1, cooldwn = 2 }\n"])
        expectError(e, file: Self.server("web.toml"), line: 2, key: "intensity.cooldwn")
    }

    @Test func mainOnlySettingInServerFileIsUnknown() {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\nlisten_address = \"::\"\n"])
        expectError(e, file: Self.server("web.toml"), line: 2, key: "listen_address")
    }

    @Test func serverOnlySettingInDefaultsIsUnknown() {
        let e = loadError(main: "[defaults]\nplugin = \"x.so\"\n")
        expectError(e, file: Self.main, line: 2, key: "defaults.plugin")
    }

    @Test(arguments: [
        ("plugin = \"w.so\"\nport = \"8080\"\n", 2, "port"),
        ("plugin = \"w.so\"\nreplicas = 1.5\n", 2, "replicas"),
        ("plugin = \"w.so\"\nrestart = true\n", 2, "restart"),
        ("plugin = \"w.so\"\nstart_timeout = \"10s\"\n", 2, "start_timeout"),
        ("plugin = 5\n", 1, "plugin"),
        ("name = 5\nplugin = \"w.so\"\n", 1, "name"),
        ("plugin = \"w.so\"\ndepends_on = \"beta\"\n", 2, "depends_on"),
        ("plugin = \"w.so\"\ndepends_on = [\"beta\", 1]\n", 2, "depends_on"),
        ("plugin = \"w.so\"\nhost_args = [\"--x\", 30]\n", 2, "host_args"),
        ("plugin = \"w.so\"\nconfig = \"{}\"\n", 2, "config"),
        ("plugin = \"w.so\"\nbackoff = 5\n", 2, "backoff"),
        ("plugin = \"w.so\"\n[backoff]\njitter = \"low\"\n", 3, "backoff.jitter"),
        ("plugin = \"w.so\"\n[intensity]\nmax_restarts = 2.5\n", 3, "intensity.max_restarts"),
        ("plugin = \"w.so\"\n[env]\nA = \"ok\"\nPORT = 8080\n", 4, "env.PORT"),
        ("plugin = \"w.so\"\nenv = [\"A=1\"]\n", 2, "env"),
    ])
    func wrongTypeInServerFile(_ text: String, _ line: Int, _ key: String) {
        let e = loadError(servers: ["web.toml": text])
        expectError(e, file: Self.server("web.toml"), line: line, key: key, messageContains: "must be")
    }

    @Test(arguments: [
        ("listen_address = 127\n", 1, "listen_address"),
        ("state_dir = [\"a\"]\n", 1, "state_dir"),
        ("port_range = \"1000-2000\"\n", 1, "port_range"),
        ("port_range = [1000, \"2000\"]\n", 1, "port_range"),
        ("defaults = 1\n", 1, "defaults"),
        ("[defaults]\nreplicas = \"two\"\n", 2, "defaults.replicas"),
        ("[defaults.backoff]\nmax = \"1m\"\n", 2, "defaults.backoff.max"),
        ("[defaults.backoff]\nmax = inf\n", 2, "defaults.backoff.max"),
    ])
    func wrongTypeInMainFile(_ text: String, _ line: Int, _ key: String) {
        expectError(loadError(main: text), file: Self.main, line: line, key: key, messageContains: "must be")
    }

    @Test(arguments: [0, 65536, -1, 100_000])
    func portOutOfRange(_ port: Int) {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\n# comment\nport = \(port)\n"])
        expectError(e, file: Self.server("web.toml"), line: 3, key: "port")
    }

    @Test(arguments: [1, 65535])
    func portAtTheEdgesOfTheRange(_ port: Int) throws {
        let c = try load(main: "", servers: ["web.toml": "plugin = \"w.so\"\nport = \(port)\n"])
        #expect(c.servers.first?.port == port)
    }

    @Test(arguments: ["[0, 100]", "[2000, 1000]", "[1000]", "[1000, 2000, 3000]", "[60000, 70000]", "[]"])
    func badPortRange(_ range: String) {
        let e = loadError(main: "state_dir = \"s\"\nport_range = \(range)\n")
        expectError(e, file: Self.main, line: 2, key: "port_range")
    }

    @Test func singlePortRangeIsAllowed() throws {
        #expect(try load(main: "port_range = [5000, 5000]\n").portRange == 5000...5000)
    }

    @Test func restartModeSometimes() {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\nrestart = \"sometimes\"\n"])
        expectError(e, file: Self.server("web.toml"), line: 2, key: "restart", messageContains: "sometimes")
    }

    @Test func restartModeSometimesInDefaults() {
        let e = loadError(main: "\n[defaults]\nrestart = \"sometimes\"\n")
        expectError(e, file: Self.main, line: 3, key: "defaults.restart", messageContains: "sometimes")
    }

    @Test(arguments: RestartMode.allCases)
    func everyRestartModeSpelling(_ mode: RestartMode) throws {
        let c = try load(main: "", servers: ["web.toml": "plugin = \"w.so\"\nrestart = \"\(mode.rawValue)\"\n"])
        #expect(c.servers.first?.restart == mode)
    }

    @Test func restartModeSpellings() {
        #expect(RestartMode(rawValue: "always") == .always)
        #expect(RestartMode(rawValue: "on-failure") == .onFailure)
        #expect(RestartMode(rawValue: "never") == .never)
        #expect(RestartMode(rawValue: "onFailure") == nil)
    }

    @Test func jitterTwo() {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\n[backoff]\ninitial = 1\njitter = 2\n"])
        expectError(e, file: Self.server("web.toml"), line: 4, key: "backoff.jitter")
    }

    @Test func jitterTwoInDefaults() {
        let e = loadError(main: "[defaults.backoff]\n\njitter = 2\n")
        expectError(e, file: Self.main, line: 3, key: "defaults.backoff.jitter")
    }

    @Test(arguments: [0.0, 1.0])
    func jitterBoundsAreInclusive(_ j: Double) throws {
        let c = try load(main: "", servers: ["w.toml": "plugin = \"w.so\"\n[backoff]\njitter = \(j)\n"])
        #expect(c.servers.first?.backoff.jitter == j)
    }

    @Test func negativeJitter() {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\nbackoff = { jitter = -0.1 }\n"])
        expectError(e, file: Self.server("web.toml"), line: 2, key: "backoff.jitter")
    }

    @Test func multiplierBelowOne() {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\n[backoff]\nmultiplier = 0.5\n"])
        expectError(e, file: Self.server("web.toml"), line: 3, key: "backoff.multiplier")
    }

    @Test func initialAboveMax() {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\n[backoff]\nmax = 1\ninitial = 5\n"])
        expectError(e, file: Self.server("web.toml"), line: 4, key: "backoff.initial")
    }

    @Test func maxBelowInitialFromDefaults() throws {
        // [defaults.backoff] initial = 5 is valid on its own; this server's max = 1 makes initial > max.
        let e = try #require(
            loadError(
                main: "[defaults.backoff]\ninitial = 5\n",
                servers: ["web.toml": "plugin = \"w.so\"\n[backoff]\nmax = 1\n"]))
        #expect(e.file == Self.server("web.toml"))
        #expect(e.key?.hasPrefix("backoff.") == true)
        // Regression test (fixed): the check names `backoff.initial` with the line of `initial` in *this* table, which is not
        // there (it came from [defaults]), so the error has no line: "web.toml: backoff.initial: must not exceed
        // backoff.max". The only offending value in this file is `max = 1` on line 3.
        #expect(e.line == 3)
        #expect(e.key == "backoff.max")
    }

    @Test func maxRestartsZero() {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\n[intensity]\nmax_restarts = 0\n"])
        expectError(e, file: Self.server("web.toml"), line: 3, key: "intensity.max_restarts")
    }

    @Test(arguments: ["start_timeout = -1", "stop_timeout = -0.5", "start_timeout = 604801"])
    func durationsOutOfRange(_ setting: String) {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\n\(setting)\n"])
        let key = String(setting.prefix { $0 != " " })
        expectError(e, file: Self.server("web.toml"), line: 2, key: key)
    }

    @Test func heartbeatIntervalTooShort() {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\n\nheartbeat_interval = 0.01\n"])
        expectError(e, file: Self.server("web.toml"), line: 3, key: "heartbeat_interval")
    }

    @Test func heartbeatIntervalTooShortInDefaults() {
        let e = loadError(main: "[defaults]\nheartbeat_interval = 0\n")
        expectError(e, file: Self.main, line: 2, key: "defaults.heartbeat_interval")
    }

    @Test(arguments: ["heartbeat_timeout = -1", "heartbeat_interval = 604801", "heartbeat_timeout = \"15s\""])
    func badHeartbeatSettings(_ setting: String) {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\n\(setting)\n"])
        expectError(e, file: Self.server("web.toml"), line: 2, key: String(setting.prefix { $0 != " " }))
    }

    @Test func shortestHeartbeatInterval() throws {
        let c = try load(main: "", servers: ["w.toml": "plugin = \"w.so\"\nheartbeat_interval = 0.05\n"])
        #expect(c.servers.first?.heartbeatInterval == 0.05)
    }

    /// The daemon checks `now - lastPong > heartbeat_timeout` every `heartbeat_interval` and sends the next ping
    /// only after that check, so with timeout <= interval a healthy replica is killed as hung at its first
    /// heartbeat, over and over until it turns fatal.
    @Test func heartbeatTimeoutNotAboveIntervalIsRejected() {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\nheartbeat_interval = 5\nheartbeat_timeout = 1\n"])
        // Regression test (fixed): the loader validates each setting alone and accepts this pair.
        #expect(e?.file == Self.server("web.toml"))
        #expect(e?.key == "heartbeat_timeout")
        #expect(e?.line == 3)
    }

    @Test(arguments: [0, 65])
    func replicasOutOfRange(_ n: Int) {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\nreplicas = \(n)\n"])
        expectError(e, file: Self.server("web.toml"), line: 2, key: "replicas")
    }

    @Test(arguments: [#""" = "x""#, #""A=B" = "x""#])
    func invalidEnvironmentNames(_ entry: String) {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\n[env]\n\(entry)\n"])
        #expect(e?.file == Self.server("web.toml"))
        #expect(e?.line == 3)
        #expect(e?.key?.hasPrefix("env.") == true)
    }

    @Test func missingPlugin() {
        let e = loadError(servers: ["web.toml": "port = 8080\nreplicas = 2\n"])
        // No line: the key is absent from the file.
        expectError(e, file: Self.server("web.toml"), line: nil, key: "plugin")
    }

    @Test(arguments: [".hidden", "has space", "slash/name", "", String(repeating: "x", count: 65), "ümlaut"])
    func invalidServerName(_ name: String) {
        let e = loadError(servers: ["web.toml": "plugin = \"w.so\"\n\nname = \"\(name)\"\n"])
        expectError(e, file: Self.server("web.toml"), line: 3, key: "name")
    }

    @Test func invalidServerNameFromTheFileName() {
        let e = loadError(servers: ["my server.toml": "plugin = \"w.so\"\n"])
        #expect(e?.file == Self.server("my server.toml"))
        #expect(e?.key == "name")
    }

    @Test func validServerNames() throws {
        let name = String(repeating: "n", count: 64)
        let c = try load(
            main: "",
            servers: [
                "a.toml": "name = \"\(name)\"\nplugin = \"a.so\"\n",
                "b.toml": "name = \"Web_1.v2-x\"\nplugin = \"b.so\"\n",
            ])
        #expect(Set(c.servers.map(\.name)) == [name, "Web_1.v2-x"])
    }

    @Test func duplicateServerNameAcrossFiles() throws {
        let e = try #require(
            loadError(servers: [
                "a.toml": "plugin = \"a.so\"\nname = \"shared\"\n",
                "b.toml": "# second\nplugin = \"b.so\"\nname = \"shared\"\n",
            ]))
        #expect(e.file == Self.server("b.toml"))
        #expect(e.key == "name")
        #expect(e.message.contains("shared"))
        #expect(e.message.contains(Self.server("a.toml")), "the message names the other file")
        // Regression test (fixed): the duplicate check runs on ServerConfig values, which keep no line numbers, so the error
        // has line nil although `name = "shared"` is on line 3 of b.toml ("every error names file, line and key").
        #expect(e.line == 3)
    }

    @Test func duplicateNameFromFileStemAndExplicitName() throws {
        let e = try #require(
            loadError(servers: ["api.toml": "plugin = \"a.so\"\n", "zz.toml": "plugin = \"b.so\"\nname = \"api\"\n"]))
        #expect(e.file == Self.server("zz.toml"))
        #expect(e.key == "name")
    }

    @Test func twoServersWithTheSameStaticPort() throws {
        let e = try #require(
            loadError(servers: [
                "a.toml": "plugin = \"a.so\"\nport = 9000\n",
                "b.toml": "plugin = \"b.so\"\n\nport = 9000\n",
            ]))
        #expect(e.file == Self.server("b.toml"))
        #expect(e.key == "port")
        #expect(e.message.contains("9000"))
        #expect(e.message.contains("a"))
        // Regression test (fixed): validate() has no line numbers; `port = 9000` is on line 3 of b.toml.
        #expect(e.line == 3)
    }

    @Test func differentStaticPortsAreFine() throws {
        let c = try load(
            main: "",
            servers: ["a.toml": "plugin = \"a.so\"\nport = 9000\n", "b.toml": "plugin = \"b.so\"\nport = 9001\n"])
        #expect(c.servers.count == 2)
    }

    @Test func unknownDependency() throws {
        let e = try #require(
            loadError(servers: [
                "a.toml": "plugin = \"a.so\"\n",
                "b.toml": "plugin = \"b.so\"\ndepends_on = [\"a\", \"nope\"]\n",
            ]))
        #expect(e.file == Self.server("b.toml"))
        #expect(e.key == "depends_on")
        #expect(e.message.contains("nope"))
        // Regression test (fixed): validate() has no line numbers; `depends_on` is on line 2 of b.toml.
        #expect(e.line == 2)
    }

    @Test func dependencyCycle() throws {
        let e = try #require(
            loadError(servers: [
                "a.toml": "plugin = \"a.so\"\ndepends_on = [\"b\"]\n",
                "b.toml": "plugin = \"b.so\"\ndepends_on = [\"c\"]\n",
                "c.toml": "plugin = \"c.so\"\n\ndepends_on = [\"a\"]\n",
                "d.toml": "plugin = \"d.so\"\ndepends_on = [\"a\"]\n",
            ]))
        #expect(e.message.contains("a -> b -> c -> a"), "\(e)")
        #expect(e.file == Self.server("a.toml"))
        #expect(e.key == "depends_on")
        // Regression test (fixed): validate() has no line numbers; a.toml's `depends_on` is on line 2.
        #expect(e.line == 2)
    }

    @Test func selfDependencyIsACycle() throws {
        let e = try #require(loadError(servers: ["a.toml": "plugin = \"a.so\"\ndepends_on = [\"a\"]\n"]))
        #expect(e.key == "depends_on")
        #expect(e.message.contains("a -> a"))
    }

    @Test func unreadableServersFolder() {
        let source = MemoryFileSource([Self.main: "# main\nservers_dir = \"/srv/missing\"\n"])
        expectError(loadError(source), file: Self.main, line: 2, key: "servers_dir", messageContains: "/srv/missing")
    }

    @Test func unreadableDefaultServersFolder() {
        let source = MemoryFileSource([Self.main: "state_dir = \"s\"\n"], unreadable: [Self.serversDir])
        // servers_dir is not written anywhere, so there is no line to name.
        expectError(loadError(source), file: Self.main, line: nil, key: "servers_dir", messageContains: Self.serversDir)
    }

    @Test func unreadableMainFile() {
        expectError(
            loadError(MemoryFileSource([:])), file: Self.main, line: nil, key: nil, messageContains: "No such file")
    }

    @Test func unreadableServerFile() {
        let source = MemoryFileSource(
            [Self.main: "", Self.server("a.toml"): "plugin = \"a.so\"\n"], unreadable: [Self.server("a.toml")])
        expectError(
            loadError(source), file: Self.server("a.toml"), line: nil, key: nil, messageContains: "Permission denied")
    }

    @Test func tomlSyntaxErrorInServerFile() throws {
        let e = loadError(
            servers: [
                "a.toml": "plugin = \"a.so\"\n",
                "b.toml": "plugin = \"b.so\"\nport = 9000\n\n[env]\nA = \"unterminated\n",
            ])
        expectError(e, file: Self.server("b.toml"), line: 5, key: nil)
    }

    @Test func tomlSyntaxErrorInMainFile() {
        let e = loadError(main: "state_dir = \"s\"\n[defaults]\nreplicas = 2\nreplicas = 3\n")
        expectError(e, file: Self.main, line: 4, key: nil)
    }

    @Test func dateInServerFileIsASyntaxError() {
        let e = loadError(servers: ["a.toml": "plugin = \"a.so\"\n[config]\nsince = 2024-01-01\n"])
        expectError(e, file: Self.server("a.toml"), line: 3, key: nil, messageContains: "date")
    }

    @Test func errorDescriptionIsFileLineKeyMessage() throws {
        let e = try #require(loadError(servers: ["web.toml": "plugin = \"w.so\"\nreplica = 2\n"]))
        #expect(e.description == "/etc/mcp/servers.d/web.toml:2: replica: \(e.message)")
        let syntax = try #require(loadError(main: "a = \n"))
        #expect(syntax.description == "/etc/mcp/supervisor.toml:1: \(syntax.message)")
    }
}
