import Contracts
import Dispatch
import MCPProtocol
import SupervisorCore

/// What the control socket asks of the supervisor: start, stop and restart one server, and its state as JSON.
/// Everything here runs on `queue`, like the rest of the supervisor.
extension Supervisor {
    public enum ControlError: Error, Equatable {
        case unknownServer(String)
        case shuttingDown
    }

    /// Starts a stopped (or exited, or fatal) server again with fresh replicas; a running server is left as is.
    public func start(server name: String) -> Result<String, ControlError> {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !shuttingDown else { return .failure(.shuttingDown) }
        guard let rt = servers[name] else { return .failure(.unknownServer(name)) }
        rt.stopIssued = false  // only a shutdown reads it
        if rt.stopping {
            // Still going down: come back once it is down.
            if rt.pendingConfig == nil { rt.pendingConfig = rt.config }
            return .success("starting once stopped")
        }
        if rt.wanted && rt.launched && !rt.isDown { return .success("already running") }
        rt.wanted = true
        rt.announcedWait = false
        if rt.launched && rt.isDown {
            for r in rt.replicas { r.retryTimer?.cancel() }
            rt.launched = false
        }
        log.event(.info, LogEventName.serverRequest, server: name, message: "start requested on the control socket")
        startPending()
        return .success("started")
    }

    /// Stops a server (all replicas); it stays stopped until `start(server:)`, a restart or a reload changes it.
    public func stop(server name: String) -> Result<String, ControlError> {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !shuttingDown else { return .failure(.shuttingDown) }
        guard let rt = servers[name] else { return .failure(.unknownServer(name)) }
        rt.pendingConfig = nil
        if !rt.wanted && rt.isDown { return .success("already stopped") }
        log.event(.info, LogEventName.serverRequest, server: name, message: "stop requested on the control socket")
        stopServer(rt)
        rt.stopIssued = false
        for r in rt.replicas { r.retryTimer?.cancel() }
        stepStop()
        return .success("stopping")
    }

    /// Stops a server and starts it again with the same configuration and port.
    public func restart(server name: String) -> Result<String, ControlError> {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !shuttingDown else { return .failure(.shuttingDown) }
        guard let rt = servers[name] else { return .failure(.unknownServer(name)) }
        if rt.isDown && !rt.stopping { return start(server: name).map { _ in "restarted" } }
        log.event(.info, LogEventName.serverRequest, server: name, message: "restart requested on the control socket")
        stopServer(rt)
        rt.stopIssued = false
        if rt.pendingConfig == nil { rt.pendingConfig = rt.config }
        stepStop()
        return .success("restarting")
    }

    /// The names of the configured servers, sorted.
    public var serverNames: [String] {
        dispatchPrecondition(condition: .onQueue(queue))
        return servers.keys.sorted()
    }

    /// One server's state for `status`: port, failure, and each replica's state, pid, restarts, uptime, last exit.
    func statusJSON(_ name: String) -> JSONValue? {
        guard let rt = servers[name] else { return nil }
        let now = Clock.now()
        let replicas: [JSONValue] = rt.replicas.map { r in
            var o: [String: JSONValue] = [
                StatusKey.index: .int(Int64(r.index)),
                StatusKey.state: .string(r.lifecycle.phase.name),
                StatusKey.restarts: .int(Int64(r.lifecycle.restarts)),
            ]
            o[StatusKey.pid] = r.process.map { .int(Int64($0.pid)) } ?? .null
            o[StatusKey.uptime] = r.process != nil ? .double(((now - r.spawnedAt) * 10).rounded() / 10) : .null
            o[StatusKey.lastExit] = r.lifecycle.lastExit.map { .string("\($0)") } ?? .null
            o[StatusKey.health] = .string(r.health.state.rawValue)
            o[StatusKey.healthReason] = r.health.reason.map { .string($0) } ?? .null
            if let last = r.lastProbe, r.process != nil {
                o[StatusKey.checkedAgo] = .double(((now - last.finished) * 10).rounded() / 10)
                o[StatusKey.latencyMS] = last.json[ProbeKey.latencyMS] ?? .null
            }
            return .object(o)
        }
        let state: ServerState
        if !rt.wanted && rt.isDown {
            state = .stopped
        } else if rt.stopping {
            state = .stopping
        } else if rt.failure != nil {
            state = .failed
        } else if rt.isReady {
            state = .running
        } else if !rt.launched {
            state = .waiting
        } else if rt.isDown {
            state = .down
        } else {
            state = .starting
        }
        return [
            StatusKey.name: .string(name),
            StatusKey.state: .string(state.rawValue),
            StatusKey.port: rt.port.map { .int(Int64($0)) } ?? .null,
            StatusKey.portKind: .string((rt.config.port != nil ? PortEntry.Kind.static : .dynamic).rawValue),
            StatusKey.failure: rt.failure.map { .string($0) } ?? .null,
            StatusKey.health: .string(HealthAggregate.state(rt.replicas.map(\.health.state)).rawValue),
            StatusKey.score: .double(HealthAggregate.score(rt.replicas.map(\.health.state))),
            StatusKey.replicas: .array(replicas),
        ]
    }

    /// name → {port, kind} for every server.
    func portsJSON() -> JSONValue {
        var o: [String: JSONValue] = [:]
        for (name, rt) in servers {
            o[name] = PortEntry(port: rt.port, kind: rt.config.port != nil ? .static : .dynamic).encode()
        }
        return .object(o)
    }

    /// Reload and describe the result: the diff, or the configuration error with file, line and key.
    func reloadJSON() -> Result<JSONValue, ConfigError> {
        reload().map { d in
            ReloadResult(added: d.added, removed: d.removed, changed: d.changed, unchanged: d.unchanged).encode()
        }
    }
}
