import Contracts
import MCPProtocol
import Testing

/// The rules of plugin series (Contracts/PluginMetrics.swift), which both the host (at registration) and the
/// supervisor (when it decodes a host's answer) apply, and the families' trip through a `metrics` event.
struct PluginMetricsTests {
    @Test func names() {
        #expect(PluginMetrics.nameProblem("jobs_total", kind: .counter) == nil)
        #expect(PluginMetrics.nameProblem("queue_depth", kind: .gauge) == nil)
        #expect(PluginMetrics.nameProblem("_x", kind: .histogram) == nil)
        #expect(PluginMetrics.nameProblem("jobs", kind: .counter) == "a counter's name must end in _total")
        #expect(PluginMetrics.nameProblem("_total", kind: .counter) == "a counter's name must end in _total")
        #expect(PluginMetrics.nameProblem("open_total", kind: .gauge) == "only a counter's name may end in _total")
        #expect(PluginMetrics.nameProblem("x_count", kind: .histogram)?.contains("_count (reserved)") == true)
        #expect(PluginMetrics.nameProblem("9a", kind: .gauge)?.contains("is not [a-zA-Z_]") == true)
        #expect(PluginMetrics.nameProblem("a:b", kind: .gauge)?.contains("is not [a-zA-Z_]") == true)
        #expect(PluginMetrics.nameProblem("é", kind: .gauge)?.contains("is not [a-zA-Z_]") == true)
        #expect(PluginMetrics.nameProblem("", kind: .gauge) == "the name must be 1 to 64 bytes")
        #expect(PluginMetrics.nameProblem(String(repeating: "a", count: 65), kind: .gauge) != nil)
        #expect(PluginMetrics.nameProblem(String(repeating: "a", count: 64), kind: .gauge) == nil)
    }

    @Test func shapes() {
        func problem(_ kind: PluginMetrics.Kind, help: String = "h", _ labels: [String] = [], _ bounds: [Double] = [])
            -> String?
        { PluginMetrics.shapeProblem(kind: kind, help: help, labelNames: labels, bounds: bounds) }
        #expect(problem(.gauge, ["queue", "a_b"]) == nil)
        #expect(problem(.histogram, [], [0.1, 1]) == nil)
        #expect(problem(.gauge, help: "") == "the help text must be 1 to 512 bytes")
        #expect(problem(.gauge, ["replica"]) == "the label name 'replica' is the supervisor's")
        #expect(problem(.gauge, ["__name__"])?.contains("starts with __") == true)
        #expect(problem(.gauge, ["a", "a"]) == "a label name is given twice")
        #expect(problem(.gauge, (0..<9).map { "l\($0)" }) == "more than 8 labels")
        #expect(problem(.histogram, [], []) == "a histogram needs 1 to 32 buckets")
        #expect(problem(.histogram, [], [1, 1]) == "the buckets are not strictly increasing (bucket 1)")
        #expect(problem(.histogram, [], [1, .infinity]) == "bucket 1 is not a finite number")
        #expect(problem(.histogram, [], (1...33).map(Double.init)) == "a histogram needs 1 to 32 buckets")
        #expect(problem(.counter, [], [1]) == "only a histogram has buckets")
    }

    static let families = [
        PluginMetricFamily(
            name: "jobs_total", kind: .counter, help: "Jobs.", labelNames: ["queue"], bounds: [],
            series: [
                PluginMetricSeries(labelValues: ["a"], value: 3, buckets: []),
                PluginMetricSeries(labelValues: ["b \"q\""], value: 0.5, buckets: []),
            ]),
        PluginMetricFamily(
            name: "size", kind: .histogram, help: "Sizes.", labelNames: [], bounds: [1, 10],
            series: [PluginMetricSeries(labelValues: [], value: 12.5, buckets: [1, 2, 0])]),
    ]

    @Test func familiesTravelInAMetricsEvent() throws {
        var snapshot = TrafficSnapshot()
        snapshot.plugin = Self.families
        let wire = try JSONParser.parse(JSONWriter.serialize(HostMessage.metrics(seq: 2, snapshot).encode()))
        guard case .metrics(2, let decoded)? = HostMessage.decode(wire) else {
            Issue.record("not a metrics event: \(wire)")
            return
        }
        #expect(decoded.plugin == Self.families)
    }

    @Test func whatBreaksTheRulesIsLeftOffWhenDecoded() throws {
        var snapshot = TrafficSnapshot()
        var badName = Self.families[0]
        badName.name = "jobs"  // a counter without _total
        var extraSeries = Self.families[1]
        extraSeries.series.append(PluginMetricSeries(labelValues: ["x"], value: 1, buckets: [0, 0, 0]))  // a label too many
        extraSeries.series.append(PluginMetricSeries(labelValues: [], value: 1, buckets: [0, 0]))  // a bucket short
        var twice = Self.families[0]
        twice.help = "Again, other help."  // the same name twice in one answer: the first stays
        snapshot.plugin = [badName, extraSeries, Self.families[0], twice]
        let wire = try JSONParser.parse(JSONWriter.serialize(HostMessage.metrics(seq: 1, snapshot).encode()))
        guard case .metrics(_, let decoded)? = HostMessage.decode(wire) else {
            Issue.record("not a metrics event")
            return
        }
        #expect(decoded.plugin.map(\.name) == ["size", "jobs_total"])
        #expect(decoded.plugin[0].series == Self.families[1].series)
        #expect(decoded.plugin[1].help == "Jobs.")
    }
}
