import Contracts
import MCPProtocol
import Testing

struct SupervisorMessageTests {
    @Test(arguments: [
        SupervisorMessage.ping(seq: 7), .health(seq: 3, level: .basic), .health(seq: 4, level: .detailed),
        .health(seq: 5, level: .diagnostic), .stop, .metrics(seq: 11), .changed(.lists(5)),
        .changed(.resource(uri: "notes://1")), .changed(.sessionEnded(id: "s1.abc")),
    ])
    func roundTrips(_ message: SupervisorMessage) throws {
        let wire = try JSONParser.parse(JSONWriter.serialize(message.encode()))
        #expect(SupervisorMessage.decode(wire) == message)
    }

    @Test func changesThatSayNothingAreIgnored() {
        for bad: JSONValue in [
            ["op": "changed"], ["op": "changed", "lists": 0], ["op": "changed", "lists": 8],
            ["op": "changed", "uri": ""],
            ["op": "changed", "lists": "1"], ["op": "changed", "session": ""],
            ["op": "changed", "session": .string(String(repeating: "s", count: 4097))],
        ] {
            #expect(SupervisorMessage.decode(bad) == nil, "\(bad)")
        }
        #expect(HostMessage.decode(["event": "changed", "lists": 9]) == nil)
        #expect(HostMessage.decode(["event": "changed", "uri": .string(String(repeating: "u", count: 65537))]) == nil)
    }

    @Test func aSessionEndNeedsVersionFiveListChangesThree() {
        #expect(PluginChange.sessionEnded(id: "s1.a").channelVersion == 5)
        #expect(PluginChange.lists(1).channelVersion == 3)
        #expect(PluginChange.resource(uri: "a://b").channelVersion == 3)
        #expect(ControlChannelProtocol.version >= 5)
        #expect(SupervisorMessage.changed(.sessionEnded(id: "s1.a")).encode()["session"] == "s1.a")
    }

    @Test func unknownOpsAreIgnored() {
        #expect(SupervisorMessage.decode(["op": "reticulate", "seq": 1]) == nil)
        #expect(SupervisorMessage.decode(["seq": 1]) == nil)
        #expect(SupervisorMessage.decode("ping") == nil)
    }

    @Test func healthWithoutAKnownLevelIsBasic() {
        #expect(SupervisorMessage.decode(["op": "health", "seq": 2]) == .health(seq: 2, level: .basic))
        #expect(
            SupervisorMessage.decode(["op": "health", "seq": 2, "level": "deep"]) == .health(seq: 2, level: .basic))
    }

    @Test func theWireKeysAreTheDocumentedOnes() {
        #expect(SupervisorMessage.ping(seq: 9).encode() == ["op": "ping", "seq": 9])
        #expect(SupervisorMessage.stop.encode() == ["op": "stop"])
        #expect(
            SupervisorMessage.health(seq: 1, level: .detailed).encode() == [
                "op": "health", "seq": 1, "level": "detailed",
            ])
    }
}

struct HostMessageTests {
    static let use = SlotUse(inflight: 2, stuck: 1, slots: 4)
    static let sampleSnapshot: TrafficSnapshot = {
        var s = TrafficSnapshot()
        s.requests = [RequestCount(method: "tools/call", outcome: "ok", count: 5)]
        var buckets = [Int](repeating: 0, count: TrafficMetrics.durationBuckets.count + 1)
        buckets[2] = 4
        buckets[buckets.count - 1] = 1
        s.operations = [
            OperationHistogram(method: "tools/call", tool: "echo", errorType: "", buckets: buckets, sum: 31.5, count: 5)
        ]
        s.callsInFlight = 1
        s.errors = ["tool_error": 2]
        s.cancellations = 3
        s.deadlineExpiries = 4
        s.bytesIn = 1000
        s.bytesOut = 2000
        s.slotsBusy = 1
        s.slotsTotal = 8
        s.sessionsOpen = 2
        return s
    }()

    @Test func aMetricsAnswerWithAWrongBucketCountDropsThatHistogramOnly() throws {
        var wire = HostMessage.metrics(seq: 1, Self.sampleSnapshot).encode()
        guard case .object(var o) = wire else { return }
        o["ops"] = [["m": "tools/call", "t": "echo", "e": "", "b": [1, 2], "s": .double(1.0), "n": 3]]
        wire = .object(o)
        guard case .metrics(_, let s) = HostMessage.decode(wire) else {
            Issue.record("not decoded as metrics")
            return
        }
        #expect(s.operations.isEmpty)
        #expect(s.requests == Self.sampleSnapshot.requests)
        #expect(s.slotsTotal == 8)
    }

    @Test(arguments: [
        HostMessage.ready(pid: 4242, port: 39001, protocolVersion: ControlChannelProtocol.version),
        .pong(seq: 12, slots: use), .pong(seq: nil, slots: use), .healthLoop(seq: 5, slots: use),
        .healthPlugin(seq: 5, PluginHealth(ok: true, detail: "fine", milliseconds: 1.5, report: "{\"a\":1}")),
        .healthPlugin(seq: 6, PluginHealth(ok: nil, detail: "")),
        .healthPlugin(seq: 7, PluginHealth(ok: false, detail: "still running", busy: true)),
        .metrics(seq: 8, TrafficSnapshot()), .metrics(seq: 9, sampleSnapshot), .changed(.lists(1)),
        .changed(.resource(uri: "reference://readme")), .changed(.sessionEnded(id: "s1.xyz")),
    ])
    func roundTrips(_ message: HostMessage) throws {
        let wire = try JSONParser.parse(JSONWriter.serialize(message.encode()))
        #expect(HostMessage.decode(wire) == message)
    }

    @Test func readyCarriesTheProtocolVersion() {
        let ready = HostMessage.ready(pid: 1, port: 2, protocolVersion: ControlChannelProtocol.version).encode()
        #expect(ready["protocol"] == .int(Int64(ControlChannelProtocol.version)))
        #expect(ready["event"] == "ready")
        // A host from before the version field counts as version 1.
        #expect(
            HostMessage.decode(["event": "ready", "pid": 1, "port": 2]) == .ready(pid: 1, port: 2, protocolVersion: 1))
    }

    @Test func aPluginWithoutHealthCallbackSendsNullOK() {
        let part = HostMessage.healthPlugin(seq: 1, PluginHealth(ok: nil, detail: "")).encode()
        #expect(part["ok"] == .null)
        #expect(part["part"] == "plugin")
    }

    @Test func healthWithoutSeqOrPartIsDropped() {
        #expect(HostMessage.decode(["event": "health", "part": "loop"]) == nil)
        #expect(HostMessage.decode(["event": "health", "seq": 1, "part": "gpu"]) == nil)
        #expect(HostMessage.decode(["event": "bonjour"]) == nil)
    }
}
