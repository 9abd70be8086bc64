import Contracts
import Testing

@testable import Supervisor

/// The page writer (Metrics/OpenMetrics.swift) and the host-derived families (Metrics/TrafficRendering.swift):
/// the registry's text as OpenMetrics, text 0.0.4 and OpenMetrics output, escaping, numbers, negotiation, and the
/// supervisor's crash counts written with the hosts' error counts.
struct ExpositionTests {
    /// `name{labels}` -> value of every sample line.
    static func samples(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let space = line.lastIndex(of: " ")!
            let value = line[line.index(after: space)...]
            out[String(line[..<space])] = value == "+Inf" ? .infinity : Double(value)!
        }
        return out
    }

    static func traffic(
        _ replicas: [TrafficRendering.Replica], crashes: [TrafficRendering.Crashes] = [],
        _ format: Exposition.Format = .text
    ) -> String {
        var page = PageWriter(format: format)
        TrafficRendering.write(replicas, crashes: crashes, into: &page)
        return String(decoding: page.finish(), as: UTF8.self)
    }

    @Test func theRegistrysTextBecomesOpenMetrics() {
        let registry = """
            # HELP a_total Things \\\\ "done".
            # TYPE a_total counter
            a_total{server="x",group="g"} 3
            # TYPE h histogram
            h_bucket{server="x",le="0.5"} 1
            h_bucket{server="x",le="5"} 2
            h_bucket{server="x",le="+Inf"} 2
            h_sum{server="x"} 0.75
            h_count{server="x"} 2
            # HELP g A gauge.
            # TYPE g gauge
            g 1.5

            """
        var page = PageWriter(format: .openMetrics)
        page.registry(Array(registry.utf8))
        #expect(
            String(decoding: page.finish(), as: UTF8.self) == """
                # TYPE a counter
                # HELP a Things \\\\ \\"done\\".
                a_total{server="x",group="g"} 3
                # TYPE h histogram
                h_bucket{server="x",le="0.5"} 1
                h_bucket{server="x",le="5.0"} 2
                h_bucket{server="x",le="+Inf"} 2
                h_sum{server="x"} 0.75
                h_count{server="x"} 2
                # TYPE g gauge
                # HELP g A gauge.
                g 1.5
                # EOF

                """)
        // Text 0.0.4: the registry's page as it is.
        var text = PageWriter(format: .text)
        text.registry(Array(registry.utf8))
        #expect(text.finish() == Array(registry.utf8))
    }

    @Test func familiesSamplesEscapesAndNumbers() {
        for format in [Exposition.Format.text, .openMetrics] {
            var page = PageWriter(format: format)
            page.family("c_total", .counter, help: "say \"hi\"\nback\\slash")
            page.begin("c_total", PageWriter.Labels([("server", "a\"b\\c\nd")]))
            page.label("k", "v")
            page.end(1_234_567_890_123)
            page.begin("c_total", .none)
            page.end(0)
            page.family("g", .gauge, help: "")
            page.begin("g", .none)
            page.label("only", "x")
            page.end(-0.25)
            page.begin("g", .none)
            page.end(42.0)
            page.begin("g", .none)
            page.end(-7)
            let out = String(decoding: page.finish(), as: UTF8.self)
            let body = """
                c_total{server="a\\"b\\\\c\\nd",k="v"} 1234567890123
                c_total 0
                # TYPE g gauge
                g{only="x"} -0.25
                g 42
                g -7

                """
            switch format {
            case .text:
                #expect(out == "# HELP c_total say \"hi\"\\nback\\\\slash\n# TYPE c_total counter\n" + body)
            case .openMetrics:
                #expect(
                    out == "# TYPE c counter\n# HELP c say \\\"hi\\\"\\nback\\\\slash\n" + body + "# EOF\n")
            }
        }
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
        s.requests = [
            RequestCount(method: "tools/call", outcome: "ok", count: 3),
            RequestCount(method: "tools/call", outcome: "ok", count: 2),
        ]
        let text = Self.traffic([.init(server: "s", group: "g", index: 1, snapshot: s)])
        let samples = Self.samples(text)
        let base =
            #"server="s",group="g",replica="1",mcp_method_name="tools/call",gen_ai_tool_name="echo",error_type="""#
        let bounds = TrafficRendering.boundsText
        let values = bounds.map { samples["\(TrafficRendering.duration)_bucket{\(base),le=\"\($0)\"}"] }
        #expect(values.count == TrafficMetrics.durationBuckets.count + 1)
        #expect(values[0] == 4 && values[2] == 4 && values[3] == 6 && values[values.count - 2] == 6)
        #expect(values.last == 8)
        #expect(samples["\(TrafficRendering.duration)_count{\(base)}"] == 8)
        #expect(samples["\(TrafficRendering.duration)_sum{\(base)}"] == 41)
        #expect(
            samples[
                #"mcp_server_requests_total{server="s",group="g",replica="1",mcp_method_name="tools/call",outcome="ok"}"#
            ] == 5)
        #expect(text.split(separator: "\n").filter { $0.hasPrefix("mcp_server_requests_total") }.count == 1)
        let errors = samples.keys.filter { $0.hasPrefix(TrafficRendering.errors + "{") }
        #expect(errors.count == TrafficMetrics.ErrorType.allCases.count)
        // OpenMetrics: canonical bounds, counter families without _total.
        let om = Self.traffic([.init(server: "s", group: "g", index: 1, snapshot: s)], .openMetrics)
        #expect(om.contains(#"le="1.0"}"#) && !om.contains(#"le="1"}"#))
        #expect(om.contains("# TYPE mcp_server_requests counter\n") && om.hasSuffix("# EOF\n"))
    }

    @Test func crashCountsJoinTheHostsErrorsWithoutADuplicateSeries() {
        var s = TrafficSnapshot()
        s.errors = [TrafficMetrics.ErrorType.crash.rawValue: 1, TrafficMetrics.ErrorType.toolError.rawValue: 5]
        let crashes = [
            TrafficRendering.Crashes(server: "s", group: "g", index: 0, count: 2),
            TrafficRendering.Crashes(server: "s", group: "g", index: 1, count: 4),
            TrafficRendering.Crashes(server: "t", group: "", index: 0, count: 0),
        ]
        let text = Self.traffic([.init(server: "s", group: "g", index: 0, snapshot: s)], crashes: crashes)
        let samples = Self.samples(text)
        let lines = text.split(separator: "\n").filter { $0.hasPrefix(TrafficRendering.errors) }
        #expect(Set(lines).count == lines.count)
        #expect(samples[#"mcp_server_errors_total{server="s",group="g",replica="0",error_type="crash"}"#] == 3)
        #expect(samples[#"mcp_server_errors_total{server="s",group="g",replica="0",error_type="tool_error"}"#] == 5)
        // Replica 1 did not answer: its crash count alone; t's 0 is not written.
        #expect(samples[#"mcp_server_errors_total{server="s",group="g",replica="1",error_type="crash"}"#] == 4)
        #expect(!text.contains(#"server="t""#))
        #expect(text.components("# TYPE mcp_server_errors_total") == 1)
    }
}

/// The plugins' own families (Metrics/PluginSeriesRendering.swift).
struct PluginSeriesRenderingTests {
    static func family(
        _ name: String, _ kind: PluginMetrics.Kind, help: String = "Help.", labels: [String] = [],
        bounds: [Double] = [], _ series: [PluginMetricSeries]
    ) -> PluginMetricFamily {
        PluginMetricFamily(name: name, kind: kind, help: help, labelNames: labels, bounds: bounds, series: series)
    }

    static func replica(_ server: String, _ index: Int, _ families: [PluginMetricFamily]) -> TrafficRendering.Replica {
        var s = TrafficSnapshot()
        s.plugin = families
        return TrafficRendering.Replica(server: server, group: "g", index: index, snapshot: s)
    }

    static func page(_ replicas: [TrafficRendering.Replica], _ format: Exposition.Format = .text) -> (
        String, PluginSeriesRendering.Result
    ) {
        var page = PageWriter(format: format)
        let result = PluginSeriesRendering.write(replicas, into: &page)
        return (String(decoding: page.finish(), as: UTF8.self), result)
    }

    @Test func oneFamilyPerNameAcrossReplicasAndServers() {
        let jobs = { (v: Double) in
            Self.family("jobs_total", .counter, labels: ["queue"], [.init(labelValues: ["a"], value: v, buckets: [])])
        }
        let size = Self.family(
            "size", .histogram, bounds: [1, 10], [.init(labelValues: [], value: 12.5, buckets: [1, 2, 3])])
        let (text, result) = Self.page([
            Self.replica("s", 0, [jobs(3), size]), Self.replica("s", 1, [jobs(4)]), Self.replica("t", 0, [jobs(5)]),
        ])
        #expect(result.conflicts.isEmpty)
        #expect(
            text == """
                # HELP mcp_plugin_jobs_total Help.
                # TYPE mcp_plugin_jobs_total counter
                mcp_plugin_jobs_total{server="s",group="g",replica="0",queue="a"} 3
                mcp_plugin_jobs_total{server="s",group="g",replica="1",queue="a"} 4
                mcp_plugin_jobs_total{server="t",group="g",replica="0",queue="a"} 5
                # HELP mcp_plugin_size Help.
                # TYPE mcp_plugin_size histogram
                mcp_plugin_size_bucket{server="s",group="g",replica="0",le="1"} 1
                mcp_plugin_size_bucket{server="s",group="g",replica="0",le="10"} 3
                mcp_plugin_size_bucket{server="s",group="g",replica="0",le="+Inf"} 6
                mcp_plugin_size_sum{server="s",group="g",replica="0"} 12.5
                mcp_plugin_size_count{server="s",group="g",replica="0"} 6

                """)
        let (om, _) = Self.page([Self.replica("s", 0, [jobs(3), size])], .openMetrics)
        #expect(om.contains("# TYPE mcp_plugin_jobs counter\n# HELP mcp_plugin_jobs Help.\nmcp_plugin_jobs_total{"))
        #expect(om.contains(#"mcp_plugin_size_bucket{server="s",group="g",replica="0",le="10.0"} 3"#))
        #expect(om.hasSuffix("# EOF\n"))
    }

    @Test func aDisagreeingFamilyIsLeftOffAndCounted() {
        let a = Self.family("shared", .gauge, help: "A.", [.init(labelValues: [], value: 1, buckets: [])])
        let b = Self.family("shared", .gauge, help: "B.", [.init(labelValues: [], value: 2, buckets: [])])
        let c = Self.family("shared_total", .counter, [.init(labelValues: [], value: 2, buckets: [])])
        let (text, result) = Self.page([Self.replica("a", 0, [a]), Self.replica("b", 0, [b, c])])
        #expect(result.conflicts == ["b/shared"])
        #expect(text.contains(#"mcp_plugin_shared{server="a",group="g",replica="0"} 1"#))
        #expect(!text.contains(#"mcp_plugin_shared{server="b""#))
        #expect(text.contains(#"mcp_plugin_shared_total{server="b",group="g",replica="0"} 2"#))
    }

    @Test func aSeriesTwiceInOneReplicaIsWrittenOnce() {
        let twice = Self.family(
            "level", .gauge, labels: ["k"],
            [.init(labelValues: ["x"], value: 1, buckets: []), .init(labelValues: ["x"], value: 9, buckets: [])])
        let (text, _) = Self.page([Self.replica("a", 0, [twice])])
        #expect(text.components("mcp_plugin_level{") == 1)
        #expect(text.contains(#"mcp_plugin_level{server="a",group="g",replica="0",k="x"} 1"#))
    }
}

extension String {
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
