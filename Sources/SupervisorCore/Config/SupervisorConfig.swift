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

/// One server: a plugin served by `replicas` host processes on one stable port.
public struct ServerConfig: Sendable, Equatable {
    public var name: String
    /// The file the server was defined in.
    public var file: String
    /// Absolute path of the plugin `.so`.
    public var plugin: String
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
    /// Servers sorted by name.
    public var servers: [ServerConfig] = []

    public init(mainFile: String, stateDirectory: String, serversDirectory: String) {
        self.mainFile = mainFile
        self.stateDirectory = stateDirectory
        self.serversDirectory = serversDirectory
    }

    public func server(named name: String) -> ServerConfig? { servers.first { $0.name == name } }
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
