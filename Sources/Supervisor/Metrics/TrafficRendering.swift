import Contracts

/// The host-derived `mcp_server_*` families (docs/metrics.md, "Traffic") from the replicas' `TrafficSnapshot`s of
/// one scrape, with the `server`, `group` and `replica` labels the supervisor knows.
///
/// Rendered here rather than through swift-prometheus: its registry (2.4.1) keeps histograms that record one
/// value at a time, and cannot take bucket counts accumulated elsewhere (in the host); and a registry would keep
/// a replica's series after it is gone, where this page shows exactly the replicas that answered this scrape.
enum TrafficRendering {
    /// One replica's answer.
    struct Replica: Sendable {
        var server: String
        var group: String
        var index: Int
        var snapshot: TrafficSnapshot
    }

    static let requests = "mcp_server_requests_total"
    static let duration = "mcp_server_operation_duration_seconds"
    static let inFlight = "mcp_server_calls_in_flight"
    static let errors = "mcp_server_errors_total"
    static let cancellations = "mcp_server_cancellations_total"
    static let deadlines = "mcp_server_deadline_expiries_total"
    static let bytesIn = "mcp_server_request_bytes_total"
    static let bytesOut = "mcp_server_response_bytes_total"
    static let slotsBusy = "mcp_server_handler_slots_busy"
    static let slots = "mcp_server_handler_slots"
    static let sessions = "mcp_server_sessions_open"

    /// The families, each present even when no replica answered (HELP and TYPE only), replicas in the order given.
    static func families(_ replicas: [Replica]) -> [Exposition.Family] {
        typealias F = Exposition.Family
        var req = F(
            name: requests, kind: .counter,
            help: "MCP requests served by a replica, by method and outcome (ok, or error: a JSON-RPC error or a "
                + "tool result with isError), since the replica started.")
        var dur = F(
            name: duration, kind: .histogram,
            help: "How long MCP operations took in the replica, by method, tool (tools/call) and error type "
                + "(empty on success), in seconds.")
        var flight = F(name: inFlight, kind: .gauge, help: "MCP requests being served by the replica now.")
        var err = F(
            name: errors, kind: .counter,
            help: "Failed MCP requests by error type: protocol_error, tool_error, deadline, cancelled, crash "
                + "(crash: calls in flight when a replica died, counted by the supervisor).")
        var cancel = F(
            name: cancellations, kind: .counter,
            help: "Requests the client cancelled (notifications/cancelled or a closed connection).")
        var deadline = F(name: deadlines, kind: .counter, help: "Tool calls that reached their deadline.")
        var inBytes = F(name: bytesIn, kind: .counter, help: "Bytes of HTTP request bodies the replica read.")
        var outBytes = F(name: bytesOut, kind: .counter, help: "Bytes of HTTP response bodies the replica wrote.")
        var busy = F(name: slotsBusy, kind: .gauge, help: "The plugin's handler slots busy now.")
        var total = F(name: slots, kind: .gauge, help: "The plugin's handler slots (its declared concurrency).")
        var open = F(name: sessions, kind: .gauge, help: "MCP sessions open (the 2025 protocol era only).")

        for r in replicas {
            let base = [("server", r.server), ("group", r.group), ("replica", String(r.index))]
            let s = r.snapshot
            func sample(_ family: inout F, _ extra: [(String, String)] = [], value: Int) {
                family.samples.append(.init(name: family.name, labels: base + extra, value: Double(value)))
            }
            // A label set reported twice is one series: added up, so the page never has duplicate series.
            var requestRows: [String: (String, String, Int)] = [:]
            var requestOrder: [String] = []
            for row in s.requests {
                let key = row.method + "\u{0}" + row.outcome
                if let old = requestRows[key] {
                    requestRows[key] = (old.0, old.1, old.2 + row.count)
                } else {
                    requestRows[key] = (row.method, row.outcome, row.count)
                    requestOrder.append(key)
                }
            }
            for key in requestOrder {
                let (method, outcome, count) = requestRows[key]!
                sample(&req, [("mcp_method_name", method), ("outcome", outcome)], value: count)
            }
            var ops: [String: OperationHistogram] = [:]
            var opOrder: [String] = []
            for op in s.operations where op.buckets.count == TrafficMetrics.durationBuckets.count + 1 {
                let key = op.method + "\u{0}" + op.tool + "\u{0}" + op.errorType
                if var old = ops[key] {
                    for i in old.buckets.indices { old.buckets[i] += op.buckets[i] }
                    old.sum += op.sum
                    old.count += op.count
                    ops[key] = old
                } else {
                    ops[key] = op
                    opOrder.append(key)
                }
            }
            for key in opOrder {
                let op = ops[key]!
                let labels =
                    base + [
                        ("mcp_method_name", op.method), ("gen_ai_tool_name", op.tool), ("error_type", op.errorType),
                    ]
                // Cumulative, as Prometheus wants; the +Inf bucket and _count are the buckets' total, so the
                // page is consistent even if the host's count and buckets were read a moment apart.
                var running = 0
                for (i, bound) in TrafficMetrics.durationBuckets.enumerated() {
                    running += op.buckets[i]
                    dur.samples.append(
                        .init(
                            name: duration + "_bucket", labels: labels + [("le", Exposition.bound(bound))],
                            value: Double(running)))
                }
                running += op.buckets[TrafficMetrics.durationBuckets.count]
                dur.samples.append(
                    .init(name: duration + "_bucket", labels: labels + [("le", "+Inf")], value: Double(running)))
                dur.samples.append(.init(name: duration + "_sum", labels: labels, value: op.sum))
                dur.samples.append(.init(name: duration + "_count", labels: labels, value: Double(running)))
            }
            sample(&flight, value: s.callsInFlight)
            // Every type, 0 included, so rate() has a start; only the known types (bounded label values).
            for type in TrafficMetrics.ErrorType.allCases {
                sample(&err, [("error_type", type.rawValue)], value: s.errors[type.rawValue] ?? 0)
            }
            sample(&cancel, value: s.cancellations)
            sample(&deadline, value: s.deadlineExpiries)
            sample(&inBytes, value: s.bytesIn)
            sample(&outBytes, value: s.bytesOut)
            sample(&busy, value: s.slotsBusy)
            sample(&total, value: s.slotsTotal)
            sample(&open, value: s.sessionsOpen)
        }
        return [req, dur, flight, err, cancel, deadline, inBytes, outBytes, busy, total, open]
    }
}
