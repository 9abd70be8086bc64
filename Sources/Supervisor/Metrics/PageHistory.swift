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

    /// What this replica counted since `previous`, as Prometheus's `rate()` sees a counter: when any counter went
    /// down the replica restarted, and everything it has now was counted since (its new totals from zero).
    func increase(since previous: TrafficTotals) -> TrafficTotals {
        let reset =
            requests < previous.requests || errors < previous.errors || buckets.count != previous.buckets.count
            || zip(buckets, previous.buckets).contains { $0 < $1 }
        if reset { return self }
        return TrafficTotals(
            requests: requests - previous.requests, errors: errors - previous.errors,
            buckets: zip(buckets, previous.buckets).map { $0 - $1 })
    }
}

/// The status page's history: per server, the last `capacity` samples of request rate, error ratio and p95, one
/// every `interval` seconds (60 × 10 s = the last 10 minutes), computed from the replicas' cumulative totals.
///
/// - A sample is the rate over the interval since the previous one, summed over the server's replicas. A replica
///   whose counters went down restarted: its new totals count from zero (Prometheus's `rate()`). A replica seen
///   for the first time counts from that first sample (its baseline), and a server's first call records only the
///   baseline: a rate needs two points.
/// - A replica missing from a call (it did not answer the scrape in time, or it is down) keeps its last totals for
///   `replicaGrace` calls, so that when it answers again what it counted meanwhile is not lost or counted twice;
///   after that it is forgotten (scaled down).
/// - p95 is `histogram_quantile(0.95, ...)` over the interval's bucket increases: linear interpolation inside the
///   bucket holding the rank, the lower bound of the first bucket being 0; a rank in the +Inf bucket gives the
///   highest finite bound (30 s).
/// - Calls closer than half an `interval` to the server's last sample are ignored (so calls on every scrape do not
///   crowd the 10 minutes into less; a caller that gates on its own clock at 0.9 × `interval` is never second-
///   guessed); a clock that went backwards re-takes the baseline.
///
/// Memory is bounded: each server keeps a ring of `capacity` `PageSample`s, allocated once (40 bytes each, 2,400
/// bytes), and one `TrafficTotals` per replica (2 counters and 17 buckets, about 210 bytes with the array's
/// header): about 2.7 KB per server with one replica plus 210 bytes per further replica (`storageBytes`, measured
/// by PageHistoryTests). Servers not listed in a call are dropped.
struct PageHistory: Sendable {
    static let capacity = 60
    /// How many calls a replica may be missing from before its totals are forgotten.
    static let replicaGrace = 6
    let interval: Double
    private var tracks: [String: Track] = [:]

    init(interval: Double = 10) { self.interval = interval }

    private struct Replica: Sendable {
        var totals: TrafficTotals
        var missed = 0
    }

    private struct Track: Sendable {
        var lastTime: Double
        var replicas: [Int: Replica]
        /// A ring of at most `capacity` samples; `head` is the oldest once it is full.
        var ring: [PageSample]
        var head = 0

        init(time: Double, replicas: [Int: TrafficTotals]) {
            lastTime = time
            self.replicas = replicas.mapValues { Replica(totals: $0) }
            ring = []
            ring.reserveCapacity(PageHistory.capacity)
        }

        mutating func append(_ sample: PageSample) {
            if ring.count < PageHistory.capacity {
                ring.append(sample)
            } else {
                ring[head] = sample
                head = (head + 1) % PageHistory.capacity
            }
        }

        var samples: [PageSample] { Array(ring[head...] + ring[..<head]) }
    }

    /// One sample for every server listed (its replicas' cumulative totals at `time`, by replica index); servers
    /// not listed are dropped from the history.
    mutating func record(time: Double, servers: [String: [Int: TrafficTotals]]) {
        for name in tracks.keys where servers[name] == nil { tracks[name] = nil }
        for (name, replicas) in servers {
            guard var track = tracks[name] else {
                tracks[name] = Track(time: time, replicas: replicas)
                continue
            }
            let elapsed = time - track.lastTime
            if elapsed < 0 {
                tracks[name] = Track(time: time, replicas: replicas)
                continue
            }
            if elapsed < 0.5 * interval { continue }
            var increase = TrafficTotals(
                requests: 0, errors: 0, buckets: [Int](repeating: 0, count: TrafficMetrics.durationBuckets.count + 1))
            for (index, totals) in replicas {
                if let previous = track.replicas[index] {
                    let delta = totals.increase(since: previous.totals)
                    increase.requests += delta.requests
                    increase.errors += delta.errors
                    if delta.buckets.count == increase.buckets.count {
                        for i in increase.buckets.indices { increase.buckets[i] += delta.buckets[i] }
                    }
                }
                track.replicas[index] = Replica(totals: totals)
            }
            for (index, var replica) in track.replicas where replicas[index] == nil {
                replica.missed += 1
                track.replicas[index] = replica.missed > Self.replicaGrace ? nil : replica
            }
            track.lastTime = time
            track.append(
                PageSample(
                    time: time, requestRate: Double(increase.requests) / elapsed,
                    errorRatio: increase.requests > 0 ? Double(increase.errors) / Double(increase.requests) : 0,
                    p95: Self.quantile(0.95, buckets: increase.buckets)))
            tracks[name] = track
        }
    }

    /// Oldest first, at most `capacity`.
    func samples(_ server: String) -> [PageSample] { tracks[server]?.samples ?? [] }

    /// The servers with a history.
    var servers: [String] { tracks.keys.sorted() }

    /// The bytes one server's history holds: its ring's allocation and its replicas' totals (the dictionary's
    /// own table and malloc's rounding not counted).
    func storageBytes(_ server: String) -> Int {
        guard let track = tracks[server] else { return 0 }
        let arrayHeader = 32
        let ring = arrayHeader + track.ring.capacity * MemoryLayout<PageSample>.stride
        let replicas = track.replicas.values.reduce(0) {
            $0 + MemoryLayout<Int>.stride + MemoryLayout<Replica>.stride + arrayHeader + $1.totals.buckets.count
                * MemoryLayout<Int>.stride
        }
        return MemoryLayout<Track>.stride + ring + replicas
    }

    /// `histogram_quantile(q, ...)` over non-cumulative bucket counts (`TrafficMetrics.durationBuckets`, then
    /// +Inf); nil when there is no observation.
    static func quantile(_ q: Double, buckets: [Int], bounds: [Double] = TrafficMetrics.durationBuckets) -> Double? {
        let total = buckets.reduce(0, +)
        guard total > 0, buckets.count == bounds.count + 1 else { return nil }
        let rank = q * Double(total)
        var cumulative = 0
        for (i, count) in buckets.enumerated() {
            let below = cumulative
            cumulative += count
            guard Double(cumulative) >= rank, count > 0 else { continue }
            if i == bounds.count { return bounds.last }
            let lower = i == 0 ? 0 : bounds[i - 1]
            let upper = bounds[i]
            return lower + (upper - lower) * (rank - Double(below)) / Double(count)
        }
        return bounds.last
    }
}
