import Contracts
import Locking

/// The gateway's own series (docs/gateway.md, "Metrics"), published through the same path as a plugin's series:
/// the supervisor writes them as `mcp_plugin_gateway_*` with `server="gateway"`. Counted under one lock per
/// finished call, next to the locks the call takes anyway for its route; the table is bounded (at most
/// `maxCallSeries` backend and name pairs; later names count as `other`).
final class GatewayMetrics: Sendable {
    /// Backend and name pairs with their own series (each has up to three outcomes: 240 series, under the 256 a
    /// family may carry).
    static let maxCallSeries = 80

    private struct CallKey: Hashable {
        var backend: String
        var method: String
        var name: String
        var outcome: String
    }

    private struct Histogram {
        var buckets = [Int](repeating: 0, count: TrafficMetrics.durationBuckets.count + 1)
        var sum = 0.0
    }

    private struct State {
        var calls: [CallKey: Int] = [:]
        var names = Set<[String]>()
        var durations: [String: Histogram] = [:]
        var retries: [String: Int] = [:]
        var cache: [String: (hits: Int, misses: Int)] = [:]
        var limited: [String: Int] = [:]
        var failovers: [String: Int] = [:]
    }

    private let state = Locked(State())

    /// A call finished: `outcome` is ok, tool_error (a result with isError) or error (a JSON-RPC error, or no
    /// answer); `seconds` from its first attempt to its end.
    func call(backend: String, method: String, name: String, outcome: String, seconds: Double) {
        state.withLock { s in
            var label = name
            if !s.names.contains([backend, method, name]) {
                if s.names.count < Self.maxCallSeries {
                    s.names.insert([backend, method, name])
                } else {
                    label = "other"
                }
            }
            s.calls[CallKey(backend: backend, method: method, name: label, outcome: outcome), default: 0] += 1
            var h = s.durations[backend] ?? Histogram()
            let bucket =
                TrafficMetrics.durationBuckets.firstIndex { seconds <= $0 } ?? TrafficMetrics.durationBuckets.count
            h.buckets[bucket] += 1
            h.sum += seconds
            s.durations[backend] = h
        }
    }

    /// A call refused by its tool's rate limit (`[gateway.rate_limits]`; one series per configured tool).
    func rateLimited(tool: String) { state.withLock { $0.limited[tool, default: 0] += 1 } }

    /// A retry sent to another server of the failed one's equivalence class.
    func failedOver(to backend: String) { state.withLock { $0.failovers[backend, default: 0] += 1 } }

    func retried(backend: String) { state.withLock { $0.retries[backend, default: 0] += 1 } }

    func cache(backend: String, hit: Bool) {
        state.withLock { s in
            var c = s.cache[backend] ?? (0, 0)
            if hit { c.hits += 1 } else { c.misses += 1 }
            s.cache[backend] = c
        }
    }

    /// The families now; `backends` is the table's state of each server.
    func families(backends: [(name: String, state: String)]) -> [PluginMetricFamily] {
        state.withLock { s in
            var out: [PluginMetricFamily] = []
            out.append(
                PluginMetricFamily(
                    name: "gateway_calls_total", kind: .counter,
                    help:
                        "Calls through the gateway by backend server, method, tool (or prompt) name on the gateway and outcome (ok, tool_error, error).",
                    labelNames: ["backend", "method", "tool", "outcome"], bounds: [],
                    series: s.calls.sorted { a, b in
                        (a.key.backend, a.key.method, a.key.name, a.key.outcome)
                            < (b.key.backend, b.key.method, b.key.name, b.key.outcome)
                    }.map {
                        PluginMetricSeries(
                            labelValues: [$0.key.backend, $0.key.method, $0.key.name, $0.key.outcome],
                            value: Double($0.value), buckets: [])
                    }))
            out.append(
                PluginMetricFamily(
                    name: "gateway_call_duration_seconds", kind: .histogram,
                    help:
                        "Time from a call's arrival at the gateway to its answer (retries included), by backend server.",
                    labelNames: ["backend"], bounds: TrafficMetrics.durationBuckets,
                    series: s.durations.sorted { $0.key < $1.key }.map {
                        PluginMetricSeries(labelValues: [$0.key], value: $0.value.sum, buckets: $0.value.buckets)
                    }))
            out.append(
                Self.counter(
                    "gateway_retries_total",
                    "Calls the gateway sent again (docs/gateway.md, Retries), by backend server.",
                    label: "backend", s.retries))
            out.append(
                Self.counter(
                    "gateway_failovers_total",
                    "Retries sent to another equivalent server than the one that failed, by the server they went to.",
                    label: "backend", s.failovers))
            out.append(
                PluginMetricFamily(
                    name: "gateway_cache_lookups_total", kind: .counter,
                    help: "Result cache lookups (docs/gateway.md, Cache), by backend server and result (hit, miss).",
                    labelNames: ["backend", "result"], bounds: [],
                    series: s.cache.sorted { $0.key < $1.key }.flatMap {
                        [
                            PluginMetricSeries(
                                labelValues: [$0.key, "hit"], value: Double($0.value.hits), buckets: []),
                            PluginMetricSeries(
                                labelValues: [$0.key, "miss"], value: Double($0.value.misses), buckets: []),
                        ]
                    }))
            out.append(
                Self.counter(
                    "gateway_rate_limited_total",
                    "Calls refused by their tool's rate limit ([gateway.rate_limits]), by tool.", label: "tool",
                    s.limited))
            out.append(
                PluginMetricFamily(
                    name: "gateway_backend_up", kind: .gauge,
                    help: "1 when the gateway can send calls to the server (running or starting), else 0.",
                    labelNames: ["backend", "state"], bounds: [],
                    series: backends.map {
                        PluginMetricSeries(
                            labelValues: [$0.name, $0.state],
                            value: ($0.state == "running" || $0.state == "starting") ? 1 : 0,
                            buckets: [])
                    }))
            return out
        }
    }

    /// A counter with one label, its series in the label's order.
    private static func counter(_ name: String, _ help: String, label: String, _ counts: [String: Int])
        -> PluginMetricFamily
    {
        PluginMetricFamily(
            name: name, kind: .counter, help: help, labelNames: [label], bounds: [],
            series: counts.sorted { $0.key < $1.key }.map {
                PluginMetricSeries(labelValues: [$0.key], value: Double($0.value), buckets: [])
            })
    }
}
