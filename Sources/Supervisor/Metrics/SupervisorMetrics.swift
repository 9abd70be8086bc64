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
/// (`mcp_server_errors_total{error_type="crash"}`), held across the replica's lives (`crashes`). It is kept out of
/// the registry so that the registry's page has no family in common with the hosts' and goes onto the page as it
/// is; `TrafficRendering` adds it to the host's crash count (0) of a replica that answers, and writes it alone for
/// one that does not (only once the replica lost a call).
///
/// The gauges set at each scrape are held per server and replica (`ServerSeries`), made when the server first
/// shows, so that a refresh sets them without looking up any label set (with 50 servers, hashing ~1,000 label
/// sets per scrape was a quarter of the scrape's CPU, docs/performance.md).
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
    /// Counters bumped as things happen.
    private var counters: [SeriesKey: Counter] = [:]
    private var histograms: [SeriesKey: ValueHistogram] = [:]
    /// The last `inflight` each replica's host reported (a pong, a probe's loop part, a metrics answer).
    private var inflight: [ReplicaID: Int] = [:]
    /// Calls lost when a replica died by a signal, by replica, with the group they were counted under.
    private var lost: [ReplicaID: (group: String, count: Int)] = [:]
    /// The scrape-time gauges of each server, made when it first shows.
    private var series: [String: ServerSeries] = [:]
    /// The registry's text, kept between scrapes for its capacity.
    private var scratch: [UInt8] = []
    /// The supervisor's own `process_*` series.
    private var own = OwnSeries()

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

    /// A connection to an unavailable server's port was answered with 503 (Unavailable/).
    func unavailableAnswer(server: String, group: String, state: Unavailability.State) {
        counter(Family.unavailableAnswers, server: server, group: group, extra: ["state", state.rawValue]).increment()
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
            let before = self.lost[id]
            self.lost[id] = (group, (before?.group == group ? before!.count : 0) + lost)
        }
    }

    /// The crash counts for the page (`TrafficRendering.write`), by server and replica.
    func crashes() -> [TrafficRendering.Crashes] {
        lost.keys.sorted { ($0.server, $0.index) < ($1.server, $1.index) }.map { id in
            TrafficRendering.Crashes(server: id.server, group: lost[id]!.group, index: id.index, count: lost[id]!.count)
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
        servers: [String: ServerState], now: Double, stats: (Int32) -> ProcessStats?, own stats0: ProcessStats?,
        maxFDs: Int?
    ) {
        if own.buildInfo == nil { own.buildInfo = gauge(SeriesKey(Family.buildInfo, extra: ["version", version])) }
        own.buildInfo?.set(1.0)
        set(&own.resident, SeriesKey(Family.processResident), stats0.map { Double($0.residentBytes) })
        set(&own.virtual, SeriesKey(Family.processVirtual), stats0.map { Double($0.virtualBytes) })
        set(&own.openFDs, SeriesKey(Family.processOpenFDs), stats0.map { Double($0.openFDs) })
        set(&own.start, SeriesKey(Family.processStart), stats0?.startTime)
        set(&own.maxFDs, SeriesKey(Family.processMaxFDs), maxFDs.map(Double.init))
        reading(&own.cpu, SeriesKey(Family.processCPU), stats0?.cpuSeconds)

        var changed = false
        for (name, server) in servers {
            let group = server.config.metricsGroup
            let s: ServerSeries
            if let existing = series[name], existing.group == group {
                s = existing
            } else {
                if let old = series[name] { drop(old) }
                s = makeSeries(name, group: group)
                series[name] = s
                changed = true
            }
            s.up.set(server.isReady ? 1.0 : 0.0)
            let status = server.status
            for (state, gauge) in s.states { gauge.set(state == status ? 1.0 : 0.0) }
            let states = server.replicas.map(\.health.state)
            let health = HealthAggregate.state(states)
            for (state, gauge) in s.health { gauge.set(state == health ? 1.0 : 0.0) }
            s.score.set(HealthAggregate.score(states))
            var backoff = 0.0
            for replica in server.replicas {
                switch replica.lifecycle.phase {
                case .backoff(let at): backoff = max(backoff, at - now)
                case .fatal(let at): backoff = max(backoff, at - now)
                default: break
                }
            }
            s.backoff.set(max(0, backoff))
            set(&s.port, s.key(Family.serverPort), server.port.map(Double.init))

            if s.replicas.count > server.replicas.count { changed = true }
            while s.replicas.count > server.replicas.count { drop(s.replicas.removeLast()) }
            for replica in server.replicas {
                let index = replica.index
                while s.replicas.count <= index {
                    s.replicas.append(ReplicaSeries(up: gauge(s.key(Family.replicaUp, replica: s.replicas.count))))
                }
                let r = s.replicas[index]
                if case .running = replica.lifecycle.phase { r.up.set(1.0) } else { r.up.set(0.0) }
                let code = replica.lastExitStatus.map { status -> Double in
                    switch status {
                    case .exited(let c): return Double(c)
                    case .signaled(let sig): return Double(128 + sig)
                    }
                }
                set(&r.lastExit, s.key(Family.lastExitCode, replica: index), code)
                set(&r.startDuration, s.key(Family.startDuration, replica: index), replica.startDuration)
                let process = replica.pid.flatMap(stats)
                set(
                    &r.uptime, s.key(Family.uptime, replica: index),
                    replica.pid.map { _ in max(0, now - replica.spawnedAt) })
                set(
                    &r.resident, s.key(Family.replicaResident, replica: index), process.map { Double($0.residentBytes) }
                )
                set(&r.openFDs, s.key(Family.replicaOpenFDs, replica: index), process.map { Double($0.openFDs) })
                reading(&r.cpu, s.key(Family.replicaCPU, replica: index), process?.cpuSeconds)
            }
        }
        for (name, s) in series where servers[name] == nil {
            drop(s)
            series[name] = nil
            changed = true
        }
        guard changed else { return }
        // Counters and histograms of servers (or groups, or replicas) that are gone.
        func gone(_ server: String?, _ group: String, _ replica: Int?) -> Bool {
            guard let server else { return false }
            guard let now = series[server], now.group == group else { return true }
            if let replica { return replica >= now.replicas.count }
            return false
        }
        for (key, counter) in counters where gone(key.server, key.group, key.replica) {
            registry.unregisterCounter(counter)
            counters[key] = nil
        }
        for (key, histogram) in histograms where gone(key.server, key.group, key.replica) {
            registry.unregisterValueHistogram(histogram)
            histograms[key] = nil
        }
        for (id, entry) in lost where gone(id.server, entry.group, id.index) { lost[id] = nil }
        for id in inflight.keys where series[id.server] == nil { inflight[id] = nil }
    }

    /// A server's gauges, and the counters every server has from the start (0 until something happens).
    private func makeSeries(_ name: String, group: String) -> ServerSeries {
        let key = { (family: FamilyInfo, extra: [String]) in
            SeriesKey(family, server: name, group: group, extra: extra)
        }
        let s = ServerSeries(
            name: name, group: group, up: gauge(key(Family.serverUp, [])),
            states: ServerStatus.allCases.map { ($0, gauge(key(Family.serverState, ["state", $0.rawValue]))) },
            health: HealthState.allCases.map { ($0, gauge(key(Family.healthState, ["state", $0.rawValue]))) },
            score: gauge(key(Family.healthScore, [])), backoff: gauge(key(Family.backoffRemaining, [])))
        for reason in RestartReason.allCases {
            _ = counter(Family.restarts, server: name, group: group, extra: ["reason", reason.rawValue])
        }
        _ = counter(Family.scrapeErrors, server: name, group: group)
        return s
    }

    private func drop(_ s: ServerSeries) {
        for gauge in [s.up, s.score, s.backoff] + s.states.map(\.1) + s.health.map(\.1) {
            registry.unregisterGauge(gauge)
        }
        set(&s.port, s.key(Family.serverPort), nil)
        for r in s.replicas { drop(r) }
        s.replicas = []
    }

    private func drop(_ r: ReplicaSeries) {
        registry.unregisterGauge(r.up)
        for gauge in [r.lastExit, r.startDuration, r.uptime, r.resident, r.openFDs].compactMap({ $0 }) {
            registry.unregisterGauge(gauge)
        }
        if let cpu = r.cpu { registry.unregisterCounter(cpu) }
    }

    /// Sets a gauge that exists only while it has a value: made on the first value, unregistered when it has none.
    private func set(_ slot: inout Gauge?, _ key: @autoclosure () -> SeriesKey, _ value: Double?) {
        guard let value else {
            if let gauge = slot { registry.unregisterGauge(gauge) }
            slot = nil
            return
        }
        if slot == nil { slot = gauge(key()) }
        slot!.set(value)
    }

    /// A counter set from a reading (CPU seconds from /proc), existing only while there is one.
    private func reading(_ slot: inout Counter?, _ key: @autoclosure () -> SeriesKey, _ value: Double?) {
        guard let value else {
            if let counter = slot { registry.unregisterCounter(counter) }
            slot = nil
            return
        }
        if slot == nil {
            let k = key()
            slot = registry.makeCounter(descriptor: k.descriptor, labels: k.labels)
        }
        slot!.reset()
        if value > 0 { slot!.increment(by: value) }
    }

    /// The scrape-time gauges of one server (under one group) and of its replicas.
    private final class ServerSeries {
        let name: String
        let group: String
        let up: Gauge
        let states: [(ServerStatus, Gauge)]
        let health: [(HealthState, Gauge)]
        let score: Gauge
        let backoff: Gauge
        var port: Gauge?
        var replicas: [ReplicaSeries] = []

        init(
            name: String, group: String, up: Gauge, states: [(ServerStatus, Gauge)], health: [(HealthState, Gauge)],
            score: Gauge, backoff: Gauge
        ) {
            self.name = name
            self.group = group
            self.up = up
            self.states = states
            self.health = health
            self.score = score
            self.backoff = backoff
        }

        func key(_ family: FamilyInfo, replica: Int? = nil) -> SeriesKey {
            SeriesKey(family, server: name, group: group, replica: replica)
        }
    }

    private final class ReplicaSeries {
        let up: Gauge
        var lastExit: Gauge?
        var startDuration: Gauge?
        var uptime: Gauge?
        var resident: Gauge?
        var openFDs: Gauge?
        var cpu: Counter?

        init(up: Gauge) { self.up = up }
    }

    private struct OwnSeries {
        var buildInfo: Gauge?
        var resident: Gauge?
        var virtual: Gauge?
        var openFDs: Gauge?
        var start: Gauge?
        var maxFDs: Gauge?
        var cpu: Counter?
    }

    /// The supervisor's own series onto the page, in its format.
    func render(into page: inout PageWriter) {
        scratch.removeAll(keepingCapacity: true)
        registry.emit(into: &scratch)
        page.registry(scratch)
    }

    // MARK: Series

    private func gauge(_ key: SeriesKey) -> Gauge {
        registry.makeGauge(descriptor: key.descriptor, labels: key.labels)
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
        static let unavailableAnswers = FamilyInfo(
            name: "mcp_supervisor_unavailable_answers_total",
            help: "Connections to the port of a server that was down for a while (fatal, stopped, exited) answered "
                + "with HTTP 503 by the supervisor, by the server's state.")
        static let scrapeErrors = FamilyInfo(
            name: "mcp_supervisor_scrape_errors_total",
            help: "Scrapes in which a replica of the server did not answer the metrics request in time "
                + "(its traffic series were left out of that scrape).")
    }
}
