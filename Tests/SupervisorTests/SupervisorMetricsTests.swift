import Contracts
import SupervisorCore
import Testing

@testable import Supervisor

#if canImport(Glibc)
    import Glibc
#endif

/// A rendered page: every sample by its series (`name{labels}` as written), and the HELP and TYPE lines.
struct Page {
    var samples: [String: Double] = [:]
    var help: [String: [String]] = [:]
    var type: [String: [String]] = [:]

    /// The registry's series and the crash counts, as the listener writes them (with the traffic families'
    /// HELP and TYPE, no replica having answered).
    init(_ metrics: SupervisorMetrics) throws {
        var page = PageWriter(format: .text)
        metrics.render(into: &page)
        TrafficRendering.write([], crashes: metrics.crashes(), into: &page)
        let text = String(decoding: page.finish(), as: UTF8.self)
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ", maxSplits: 3)
                try #require(parts.count == 4, "\(line)")
                if parts[1] == "HELP" {
                    help[String(parts[2]), default: []].append(String(parts[3]))
                } else {
                    type[String(parts[2]), default: []].append(String(parts[3]))
                }
                continue
            }
            let space = try #require(line.lastIndex(of: " "), "\(line)")
            let value = try #require(Double(line[line.index(after: space)...]), "\(line)")
            let series = String(line[..<space])
            #expect(samples[series] == nil, "\(series) twice")
            samples[series] = value
        }
    }

    /// The series of one family (`name` or `name{...}`; a histogram's `_bucket`, `_sum` and `_count` too).
    func family(_ name: String) -> [String: Double] {
        samples.filter { sample in
            ["", "_bucket", "_sum", "_count"].contains {
                sample.key == name + $0 || sample.key.hasPrefix(name + $0 + "{")
            }
        }
    }

    func mentions(_ text: String) -> Bool { samples.keys.contains { $0.contains(text) } }
}

/// Drives a `SupervisorMachine` as the daemon does (its `count` effects go to the metrics) with real child
/// processes for the replicas' pids, so the /proc readings are real.
struct MachineRun {
    var machine: SupervisorMachine
    let metrics = SupervisorMetrics()
    var children: [Int32: SleepingChild] = [:]

    init(_ servers: [ServerConfig]) {
        machine = SupervisorMachine(config: Self.config(servers))
    }

    static func config(_ servers: [ServerConfig]) -> SupervisorConfig {
        var config = SupervisorConfig(
            mainFile: "/etc/mcp/supervisor.toml", stateDirectory: "/var/lib/mcp", serversDirectory: "/etc/mcp/servers.d"
        )
        config.servers = servers.sorted { $0.name < $1.name }
        return config
    }

    static func server(_ name: String, port: Int, replicas: Int = 1) -> ServerConfig {
        var config = ServerConfig(name: name, file: "/etc/mcp/servers.d/\(name).toml", plugin: "/plugins/\(name).so")
        config.port = port
        config.replicas = replicas
        config.backoff.initial = 1
        config.backoff.jitter = 0
        config.health.interval = 5
        return config
    }

    @discardableResult
    mutating func send(_ event: SupervisorEvent, at now: Double) -> [SupervisorEffect] {
        let effects = machine.handle(event, .init(now: now, random: { 0.5 }, bind: { _, _, _ in true }))
        for case .count(let event) in effects {
            metrics.count(event, group: machine.servers[event.replica.server]?.config.metricsGroup ?? "")
        }
        return effects
    }

    /// Spawns a real process for the replica and tells the machine.
    mutating func spawn(_ server: String, _ index: Int, at now: Double) throws -> Int32 {
        let child = try SleepingChild()
        children[child.pid] = child
        send(.spawned(ReplicaID(server: server, index: index), pid: child.pid), at: now)
        return child.pid
    }

    /// Ends the replica's real process, reaps it, and reports `status` as its end.
    mutating func exit(_ server: String, _ index: Int, _ status: ChildStatus, at now: Double) throws {
        let id = ReplicaID(server: server, index: index)
        let pid = try #require(machine.servers[server]?.replicas[index].pid)
        children.removeValue(forKey: pid)?.stop()
        metrics.exited(id, group: "", status: status)
        send(.exited(id, pid: pid, status), at: now)
    }

    func refresh(at now: Double) {
        metrics.refresh(
            servers: machine.servers, now: now, stats: ProcessStats.read(pid:), own: ProcessStats.readSelf(),
            maxFDs: 1024)
    }

    func stopAll() { for child in children.values { child.stop() } }
}

struct SupervisorMetricsTests {
    @Test func theRenderedPageAfterAFewEventsHasExactlyTheseValues() throws {
        var run = MachineRun([
            MachineRun.server("alpha", port: 7101, replicas: 2), MachineRun.server("beta", port: 7102),
        ])
        defer { run.stopAll() }
        let a0 = ReplicaID(server: "alpha", index: 0)
        let a1 = ReplicaID(server: "alpha", index: 1)
        run.send(.start(registry: PortRegistry()), at: 0)
        let pid0 = try run.spawn("alpha", 0, at: 0)
        _ = try run.spawn("alpha", 1, at: 0)
        _ = try run.spawn("beta", 0, at: 0)
        run.send(.ready(a0), at: 0.5)
        run.send(.ready(a1), at: 0.75)
        run.send(.ready(ReplicaID(server: "beta", index: 0)), at: 1)
        // alpha#0 passes a probe: healthy.
        #expect(run.send(.deadline(.probe(a0)), at: 0.5).contains(.startProbe(a0, seq: 1, level: .detailed)))
        var pass = ProbeFindings()
        pass.loopAnswered = true
        pass.plugin = .some(.init(ok: true, detail: ""))
        pass.portError = .some(nil)
        run.send(.probeFinished(a0, seq: 1, pass), at: 0.6)
        run.metrics.probeFinished(server: "alpha", group: "", seconds: 0.003)
        run.metrics.probeFinished(server: "alpha", group: "", seconds: 0.2)
        // alpha#1 had 3 calls in flight when a signal killed it; beta exited with status 1.
        run.metrics.slotUse(a1, inflight: 3)
        run.metrics.slotUse(a0, inflight: 2)
        try run.exit("alpha", 1, .signaled(9), at: 2)
        try run.exit("beta", 0, .exited(1), at: 2.5)
        run.metrics.controlRequest(method: "status", result: .ok)
        run.metrics.controlRequest(method: "status", result: .ok)
        run.metrics.controlRequest(method: "restart", result: .denied)
        run.metrics.controlRequest(method: "no such method \"x\"", result: .error)
        run.metrics.reload(accepted: true)
        run.metrics.reload(accepted: false)
        run.metrics.scrapeError(server: "beta", group: "")
        run.refresh(at: 2.75)
        let page = try Page(run.metrics)
        let s = page.samples

        #expect(s[#"mcp_supervisor_server_up{server="alpha",group=""}"#] == 1)
        #expect(s[#"mcp_supervisor_server_up{server="beta",group=""}"#] == 0)
        for state in ServerStatus.allCases {
            let alpha = s[#"mcp_supervisor_server_state{server="alpha",group="",state="\#(state.rawValue)"}"#]
            let beta = s[#"mcp_supervisor_server_state{server="beta",group="",state="\#(state.rawValue)"}"#]
            #expect(alpha == (state == .running ? 1 : 0), "\(state)")
            #expect(beta == (state == .down ? 1 : 0), "\(state)")
        }
        #expect(
            page.family("mcp_supervisor_replica_up") == [
                #"mcp_supervisor_replica_up{server="alpha",group="",replica="0"}"#: 1,
                #"mcp_supervisor_replica_up{server="alpha",group="",replica="1"}"#: 0,
                #"mcp_supervisor_replica_up{server="beta",group="",replica="0"}"#: 0,
            ])
        // alpha: one healthy replica of two is degraded, score 0.5; beta has nothing running.
        for state in HealthState.allCases {
            let alpha = s[#"mcp_supervisor_health_state{server="alpha",group="",state="\#(state.rawValue)"}"#]
            let beta = s[#"mcp_supervisor_health_state{server="beta",group="",state="\#(state.rawValue)"}"#]
            #expect(alpha == (state == .degraded ? 1 : 0), "\(state)")
            #expect(beta == (state == .offline ? 1 : 0), "\(state)")
        }
        #expect(s[#"mcp_supervisor_health_score{server="alpha",group=""}"#] == 0.5)
        #expect(s[#"mcp_supervisor_health_score{server="beta",group=""}"#] == 0)
        for reason in RestartReason.allCases {
            let alpha = s[#"mcp_supervisor_restarts_total{server="alpha",group="",reason="\#(reason.rawValue)"}"#]
            let beta = s[#"mcp_supervisor_restarts_total{server="beta",group="",reason="\#(reason.rawValue)"}"#]
            #expect(alpha == (reason == .crash ? 1 : 0), "\(reason)")
            #expect(beta == (reason == .exit ? 1 : 0), "\(reason)")
        }
        #expect(
            page.family("mcp_supervisor_last_exit_code") == [
                #"mcp_supervisor_last_exit_code{server="alpha",group="",replica="1"}"#: 137,
                #"mcp_supervisor_last_exit_code{server="beta",group="",replica="0"}"#: 1,
            ])
        #expect(
            page.family("mcp_supervisor_start_duration_seconds") == [
                #"mcp_supervisor_start_duration_seconds{server="alpha",group="",replica="0"}"#: 0.5,
                #"mcp_supervisor_start_duration_seconds{server="alpha",group="",replica="1"}"#: 0.75,
                #"mcp_supervisor_start_duration_seconds{server="beta",group="",replica="0"}"#: 1,
            ])
        #expect(
            page.family("mcp_supervisor_uptime_seconds") == [
                #"mcp_supervisor_uptime_seconds{server="alpha",group="",replica="0"}"#: 2.75
            ])
        // Retries at 3 (alpha#1) and 3.5 (beta): backoff 1 s.
        #expect(
            page.family("mcp_supervisor_backoff_remaining_seconds") == [
                #"mcp_supervisor_backoff_remaining_seconds{server="alpha",group=""}"#: 0.25,
                #"mcp_supervisor_backoff_remaining_seconds{server="beta",group=""}"#: 0.75,
            ])
        #expect(
            page.family("mcp_supervisor_server_port") == [
                #"mcp_supervisor_server_port{server="alpha",group=""}"#: 7101,
                #"mcp_supervisor_server_port{server="beta",group=""}"#: 7102,
            ])
        // The live replica's process, read from /proc: only alpha#0 has one.
        let child = try #require(ProcessStats.read(pid: pid0))
        #expect(
            page.family("mcp_supervisor_replica_resident_memory_bytes") == [
                #"mcp_supervisor_replica_resident_memory_bytes{server="alpha",group="",replica="0"}"#: Double(
                    child.residentBytes)
            ])
        #expect(
            page.family("mcp_supervisor_replica_open_fds") == [
                #"mcp_supervisor_replica_open_fds{server="alpha",group="",replica="0"}"#: Double(child.openFDs)
            ])
        #expect(
            page.family("mcp_supervisor_replica_cpu_seconds_total").keys.sorted() == [
                #"mcp_supervisor_replica_cpu_seconds_total{server="alpha",group="",replica="0"}"#
            ])
        #expect(child.residentBytes > 0)
        // The supervisor itself (here: the test process).
        let own = try #require(ProcessStats.readSelf())
        #expect(s["process_max_fds"] == 1024)
        #expect(s["process_start_time_seconds"] == own.startTime)
        #expect(try #require(s["process_resident_memory_bytes"]) > 1_048_576)
        #expect(try #require(s["process_virtual_memory_bytes"]) >= s["process_resident_memory_bytes"]!)
        #expect(try #require(s["process_open_fds"]) >= 3)
        #expect(try #require(s["process_cpu_seconds_total"]) > 0)
        #expect(s[#"mcp_supervisor_build_info{version="\#(ControlProtocol.serverVersion)"}"#] == 1)
        #expect(
            page.family("mcp_supervisor_control_requests_total") == [
                #"mcp_supervisor_control_requests_total{method="status",result="ok"}"#: 2,
                #"mcp_supervisor_control_requests_total{method="restart",result="denied"}"#: 1,
                #"mcp_supervisor_control_requests_total{method="other",result="error"}"#: 1,
            ])
        #expect(
            page.family("mcp_supervisor_reloads_total") == [
                #"mcp_supervisor_reloads_total{result="ok"}"#: 1,
                #"mcp_supervisor_reloads_total{result="rejected"}"#: 1,
            ])
        #expect(
            page.family("mcp_supervisor_scrape_errors_total") == [
                #"mcp_supervisor_scrape_errors_total{server="alpha",group=""}"#: 0,
                #"mcp_supervisor_scrape_errors_total{server="beta",group=""}"#: 1,
            ])
        // The probe histogram: cumulative buckets, sum and count.
        let probe = page.family("mcp_supervisor_probe_duration_seconds")
        for (le, count) in [
            ("0.001", 0.0), ("0.0025", 0), ("0.005", 1), ("0.1", 1), ("0.25", 2), ("5.0", 2), ("+Inf", 2),
        ] {
            #expect(
                probe[#"mcp_supervisor_probe_duration_seconds_bucket{server="alpha",group="",le="\#(le)"}"#] == count,
                "le \(le)")
        }
        #expect(probe[#"mcp_supervisor_probe_duration_seconds_count{server="alpha",group=""}"#] == 2)
        #expect(probe[#"mcp_supervisor_probe_duration_seconds_sum{server="alpha",group=""}"#] == 0.203)
        #expect(probe.count == SupervisorMetrics.probeBuckets.count + 3)
        // Calls lost with alpha#1 (killed by a signal); beta's exit was not a signal.
        // (Only once a call was lost: a 0 comes from the host's own page when it answers.)
        #expect(
            page.family("mcp_server_errors_total") == [
                #"mcp_server_errors_total{server="alpha",group="",replica="1",error_type="crash"}"#: 3
            ])
        // No `up`, no pid anywhere; one HELP and one TYPE per family, with the right types.
        #expect(!page.samples.keys.contains { $0 == "up" || $0.hasPrefix("up{") })
        #expect(!page.mentions("pid"))
        for (name, types) in page.type {
            #expect(types.count == 1, "\(name)")
            #expect(page.help[name]?.count == 1, "\(name) has no HELP")
        }
        #expect(page.type["mcp_supervisor_restarts_total"] == ["counter"])
        #expect(page.type["process_cpu_seconds_total"] == ["counter"])
        #expect(page.type["mcp_supervisor_replica_cpu_seconds_total"] == ["counter"])
        #expect(page.type["mcp_supervisor_probe_duration_seconds"] == ["histogram"])
        #expect(page.type["mcp_supervisor_server_up"] == ["gauge"])
        #expect(page.type.count == 25 + 11)
    }

    @Test func seriesOfRemovedServersAndOfReplicasThatAreGoneLeaveThePage() throws {
        var run = MachineRun([
            MachineRun.server("alpha", port: 7101, replicas: 2), MachineRun.server("beta", port: 7102),
        ])
        defer { run.stopAll() }
        run.send(.start(registry: PortRegistry()), at: 0)
        _ = try run.spawn("alpha", 0, at: 0)
        _ = try run.spawn("alpha", 1, at: 0)
        _ = try run.spawn("beta", 0, at: 0)
        for (server, index) in [("alpha", 0), ("alpha", 1), ("beta", 0)] {
            run.send(.ready(ReplicaID(server: server, index: index)), at: 0.5)
        }
        run.metrics.slotUse(ReplicaID(server: "alpha", index: 1), inflight: 2)
        try run.exit("alpha", 1, .signaled(11), at: 1)
        run.metrics.probeFinished(server: "beta", group: "", seconds: 0.01)
        run.metrics.scrapeError(server: "beta", group: "")
        run.refresh(at: 1.5)
        var page = try Page(run.metrics)
        #expect(page.mentions(#"server="beta""#))
        #expect(page.mentions(#"replica="1""#))
        #expect(page.samples[#"mcp_supervisor_restarts_total{server="alpha",group="",reason="crash"}"#] == 1)
        #expect(
            page.family("mcp_server_errors_total") == [
                #"mcp_server_errors_total{server="alpha",group="",replica="1",error_type="crash"}"#: 2
            ])

        // A reload removes beta and leaves alpha with one replica.
        var alpha = MachineRun.server("alpha", port: 7101, replicas: 1)
        alpha.file = "/etc/mcp/servers.d/alpha.toml"
        run.send(.reloaded(.success(MachineRun.config([alpha])), nil), at: 2)
        try run.exit("beta", 0, .exited(0), at: 2.4)
        try run.exit("alpha", 0, .exited(0), at: 2.5)
        _ = try run.spawn("alpha", 0, at: 2.5)
        run.send(.ready(ReplicaID(server: "alpha", index: 0)), at: 3)
        run.metrics.reload(accepted: true)
        run.refresh(at: 3.5)
        page = try Page(run.metrics)
        #expect(!page.mentions(#"server="beta""#))
        #expect(!page.mentions(#"replica="1""#))
        #expect(page.family("mcp_supervisor_probe_duration_seconds").isEmpty)
        #expect(
            page.family("mcp_supervisor_scrape_errors_total").keys.sorted() == [
                #"mcp_supervisor_scrape_errors_total{server="alpha",group=""}"#
            ])
        #expect(page.family("mcp_server_errors_total").isEmpty)
        // alpha's counters go on across the reload.
        #expect(page.samples[#"mcp_supervisor_restarts_total{server="alpha",group="",reason="crash"}"#] == 1)
        #expect(page.samples[#"mcp_supervisor_replica_up{server="alpha",group="",replica="0"}"#] == 1)
        #expect(page.samples[#"mcp_supervisor_reloads_total{result="ok"}"#] == 1)
        #expect(page.samples[#"mcp_supervisor_reloads_total{result="rejected"}"#] == 0)
        // A replica without a process has no resource series; a stopped server has no replica series at all.
        run.send(.control(.stop("alpha"), RequestID(1)), at: 4)
        try run.exit("alpha", 0, .exited(0), at: 4.5)
        run.refresh(at: 5)
        page = try Page(run.metrics)
        #expect(page.family("mcp_supervisor_replica_resident_memory_bytes").isEmpty)
        #expect(page.family("mcp_supervisor_replica_cpu_seconds_total").isEmpty)
        #expect(page.family("mcp_supervisor_uptime_seconds").isEmpty)
        #expect(page.samples[#"mcp_supervisor_server_state{server="alpha",group="",state="stopped"}"#] == 1)
        #expect(page.samples[#"mcp_supervisor_server_up{server="alpha",group=""}"#] == 0)
    }

    @Test func severalRegistriesInOneProcessKeepTheirOwnCounts() throws {
        let one = SupervisorMetrics()
        let two = SupervisorMetrics()
        one.reload(accepted: true)
        one.reload(accepted: true)
        two.reload(accepted: false)
        #expect(try Page(one).samples[#"mcp_supervisor_reloads_total{result="ok"}"#] == 2)
        #expect(try Page(two).samples[#"mcp_supervisor_reloads_total{result="ok"}"#] == 0)
        #expect(try Page(two).samples[#"mcp_supervisor_reloads_total{result="rejected"}"#] == 1)
    }
}
