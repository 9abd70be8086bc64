import Testing

@testable import Supervisor

func server(
    _ name: String, group: String = "", state: String = "running", health: String = "healthy", score: Double = 1,
    port: Int? = 8765, replicas: [StatusPageModel.Replica] = [], restarts: Int = 0, lastExit: String? = nil,
    history: [PageSample] = []
) -> StatusPageModel.Server {
    StatusPageModel.Server(
        name: name, group: group, state: state, health: health, score: score, port: port, replicas: replicas,
        restarts: restarts, lastExit: lastExit, history: history)
}

func model(_ servers: [StatusPageModel.Server], at time: Double = 1_795_939_236) -> StatusPageModel {
    StatusPageModel(generatedAt: time, version: "0.1.0", sampleInterval: 10, servers: servers)
}

/// The text between `start` (first occurrence after `from`) and the next `end`.
func slice(_ text: String, from start: String, to end: String) -> String? {
    guard let a = text.firstRange(of: start), let b = text[a.upperBound...].firstRange(of: end) else { return nil }
    return String(text[a.lowerBound..<b.upperBound])
}

func occurrences(_ needle: String, in text: String) -> Int {
    var n = 0
    var rest = text[...]
    while let r = rest.firstRange(of: needle) {
        n += 1
        rest = rest[r.upperBound...]
    }
    return n
}

struct StatusPageTests {
    @Test func aDocumentWithItsOwnStyleAndScriptAndNoExternalAsset() {
        let html = StatusPage.render(model([server("a")]))
        #expect(html.hasPrefix("<!doctype html>\n<html lang=\"en\">"))
        #expect(html.hasSuffix("</html>\n"))
        #expect(occurrences("<main id=\"status\"", in: html) == 1)
        #expect(occurrences("<script>", in: html) == 1)
        #expect(occurrences("<style>", in: html) == 1)
        #expect(html.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"))
        #expect(html.contains("id=\"noscript-note\""))
        for external in ["src=", "<link", "@import", "url(", "http://", "https://"] {
            #expect(!html.contains(external), "\(external)")
        }
        // The script swaps <main> from a fetch of the page itself, every 5 s.
        #expect(html.contains("fetch(location.href"))
        #expect(html.contains("replaceWith"))
        #expect(html.contains("setTimeout(tick,5000)"))
    }

    @Test func everyDynamicStringIsEscaped() {
        let evil = "<script>alert(1)</script>"
        let m = model([
            server(
                evil, group: "g\"><img onerror=x>", state: "run'ning", health: "<blink>",
                replicas: [StatusPageModel.Replica(index: 0, state: "<i>", pid: 1, uptime: 1, health: "&amp")],
                lastExit: "signal <9>")
        ])
        var withFailure = m
        withFailure.servers[0].failure = "port <8765> taken"
        withFailure.version = "<v>"
        let html = StatusPage.render(withFailure)
        #expect(occurrences("<script>", in: html) == 1)  // ours only
        #expect(!html.contains("alert(1)</script>"))
        #expect(!html.contains("<img"))
        #expect(!html.contains("<blink>"))
        #expect(!html.contains("<i>"))
        #expect(!html.contains("<v>"))
        #expect(!html.contains("run'ning"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(html.contains("id=\"server-&lt;script&gt;alert(1)&lt;/script&gt;\""))
        #expect(html.contains("data-group=\"g&quot;&gt;&lt;img onerror=x&gt;\""))
        #expect(html.contains("data-state=\"run&#39;ning\""))
        #expect(html.contains("&amp;amp"))
        #expect(html.contains("signal &lt;9&gt;"))
        #expect(html.contains("port &lt;8765&gt; taken"))
        #expect(html.contains("&lt;v&gt;"))
        #expect(StatusPage.escape("a&b<c>d\"e'f") == "a&amp;b&lt;c&gt;d&quot;e&#39;f")
    }

    @Test func everyFieldOfAServerIsShown() {
        let history = [
            PageSample(time: 10, requestRate: 2, errorRatio: 0, p95: 0.004),
            PageSample(time: 20, requestRate: 12.345, errorRatio: 0.025, p95: 0.0456),
        ]
        let s = server(
            "alpha", group: "search", state: "running", health: "degraded", score: 0.75, port: 9100,
            replicas: [
                StatusPageModel.Replica(index: 0, state: "ready", pid: 4242, uptime: 250, health: "healthy"),
                StatusPageModel.Replica(index: 1, state: "backoff", pid: nil, uptime: nil),
            ], restarts: 3, lastExit: "signal 9 (SIGKILL)", history: history)
        let html = StatusPage.render(model([s]))
        guard let row = slice(html, from: "<tr id=\"server-alpha\"", to: "</tr>") else {
            Issue.record("no row for alpha")
            return
        }
        #expect(row.hasPrefix("<tr id=\"server-alpha\" class=\"server\" data-server=\"alpha\" data-group=\"search\""))
        #expect(row.contains("data-state=\"running\" data-health=\"degraded\""))
        #expect(row.contains("<span class=\"badge state\" data-v=\"running\">running</span>"))
        #expect(row.contains("data-v=\"degraded\"><span aria-hidden=\"true\">▲</span> degraded</span>"))
        #expect(row.contains("<td class=\"score num\">0.75</td>"))
        #expect(row.contains("<td class=\"port num\">9100</td>"))
        #expect(row.contains("<li id=\"replica-alpha-0\" class=\"replica\" data-state=\"ready\">#0"))
        #expect(row.contains("pid 4242"))
        #expect(row.contains("up 4 min 10 s"))
        #expect(row.contains("<span class=\"rhealth\">healthy</span>"))
        #expect(row.contains("<li id=\"replica-alpha-1\" class=\"replica\" data-state=\"backoff\">#1"))
        #expect(occurrences("pid ", in: row) == 1)
        #expect(row.contains("<td class=\"restarts num\">3</td>"))
        #expect(row.contains("<td class=\"last-exit\">signal 9 (SIGKILL)</td>"))
        #expect(occurrences("<svg class=\"spark\"", in: row) == 3)
        #expect(row.contains("<span class=\"value\">12.3/s</span>"))
        #expect(row.contains("<span class=\"value\">2.50 %</span>"))
        #expect(row.contains("<span class=\"value\">45.6 ms</span>"))
        // The group's section and heading.
        #expect(html.contains("<section class=\"group\" data-group=\"search\">\n<h2>Group <q>search</q></h2>"))
    }

    @Test func missingValuesAreShownAsSuch() {
        let s = server("b", state: "down", health: "offline", score: 0, port: nil, history: [])
        let html = StatusPage.render(model([s]))
        let row = slice(html, from: "<tr id=\"server-b\"", to: "</tr>") ?? ""
        #expect(row.contains("<td class=\"port num\">—</td>"))
        #expect(row.contains("<td class=\"replicas\">—</td>"))
        #expect(row.contains("<td class=\"last-exit\">—</td>"))
        #expect(occurrences("<span class=\"value\">—</span>", in: row) == 3)
        #expect(occurrences("data-samples=\"0\"", in: row) == 3)
        #expect(!row.contains("<polyline"))
        // A last interval without requests: no p95, said in words.
        let quiet = server("c", history: [PageSample(time: 1, requestRate: 0, errorRatio: 0, p95: nil)])
        #expect(StatusPage.render(model([quiet])).contains("<span class=\"value\">no requests</span>"))
    }

    @Test func sparklinePointsComeFromTheSamples() {
        // 60 points 2 px apart from x = 2 to x = 120; y from 26 (0) to 2 (the peak).
        #expect(StatusPage.sparkWidth == 122)
        let history = [0.0, 5, 10].enumerated().map {
            PageSample(time: Double($0.offset), requestRate: $0.element, errorRatio: $0.element / 20, p95: nil)
        }
        let html = StatusPage.render(model([server("a", history: history)]))
        let rate = slice(html, from: "<svg class=\"spark\" data-metric=\"rate\"", to: "</svg>") ?? ""
        #expect(rate.contains("data-samples=\"3\" data-max=\"10\""))
        #expect(rate.contains("<polyline points=\"116,26 118,14 120,2\"/>"))
        let errors = slice(html, from: "<svg class=\"spark\" data-metric=\"errors\"", to: "</svg>") ?? ""
        #expect(errors.contains("data-max=\"0.5\""))
        #expect(errors.contains("<polyline points=\"116,26 118,14 120,2\"/>"))
        let p95 = slice(html, from: "<svg class=\"spark\" data-metric=\"p95\"", to: "</svg>") ?? ""
        #expect(!p95.contains("<polyline"))  // no interval had a p95
    }

    @Test func aMissingP95BreaksTheLine() {
        let values: [Double?] = [0.1, nil, 0.2, 0.1, 0.2]
        let history = values.enumerated().map {
            PageSample(time: Double($0.offset), requestRate: 1, errorRatio: 0, p95: $0.element)
        }
        let html = StatusPage.render(model([server("a", history: history)]))
        let p95 = slice(html, from: "<svg class=\"spark\" data-metric=\"p95\"", to: "</svg>") ?? ""
        // x = 120 − (4 − i) × 2; y = 26 − v / 0.2 × 24.
        #expect(p95.contains("<circle cx=\"112\" cy=\"14\" r=\"1.5\"/>"))
        #expect(p95.contains("<polyline points=\"116,2 118,14 120,2\"/>"))
        // A constant series lies at the top, an all-zero one on the bottom line.
        let rate = slice(html, from: "<svg class=\"spark\" data-metric=\"rate\"", to: "</svg>") ?? ""
        #expect(rate.contains("<polyline points=\"112,2 114,2 116,2 118,2 120,2\"/>"))
        let errors = slice(html, from: "<svg class=\"spark\" data-metric=\"errors\"", to: "</svg>") ?? ""
        #expect(errors.contains("<polyline points=\"112,26 114,26 116,26 118,26 120,26\"/>"))
    }

    @Test func aFullHistoryFillsTheWidth() {
        let history = (0..<PageHistory.capacity).map {
            PageSample(time: Double($0), requestRate: Double($0), errorRatio: 0, p95: 0.1)
        }
        let segments = StatusPage.sparkSegments(history.map { $0.requestRate })
        #expect(segments.count == 1)
        #expect(segments[0].first?.x == 2)
        #expect(segments[0].last?.x == 120)
        #expect(segments[0].first?.y == 26)
        #expect(segments[0].last?.y == 2)
    }

    @Test func serversAreGroupedNamedGroupsFirst() {
        let html = StatusPage.render(
            model([
                server("z-solo"), server("b", group: "search"), server("a", group: "search"),
                server("c", group: "billing"),
            ]))
        let order = [
            "data-group=\"billing\">", "server-c\"", "data-group=\"search\">", "server-a\"", "server-b\"",
            "data-group=\"\">", "<h2>No group</h2>", "server-z-solo\"",
        ]
        var rest = html[...]
        for needle in order {
            guard let r = rest.firstRange(of: needle) else {
                Issue.record("\(needle) missing or out of order")
                return
            }
            rest = rest[r.upperBound...]
        }
    }

    @Test func headerCountsAndTime() {
        let html = StatusPage.render(
            model([
                server("a", health: "healthy"), server("b", health: "healthy"), server("c", health: "degraded"),
                server("d", state: "down", health: "offline"), server("e", health: "unhealthy"),
                server("f", state: "starting", health: "initializing"),
            ]))
        #expect(html.contains("<li id=\"count-servers\" data-count=\"6\"><b>6</b> servers</li>"))
        #expect(html.contains("<li id=\"count-healthy\" data-count=\"2\"><b>2</b> healthy</li>"))
        #expect(html.contains("<li id=\"count-degraded\" data-count=\"1\"><b>1</b> degraded</li>"))
        #expect(html.contains("<li id=\"count-down\" data-count=\"2\"><b>2</b> down</li>"))
        #expect(html.contains("<time datetime=\"2026-11-29T08:00:36Z\">2026-11-29 08:00:36 UTC</time>"))
        #expect(html.contains("<span class=\"version\">0.1.0</span>"))
        #expect(html.contains("the last 10 min, one point every 10 s"))
        #expect(StatusPage.render(model([])).contains("No server is configured."))
    }

    @Test func numbersAndTimesWithoutFoundation() {
        #expect(StatusPage.number(1.5, digits: 2) == "1.5")
        #expect(StatusPage.number(2, digits: 2) == "2")
        #expect(StatusPage.number(-0.25, digits: 2) == "-0.25")
        #expect(StatusPage.number(-0.001, digits: 2) == "0")
        #expect(StatusPage.number(0.005, digits: 3) == "0.005")
        #expect(StatusPage.number(.nan, digits: 2) == "—")
        #expect(StatusPage.fixed(0.5, digits: 2) == "0.50")
        #expect(StatusPage.fixed(3, digits: 1) == "3.0")
        #expect(StatusPage.fixed(1234.5, digits: 0) == "1235")
        #expect(StatusPage.rate(0) == "0.00/s")
        #expect(StatusPage.rate(150.4) == "150/s")
        #expect(StatusPage.percent(0.5) == "50.0 %")
        #expect(StatusPage.seconds(0.0008) == "0.80 ms")
        #expect(StatusPage.seconds(1.25) == "1.25 s")
        #expect(StatusPage.duration(12) == "12 s")
        #expect(StatusPage.duration(2.5) == "2.5 s")
        #expect(StatusPage.duration(3600 * 2 + 300) == "2 h 5 min")
        #expect(StatusPage.duration(86400 * 3 + 3600 * 4 + 59) == "3 d 4 h")
        #expect(StatusPage.duration(600) == "10 min")
        #expect(StatusPage.isoTime(0) == "1970-01-01T00:00:00Z")
        #expect(StatusPage.isoTime(951_782_400 + 86399) == "2000-02-29T23:59:59Z")
        #expect(StatusPage.isoTime(-1) == "1969-12-31T23:59:59Z")
    }
}
