import Contracts
import Dispatch
import MCPProtocol
import SupervisorCore

/// What the control socket asks of the supervisor: start, stop and restart one server, and its state as JSON.
/// Everything here runs on `queue`, like the rest of the supervisor; the machine decides, and answers within
/// the same event.
extension Supervisor {
    public enum ControlError: Error, Equatable {
        case unknownServer(String)
        case shuttingDown
    }

    /// Starts a stopped (or exited, or fatal) server again with fresh replicas; a running server is left as is.
    public func start(server name: String) -> Result<String, ControlError> {
        control(.start(name))
    }

    /// Stops a server (all replicas); it stays stopped until `start(server:)`, a restart or a reload changes it.
    public func stop(server name: String) -> Result<String, ControlError> {
        control(.stop(name))
    }

    /// Stops a server and starts it again with the same configuration and port.
    public func restart(server name: String) -> Result<String, ControlError> {
        control(.restart(name))
    }

    /// Replaces the replicas one at a time behind a spare, without dropping a connection or a call.
    public func rollingRestart(server name: String) -> Result<String, ControlError> {
        control(.rollingRestart(name))
    }

    private func control(_ request: ControlRequest) -> Result<String, ControlError> {
        dispatchPrecondition(condition: .onQueue(queue))
        switch self.request({ .control(request, $0) }) {
        case .done(let what):
            switch request {
            case .stop(let name): recordAdminStops(stopped: name)
            case .start(let name), .restart(let name), .rollingRestart(let name): recordAdminStops(started: name)
            case .health: break
            }
            return .success(what)
        case .unknownServer(let name): return .failure(.unknownServer(name))
        default: return .failure(.shuttingDown)
        }
    }

    /// The names of the configured servers, sorted.
    public var serverNames: [String] {
        dispatchPrecondition(condition: .onQueue(queue))
        return servers.keys.sorted()
    }

    /// One server's state for `status`: port, failure, and each replica's state, pid, restarts, uptime, last exit.
    func statusJSON(_ name: String) -> JSONValue? {
        guard let server = servers[name] else { return nil }
        let now = Clock.now()
        let replicas: [JSONValue] = server.replicas.map { replica in
            var object: [String: JSONValue] = [
                StatusKey.index: .int(Int64(replica.index)),
                StatusKey.state: .string(replica.lifecycle.phase.name),
                StatusKey.restarts: .int(Int64(replica.lifecycle.restarts)),
            ]
            object[StatusKey.pid] = replica.pid.map { .int(Int64($0)) } ?? .null
            object[StatusKey.uptime] =
                replica.pid != nil ? .double(((now - replica.spawnedAt) * 10).rounded() / 10) : .null
            // With the host's one-line reason when it gave one (a load or trust error names the file and why).
            let why = hostFailures[ReplicaID(server: name, index: replica.index)].map { ": \($0)" } ?? ""
            object[StatusKey.lastExit] = replica.lifecycle.lastExit.map { .string("\($0)\(why)") } ?? .null
            object[StatusKey.health] = .string(replica.health.state.rawValue)
            object[StatusKey.healthReason] = replica.health.reason.map { .string($0) } ?? .null
            if let last = reports[ReplicaID(server: name, index: replica.index)], replica.pid != nil {
                object[StatusKey.checkedAgo] = .double(((now - last.finished) * 10).rounded() / 10)
                object[StatusKey.latencyMS] = last.json[ProbeKey.latencyMS] ?? .null
            }
            return .object(object)
        }
        let states = server.replicas.map(\.health.state)
        let settings = server.config
        var what: [String: JSONValue] =
            settings.isGateway
            ? [
                StatusKey.kind: "gateway", StatusKey.target: .string(gatewayExecutable),
                StatusKey.leftOut: .array(gatewayLeftOut.map { .string($0) }),
            ]
            : settings.isCommand
                ? [
                    StatusKey.kind: "command", StatusKey.target: .array(settings.command.map { .string($0) }),
                    StatusKey.transport: .string(settings.transport.rawValue),
                ] : [StatusKey.kind: "plugin", StatusKey.target: .string(settings.plugin)]
        let common: [String: JSONValue] = [
            StatusKey.name: .string(name),
            StatusKey.group: .string(metricsGroup(name)),
            StatusKey.state: .string(server.status.rawValue),
            StatusKey.port: server.port.map { .int(Int64($0)) } ?? .null,
            StatusKey.portKind: .string((server.config.port != nil ? PortEntry.Kind.static : .dynamic).rawValue),
            StatusKey.failure: server.failure.map { .string($0) } ?? .null,
            StatusKey.health: .string(HealthAggregate.state(states).rawValue),
            StatusKey.score: .double(HealthAggregate.score(states)),
            StatusKey.replicas: .array(replicas),
            StatusKey.box: ChildBox.statusJSON(server.config, stateDirectory: config.stateDirectory),
        ]
        what.merge(common) { a, _ in a }
        return .object(what)
    }

    /// `status`'s result for every server: what `mcpctl status --json` prints and `/status.json` serves.
    func statusResult() -> JSONValue {
        [
            ControlKey.servers: .array(serverNames.compactMap { statusJSON($0) }),
            ControlKey.descriptors: descriptorsJSON(),
        ]
    }

    /// The supervisor's descriptors: open now, its soft limit (null: unlimited), what the servers need, and the
    /// warning when they do not fit.
    func descriptorsJSON() -> JSONValue {
        let needed = descriptorsNeeded
        var object: [String: JSONValue] = [
            ControlKey.open: .int(Int64(ProcessStats.readSelf()?.openFDs ?? 0)),
            ControlKey.limit: descriptorLimits.now.map { .int(Int64($0)) } ?? .null,
            ControlKey.needed: .int(Int64(needed)),
        ]
        if let limit = descriptorLimits.now,
            let warning = Self.descriptorWarning(needed: needed, limit: limit, servers: servers.count)
        {
            object[ControlKey.warning] = .string(warning)
        }
        return .object(object)
    }

    /// name → {port, kind} for every server.
    func portsJSON() -> JSONValue {
        var object: [String: JSONValue] = [:]
        for (name, server) in servers {
            object[name] = PortEntry(port: server.port, kind: server.config.port != nil ? .static : .dynamic).encode()
        }
        return .object(object)
    }

    /// Reload and describe the result: the diff, or the configuration error with file, line and key.
    func reloadJSON() -> Result<JSONValue, ConfigError> {
        reload().map(Self.diffJSON)
    }

    static func diffJSON(_ diff: ConfigDiff) -> JSONValue {
        ReloadResult(added: diff.added, removed: diff.removed, changed: diff.changed, unchanged: diff.unchanged)
            .encode()
    }
}
