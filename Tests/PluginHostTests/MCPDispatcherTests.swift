import Glibc
import MCPProtocol
import Synchronization
import Testing

@testable import PluginHost

/// The dispatcher driven without a socket: requests as plain values, replies recorded by `RecordingSink`,
/// the plugin a `FakePlugin`.
struct MCPDispatcherTests {
    static let modern = "2026-07-28"

    let plugin: FakePlugin
    let dispatcher: MCPDispatcher

    init() throws {
        plugin = try FakePlugin(extraTools: 247)  // 250 tools: pages of 100, 100, 50
        var config = HostConfig()
        config.callTimeout = .seconds(30)
        dispatcher = MCPDispatcher(plugin: plugin, config: config)
    }

    /// Another dispatcher over the same plugin, with other settings.
    init(plugin: FakePlugin, config: HostConfig, sessionEnds: SessionEndRelay? = nil) {
        self.plugin = plugin
        var config = config
        config.callTimeout = .seconds(30)
        dispatcher = MCPDispatcher(plugin: plugin, config: config, sessionEnds: sessionEnds)
    }

    // MARK: Helpers

    /// POSTs one JSON-RPC message and returns the sink once the reply is complete.
    @discardableResult
    func post(
        _ message: JSONValue, headers extra: [(String, String)] = [],
        accept: String = "application/json, text/event-stream",
        wait: Bool = true, into sink: RecordingSink = RecordingSink()
    ) -> RecordingSink {
        let headers: [(name: String, value: String)] =
            [("Content-Type", "application/json"), ("Accept", accept)] + extra.map { (name: $0.0, value: $0.1) }
        dispatcher.handle(
            MCPRequest(verb: .post, headers: RequestHeaders(headers), body: JSONWriter.serialize(message)), sink)
        if wait { #expect(sink.waitUntilFinished(), "no complete reply to \(JSONWriter.string(message))") }
        return sink
    }

    /// A 2026-07-28 request with its `_meta` and the headers that mirror the body.
    func modernRequest(
        id: Int64 = 1, _ method: String, _ params: [String: JSONValue] = [:], name: String? = nil,
        headerMethod: String? = nil, progressToken: JSONValue? = nil,
        accept: String = "application/json, text/event-stream",
        wait: Bool = true
    ) -> RecordingSink {
        var meta: [String: JSONValue] = [
            ModernRequestRules.metaVersionKey: .string(Self.modern), ModernRequestRules.metaCapabilitiesKey: [:],
        ]
        if let progressToken { meta["progressToken"] = progressToken }
        var params = params
        params["_meta"] = .object(meta)
        var headers = [("MCP-Protocol-Version", Self.modern), ("Mcp-Method", headerMethod ?? method)]
        if let name { headers.append(("Mcp-Name", name)) }
        return post(
            ["jsonrpc": "2.0", "id": .int(id), "method": .string(method), "params": .object(params)], headers: headers,
            accept: accept, wait: wait)
    }

    /// Opens a legacy session with `initialize`; returns its id.
    func openSession(version: String = "2025-06-18") throws -> String {
        let sink = post([
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": [
                "protocolVersion": .string(version), "capabilities": [:], "clientInfo": ["name": "t", "version": "1"],
            ],
        ])
        return try #require(sink.header("Mcp-Session-Id"))
    }

    func legacyRequest(
        session: String, id: Int64, _ method: String, _ params: [String: JSONValue] = [:], wait: Bool = true
    ) -> RecordingSink {
        post(
            ["jsonrpc": "2.0", "id": .int(id), "method": .string(method), "params": .object(params)],
            headers: [("Mcp-Session-Id", session), ("MCP-Protocol-Version", "2025-06-18")], wait: wait)
    }

    // MARK: Version negotiation

    @Test func initializeAnswersTheRequestedLegacyVersionOrTheNewest() throws {
        for (requested, expected) in [
            ("2025-03-26", "2025-03-26"), ("2025-06-18", "2025-06-18"), ("1999-01-01", "2025-11-25"),
        ] {
            let sink = post([
                "jsonrpc": "2.0", "id": 7, "method": "initialize",
                "params": ["protocolVersion": .string(requested), "capabilities": [:]],
            ])
            #expect(sink.reply.status == 200)
            let reply = try sink.json()
            #expect(reply["id"] == 7)
            #expect(reply["result"]?["protocolVersion"] == .string(expected), "asked for \(requested)")
            #expect(reply["result"]?["serverInfo"]?["name"] == "fake")
            #expect(reply["result"]?["capabilities"]?["tools"] == ["listChanged": true])
            let session = try #require(sink.header("Mcp-Session-Id"))
            // Sealed, so another replica can adopt it (docs/protocol.md); visible ASCII as the transport requires.
            #expect(session.hasPrefix("s1.") && session.utf8.allSatisfy { (0x21...0x7E).contains($0) })
        }
        #expect(dispatcher.sessions.count == 3)
    }

    @Test func initializeWithoutAVersionIsInvalidParams() throws {
        let sink = post(["jsonrpc": "2.0", "id": 1, "method": "initialize", "params": [:]])
        #expect(sink.reply.status == 400)
        #expect(try sink.json()["error"]?["code"] == .int(JSONRPC.invalidParams))
        #expect(sink.header("Mcp-Session-Id") == nil)
    }

    @Test func discoverListsEveryVersionAndModernCapabilities() throws {
        let sink = modernRequest("server/discover")
        #expect(sink.reply.status == 200)
        let result = try #require(try sink.json()["result"])
        #expect(result["supportedVersions"] == .array(ProtocolVersion.all.map { .string($0) }))
        #expect(result["capabilities"]?["tools"] == ["listChanged": true])
        #expect(result["resultType"] == "complete")
        #expect(result["_meta"]?[ModernRequestRules.metaServerInfoKey]?["version"] == "1.2.3")
    }

    @Test func anUnsupportedModernVersionIsRejectedWithTheSupportedList() throws {
        let sink = post(
            [
                "jsonrpc": "2.0", "id": 3, "method": "tools/list",
                "params": [
                    "_meta": [
                        ModernRequestRules.metaVersionKey: "2099-01-01", ModernRequestRules.metaCapabilitiesKey: [:],
                    ]
                ],
            ], headers: [("MCP-Protocol-Version", "2099-01-01"), ("Mcp-Method", "tools/list")])
        #expect(sink.reply.status == 400)
        let error = try #require(try sink.json()["error"])
        #expect(error["code"] == .int(JSONRPC.unsupportedProtocolVersion))
        #expect(error["data"]?["supported"] == .array(ProtocolVersion.all.map { .string($0) }))
        #expect(error["data"]?["requested"] == "2099-01-01")
    }

    @Test func aRequestWithNeitherSessionNorMetaIsABadRequest() throws {
        let sink = post(["jsonrpc": "2.0", "id": 4, "method": "tools/list"])
        #expect(sink.reply.status == 400)
        #expect(try sink.json()["error"]?["code"] == .int(JSONRPC.invalidRequest))
    }

    @Test func aModernHeaderInALegacySessionIsRejected() throws {
        let session = try openSession()
        let sink = post(
            ["jsonrpc": "2.0", "id": 5, "method": "ping"],
            headers: [("Mcp-Session-Id", session), ("MCP-Protocol-Version", Self.modern)])
        #expect(sink.reply.status == 400)
        #expect(try sink.json()["error"]?["code"] == .int(JSONRPC.invalidRequest))
    }

    // MARK: Header/body mismatch

    @Test func mcpMethodHeaderMustMatchTheBody() throws {
        let sink = modernRequest("tools/list", headerMethod: "prompts/list")
        #expect(sink.reply.status == 400)
        let error = try #require(try sink.json()["error"])
        #expect(error["code"] == .int(JSONRPC.headerMismatch))
        #expect(
            error["message"]?.stringValue?.contains("'prompts/list' does not match body value 'tools/list'") == true)
    }

    @Test func mcpNameHeaderMustMatchTheToolName() throws {
        let sink = modernRequest("tools/call", ["name": "echo", "arguments": ["text": "hi"]], name: "slow")
        #expect(sink.reply.status == 400)
        #expect(try sink.json()["error"]?["code"] == .int(JSONRPC.headerMismatch))
        #expect(plugin.cancelled.isEmpty)
        #expect(callsSettle())
    }

    @Test func protocolVersionHeaderMustMatchTheBody() throws {
        let sink = post(
            [
                "jsonrpc": "2.0", "id": 6, "method": "tools/list",
                "params": [
                    "_meta": [
                        ModernRequestRules.metaVersionKey: .string(Self.modern),
                        ModernRequestRules.metaCapabilitiesKey: [:],
                    ]
                ],
            ], headers: [("MCP-Protocol-Version", "2025-06-18"), ("Mcp-Method", "tools/list")])
        #expect(sink.reply.status == 400)
        #expect(try sink.json()["error"]?["code"] == .int(JSONRPC.headerMismatch))
    }

    // MARK: Unknown method

    @Test func anUnknownMethodIs404InTheModernEraAnd200InASession() throws {
        let modern = modernRequest("tools/frobnicate")
        #expect(modern.reply.status == 404)
        #expect(try modern.json()["error"]?["code"] == .int(JSONRPC.methodNotFound))
        #expect(try modern.json()["id"] == 1)

        let session = try openSession()
        let legacy = legacyRequest(session: session, id: 9, "tools/frobnicate")
        #expect(legacy.reply.status == 200)
        #expect(try legacy.json()["error"]?["code"] == .int(JSONRPC.methodNotFound))
        #expect(try legacy.json()["id"] == 9)
    }

    @Test func anUnknownSessionIs404() throws {
        let sink = legacyRequest(session: "0123456789abcdef0123456789abcdef", id: 1, "tools/list")
        #expect(sink.reply.status == 404)
        #expect(try sink.json()["error"]?["code"] == .int(JSONRPC.invalidRequest))
    }

    // MARK: Pagination

    @Test func toolsListPagesThroughEveryTool() throws {
        var names: [String] = []
        var cursor: JSONValue? = nil
        var pages = 0
        repeat {
            var params: [String: JSONValue] = [:]
            if let cursor { params["cursor"] = cursor }
            let result = try #require(try modernRequest("tools/list", params).json()["result"])
            guard case .array(let tools) = result["tools"] else {
                Issue.record("no tools array in \(result)")
                return
            }
            names += tools.compactMap { $0["name"]?.stringValue }
            #expect(result["ttlMs"] == 0)
            cursor = result["nextCursor"]
            pages += 1
        } while cursor != nil && pages < 10
        #expect(pages == 3)
        #expect(names.count == 250)
        #expect(Set(names).count == 250)
        #expect(names.prefix(3) == ["echo", "progress", "slow"])
        #expect(names.last == "tool-246")
    }

    @Test func aForgedCursorIsInvalidParamsOn200() throws {
        let session = try openSession()
        for sink in [
            modernRequest("tools/list", ["cursor": "bm90LWEtY3Vyc29y"]),
            legacyRequest(session: session, id: 2, "tools/list", ["cursor": "bm90LWEtY3Vyc29y"]),
        ] {
            #expect(sink.reply.status == 200)
            #expect(try sink.json()["error"]?["code"] == .int(JSONRPC.invalidParams))
        }
    }

    // MARK: Calls, streamed and cancelled

    @Test func anInlineCallAnswersWithJSON() throws {
        let sink = modernRequest("tools/call", ["name": "echo", "arguments": ["text": "hello"]], name: "echo")
        #expect(sink.reply.status == 200)
        #expect(!sink.reply.streamed)
        let result = try #require(try sink.json()["result"])
        #expect(result["content"] == [["type": "text", "text": "hello"]])
        #expect(result["resultType"] == "complete")
        #expect(callsSettle())
    }

    @Test func aCallWithAProgressTokenStreamsProgressThenTheResult() throws {
        let sink = modernRequest(
            id: 11, "tools/call", ["name": "progress", "arguments": ["steps": 3]], name: "progress",
            progressToken: "tok")
        #expect(sink.reply.streamed)
        let messages = try sink.eventMessages()
        try #require(messages.count == 4)
        for (i, message) in messages.prefix(3).enumerated() {
            #expect(message["method"] == "notifications/progress")
            #expect(message["params"]?["progressToken"] == "tok")
            #expect(message["params"]?["progress"]?.numberValue == Double(i + 1))
            #expect(message["params"]?["total"]?.numberValue == 3)
        }
        #expect(messages[3]["id"] == 11)
        #expect(messages[3]["result"]?["content"] == [["type": "text", "text": "finished"]])
        #expect(plugin.waitForSubmittedCall())
        #expect(callsSettle())
    }

    @Test func withoutSSEInAcceptProgressIsDroppedAndTheResultIsJSON() throws {
        let sink = modernRequest(
            "tools/call", ["name": "progress"], name: "progress", progressToken: 1, accept: "application/json")
        #expect(!sink.reply.streamed)
        #expect(try sink.json()["result"]?["content"] == [["type": "text", "text": "finished"]])
    }

    @Test func aSessionCallStreamsItsLogsAtTheSessionsLevel() throws {
        let session = try openSession()
        #expect(legacyRequest(session: session, id: 1, "logging/setLevel", ["level": "info"]).reply.status == 200)
        let sink = legacyRequest(session: session, id: 2, "tools/call", ["name": "progress"])
        let messages = try sink.eventMessages()
        #expect(messages.map { $0["method"] } == [.string("notifications/message"), nil])
        #expect(messages.first?["params"]?["level"] == "info")
        #expect(messages.last?["id"] == 2)
    }

    @Test func notificationsCancelledCancelsTheSessionsCall() throws {
        let session = try openSession()
        let call = legacyRequest(session: session, id: 42, "tools/call", ["name": "slow"], wait: false)
        #expect(plugin.waitForSlowCall())
        #expect(!call.isFinished)
        let note = post(
            ["jsonrpc": "2.0", "method": "notifications/cancelled", "params": ["requestId": 42]],
            headers: [("Mcp-Session-Id", session), ("MCP-Protocol-Version", "2025-06-18")])
        #expect(note.reply.status == 202)
        #expect(call.waitUntilFinished())
        #expect(plugin.waitForCancelledCall())
        #expect(plugin.cancelled == ["slow"])
        // No response for a cancelled request (2025-11-25 cancellation.mdx): its SSE answer ends empty.
        #expect(call.reply.streamed && call.reply.events.isEmpty && call.reply.status == 200)
        #expect(callsSettle())
    }

    @Test func aCancelledRequestOfAJSONOnlyClientIsStillAnswered() throws {
        let session = try openSession()
        let call = post(
            ["jsonrpc": "2.0", "id": 43, "method": "tools/call", "params": ["name": "slow"]],
            headers: [("Mcp-Session-Id", session), ("MCP-Protocol-Version", "2025-06-18")], accept: "application/json",
            wait: false)
        #expect(plugin.waitForSlowCall())
        let note = post(
            ["jsonrpc": "2.0", "method": "notifications/cancelled", "params": ["requestId": 43]],
            headers: [("Mcp-Session-Id", session), ("MCP-Protocol-Version", "2025-06-18")])
        #expect(note.reply.status == 202)
        #expect(call.waitUntilFinished())
        #expect(try call.json()["error"]?["code"] == .int(JSONRPC.internalError))
        #expect(callsSettle())
    }

    @Test func aModernClientLeavingCancelsItsCall() throws {
        let call = modernRequest("tools/call", ["name": "slow"], name: "slow", wait: false)
        #expect(plugin.waitForSlowCall())
        call.goAway()
        #expect(plugin.cancelled == ["slow"])
        #expect(callsSettle())
        #expect(plugin.waitForCancelledCall())
        #expect(call.reply.status == nil, "answered a client that had gone")
    }

    @Test func aLegacyClientLeavingDoesNotCancel() throws {
        let session = try openSession()
        let call = legacyRequest(session: session, id: 1, "tools/call", ["name": "slow"], wait: false)
        #expect(plugin.waitForSlowCall())
        call.goAway()
        #expect(plugin.cancelled.isEmpty)
        #expect(dispatcher.callsInFlight == 1)
        // DELETE ends the session and cancels what it still runs.
        let delete = RecordingSink()
        dispatcher.handle(
            MCPRequest(verb: .delete, headers: ["Mcp-Session-Id": session], body: []), delete)
        #expect(delete.reply.status == 204)
        #expect(plugin.cancelled == ["slow"])
        #expect(plugin.waitForCancelledCall())
        #expect(callsSettle())
    }

    /// Two replicas of a server (one key): a DELETE on one is reported for the other (the supervisor carries it),
    /// which ends its adopted copy, cancels the call it ran, and answers 404 for the id from then on.
    @Test func aDeleteIsReportedAndTheRelayedEndCancelsTheOtherReplicasCall() throws {
        final class Reported: Sendable { let ids = Mutex<[String]>([]) }
        let reported = Reported()
        let relay = SessionEndRelay()
        relay.set { id in reported.ids.withLock { $0.append(id) } }
        var config = HostConfig()
        config.requestStateKey = [UInt8](repeating: 3, count: 32)
        let a = MCPDispatcherTests(plugin: plugin, config: config, sessionEnds: relay)
        let b = MCPDispatcherTests(plugin: plugin, config: config)
        let session = try a.openSession()
        _ = b.legacyRequest(session: session, id: 1, "tools/call", ["name": "slow"], wait: false)
        #expect(plugin.waitForSlowCall())  // b adopted the session and runs its call
        let delete = RecordingSink()
        a.dispatcher.handle(MCPRequest(verb: .delete, headers: ["Mcp-Session-Id": session], body: []), delete)
        #expect(delete.reply.status == 204)
        #expect(reported.ids.withLock { $0 } == [session])
        #expect(plugin.cancelled.isEmpty)  // a ran nothing; b has not heard yet
        b.dispatcher.endSessionEndedElsewhere(session)
        #expect(plugin.cancelled == ["slow"])
        #expect(plugin.waitForCancelledCall())
        #expect(b.callsSettle())
        #expect(b.legacyRequest(session: session, id: 2, "tools/list").reply.status == 404)
        // A random (unsealed) id is not reported: it never lived anywhere else.
        let unsealed = RecordingSink()
        a.dispatcher.handle(MCPRequest(verb: .delete, headers: ["Mcp-Session-Id": "0123abcd"], body: []), unsealed)
        #expect(unsealed.reply.status == 404 && reported.ids.withLock { $0.count } == 1)
    }

    @Test func aCallPastItsDeadlineIsCancelledAndAnsweredAsAToolError() throws {
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
        let result = try #require(try sink.json()["result"])
        #expect(result["isError"] == true)
        #expect(result["content"]?.description.contains("deadline of 0.05 s") == true)
        #expect(plugin.cancelled == ["slow"])
    }

    // MARK: Transport-independent rules

    @Test func drainingEndsSessionStreamsServesDuringTheGraceThenAnswers503() throws {
        let session = try openSession()
        let stream = RecordingSink()
        dispatcher.handle(
            MCPRequest(verb: .get, headers: ["Mcp-Session-Id": session, "Accept": "text/event-stream"], body: []),
            stream)
        #expect(stream.reply.streamed)
        #expect(stream.reply.comments == 1)
        dispatcher.beginDrain()
        #expect(stream.reply.finished)
        // The grace: requests on accepted connections are still served (the transport closes each connection
        // after its response); a new GET stream is refused, since it would only be ended.
        #expect(dispatcher.isDraining)
        let inGrace = modernRequest("tools/list")
        #expect(inGrace.reply.status == 200)
        let newStream = RecordingSink()
        dispatcher.handle(
            MCPRequest(verb: .get, headers: ["Mcp-Session-Id": session, "Accept": "text/event-stream"], body: []),
            newStream)
        #expect(newStream.reply.status == 503)
        dispatcher.refuseNewRequests()
        let late = modernRequest("tools/list")
        #expect(late.reply.status == 503)
        #expect(late.header("Retry-After") == "1")
    }

    // MARK: Resumable legacy streams (Last-Event-ID)

    func get(session: String, lastEventID: String? = nil) -> RecordingSink {
        var headers: [(name: String, value: String)] = [("Mcp-Session-Id", session), ("Accept", "text/event-stream")]
        if let lastEventID { headers.append(("Last-Event-ID", lastEventID)) }
        let sink = RecordingSink()
        dispatcher.handle(MCPRequest(verb: .get, headers: RequestHeaders(headers), body: []), sink)
        return sink
    }

    /// A 2025-11-25 session's progress call whose connection drops after two events.
    func droppedProgressCall(session: String, steps: Int) throws -> RecordingSink {
        let first = post(
            [
                "jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": [
                    "name": "progress", "arguments": ["steps": .int(Int64(steps))], "_meta": ["progressToken": "p"],
                ],
            ], headers: [("Mcp-Session-Id", session), ("MCP-Protocol-Version", "2025-11-25")], wait: false,
            into: RecordingSink(goAwayAfterEvents: 2))
        #expect(plugin.waitForSubmittedCall())
        #expect(callsSettle())
        return first
    }

    @Test func aDroppedStreamResumesWithLastEventIDReplayingEachEventOnce() throws {
        let session = try openSession(version: "2025-11-25")
        let first = try droppedProgressCall(session: session, steps: 5)
        let stream = try #require(first.reply.primingIDs.first ?? nil)  // "<stream>-0", before any message
        #expect(stream.hasSuffix("-0"))
        let number = stream.dropLast(2)
        #expect(first.reply.eventIDs == ["\(number)-1", "\(number)-2"])
        #expect(first.reply.finished == false, "the dropped connection saw the end")

        let resumed = get(session: session, lastEventID: "\(number)-2")
        #expect(resumed.reply.status == 200)
        #expect(resumed.reply.finished, "the stream had ended: the replay ends it too")
        #expect(resumed.reply.eventIDs == (3...7).map { "\(number)-\($0)" })  // progress 3-5, the log, the result
        let all = try first.eventMessages() + resumed.eventMessages()
        #expect(
            all.map { $0["method"]?.stringValue ?? "result" } == Array(repeating: "notifications/progress", count: 5)
                + ["notifications/message", "result"])
        #expect(all.prefix(5).map { $0["params"]?["progress"]?.numberValue } == [1, 2, 3, 4, 5])
        #expect(all.last?["id"] == 7)
        #expect(all.last?["result"]?["content"] == [["type": "text", "text": "finished"]])

        // The buffer keeps the stream: a second resume from an earlier id replays from there.
        let again = get(session: session, lastEventID: "\(number)-4")
        #expect(again.reply.eventIDs == ["\(number)-5", "\(number)-6", "\(number)-7"])
    }

    @Test func aBadLastEventIDIsA400NamingIt() throws {
        let session = try openSession(version: "2025-11-25")
        for bad in ["x", "1-", "-1", "1-2-3", "99-1"] {
            let sink = get(session: session, lastEventID: bad)
            #expect(sink.reply.status == 400, "\(bad)")
            #expect(try sink.json()["error"]?["message"]?.stringValue?.contains("Last-Event-ID '\(bad)'") == true)
        }
        // and the session's GET stream still opens
        #expect(get(session: session).reply.streamed)
    }

    @Test func theGetStreamIsPrimedFrom20251125Only() throws {
        let modernSession = try openSession(version: "2025-11-25")
        let primed = get(session: modernSession)
        #expect(primed.reply.primingIDs.count == 1)
        let oldSession = try openSession(version: "2025-06-18")
        let plain = get(session: oldSession)
        #expect(plain.reply.streamed)
        #expect(plain.reply.primingIDs.isEmpty)
    }

    @Test func theReplayBufferIsBoundedAndZeroTurnsResumptionOff() throws {
        for budget in [0, 300] {
            var config = HostConfig()
            config.replayBufferBytes = budget
            let local = MCPDispatcherTests(plugin: plugin, config: config)
            let session = try local.openSession(version: "2025-11-25")
            let first = try local.droppedProgressCall(session: session, steps: 20)
            if budget == 0 {
                #expect(first.reply.primingIDs.isEmpty)
                #expect(first.reply.eventIDs == [nil, nil])
                #expect(local.get(session: session, lastEventID: "1-2").reply.status == 400)
                continue
            }
            let number = try #require(first.reply.primingIDs.first ?? nil).dropLast(2)
            let resumed = local.get(session: session, lastEventID: "\(number)-2")
            // ~130 bytes a progress event: only the newest fit in 300 bytes, and the final answer always stays.
            let replayed = try resumed.eventMessages()
            #expect(replayed.count < 4 && !replayed.isEmpty)
            #expect(replayed.last?["id"] == 7)
        }
    }

    @Test func theReplayBookkeepingStaysBoundedOverManyStreams() {
        let replay = EventReplay(limits: .init(maxBytes: 1 << 20, maxStreams: 4), primes: true)
        let event = Array(#"{"jsonrpc":"2.0","method":"m"}"#.utf8)
        for _ in 0..<500 {
            let stream = replay.open(on: RecordingSink())
            _ = stream.startStream(headers: [])
            for _ in 0..<3 { stream.sendEvent(event) }
            stream.endStream()
        }
        // Only the 4 streams remembered keep events (3 each); the eviction order does not keep the entries of
        // the 496 forgotten ones.
        #expect(replay.keptBytes == 4 * 3 * event.count)
        #expect(replay.orderEntries <= 2 * 12 + 64)
    }

    /// True once no call is in flight, within 5 s: a call's bookkeeping ends on the thread that finished it, just
    /// after its answer reached the sink.
    func callsSettle() -> Bool {
        let deadline = ContinuousClock.now + .seconds(5)
        while dispatcher.callsInFlight > 0 {
            guard ContinuousClock.now < deadline else { return false }
            usleep(1000)
        }
        return true
    }

    // MARK: Batches (2025-03-26)

    func batch(session: String, version: String, _ messages: [JSONValue], accept: String = "application/json")
        -> RecordingSink
    {
        post(
            .array(messages), headers: [("Mcp-Session-Id", session), ("MCP-Protocol-Version", version)],
            accept: accept)
    }

    @Test func aBatchIn20250326GetsOneArrayInRequestOrder() throws {
        let session = try openSession(version: "2025-03-26")
        let sink = batch(
            session: session, version: "2025-03-26",
            [
                [
                    "jsonrpc": "2.0", "id": "a", "method": "tools/call",
                    "params": ["name": "progress", "arguments": ["steps": 2]],
                ],
                ["jsonrpc": "2.0", "method": "notifications/initialized"],
                ["jsonrpc": "2.0", "id": 2, "method": "ping"],
                ["jsonrpc": "1.0", "id": 3, "method": "ping"],
                [
                    "jsonrpc": "2.0", "id": 4, "method": "tools/call",
                    "params": ["name": "echo", "arguments": ["text": "hi"]],
                ],
                ["jsonrpc": "2.0", "id": 5, "method": "initialize", "params": ["protocolVersion": "2025-03-26"]],
            ])
        #expect(sink.reply.status == 200)
        guard case .array(let answers) = try sink.json() else {
            Issue.record("not an array: \(String(decoding: sink.reply.body, as: UTF8.self))")
            return
        }
        #expect(answers.map { $0["id"] } == ["a", 2, 3, 4, 5])
        #expect(answers[0]["result"]?["content"] == [["type": "text", "text": "finished"]])
        #expect(answers[1]["result"] == [:])
        #expect(answers[2]["error"]?["code"] == .int(JSONRPC.invalidRequest))
        #expect(answers[3]["result"]?["content"] == [["type": "text", "text": "hi"]])
        #expect(answers[4]["error"]?["message"] == "initialize must not be part of a batch")
        #expect(callsSettle())

        // Only notifications: 202, nothing to answer. SSE-only: the array as one event.
        let quiet = batch(
            session: session, version: "2025-03-26", [["jsonrpc": "2.0", "method": "notifications/initialized"]])
        #expect(quiet.reply.status == 202)
        let streamed = batch(
            session: session, version: "2025-03-26", [["jsonrpc": "2.0", "id": 9, "method": "ping"]],
            accept: "text/event-stream")
        #expect(try streamed.eventMessages() == [[["jsonrpc": "2.0", "id": 9, "result": [:]]]])
    }

    @Test func batchesOutside20250326AreRefusedNamingTheVersion() throws {
        let session = try openSession(version: "2025-06-18")
        let sink = batch(session: session, version: "2025-06-18", [["jsonrpc": "2.0", "id": 1, "method": "ping"]])
        #expect(sink.reply.status == 400)
        #expect(try sink.json()["error"]?["message"]?.stringValue?.contains("this session speaks 2025-06-18") == true)
        let old = try openSession(version: "2025-03-26")
        #expect(batch(session: old, version: "2025-03-26", []).reply.status == 400)
    }

    @Test func batchesAndBadJSONAreRejected() throws {
        let batch = post([["jsonrpc": "2.0", "id": 1, "method": "ping"]])
        #expect(batch.reply.status == 400)
        let bad = RecordingSink()
        dispatcher.handle(
            MCPRequest(verb: .post, headers: ["Content-Type": "application/json"], body: Array("{".utf8)), bad)
        #expect(bad.reply.status == 400)
        #expect(try bad.json()["error"]?["code"] == .int(JSONRPC.parseError))
        let put = RecordingSink()
        dispatcher.handle(MCPRequest(verb: .other("PUT"), headers: [:], body: []), put)
        #expect(put.reply.status == 405)
        #expect(put.header("Allow") == "GET, POST, DELETE")
    }
}

extension JSONValue {
    var description: String { JSONWriter.string(self) }
}
