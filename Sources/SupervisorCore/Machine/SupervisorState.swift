import Contracts

/// One configured server as the machine holds it: one phase, its port, its replicas.
public struct ServerState: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        /// Wanted and not launched: waiting for its dependencies to be ready, or for its port (`failure`).
        /// `announced`: the wait was logged once.
        case waiting(announced: Bool)
        /// Its replicas exist for the current configuration; each follows its own lifecycle.
        case launched
        /// Every replica was asked to stop; `then` says what follows once all are down.
        case stopping(then: AfterStop)
        /// Down on request (or by the shutdown); only `start`, `restart` or a reload that changes it bring it back.
        case stopped
    }

    public enum AfterStop: Sendable, Equatable {
        case stayStopped
        /// Come back with this configuration (a reload changed it, or a restart).
        case start(ServerConfig)
        /// A reload removed it: close its socket and forget it.
        case remove
    }

    public internal(set) var config: ServerConfig
    public internal(set) var phase: Phase = .waiting(announced: false)
    /// The port it listens on (kept while the socket is closed, for status).
    public internal(set) var port: Int?
    /// The daemon holds its listening socket.
    public internal(set) var listening = false
    /// Why it cannot run (its port is taken, ...); cleared by the next successful bind.
    public internal(set) var failure: String?
    public internal(set) var replicas: [ReplicaState] = []
    /// A rolling restart in progress (`mcpctl restart --rolling`).
    public internal(set) var rolling: RollingStage?

    public var name: String { config.name }

    init(config: ServerConfig) { self.config = config }

    /// At least one replica said ready.
    public var isReady: Bool {
        replicas.contains { if case .running = $0.lifecycle.phase { return true } else { return false } }
    }

    /// No replica has a process.
    public var isDown: Bool { replicas.allSatisfy { $0.pid == nil } }

    /// The state `status` reports, from the phase alone (and, while launched, from the replicas).
    public var status: ServerStatus {
        switch phase {
        case .stopped: return .stopped
        case .stopping: return .stopping
        case .waiting: return failure != nil ? .failed : .waiting
        case .launched:
            if failure != nil { return .failed }
            if isReady { return .running }
            return isDown ? .down : .starting
        }
    }

    /// `name` or `name#i`, as logs and child output name a replica.
    public func label(_ index: Int) -> String { config.replicas > 1 ? "\(name)#\(index)" : name }
}

/// Where a rolling restart is. A spare replica (index `replicas`, one past the configured ones) is started first
/// and serves on the shared socket while each replica in turn is stopped (it drains: calls in flight finish) and
/// started again; the spare is stopped once the last one is ready. Serving processes never drop below the
/// configured count, and an old process is stopped only after the spare is ready.
public enum RollingStage: Sendable, Equatable {
    case spareStarting
    case replacing(index: Int, stopping: Bool)
    case spareStopping
}

/// One replica: its lifecycle (restart policy), its health, its probe and the heartbeat's last answer.
public struct ReplicaState: Sendable, Equatable {
    public let index: Int
    public internal(set) var lifecycle = ReplicaLifecycle()
    public internal(set) var health = HealthTracker()
    public internal(set) var probe: ProbeState = .idle(nextDue: nil)
    /// When the current process was spawned (uptime, "ready in").
    public internal(set) var spawnedAt = 0.0
    /// Seconds from spawn to ready of the last start that became ready (nil before the first).
    public internal(set) var startDuration: Double?
    /// How the last process of this replica ended, as waitid(2) reported it (nil before any exit).
    public internal(set) var lastExitStatus: ChildStatus?
    /// Why the supervisor killed the current process, if it did (the exit then reports this reason).
    var forcedReason: ExitReason?
    /// The last answer on the control channel (heartbeat).
    var lastAnswer = 0.0
    var pingSeq = 0
    var probeSeq = 0

    init(index: Int) { self.index = index }

    /// The current process, if there is one.
    public var pid: Int32? { lifecycle.phase.pid }
}

/// A replica's probing: idle until the next periodic probe, or one probe in flight (never more).
public enum ProbeState: Sendable, Equatable {
    case idle(nextDue: Double?)
    /// `nextDue`: the periodic probe that a shallower on-demand probe leaves where it was.
    case inFlight(ProbeInFlight, nextDue: Double?)
}

public struct ProbeInFlight: Sendable, Equatable {
    public var seq: Int
    public var level: HealthLevel
    public var pid: Int32
    public var started: Double
    /// `health` requests waiting on this replica, each for a probe of at least its level.
    public var waiters: [HealthWaiter] = []
}

public struct HealthWaiter: Sendable, Equatable {
    public var request: RequestID
    public var level: HealthLevel
}

/// A server whose port is answered at once instead of holding clients in the backlog: it is down and is not
/// coming back by itself soon (fatal until its cool-down ends, stopped by an admin, or exited for good). The
/// daemon answers each connection on the held socket with HTTP 503 (docs/reliability.md, "Answers while a
/// server is down"); a server that is starting, restarting or in backoff is not unavailable: its connections wait
/// in the backlog for the next child, as ever.
public struct Unavailability: Sendable, Equatable {
    public enum State: String, Sendable {
        case fatal
        case stopped
        case exited
    }

    public var state: State
    /// Monotonic seconds at which it is tried again (the end of a fatal cool-down); nil: not by itself.
    public var retryAt: Double?
    /// Why, for people: "restarted too often (exited with status 3)".
    public var reason: String

    public init(state: State, retryAt: Double?, reason: String) {
        self.state = state
        self.retryAt = retryAt
        self.reason = reason
    }
}

extension ServerState {
    /// Whether the port should be answered with 503 now (see `Unavailability`): only while the daemon holds the
    /// socket and no replica has, or is about to get, a process.
    public var unavailability: Unavailability? {
        guard listening else { return nil }
        switch phase {
        case .stopped:
            return Unavailability(
                state: .stopped, retryAt: nil, reason: "stopped by an admin (mcpctl start brings it back)")
        case .launched:
            guard failure == nil, !replicas.isEmpty else { return nil }
            var retryAt: Double?
            var exitReason: String?
            for replica in replicas {
                switch replica.lifecycle.phase {
                case .fatal(let at):
                    retryAt = min(retryAt ?? at, at)
                    exitReason = exitReason ?? replica.lifecycle.lastExit?.description
                case .exited(let why): exitReason = exitReason ?? why.description
                default: return nil
                }
            }
            if let retryAt {
                let why = exitReason.map { "restarted too often (\($0))" } ?? "restarted too often"
                return Unavailability(state: .fatal, retryAt: retryAt, reason: why)
            }
            return Unavailability(
                state: .exited, retryAt: nil,
                reason: (exitReason ?? "exited") + "; its restart policy does not restart it (mcpctl start does)")
        case .waiting, .stopping:
            return nil
        }
    }
}
