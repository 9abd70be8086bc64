import Contracts
import Testing

@testable import Supervisor

/// The page's families (Metrics/OpenMetrics.swift) and the host-derived ones (Metrics/TrafficRendering.swift):
/// reading the registry's text back, merging, text 0.0.4 and OpenMetrics output, escaping, negotiation.
struct ExpositionTests {
    static func text(_ families: [Exposition.Family], _ format: Exposition.Format = .text) -> String {
        String(decoding: Exposition.render(families, format), as: UTF8.self)
    }

    @Test func registryTextRoundTrips() {
        let page = """
            # HELP a_total Things \\\\ done.
            # TYPE a_total counter
            a_total{server="x",group="g"} 3
            # TYPE h histogram
            h_bucket{le="0.5"} 1
            h_bucket{le="+Inf"} 2
            h_sum 0.75
            h_count 2
            loose 1.5

            """
        let families = Exposition.parse(Array(page.utf8))
        #expect(families.map(\.name) == ["a_total", "h", "loose"])
        #expect(families[0].kind == .counter && families[0].help == "Things \\ done.")
        #expect(families[1].samples.map(\.name) == ["h_bucket", "h_bucket", "h_sum", "h_count"])
        #expect(families[2].kind == .untyped)
        #expect(Self.text(families) == page.replacingOccurrences("loose 1.5\n", "# TYPE loose untyped\nloose 1.5\n"))
    }

    @Test func labelValuesAreEscapedAndReadBack() {
        let family = Exposition.Family(
            name: "x", kind: .gauge, help: "line\nbreak",
            samples: [.init(name: "x", labels: [("tool", "a\"b\\c\nd")], value: 1)])
        let out = Self.text([family])
        #expect(out == "# HELP x line\\nbreak\n# TYPE x gauge\nx{tool=\"a\\\"b\\\\c\\nd\"} 1\n")
        let back = Exposition.parse(Array(out.utf8))
        #expect(back[0].samples[0].labels[0].1 == "a\"b\\c\nd")
        #expect(back[0].help == "line\nbreak")
    }

    @Test func mergeJoinsFamiliesAndAddsUpTheSameSeries() {
        let registry = [
            Exposition.Family(
                name: "e_total", kind: .counter, help: "",
                samples: [.init(name: "e_total", labels: [("type", "crash"), ("server", "s")], value: 2)])
        ]
        let hosts = [
            Exposition.Family(
                name: "e_total", kind: .counter, help: "Errors.",
                samples: [
                    .init(name: "e_total", labels: [("server", "s"), ("type", "crash")], value: 1),
                    .init(name: "e_total", labels: [("server", "s"), ("type", "tool")], value: 5),
                ])
        ]
        let merged = Exposition.merge(registry, hosts)
        #expect(merged.count == 1)
        #expect(merged[0].help == "Errors.")
        #expect(merged[0].samples.map(\.value) == [3, 5])
        #expect(Self.text(merged).components("# TYPE") == 1)
    }

    @Test func openMetricsDropsTotalFromCounterFamiliesAndEnds() {
        let families = [
            Exposition.Family(
                name: "c_total", kind: .counter, help: "say \"hi\"",
                samples: [.init(name: "c_total", labels: [], value: 4)]),
            Exposition.Family(
                name: "h", kind: .histogram, help: "",
                samples: [
                    .init(name: "h_bucket", labels: [("le", "1")], value: 1),
                    .init(name: "h_bucket", labels: [("le", "+Inf")], value: 1),
                ]),
        ]
        let out = Self.text(families, .openMetrics)
        #expect(
            out
                == "# TYPE c counter\n# HELP c say \\\"hi\\\"\nc_total 4\n# TYPE h histogram\nh_bucket{le=\"1.0\"} 1\n"
                + "h_bucket{le=\"+Inf\"} 1\n# EOF\n")
    }

    @Test func negotiation() {
        #expect(Exposition.Format.negotiate(accept: []) == .text)
        #expect(Exposition.Format.negotiate(accept: ["text/plain;version=0.0.4"]) == .text)
        #expect(
            Exposition.Format.negotiate(accept: ["application/openmetrics-text;version=1.0.0,text/plain;q=0.5"])
                == .openMetrics)
        #expect(Exposition.Format.negotiate(accept: ["text/plain", "Application/OpenMetrics-Text"]) == .openMetrics)
        #expect(Exposition.Format.negotiate(accept: ["application/openmetrics-text;q=0,text/plain"]) == .text)
    }

    @Test func trafficHistogramsAreCumulativeWithInfAndCount() {
        var s = TrafficSnapshot()
        var buckets = [Int](repeating: 0, count: TrafficMetrics.durationBuckets.count + 1)
        buckets[0] = 2
        buckets[3] = 1
        buckets[TrafficMetrics.durationBuckets.count] = 1
        s.operations = [
            OperationHistogram(method: "tools/call", tool: "echo", errorType: "", buckets: buckets, sum: 40, count: 4),
            OperationHistogram(method: "tools/call", tool: "echo", errorType: "", buckets: buckets, sum: 1, count: 4),
        ]
        s.requests = [RequestCount(method: "tools/call", outcome: "ok", count: 3)]
        let families = TrafficRendering.families([.init(server: "s", group: "g", index: 1, snapshot: s)])
        let duration = families.first { $0.name == TrafficRendering.duration }!
        let values = duration.samples.filter { $0.name.hasSuffix("_bucket") }.map(\.value)
        #expect(values.count == TrafficMetrics.durationBuckets.count + 1)
        #expect(values[0] == 4 && values[2] == 4 && values[3] == 6 && values[values.count - 2] == 6)
        #expect(values.last == 8)
        #expect(duration.samples.first { $0.name.hasSuffix("_count") }?.value == 8)
        #expect(duration.samples.first { $0.name.hasSuffix("_sum") }?.value == 41)
        let labels = duration.samples[0].labels.map(\.0)
        #expect(labels == ["server", "group", "replica", "mcp_method_name", "gen_ai_tool_name", "error_type", "le"])
        let errors = families.first { $0.name == TrafficRendering.errors }!
        #expect(errors.samples.count == TrafficMetrics.ErrorType.allCases.count)
    }
}

extension String {
    fileprivate func replacingOccurrences(_ a: String, _ b: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: a) {
            out += rest[..<r.lowerBound] + b
            rest = rest[r.upperBound...]
        }
        return out + rest
    }

    fileprivate func components(_ a: String) -> Int {
        var n = 0
        var rest = Substring(self)
        while let r = rest.firstRange(of: a) {
            n += 1
            rest = rest[r.upperBound...]
        }
        return n
    }
}
