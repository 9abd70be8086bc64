import Prometheus

/// The supervisor's own series (docs/metrics.md, "Supervisor"): counters it bumps as things happen (restarts by
/// reason, control requests, reloads, probe latency, scrape errors) and gauges set from its state when scraped,
/// all in one swift-prometheus registry. Touched only on the supervisor's queue.
///
/// Interface used by the listener (Metrics/MetricsServer.swift and the scrape); the counting is filled in by the
/// event side (issue 12).
final class SupervisorMetrics: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()

    init() {}

    /// Sets every gauge from the supervisor's state; drops the series of servers and replicas that are gone.
    func refresh(_ supervisor: Supervisor) {}

    /// A replica did not answer the metrics op within the scrape's deadline.
    func scrapeError(server: String, group: String) {}

    /// The supervisor's own series, text format 0.0.4.
    func render(into buffer: inout [UInt8]) { registry.emit(into: &buffer) }
}
