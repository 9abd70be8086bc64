import MCPProtocol

/// One replica of one server: the name of everything the machine addresses below a server.
public struct ReplicaID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var server: String
    public var index: Int

    public init(server: String, index: Int) {
        self.server = server
        self.index = index
    }

    public static func < (a: ReplicaID, b: ReplicaID) -> Bool { (a.server, a.index) < (b.server, b.index) }

    public var description: String { "\(server)#\(index)" }
}

/// Every timer the supervisor has. Each replica holds at most one of each kind, so arming one again moves it.
public enum Deadline: Hashable, Sendable {
    /// The replica must say ready by then.
    case startTimeout(ReplicaID)
    /// The stop message was sent; SIGTERM follows if it is still running.
    case stopTimeout(ReplicaID)
    /// SIGTERM was sent; SIGKILL to its process group follows.
    case killTimeout(ReplicaID)
    /// The end of a backoff delay or a fatal cool-down.
    case retry(ReplicaID)
    /// The next heartbeat check of a running replica.
    case heartbeat(ReplicaID)
    /// The next periodic probe, or the end of the probe in flight.
    case probe(ReplicaID)
    /// The daemon's own, never armed by the machine: reap orphans of exited hosts again (they die on their own
    /// time and nothing reports it), on the one scheduler like every other wait.
    case orphanReap
    /// The daemon's own too: the watchdog's self-check of the one timer (docs/systemd.md, "Watchdog").
    case selfCheck
    /// The daemon's own too: the 503 responder's connections reach a deadline (Supervisor/Unavailable/).
    case unavailableAnswers
}

/// Names a control request that waits for its answer (the control socket's call, a reload).
public struct RequestID: Hashable, Sendable {
    public var value: Int
    public init(_ value: Int) { self.value = value }
}

/// How a child's process ended, as waitid(2) reports it.
public enum ChildStatus: Equatable, Sendable {
    case exited(Int32)
    case signaled(Int32)
}

/// The two signals the supervisor sends.
public enum ChildSignal: Equatable, Sendable {
    /// SIGTERM to the host process.
    case terminate
    /// SIGKILL to the host and its whole process group.
    case killGroup
}

/// What the control socket asks of the machine.
public enum ControlRequest: Equatable, Sendable {
    case start(String)
    case stop(String)
    case restart(String)
    /// Replace the replicas one at a time, each old one stopped only after a successor serves (docs/mcpctl.md).
    case rollingRestart(String)
    /// Probe every replica of a server at `level`; answered once all have answered.
    case health(String, HealthLevel)
}

/// A replica's health as a `health` answer reports it, taken when its probe ended.
public struct ReplicaHealth: Equatable, Sendable {
    public var index: Int
    public var pid: Int32?
    public var state: HealthState
    public var reason: String?

    public init(index: Int, pid: Int32?, state: HealthState, reason: String?) {
        self.index = index
        self.pid = pid
        self.state = state
        self.reason = reason
    }
}

/// The answer to a `health` request.
public struct ServerHealth: Equatable, Sendable {
    public var server: String
    public var level: HealthLevel
    /// The server's aggregate state and score when the last replica answered.
    public var state: HealthState
    public var score: Double
    public var replicas: [ReplicaHealth]
}

/// The answer to a control request or a reload.
public enum ControlAnswer: Equatable, Sendable {
    /// Done, in words for the caller ("started", "stopping", "already running", ...).
    case done(String)
    case unknownServer(String)
    case shuttingDown
    case reloaded(ConfigDiff)
    case reloadRejected(ConfigError)
    case health(ServerHealth)
}

/// Everything that happens to the supervisor, as the machine sees it.
public enum SupervisorEvent: Sendable {
    /// The daemon starts with the configuration the machine was made with and the ports recorded on disk.
    /// `stopped`: servers an admin stopped before the supervisor restarted (kept in the state directory); they
    /// come up stopped, their port bound.
    case start(registry: PortRegistry, stopped: Set<String> = [])
    /// The configuration was loaded again (SIGHUP or `reload`): the new one, or why it is rejected.
    case reloaded(Result<SupervisorConfig, ConfigError>, RequestID?)
    /// A `spawn` effect started a process.
    case spawned(ReplicaID, pid: Int32)
    /// A `spawn` effect could not start a process.
    case spawnFailed(ReplicaID, message: String)
    /// The child said "ready" on its control channel.
    case ready(ReplicaID)
    /// The child answered on its control channel (a pong, or a part of the probe in flight): it is alive.
    case answered(ReplicaID)
    /// The stop message could not be written (the channel is gone or full).
    case stopMessageFailed(ReplicaID)
    /// The child's process was reaped.
    case exited(ReplicaID, pid: Int32, ChildStatus)
    /// The child's cgroup counted an OOM kill (read before `exited` is fed): its exit gives this reason.
    case outOfMemory(ReplicaID, pid: Int32, reason: String)
    /// A probe ended (every part answered, or an `endProbe` effect cut it off): what it found.
    case probeFinished(ReplicaID, seq: Int, ProbeFindings)
    /// An armed deadline was reached.
    case deadline(Deadline)
    /// A control request, answered by an `answer` effect (now or when its effect completed).
    case control(ControlRequest, RequestID)
    /// SIGTERM or SIGINT: stop everything in reverse dependency order.
    case shutdown
}

/// What the daemon must do. The machine emits effects in the order they are to be performed.
public enum SupervisorEffect: Equatable, Sendable {
    case log(LogRecord)
    /// Start the replica's host process on the server's socket, then report `spawned` or `spawnFailed`.
    case spawn(ReplicaID)
    /// Ask the replica to stop on its control channel; report `stopMessageFailed` if it cannot be written.
    case sendStop(ReplicaID)
    case sendPing(ReplicaID, seq: Int)
    /// Start a probe: the `health` op on the control channel and, at detailed and up, `server/discover` on the
    /// port. Report `probeFinished` when every part answered.
    case startProbe(ReplicaID, seq: Int, level: HealthLevel)
    /// The probe's deadline passed: report `probeFinished` with what has answered.
    case endProbe(ReplicaID, seq: Int)
    /// Signal the replica's process `pid` (never a later one).
    case signal(ReplicaID, pid: Int32, ChildSignal)
    /// Report `deadline` once `at` is reached; `early` seconds before it is as good (so nearby deadlines share a
    /// wake-up). Arming a deadline again moves it.
    case arm(Deadline, at: Double, early: Double)
    case cancel(Deadline)
    /// Stop the server's socket's responder (if any), then close the socket.
    case closeSocket(server: String)
    /// Answer every connection to the server's held socket with HTTP 503 and this reason (nil: stop answering,
    /// connections wait in the backlog for the next child again). Emitted whenever the server's
    /// `unavailability` changes, after the event's other effects.
    case answerUnavailable(server: String, Unavailability?)
    /// Write the port registry to the state folder (one atomic write).
    case writeRegistry(PortRegistry)
    case answer(RequestID, ControlAnswer)
    /// The shutdown is complete: every child is reaped and every socket closed.
    case stopped
    /// Count something in the supervisor's metrics (docs/metrics.md); the machine decides what and why.
    case count(MetricEvent)
}

/// What the supervisor's metrics count as the machine decides it (the daemon only adds it up).
public enum MetricEvent: Equatable, Sendable {
    /// A replica is started again: after an exit its restart policy restarts (once per backoff restart, as
    /// status's `restarts` counts them; a fatal cool-down's retry is not one), or by an admin.
    case restart(ReplicaID, RestartReason)

    /// The replica it is about.
    public var replica: ReplicaID {
        switch self {
        case .restart(let id, _): return id
        }
    }
}

/// Why a replica is started again: the `reason` label of `mcp_supervisor_restarts_total`.
public enum RestartReason: String, Sendable, CaseIterable {
    /// It exited by itself (any status, 0 included) and its restart policy starts it again.
    case exit
    /// A signal the supervisor did not send killed it (SIGSEGV, an outside SIGKILL, the OOM killer, ...).
    case crash
    /// Killed by the supervisor as hung: no heartbeat answer within the timeout, or its event loop stopped
    /// answering health probes.
    case hang
    /// Killed by the supervisor because it did not say ready within its start timeout.
    case startTimeout = "start_timeout"
    /// Killed by the supervisor because its health probes made it unhealthy.
    case unhealthy
    /// `mcpctl restart` (each replica that had a process) or `mcpctl restart --rolling` (each replica replaced).
    case admin

    /// The reason an exit gives for the restart that follows it.
    public init(_ exit: ExitReason) {
        switch exit {
        case .exited: self = .exit
        case .signaled: self = .crash
        case .hung: self = .hang
        case .startTimeout: self = .startTimeout
        case .unhealthy: self = .unhealthy
        case .outOfMemory: self = .crash
        }
    }
}

/// One structured log record. `text` is the line the supervisor writes today (after `mcp-supervisor: `);
/// the event name (a `LogEventName` of Contracts) and the fields are there for a structured log handler.
public struct LogRecord: Equatable, Sendable {
    public enum Level: String, Sendable {
        case info, notice, warning, error
    }

    public var level: Level
    /// What happened: a `LogEventName` (`child.start`, `child.exit`, `child.restart`, `config.reload`, ...).
    public var event: String
    public var server: String?
    public var replica: Int?
    public var pid: Int32?
    /// The message without the subject (`server#replica[pid]`).
    public var message: String
    /// The event's own fields (JSON values, so numbers stay numbers in a JSON log line).
    public var fields: [String: JSONValue]
    /// Whether the subject names the replica (servers with more than one).
    public var namesReplica: Bool
    /// Whether the text names the pid: a backoff line is about the replica, not the process that already exited,
    /// so it carries the pid as a field only.
    public var showsPID: Bool

    public init(
        _ level: Level, _ event: String, server: String? = nil, replica: Int? = nil, namesReplica: Bool = false,
        pid: Int32? = nil, showsPID: Bool = true, _ message: String, fields: [String: JSONValue] = [:]
    ) {
        self.level = level
        self.event = event
        self.server = server
        self.replica = replica
        self.namesReplica = namesReplica
        self.pid = pid
        self.showsPID = showsPID
        self.message = message
        self.fields = fields
    }

    /// `name#i[pid]: message`, the form every supervisor line has had.
    public var text: String {
        guard let server else { return message }
        var subject = server
        if namesReplica, let replica { subject += "#\(replica)" }
        if let pid, showsPID { subject += "[\(pid)]" }
        return subject + ": " + message
    }
}
