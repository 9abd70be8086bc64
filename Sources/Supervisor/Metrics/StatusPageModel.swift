/// What the status page (`/` on `metrics_listen`) shows: built by the metrics listener from the machine's state
/// and `PageHistory`, rendered by `StatusPage.render(_:)`. Plain values, so rendering is a pure function.
struct StatusPageModel: Sendable, Equatable {
    /// Wall-clock time of the snapshot (seconds since 1970).
    var generatedAt: Double
    var version: String
    /// The history's sample interval and length, shown under the sparklines ("last 10 min, every 10 s").
    var sampleInterval: Double
    var servers: [Server]

    struct Server: Sendable, Equatable {
        var name: String
        /// The `group` config value; "" when none.
        var group: String
        /// `ServerStatus` raw value: running, starting, stopping, stopped, waiting, failed, down.
        var state: String
        /// `HealthState` raw value of the server's aggregate: healthy, degraded, unhealthy, initializing, offline.
        var health: String
        /// 0...1.
        var score: Double
        var port: Int?
        var replicas: [Replica]
        /// Restarts of all replicas since the supervisor started.
        var restarts: Int
        /// The last exit of any replica, as status shows it ("exit 1", "signal 9 (SIGKILL)"), nil before any.
        var lastExit: String?
        /// Oldest first, at most `PageHistory.capacity` samples.
        var history: [PageSample]
        /// Why it cannot run (status's `failure`: its port is taken, ...), nil when it can.
        var failure: String? = nil
    }

    struct Replica: Sendable, Equatable {
        var index: Int
        var state: String
        var pid: Int32?
        var uptime: Double?
        /// The replica's `HealthState` raw value, when known.
        var health: String? = nil
    }
}

/// One point of a server's history: rates over the interval that ended at `time`.
struct PageSample: Sendable, Equatable {
    /// Wall-clock seconds.
    var time: Double
    /// Requests per second over the interval.
    var requestRate: Double
    /// Errors / requests over the interval (0 when there were no requests).
    var errorRatio: Double
    /// The 95th percentile of operation durations over the interval, in seconds; nil without requests.
    var p95: Double?
}
