import Contracts
import Dispatch
import MCPProtocol
import SupervisorCore

/// One probe of one child in flight: its parts as they answer. Its parts run side by side: the control channel's
/// `health` op (the event loop's answer, then, at detailed and up, the plugin's callbacks) and `server/discover`
/// over the port. The machine decides when a probe starts and ends and what its findings mean; this collects them.
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

/// The last finished probe of a child, for status and the `health` method (its `state` is the child's current
/// one, added when reported).
struct ProbeReport {
    var level: HealthLevel
    var finished: Double
    var json: [String: JSONValue]
}

extension Supervisor {
    // MARK: Probing (the machine's `startProbe` and `endProbe`)

    /// Starts the parts of a probe the machine asked for: the `health` op on the control channel and, at
    /// detailed and up, `server/discover` over the port on the kept-alive connection.
    func startProbe(_ id: ReplicaID, seq: Int, level: HealthLevel) {
        guard let server = servers[id.server], server.replicas.indices.contains(id.index),
            let pid = server.replicas[id.index].pid
        else { return }
        let run = ProbeRun(level: level, seq: seq, pid: pid, started: Clock.now())
        probes[id] = run
        let settings = server.config.health
        if level >= .detailed { run.findings.plugin = .some(nil) }
        // The channel may be gone or full: then the loop cannot answer and the deadline ends the probe.
        _ = children[id]?.send(.health(seq: seq, level: level))
        guard level >= .detailed, let port = server.port else { return }
        run.findings.portError = .some("no answer within \(ProbeFindings.format(settings.timeout))")
        // The host closes connections idle for 120 s; one idle for half that is not reused (its close may be on the
        // way, and a probe on it would fail for no fault of the server).
        if let connection = portConnections[id], !connection.usable || run.started - connection.lastActive > 60 {
            connection.close()
            portConnections[id] = nil
        }
        if portConnections[id] == nil {
            switch PortConnection.open(
                address: PortConnection.connectAddress(config.listenAddress), port: port, queue: queue,
                bearerToken: server.config.bearerTokenFile.flatMap(Self.bearerToken(in:)))
            {
            case .success(let connection): portConnections[id] = connection
            case .failure(let error):
                run.findings.portError = .some(error.description)
                run.portAt = Clock.now()
            }
        }
        portConnections[id]?.probe { [unowned self] result in
            guard self.probes[id] === run else { return }
            run.portAt = Clock.now()
            switch result {
            case .success: run.findings.portError = .some(nil)
            case .failure(let error): run.findings.portError = .some(error.description)
            }
            if run.complete { self.finishProbe(id, seq: run.seq) }
        }
    }

    /// The token of a `bearer_token_file` as the gateway reads it: the first line without spaces and tabs.
    /// Read when a probe connection opens, so a changed file is followed after the gateway's restart.
    static func bearerToken(in path: String) -> String? {
        guard case .success(let text) = LocalFiles().read(path) else { return nil }
        let line = text.prefix { $0 != "\n" && $0 != "\r" }.filter { $0 != " " && $0 != "\t" }
        return line.isEmpty ? nil : String(line)
    }

    /// A `health` message from a child's control channel: a part of the probe in flight.
    func healthAnswer(_ id: ReplicaID, _ message: HostMessage) {
        let seq: Int
        switch message {
        case .healthLoop(let part, _), .healthPlugin(let part, _): seq = part
        case .ready, .pong, .metrics, .changed, .leftOut: return
        }
        guard let run = probes[id], seq == run.seq else { return }
        let now = Clock.now()
        feed(.answered(id))  // an answer from the loop is as good as a heartbeat
        if case .healthLoop(_, let use) = message {
            run.loopAt = now
            run.findings.loopAnswered = true
            run.findings.stuck = use.stuck
            run.findings.slots = use.slots
            run.inflight = use.inflight
            metrics.slotUse(id, inflight: use.inflight)
        }
        if case .healthPlugin(_, let part) = message {
            run.pluginAt = now
            run.findings.plugin = .some(.init(ok: part.ok, detail: part.detail))
            run.pluginReport = part.report
            run.pluginMS = part.milliseconds
        }
        if run.complete { finishProbe(id, seq: run.seq) }
    }

    /// Ends a probe with what has answered: records its report and hands its findings to the machine.
    func finishProbe(_ id: ReplicaID, seq: Int) {
        guard let run = probes[id], run.seq == seq, let server = servers[id.server] else { return }
        probes[id] = nil
        if case .some(let error) = run.findings.portError, error != nil || run.portAt == nil {
            // Unanswered or failed: this connection is not trusted again.
            portConnections.removeValue(forKey: id)?.close()
        }
        let now = Clock.now()
        metrics.probeFinished(server: id.server, group: server.config.metricsGroup, seconds: now - run.started)
        run.findings.latency =
            [run.loopAt, run.pluginAt, run.portAt].compactMap { $0 }.map { $0 - run.started }.max() ?? 0
        let outcome = run.findings.outcome(server.config.health)
        var report: [String: JSONValue] = [
            ProbeKey.level: .string(run.level.rawValue),
            ProbeKey.result: .string(Self.name(outcome)),
            ProbeKey.latencyMS: Self.ms(run.findings.latency),
            ProbeKey.eventLoop: run.loopAt.map { [ProbeKey.answered: true, ProbeKey.ms: Self.ms($0 - run.started)] }
                ?? [ProbeKey.answered: false],
            ProbeKey.stuckSlots: .int(Int64(run.findings.stuck)), ProbeKey.slots: .int(Int64(run.findings.slots)),
        ]
        if case .slow(let why) = outcome { report[ProbeKey.detail] = .string(why) }
        if case .failed(let why) = outcome { report[ProbeKey.detail] = .string(why) }
        if let inflight = run.inflight { report[ProbeKey.callsInFlight] = .int(Int64(inflight)) }
        if case .some(let part) = run.findings.plugin {
            var plugin: [String: JSONValue] = [ProbeKey.answered: .bool(part != nil)]
            if let part {
                plugin[ProbeKey.ok] = part.ok.map { .bool($0) } ?? .null
                plugin[ProbeKey.detail] = .string(part.detail)
                if let ms = run.pluginMS { plugin[ProbeKey.ms] = .double(ms) }
            }
            report[ProbeKey.plugin] = .object(plugin)
        }
        if case .some(let error) = run.findings.portError {
            var discover: [String: JSONValue] = [
                ProbeKey.port: server.port.map { .int(Int64($0)) } ?? .null, ProbeKey.ok: .bool(error == nil),
            ]
            if let answeredAt = run.portAt, error == nil { discover[ProbeKey.ms] = Self.ms(answeredAt - run.started) }
            if let error { discover[ProbeKey.error] = .string(error) }
            report[ProbeKey.serverDiscover] = .object(discover)
        }
        if run.level == .diagnostic {
            if let pluginReport = run.pluginReport {
                // A JSON report stays structured; anything else is text.
                report[ProbeKey.pluginReport] =
                    (try? JSONParser.parse(Array(pluginReport.utf8))) ?? .string(pluginReport)
            }
            if let stats = ProcStats.read(pid: run.pid) {
                var process: [String: JSONValue] = [
                    ProbeKey.pid: .int(Int64(run.pid)), ProbeKey.rssBytes: .int(Int64(stats.rssBytes)),
                    ProbeKey.openFDs: .int(Int64(stats.openFDs)), ProbeKey.threads: .int(Int64(stats.threads)),
                    ProbeKey.cpuSeconds: .double((stats.cpuSeconds * 100).rounded() / 100),
                ]
                if let last = cpuSamples[id], now > last.at {
                    let percent = (stats.cpuSeconds - last.seconds) / (now - last.at) * 100
                    process[ProbeKey.cpuPercent] = .double((max(0, percent) * 10).rounded() / 10)
                }
                cpuSamples[id] = (stats.cpuSeconds, now)
                report[ProbeKey.process] = .object(process)
            }
        }
        reports[id] = ProbeReport(level: run.level, finished: now, json: report)
        feed(.probeFinished(id, seq: run.seq, run.findings))
    }

    // MARK: Reporting

    /// A replica's health for `health`: state, reason and the last probe.
    func replicaHealthJSON(_ id: ReplicaID, _ health: ReplicaHealth) -> JSONValue {
        var object: [String: JSONValue] = [
            StatusKey.index: .int(Int64(health.index)), StatusKey.pid: health.pid.map { .int(Int64($0)) } ?? .null,
            StatusKey.state: .string(health.state.rawValue),
            StatusKey.reason: health.reason.map { .string($0) } ?? .null,
        ]
        if let last = reports[id], health.pid != nil {
            var probe = last.json
            probe[ProbeKey.state] = .string(health.state.rawValue)
            object[StatusKey.lastProbe] = .object(probe)
            object[StatusKey.checkedAgo] = .double(((Clock.now() - last.finished) * 10).rounded() / 10)
        }
        return .object(object)
    }

    /// Runs a probe of `level` on every replica of a server now and calls `done` with the server's health
    /// once all have answered (each is bounded by the server's health timeout).
    func checkHealth(_ server: ServerState, level: HealthLevel, _ done: @escaping (JSONValue) -> Void) {
        dispatchPrecondition(condition: .onQueue(queue))
        let id = newRequestID()
        healthCallbacks[id] = { [unowned self] health in done(self.healthJSON(health)) }
        feed(.control(.health(server.name, level), id))
    }

    /// The `health` method's answer.
    func healthJSON(_ health: ServerHealth) -> JSONValue {
        [
            StatusKey.server: .string(health.server), StatusKey.level: .string(health.level.rawValue),
            StatusKey.state: .string(health.state.rawValue), StatusKey.score: .double(health.score),
            StatusKey.replicas: .array(
                health.replicas.map { replicaHealthJSON(ReplicaID(server: health.server, index: $0.index), $0) }),
        ]
    }

    static func name(_ outcome: ProbeOutcome) -> String {
        switch outcome {
        case .passed: return "passed"
        case .slow: return "slow"
        case .failed: return "failed"
        }
    }

    static func ms(_ seconds: Double) -> JSONValue { .double((seconds * 1e4).rounded() / 10) }
}
