import Contracts
import MCPProtocol

/// Reads files for the loader; the daemon passes the real file system, tests pass a dictionary.
public protocol ConfigFileSource: Sendable {
    /// The file's text, or an error message ("No such file or directory").
    func read(_ path: String) -> Result<String, FileReadError>
    /// Names of the entries of a folder, or nil if it cannot be read.
    func list(_ directory: String) -> [String]?
}

public struct FileReadError: Error, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// Loads and validates the main file and every `*.toml` of the servers folder. All-or-nothing: any error means
/// no configuration (the caller keeps the one it has).
public struct ConfigLoader {
    public let source: any ConfigFileSource

    public init(source: any ConfigFileSource) { self.source = source }

    public func load(mainFile: String) throws(ConfigError) -> SupervisorConfig {
        let main = try parse(mainFile)
        let base = Path.directory(of: mainFile)
        var r = TableReader(table: main, file: mainFile, prefix: "")
        let stateDir = Path.resolve(try r.string("state_dir") ?? "state", relativeTo: base)
        let serversDir = Path.resolve(try r.string("servers_dir") ?? "servers.d", relativeTo: base)
        var config = SupervisorConfig(mainFile: mainFile, stateDirectory: stateDir, serversDirectory: serversDir)
        config.hostExecutable = try r.string("host").map { Path.resolve($0, relativeTo: base) }
        config.listenAddress = try r.string("listen_address") ?? "127.0.0.1"
        config.controlSocket = try r.string("control_socket").map { Path.resolve($0, relativeTo: base) }
        config.controlGroup = try r.string("control_group")
        config.controlReadGroup = try r.string("control_read_group")
        if let range = try r.intArray("port_range") {
            guard range.values.count == 2, range.values[0] >= 1, range.values[1] <= 65535,
                range.values[0] <= range.values[1]
            else {
                throw r.error("port_range", line: range.line, "must be [first, last] with 1 <= first <= last <= 65535")
            }
            config.portRange = range.values[0]...range.values[1]
        }
        try readMetrics(&r, into: &config)
        try readTrustMain(&r, into: &config)
        var gatewayGroups: [String: [String]] = [:]
        var groupLines: [String: Int] = [:]
        var gatewayComposites: [(CompositeTool, Int)] = []
        let gateway = try readGateway(
            &r, main: main, file: mainFile, groups: &gatewayGroups, groupLines: &groupLines,
            composites: &gatewayComposites, listenAddress: config.listenAddress)
        var defaults = ServerConfig(name: "", file: mainFile, plugin: "")
        if let d = try r.table("defaults") {
            var dr = TableReader(table: d, file: mainFile, prefix: "defaults.")
            try readPolicies(&dr, into: &defaults)
            try dr.rejectUnknown()
        }
        try r.rejectUnknown()

        guard let names = source.list(serversDir) else {
            throw ConfigError(
                file: mainFile, line: main["servers_dir"]?.line, key: "servers_dir",
                message: "cannot read the servers folder \(serversDir)")
        }
        var servers: [ServerConfig] = []
        var seen: [String: String] = [:]
        var lines: [String: [String: Int]] = [:]
        for name in names.sorted() where name.hasSuffix(".toml") && !name.hasPrefix(".") {
            let file = Path.join(serversDir, name)
            let (s, keyLines) = try loadServer(file: file, defaults: defaults)
            if let other = seen[s.name] {
                throw ConfigError(
                    file: file, line: keyLines["name"], key: "name",
                    message: "server '\(s.name)' is already defined in \(other)")
            }
            seen[s.name] = file
            lines[s.name] = keyLines
            servers.append(s)
        }
        if let gateway {
            if let other = seen[GatewaySettings.serverName] {
                throw ConfigError(
                    file: other, line: lines[GatewaySettings.serverName]?["name"], key: "name",
                    message:
                        "'\(GatewaySettings.serverName)' is the gateway's name ([gateway] in \(mainFile)); give this server another one"
                )
            }
            try checkGatewayPrefixes(servers, lines: lines)
            let prefixes = Set(servers.map(\.gatewayPrefix))
            for (composite, line) in gatewayComposites {
                for (i, step) in composite.steps.enumerated() {
                    let prefix = CompositeTool.prefix(of: step.tool)
                    guard prefixes.contains(prefix) else {
                        throw ConfigError(
                            file: mainFile, line: line, key: "gateway.composites.\(composite.name).steps[\(i)].tool",
                            message:
                                "'\(step.tool)': no server has the prefix '\(prefix)' (prefixes: \(prefixes.sorted().joined(separator: ", ")))"
                        )
                    }
                }
            }
            let known = Set(servers.map(\.group).filter { !$0.isEmpty })
            for group in gatewayGroups.keys.sorted() where !known.contains(group) {
                throw ConfigError(
                    file: mainFile, line: groupLines[group], key: "gateway.groups.\(group)",
                    message:
                        "no server is in group '\(group)' (groups: \(known.isEmpty ? "none" : known.sorted().joined(separator: ", ")))"
                )
            }
            config.gateway = GatewaySettings()
            servers.append(gateway)
            lines[GatewaySettings.serverName] = [:]
        }
        config.servers = servers.sorted { $0.name < $1.name }
        try validate(config, lines: lines)
        try resolveTrust(&config, main: main, lines: lines)
        return config
    }

    private func parse(_ file: String) throws(ConfigError) -> TOMLTable {
        let text: String
        switch source.read(file) {
        case .success(let t): text = t
        case .failure(let e): throw ConfigError(file: file, line: nil, key: nil, message: "cannot read: \(e.message)")
        }
        do { return try TOMLParser.parse(text) } catch {
            throw ConfigError(file: file, line: error.line, key: nil, message: error.message)
        }
    }

    /// One server file: the server and the line of each top-level key (for errors found across files).
    private func loadServer(file: String, defaults: ServerConfig) throws(ConfigError) -> (ServerConfig, [String: Int]) {
        let t = try parse(file)
        var keyLines: [String: Int] = [:]
        for e in t.entries { keyLines[e.key] = e.line }
        var r = TableReader(table: t, file: file, prefix: "")
        let stem = String(Path.lastComponent(file).dropLast(".toml".count))
        let name = try r.string("name") ?? stem
        guard Self.isValidName(name) else {
            throw r.error(
                "name", line: t["name"]?.line,
                "'\(name)' is not a valid server name (letters, digits, '-', '_', '.', at most 64, not starting with '.')"
            )
        }
        let plugin = try r.string("plugin")
        let command = try r.stringArray("command")
        var s = defaults
        s.name = name
        s.file = file
        switch (plugin, command) {
        case (nil, nil):
            throw ConfigError(
                file: file, line: nil, key: "plugin",
                message:
                    "is required (path of the plugin .so), or command = [\"program\", \"arg\", ...] for an MCP program")
        case (.some, .some):
            throw r.error(
                "command", line: t["command"]?.line,
                "cannot be combined with plugin: a server runs either a plugin or a program; remove one of them")
        case (let plugin?, nil):
            s.plugin = Path.resolve(plugin, relativeTo: Path.directory(of: file))
        case (nil, let command?):
            try readCommand(&r, command: command.values, table: t, into: &s)
        }
        if !s.isCommand {
            for key in ["transport", "working_directory", "path"] where t[key] != nil {
                throw r.error(key, line: t[key]?.line, "is for a command server (command = [...]), not a plugin")
            }
        }
        if let port = try r.int("port") {
            guard (1...65535).contains(port) else { throw r.error("port", line: t["port"]?.line, "must be 1-65535") }
            s.port = port
        }
        try readPolicies(&r, into: &s)
        if let c = try r.table("config") {
            guard !s.isCommand else {
                throw r.error(
                    "config", line: t["config"]?.line,
                    "is a plugin's configuration; a program takes its settings in command = [...] and [env]")
            }
            s.pluginConfig = JSONWriter.string(Self.json(.table(c)))
        }
        if let env = try r.table("env") {
            for e in env.entries {
                guard case .string(let v) = e.value else {
                    throw ConfigError(
                        file: file, line: e.line, key: "env.\(e.key)",
                        message: "must be a string, not \(e.value.typeName)")
                }
                guard !e.key.isEmpty, !e.key.contains("="), !e.key.contains("\0") else {
                    throw ConfigError(
                        file: file, line: e.line, key: "env.\(e.key)", message: "is not a valid variable name")
                }
                s.environment[e.key] = v
            }
        }
        if let group = try r.string("group") {
            guard Self.isValidGroup(group) else {
                throw r.error(
                    "group", line: t["group"]?.line,
                    "'\(group)' is not a valid group (1-64 of letters, digits, '_', '.', '-')")
            }
            s.group = group
        }
        if let deps = try r.stringArray("depends_on") { s.dependsOn = deps.values }
        if let same = try r.stringArray("equivalent_to") { s.equivalentTo = same.values }
        if let args = try r.stringArray("host_args") { s.hostArguments = args.values }
        if let alias = try r.string("alias") {
            guard Self.isValidName(alias) else {
                throw r.error(
                    "alias", line: t["alias"]?.line,
                    "'\(alias)' is not a valid alias (letters, digits, '-', '_', '.', at most 64, not starting with '.')"
                )
            }
            s.alias = alias
        }
        if s.isCommand, s.transport == .http {
            let placeholder = "{port}"
            guard
                s.command.contains(where: { $0.contains(placeholder) })
                    || s.environment.values.contains(where: { $0.contains(placeholder) })
            else {
                throw r.error(
                    "command", line: t["command"]?.line,
                    "transport = \"http\" needs \(placeholder) in the program's arguments (or in an env value): the host gives the program its private loopback port there"
                )
            }
        }
        try r.rejectUnknown()
        return (s, keyLines)
    }

    /// `command`, `transport` and `working_directory` of a command server (docs/servers.md).
    private func readCommand(_ r: inout TableReader, command: [String], table t: TOMLTable, into s: inout ServerConfig)
        throws(ConfigError)
    {
        guard let program = command.first, !program.isEmpty else {
            throw r.error(
                "command", line: t["command"]?.line, "must name a program first: command = [\"program\", \"arg\", ...]")
        }
        if let bad = command.firstIndex(where: { $0.contains("\0") }) {
            throw r.error("command", line: t["command"]?.line, "argument \(bad) holds a NUL byte")
        }
        s.plugin = ""
        s.command = command
        // A relative path to the program is relative to the file, as `plugin` is (a bare name is looked up on PATH).
        if program.contains("/"), !program.hasPrefix("/") {
            s.command[0] = Path.resolve(program, relativeTo: Path.directory(of: r.file))
        }
        for key in ["trust", "sha256"] where t[key] != nil {
            throw r.error(
                key, line: t[key]?.line,
                "checks a plugin file; a command server runs a program (command = [...]): remove \(key)")
        }
        s.trust = .any
        if let transport = try r.string("transport") {
            guard let value = CommandTransport(rawValue: transport) else {
                throw r.error("transport", line: t["transport"]?.line, "must be stdio or http, not '\(transport)'")
            }
            s.transport = value
        }
        if let path = try r.string("path") {
            guard s.transport == .http else {
                throw r.error(
                    "path", line: t["path"]?.line, "is the endpoint of an http program: set transport = \"http\"")
            }
            guard path.hasPrefix("/"), !path.contains(where: { $0 == " " || $0 == "?" || $0 == "#" || $0.isNewline })
            else {
                throw r.error(
                    "path", line: t["path"]?.line,
                    "must be a URL path starting with '/' (such as \"/mcp\"), not '\(path)'")
            }
            s.httpPath = path
        }
        if let dir = try r.string("working_directory") {
            guard !dir.isEmpty else {
                throw r.error("working_directory", line: t["working_directory"]?.line, "must name a folder")
            }
            s.workingDirectory = Path.resolve(dir, relativeTo: Path.directory(of: r.file))
        }
    }

    /// Settings shared by `[defaults]` and server files.
    private func readPolicies(_ r: inout TableReader, into s: inout ServerConfig) throws(ConfigError) {
        try readTrust(&r, into: &s)
        try readBox(&r, into: &s)
        if let replicas = try r.int("replicas") {
            guard (1...64).contains(replicas) else {
                throw r.error("replicas", line: r.line("replicas"), "must be 1-64")
            }
            s.replicas = replicas
        }
        if let mode = try r.string("restart") {
            guard let m = RestartMode(rawValue: mode) else {
                throw r.error("restart", line: r.line("restart"), "must be always, on-failure or never, not '\(mode)'")
            }
            s.restart = m
        }
        if let v = try r.seconds("start_timeout") { s.startTimeout = v }
        if let v = try r.seconds("stop_timeout") { s.stopTimeout = v }
        if let v = try r.seconds("heartbeat_interval") {
            guard v >= 0.05 else {
                throw r.error("heartbeat_interval", line: r.line("heartbeat_interval"), "must be at least 0.05 seconds")
            }
            s.heartbeatInterval = v
        }
        if let v = try r.seconds("heartbeat_timeout") { s.heartbeatTimeout = v }
        if s.heartbeatTimeout <= s.heartbeatInterval {
            let key = r.line("heartbeat_timeout") != nil ? "heartbeat_timeout" : "heartbeat_interval"
            if r.line(key) != nil {
                throw r.error(
                    key, line: r.line(key),
                    "heartbeat_timeout (\(s.heartbeatTimeout) s) must be longer than heartbeat_interval (\(s.heartbeatInterval) s)"
                )
            }
        }
        if let b = try r.table("backoff") {
            var br = r.nested(b, "backoff")
            if let v = try br.seconds("initial") { s.backoff.initial = v }
            if let v = try br.seconds("max") { s.backoff.max = v }
            if let v = try br.number("multiplier") {
                guard v >= 1 else { throw br.error("multiplier", line: br.line("multiplier"), "must be at least 1") }
                s.backoff.multiplier = v
            }
            if let v = try br.number("jitter") {
                guard (0...1).contains(v) else {
                    throw br.error("jitter", line: br.line("jitter"), "must be between 0 and 1")
                }
                s.backoff.jitter = v
            }
            if let v = try br.seconds("reset_after") { s.backoff.resetAfter = v }
            guard s.backoff.initial <= s.backoff.max else {
                // Name the key this table set (the other may come from [defaults]).
                if br.line("initial") == nil, let l = br.line("max") {
                    throw br.error("max", line: l, "must not be below backoff.initial (\(s.backoff.initial))")
                }
                throw br.error("initial", line: br.line("initial"), "must not exceed backoff.max (\(s.backoff.max))")
            }
            try br.rejectUnknown()
        }
        if let i = try r.table("intensity") {
            var ir = r.nested(i, "intensity")
            if let v = try ir.int("max_restarts") {
                guard v >= 1 else {
                    throw ir.error("max_restarts", line: ir.line("max_restarts"), "must be at least 1")
                }
                s.intensity.maxRestarts = v
            }
            if let v = try ir.seconds("window") { s.intensity.window = v }
            if let v = try ir.seconds("cooldown") { s.intensity.cooldown = v }
            try ir.rejectUnknown()
        }
        if let h = try r.table("health") {
            var hr = r.nested(h, "health")
            if let v = try hr.string("level") {
                guard let level = HealthLevel(rawValue: v) else {
                    throw hr.error("level", line: hr.line("level"), "must be basic, detailed or diagnostic, not '\(v)'")
                }
                s.health.level = level
            }
            if let v = try hr.seconds("interval") {
                guard v == 0 || v >= 0.05 else {
                    throw hr.error("interval", line: hr.line("interval"), "must be 0 (off) or at least 0.05 seconds")
                }
                s.health.interval = v
            }
            if let v = try hr.seconds("timeout") {
                guard v >= 0.01 else {
                    throw hr.error("timeout", line: hr.line("timeout"), "must be at least 0.01 seconds")
                }
                s.health.timeout = v
            }
            if let v = try hr.seconds("degraded_latency") { s.health.degradedLatency = v }
            if let v = try hr.int("failures") {
                guard (1...1000).contains(v) else {
                    throw hr.error("failures", line: hr.line("failures"), "must be 1-1000")
                }
                s.health.failures = v
            }
            if let v = try hr.int("successes") {
                guard (1...1000).contains(v) else {
                    throw hr.error("successes", line: hr.line("successes"), "must be 1-1000")
                }
                s.health.successes = v
            }
            guard s.health.degradedLatency < s.health.timeout else {
                let key = hr.line("degraded_latency") != nil ? "degraded_latency" : "timeout"
                throw hr.error(
                    key, line: hr.line(key),
                    "degraded_latency (\(s.health.degradedLatency) s) must be below timeout (\(s.health.timeout) s)")
            }
            try hr.rejectUnknown()
        }
    }

    /// `metrics_listen`, `metrics_allow_remote`, `metrics_scrape_timeout` (the main file; docs/metrics.md).
    private func readMetrics(_ r: inout TableReader, into config: inout SupervisorConfig) throws(ConfigError) {
        config.metricsAllowRemote = try r.bool("metrics_allow_remote") ?? false
        if let v = try r.seconds("metrics_scrape_timeout") {
            guard v >= 0.01, v <= 60 else {
                throw r.error(
                    "metrics_scrape_timeout", line: r.line("metrics_scrape_timeout"), "must be 0.01-60 seconds")
            }
            config.metricsScrapeTimeout = v
        }
        guard let text = try r.string("metrics_listen") else { return }
        switch MetricsAddress.parse(text) {
        case .failure(let why):
            throw r.error(
                "metrics_listen", line: r.line("metrics_listen"),
                "'\(text)' is not an address: \(why.reason) (use \"127.0.0.1:9464\" or \"[::1]:9464\")")
        case .success(let address):
            guard address.isLoopback || config.metricsAllowRemote else {
                throw r.error(
                    "metrics_listen", line: r.line("metrics_listen"),
                    "\(address) is not a loopback address: the metrics and status pages would be open to the network "
                        + "without authentication; set metrics_allow_remote = true to allow it")
            }
            config.metricsListen = address
        }
    }

    /// A `group` value: 1-64 of [A-Za-z0-9_.-].
    static func isValidGroup(_ g: String) -> Bool {
        guard !g.isEmpty, g.utf8.count <= 64 else { return false }
        return g.unicodeScalars.allSatisfy {
            ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "-" || $0 == "_"
                || $0 == "."
        }
    }

    /// A listening address only this machine can reach (127.0.0.0/8, ::1).
    static func isLoopback(_ address: String) -> Bool {
        address.hasPrefix("127.") || address == "::1" || address == "[::1]" || address == "localhost"
    }

    /// `[gateway]`: the gateway as a server of its own (its port, restarts and health like any server's).
    private func readGateway(
        _ r: inout TableReader, main: TOMLTable, file: String, groups gatewayGroups: inout [String: [String]],
        groupLines: inout [String: Int], composites gatewayComposites: inout [(CompositeTool, Int)],
        listenAddress: String
    ) throws(ConfigError) -> ServerConfig? {
        guard let t = try r.table("gateway") else { return nil }
        var g = TableReader(table: t, file: file, prefix: "gateway.")
        var s = ServerConfig(name: GatewaySettings.serverName, file: file, plugin: "")
        s.isGateway = true
        if let port = try g.int("port") {
            guard (1...65535).contains(port) else { throw g.error("port", line: t["port"]?.line, "must be 1-65535") }
            s.port = port
        }
        if let args = try g.stringArray("args") { s.hostArguments = args.values }
        // `[gateway.sandbox]`: the gateway's box, the same keys as a server's `[sandbox]` (docs/security.md).
        try readBox(&g, into: &s)
        // The edge (docs/gateway.md, "Edge").
        if let origins = try g.stringArray("cors_origins") {
            for o in origins.values {
                guard o.hasPrefix("http://") || o.hasPrefix("https://"), !o.hasSuffix("/"), !o.contains(" ") else {
                    throw g.error(
                        "cors_origins", line: origins.line,
                        "'\(o)' is not an origin (scheme://host[:port], no path, e.g. https://app.example.com)")
                }
                s.hostArguments += ["--cors-origin", o]
            }
        }
        if let gzip = try g.bool("gzip"), !gzip { s.hostArguments += ["--no-gzip"] }
        if let tokenFile = try g.string("bearer_token_file") {
            let path = Path.resolve(tokenFile, relativeTo: Path.directory(of: file))
            s.hostArguments += ["--bearer-token-file", path]
            s.bearerTokenFile = path
        }
        // TLS (docs/gateway.md, "TLS"): both files or neither; a gateway other hosts can reach needs TLS and a
        // token unless the admin says otherwise.
        let certificate = try g.string("tls_certificate")
        let key = try g.string("tls_key")
        if (certificate == nil) != (key == nil) {
            let missing = certificate == nil ? "tls_certificate" : "tls_key"
            let given = certificate == nil ? "tls_key" : "tls_certificate"
            throw g.error(missing, line: t[given]?.line, "is missing: \(given) needs it (both or neither)")
        }
        if let certificate, let key {
            s.hostArguments += [
                "--tls-certificate", Path.resolve(certificate, relativeTo: Path.directory(of: file)),
                "--tls-key", Path.resolve(key, relativeTo: Path.directory(of: file)),
            ]
        }
        let insecure = try g.bool("insecure_remote") ?? false
        if !Self.isLoopback(listenAddress), !insecure, certificate == nil || s.bearerTokenFile == nil {
            throw g.error(
                certificate == nil ? "tls_certificate" : "bearer_token_file", line: nil,
                "is needed: listen_address \(listenAddress) lets other hosts reach the gateway, so it needs tls_certificate, tls_key and bearer_token_file (or insecure_remote = true, e.g. behind a TLS proxy)"
            )
        }
        if let rate = try g.int("rate_limit") {
            guard rate > 0 else { throw g.error("rate_limit", line: t["rate_limit"]?.line, "must be at least 1") }
            s.hostArguments += ["--rate-limit", String(rate)]
        }
        if let burst = try g.int("rate_burst") {
            guard burst > 0, t["rate_limit"] != nil else {
                throw g.error("rate_burst", line: t["rate_burst"]?.line, "must be at least 1, and goes with rate_limit")
            }
            s.hostArguments += ["--rate-burst", String(burst)]
        }
        if let ttls = try g.table("cache_ttl") {
            for e in ttls.entries {
                let key = "gateway.cache_ttl.\(e.key)"
                let seconds: Double
                switch e.value {
                case .integer(let i): seconds = Double(i)
                case .float(let f): seconds = f
                default:
                    throw ConfigError(
                        file: file, line: e.line, key: key,
                        message: "must be a number of seconds, not \(e.value.typeName)")
                }
                guard seconds > 0, seconds <= 86400 else {
                    throw ConfigError(
                        file: file, line: e.line, key: key, message: "must be more than 0 and at most 86400")
                }
                guard e.key.contains(GatewaySettings.separator) else {
                    throw ConfigError(
                        file: file, line: e.line, key: key,
                        message:
                            "'\(e.key)' is not a gateway name (<server>\(GatewaySettings.separator)<tool>, docs/gateway.md)"
                    )
                }
                s.hostArguments += ["--cache-ttl", "\(e.key)=\(seconds)"]
            }
        }
        if let limits = try g.table("rate_limits") {
            for e in limits.entries {
                let key = "gateway.rate_limits.\(e.key)"
                let rate: Double
                switch e.value {
                case .integer(let i): rate = Double(i)
                case .float(let f): rate = f
                default:
                    throw ConfigError(
                        file: file, line: e.line, key: key, message: "must be calls per second, not \(e.value.typeName)"
                    )
                }
                guard rate > 0 else {
                    throw ConfigError(file: file, line: e.line, key: key, message: "must be more than 0")
                }
                s.hostArguments += ["--tool-rate-limit", "\(e.key)=\(rate)"]
            }
        }
        if let composites = try g.table("composites") {
            for e in composites.entries {
                let key = "gateway.composites.\(e.key)"
                let composite: CompositeTool
                do { composite = try CompositeTool.parse(name: e.key, Self.json(e.value)) } catch {
                    throw ConfigError(
                        file: file, line: e.line, key: error.key.isEmpty ? key : key + "." + error.key,
                        message: error.message)
                }
                gatewayComposites.append((composite, e.line))
                s.hostArguments += ["--composite", "\(e.key)=\(JSONWriter.string(composite.json))"]
            }
        }
        if let groups = try g.table("groups") {
            var allow: [String: [String]] = [:]
            for e in groups.entries {
                guard case .table(let t) = e.value else {
                    throw ConfigError(
                        file: file, line: e.line, key: "gateway.groups.\(e.key)",
                        message: "must be a table ([gateway.groups.\(e.key)] with tools = [...])")
                }
                guard Self.isValidGroup(e.key) else {
                    throw ConfigError(
                        file: file, line: e.line, key: "gateway.groups.\(e.key)",
                        message: "'\(e.key)' is not a valid group (1-64 of letters, digits, '_', '.', '-')")
                }
                var gr = TableReader(table: t, file: file, prefix: "gateway.groups.\(e.key).")
                let listed = try gr.stringArray("tools")?.values
                let tools = listed ?? []
                for tool in tools where !tool.contains(GatewaySettings.separator) {
                    throw gr.error(
                        "tools", line: t["tools"]?.line,
                        "'\(tool)' is not a gateway name (<server>\(GatewaySettings.separator)<tool>, docs/gateway.md)")
                }
                try gr.rejectUnknown()
                groupLines[e.key] = e.line
                gatewayGroups[e.key] = tools
                if listed != nil { allow[e.key] = tools }  // without `tools`: every tool of the group
            }
            for (group, tools) in allow.sorted(by: { $0.key < $1.key }) {
                for tool in tools { s.hostArguments += ["--allow", "\(group)=\(tool)"] }
                if tools.isEmpty { s.hostArguments += ["--allow", "\(group)="] }
            }
        }
        try g.rejectUnknown()
        return s
    }

    /// Each server's prefix on the gateway (its alias, else its name) is unique and free of the separator, so a
    /// name on the gateway belongs to one server only (docs/gateway.md, "Names").
    private func checkGatewayPrefixes(_ servers: [ServerConfig], lines: [String: [String: Int]]) throws(ConfigError) {
        var owners: [String: String] = [:]
        for s in servers {
            let key = s.alias == nil ? "name" : "alias"
            let prefix = s.gatewayPrefix
            if prefix.contains(GatewaySettings.separator) {
                throw ConfigError(
                    file: s.file, line: lines[s.name]?[key], key: key,
                    message:
                        "'\(prefix)' contains '\(GatewaySettings.separator)', which separates a server from its tools on the gateway; set alias = \"...\" without it"
                )
            }
            if let other = owners[prefix] {
                throw ConfigError(
                    file: s.file, line: lines[s.name]?[key], key: key,
                    message:
                        "'\(prefix)' is already the gateway prefix of server '\(other)'; set a different alias")
            }
            owners[prefix] = s.name
        }
    }

    static func isValidName(_ n: String) -> Bool {
        guard !n.isEmpty, n.utf8.count <= 64, !n.hasPrefix(".") else { return false }
        return n.unicodeScalars.allSatisfy {
            ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "-" || $0 == "_"
                || $0 == "."
        }
    }

    private func validate(_ c: SupervisorConfig, lines: [String: [String: Int]]) throws(ConfigError) {
        var ports: [Int: String] = [:]
        for s in c.servers {
            if let p = s.port {
                if let other = ports[p] {
                    throw ConfigError(
                        file: s.file, line: lines[s.name]?["port"], key: "port",
                        message: "port \(p) is also the port of server '\(other)'")
                }
                ports[p] = s.name
            }
            for other in s.equivalentTo
            where other == s.name || c.server(named: other) == nil || other == GatewaySettings.serverName {
                throw ConfigError(
                    file: s.file, line: lines[s.name]?["equivalent_to"], key: "equivalent_to",
                    message: other == s.name ? "a server is not equivalent to itself" : "unknown server '\(other)'")
            }
            for d in s.dependsOn where c.server(named: d) == nil {
                throw ConfigError(
                    file: s.file, line: lines[s.name]?["depends_on"], key: "depends_on",
                    message: "unknown server '\(d)'")
            }
        }
        if let cycle = DependencyOrder.findCycle(c.servers) {
            let s = c.server(named: cycle[0])!
            throw ConfigError(
                file: s.file, line: lines[s.name]?["depends_on"], key: "depends_on",
                message: "dependency cycle: " + cycle.joined(separator: " -> "))
        }
    }

    /// The `[config]` table as JSON for the plugin.
    static func json(_ v: TOMLValue) -> JSONValue {
        switch v {
        case .string(let s): return .string(s)
        case .integer(let i): return .int(i)
        case .float(let d): return d.isFinite ? .double(d) : .string(d.isNaN ? "nan" : d > 0 ? "inf" : "-inf")
        case .bool(let b): return .bool(b)
        case .array(let a): return .array(a.map(json))
        case .table(let t):
            var o: [String: JSONValue] = [:]
            for e in t.entries { o[e.key] = json(e.value) }
            return .object(o)
        }
    }
}

/// Typed access to a table's keys that remembers which keys were read, so unknown keys (typos) are errors.
struct TableReader {
    let table: TOMLTable
    let file: String
    let prefix: String
    private(set) var used = Set<String>()

    init(table: TOMLTable, file: String, prefix: String) {
        self.table = table
        self.file = file
        self.prefix = prefix
    }

    func nested(_ t: TOMLTable, _ key: String) -> TableReader {
        TableReader(table: t, file: file, prefix: prefix + key + ".")
    }

    func line(_ key: String) -> Int? { table[key]?.line }

    func error(_ key: String, line: Int?, _ message: String) -> ConfigError {
        ConfigError(file: file, line: line ?? table[key]?.line, key: prefix + key, message: message)
    }

    private mutating func get(_ key: String) -> TOMLTable.Entry? {
        used.insert(key)
        return table[key]
    }

    private func wrongType(_ e: TOMLTable.Entry, _ expected: String) -> ConfigError {
        ConfigError(
            file: file, line: e.line, key: prefix + e.key, message: "must be \(expected), not \(e.value.typeName)")
    }

    mutating func string(_ key: String) throws(ConfigError) -> String? {
        guard let e = get(key) else { return nil }
        guard case .string(let s) = e.value else { throw wrongType(e, "a string") }
        return s
    }

    mutating func int(_ key: String) throws(ConfigError) -> Int? {
        guard let e = get(key) else { return nil }
        guard case .integer(let i) = e.value, let v = Int(exactly: i) else { throw wrongType(e, "an integer") }
        return v
    }

    mutating func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let e = get(key) else { return nil }
        guard case .bool(let b) = e.value else { throw wrongType(e, "true or false") }
        return b
    }

    mutating func number(_ key: String) throws(ConfigError) -> Double? {
        guard let e = get(key) else { return nil }
        switch e.value {
        case .integer(let i): return Double(i)
        case .float(let d) where d.isFinite: return d
        case .float:
            throw ConfigError(file: file, line: e.line, key: prefix + e.key, message: "must be a finite number")
        default: throw wrongType(e, "a number")
        }
    }

    /// A duration in seconds: a non-negative number.
    mutating func seconds(_ key: String) throws(ConfigError) -> Double? {
        guard let v = try number(key) else { return nil }
        guard v >= 0, v <= 86400 * 7 else {
            throw ConfigError(
                file: file, line: table[key]?.line, key: prefix + key, message: "must be between 0 and 604800 seconds")
        }
        return v
    }

    mutating func table(_ key: String) throws(ConfigError) -> TOMLTable? {
        guard let e = get(key) else { return nil }
        guard case .table(let t) = e.value else { throw wrongType(e, "a table") }
        return t
    }

    mutating func stringArray(_ key: String) throws(ConfigError) -> (values: [String], line: Int)? {
        guard let e = get(key) else { return nil }
        guard case .array(let a) = e.value else { throw wrongType(e, "an array of strings") }
        var out: [String] = []
        for item in a {
            guard case .string(let s) = item else { throw wrongType(e, "an array of strings") }
            out.append(s)
        }
        return (out, e.line)
    }

    mutating func intArray(_ key: String) throws(ConfigError) -> (values: [Int], line: Int)? {
        guard let e = get(key) else { return nil }
        guard case .array(let a) = e.value else { throw wrongType(e, "an array of integers") }
        var out: [Int] = []
        for item in a {
            guard case .integer(let i) = item, let v = Int(exactly: i) else {
                throw wrongType(e, "an array of integers")
            }
            out.append(v)
        }
        return (out, e.line)
    }

    func rejectUnknown() throws(ConfigError) {
        for e in table.entries where !used.contains(e.key) {
            throw ConfigError(file: file, line: e.line, key: prefix + e.key, message: "unknown setting")
        }
    }
}

/// Path arithmetic on strings (no Foundation).
public enum Path {
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let d = String(path[..<slash])
        return d.isEmpty ? "/" : d
    }

    public static func lastComponent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    public static func join(_ a: String, _ b: String) -> String { a.hasSuffix("/") ? a + b : a + "/" + b }

    public static func resolve(_ p: String, relativeTo base: String) -> String { p.hasPrefix("/") ? p : join(base, p) }
}
