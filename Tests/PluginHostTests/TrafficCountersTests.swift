import Contracts
import Dispatch
import MCPProtocol
import Synchronization
import Testing

@testable import PluginHost

/// The traffic counters (docs/plugin-host.md "Metrics"): the table alone (rows, bucket placement), then the
/// dispatcher driven without a socket, whose every answer must be counted exactly once with the right method,
/// tool, outcome and error type.
struct TrafficCounterTableTests {
    static let bounds = TrafficMetrics.durationBuckets

    func histogram(_ s: TrafficSnapshot, _ method: String, _ tool: String, _ error: String) -> OperationHistogram? {
        s.operations.first { $0.method == method && $0.tool == tool && $0.errorType == error }
    }

    @Test func eachMethodHasItsRowAndToolsCallOneRowPerDeclaredToolPlusOther() {
        let t = TrafficCounters(tools: ["a", "b", "a"])
        #expect(t.rows.count == TrafficMetrics.methods.count + 1 + 2)  // + other method, tools/call has 3 not 1
        #expect(t.rows.filter { $0.method == "tools/call" }.map(\.tool) == ["a", "b", "other"])
        #expect(t.rows.filter { $0.method != "tools/call" }.allSatisfy { $0.tool == "" })
        #expect(t.rows[t.row(method: "tools/call", tool: "b")] == ("tools/call", "b"))
        #expect(t.rows[t.row(method: "tools/call", tool: "zzz")] == ("tools/call", "other"))
        #expect(t.rows[t.row(method: "tools/call", tool: nil)] == ("tools/call", "other"))
        #expect(t.rows[t.row(method: "ping", tool: "a")] == ("ping", ""))
        #expect(t.rows[t.row(method: "notifications/initialized", tool: nil)] == ("notifications", ""))
        #expect(t.rows[t.row(method: "resources/subscribe", tool: nil)] == ("resources/subscribe", ""))
        #expect(t.rows[t.row(method: "made/up", tool: nil)] == ("other", ""))
        // The same label as the contract's own function, for every method it names and a few it does not.
        for method in TrafficMetrics.methods + ["x", "notifications/x", "tools/callx", ""] {
            #expect(t.rows[t.row(method: method, tool: "a")].method == TrafficMetrics.methodLabel(method))
        }
    }

    @Test func aDurationFallsInTheFirstBucketWhoseBoundItDoesNotExceed() throws {
        let t = TrafficCounters(tools: [])
        let row = t.row(method: "ping", tool: nil)
        // Each bound exactly, 1 ns over each bound, zero, and far past the last bound.
        var expected = [Int](repeating: 0, count: Self.bounds.count + 1)
        var sum: UInt64 = 0
        func observe(_ ns: UInt64, bucket: Int) {
            t.observe(row: row, error: nil, nanoseconds: ns)
            expected[bucket] += 1
            sum += ns
        }
        observe(0, bucket: 0)
        for (i, bound) in Self.bounds.enumerated() {
            let ns = UInt64((bound * 1e9).rounded())
            observe(ns, bucket: i)
            observe(ns + 1, bucket: i + 1)
        }
        observe(3_600_000_000_000, bucket: Self.bounds.count)
        let h = try #require(histogram(t.snapshot(), "ping", "", ""))
        #expect(h.buckets == expected)
        #expect(h.count == 2 * Self.bounds.count + 2)
        #expect(h.sum == Double(sum) / 1e9)
        // The 0.2 s target has its own bound: 0.2 s is in it, 0.2 s + 1 ns is in the next.
        let p95 = TrafficCounters(tools: [])
        p95.observe(row: row, error: nil, nanoseconds: 200_000_000)
        p95.observe(row: row, error: nil, nanoseconds: 200_000_001)
        let i = try #require(Self.bounds.firstIndex(of: 0.2))
        let b = try #require(histogram(p95.snapshot(), "ping", "", "")).buckets
        #expect(b[i] == 1 && b[i + 1] == 1 && b.reduce(0, +) == 2)
    }

    @Test func errorTypesHaveCellsOfTheirOwnAndOutcomesFollowThem() throws {
        let t = TrafficCounters(tools: ["a"])
        let row = t.row(method: "tools/call", tool: "a")
        let errors: [TrafficMetrics.ErrorType?] = [nil, nil, .toolError, .deadline, .cancelled, .protocolError]
        for e in errors { t.observe(row: row, error: e, nanoseconds: 1000) }
        let s = t.snapshot()
        #expect(
            s.requests == [
                RequestCount(method: "tools/call", outcome: "ok", count: 2),
                RequestCount(method: "tools/call", outcome: "error", count: 4),
            ])
        #expect(histogram(s, "tools/call", "a", "")?.count == 2)
        for e in ["tool_error", "deadline", "cancelled", "protocol_error"] {
            #expect(histogram(s, "tools/call", "a", e)?.count == 1, "\(e)")
        }
        #expect(s.errors == ["tool_error": 1, "deadline": 1, "cancelled": 1, "protocol_error": 1])
        #expect(s.cancellations == 1)
        #expect(s.deadlineExpiries == 1)
        #expect(s.operations.count == 5)
    }

    @Test func aNewTableReportsZeroErrorsAndNoSeries() {
        let s = TrafficCounters(tools: ["a"]).snapshot()
        #expect(s.requests.isEmpty && s.operations.isEmpty)
        #expect(s.errors == ["tool_error": 0, "deadline": 0, "cancelled": 0, "protocol_error": 0])
        #expect(s.callsInFlight == 0 && s.bytesIn == 0 && s.bytesOut == 0)
    }

    @Test func countsFromManyThreadsAddUpExactly() throws {
        let t = TrafficCounters(tools: ["a", "b"])
        let threads = 8
        let each = 5000
        DispatchQueue.concurrentPerform(iterations: threads) { i in
            for n in 0..<each {
                var meter = t.begin()
                meter.row = t.row(method: "tools/call", tool: i % 2 == 0 ? "a" : "b")
                t.end(meter, n % 10 == 0 ? .toolError : nil)
                t.addBytesIn(3)
            }
        }
        let s = t.snapshot()
        let total = threads * each
        #expect(s.requests.reduce(0) { $0 + $1.count } == total)
        #expect(s.requests.first { $0.outcome == "error" }?.count == total / 10)
        #expect(histogram(s, "tools/call", "a", "")?.count == total / 2 - total / 20)
        #expect(histogram(s, "tools/call", "b", "tool_error")?.count == total / 20)
        for h in s.operations { #expect(h.buckets.reduce(0, +) == h.count) }
        #expect(s.bytesIn == 3 * total)
        #expect(s.callsInFlight == 0)
    }
}

/// The dispatcher's counting, on the same fixture as MCPDispatcherTests (a FakePlugin with 250 tools).
extension MCPDispatcherTests {
    func snapshot() throws -> TrafficSnapshot { try #require(dispatcher.trafficSnapshot()) }

    /// "method ok|error" → count.
    func requestCounts(_ s: TrafficSnapshot) -> [String: Int] {
        Dictionary(uniqueKeysWithValues: s.requests.map { ("\($0.method) \($0.outcome)", $0.count) })
    }

    /// "method|tool|error" → count.
    func operationCounts(_ s: TrafficSnapshot) -> [String: Int] {
        Dictionary(uniqueKeysWithValues: s.operations.map { ("\($0.method)|\($0.tool)|\($0.errorType)", $0.count) })
    }

    @Test func everyAnswerIsCountedOnceByMethodOutcomeToolAndErrorType() throws {
        for i in 0..<5 {
            let r = modernRequest(
                id: Int64(i), "tools/call", ["name": "echo", "arguments": ["text": "hi"]], name: "echo")
            #expect(try r.json()["result"]?["isError"] == nil)
        }
        let isError = modernRequest(
            "tools/call", ["name": "echo", "arguments": ["outcome": "toolError"]], name: "echo")
        #expect(try isError.json()["result"]?["isError"] == true)
        let pluginError = modernRequest(
            "tools/call", ["name": "echo", "arguments": ["outcome": "notFound"]], name: "echo")
        #expect(try pluginError.json()["error"] != nil)
        let unknownTool = modernRequest("tools/call", ["name": "nope"], name: "nope")
        #expect(try unknownTool.json()["error"]?["code"] == .int(JSONRPC.invalidParams))
        _ = modernRequest("tools/list")
        _ = modernRequest("tools/list")
        _ = modernRequest("server/discover")
        let unknownMethod = modernRequest("no/such/method")
        #expect(unknownMethod.reply.status == 404)
        let mismatched = modernRequest("tools/list", headerMethod: "prompts/list")  // Mcp-Method disagrees
        #expect(mismatched.reply.status == 400)
        let session = try openSession()
        for i in 1...3 { #expect(legacyRequest(session: session, id: Int64(i), "ping").reply.status == 200) }
        #expect(legacyRequest(session: session, id: 4, "tools/call", ["name": "tool-001"]).reply.status == 200)
        let note = post(
            ["jsonrpc": "2.0", "method": "notifications/initialized"],
            headers: [("Mcp-Session-Id", session), ("MCP-Protocol-Version", "2025-06-18")])
        #expect(note.reply.status == 202)
        #expect(legacyRequest(session: "no-such-session", id: 5, "ping").reply.status == 404)
        #expect(post([["jsonrpc": "2.0", "id": 1, "method": "ping"]]).reply.status == 400)  // a batch
        let bad = RecordingSink()
        dispatcher.handle(
            MCPRequest(verb: .post, headers: ["Content-Type": "application/json"], body: Array("{".utf8)), bad)
        #expect(bad.reply.status == 400)
        let text = RecordingSink()
        dispatcher.handle(MCPRequest(verb: .post, headers: ["Content-Type": "text/plain"], body: []), text)
        #expect(text.reply.status == 415)
        // Not requests: a JSON-RPC response from the client, a GET without a session, a PUT.
        #expect(post(["jsonrpc": "2.0", "id": 9, "result": [:]]).reply.status == 202)
        let get = RecordingSink()
        dispatcher.handle(MCPRequest(verb: .get, headers: [:], body: []), get)
        #expect(get.reply.status == 405)
        let put = RecordingSink()
        dispatcher.handle(MCPRequest(verb: .other("PUT"), headers: [:], body: []), put)

        let s = try snapshot()
        #expect(
            requestCounts(s) == [
                "tools/call ok": 6, "tools/call error": 3, "tools/list ok": 2, "tools/list error": 1,
                "server/discover ok": 1, "other error": 4, "initialize ok": 1, "ping ok": 3, "ping error": 1,
                "notifications ok": 1,
            ])
        #expect(
            operationCounts(s) == [
                "tools/call|echo|": 5, "tools/call|echo|tool_error": 2, "tools/call|other|protocol_error": 1,
                "tools/call|tool-001|": 1, "tools/list||": 2, "tools/list||protocol_error": 1,
                "server/discover||": 1, "other||protocol_error": 4, "initialize||": 1, "ping||": 3,
                "ping||protocol_error": 1, "notifications||": 1,
            ])
        #expect(s.errors == ["protocol_error": 7, "tool_error": 2, "deadline": 0, "cancelled": 0])
        #expect(s.cancellations == 0 && s.deadlineExpiries == 0)
        #expect(s.callsInFlight == 0)
        #expect(s.sessionsOpen == 1)
        for h in s.operations {
            #expect(h.buckets.count == TrafficMetrics.durationBuckets.count + 1)
            #expect(h.buckets.reduce(0, +) == h.count)
            #expect(h.sum >= 0 && h.sum < 30)
        }
    }

    @Test func streamedAnswersAreCountedWhenTheirFinalMessageIsSent() throws {
        let sse = modernRequest(
            "tools/call", ["name": "progress", "arguments": ["steps": 2]], name: "progress", progressToken: "p")
        #expect(sse.reply.streamed)
        #expect(try sse.eventMessages().last?["result"] != nil)
        let sseOnly = modernRequest("tools/list", accept: "text/event-stream")
        #expect(sseOnly.reply.streamed)
        #expect(operationCounts(try snapshot()) == ["tools/call|progress|": 1, "tools/list||": 1])
    }

    @Test func aModernClientLeavingCountsOneCancellationAndNoLongerInFlight() throws {
        let call = modernRequest("tools/call", ["name": "slow"], name: "slow", wait: false)
        #expect(plugin.waitForSlowCall())
        #expect(try snapshot().callsInFlight == 1)
        call.goAway()
        #expect(plugin.waitForCancelledCall())
        let s = try snapshot()
        #expect(operationCounts(s) == ["tools/call|slow|cancelled": 1])
        #expect(requestCounts(s) == ["tools/call error": 1])
        #expect(s.cancellations == 1 && s.errors["cancelled"] == 1)
        #expect(s.callsInFlight == 0)
    }

    @Test func aLegacyCancelAndASessionsDeleteCountAsCancellations() throws {
        let session = try openSession()
        let first = legacyRequest(session: session, id: 42, "tools/call", ["name": "slow"], wait: false)
        #expect(plugin.waitForSlowCall())
        _ = post(
            ["jsonrpc": "2.0", "method": "notifications/cancelled", "params": ["requestId": 42]],
            headers: [("Mcp-Session-Id", session), ("MCP-Protocol-Version", "2025-06-18")])
        #expect(first.waitUntilFinished())
        let second = legacyRequest(session: session, id: 43, "tools/call", ["name": "slow"], wait: false)
        #expect(plugin.waitForSlowCall())
        #expect(try snapshot().sessionsOpen == 1)
        let delete = RecordingSink()
        dispatcher.handle(MCPRequest(verb: .delete, headers: ["Mcp-Session-Id": session], body: []), delete)
        #expect(delete.reply.status == 204)
        #expect(plugin.waitForCancelledCall() && plugin.waitForCancelledCall())
        _ = second
        let s = try snapshot()
        #expect(
            operationCounts(s) == ["initialize||": 1, "notifications||": 1, "tools/call|slow|cancelled": 2])
        #expect(s.cancellations == 2)
        #expect(s.callsInFlight == 0)
        #expect(s.sessionsOpen == 0)
    }

    @Test func aCallPastItsDeadlineIsCountedAsADeadlineExpiryInABucketPastTheDeadline() throws {
        var config = HostConfig()
        config.callTimeout = .milliseconds(50)
        config.hangGrace = .milliseconds(1)
        let dispatcher = MCPDispatcher(plugin: plugin, config: config)
        let sink = RecordingSink()
        let body: JSONValue = [
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": [
                "name": "slow", "arguments": ["ignoreCancel": true],
                "_meta": [
                    ModernRequestRules.metaVersionKey: .string(Self.modern),
                    ModernRequestRules.metaCapabilitiesKey: [:],
                ],
            ],
        ]
        dispatcher.handle(
            MCPRequest(
                verb: .post,
                headers: [
                    "Content-Type": "application/json", "Accept": "application/json",
                    "MCP-Protocol-Version": Self.modern, "Mcp-Method": "tools/call", "Mcp-Name": "slow",
                ], body: JSONWriter.serialize(body)), sink)
        #expect(sink.waitUntilFinished())
        #expect(try sink.json()["result"]?["isError"] == true)
        #expect(plugin.cancelled == ["slow"])
        let s = try #require(dispatcher.trafficSnapshot())
        #expect(s.deadlineExpiries == 1 && s.errors["deadline"] == 1 && s.cancellations == 0)
        let h = try #require(s.operations.first)
        #expect(s.operations.count == 1)
        #expect((h.method, h.tool, h.errorType, h.count) == ("tools/call", "slow", "deadline", 1))
        // It took at least the deadline: no bucket below 0.05 s holds it.
        let below = try #require(TrafficMetrics.durationBuckets.firstIndex(of: 0.05))
        #expect(h.buckets[..<below].allSatisfy { $0 == 0 })
        #expect(h.sum >= 0.05)
        #expect(s.callsInFlight == 0)
    }

    @Test func aToolDeclaredAfterLoadIsCountedAsOther() throws {
        try plugin.addTool("late")
        let r = modernRequest("tools/call", ["name": "late"], name: "late")
        #expect(try r.json()["result"] != nil)
        #expect(operationCounts(try snapshot()) == ["tools/call|other|": 1])
    }

    @Test func refusedDuringTheDrainIsAProtocolError() throws {
        dispatcher.beginDrain()
        dispatcher.refuseNewRequests()
        #expect(modernRequest("tools/list").reply.status == 503)
        #expect(operationCounts(try snapshot()) == ["other||protocol_error": 1])
    }

    @Test func concurrentCallsFromManyThreadsGiveExactTotals() throws {
        let threads = 6
        let each = 150
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for i in 0..<each {
                let tool = t % 2 == 0 ? "echo" : "progress"
                _ = modernRequest(
                    id: Int64(t * 1000 + i), "tools/call", ["name": .string(tool), "arguments": ["steps": 1]],
                    name: tool)
            }
        }
        let s = try snapshot()
        #expect(
            operationCounts(s) == ["tools/call|echo|": threads / 2 * each, "tools/call|progress|": threads / 2 * each])
        #expect(s.callsInFlight == 0)
    }

    @Test func withMetricsOffNothingIsCountedAndRequestsAreServed() throws {
        var config = HostConfig()
        config.metrics = false
        let off = MCPDispatcher(plugin: plugin, config: config)
        #expect(off.traffic == nil)
        let sink = RecordingSink()
        off.handle(
            MCPRequest(verb: .post, headers: ["Content-Type": "application/json"], body: Array("{".utf8)), sink)
        #expect(sink.reply.status == 400)
        #expect(off.trafficSnapshot() == nil)
    }
}
