import Contracts
import MCPProtocol

/// Every decision of the supervisor, as one value: events in, effects out.
///
/// The daemon (`Sources/Supervisor`) performs the effects in order and feeds back what happens: a spawn's
/// result, a child's messages and exit, the end of a probe, a reached deadline, a control request. Nothing here
/// touches a process, a socket or a clock: `now` comes with each event, and the one question asked in the middle
/// of a decision — can this port be bound? — goes to `Inputs.bind`, because the port registry's choice of a
/// dynamic port depends on the answer. Start order with readiness-gated dependencies, stop in reverse order,
/// reload by difference, restart policy, backoff, intensity and cool-down (`ReplicaLifecycle`), and health
/// verdicts (`HealthTracker`) are all decided here, in the style of service-lifecycle's `ServiceGroup`.
public struct SupervisorMachine {
    /// What the daemon supplies with each event.
    public struct Inputs {
        /// Monotonic seconds.
        public var now: Double
        /// A number in [0, 1) for the backoff's jitter.
        public var random: () -> Double
        /// Binds `port` on `address` for `server` and keeps the socket; false if the port is taken. It must not
        /// read the machine (it runs in the middle of a decision).
        public var bind: (_ server: String, _ address: String, _ port: Int) -> Bool

        public init(
            now: Double, random: @escaping () -> Double, bind: @escaping (String, String, Int) -> Bool
        ) {
            self.now = now
            self.random = random
            self.bind = bind
        }
    }

    public enum Phase: Sendable, Equatable {
        case idle
        case running
        case shuttingDown
        /// The shutdown completed.
        case stopped
    }

    public private(set) var config: SupervisorConfig
    public private(set) var phase: Phase = .idle
    public private(set) var servers: [String: ServerState] = [:]
    public private(set) var registry = PortRegistry()
    /// Armed deadlines: when, and how early is as good. A deadline event for anything else is stale.
    public private(set) var deadlines: [Deadline: (at: Double, early: Double)] = [:]
    /// The servers whose ports are answered with 503, as last told to the daemon.
    public private(set) var unavailable: [String: Unavailability] = [:]
    /// `health` requests waiting for their replicas, with the answers so far.
    private var healthRequests: [RequestID: PendingHealth] = [:]

    private var effects: [SupervisorEffect] = []
    private var now = 0.0
    private var random: () -> Double = { 0.5 }
    private var bind: (String, String, Int) -> Bool = { _, _, _ in false }

    private struct PendingHealth {
        var server: String
        var level: HealthLevel
        var answers: [ReplicaHealth?]
    }

    public init(config: SupervisorConfig) { self.config = config }

    public var isShuttingDown: Bool { phase == .shuttingDown || phase == .stopped }

    /// Handles one event and returns what to do, in order.
    public mutating func handle(_ event: SupervisorEvent, _ inputs: Inputs) -> [SupervisorEffect] {
        now = inputs.now
        random = inputs.random
        bind = inputs.bind
        effects = []
        switch event {
        case .start(let recorded, let stopped): start(recorded, stopped: stopped)
        case .reloaded(let result, let request): reload(result, request)
        case .spawned(let id, let pid): spawned(id, pid)
        case .spawnFailed(let id, let message): spawnFailed(id, message)
        case .ready(let id): ready(id)
        case .answered(let id):
            let time = now
            update(id) { $0.lastAnswer = time }
        case .stopMessageFailed(let id):
            if let pid = replica(id)?.pid { effects.append(.signal(id, pid: pid, .terminate)) }
        case .exited(let id, let pid, let status): exited(id, pid, status)
        case .outOfMemory(let id, let pid, let reason):
            if replica(id)?.pid == pid { update(id) { $0.forcedReason = .outOfMemory(reason) } }
        case .probeFinished(let id, let seq, let findings): probeFinished(id, seq, findings)
        case .deadline(let deadline): reached(deadline)
        case .control(let request, let id): control(request, id)
        case .shutdown: shutdown()
        }
        syncUnavailable(Self.onlyServer(of: event))
        random = { 0.5 }
        bind = { _, _, _ in false }
        defer { effects = [] }
        return effects
    }

    /// The one server whose `unavailability` an event can change, for the frequent events that touch only their own
    /// replica's liveness (answers, heartbeats, probes, a spawn, readiness: none ends, stops or brings back a whole
    /// server); nil for every other event, after which every server is looked at. Looking at all 50 servers after
    /// each of these cost the supervisor 0.4 % of a core with probes every second (bench/compare.sh, issue 17).
    static func onlyServer(of event: SupervisorEvent) -> String? {
        switch event {
        case .answered(let id), .spawned(let id, _), .ready(let id), .probeFinished(let id, _, _),
            .deadline(.heartbeat(let id)), .deadline(.probe(let id)):
            return id.server
        default: return nil
        }
    }

    /// Tells the daemon of every server whose `unavailability` changed with this event (none while shutting down:
    /// the sockets then wait for the next supervisor, in systemd's fd store or in the kernel's backlog); `only`:
    /// the one server the event can have changed.
    private mutating func syncUnavailable(_ only: String?) {
        if let only, !isShuttingDown, let server = servers[only] {
            let answer = server.unavailability
            if unavailable[only] != answer {
                unavailable[only] = answer
                effects.append(.answerUnavailable(server: only, answer))
            }
            return
        }
        for name in unavailable.keys.sorted() where servers[name] == nil || isShuttingDown {
            unavailable[name] = nil
            effects.append(.answerUnavailable(server: name, nil))
        }
        guard !isShuttingDown else { return }
        var changed: [(String, Unavailability?)] = []
        for name in servers.keys {
            let answer = servers[name]?.unavailability
            if unavailable[name] != answer { changed.append((name, answer)) }
        }
        for (name, answer) in changed.sorted(by: { $0.0 < $1.0 }) {
            unavailable[name] = answer
            effects.append(.answerUnavailable(server: name, answer))
        }
    }

    // MARK: Start

    private mutating func start(_ recorded: PortRegistry, stopped: Set<String>) {
        guard phase == .idle else { return }
        phase = .running
        registry = recorded
        for server in config.servers { servers[server.name] = ServerState(config: server) }
        log(.info, LogEventName.supervisorStart, "starting \(servers.count) server(s) from \(config.mainFile)")
        // Stopped by an admin before this start: stay stopped, with the port bound as `stop` leaves it.
        var registryChanged = false
        for name in stopped.sorted() where servers[name] != nil {
            _ = bindPort(name, registryChanged: &registryChanged)
            servers[name]?.phase = .stopped
            log(
                .notice, LogEventName.serverRequest, server: name,
                "kept stopped: an admin stopped it before the supervisor restarted (mcpctl start brings it back)",
                fields: ["op": "stop"])
        }
        if registryChanged { effects.append(.writeRegistry(registry)) }
        startPending()
    }

    /// Starts every server that is waiting and whose dependencies are ready, in dependency order.
    private mutating func startPending() {
        guard phase == .running else { return }
        var launching: [String] = []
        var registryChanged = false
        for name in DependencyOrder.startOrder(config.servers) {
            guard let server = servers[name], case .waiting(let announced) = server.phase else { continue }
            let waitingFor = server.config.dependsOn.filter { !(servers[$0]?.isReady ?? false) }
            if !waitingFor.isEmpty {
                if !announced {
                    log(
                        .info, LogEventName.serverWaiting, server: name,
                        "waiting for \(waitingFor.joined(separator: ", ")) to be ready",
                        fields: ["dependencies": .array(waitingFor.map { .string($0) })])
                    servers[name]?.phase = .waiting(announced: true)
                }
                continue
            }
            guard bindPort(name, registryChanged: &registryChanged) else { continue }
            servers[name]?.phase = .launched
            launching.append(name)
        }
        // New dynamic ports reach the disk (one atomic write for the round) before any client can learn them.
        if registryChanged { effects.append(.writeRegistry(registry)) }
        for name in launching {
            guard var server = servers[name] else { continue }
            // Fresh replicas; what the metrics report of the last life (its exit, its start) stays until replaced.
            let previous = server.replicas
            server.replicas = (0..<server.config.replicas).map { index in
                var fresh = ReplicaState(index: index)
                if previous.indices.contains(index) {
                    fresh.lastExitStatus = previous[index].lastExitStatus
                    fresh.startDuration = previous[index].startDuration
                }
                return fresh
            }
            servers[name] = server
            log(
                .info, LogEventName.serverStart, server: name,
                "starting \(server.config.replicas) replica(s) on \(config.listenAddress):\(server.port ?? 0)",
                fields: ["port": .int(Int64(server.port ?? 0)), "replicas": .int(Int64(server.config.replicas))])
            for index in server.replicas.indices { spawn(ReplicaID(server: name, index: index)) }
        }
    }

    /// Binds the server's port (once; the socket is kept) and records a dynamic assignment.
    private mutating func bindPort(_ name: String, registryChanged: inout Bool) -> Bool {
        guard let server = servers[name] else { return false }
        if server.listening { return true }
        var reserved = Set(config.servers.compactMap(\.port))
        reserved.remove(server.config.port ?? -1)
        let before = registry
        let bind = self.bind
        let address = config.listenAddress
        let result = registry.port(for: server.config, range: config.portRange, reserved: reserved) { port in
            bind(name, address, port)
        }
        switch result {
        case .success(let port):
            servers[name]?.listening = true
            servers[name]?.port = port
            servers[name]?.failure = nil
            if registry != before { registryChanged = true }
            return true
        case .failure(let error):
            servers[name]?.failure = "\(error)"
            log(
                .error, LogEventName.serverListenFailed, server: name,
                "cannot listen on \(config.listenAddress): \(error); this server stays down, the others run")
            return false
        }
    }

    // MARK: Replicas

    private mutating func spawn(_ id: ReplicaID) {
        guard phase == .running, let server = servers[id.server], server.listening,
            server.replicas.indices.contains(id.index)
        else { return }
        effects.append(.spawn(id))
    }

    private mutating func spawned(_ id: ReplicaID, _ pid: Int32) {
        guard let server = servers[id.server] else { return }
        let time = now
        update(id) { replica in
            replica.lifecycle.spawned(pid: pid, at: time)
            replica.spawnedAt = time
            replica.forcedReason = nil
            replica.health.started()
            replica.probe = .idle(nextDue: nil)
        }
        log(
            .info, LogEventName.childStart, id, pid: pid, "starting",
            fields: ["restarts": .int(Int64(replica(id)?.lifecycle.restarts ?? 0))])
        arm(.startTimeout(id), at: now + server.config.startTimeout)
    }

    private mutating func spawnFailed(_ id: ReplicaID, _ message: String) {
        guard let server = servers[id.server], var replica = replica(id) else { return }
        log(.error, LogEventName.childSpawnFailed, id, message)
        // Like an immediate failed exit, so backoff and intensity apply.
        replica.lifecycle.spawned(pid: 0, at: now)
        let decision = replica.lifecycle.exited(
            .exited(127), at: now, mode: server.config.restart, backoff: server.config.backoff,
            intensity: server.config.intensity, random: random())
        servers[id.server]?.replicas[id.index] = replica
        decide(id, decision, because: .exit)
    }

    private mutating func ready(_ id: ReplicaID) {
        guard let server = servers[id.server], var replica = replica(id), replica.lifecycle.ready(at: now),
            let pid = replica.pid
        else { return }
        replica.lastAnswer = now
        replica.startDuration = now - replica.spawnedAt
        servers[id.server]?.replicas[id.index] = replica
        cancel(.startTimeout(id))
        let ms = Int(((now - replica.spawnedAt) * 1000).rounded())
        log(
            .info, LogEventName.childReady, id, pid: pid, "running (ready in \(ms) ms)",
            fields: ["ready_ms": .int(Int64(ms))])
        arm(.heartbeat(id), at: now + server.config.heartbeatInterval, early: server.config.heartbeatInterval * 0.1)
        scheduleProbe(id, after: 0)  // the first probe right away: initializing ends within one timeout
        startPending()
        advanceRolling(id.server)
    }

    /// One heartbeat check: kill a replica silent for longer than its timeout, else ping it when due.
    private mutating func heartbeat(_ id: ReplicaID) {
        guard let server = servers[id.server], let replica = replica(id),
            case .running(let pid, _) =
                replica.lifecycle.phase
        else { return }
        let interval = server.config.heartbeatInterval
        let silent = now - replica.lastAnswer
        if silent > server.config.heartbeatTimeout {
            log(
                .error, LogEventName.childHung, id, pid: pid,
                "no heartbeat answer for \(Int(silent)) s; killing it as hung")
            kill(id, pid, because: .hung)
            return
        }
        // A probe's answer from the event loop is as good as a pong: no ping while one is fresh, and none at all
        // while periodic probes come often enough to keep it fresh (two per timeout).
        let health = server.config.health
        if health.interval > 0 && health.interval <= server.config.heartbeatTimeout / 2 {
            arm(.heartbeat(id), at: now + interval, early: interval * 0.1)
            return
        }
        if silent < interval * 0.5 {
            arm(.heartbeat(id), at: replica.lastAnswer + interval, early: interval * 0.1)
            return
        }
        let seq = replica.pingSeq + 1
        update(id) { $0.pingSeq = seq }
        effects.append(.sendPing(id, seq: seq))
        arm(.heartbeat(id), at: now + interval, early: interval * 0.1)
    }

    private mutating func kill(_ id: ReplicaID, _ pid: Int32, because reason: ExitReason) {
        update(id) { $0.forcedReason = reason }
        effects.append(.signal(id, pid: pid, .killGroup))
    }

    private mutating func exited(_ id: ReplicaID, _ pid: Int32, _ status: ChildStatus) {
        guard let server = servers[id.server], var replica = replica(id), replica.pid == pid else { return }
        for deadline in [
            Deadline.startTimeout(id), .stopTimeout(id), .killTimeout(id), .heartbeat(id), .probe(id),
        ] { cancel(deadline) }
        let reason: ExitReason
        if let forced = replica.forcedReason {
            reason = forced
        } else {
            switch status {
            case .exited(let code): reason = .exited(code)
            case .signaled(let signal): reason = .signaled(signal)
            }
        }
        let decision = replica.lifecycle.exited(
            reason, at: now, mode: server.config.restart, backoff: server.config.backoff,
            intensity: server.config.intensity, random: random())
        // The process is gone: the probe in flight ends, its waiters are answered, the state is offline.
        let waiters: [HealthWaiter]
        if case .inFlight(let run, _) = replica.probe { waiters = run.waiters } else { waiters = [] }
        replica.probe = .idle(nextDue: nil)
        replica.health.stopped("\(reason)")
        replica.lastExitStatus = status
        servers[id.server]?.replicas[id.index] = replica
        var exit: [String: JSONValue] = ["reason": .string("\(reason)")]
        if case .exited(let status) = reason { exit["status"] = .int(Int64(status)) }
        if case .signaled(let signal) = reason { exit["signal"] = .int(Int64(signal)) }
        log(.notice, LogEventName.childExit, id, pid: pid, "\(reason)", fields: exit)
        for waiter in waiters { answered(waiter.request, id) }
        decide(id, decision, because: RestartReason(reason), exitedPID: pid)
        if phase == .shuttingDown || isStopping(id.server) { stepStop() }
        advanceRolling(id.server)
    }

    /// `because`: the restart's reason for the metrics. `exitedPID`: the process whose end this decides about, a
    /// field of the line but not in its text (the decision is about the replica).
    private mutating func decide(
        _ id: ReplicaID, _ decision: ReplicaLifecycle.Decision, because reason: RestartReason,
        exitedPID: Int32? = nil
    ) {
        switch decision {
        case .none: break
        case .stay(let why):
            let phaseName = replica(id)?.lifecycle.phase.name ?? "stopped"
            log(.notice, LogEventName.childStay, id, pid: exitedPID, showsPID: false, "\(phaseName): \(why)")
        case .restart(let delay, let why):
            log(
                .notice, LogEventName.childRestart, id, pid: exitedPID, showsPID: false, "backoff: \(why)",
                fields: [
                    "delay_s": .double(delay), "restarts": .int(Int64(replica(id)?.lifecycle.restarts ?? 0)),
                ])
            effects.append(.count(.restart(id, reason)))
            arm(.retry(id), at: now + delay)
        case .fatal(let cooldown, let why):
            log(
                .error, LogEventName.childFatal, id, pid: exitedPID, showsPID: false, "fatal: \(why)",
                fields: ["cooldown_s": .double(cooldown)])
            arm(.retry(id), at: now + cooldown)
        }
    }

    // MARK: Deadlines

    private mutating func reached(_ deadline: Deadline) {
        guard let armed = deadlines[deadline], armed.at - armed.early <= now + 0.000_5 else { return }
        deadlines[deadline] = nil
        switch deadline {
        case .startTimeout(let id):
            guard let server = servers[id.server], let replica = replica(id),
                case .starting(let pid, _) = replica.lifecycle.phase
            else { return }
            log(
                .error, LogEventName.childStartTimeout, id, pid: pid,
                "not ready within \(server.config.startTimeout) s; killing it")
            kill(id, pid, because: .startTimeout)
        case .stopTimeout(let id):
            guard let server = servers[id.server], let pid = replica(id)?.pid else { return }
            let timeout = server.config.stopTimeout
            log(
                .warning, LogEventName.childStopEscalated, id, pid: pid,
                "still running \(timeout) s after the stop message; SIGTERM", fields: ["signal": "SIGTERM"])
            effects.append(.signal(id, pid: pid, .terminate))
            arm(.killTimeout(id), at: now + timeout)
        case .killTimeout(let id):
            guard let pid = replica(id)?.pid else { return }
            log(
                .warning, LogEventName.childStopEscalated, id, pid: pid,
                "still running after SIGTERM; SIGKILL to its process group",
                fields: ["signal": "SIGKILL"])
            effects.append(.signal(id, pid: pid, .killGroup))
        case .retry(let id):
            // Reached within its tolerance is reached: the lifecycle's own check must not find it early (it did,
            // by up to 0.5 ms, and the deadline was gone with the replica left in backoff for good).
            guard phase == .running, servers[id.server]?.phase == .launched, var replica = replica(id),
                replica.lifecycle.timerFired(at: max(now, armed.at))
            else { return }
            servers[id.server]?.replicas[id.index] = replica
            spawn(id)
        case .heartbeat(let id):
            heartbeat(id)
        case .probe(let id):
            guard let server = servers[id.server], let replica = replica(id) else { return }
            switch replica.probe {
            case .inFlight(let run, _):
                effects.append(.endProbe(id, seq: run.seq))
            case .idle(.some):
                update(id) { $0.probe = .idle(nextDue: nil) }
                probe(id, level: server.config.health.level, waiter: nil)
            case .idle(.none):
                break
            }
        case .orphanReap, .selfCheck, .unavailableAnswers:
            break  // the daemon's, not a decision
        }
    }

    private mutating func arm(_ deadline: Deadline, at: Double, early: Double = 0.000_5) {
        deadlines[deadline] = (at, early)
        effects.append(.arm(deadline, at: at, early: early))
    }

    private mutating func cancel(_ deadline: Deadline) {
        guard deadlines.removeValue(forKey: deadline) != nil else { return }
        effects.append(.cancel(deadline))
    }

    // MARK: Health

    /// Sets the next periodic probe of a running replica (none when the interval is 0).
    private mutating func scheduleProbe(_ id: ReplicaID, after delay: Double) {
        guard let server = servers[id.server], let replica = replica(id) else { return }
        let interval = server.config.health.interval
        guard interval > 0, case .running = replica.lifecycle.phase else {
            if case .idle = replica.probe {
                update(id) { $0.probe = .idle(nextDue: nil) }
                cancel(.probe(id))
            }
            return
        }
        let due = now + delay
        update(id) { $0.probe = .idle(nextDue: due) }
        arm(.probe(id), at: due, early: interval * 0.1)
    }

    /// Starts a probe of `level` on a ready replica, or joins the one in flight (at most one per child). A waiter
    /// asking for more than the running probe looks at gets the next one. An on-demand probe leaves the periodic
    /// one where it was.
    private mutating func probe(_ id: ReplicaID, level: HealthLevel, waiter: RequestID?) {
        guard let server = servers[id.server], let replica = replica(id) else { return }
        if case .inFlight(var run, let due) = replica.probe {
            if let waiter { run.waiters.append(HealthWaiter(request: waiter, level: level)) }
            update(id) { $0.probe = .inFlight(run, nextDue: due) }
            return
        }
        guard case .running(let pid, _) = replica.lifecycle.phase else {
            if let waiter { answered(waiter, id) }
            return
        }
        guard case .idle(let due) = replica.probe else { return }
        let seq = replica.probeSeq + 1
        var run = ProbeInFlight(seq: seq, level: level, pid: pid, started: now)
        if let waiter { run.waiters.append(HealthWaiter(request: waiter, level: level)) }
        update(id) { replica in
            replica.probeSeq = seq
            replica.probe = .inFlight(run, nextDue: due)
        }
        arm(.probe(id), at: now + server.config.health.timeout, early: 0.001)
        effects.append(.startProbe(id, seq: seq, level: level))
    }

    private mutating func probeFinished(_ id: ReplicaID, _ seq: Int, _ findings: ProbeFindings) {
        guard let server = servers[id.server], var replica = replica(id),
            case .inFlight(let run, let due) = replica.probe, run.seq == seq
        else { return }
        let config = server.config.health
        replica.probe = .idle(nextDue: due)
        let outcome = findings.outcome(config)
        let before = replica.health.state
        // A pass at a shallower level than the configured one says nothing about the deeper parts (an admin's
        // `health --level basic` must not reset the failures of the detailed probes); its failures still count.
        let shallowPass = run.level < config.level && outcome == .passed
        let verdict: HealthTracker.Verdict = shallowPass ? .none : replica.health.record(outcome, config: config)
        servers[id.server]?.replicas[id.index] = replica
        if replica.health.state != before {
            let why = replica.health.reason.map { ": \($0)" } ?? ""
            log(
                .notice, LogEventName.childHealth, id, pid: run.pid,
                "health \(before.rawValue) -> \(replica.health.state.rawValue)\(why)",
                fields: ["from": .string(before.rawValue), "to": .string(replica.health.state.rawValue)])
        }
        // Only a running child is killed for its health: one being stopped already goes down gracefully.
        if case .becameUnhealthy(let why) = verdict, case .running(let pid, _) = replica.lifecycle.phase,
            pid == run.pid
        {
            if !findings.loopAnswered {
                log(.error, LogEventName.childHung, id, pid: pid, "hung (\(why)); killing it")
                kill(id, pid, because: .hung)
            } else if server.config.restart != .never {
                log(.error, LogEventName.childUnhealthy, id, pid: pid, "unhealthy (\(why)); killing it to restart")
                kill(id, pid, because: .unhealthy)
            } else {
                log(
                    .warning, LogEventName.childUnhealthy, id, pid: pid,
                    "unhealthy (\(why)); left running (restart = \"never\")")
            }
        }
        // Waiters satisfied by this level get the answer; the others get a deeper probe next.
        let later = run.waiters.filter { $0.level > run.level }
        for waiter in run.waiters where waiter.level <= run.level { answered(waiter.request, id) }
        let alive = replica.pid != nil
        if alive, let deepest = later.map(\.level).max() {
            probe(id, level: deepest, waiter: nil)
            if case .inFlight(var next, let nextDue) = self.replica(id)?.probe, next.seq != run.seq {
                next.waiters = later
                update(id) { $0.probe = .inFlight(next, nextDue: nextDue) }
            } else {
                for waiter in later { answered(waiter.request, id) }  // it is stopping: nothing more to probe
            }
        } else {
            for waiter in later { answered(waiter.request, id) }
            guard alive else { return }
            if run.level >= config.level || due == nil {
                // This probe covered the periodic one: the next is an interval after its start.
                scheduleProbe(id, after: max(0, config.interval - (now - run.started)))
            } else if let due {
                arm(.probe(id), at: due, early: config.interval * 0.1)  // where the periodic one was
            }
        }
    }

    private mutating func healthRequest(_ name: String, _ level: HealthLevel, _ request: RequestID) {
        guard let server = servers[name] else {
            effects.append(.answer(request, .unknownServer(name)))
            return
        }
        healthRequests[request] = PendingHealth(
            server: name, level: level, answers: Array(repeating: nil, count: server.replicas.count))
        if server.replicas.isEmpty {
            finishHealth(request)
            return
        }
        for index in server.replicas.indices {
            probe(ReplicaID(server: name, index: index), level: level, waiter: request)
        }
    }

    /// A replica has its answer for a `health` request; the request is answered once every replica has one.
    private mutating func answered(_ request: RequestID, _ id: ReplicaID) {
        guard var pending = healthRequests[request], pending.answers.indices.contains(id.index),
            let replica = replica(id)
        else { return }
        pending.answers[id.index] = ReplicaHealth(
            index: id.index, pid: replica.pid, state: replica.health.state, reason: replica.health.reason)
        healthRequests[request] = pending
        if pending.answers.allSatisfy({ $0 != nil }) { finishHealth(request) }
    }

    private mutating func finishHealth(_ request: RequestID) {
        guard let pending = healthRequests.removeValue(forKey: request) else { return }
        let states =
            servers[pending.server]?.replicas.map(\.health.state) ?? pending.answers.map { $0?.state ?? .offline }
        effects.append(
            .answer(
                request,
                .health(
                    ServerHealth(
                        server: pending.server, level: pending.level, state: HealthAggregate.state(states),
                        score: HealthAggregate.score(states), replicas: pending.answers.compactMap { $0 }))))
    }

    // MARK: Stop

    /// Stops one replica: the stop message, then SIGTERM, then SIGKILL to its process group, each after
    /// `stop_timeout`.
    private mutating func stopReplica(_ id: ReplicaID) {
        guard let server = servers[id.server], var replica = replica(id) else { return }
        cancel(.retry(id))
        cancel(.startTimeout(id))
        cancel(.heartbeat(id))
        switch replica.probe {
        case .idle:
            replica.probe = .idle(nextDue: nil)
            cancel(.probe(id))
        case .inFlight(let run, _):
            replica.probe = .inFlight(run, nextDue: nil)  // it ends by itself or at its deadline
        }
        let pid = replica.lifecycle.stopRequested(at: now)
        servers[id.server]?.replicas[id.index] = replica
        guard let pid else { return }
        log(.info, LogEventName.childStop, id, pid: pid, "stopping")
        effects.append(.sendStop(id))
        arm(.stopTimeout(id), at: now + server.config.stopTimeout)
    }

    /// Stops a whole server; `stepStop` finishes the job as exits arrive.
    private mutating func stopServer(_ name: String, then next: ServerState.AfterStop) {
        guard let server = servers[name] else { return }
        if server.rolling != nil {
            servers[name]?.rolling = nil  // the spare is stopped with the others and dropped at the relaunch
            log(.notice, LogEventName.serverRequest, server: name, "rolling restart abandoned: the server stops")
        }
        servers[name]?.phase = .stopping(then: next)
        for index in server.replicas.indices { stopReplica(ReplicaID(server: name, index: index)) }
    }

    /// Stops servers in reverse dependency order as their dependents go down (during a shutdown), settles the
    /// servers that are fully down, starts what is pending, and completes the shutdown when nothing runs.
    private mutating func stepStop() {
        if phase == .shuttingDown {
            for name in DependencyOrder.stopOrder(config.servers) {
                guard let server = servers[name] else { continue }
                switch server.phase {
                case .waiting, .launched: break
                case .stopping, .stopped: continue  // each server is stopped once per shutdown
                }
                let dependents = config.servers.filter { $0.dependsOn.contains(name) }.map(\.name)
                if dependents.allSatisfy({ servers[$0]?.isDown ?? true }) { stopServer(name, then: .stayStopped) }
            }
        }
        for name in servers.keys.sorted() {
            guard let server = servers[name], case .stopping(let next) = server.phase, server.isDown else { continue }
            switch next {
            case .stayStopped:
                servers[name]?.phase = .stopped
            case .remove:
                closeSocket(name)
                servers[name] = nil
                log(.info, LogEventName.serverRemoved, server: name, "removed")
            case .start(let config):
                // Changed by a reload, or restarted: come back with that configuration (the port is kept unless
                // it changed).
                if config.port != server.config.port { closeSocket(name) }
                servers[name]?.config = config
                servers[name]?.phase = .waiting(announced: false)
            }
        }
        if phase == .running { startPending() }
        if phase == .shuttingDown, servers.values.allSatisfy(\.isDown) {
            phase = .stopped
            for name in servers.keys.sorted() { closeSocket(name) }
            log(.info, LogEventName.supervisorStopped, "all servers stopped")
            effects.append(.stopped)
        }
    }

    private mutating func closeSocket(_ name: String) {
        guard servers[name]?.listening == true else { return }
        servers[name]?.listening = false
        effects.append(.closeSocket(server: name))
    }

    /// Graceful shutdown in reverse dependency order; `stopped` follows once every child is reaped.
    private mutating func shutdown() {
        guard phase == .running || phase == .idle else { return }
        phase = .shuttingDown
        log(.info, LogEventName.supervisorStop, "stopping all servers")
        for name in servers.keys {
            // Nothing comes back during a shutdown.
            if case .stopping(.start) = servers[name]?.phase { servers[name]?.phase = .stopping(then: .stayStopped) }
        }
        stepStop()
    }

    // MARK: Reload

    /// Applies the difference: added servers start, removed ones stop, changed ones restart, all others keep
    /// their processes. An invalid configuration changes nothing. Answered once the new configuration is in
    /// place (the stops it needs are issued; the new processes follow as the old ones go down).
    private mutating func reload(_ result: Result<SupervisorConfig, ConfigError>, _ request: RequestID?) {
        guard phase == .running else {
            if let request { effects.append(.answer(request, .shuttingDown)) }
            return
        }
        let new: SupervisorConfig
        switch result {
        case .failure(let error):
            log(.error, LogEventName.reloadRejected, "reload rejected, nothing changed: \(error)")
            if let request { effects.append(.answer(request, .reloadRejected(error))) }
            return
        case .success(let loaded): new = loaded
        }
        let diff = ConfigDiff(old: config, new: new)
        log(
            .notice, LogEventName.reload,
            "reload: \(diff.added.count) added, \(diff.removed.count) removed, \(diff.changed.count) changed, "
                + "\(diff.unchanged.count) unchanged",
            fields: [
                "added": .array(diff.added.map { .string($0) }), "removed": .array(diff.removed.map { .string($0) }),
                "changed": .array(diff.changed.map { .string($0) }),
            ])
        config = new
        for name in diff.removed {
            guard let server = servers[name] else { continue }
            if server.isDown {
                closeSocket(name)
                servers[name] = nil
            } else {
                stopServer(name, then: .remove)
            }
        }
        registry.retain(only: Set(new.servers.map(\.name)))
        for name in diff.changed {
            guard let server = servers[name], let changed = new.server(named: name) else { continue }
            switch server.phase {
            case .waiting, .stopped:
                if changed.port != server.config.port { closeSocket(name) }
                servers[name]?.config = changed
                if case .stopped = server.phase { servers[name]?.phase = .waiting(announced: false) }
            case .launched, .stopping:
                stopServer(name, then: .start(changed))
            }
        }
        for name in diff.added {
            if let added = new.server(named: name) { servers[name] = ServerState(config: added) }
        }
        effects.append(.writeRegistry(registry))
        stepStop()  // settles what is already down, starts what is pending
        if let request { effects.append(.answer(request, .reloaded(diff))) }
    }

    // MARK: Control

    private mutating func control(_ request: ControlRequest, _ id: RequestID) {
        if case .health(let name, let level) = request {
            healthRequest(name, level, id)
            return
        }
        guard phase == .running else {
            effects.append(.answer(id, .shuttingDown))
            return
        }
        let answer: ControlAnswer
        switch request {
        case .start(let name): answer = startServer(name)
        case .stop(let name): answer = stopOnRequest(name)
        case .restart(let name): answer = restartServer(name)
        case .rollingRestart(let name): answer = rollingRestart(name)
        case .health: return
        }
        effects.append(.answer(id, answer))
    }

    /// Starts a stopped (or exited, or fatal) server again with fresh replicas; a running server is left as is.
    private mutating func startServer(_ name: String) -> ControlAnswer {
        guard let server = servers[name] else { return .unknownServer(name) }
        switch server.phase {
        case .stopping(let next):
            // Still going down: come back once it is down.
            if case .stayStopped = next { servers[name]?.phase = .stopping(then: .start(server.config)) }
            return .done("starting once stopped")
        case .launched where !server.isDown:
            return .done("already running")
        case .launched:
            for index in server.replicas.indices { cancel(.retry(ReplicaID(server: name, index: index))) }
        case .waiting, .stopped:
            break
        }
        servers[name]?.phase = .waiting(announced: false)
        log(
            .notice, LogEventName.serverRequest, server: name, "start requested on the control socket",
            fields: ["op": "start"])
        startPending()
        return .done("started")
    }

    /// Stops a server (all replicas); it stays stopped until a start, a restart or a reload changes it.
    private mutating func stopOnRequest(_ name: String) -> ControlAnswer {
        guard let server = servers[name] else { return .unknownServer(name) }
        switch server.phase {
        case .stopped: return .done("already stopped")
        case .stopping(.remove): break
        case .stopping: servers[name]?.phase = .stopping(then: .stayStopped)
        case .waiting, .launched: break
        }
        log(
            .notice, LogEventName.serverRequest, server: name, "stop requested on the control socket",
            fields: ["op": "stop"])
        if case .stopping(let next) = servers[name]?.phase {
            stopServer(name, then: next)
        } else {
            stopServer(name, then: .stayStopped)
        }
        stepStop()
        return .done("stopping")
    }

    /// Stops a server and starts it again with the same configuration and port.
    private mutating func restartServer(_ name: String) -> ControlAnswer {
        guard let server = servers[name] else { return .unknownServer(name) }
        if server.isDown && !isStopping(name) {
            if case .done = startServer(name) { return .done("restarted") }
            return .unknownServer(name)
        }
        log(
            .notice, LogEventName.serverRequest, server: name, "restart requested on the control socket",
            fields: ["op": "restart"])
        let next: ServerState.AfterStop
        switch server.phase {
        case .stopping(.remove): next = .remove
        case .stopping(.start(let pending)): next = .start(pending)
        default: next = .start(server.config)
        }
        if case .start = next {
            // Each replica that has a process is restarted (a rolling restart's spare is only stopped).
            for replica in server.replicas where replica.pid != nil && replica.index < server.config.replicas {
                effects.append(.count(.restart(ReplicaID(server: name, index: replica.index), .admin)))
            }
        }
        stopServer(name, then: next)
        stepStop()
        return .done("restarting")
    }

    /// `mcpctl restart --rolling`: see `RollingStage`. A server that is not running restarts as by `restart`.
    private mutating func rollingRestart(_ name: String) -> ControlAnswer {
        guard let server = servers[name] else { return .unknownServer(name) }
        guard case .launched = server.phase, !server.isDown else { return restartServer(name) }
        if server.rolling != nil { return .done("already rolling") }
        let spare = server.replicas.count
        log(
            .notice, LogEventName.serverRequest, server: name,
            "rolling restart requested on the control socket: a spare replica first, then each of "
                + "\(server.config.replicas) in turn",
            fields: ["op": "rolling_restart"])
        servers[name]?.replicas.append(ReplicaState(index: spare))
        servers[name]?.rolling = .spareStarting
        spawn(ReplicaID(server: name, index: spare))
        return .done("rolling")
    }

    /// Moves a rolling restart on when the replica it waits for is ready (or, when stopping, gone).
    private mutating func advanceRolling(_ name: String) {
        guard let server = servers[name], let stage = server.rolling, case .launched = server.phase else { return }
        let count = server.config.replicas
        func running(_ index: Int) -> Bool {
            guard server.replicas.indices.contains(index) else { return false }
            if case .running = server.replicas[index].lifecycle.phase { return true }
            return false
        }
        switch stage {
        case .spareStarting:
            guard running(count) else { return }
            servers[name]?.rolling = .replacing(index: 0, stopping: true)
            stopReplica(ReplicaID(server: name, index: 0))
        case .replacing(let index, true):
            guard server.replicas[index].pid == nil else { return }
            var fresh = ReplicaState(index: index)
            fresh.lifecycle = ReplicaLifecycle()
            fresh.lastExitStatus = server.replicas[index].lastExitStatus
            fresh.startDuration = server.replicas[index].startDuration
            servers[name]?.replicas[index] = fresh
            servers[name]?.rolling = .replacing(index: index, stopping: false)
            effects.append(.count(.restart(ReplicaID(server: name, index: index), .admin)))
            spawn(ReplicaID(server: name, index: index))
        case .replacing(let index, false):
            guard running(index) else { return }
            if index + 1 < count {
                servers[name]?.rolling = .replacing(index: index + 1, stopping: true)
                stopReplica(ReplicaID(server: name, index: index + 1))
            } else {
                servers[name]?.rolling = .spareStopping
                stopReplica(ReplicaID(server: name, index: count))
            }
        case .spareStopping:
            guard server.replicas.indices.contains(count), server.replicas[count].pid == nil else { return }
            for deadline in [
                Deadline.retry(ReplicaID(server: name, index: count)), .probe(ReplicaID(server: name, index: count)),
            ] { cancel(deadline) }
            servers[name]?.replicas.removeLast()
            servers[name]?.rolling = nil
            log(
                .notice, LogEventName.serverRequest, server: name,
                "rolling restart done: \(count) replica(s) replaced", fields: ["op": "rolling_restart"])
        }
    }

    // MARK: Helpers

    private func isStopping(_ name: String) -> Bool {
        if case .stopping = servers[name]?.phase { return true }
        return false
    }

    private func replica(_ id: ReplicaID) -> ReplicaState? {
        guard let server = servers[id.server], server.replicas.indices.contains(id.index) else { return nil }
        return server.replicas[id.index]
    }

    private mutating func update(_ id: ReplicaID, _ change: (inout ReplicaState) -> Void) {
        guard servers[id.server]?.replicas.indices.contains(id.index) == true else { return }
        change(&servers[id.server]!.replicas[id.index])
    }

    private mutating func log(
        _ level: LogRecord.Level, _ event: String, server: String? = nil, _ message: String,
        fields: [String: JSONValue] = [:]
    ) {
        effects.append(.log(LogRecord(level, event, server: server, message, fields: fields)))
    }

    private mutating func log(
        _ level: LogRecord.Level, _ event: String, _ id: ReplicaID, pid: Int32? = nil, showsPID: Bool = true,
        _ message: String, fields: [String: JSONValue] = [:]
    ) {
        let namesReplica = (servers[id.server]?.config.replicas ?? 1) > 1
        effects.append(
            .log(
                LogRecord(
                    level, event, server: id.server, replica: id.index, namesReplica: namesReplica, pid: pid,
                    showsPID: showsPID, message,
                    fields: fields)))
    }
}

extension LogRecord {
    /// Seconds as the logs write them ("0.1", "30").
    static func seconds(_ value: Double) -> String { ReplicaLifecycle.fmt(value) }
}
