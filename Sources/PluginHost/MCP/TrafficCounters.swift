import Contracts
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The host's traffic counters (docs/plugin-host.md "Metrics"): what the `metrics` op of the control channel
/// reports as a `TrafficSnapshot`. Counting takes no lock: every counter is an `Atomic<Int>` in one table
/// allocated when the plugin is loaded, and the snapshot sums it when the supervisor asks.
///
/// The table has one row per label pair the host can report: each method of `TrafficMetrics.methods` and
/// `other` with the tool label `""`, except `tools/call`, which has one row per tool the plugin declared at load
/// and one for `other` (a tool added later, an unknown one, a call without a name). Each row has a cell per
/// error type (`""` for success, then `TrafficMetrics.ErrorType`), and a cell holds the duration histogram:
/// non-cumulative bucket counts (`TrafficMetrics.durationBuckets`, then +Inf) and the sum in nanoseconds.
/// Everything else is derived at snapshot time: a cell's count is the sum of its buckets, requests by method
/// and outcome are the counts by row (`ok` for the success cell, `error` for the others), errors by type,
/// cancellations and deadline expiries are the counts by error type. So one request costs four atomic
/// additions: in flight up and down, one bucket, the sum.
final class TrafficCounters: @unchecked Sendable {
    // @unchecked: `cells` is a raw pointer to atomics, allocated in init and freed in deinit; every access to
    // what it points at is atomic.

    /// One request being counted: its row, and when it reached the dispatcher (monotonic nanoseconds).
    struct Meter: Sendable {
        var row: Int
        var start: UInt64

        /// What requests carry with `--no-metrics` (never counted).
        static let unmetered = Meter(row: -1, start: 0)
    }

    /// The error-type label of each cell of a row: success first, then every `ErrorType`.
    static let errorLabels: [String] = [""] + TrafficMetrics.ErrorType.allCases.map(\.rawValue)
    /// The bucket upper bounds in nanoseconds (a duration equal to a bound falls in that bucket, as `le` says).
    static let boundsNanos: [UInt64] = TrafficMetrics.durationBuckets.map { UInt64(($0 * 1e9).rounded()) }
    static let bucketCount = TrafficMetrics.durationBuckets.count + 1
    /// Atomics per cell: the buckets, then the sum.
    static let cellSize = bucketCount + 1
    static let rowSize = errorLabels.count * cellSize

    /// (method, tool) of each row.
    let rows: [(method: String, tool: String)]
    private let methodRows: [String: Int]
    private let toolRows: [String: Int]
    let otherMethodRow: Int
    let notificationsRow: Int
    let otherToolRow: Int

    private let cells: UnsafeMutablePointer<Atomic<Int>>
    private let cellCount: Int
    private let inFlight = Atomic<Int>(0)
    private let received = Atomic<Int>(0)
    private let sent = Atomic<Int>(0)

    /// A table for these declared tools (duplicates count once).
    init(tools: [String]) {
        var rows: [(method: String, tool: String)] = []
        var methodRows: [String: Int] = [:]
        var toolRows: [String: Int] = [:]
        var otherToolRow = -1
        for method in TrafficMetrics.methods + ["other"] {
            if method == "tools/call" {
                for tool in tools where toolRows[tool] == nil {
                    toolRows[tool] = rows.count
                    rows.append((method, tool))
                }
                otherToolRow = rows.count
                rows.append((method, "other"))
            } else {
                methodRows[method] = rows.count
                rows.append((method, ""))
            }
        }
        self.rows = rows
        self.methodRows = methodRows
        self.toolRows = toolRows
        self.otherToolRow = otherToolRow
        self.otherMethodRow = methodRows["other"]!
        self.notificationsRow = methodRows["notifications"]!
        cellCount = rows.count * Self.rowSize
        cells = .allocate(capacity: cellCount)
        for i in 0..<cellCount { (cells + i).initialize(to: Atomic(0)) }
    }

    deinit {
        cells.deinitialize(count: cellCount)
        cells.deallocate()
    }

    /// Monotonic time in nanoseconds (CLOCK_MONOTONIC, a vDSO read).
    @inline(__always)
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    // MARK: Counting

    /// The row of a method (`TrafficMetrics.methodLabel`'s rules) and, for `tools/call`, of its tool.
    func row(method: String, tool: String?) -> Int {
        if let row = methodRows[method] { return row }
        if method == "tools/call" { return tool.flatMap { toolRows[$0] } ?? otherToolRow }
        return method.hasPrefix("notifications/") ? notificationsRow : otherMethodRow
    }

    /// A request arrived: it is in flight, counted as `other` until its method is known.
    @inline(__always)
    func begin() -> Meter {
        inFlight.add(1, ordering: .relaxed)
        return Meter(row: otherMethodRow, start: Self.now())
    }

    /// The request is answered (called just before the answer goes to the transport): one observation in its
    /// row's cell for `error` (nil: success), and it is no longer in flight.
    @inline(__always)
    func end(_ meter: Meter, _ error: TrafficMetrics.ErrorType?) {
        let elapsed = Self.now() &- meter.start
        observe(row: meter.row, error: error, nanoseconds: elapsed > (1 << 62) ? 0 : elapsed)
        inFlight.subtract(1, ordering: .relaxed)
    }

    /// The message turned out not to be a request (a JSON-RPC response from the client): not counted.
    func forget(_ meter: Meter) {
        inFlight.subtract(1, ordering: .relaxed)
    }

    /// One observation of `nanoseconds` in a row's cell.
    func observe(row: Int, error: TrafficMetrics.ErrorType?, nanoseconds: UInt64) {
        precondition(row >= 0 && row < rows.count, "traffic row \(row) out of range")
        let cell = row * Self.rowSize + Self.errorIndex(error) * Self.cellSize
        var bucket = 0
        let bounds = Self.boundsNanos
        while bucket < bounds.count, nanoseconds > bounds[bucket] { bucket += 1 }
        cells[cell + bucket].add(1, ordering: .relaxed)
        cells[cell + Self.bucketCount].add(Int(truncatingIfNeeded: nanoseconds), ordering: .relaxed)
    }

    @inline(__always)
    static func errorIndex(_ error: TrafficMetrics.ErrorType?) -> Int {
        switch error {
        case nil: 0
        case .protocolError: 1
        case .toolError: 2
        case .deadline: 3
        case .cancelled: 4
        case .crash: 5
        }
    }

    func addBytesIn(_ n: Int) { received.add(n, ordering: .relaxed) }
    func addBytesOut(_ n: Int) { sent.add(n, ordering: .relaxed) }

    var requestsInFlight: Int { max(0, inFlight.load(ordering: .relaxed)) }

    // MARK: Snapshot

    /// The counters now: histograms and request counts of every cell that saw a request (a cell once seen is
    /// always reported, so no series disappears), errors of every type the host counts (0 included), bytes and
    /// requests in flight. Slots and sessions are the caller's to fill in.
    func snapshot() -> TrafficSnapshot {
        var s = TrafficSnapshot()
        var outcomes: [String: (ok: Int, error: Int)] = [:]
        var methodOrder: [String] = []
        var errors = [Int](repeating: 0, count: Self.errorLabels.count)
        var buckets = [Int](repeating: 0, count: Self.bucketCount)
        for (r, row) in rows.enumerated() {
            for e in 0..<Self.errorLabels.count {
                let cell = r * Self.rowSize + e * Self.cellSize
                var count = 0
                for b in 0..<Self.bucketCount {
                    buckets[b] = cells[cell + b].load(ordering: .relaxed)
                    count += buckets[b]
                }
                guard count > 0 else { continue }
                let sum = Double(cells[cell + Self.bucketCount].load(ordering: .relaxed)) / 1e9
                s.operations.append(
                    OperationHistogram(
                        method: row.method, tool: row.tool, errorType: Self.errorLabels[e], buckets: buckets,
                        sum: sum, count: count))
                if outcomes[row.method] == nil { methodOrder.append(row.method) }
                var o = outcomes[row.method] ?? (0, 0)
                if e == 0 { o.ok += count } else { o.error += count }
                outcomes[row.method] = o
                errors[e] += count
            }
        }
        for method in methodOrder {
            let o = outcomes[method]!
            if o.ok > 0 { s.requests.append(RequestCount(method: method, outcome: "ok", count: o.ok)) }
            if o.error > 0 { s.requests.append(RequestCount(method: method, outcome: "error", count: o.error)) }
        }
        for type in TrafficMetrics.ErrorType.allCases where type != .crash {
            s.errors[type.rawValue] = errors[Self.errorIndex(type)]
        }
        s.cancellations = errors[Self.errorIndex(.cancelled)]
        s.deadlineExpiries = errors[Self.errorIndex(.deadline)]
        s.bytesIn = received.load(ordering: .relaxed)
        s.bytesOut = sent.load(ordering: .relaxed)
        s.callsInFlight = requestsInFlight
        return s
    }
}
