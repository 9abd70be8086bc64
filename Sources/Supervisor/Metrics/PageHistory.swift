import Contracts

/// One replica's cumulative traffic as the page's history needs it (from its `TrafficSnapshot`).
struct TrafficTotals: Sendable, Equatable {
    var requests: Int
    var errors: Int
    /// Non-cumulative counts per `TrafficMetrics.durationBuckets` bucket, then +Inf.
    var buckets: [Int]

    init(requests: Int, errors: Int, buckets: [Int]) {
        self.requests = requests
        self.errors = errors
        self.buckets = buckets
    }

    init(_ snapshot: TrafficSnapshot) {
        requests = snapshot.requests.reduce(0) { $0 + $1.count }
        errors = snapshot.requests.filter { $0.outcome == "error" }.reduce(0) { $0 + $1.count }
        var b = [Int](repeating: 0, count: TrafficMetrics.durationBuckets.count + 1)
        for op in snapshot.operations where op.buckets.count == b.count {
            for i in b.indices { b[i] += op.buckets[i] }
        }
        buckets = b
    }
}

/// The status page's history: per server, the last `capacity` samples of request rate, error ratio and p95.
/// (Placeholder interface; the page side of issue 12 implements it.)
struct PageHistory: Sendable {
    static let capacity = 60
    let interval: Double

    init(interval: Double = 10) { self.interval = interval }

    /// One sample for every server listed (its replicas' cumulative totals at `time`, by replica index); servers
    /// not listed are dropped from the history.
    mutating func record(time: Double, servers: [String: [Int: TrafficTotals]]) {}

    func samples(_ server: String) -> [PageSample] { [] }
}
