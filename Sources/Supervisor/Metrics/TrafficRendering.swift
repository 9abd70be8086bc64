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

    /// A replica's lost calls the supervisor counted (`SupervisorMetrics.crashes`): written with the hosts'
    /// `mcp_server_errors_total{error_type="crash"}`, added to what the replica's host reports, and on their own
    /// for replicas that did not answer this scrape.
    struct Crashes: Sendable {
        var server: String
        var group: String
        var index: Int
        var count: Int
    }

    /// Text 0.0.4 and OpenMetrics spellings of the duration buckets' `le` values, made once.
    static let boundsText = TrafficMetrics.durationBuckets.map(Exposition.bound) + ["+Inf"]
    static let boundsOpenMetrics = TrafficMetrics.durationBuckets.map(Exposition.canonical) + ["+Inf"]

    /// Every family, each present even when no replica answered (HELP and TYPE only), replicas in the order given.
    static func write(_ replicas: [Replica], crashes: [Crashes], into page: inout PageWriter) {
        let labels = replicas.map { r in
            PageWriter.Labels([("server", r.server), ("group", r.group), ("replica", String(r.index))])
        }
        func each(_ body: (Replica, PageWriter.Labels, inout PageWriter) -> Void) {
            for (i, r) in replicas.enumerated() { body(r, labels[i], &page) }
        }
        page.family(
            requests, .counter,
            help: "MCP requests served by a replica, by method and outcome (ok, or error: a JSON-RPC error or a "
                + "tool result with isError), since the replica started.")
        each { r, l, page in
            // A label set reported twice is one series: added up, so the page never has duplicate series.
            var rows: [String: (String, String, Int)] = [:]
            var order: [String] = []
            for row in r.snapshot.requests {
                let key = row.method + "\u{0}" + row.outcome
                if let old = rows[key] {
                    rows[key] = (old.0, old.1, old.2 + row.count)
                } else {
                    rows[key] = (row.method, row.outcome, row.count)
                    order.append(key)
                }
            }
            for key in order {
                let (method, outcome, count) = rows[key]!
                page.begin(requests, l)
                page.label("mcp_method_name", method)
                page.label("outcome", outcome)
                page.end(count)
            }
        }
        page.family(
            duration, .histogram,
            help: "How long MCP operations took in the replica, by method, tool (tools/call) and error type "
                + "(empty on success), in seconds.")
        let bounds = page.format == .openMetrics ? boundsOpenMetrics : boundsText
        let bucketName = duration + "_bucket", sumName = duration + "_sum", countName = duration + "_count"
        each { r, l, page in
            var ops: [String: OperationHistogram] = [:]
            var order: [String] = []
            for op in r.snapshot.operations where op.buckets.count == bounds.count {
                let key = op.method + "\u{0}" + op.tool + "\u{0}" + op.errorType
                if var old = ops[key] {
                    for i in old.buckets.indices { old.buckets[i] += op.buckets[i] }
                    old.sum += op.sum
                    ops[key] = old
                } else {
                    ops[key] = op
                    order.append(key)
                }
            }
            for key in order {
                let op = ops[key]!
                let own = PageWriter.Labels(
                    bytes: l.bytes
                        + PageWriter.Labels(
                            [
                                ("mcp_method_name", op.method), ("gen_ai_tool_name", op.tool),
                                ("error_type", op.errorType),
                            ]
                        ).bytes.withComma)
                // Cumulative, as Prometheus wants; the +Inf bucket and _count are the buckets' total, so the
                // page is consistent even if the host's count and buckets were read a moment apart.
                var running = 0
                for (i, bound) in bounds.enumerated() {
                    running += op.buckets[i]
                    page.begin(bucketName, own)
                    page.label("le", bound)
                    page.end(running)
                }
                page.begin(sumName, own)
                page.end(op.sum)
                page.begin(countName, own)
                page.end(running)
            }
        }
        page.family(inFlight, .gauge, help: "MCP requests being served by the replica now.")
        each { r, l, page in
            page.begin(inFlight, l)
            page.end(r.snapshot.callsInFlight)
        }
        page.family(
            errors, .counter,
            help: "Failed MCP requests by error type: protocol_error, tool_error, deadline, cancelled, crash "
                + "(crash: calls in flight when a replica died, counted by the supervisor).")
        var lost: [String: Int] = [:]
        for c in crashes { lost[c.server + "\u{0}" + String(c.index), default: 0] += c.count }
        var answered = Set<String>()
        each { r, l, page in
            let key = r.server + "\u{0}" + String(r.index)
            answered.insert(key)
            // Every type, 0 included, so rate() has a start; only the known types (bounded label values).
            for type in TrafficMetrics.ErrorType.allCases {
                var n = r.snapshot.errors[type.rawValue] ?? 0
                if type == .crash { n += lost[key] ?? 0 }
                page.begin(errors, l)
                page.label("error_type", type.rawValue)
                page.end(n)
            }
        }
        for c in crashes where c.count > 0 && !answered.contains(c.server + "\u{0}" + String(c.index)) {
            page.begin(
                errors,
                PageWriter.Labels([("server", c.server), ("group", c.group), ("replica", String(c.index))]))
            page.label("error_type", TrafficMetrics.ErrorType.crash.rawValue)
            page.end(c.count)
        }
        func simple(_ name: String, _ kind: Exposition.Kind, _ help: String, _ value: (TrafficSnapshot) -> Int) {
            page.family(name, kind, help: help)
            each { r, l, page in
                page.begin(name, l)
                page.end(value(r.snapshot))
            }
        }
        simple(
            cancellations, .counter, "Requests the client cancelled (notifications/cancelled or a closed connection).",
            \.cancellations)
        simple(deadlines, .counter, "Tool calls that reached their deadline.", \.deadlineExpiries)
        simple(bytesIn, .counter, "Bytes of HTTP request bodies the replica read.", \.bytesIn)
        simple(bytesOut, .counter, "Bytes of HTTP response bodies the replica wrote.", \.bytesOut)
        simple(slotsBusy, .gauge, "The plugin's handler slots busy now.", \.slotsBusy)
        simple(slots, .gauge, "The plugin's handler slots (its declared concurrency).", \.slotsTotal)
        simple(sessions, .gauge, "MCP sessions open (the 2025 protocol era only).", \.sessionsOpen)
    }
}

extension [UInt8] {
    /// `,` and these bytes, or nothing when empty: to join two rendered label sets.
    fileprivate var withComma: [UInt8] { isEmpty ? [] : [UInt8(ascii: ",")] + self }
}
