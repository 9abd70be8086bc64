import Contracts
import Dispatch
import MCPProtocol
import SupervisorCore

/// One probe of one child in flight. Its parts run side by side: the control channel's `health` op (the event
/// loop's answer, then, at detailed and up, the plugin's callbacks) and `server/discover` over the port.
final class ProbeRun {
    let level: HealthLevel
    let seq: Int
    let pid: Int32
    let started: Double
    var findings = ProbeFindings()
    var loopAt: Double?
    var pluginAt: Double?
    var portAt: Double?
    var pluginReport: String?
    var pluginMS: Double?
    var inflight: Int?
    /// When the probe ends whatever has answered (the health tick checks it).
    var deadline: Double = 0
    /// Callers of the `health` method waiting for a probe of at least `level`.
    var waiters: [(level: HealthLevel, done: (JSONValue) -> Void)] = []

    init(level: HealthLevel, seq: Int, pid: Int32, started: Double) {
        self.level = level
        self.seq = seq
        self.pid = pid
        self.started = started
    }

    var complete: Bool {
        loopAt != nil && (level == .basic || (pluginAt != nil && (findings.portError == nil || portAt != nil)))
    }
}

/// The last finished probe of a child, for status and the `health` method.
struct ProbeReport {
    var level: HealthLevel
    var finished: Double
    var outcome: ProbeOutcome
    var json: JSONValue
}

extension Supervisor {
    // MARK: Scheduling

    /// Sets the next periodic probe of a running replica (none when the interval is 0).
    func scheduleProbe(_ rt: ServerRuntime, _ r: ReplicaRuntime, after delay: Double) {
        r.nextProbe = 0
        guard rt.config.health.interval > 0, r.process != nil else { return }
        r.nextProbe = Clock.now() + delay
        armHealthTick()
    }

    /// One timer for every child's probes and probe deadlines, like the heartbeat's: each tick starts the probes
    /// that are due (within a tenth of their interval, so nearby children share the wake-up) and ends those past
    /// their deadline. A timer per probe cost more than the probe itself (a Dispatch source set up and torn down
    /// twice per probe, measured).
    func armHealthTick() {
        var due = Double.infinity
        for rt in servers.values {
            for r in rt.replicas where r.process != nil {
                if let run = r.probe {
                    due = min(due, run.deadline)
                } else if r.nextProbe > 0 {
                    due = min(due, r.nextProbe)
                }
            }
        }
        guard due.isFinite else { return }
        if let armed = healthDue, armed <= due + 0.001 { return }
        healthTick?.cancel()
        healthDue = due
        healthTick = after(max(0, due - Clock.now())) { [unowned self] in
            self.healthDue = nil
            self.healthTick = nil
            self.healthRound()
        }
    }

    private func healthRound() {
        let now = Clock.now()
        for rt in servers.values {
            for r in rt.replicas where r.process != nil {
                if let run = r.probe {
                    if run.deadline <= now + 0.001 { finishProbe(rt, r, run) }
                } else if r.nextProbe > 0, r.nextProbe - now <= rt.config.health.interval * 0.1 {
                    r.nextProbe = 0
                    probe(rt, r, level: rt.config.health.level, waiter: nil)
                }
            }
        }
        armHealthTick()
    }

    /// Starts a probe of `level` on a ready replica, or joins the one in flight (probes never pile up: at most
    /// one per child). A waiter asking for more than the running probe looks at gets the next one.
    func probe(_ rt: ServerRuntime, _ r: ReplicaRuntime, level: HealthLevel, waiter: ((JSONValue) -> Void)?) {
        if let run = r.probe {
            if let waiter { run.waiters.append((level, waiter)) }
            return
        }
        guard case .running = r.lifecycle.phase, let p = r.process else {
            waiter?(replicaHealthJSON(rt, r))
            return
        }
        r.probeSeq += 1
        let run = ProbeRun(level: level, seq: r.probeSeq, pid: p.pid, started: Clock.now())
        if let waiter { run.waiters.append((level, waiter)) }
        r.probe = run
        if level >= .detailed { run.findings.plugin = .some(nil) }
        run.deadline = run.started + rt.config.health.timeout
        armHealthTick()
        if !p.send(.health(seq: run.seq, level: level)) {
            // The channel is gone or full: the loop cannot answer; the deadline ends the probe.
        }
        if level >= .detailed, let port = rt.port {
            run.findings.portError = .some("no answer within \(ProbeFindings.format(rt.config.health.timeout))")
            // The host closes connections idle for 120 s; one idle for half that is not reused (its close may be
            // on the way, and a probe on it would fail for no fault of the server).
            if let c = r.portConnection, !c.usable || run.started - c.lastActive > 60 {
                c.close()
                r.portConnection = nil
            }
            if r.portConnection == nil {
                r.portConnection = nil
                switch PortConnection.open(
                    address: PortConnection.connectAddress(config.listenAddress), port: port, queue: queue)
                {
                case .success(let c): r.portConnection = c
                case .failure(let e):
                    run.findings.portError = .some(e.description)
                    run.portAt = Clock.now()
                }
            }
            r.portConnection?.probe { [unowned self, unowned rt, unowned r] result in
                guard r.probe === run else { return }
                run.portAt = Clock.now()
                switch result {
                case .success: run.findings.portError = .some(nil)
                case .failure(let e): run.findings.portError = .some(e.description)
                }
                if run.complete { self.finishProbe(rt, r, run) }
            }
        }
    }

    /// A `health` message from a child's control channel.
    func healthAnswer(_ rt: ServerRuntime, _ r: ReplicaRuntime, _ msg: HostMessage) {
        let seq: Int
        switch msg {
        case .healthLoop(let s, _), .healthPlugin(let s, _): seq = s
        case .ready, .pong: return
        }
        guard let run = r.probe, seq == run.seq else { return }
        let now = Clock.now()
        r.lastPong = now  // an answer from the loop is as good as a heartbeat
        if case .healthLoop(_, let use) = msg {
            run.loopAt = now
            run.findings.loopAnswered = true
            run.findings.stuck = use.stuck
            run.findings.slots = use.slots
            run.inflight = use.inflight
        }
        if case .healthPlugin(_, let part) = msg {
            run.pluginAt = now
            run.findings.plugin = .some(.init(ok: part.ok, detail: part.detail))
            run.pluginReport = part.report
            run.pluginMS = part.milliseconds
        }
        if run.complete { finishProbe(rt, r, run) }
    }

    private func finishProbe(_ rt: ServerRuntime, _ r: ReplicaRuntime, _ run: ProbeRun) {
        r.probe = nil
        if case .some(let err) = run.findings.portError, err != nil || run.portAt == nil {
            // Unanswered or failed: this connection is not trusted again.
            r.portConnection?.close()
            r.portConnection = nil
        }
        let now = Clock.now()
        run.findings.latency =
            [run.loopAt, run.pluginAt, run.portAt].compactMap { $0 }.map { $0 - run.started }.max() ?? 0
        let outcome = run.findings.outcome(rt.config.health)
        var o: [String: JSONValue] = [
            ProbeKey.level: .string(run.level.rawValue),
            ProbeKey.result: .string(Self.name(outcome)),
            ProbeKey.latencyMS: Self.ms(run.findings.latency),
            ProbeKey.eventLoop: run.loopAt.map { [ProbeKey.answered: true, ProbeKey.ms: Self.ms($0 - run.started)] }
                ?? [ProbeKey.answered: false],
            ProbeKey.stuckSlots: .int(Int64(run.findings.stuck)), ProbeKey.slots: .int(Int64(run.findings.slots)),
        ]
        if case .slow(let why) = outcome { o[ProbeKey.detail] = .string(why) }
        if case .failed(let why) = outcome { o[ProbeKey.detail] = .string(why) }
        if let i = run.inflight { o[ProbeKey.callsInFlight] = .int(Int64(i)) }
        if case .some(let part) = run.findings.plugin {
            var pj: [String: JSONValue] = [ProbeKey.answered: .bool(part != nil)]
            if let part {
                pj[ProbeKey.ok] = part.ok.map { .bool($0) } ?? .null
                pj[ProbeKey.detail] = .string(part.detail)
                if let m = run.pluginMS { pj[ProbeKey.ms] = .double(m) }
            }
            o[ProbeKey.plugin] = .object(pj)
        }
        if case .some(let err) = run.findings.portError {
            var pj: [String: JSONValue] = [
                ProbeKey.port: rt.port.map { .int(Int64($0)) } ?? .null, ProbeKey.ok: .bool(err == nil),
            ]
            if let a = run.portAt, err == nil { pj[ProbeKey.ms] = Self.ms(a - run.started) }
            if let err { pj[ProbeKey.error] = .string(err) }
            o[ProbeKey.serverDiscover] = .object(pj)
        }
        if run.level == .diagnostic {
            if let report = run.pluginReport {
                // A JSON report stays structured; anything else is text.
                o[ProbeKey.pluginReport] = (try? JSONParser.parse(Array(report.utf8))) ?? .string(report)
            }
            if let stats = ProcStats.read(pid: run.pid) {
                var proc: [String: JSONValue] = [
                    ProbeKey.pid: .int(Int64(run.pid)), ProbeKey.rssBytes: .int(Int64(stats.rssBytes)),
                    ProbeKey.openFDs: .int(Int64(stats.openFDs)), ProbeKey.threads: .int(Int64(stats.threads)),
                    ProbeKey.cpuSeconds: .double((stats.cpuSeconds * 100).rounded() / 100),
                ]
                if let last = r.cpuSample, now > last.at {
                    let pct = (stats.cpuSeconds - last.seconds) / (now - last.at) * 100
                    proc[ProbeKey.cpuPercent] = .double((max(0, pct) * 10).rounded() / 10)
                }
                r.cpuSample = (stats.cpuSeconds, now)
                o[ProbeKey.process] = .object(proc)
            }
        }
        let before = r.health.state
        // A pass at a shallower level than the configured one says nothing about the deeper parts (an admin's
        // `health --level basic` must not reset the failures of the detailed probes); its failures still count.
        let shallowPass = run.level < rt.config.health.level && outcome == .passed
        let verdict: HealthTracker.Verdict =
            shallowPass ? .none : r.health.record(outcome, config: rt.config.health)
        o[ProbeKey.state] = .string(r.health.state.rawValue)
        let json = JSONValue.object(o)
        r.lastProbe = ProbeReport(level: run.level, finished: now, outcome: outcome, json: json)
        if r.health.state != before {
            let why = r.health.reason.map { ": \($0)" } ?? ""
            logReplica(
                r.health.state == .healthy ? .info : .warning, LogEventName.childHealth, rt, r, pid: run.pid,
                "health \(before.rawValue) -> \(r.health.state.rawValue)\(why)",
                fields: ["from": .string(before.rawValue), "to": .string(r.health.state.rawValue)])
        }
        // Only a running child is killed for its health: one being stopped already goes down gracefully.
        if case .becameUnhealthy(let why) = verdict, case .running = r.lifecycle.phase, let p = r.process,
            p.pid == run.pid
        {
            if !run.findings.loopAnswered {
                logReplica(.error, LogEventName.childHung, rt, r, pid: p.pid, "hung (\(why)); killing it")
                r.forcedReason = .hung
                p.killGroup()
            } else if rt.config.restart != .never {
                logReplica(
                    .error, LogEventName.childUnhealthy, rt, r, pid: p.pid, "unhealthy (\(why)); killing it to restart")
                r.forcedReason = .unhealthy
                p.killGroup()
            } else {
                logReplica(
                    .error, LogEventName.childUnhealthy, rt, r, pid: p.pid,
                    "unhealthy (\(why)); left running (restart = \"never\")")
            }
        }
        // Waiters satisfied by this level get the answer; the others get a deeper probe next.
        var later: [(level: HealthLevel, done: (JSONValue) -> Void)] = []
        for w in run.waiters {
            if w.level <= run.level { w.done(replicaHealthJSON(rt, r)) } else { later.append(w) }
        }
        if r.process != nil, let deepest = later.map(\.level).max() {
            probe(rt, r, level: deepest, waiter: nil)
            if let next = r.probe {
                next.waiters = later
            } else {
                for w in later { w.done(replicaHealthJSON(rt, r)) }  // it is stopping: nothing more to probe
            }
        } else {
            for w in later { w.done(replicaHealthJSON(rt, r)) }
            if r.process != nil {
                if run.level >= rt.config.health.level || r.nextProbe == 0 {
                    // This probe covered the periodic one: the next is an interval after its start.
                    scheduleProbe(rt, r, after: max(0, rt.config.health.interval - (now - run.started)))
                } else {
                    armHealthTick()  // a shallower on-demand probe leaves the periodic one where it was
                }
            }
        }
    }

    /// The process is gone: any probe in flight ends, its waiters are answered, the state is offline.
    func endHealth(_ rt: ServerRuntime, _ r: ReplicaRuntime, _ why: String) {
        r.nextProbe = 0
        r.cpuSample = nil
        r.portConnection?.close()
        r.portConnection = nil
        r.health.stopped(why)
        if let run = r.probe {
            r.probe = nil
            for w in run.waiters { w.done(replicaHealthJSON(rt, r)) }
        }
    }

    // MARK: Reporting

    /// A replica's health for `health` and `status`: state, reason and the last probe.
    func replicaHealthJSON(_ rt: ServerRuntime, _ r: ReplicaRuntime) -> JSONValue {
        var o: [String: JSONValue] = [
            StatusKey.index: .int(Int64(r.index)), StatusKey.pid: r.process.map { .int(Int64($0.pid)) } ?? .null,
            StatusKey.state: .string(r.health.state.rawValue),
            StatusKey.reason: r.health.reason.map { .string($0) } ?? .null,
        ]
        if let last = r.lastProbe, r.process?.pid != nil {
            o[StatusKey.lastProbe] = last.json
            o[StatusKey.checkedAgo] = .double(((Clock.now() - last.finished) * 10).rounded() / 10)
        }
        return .object(o)
    }

    /// Runs a probe of `level` on every replica of a server now and calls `done` with the server's health
    /// once all have answered (each is bounded by the server's health timeout).
    func checkHealth(_ rt: ServerRuntime, level: HealthLevel, _ done: @escaping (JSONValue) -> Void) {
        dispatchPrecondition(condition: .onQueue(queue))
        let name = rt.name
        var answers = [JSONValue?](repeating: nil, count: rt.replicas.count)
        var left = rt.replicas.count
        let finish = { [unowned rt] in
            let states = rt.replicas.map(\.health.state)
            done([
                StatusKey.server: .string(name), StatusKey.level: .string(level.rawValue),
                StatusKey.state: .string(HealthAggregate.state(states).rawValue),
                StatusKey.score: .double(HealthAggregate.score(states)),
                StatusKey.replicas: .array(answers.map { $0 ?? .null }),
            ])
        }
        if left == 0 {
            finish()
            return
        }
        for (i, r) in rt.replicas.enumerated() {
            probe(rt, r, level: level) { json in
                answers[i] = json
                left -= 1
                if left == 0 { finish() }
            }
        }
    }

    static func name(_ o: ProbeOutcome) -> String {
        switch o {
        case .passed: return "passed"
        case .slow: return "slow"
        case .failed: return "failed"
        }
    }

    static func ms(_ seconds: Double) -> JSONValue { .double((seconds * 1e4).rounded() / 10) }
}
