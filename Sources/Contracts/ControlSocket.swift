import MCPProtocol

/// The supervisor's admin control socket (docs/mcpctl.md): JSON-RPC 2.0, one message per line. The server
/// (`ControlServer`) and the client (`mcpctl`) both speak it through these types.
public enum ControlProtocol {
    /// The supervisor's version, reported by `version`.
    public static let serverVersion = "0.1.0"
    /// 1: version, status, start, stop, restart, reload, ports, logs. 2: adds health and status's health fields.
    public static let version = 2
    /// The longest request line the server reads.
    public static let maxLineBytes = 64 * 1024
    /// Connections served at once.
    public static let maxClients = 64
    /// Unread answers a client may let pile up before it is disconnected.
    public static let maxPendingOutput = 4 << 20
    /// Where `mcpctl` looks when neither `--socket` nor `$MCPCTL_SOCKET` says.
    public static let defaultSocketPath = "/run/mcp-supervisor/control.sock"
    /// The file name of the supervisor's own default, in its state folder.
    public static let socketFileName = "control.sock"
}

/// The methods of the control socket.
public enum ControlMethod: String, Sendable, CaseIterable {
    case version, status, health, ports, logs, start, stop, restart, reload

    /// Methods that change something: only admins may call them (root, the supervisor's uid, `control_group`).
    public var isChanging: Bool {
        switch self {
        case .start, .stop, .restart, .reload: return true
        case .version, .status, .health, .ports, .logs: return false
        }
    }
}

/// The control socket's JSON-RPC error codes beyond the standard ones (JSONRPC.parseError etc.).
public enum ControlErrorCode {
    /// A changing method from someone who is not an admin (`data.group`: the group to join).
    public static let permissionDenied: Int64 = -32001
    public static let unknownServer: Int64 = -32002
    /// `data`: file, line, key, message.
    public static let reloadRejected: Int64 = -32003
    public static let shuttingDown: Int64 = -32004
    /// Sent once to a connection over `ControlProtocol.maxClients`, which is then closed.
    public static let tooManyClients: Int64 = -32005
    /// A request line over `ControlProtocol.maxLineBytes`; the connection is then closed.
    public static let lineTooLong: Int64 = -32006
}

/// A bad parameter, with the message the client sees.
public struct ControlParamsError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The parameter and result keys, spelled once.
public enum ControlKey {
    public static let server = "server"
    /// `restart`'s flag: replace the replicas one at a time behind a spare (`mcpctl restart --rolling`).
    public static let rolling = "rolling"
    public static let servers = "servers"
    /// `status`'s `{open, limit, needed, warning}`: the supervisor's descriptors (docs/reliability.md).
    public static let descriptors = "descriptors"
    public static let open = "open"
    public static let limit = "limit"
    public static let needed = "needed"
    public static let warning = "warning"
    public static let level = "level"
    public static let lines = "lines"
    public static let follow = "follow"
    public static let line = "line"
    public static let version = "version"
    public static let protocolVersion = "protocol"
    public static let group = "group"
    public static let port = "port"
    public static let kind = "kind"
    public static let file = "file"
    public static let message = "message"
    public static let key = "key"
    // reload's result
    public static let added = "added"
    public static let removed = "removed"
    public static let changed = "changed"
    public static let unchanged = "unchanged"
}

/// `status`: every server, or one.
public struct StatusParams: Sendable, Equatable {
    public var server: String?
    public init(server: String? = nil) { self.server = server }

    public func encode() -> [String: JSONValue] { server.map { [ControlKey.server: .string($0)] } ?? [:] }

    public static func decode(_ params: [String: JSONValue]) throws(ControlParamsError) -> StatusParams {
        guard let s = params[ControlKey.server] else { return StatusParams() }
        guard let name = s.stringValue else { throw ControlParamsError("params.server must be a string") }
        return StatusParams(server: name)
    }
}

/// `health`: probe one server now, at a level (default: the server's configured one).
public struct HealthParams: Sendable, Equatable {
    public var server: String
    public var level: HealthLevel?
    public init(server: String, level: HealthLevel? = nil) {
        self.server = server
        self.level = level
    }

    public func encode() -> [String: JSONValue] {
        var o: [String: JSONValue] = [ControlKey.server: .string(server)]
        if let level { o[ControlKey.level] = .string(level.rawValue) }
        return o
    }

    public static func decode(_ params: [String: JSONValue]) throws(ControlParamsError) -> HealthParams {
        guard let name = params[ControlKey.server]?.stringValue else {
            throw ControlParamsError("params.server (a string) is required")
        }
        guard let l = params[ControlKey.level] else { return HealthParams(server: name) }
        guard let s = l.stringValue, let level = HealthLevel(rawValue: s) else {
            throw ControlParamsError("params.level must be \(HealthLevel.choices)")
        }
        return HealthParams(server: name, level: level)
    }
}

/// `logs`: a server's recent lines, then (with `follow`) `log` notifications.
public struct LogsParams: Sendable, Equatable {
    public static let defaultLines = 100
    public var server: String
    public var lines: Int
    public var follow: Bool
    public init(server: String, lines: Int = LogsParams.defaultLines, follow: Bool = false) {
        self.server = server
        self.lines = lines
        self.follow = follow
    }

    public func encode() -> [String: JSONValue] {
        var o: [String: JSONValue] = [ControlKey.server: .string(server), ControlKey.lines: .int(Int64(lines))]
        if follow { o[ControlKey.follow] = .bool(true) }
        return o
    }

    public static func decode(_ params: [String: JSONValue]) throws(ControlParamsError) -> LogsParams {
        guard let name = params[ControlKey.server]?.stringValue else {
            throw ControlParamsError("params.server (a string) is required")
        }
        var n = defaultLines
        if let l = params[ControlKey.lines] {
            guard case .int(let v) = l, v >= 0 else {
                throw ControlParamsError("params.lines must be a non-negative integer")
            }
            n = Int(min(v, 1_000_000))
        }
        var follow = false
        if let f = params[ControlKey.follow] {
            guard case .bool(let b) = f else { throw ControlParamsError("params.follow must be a boolean") }
            follow = b
        }
        return LogsParams(server: name, lines: n, follow: follow)
    }
}

/// `start`, `stop`, `restart`: one server, or several.
public struct ServerActionParams: Sendable, Equatable {
    public var servers: [String]
    public init(servers: [String]) { self.servers = servers }

    public func encode() -> [String: JSONValue] {
        if servers.count == 1 { return [ControlKey.server: .string(servers[0])] }
        return [ControlKey.servers: .array(servers.map { .string($0) })]
    }

    public static func decode(_ params: [String: JSONValue]) throws(ControlParamsError) -> ServerActionParams {
        if let s = params[ControlKey.server] {
            guard let name = s.stringValue else { throw ControlParamsError("params.server must be a string") }
            return ServerActionParams(servers: [name])
        }
        if case .some(.array(let a)) = params[ControlKey.servers] {
            let names = a.compactMap(\.stringValue)
            guard names.count == a.count, !names.isEmpty else {
                throw ControlParamsError("params.servers must be a non-empty array of strings")
            }
            return ServerActionParams(servers: names)
        }
        throw ControlParamsError("params.server (a string) or params.servers (an array) is required")
    }
}

/// `version`'s result.
public struct VersionResult: Sendable, Equatable {
    public var version: String
    public var protocolVersion: Int
    public init(version: String = ControlProtocol.serverVersion, protocolVersion: Int = ControlProtocol.version) {
        self.version = version
        self.protocolVersion = protocolVersion
    }

    public func encode() -> JSONValue {
        .object([ControlKey.version: .string(version), ControlKey.protocolVersion: .int(Int64(protocolVersion))])
    }

    public static func decode(_ value: JSONValue) -> VersionResult? {
        guard let v = value[ControlKey.version]?.stringValue,
            let p = value[ControlKey.protocolVersion].flatMap(intValue)
        else { return nil }
        return VersionResult(version: v, protocolVersion: p)
    }
}

/// `logs`'s result, and the params of each `log` notification that follows it.
public struct LogLines: Sendable, Equatable {
    /// The notification's method.
    public static let notificationMethod = "log"
    public var server: String
    public var lines: [String]
    public init(server: String, lines: [String]) {
        self.server = server
        self.lines = lines
    }

    public func encode() -> JSONValue {
        .object([ControlKey.server: .string(server), ControlKey.lines: .array(lines.map { .string($0) })])
    }

    public static func decode(_ value: JSONValue) -> LogLines? {
        guard let s = value[ControlKey.server]?.stringValue, case .some(.array(let a)) = value[ControlKey.lines]
        else { return nil }
        return LogLines(server: s, lines: a.compactMap(\.stringValue))
    }

    /// One followed line: `{"server", "line"}`.
    public static func notificationParams(server: String, line: String) -> [String: JSONValue] {
        [ControlKey.server: .string(server), ControlKey.line: .string(line)]
    }

    /// The line of a `log` notification's params.
    public static func line(ofNotification params: JSONValue) -> String? { params[ControlKey.line]?.stringValue }
}

/// `start`/`stop`/`restart`'s result: what happened to each server ("started", "stopping", "already …").
public struct ServerActionResult: Sendable, Equatable {
    public var outcomes: [String: String]
    public init(outcomes: [String: String]) { self.outcomes = outcomes }

    public func encode() -> JSONValue {
        .object([ControlKey.servers: .object(outcomes.mapValues { .string($0) })])
    }

    public static func decode(_ value: JSONValue) -> ServerActionResult? {
        guard let o = value[ControlKey.servers]?.objectValue else { return nil }
        return ServerActionResult(outcomes: o.compactMapValues(\.stringValue))
    }
}

/// `reload`'s result: the names of the servers in each part of the difference.
public struct ReloadResult: Sendable, Equatable {
    public var added: [String]
    public var removed: [String]
    public var changed: [String]
    public var unchanged: [String]
    public init(added: [String], removed: [String], changed: [String], unchanged: [String]) {
        self.added = added
        self.removed = removed
        self.changed = changed
        self.unchanged = unchanged
    }

    /// The parts in the order they are shown.
    public var parts: [(name: String, servers: [String])] {
        [
            (ControlKey.added, added), (ControlKey.removed, removed), (ControlKey.changed, changed),
            (ControlKey.unchanged, unchanged),
        ]
    }

    public func encode() -> JSONValue {
        var o: [String: JSONValue] = [:]
        for (name, servers) in parts { o[name] = .array(servers.map { .string($0) }) }
        return .object(o)
    }

    public static func decode(_ value: JSONValue) -> ReloadResult? {
        func names(_ key: String) -> [String]? {
            guard case .some(.array(let a)) = value[key] else { return nil }
            return a.compactMap(\.stringValue)
        }
        guard let a = names(ControlKey.added), let r = names(ControlKey.removed), let c = names(ControlKey.changed),
            let u = names(ControlKey.unchanged)
        else { return nil }
        return ReloadResult(added: a, removed: r, changed: c, unchanged: u)
    }

    /// The `data` of a rejected reload (error -32003).
    public static func rejectionData(file: String, line: Int?, key: String?, message: String) -> JSONValue {
        .object([
            ControlKey.file: .string(file), ControlKey.line: line.map { .int(Int64($0)) } ?? .null,
            ControlKey.key: key.map { .string($0) } ?? .null, ControlKey.message: .string(message),
        ])
    }
}

/// One entry of `ports`'s result (`{NAME: {port, kind}}`).
public struct PortEntry: Sendable, Equatable {
    public enum Kind: String, Sendable { case `static`, dynamic }
    public var port: Int?
    public var kind: Kind
    public init(port: Int?, kind: Kind) {
        self.port = port
        self.kind = kind
    }

    public func encode() -> JSONValue {
        .object([ControlKey.port: port.map { .int(Int64($0)) } ?? .null, ControlKey.kind: .string(kind.rawValue)])
    }

    public static func decode(_ value: JSONValue) -> PortEntry? {
        guard let k = value[ControlKey.kind]?.stringValue.flatMap(Kind.init) else { return nil }
        return PortEntry(port: value[ControlKey.port].flatMap(intValue), kind: k)
    }
}
