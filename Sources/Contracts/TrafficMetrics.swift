import MCPProtocol

/// A host's traffic counters as it reports them to the supervisor in a `metrics` answer (docs/metrics.md): the
/// supervisor asks every replica when it is scraped and renders the answers as the `mcp_server_*` series, with the
/// `server`, `group` and `replica` labels it knows. Counters count from the host's start; a new replica starts
/// from zero (Prometheus's `rate()` handles the reset) and no counter goes backwards within one replica's life.
///
/// Label values are bounded by construction: a method is one of `TrafficMetrics.methods` or `other`, a tool is one
/// the plugin declared or `other`, an error type one of `ErrorType`.
public struct TrafficSnapshot: Sendable, Equatable {
    /// Requests by method and outcome (`ok` or `error`: a JSON-RPC error answer, or a tool result with isError).
    public var requests: [RequestCount] = []
    /// Operation durations by method, tool (empty for methods without one) and error type (empty on success).
    public var operations: [OperationHistogram] = []
    /// Requests being served now (tool calls and every other method).
    public var callsInFlight = 0
    /// Errors by `ErrorType` raw value.
    public var errors: [String: Int] = [:]
    /// Requests cancelled by the client (`notifications/cancelled` or a closed connection).
    public var cancellations = 0
    /// Calls that reached their deadline.
    public var deadlineExpiries = 0
    /// Bytes of HTTP request bodies read and of response bodies written.
    public var bytesIn = 0
    public var bytesOut = 0
    /// The plugin's handler slots: busy now, and how many there are.
    public var slotsBusy = 0
    public var slotsTotal = 0
    /// Sessions open (the 2025 era; the 2026-07-28 era has none).
    public var sessionsOpen = 0
    /// The plugin's own series (the metrics extension), in the order the plugin registered their families.
    public var plugin: [PluginMetricFamily] = []

    public init() {}
}

public struct RequestCount: Sendable, Equatable {
    public var method: String
    /// `ok` or `error`.
    public var outcome: String
    public var count: Int

    public init(method: String, outcome: String, count: Int) {
        self.method = method
        self.outcome = outcome
        self.count = count
    }
}

/// One histogram: non-cumulative counts per bucket of `TrafficMetrics.durationBuckets`, then one for +Inf (so
/// `buckets.count == durationBuckets.count + 1`), the sum of the durations in seconds, and their number.
public struct OperationHistogram: Sendable, Equatable {
    public var method: String
    public var tool: String
    public var errorType: String
    public var buckets: [Int]
    public var sum: Double
    public var count: Int

    public init(method: String, tool: String, errorType: String, buckets: [Int], sum: Double, count: Int) {
        self.method = method
        self.tool = tool
        self.errorType = errorType
        self.buckets = buckets
        self.sum = sum
        self.count = count
    }
}

public enum TrafficMetrics {
    /// Upper bounds (seconds) of the operation-duration buckets; 0.2 is there for the "p95 under 200 ms" target.
    public static let durationBuckets: [Double] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2.5, 5, 10, 30,
    ]

    /// The methods that get a label value of their own; any other is counted as `other`.
    public static let methods: [String] = [
        "initialize", "ping", "server/discover", "tools/list", "tools/call", "resources/list",
        "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe", "prompts/list",
        "prompts/get", "completion/complete", "logging/setLevel", "subscriptions/listen", "notifications",
    ]

    /// The label value for a method: itself when known, `notifications` for any notification, else `other`.
    public static func methodLabel(_ method: String) -> String {
        if method.hasPrefix("notifications/") { return "notifications" }
        return methods.contains(method) ? method : "other"
    }

    /// What went wrong with a request (the `error_type` label; empty on success).
    public enum ErrorType: String, Sendable, CaseIterable {
        /// A JSON-RPC error answer for a malformed or refused request (parse error, unknown method, bad params).
        case protocolError = "protocol_error"
        /// A tool ran and answered with isError, or the plugin answered a request with an error.
        case toolError = "tool_error"
        /// The call reached its deadline.
        case deadline
        /// The client cancelled the call.
        case cancelled
        /// The plugin crashed (the host answers what was in flight before it exits).
        case crash
    }
}

extension TrafficSnapshot {
    enum Key {
        static let requests = "requests"
        static let operations = "ops"
        static let method = "m"
        static let tool = "t"
        static let errorType = "e"
        static let buckets = "b"
        static let sum = "s"
        static let count = "n"
        static let inflight = "inflight"
        static let errors = "errors"
        static let cancellations = "cancelled"
        static let deadlineExpiries = "deadline"
        static let bytesIn = "bytes_in"
        static let bytesOut = "bytes_out"
        static let slotsBusy = "slots_busy"
        static let slotsTotal = "slots"
        static let sessions = "sessions"
        static let plugin = "plugin"
    }

    /// The snapshot's fields as they go into a `metrics` event (merged into the event's object).
    public func encode(into o: inout [String: JSONValue]) {
        o[Key.requests] = .array(
            requests.map { .array([.string($0.method), .string($0.outcome), .int(Int64($0.count))]) })
        o[Key.operations] = .array(
            operations.map { h in
                .object([
                    Key.method: .string(h.method), Key.tool: .string(h.tool), Key.errorType: .string(h.errorType),
                    Key.buckets: .array(h.buckets.map { .int(Int64($0)) }), Key.sum: .double(h.sum),
                    Key.count: .int(Int64(h.count)),
                ])
            })
        o[Key.inflight] = .int(Int64(callsInFlight))
        o[Key.errors] = .object(errors.mapValues { .int(Int64($0)) })
        o[Key.cancellations] = .int(Int64(cancellations))
        o[Key.deadlineExpiries] = .int(Int64(deadlineExpiries))
        o[Key.bytesIn] = .int(Int64(bytesIn))
        o[Key.bytesOut] = .int(Int64(bytesOut))
        o[Key.slotsBusy] = .int(Int64(slotsBusy))
        o[Key.slotsTotal] = .int(Int64(slotsTotal))
        o[Key.sessions] = .int(Int64(sessionsOpen))
        if !plugin.isEmpty { o[Key.plugin] = .array(plugin.map { $0.encoded() }) }
    }

    /// The snapshot in a `metrics` event; entries that are not well formed are skipped, missing numbers are 0.
    public static func decode(_ value: JSONValue) -> TrafficSnapshot {
        var s = TrafficSnapshot()
        func int(_ v: JSONValue?) -> Int { v.flatMap(intValue) ?? 0 }
        if case .array(let rows) = value[Key.requests] {
            for row in rows {
                guard case .array(let r) = row, r.count == 3, let m = r[0].stringValue, let o = r[1].stringValue,
                    let n = intValue(r[2])
                else { continue }
                s.requests.append(RequestCount(method: m, outcome: o, count: n))
            }
        }
        if case .array(let ops) = value[Key.operations] {
            for op in ops {
                guard let m = op[Key.method]?.stringValue, case .array(let b) = op[Key.buckets],
                    b.count == TrafficMetrics.durationBuckets.count + 1
                else { continue }
                s.operations.append(
                    OperationHistogram(
                        method: m, tool: op[Key.tool]?.stringValue ?? "",
                        errorType: op[Key.errorType]?.stringValue ?? "", buckets: b.map { intValue($0) ?? 0 },
                        sum: op[Key.sum]?.numberValue ?? 0, count: int(op[Key.count])))
            }
        }
        s.callsInFlight = int(value[Key.inflight])
        if case .object(let errors) = value[Key.errors] {
            for (k, v) in errors { s.errors[k] = intValue(v) ?? 0 }
        }
        s.cancellations = int(value[Key.cancellations])
        s.deadlineExpiries = int(value[Key.deadlineExpiries])
        s.bytesIn = int(value[Key.bytesIn])
        s.bytesOut = int(value[Key.bytesOut])
        s.slotsBusy = int(value[Key.slotsBusy])
        s.slotsTotal = int(value[Key.slotsTotal])
        s.sessionsOpen = int(value[Key.sessions])
        if case .array(let families) = value[Key.plugin] {
            var seen = Set<String>()
            for f in families {
                guard let family = PluginMetricFamily.decode(f), seen.insert(family.name).inserted else { continue }
                s.plugin.append(family)
            }
        }
        return s
    }
}
