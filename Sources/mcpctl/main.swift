import ArgumentParser
import Contracts
import Logging
import MCPProtocol
import StructuredLog

#if canImport(Glibc)
    import Glibc
#endif

/// `mcpctl`: the admin client of mcp-supervisor's control socket (docs/mcpctl.md).
struct Mcpctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcpctl",
        abstract: "Query and control a running mcp-supervisor through its control socket.",
        discussion: """
            Exit status: 0 ok; 1 the call failed (unknown server, reload rejected, …); 2 usage; 3 cannot connect \
            to the socket; 4 permission denied; `health` only: 5 degraded or initializing, 6 unhealthy or offline. Changing commands (start, stop, restart, reload) need root, the \
            supervisor's user, or membership of its control_group.
            """,
        subcommands: [
            Status.self, Health.self, Start.self, Stop.self, Restart.self, Reload.self, Ports.self, Logs.self,
            Version.self,
        ]
    )

    @Option(help: "The control socket (default: $MCPCTL_SOCKET, else \(ControlProtocol.defaultSocketPath)).")
    var socket: String?

    @Flag(help: "Print the raw JSON result instead of a table.")
    var json = false

    @Option(help: "Error lines as text (\"mcpctl: …\") or json (one object, docs/supervisor.md \"Logs\").")
    var logFormat: String = LogFormat.text.rawValue

    func validate() throws {
        guard let format = LogFormat(rawValue: logFormat) else {
            throw ValidationError("--log-format must be text or json, not '\(logFormat)'")
        }
        Exit.format = format
    }

    var socketPath: String {
        if let socket { return socket }
        if let env = getenv("MCPCTL_SOCKET"), env.pointee != 0 { return String(cString: env) }
        return ControlProtocol.defaultSocketPath
    }

    /// Connects, sends one request, and returns its result; failures print one line and exit with their status.
    func call(_ method: ControlMethod, _ params: [String: JSONValue] = [:]) throws -> (Connection, JSONValue) {
        let conn = try Connection.open(socketPath)
        return (conn, try conn.call(method, params))
    }

    func printJSON(_ v: JSONValue) { print(JSONWriter.string(v)) }

    /// `mcpctl` alone: the help, as a usage error.
    func run() throws {
        print(Mcpctl.helpMessage())
        throw ExitCode(Exit.usage)
    }
}

// MARK: Errors and exit statuses

enum Exit {
    static let failed: Int32 = 1
    static let usage: Int32 = 2
    static let cannotConnect: Int32 = 3
    static let permissionDenied: Int32 = 4
    /// `health`: the server serves, but not fully (degraded, initializing).
    static let notHealthy: Int32 = 5
    /// `health`: the server does not serve (unhealthy, offline).
    static let down: Int32 = 6

    /// How error lines are written (`--log-format`). Set once while the command line is validated, before
    /// anything is logged; mcpctl has one thread.
    nonisolated(unsafe) static var format = LogFormat.text

    static func fail(_ status: Int32, _ message: String) -> ExitCode {
        fflush(nil)
        let log = LineLogHandler.logger(source: LogSource.mcpctl, format: format)
        log.error(
            "\(message.split(separator: "\n").joined(separator: " "))",
            metadata: [LogKey.event: .string(LogEventName.ctlError), "status": LogValue.of(status)])
        return ExitCode(status)
    }
}

// MARK: The connection

/// A blocking connection to the control socket: newline-delimited JSON-RPC 2.0.
final class Connection {
    let fd: Int32
    let path: String
    /// Answers can be large (status of many servers, a thousand log lines) but not endless.
    private var framer = LineFramer(maxLineBytes: 64 << 20, overflow: .reject)
    private var nextID: Int64 = 1

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    static func open(_ path: String) throws -> Connection {
        guard let addr = UnixSocketAddress.make(path) else {
            throw Exit.fail(Exit.cannotConnect, "cannot connect to \(path): the path is too long for a socket")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw Exit.fail(Exit.cannotConnect, "cannot create a socket: \(String(cString: strerror(errno)))")
        }
        let rc = UnixSocketAddress.withSockaddr(addr) { connect(fd, $0, $1) }
        if rc != 0 {
            let e = errno
            close(fd)
            switch e {
            case EACCES, EPERM:
                var st = stat()
                var join = "ask an administrator for access"
                if stat(path, &st) == 0, let g = getgrgid(st.st_gid) {
                    join = "join the group '\(String(cString: g.pointee.gr_name))'"
                }
                throw Exit.fail(Exit.permissionDenied, "permission denied on \(path): \(join)")
            case ENOENT:
                throw Exit.fail(
                    Exit.cannotConnect,
                    "cannot connect: no control socket at \(path) (is mcp-supervisor running? see --socket, MCPCTL_SOCKET)"
                )
            default:
                throw Exit.fail(Exit.cannotConnect, "cannot connect to \(path): \(String(cString: strerror(e)))")
            }
        }
        return Connection(fd: fd, path: path)
    }

    /// Sends a request and waits for its answer (notifications before it are skipped).
    func call(_ method: ControlMethod, _ params: [String: JSONValue]) throws -> JSONValue {
        let id = nextID
        nextID += 1
        let req: JSONValue = [
            "jsonrpc": "2.0", "id": .int(id), "method": .string(method.rawValue), "params": .object(params),
        ]
        let bytes = JSONWriter.serialize(req) + [0x0A]
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw Exit.fail(
                    Exit.cannotConnect, "lost the connection to \(path): \(String(cString: strerror(errno)))")
            }
            off += n
        }
        while true {
            guard let msg = try readMessage() else {
                throw Exit.fail(Exit.cannotConnect, "\(path) closed the connection before answering")
            }
            if let err = msg["error"] {
                let code: Int64
                if case .some(.int(let c)) = err["code"] { code = c } else { code = 0 }
                let message = err["message"]?.stringValue ?? JSONWriter.string(err)
                throw Exit.fail(
                    code == ControlErrorCode.permissionDenied ? Exit.permissionDenied : Exit.failed, message)
            }
            if msg["id"] == .int(id), let result = msg["result"] { return result }
        }
    }

    /// The next message, or nil at end of file.
    func readMessage() throws -> JSONValue? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            switch framer.next() {
            case .line(let line):
                do { return try JSONParser.parse(line) } catch {
                    throw Exit.fail(Exit.failed, "a malformed answer from \(path): \(error)")
                }
            case .tooLong:
                throw Exit.fail(Exit.failed, "an answer from \(path) longer than \(framer.maxLineBytes) bytes")
            case nil:
                break
            }
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            framer.append(chunk[0..<n])
        }
    }
}

// MARK: Formatting

func table(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for r in rows {
        for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) }
    }
    for r in [header] + rows {
        var line = ""
        for (i, c) in r.enumerated() {
            line += i == r.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count + 2)
        }
        print(line)
    }
}

func text(_ v: JSONValue?) -> String {
    switch v {
    case .none, .some(.null): return "-"
    case .some(.string(let s)): return s
    case .some(.int(let i)): return String(i)
    case .some(.double(let d)): return String(d)
    case .some(let other): return JSONWriter.string(other)
    }
}

func duration(_ v: JSONValue?) -> String {
    guard let s = v?.numberValue else { return "-" }
    let t = Int(s)
    if t < 60 { return "\(t)s" }
    if t < 3600 { return "\(t / 60)m\(t % 60)s" }
    if t < 86400 { return "\(t / 3600)h\(t % 3600 / 60)m" }
    return "\(t / 86400)d\(t % 86400 / 3600)h"
}

// MARK: Commands

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show every server (or one) with its replicas.",
        discussion: "With SERVER, a line under the table names its box: user, limits, filesystem, network, /tmp.")
    @ParentCommand var root: Mcpctl
    @Argument(help: "One server (default: all).") var server: String?

    func run() throws {
        let (_, result) = try root.call(.status, StatusParams(server: server).encode())
        if root.json { return root.printJSON(result) }
        var rows: [[String]] = []
        guard case .some(.array(let servers)) = result[ControlKey.servers] else { return }
        // A GROUP column only when some server has one (`group` in its file; docs/metrics.md).
        let groups = servers.contains { ($0[StatusKey.group]?.stringValue ?? "") != "" }
        for s in servers {
            let rowsBefore = rows.count
            defer {
                if groups {
                    let group = s[StatusKey.group]?.stringValue ?? ""
                    for i in rowsBefore..<rows.count { rows[i].insert(group.isEmpty ? "-" : group, at: 1) }
                }
            }
            let name = text(s[StatusKey.name])
            let port =
                s[StatusKey.port]?.isNull == false ? "\(text(s[StatusKey.port])) (\(text(s[StatusKey.portKind])))" : "-"
            guard case .some(.array(let replicas)) = s[StatusKey.replicas], !replicas.isEmpty else {
                rows.append([
                    name, text(s[StatusKey.state]), text(s[StatusKey.health]), port, "-", "-", "-",
                    text(s[StatusKey.failure]),
                ])
                continue
            }
            for r in replicas {
                let label = replicas.count > 1 ? "\(name)#\(text(r[StatusKey.index]))" : name
                let state =
                    text(s[StatusKey.state]) == ServerStatus.stopped.rawValue
                    ? ServerStatus.stopped.rawValue : text(r[StatusKey.state])
                rows.append([
                    label, state, text(r[StatusKey.health]), port, text(r[StatusKey.pid]), text(r[StatusKey.restarts]),
                    duration(r[StatusKey.uptime]),
                    s[StatusKey.failure]?.isNull == false ? text(s[StatusKey.failure]) : text(r[StatusKey.lastExit]),
                ])
            }
        }
        var header = ["SERVER", "STATE", "HEALTH", "PORT", "PID", "RESTARTS", "UPTIME", "LAST EXIT"]
        if groups { header.insert("GROUP", at: 1) }
        table(header, rows)
        // One server: its box too (which mechanism applied each limit; docs/security.md).
        if server != nil, let s = servers.first, let box = s[StatusKey.box] { print("box: " + boxLine(box)) }
        // Servers that would not fit in the supervisor's descriptor limit (docs/reliability.md, "Descriptors").
        if server == nil, let warning = result[ControlKey.descriptors]?[ControlKey.warning]?.stringValue {
            print("warning: " + warning)
        }
        // The gateway: what it left out of its lists and why (docs/gateway.md, "Names").
        for s in servers {
            guard case .array(let items)? = s[StatusKey.leftOut], !items.isEmpty else { continue }
            print("\(text(s[StatusKey.name])): \(items.count) left out of its lists:")
            for item in items { print("  " + text(item)) }
        }
    }
}

/// `user nobody, memory cgroup v1, ..., network none, private /tmp` or `off (runs with the supervisor's rights)`.
func boxLine(_ box: JSONValue) -> String {
    guard box["enabled"] == .bool(true) else { return "off (the child runs with the supervisor's rights)" }
    var parts = ["user \(text(box["user"]))"]
    for key in ["memory", "processes", "cpu"] { parts.append("\(key) \(text(box[key]))") }
    parts.append(text(box["filesystem"]))
    parts.append("network \(text(box["network"]))")
    parts.append(box["private_tmp"] == .bool(true) ? "private /tmp" : "shared /tmp")
    return parts.joined(separator: ", ")
}

struct Health: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Probe a server's replicas now and show what each part found.",
        discussion: "Exit status 0 healthy, 5 degraded or initializing, 6 unhealthy or offline.")
    @ParentCommand var root: Mcpctl
    @Argument(help: "The server.") var server: String
    @Option(help: "\(HealthLevel.choices) (default: the server's configured level).")
    var level: String?

    func validate() throws {
        if let level, HealthLevel(rawValue: level) == nil {
            throw ValidationError("--level must be \(HealthLevel.choices)")
        }
    }

    func run() throws {
        let params = HealthParams(server: server, level: level.flatMap(HealthLevel.init(rawValue:)))
        let (_, result) = try root.call(.health, params.encode())
        let state = text(result[StatusKey.state])
        if root.json {
            root.printJSON(result)
        } else {
            print(
                "\(server): \(state) (score \(text(result[StatusKey.score])), \(text(result[StatusKey.level])) probe)")
            var rows: [[String]] = []
            guard case .some(.array(let replicas)) = result[StatusKey.replicas] else { return }
            for r in replicas {
                let p = r[StatusKey.lastProbe]
                var parts: [String] = []
                if let l = p?[ProbeKey.eventLoop] {
                    parts.append(
                        l[ProbeKey.answered] == .bool(true) ? "loop \(text(l[ProbeKey.ms])) ms" : "loop silent")
                }
                if let d = p?[ProbeKey.serverDiscover] {
                    parts.append(
                        d[ProbeKey.ok] == .bool(true) ? "discover \(text(d[ProbeKey.ms])) ms" : "discover failed")
                }
                if let pl = p?[ProbeKey.plugin] {
                    let ok: String
                    switch pl[ProbeKey.ok] {
                    case .some(.bool(true)): ok = "ok"
                    case .some(.bool(false)): ok = "failing"
                    case .some(.null): ok = "no callback"
                    default: ok = "no answer"
                    }
                    parts.append("plugin \(ok)" + (pl[ProbeKey.ms].map { " \(text($0)) ms" } ?? ""))
                }
                if let proc = p?[ProbeKey.process] {
                    let rss = (proc[ProbeKey.rssBytes]?.numberValue ?? 0) / 1_048_576
                    parts.append(
                        "rss \((rss * 10).rounded() / 10) MiB, \(text(proc[ProbeKey.openFDs])) fds, "
                            + "\(text(proc[ProbeKey.threads])) threads, cpu \(text(proc[ProbeKey.cpuSeconds])) s"
                            + (proc[ProbeKey.cpuPercent].map { " (\(text($0)) %)" } ?? ""))
                }
                rows.append([
                    "#\(text(r[StatusKey.index]))", text(r[StatusKey.pid]), text(r[StatusKey.state]),
                    text(p?[ProbeKey.result]),
                    p.map { "\(text($0[ProbeKey.latencyMS])) ms" } ?? "-",
                    (parts + [p?[ProbeKey.detail].map { text($0) } ?? r[StatusKey.reason].map { text($0) } ?? ""])
                        .filter { !$0.isEmpty && $0 != "-" }.joined(separator: "; "),
                ])
            }
            table(["REPLICA", "PID", "HEALTH", "PROBE", "LATENCY", "FINDINGS"], rows)
            for r in replicas {
                if let report = r[StatusKey.lastProbe]?[ProbeKey.pluginReport] {
                    print("plugin report #\(text(r[StatusKey.index])): \(text(report))")
                }
            }
        }
        switch HealthState(rawValue: state) {
        case .healthy: return
        case .degraded, .initializing: throw ExitCode(Exit.notHealthy)
        case .unhealthy, .offline, nil: throw ExitCode(Exit.down)
        }
    }
}

/// start, stop and restart: one server each.
protocol ServerAction: ParsableCommand {
    static var method: ControlMethod { get }
    var root: Mcpctl { get }
    var server: String { get }
}

extension ServerAction {
    func run() throws {
        let (_, result) = try root.call(Self.method, ServerActionParams(servers: [server]).encode())
        if root.json { return root.printJSON(result) }
        print("\(server): \(ServerActionResult.decode(result)?.outcomes[server] ?? "-")")
    }
}

struct Start: ServerAction {
    static let configuration = CommandConfiguration(abstract: "Start a stopped server.")
    static let method = ControlMethod.start
    @ParentCommand var root: Mcpctl
    @Argument(help: "The server.") var server: String
}

struct Stop: ServerAction {
    static let configuration = CommandConfiguration(
        abstract: "Stop a server (it stays stopped until started; its port answers 503 meanwhile).")
    static let method = ControlMethod.stop
    @ParentCommand var root: Mcpctl
    @Argument(help: "The server.") var server: String
}

struct Restart: ServerAction {
    static let configuration = CommandConfiguration(
        abstract: "Stop a server and start it again on its port.",
        discussion:
            "With --rolling: a spare replica starts first, then each replica in turn is stopped (its calls finish) and started again, and the spare stops once the last is ready: no connection or call is dropped (e.g. after upgrading the plugin file). Returns when the rolling restart has begun; the log says when it is done."
    )
    static let method = ControlMethod.restart
    @ParentCommand var root: Mcpctl
    @Argument(help: "The server.") var server: String
    @Flag(help: "Replace the replicas one at a time behind a spare replica.") var rolling = false

    func run() throws {
        var params = ServerActionParams(servers: [server]).encode()
        if rolling { params[ControlKey.rolling] = .bool(true) }
        let (_, result) = try root.call(Self.method, params)
        if root.json { return root.printJSON(result) }
        print("\(server): \(ServerActionResult.decode(result)?.outcomes[server] ?? "-")")
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reload the configuration; prints the difference, or the error (file:line: key: message).")
    @ParentCommand var root: Mcpctl

    func run() throws {
        let (_, result) = try root.call(.reload)
        if root.json { return root.printJSON(result) }
        guard let diff = ReloadResult.decode(result) else {
            throw Exit.fail(Exit.failed, "a malformed reload answer: \(JSONWriter.string(result))")
        }
        var parts: [String] = []
        for (key, list) in diff.parts {
            parts.append(
                "\(list.count) \(key)"
                    + (key != ControlKey.unchanged && !list.isEmpty ? " (\(list.joined(separator: ", ")))" : ""))
        }
        print("reload: " + parts.joined(separator: ", "))
    }
}

struct Ports: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show every server's port (static or dynamic).")
    @ParentCommand var root: Mcpctl

    func run() throws {
        let (_, result) = try root.call(.ports)
        if root.json { return root.printJSON(result) }
        let entries = (result.objectValue ?? [:]).compactMapValues(PortEntry.decode)
        table(
            ["SERVER", "PORT", "KIND"],
            entries.keys.sorted().map { [$0, entries[$0]!.port.map(String.init) ?? "-", entries[$0]!.kind.rawValue] })
    }
}

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a server's recent log lines.")
    @ParentCommand var root: Mcpctl
    @Argument(help: "The server.") var server: String
    @Option(name: .short, help: "How many lines.") var n: Int = LogsParams.defaultLines
    @Flag(name: .shortAndLong, help: "Keep printing new lines until interrupted.") var follow = false

    func validate() throws {
        guard n >= 0 else { throw ValidationError("-n must not be negative") }
    }

    func run() throws {
        let (conn, result) = try root.call(.logs, LogsParams(server: server, lines: n, follow: follow).encode())
        if root.json {
            root.printJSON(result)  // then, with -f, each notification's params ({server, line}) on its own line
        } else if let logs = LogLines.decode(result) {
            for line in logs.lines { print(line) }
        }
        guard follow else { return }
        fflush(nil)
        while let msg = try conn.readMessage() {
            guard case .notification(let method, let params) = JSONRPC.decode(msg),
                method == LogLines.notificationMethod
            else { continue }
            root.json ? root.printJSON(.object(params)) : print(LogLines.line(ofNotification: .object(params)) ?? "-")
            fflush(nil)
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the supervisor's version and protocol.")
    @ParentCommand var root: Mcpctl

    func run() throws {
        let (_, result) = try root.call(.version)
        if root.json { return root.printJSON(result) }
        guard let v = VersionResult.decode(result) else {
            throw Exit.fail(Exit.failed, "a malformed version answer: \(JSONWriter.string(result))")
        }
        print("mcp-supervisor \(v.version) (control protocol \(v.protocolVersion))")
    }
}

// Exit statuses are ours, not ArgumentParser's (which uses 64 for usage errors).
do {
    var command = try Mcpctl.parseAsRoot()
    try command.run()
} catch let code as ExitCode {
    exit(code.rawValue)
} catch {
    if Mcpctl.exitCode(for: error) == .success {
        print(Mcpctl.fullMessage(for: error))  // --help, --generate-completion-script
        exit(0)
    }
    _ = Exit.fail(Exit.usage, Mcpctl.message(for: error) + " (see mcpctl --help)")
    exit(Exit.usage)
}
