import Contracts
import Dispatch
import MCPProtocol
import NIOCore
import NIOPosix
import SupervisorCore

#if canImport(Glibc)
    import Glibc
#endif

/// The metrics listener's state on the supervisor: the listener, the replicas that can answer the metrics op,
/// the collections in flight and the status page's history. Touched only on the supervisor's queue
/// (@unchecked Sendable for that reason), except `group`, which is set once before the first bind.
final class MetricsListenerState: @unchecked Sendable {
    /// The one event-loop thread, created when a listener is first wanted, shut down at exit.
    var group: MultiThreadedEventLoopGroup?
    var server: MetricsServer?
    /// The protocol version each replica's `ready` said, with the pid that said it.
    var protocols: [ReplicaID: (pid: Int32, version: Int)] = [:]
    var nextSeq = 0
    var collections: [Int: TrafficCollection] = [:]
    var history = PageHistory()
    /// Monotonic time of the last history sample, and the timer that takes the next.
    var lastSample: Double?
    /// Monotonic time of the last /metrics scrape: while scrapes come regularly they take the samples.
    var lastScrape: Double?
    var historyTimer: DispatchSourceTimer?
    /// The servers that start at boot (/readyz); set when the listener is first opened.
    var bootServers: [String]?
    /// The listener is being stopped for good: answers that come back from the queue are not written.
    var stopped = false
    /// How long collecting the last scrape took.
    var lastScrapeDuration = 0.0
    /// The last page's size: the next one's buffer is reserved at once.
    var lastPageBytes = 0
}

/// One round of `metrics` ops: every replica that can answer was asked at once with `seq`.
final class TrafficCollection {
    let seq: Int
    let started: Double
    /// The replicas not answered yet, with the pid that was asked.
    var waiting: [ReplicaID: Int32]
    var answers: [ReplicaID: TrafficSnapshot] = [:]
    var timeout: DispatchWorkItem?
    let done: (TrafficCollection) -> Void

    init(seq: Int, started: Double, waiting: [ReplicaID: Int32], done: @escaping (TrafficCollection) -> Void) {
        self.seq = seq
        self.started = started
        self.waiting = waiting
        self.done = done
    }
}

extension Supervisor {
    // MARK: The listener

    /// Opens the listener when `metrics_listen` is set. A failed bind is logged and leaves the supervisor running
    /// without it, as a failed control socket does. Call on `queue`, after `start()`.
    public func openMetricsListener() {
        dispatchPrecondition(condition: .onQueue(queue))
        let st = metricsState
        if st.bootServers == nil {
            st.bootServers = servers.keys.filter { !adminStopped.contains($0) }.sorted()
        }
        guard let address = config.metricsListen else { return }
        if bindMetrics(address) { startHistory() }
    }

    /// After a reload: a changed `metrics_listen` binds the new address and then closes the old listener; if the
    /// new one cannot be bound the old one stays. Removed: closed. Call on `queue`.
    func reconfigureMetricsListener() {
        dispatchPrecondition(condition: .onQueue(queue))
        let st = metricsState
        let wanted = config.metricsListen
        guard wanted != st.server?.address else { return }
        guard let address = wanted else {
            st.server?.close()
            st.server = nil
            stopHistory()
            metricsNote("metrics: listener closed (metrics_listen removed)")
            return
        }
        let old = st.server
        // The new one first: on failure the old one stays (`bindMetrics` logs which).
        if bindMetrics(address) {
            old?.close()
            startHistory()
        }
    }

    /// Closes the listener for good (the supervisor exits). Call on `queue`; then `shutdownMetricsLoop()` off it.
    public func closeMetricsListener() {
        dispatchPrecondition(condition: .onQueue(queue))
        let st = metricsState
        st.stopped = true
        st.server?.close()
        st.server = nil
        stopHistory()
        for c in st.collections.values { c.timeout?.cancel() }
        st.collections = [:]
    }

    /// Stops the listener's event-loop thread. Call once, not on `queue`, after `closeMetricsListener()`.
    public func shutdownMetricsLoop() {
        let group = queue.sync { () -> MultiThreadedEventLoopGroup? in
            let g = metricsState.group
            metricsState.group = nil
            return g
        }
        try? group?.syncShutdownGracefully()
    }

    var metricsListenerStopped: Bool { metricsState.stopped }

    private func bindMetrics(_ address: MetricsAddress) -> Bool {
        let st = metricsState
        let group = st.group ?? MultiThreadedEventLoopGroup(numberOfThreads: 1)
        st.group = group
        do {
            st.server = try MetricsServer.bind(address, group: group, routes: MetricsRoutes(supervisor: self))
            metricsNote(
                "metrics: listening on http://\(address)/metrics (also /status.json, /healthz, /readyz, /)",
                fields: ["address": .string("\(address)")])
            return true
        } catch {
            metricsNote(
                "metrics: cannot listen on \(address): \(error)"
                    + (st.server != nil ? "; the listener on \(st.server!.address) stays" : "; no metrics listener"),
                level: .error, fields: ["address": .string("\(address)")])
            return false
        }
    }

    func metricsNote(_ message: String, level: LogRecord.Level = .info, fields: [String: JSONValue] = [:]) {
        write(LogRecord(level, LogEventName.metrics, message, fields: fields))
    }

    // MARK: Replicas and their answers

    /// A replica said ready with its control-channel protocol version (2 and up answer the metrics op).
    func metricsReady(_ id: ReplicaID, protocolVersion: Int) {
        guard let pid = children[id]?.pid else { return }
        metricsState.protocols[id] = (pid, protocolVersion)
    }

    /// A replica's `metrics` answer: kept if its collection still waits for that replica, else dropped (late,
    /// or of another collection: each has its own seq).
    func metricsAnswered(_ id: ReplicaID, seq: Int, _ snapshot: TrafficSnapshot) {
        guard let c = metricsState.collections[seq], c.waiting.removeValue(forKey: id) != nil else { return }
        c.answers[id] = snapshot
        if c.waiting.isEmpty { finishCollection(seq) }
    }

    /// A replica's process exited: nothing to wait for (not a scrape error: it did not hang, it is gone).
    func metricsReplicaGone(_ id: ReplicaID) {
        metricsState.protocols[id] = nil
        for c in Array(metricsState.collections.values) where c.waiting.removeValue(forKey: id) != nil {
            if c.waiting.isEmpty { finishCollection(c.seq) }
        }
    }

    /// Asks every live replica whose protocol is 2 or more for its counters, all at once, and calls `done` (on
    /// `queue`) when all answered or at `metrics_scrape_timeout`; a replica that did not answer by then is
    /// counted in `mcp_supervisor_scrape_errors_total` and left out. `whileWaiting` runs once the requests are out.
    func collectTraffic(whileWaiting: () -> Void = {}, _ done: @escaping (TrafficCollection) -> Void) {
        dispatchPrecondition(condition: .onQueue(queue))
        let st = metricsState
        st.nextSeq += 1
        let seq = st.nextSeq
        var waiting: [ReplicaID: Int32] = [:]
        for (id, child) in children {
            guard let p = st.protocols[id], p.pid == child.pid, p.version >= 2 else { continue }
            if child.send(.metrics(seq: seq)) { waiting[id] = child.pid }
        }
        let c = TrafficCollection(seq: seq, started: Clock.now(), waiting: waiting, done: done)
        st.collections[seq] = c
        // Answers arriving meanwhile wait on the queue; they are taken when this returns.
        whileWaiting()
        guard !waiting.isEmpty else { return finishCollection(seq) }
        let item = DispatchWorkItem { [unowned self] in self.finishCollection(seq) }
        c.timeout = item
        let ns = Int((config.metricsScrapeTimeout * 1e9).rounded())
        queue.asyncAfter(deadline: .now() + .nanoseconds(ns), execute: item)
    }

    private func finishCollection(_ seq: Int) {
        guard let c = metricsState.collections.removeValue(forKey: seq) else { return }
        c.timeout?.cancel()
        for id in c.waiting.keys.sorted(by: { ($0.server, $0.index) < ($1.server, $1.index) }) {
            metrics.scrapeError(server: id.server, group: metricsGroup(id.server))
        }
        metricsState.lastScrapeDuration = Clock.now() - c.started
        sampleHistoryIfDue(c)
        scheduleHistory()
        c.done(c)
    }

    /// The `group` of a server (the configuration in force: a reload's new value shows at once).
    func metricsGroup(_ server: String) -> String {
        config.server(named: server)?.group ?? servers[server]?.config.group ?? ""
    }

    // MARK: /metrics

    /// The page: the supervisor's own series (`SupervisorMetrics`), then every answering replica's traffic. The
    /// supervisor's gauges are refreshed (reading /proc) while the replicas are working on their answers (the
    /// requests are out by then), so a scrape's latency is not the sum of the two; they are written once the
    /// collection ended, with the scrape errors it counted.
    func metricsPage(_ format: Exposition.Format, _ done: @escaping ([UInt8]) -> Void) {
        metricsState.lastScrape = Clock.now()
        let page = PageBox(PageWriter(format: format, capacity: metricsState.lastPageBytes + 4096))
        collectTraffic(
            whileWaiting: { [unowned self] in self.metrics.refresh(self) },
            { [unowned self] c in
                // After the collection: its scrape errors are on this page.
                self.metrics.render(into: &page.writer)
                let replicas = c.answers.keys.sorted { ($0.server, $0.index) < ($1.server, $1.index) }.map { id in
                    TrafficRendering.Replica(
                        server: id.server, group: self.metricsGroup(id.server), index: id.index,
                        snapshot: c.answers[id]!)
                }
                TrafficRendering.write(replicas, crashes: self.metrics.crashes(), into: &page.writer)
                let plugins = PluginSeriesRendering.write(replicas, into: &page.writer)
                page.writer.family(
                    "mcp_supervisor_plugin_families_left_off", .gauge,
                    help: "Plugin families left off this page because another server's plugin reported the same "
                        + "name with another kind, help, labels or buckets.")
                page.writer.begin("mcp_supervisor_plugin_families_left_off", .none)
                page.writer.end(plugins.conflicts.count)
                page.writer.family(
                    "mcp_supervisor_scrape_duration_seconds", .gauge,
                    help: "How long collecting this scrape's traffic counters from the replicas took, in seconds.")
                page.writer.begin("mcp_supervisor_scrape_duration_seconds", .none)
                page.writer.end(self.metricsState.lastScrapeDuration)
                let bytes = page.writer.finish()
                self.metricsState.lastPageBytes = bytes.count
                done(bytes)
            })
    }

    /// The page being written, shared by the two halves of `metricsPage` (both on the queue).
    private final class PageBox {
        var writer: PageWriter
        init(_ writer: PageWriter) { self.writer = writer }
    }

    // MARK: /status.json, /readyz, /

    /// Exactly what `mcpctl status --json` prints.
    func statusPageJSON() -> [UInt8] {
        Array((JSONWriter.string(statusResult()) + "\n").utf8)
    }

    /// 200 when every server that started at boot (and is still configured, and not stopped by an admin since)
    /// is running; else 503 with those that are not and their state.
    func readiness() -> (Bool, [UInt8]) {
        let boot = metricsState.bootServers ?? servers.keys.sorted()
        var notReady: [JSONValue] = []
        for name in boot {
            guard let server = servers[name], !adminStopped.contains(name) else { continue }
            if server.status != .running {
                notReady.append([StatusKey.name: .string(name), StatusKey.state: .string(server.status.rawValue)])
            }
        }
        let body: JSONValue = ["ready": .bool(notReady.isEmpty), "not_ready": .array(notReady)]
        return (notReady.isEmpty, Array((JSONWriter.string(body) + "\n").utf8))
    }

    /// The status page's model from the machine's state and the history.
    func statusPageModel() -> StatusPageModel {
        let now = Clock.now()
        let list = servers.keys.sorted().compactMap { name -> StatusPageModel.Server? in
            guard let server = servers[name] else { return nil }
            let states = server.replicas.map(\.health.state)
            return StatusPageModel.Server(
                name: name, group: metricsGroup(name), state: server.status.rawValue,
                health: HealthAggregate.state(states).rawValue, score: HealthAggregate.score(states),
                port: server.port,
                replicas: server.replicas.map { r in
                    StatusPageModel.Replica(
                        index: r.index, state: r.lifecycle.phase.name, pid: r.pid,
                        uptime: r.pid != nil ? now - r.spawnedAt : nil)
                },
                restarts: server.replicas.reduce(0) { $0 + $1.lifecycle.restarts },
                lastExit: server.replicas.compactMap(\.lifecycle.lastExit).last.map { "\($0)" },
                history: metricsState.history.samples(name))
        }
        return StatusPageModel(
            generatedAt: Self.wallClock(), version: ControlProtocol.serverVersion,
            sampleInterval: metricsState.history.interval, servers: list)
    }

    static func wallClock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    // MARK: The page's history

    /// Takes a history sample from a collection when one is due (every `history.interval` seconds).
    private func sampleHistoryIfDue(_ c: TrafficCollection) {
        let st = metricsState
        guard st.server != nil else { return }
        let now = Clock.now()
        if let last = st.lastSample, now - last < st.history.interval * 0.9 { return }
        st.lastSample = now
        var totals: [String: [Int: TrafficTotals]] = [:]
        for name in servers.keys { totals[name] = [:] }
        for (id, snapshot) in c.answers where totals[id.server] != nil {
            totals[id.server]![id.index] = TrafficTotals(snapshot)
        }
        st.history.record(time: Self.wallClock(), servers: totals)
    }

    private func startHistory() {
        let st = metricsState
        if st.historyTimer == nil {
            let timer = DispatchSource.makeTimerSource(queue: queue)
            // A collection like a scrape's; it takes the sample if one is due and sets the timer again.
            timer.setEventHandler { [unowned self] in
                if self.metricsState.server != nil { self.collectTraffic { _ in } }
            }
            timer.schedule(deadline: .distantFuture)
            timer.resume()
            st.historyTimer = timer
        }
        // The first sample at once: the page's rates start from it.
        collectTraffic { _ in }
    }

    /// The timer for the next sample: `history.interval` after the last one (a scrape may have taken it). While a
    /// scraper comes at least every `scrapeTakesSamples` intervals, its scrapes take the samples (each is due after
    /// 0.9 intervals) and the timer waits that long, so it does not fire between them: the history then costs no
    /// collection of its own (docs/metrics.md, "The status page").
    private func scheduleHistory() {
        let st = metricsState
        guard let timer = st.historyTimer, st.server != nil else { return }
        let now = Clock.now()
        let scraped = st.lastScrape.map { now - $0 < Self.scrapeTakesSamples * st.history.interval } ?? false
        let wait = st.history.interval * (scraped ? Self.scrapeTakesSamples : 1)
        let next = max(0.05, wait - (now - (st.lastSample ?? -.infinity)))
        timer.schedule(deadline: .now() + .nanoseconds(Int(min(next, 86400) * 1e9)), leeway: .milliseconds(100))
    }

    /// A scraper that comes at least this often (in history intervals: every 16 s) takes the history's samples.
    static let scrapeTakesSamples = 1.6

    private func stopHistory() {
        metricsState.historyTimer?.cancel()
        metricsState.historyTimer = nil
    }
}
