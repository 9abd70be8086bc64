import Contracts
import Prometheus
import SupervisorCore

extension ServerConfig {
    /// The `group` label of the server's series ("" when none): every series here reads it through this property.
    var metricsGroup: String { group }
}

/// The supervisor's own series (docs/metrics.md, "Supervisor"): counters it bumps as things happen (restarts by
/// reason, control requests, reloads, probe latency, scrape errors) and gauges set from its state when scraped,
/// all in one swift-prometheus registry. Touched only on the supervisor's queue.
///
/// Why the registry's `make*` methods and not swift-metrics' `Counter(label:dimensions:)` over a
/// `PrometheusMetricsFactory`: swift-metrics goes through the one process-wide `MetricsSystem`, which can be
/// bootstrapped once per process, while tests run several `Supervisor`s (each with its own registry) in one
/// process; and a series of a server or replica that is gone must leave the page, which the registry's
/// `unregister*` methods do directly. Nothing here needs the global system, so nothing bootstraps it.
///
/// The host-derived `mcp_server_*` families are rendered by the metrics listener from the hosts' snapshots, not
/// here, except the one such count the supervisor keeps itself: calls lost when a replica died by a signal
/// (`mcp_server_errors_total{error_type="crash"}`), held across the replica's lives. The listener merges this
/// page's families with its own by name and adds up samples with the same labels, so the family keeps one
/// HELP/TYPE block; the series appears only once a replica lost a call (a replica that does not answer a scrape
/// has no other traffic series, and a crash count of 0 comes from its host when it answers).
final class SupervisorMetrics: @unchecked Sendable {
    // @unchecked: every mutable property is touched only on the supervisor's queue.
    let registry = PrometheusCollectorRegistry()

    /// A control request's `result` label.
    enum ControlResult: String, Sendable {
        case ok, error, denied
    }

    /// Upper bounds (seconds) of `mcp_supervisor_probe_duration_seconds`.
    static let probeBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

    private let version: String
    private var gauges: [SeriesKey: Gauge] = [:]
    /// Counters set from a reading (CPU seconds from /proc): they count what the process counted.
    private var readings: [SeriesKey: Counter] = [:]
    /// Counters bumped as things happen.
    private var counters: [SeriesKey: Counter] = [:]
    private var histograms: [SeriesKey: ValueHistogram] = [:]
    /// The last `inflight` each replica's host reported (a pong, a probe's loop part, a metrics answer).
    private var inflight: [ReplicaID: Int] = [:]

    init(version: String = ControlProtocol.serverVersion) {
        self.version = version
        // Known from the start, so that rate() and increase() see the first one.
        for result in ["ok", "rejected"] { _ = counter(Family.reloads, extra: ["result", result]) }
    }

    // MARK: Counting as things happen

    /// Something the machine decided to count (`SupervisorEffect.count`).
    func count(_ event: MetricEvent, group: String) {
        switch event {
        case .restart(let id, let reason):
            counter(Family.restarts, server: id.server, group: group, extra: ["reason", reason.rawValue]).increment()
        }
    }

    /// One control-socket request answered: `method` is a `ControlMethod` raw value ("other" for any other name:
    /// a client's text never becomes a label value).
    func controlRequest(method: String, result: ControlResult) {
        let label = ControlMethod(rawValue: method) != nil ? method : "other"
        counter(Family.controlRequests, extra: ["method", label, "result", result.rawValue]).increment()
    }

    /// A reload (SIGHUP or `mcpctl reload`) was applied or rejected.
    func reload(accepted: Bool) {
        counter(Family.reloads, extra: ["result", accepted ? "ok" : "rejected"]).increment()
    }

    /// A health probe ended (every part answered, or its deadline cut it off) after `seconds`.
    func probeFinished(server: String, group: String, seconds: Double) {
        histogram(Family.probeDuration, server: server, group: group).record(max(0, seconds))
    }

    /// A replica did not answer the metrics op within the scrape's deadline.
    func scrapeError(server: String, group: String) {
        counter(Family.scrapeErrors, server: server, group: group).increment()
    }

    /// A replica's host reported how many calls it has in flight.
    func slotUse(_ id: ReplicaID, inflight count: Int) { inflight[id] = max(0, count) }

    /// A replica's process ended: if a signal ended it, the calls it last reported in flight died with it.
    func exited(_ id: ReplicaID, group: String, status: ChildStatus) {
        let lost = inflight.removeValue(forKey: id) ?? 0
        if case .signaled = status, lost > 0 {
            counter(
                Family.crashErrors, server: id.server, group: group, replica: id.index,
                extra: ["error_type", TrafficMetrics.ErrorType.crash.rawValue]
            ).increment(by: Int64(lost))
        }
    }

    // MARK: Gauges at scrape time

    /// Sets every gauge from the supervisor's state; drops the series of servers and replicas that are gone.
    func refresh(_ supervisor: Supervisor) {
        refresh(
            servers: supervisor.servers, now: Clock.now(), stats: ProcessStats.read(pid:),
            own: ProcessStats.readSelf(), maxFDs: ProcessStats.maxFDs())
    }

    /// `refresh(_:)` with its inputs: the machine's servers, the monotonic time, and the readers of /proc.
    func refresh(
        servers: [String: ServerState], now: Double, stats: (Int32) -> ProcessStats?, own: ProcessStats?,
        maxFDs: Int?
    ) {
        var values: [SeriesKey: Double] = [:]
        var cpu: [SeriesKey: Double] = [:]
        values[SeriesKey(Family.buildInfo, extra: ["version", version])] = 1
        if let own {
            values[SeriesKey(Family.processResident)] = Double(own.residentBytes)
            values[SeriesKey(Family.processVirtual)] = Double(own.virtualBytes)
            values[SeriesKey(Family.processOpenFDs)] = Double(own.openFDs)
            values[SeriesKey(Family.processStart)] = own.startTime
            cpu[SeriesKey(Family.processCPU)] = own.cpuSeconds
        }
        if let maxFDs { values[SeriesKey(Family.processMaxFDs)] = Double(maxFDs) }

        var current: [String: (group: String, replicas: Int)] = [:]
        for (name, server) in servers {
            let group = server.config.metricsGroup
            current[name] = (group, server.replicas.count)
            func key(_ family: FamilyInfo, replica: Int? = nil, extra: [String] = []) -> SeriesKey {
                SeriesKey(family, server: name, group: group, replica: replica, extra: extra)
            }
            values[key(Family.serverUp)] = server.isReady ? 1 : 0
            let status = server.status
            for state in ServerStatus.allCases {
                values[key(Family.serverState, extra: ["state", state.rawValue])] = state == status ? 1 : 0
            }
            let states = server.replicas.map(\.health.state)
            let health = HealthAggregate.state(states)
            for state in HealthState.allCases {
                values[key(Family.healthState, extra: ["state", state.rawValue])] = state == health ? 1 : 0
            }
            values[key(Family.healthScore)] = HealthAggregate.score(states)
            var backoff = 0.0
            for replica in server.replicas {
                switch replica.lifecycle.phase {
                case .backoff(let at): backoff = max(backoff, at - now)
                case .fatal(let at): backoff = max(backoff, at - now)
                default: break
                }
            }
            values[key(Family.backoffRemaining)] = max(0, backoff)
            if let port = server.port { values[key(Family.serverPort)] = Double(port) }
            // Counters every server has from the start (0 until something happens).
            for reason in RestartReason.allCases {
                _ = counter(Family.restarts, server: name, group: group, extra: ["reason", reason.rawValue])
            }
            _ = counter(Family.scrapeErrors, server: name, group: group)

            for replica in server.replicas {
                let index = replica.index
                if case .running = replica.lifecycle.phase {
                    values[key(Family.replicaUp, replica: index)] = 1
                } else {
                    values[key(Family.replicaUp, replica: index)] = 0
                }
                if let status = replica.lastExitStatus {
                    let code: Int32
                    switch status {
                    case .exited(let c): code = c
                    case .signaled(let s): code = 128 + s
                    }
                    values[key(Family.lastExitCode, replica: index)] = Double(code)
                }
                if let seconds = replica.startDuration {
                    values[key(Family.startDuration, replica: index)] = seconds
                }
                guard let pid = replica.pid else { continue }
                values[key(Family.uptime, replica: index)] = max(0, now - replica.spawnedAt)
                if let stats = stats(pid) {
                    values[key(Family.replicaResident, replica: index)] = Double(stats.residentBytes)
                    values[key(Family.replicaOpenFDs, replica: index)] = Double(stats.openFDs)
                    cpu[key(Family.replicaCPU, replica: index)] = stats.cpuSeconds
                }
            }
        }

        // Gauges: exactly the series of this refresh.
        for (key, value) in values { gauge(key).set(value) }
        for (key, gauge) in gauges where values[key] == nil {
            registry.unregisterGauge(gauge)
            gauges[key] = nil
        }
        for (key, value) in cpu {
            let counter: Counter
            if let existing = readings[key] {
                counter = existing
            } else {
                counter = registry.makeCounter(descriptor: key.descriptor, labels: key.labels)
                readings[key] = counter
            }
            counter.reset()
            if value > 0 { counter.increment(by: value) }
        }
        for (key, counter) in readings where cpu[key] == nil {
            registry.unregisterCounter(counter)
            readings[key] = nil
        }
        // Counters and histograms of servers (or groups, or replicas) that are gone.
        func gone(_ key: SeriesKey) -> Bool {
            guard let server = key.server else { return false }
            guard let now = current[server], now.group == key.group else { return true }
            if let replica = key.replica { return replica >= now.replicas }
            return false
        }
        for (key, counter) in counters where gone(key) {
            registry.unregisterCounter(counter)
            counters[key] = nil
        }
        for (key, histogram) in histograms where gone(key) {
            registry.unregisterValueHistogram(histogram)
            histograms[key] = nil
        }
        for id in inflight.keys where current[id.server] == nil { inflight[id] = nil }
    }

    /// The supervisor's own series, text format 0.0.4.
    func render(into buffer: inout [UInt8]) { registry.emit(into: &buffer) }

    // MARK: Series

    private func gauge(_ key: SeriesKey) -> Gauge {
        if let existing = gauges[key] { return existing }
        let gauge = registry.makeGauge(descriptor: key.descriptor, labels: key.labels)
        gauges[key] = gauge
        return gauge
    }

    private func counter(
        _ family: FamilyInfo, server: String? = nil, group: String = "", replica: Int? = nil, extra: [String] = []
    ) -> Counter {
        let key = SeriesKey(family, server: server, group: group, replica: replica, extra: extra)
        if let existing = counters[key] { return existing }
        let counter = registry.makeCounter(descriptor: key.descriptor, labels: key.labels)
        counters[key] = counter
        return counter
    }

    private func histogram(_ family: FamilyInfo, server: String, group: String) -> ValueHistogram {
        let key = SeriesKey(family, server: server, group: group)
        if let existing = histograms[key] { return existing }
        let histogram = registry.makeValueHistogram(
            descriptor: key.descriptor, labels: key.labels, buckets: Self.probeBuckets)
        histograms[key] = histogram
        return histogram
    }

    /// One series: its family and labels (`server`, `group`, `replica` first when it has them, then the others).
    private struct SeriesKey: Hashable {
        var name: String
        var help: String
        var server: String?
        var group: String
        var replica: Int?
        /// Further labels as name, value, name, value, ...
        var extra: [String]

        init(
            _ family: FamilyInfo, server: String? = nil, group: String = "", replica: Int? = nil, extra: [String] = []
        ) {
            name = family.name
            help = family.help
            self.server = server
            self.group = group
            self.replica = replica
            self.extra = extra
        }

        var labels: [(String, String)] {
            var labels: [(String, String)] = []
            if let server { labels += [("server", server), ("group", group)] }
            if let replica { labels.append(("replica", String(replica))) }
            for i in stride(from: 0, to: extra.count - 1, by: 2) { labels.append((extra[i], extra[i + 1])) }
            return labels
        }

        /// The full name as the metric name, no unit appended: the names are the documented ones, whole.
        var descriptor: MetricNameDescriptor {
            MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        }
    }

    struct FamilyInfo: Sendable {
        var name: String
        var help: String
    }

    /// Every family's name and help text, in one place (the registry insists on one help text per name).
    enum Family {
        static let serverUp = FamilyInfo(
            name: "mcp_supervisor_server_up",
            help: "1 when the server serves (at least one replica is ready), else 0.")
        static let serverState = FamilyInfo(
            name: "mcp_supervisor_server_state",
            help: "1 for the server's current state (as mcpctl status shows it), 0 for the other states.")
        static let replicaUp = FamilyInfo(
            name: "mcp_supervisor_replica_up",
            help: "1 when the replica is running (it said ready and is not stopping), else 0.")
        static let healthState = FamilyInfo(
            name: "mcp_supervisor_health_state",
            help: "1 for the server's aggregate health state over its replicas, 0 for the other states.")
        static let healthScore = FamilyInfo(
            name: "mcp_supervisor_health_score",
            help: "The server's health score, 0 to 1: the mean over replicas of healthy 1, degraded 0.5, other 0.")
        static let probeDuration = FamilyInfo(
            name: "mcp_supervisor_probe_duration_seconds",
            help: "How long each health probe took, from its start to its last answer or its timeout.")
        static let restarts = FamilyInfo(
            name: "mcp_supervisor_restarts_total",
            help: "Replica restarts by reason: exit, crash (a signal the supervisor did not send), hang, "
                + "start_timeout, unhealthy, admin (mcpctl restart, rolling or not).")
        static let lastExitCode = FamilyInfo(
            name: "mcp_supervisor_last_exit_code",
            help: "The exit status of the replica's last process (128 + the signal when a signal ended it).")
        static let startDuration = FamilyInfo(
            name: "mcp_supervisor_start_duration_seconds",
            help: "Seconds from spawn to ready of the replica's last start that became ready.")
        static let uptime = FamilyInfo(
            name: "mcp_supervisor_uptime_seconds",
            help: "Seconds since the replica's current process was spawned.")
        static let backoffRemaining = FamilyInfo(
            name: "mcp_supervisor_backoff_remaining_seconds",
            help: "Seconds until the server's next restart attempt (backoff or fatal cool-down), 0 when none waits.")
        static let serverPort = FamilyInfo(
            name: "mcp_supervisor_server_port",
            help: "The TCP port the server listens on (static or assigned from the port range).")
        static let replicaResident = FamilyInfo(
            name: "mcp_supervisor_replica_resident_memory_bytes",
            help: "Resident memory of the replica's host process, in bytes.")
        static let replicaCPU = FamilyInfo(
            name: "mcp_supervisor_replica_cpu_seconds_total",
            help: "User and system CPU time of the replica's host process, in seconds (resets with the process).")
        static let replicaOpenFDs = FamilyInfo(
            name: "mcp_supervisor_replica_open_fds",
            help: "Open file descriptors of the replica's host process.")
        static let processResident = FamilyInfo(
            name: "process_resident_memory_bytes", help: "Resident memory of the supervisor, in bytes.")
        static let processVirtual = FamilyInfo(
            name: "process_virtual_memory_bytes", help: "Virtual memory size of the supervisor, in bytes.")
        static let processCPU = FamilyInfo(
            name: "process_cpu_seconds_total", help: "User and system CPU time of the supervisor, in seconds.")
        static let processOpenFDs = FamilyInfo(
            name: "process_open_fds", help: "Open file descriptors of the supervisor.")
        static let processMaxFDs = FamilyInfo(
            name: "process_max_fds", help: "The supervisor's limit on open file descriptors (RLIMIT_NOFILE, soft).")
        static let processStart = FamilyInfo(
            name: "process_start_time_seconds", help: "When the supervisor started, in seconds since the epoch.")
        static let controlRequests = FamilyInfo(
            name: "mcp_supervisor_control_requests_total",
            help: "Control-socket requests by method and result: ok, error, or denied (not allowed for the caller).")
        static let reloads = FamilyInfo(
            name: "mcp_supervisor_reloads_total",
            help: "Configuration reloads (SIGHUP or mcpctl reload) by result: ok, or rejected (nothing changed).")
        static let buildInfo = FamilyInfo(
            name: "mcp_supervisor_build_info", help: "Always 1; the supervisor's version is the label.")
        static let scrapeErrors = FamilyInfo(
            name: "mcp_supervisor_scrape_errors_total",
            help: "Scrapes in which a replica of the server did not answer the metrics request in time "
                + "(its traffic series were left out of that scrape).")
        /// The listener's family too (Metrics/TrafficRendering.swift), with the same help text.
        static let crashErrors = FamilyInfo(
            name: "mcp_server_errors_total",
            help: "Failed MCP requests by error type: protocol_error, tool_error, deadline, cancelled, crash "
                + "(crash: calls in flight when a replica died, counted by the supervisor).")
    }
}
