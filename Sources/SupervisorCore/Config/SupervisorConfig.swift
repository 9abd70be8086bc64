/// How a server's replicas are restarted when they exit.
public enum RestartMode: String, Sendable, Equatable, CaseIterable {
    /// Restart after every exit (clean or not).
    case always
    /// Restart after a failure (non-zero status, signal, hang, start timeout); a clean exit stays exited.
    case onFailure = "on-failure"
    /// Never restart.
    case never
}

/// Exponential backoff with jitter and a cap, reset after a stable run.
public struct BackoffPolicy: Sendable, Equatable {
    public var initial: Double = 0.1
    public var max: Double = 30
    public var multiplier: Double = 2
    /// Fraction of the delay added or removed at random (0.2 = ±20 %).
    public var jitter: Double = 0.2
    /// A replica that ran this long without exiting starts again from `initial`.
    public var resetAfter: Double = 60

    public init() {}

    /// Delay before restart number `attempt` (0-based), given `random` in [0, 1).
    public func delay(attempt: Int, random: Double) -> Double {
        var d = initial
        for _ in 0..<Swift.min(Swift.max(0, attempt), 64) {
            d *= multiplier
            if d >= max { break }
        }
        d = Swift.min(d, max)
        let factor = 1 + jitter * (2 * random - 1)
        return Swift.max(0, d * factor)
    }
}

/// Restart intensity: more than `maxRestarts` restarts within `window` seconds makes the server fatal;
/// a fatal server is tried again after `cooldown` seconds.
public struct IntensityPolicy: Sendable, Equatable {
    public var maxRestarts: Int = 5
    public var window: Double = 60
    public var cooldown: Double = 300

    public init() {}
}

/// How a command server's program speaks MCP (docs/servers.md).
public enum CommandTransport: String, Sendable, Equatable {
    /// Newline-delimited JSON-RPC on its stdin and stdout, bridged by the host.
    case stdio
    /// Streamable HTTP served by the program itself on a private loopback port (`{port}` in its arguments or
    /// variables), fronted by the host on the server's stable port.
    case http
}

/// One server: a plugin (or a command server's program) served by `replicas` host processes on one stable port.
public struct ServerConfig: Sendable, Equatable {
    public var name: String
    /// The file the server was defined in.
    public var file: String
    /// Absolute path of the plugin `.so`; "" for a command server.
    public var plugin: String
    /// A command server (docs/servers.md): the program and its arguments (`command = [...]`); empty for a plugin.
    public var command: [String] = []
    /// How the host talks to the command's program (`transport`).
    public var transport: CommandTransport = .stdio
    /// An http program's MCP endpoint path (`path`).
    public var httpPath = "/mcp"
    /// The program's working directory (`working_directory`, absolute); nil: the supervisor's.
    public var workingDirectory: String?

    /// The name this server's tools, resources and prompts carry on the gateway (`alias`; docs/gateway.md); nil:
    /// its name.
    public var alias: String?
    /// `equivalent_to`: servers with the same tools (docs/gateway.md, "Equivalent servers"): the gateway serves
    /// them under one prefix and spreads calls over them by health, failing over between them.
    public var equivalentTo: [String] = []
    /// Whether this is the gateway itself (`[gateway]` in the main file), not a server of the servers folder.
    public var isGateway = false

    /// Whether this server runs a program rather than a plugin.
    public var isCommand: Bool { !command.isEmpty }
    /// The prefix of its names on the gateway.
    public var gatewayPrefix: String { alias ?? name }
    /// What the server runs, for messages: the plugin's path or the command line.
    public var shownTarget: String { isCommand ? command.joined(separator: " ") : plugin }
    /// Plugin configuration as JSON text (from the `[config]` table).
    public var pluginConfig: String = "{}"
    /// A static port, or nil for one from the supervisor's range (kept across restarts in the state folder).
    public var port: Int?
    public var replicas: Int = 1
    public var restart: RestartMode = .onFailure
    public var backoff = BackoffPolicy()
    public var intensity = IntensityPolicy()
    public var startTimeout: Double = 10
    public var stopTimeout: Double = 10
    /// How often the supervisor pings a running replica on its control channel.
    public var heartbeatInterval: Double = 20
    /// A replica that has not answered a ping for this long is hung: it is killed and restarted.
    public var heartbeatTimeout: Double = 60
    /// Health probing (`[health]`).
    public var health = HealthConfig()
    public var environment: [String: String] = [:]
    public var dependsOn: [String] = []
    /// Extra `mcp-plugin-host` arguments (`--call-timeout 30`, ...).
    public var hostArguments: [String] = []
    /// The gateway's `bearer_token_file` (absolute): the supervisor's probe of its port sends the token too.
    public var bearerTokenFile: String?
    /// The `group` label on every series of this server (docs/metrics.md); "" when none.
    public var group = ""
    /// Which plugin files this server may load (docs/security.md); resolved against `trusted_keys_dir`.
    public var trust: TrustPolicy = .any
    /// The child's box (docs/security.md).
    public var box = BoxConfig()

    public init(name: String, file: String, plugin: String) {
        self.name = name
        self.file = file
        self.plugin = plugin
    }
}

/// The whole configuration: the main file's settings and every server from the drop-in folder.
public struct SupervisorConfig: Sendable, Equatable {
    public var mainFile: String
    public var stateDirectory: String
    public var serversDirectory: String
    /// The `mcp-plugin-host` executable; nil means "next to mcp-supervisor".
    public var hostExecutable: String?
    public var listenAddress: String = "127.0.0.1"
    public var portRange: ClosedRange<Int> = 39000...39999
    /// The admin control socket (`control_socket`); nil means `<state_dir>/control.sock`.
    public var controlSocket: String?
    /// The group whose members may call changing methods on the control socket (`control_group`).
    public var controlGroup: String?
    /// The group whose members may read (version, status, health, ports, logs) through the control socket
    /// (`control_read_group`). When set, the socket is open to every local user (0666) and the supervisor checks
    /// each caller's groups: admins may do everything, members of this group read, anyone else nothing.
    public var controlReadGroup: String?
    /// The metrics listener (`metrics_listen`, docs/metrics.md); nil: off.
    public var metricsListen: MetricsAddress?
    /// `metrics_allow_remote`: a non-loopback `metrics_listen` is allowed only with it.
    public var metricsAllowRemote = false
    /// How long a scrape waits for each replica's traffic counters (`metrics_scrape_timeout`, seconds).
    public var metricsScrapeTimeout: Double = 0.5
    /// `trusted_keys_dir`: the folder of trusted public keys (PEM); nil: none.
    public var trustedKeysDirectory: String?
    /// `[gateway]` (docs/gateway.md): the one MCP endpoint in front of every server; nil: none. When set, the
    /// gateway is also in `servers`, as the server named `GatewaySettings.serverName`.
    public var gateway: GatewaySettings?
    /// Servers sorted by name.
    public var servers: [ServerConfig] = []

    public init(mainFile: String, stateDirectory: String, serversDirectory: String) {
        self.mainFile = mainFile
        self.stateDirectory = stateDirectory
        self.serversDirectory = serversDirectory
    }

    public func server(named name: String) -> ServerConfig? { servers.first { $0.name == name } }
}

/// The `[gateway]` section (docs/gateway.md).
public struct GatewaySettings: Sendable, Equatable {
    /// The name the gateway runs under (its port in the registry, its status, its series); no server file may
    /// take it.
    public static let serverName = "gateway"
    /// What separates a server's prefix from an item's own name on the gateway (`time__now`). A prefix never
    /// contains it (checked at load), so the first occurrence splits a name unambiguously.
    public static let separator = "__"

    public init() {}
}

/// Where the metrics listener binds: an IPv4 or IPv6 literal and a port (`metrics_listen = "127.0.0.1:9464"` or
/// `"[::1]:9464"`).
public struct MetricsAddress: Sendable, Equatable, CustomStringConvertible {
    /// The address without brackets ("127.0.0.1", "::1").
    public var host: String
    public var port: Int
    public var isIPv6: Bool

    public init(host: String, port: Int, isIPv6: Bool) {
        self.host = host
        self.port = port
        self.isIPv6 = isIPv6
    }

    /// `host:port`, `[v6]:port`.
    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// 127.0.0.0/8, ::1, or an IPv4-mapped 127.x address.
    public var isLoopback: Bool {
        if !isIPv6 { return host.hasPrefix("127.") }
        guard let groups = Self.ipv6Groups(host) else { return false }
        if groups == [0, 0, 0, 0, 0, 0, 0, 1] { return true }
        return groups[0..<5].allSatisfy { $0 == 0 } && groups[5] == 0xffff && groups[6] >> 8 == 127
    }

    /// Why a text is not an address.
    public struct ParseError: Error, Sendable, Equatable {
        public var reason: String
    }

    /// Parses `a.b.c.d:port` or `[v6]:port`, or says why it is not one.
    public static func parse(_ text: String) -> Result<MetricsAddress, ParseError> {
        let host: String
        let portText: Substring
        let v6: Bool
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                return .failure(ParseError(reason: "missing ']' after the IPv6 address"))
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return .failure(ParseError(reason: "missing ':PORT' after ']'")) }
            portText = rest.dropFirst()
            guard ipv6Groups(host) != nil else {
                return .failure(ParseError(reason: "'\(host)' is not an IPv6 address"))
            }
            v6 = true
        } else {
            guard let colon = text.lastIndex(of: ":") else { return .failure(ParseError(reason: "missing ':PORT'")) }
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else {
                return .failure(ParseError(reason: "an IPv6 address needs brackets: [\(host)]:PORT"))
            }
            guard isIPv4(host) else {
                return .failure(
                    ParseError(
                        reason: "'\(host)' is not an IPv4 address (a literal like 127.0.0.1; names are not resolved)"))
            }
            v6 = false
        }
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), portText.count <= 5,
            let port = Int(portText), (1...65535).contains(port)
        else { return .failure(ParseError(reason: "the port must be 1-65535, not '\(portText)'")) }
        return .success(MetricsAddress(host: host, port: port, isIPv6: v6))
    }

    static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4
            && parts.allSatisfy { p in
                !p.isEmpty && p.count <= 3 && p.allSatisfy { $0.isASCII && $0.isNumber } && Int(p)! <= 255
            }
    }

    /// The eight 16-bit groups of an IPv6 literal (with `::` and a trailing dotted IPv4 part), nil if it is not one.
    static func ipv6Groups(_ s: String) -> [Int]? {
        guard !s.isEmpty, s.utf8.count <= 45 else { return nil }
        func groups(_ part: Substring) -> [Int]? {
            if part.isEmpty { return [] }
            var out: [Int] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, piece) in pieces.enumerated() {
                if i == pieces.count - 1, piece.contains(".") {
                    guard isIPv4(String(piece)) else { return nil }
                    let b = piece.split(separator: ".").map { Int($0)! }
                    out += [b[0] << 8 | b[1], b[2] << 8 | b[3]]
                    continue
                }
                guard !piece.isEmpty, piece.count <= 4, piece.allSatisfy(\.isHexDigit), let v = Int(piece, radix: 16)
                else { return nil }
                out.append(v)
            }
            return out
        }
        let halves = s.split(separator: "::", omittingEmptySubsequences: false)
        switch halves.count {
        case 1:
            guard let g = groups(Substring(s)), g.count == 8 else { return nil }
            return g
        case 2:
            guard let a = groups(halves[0]), let b = groups(halves[1]), a.count + b.count <= 7
            else { return nil }
            return a + [Int](repeating: 0, count: 8 - a.count - b.count) + b
        default: return nil
        }
    }
}

/// A configuration error: what is wrong and exactly where.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var key: String?
    public var message: String

    public init(file: String, line: Int?, key: String?, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    /// `file:line: key: message`, the form compilers use, so editors can jump to it.
    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        s += ": "
        if let key { s += "\(key): " }
        return s + message
    }
}
