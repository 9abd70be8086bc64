import Contracts
import Logging
import MCPProtocol
import StructuredLog
import Synchronization
import Testing

/// Collects what a handler writes.
final class Lines: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    var write: @Sendable (String) -> Void { { line in self.lines.withLock { $0.append(line) } } }
}

struct LineLogHandlerTests {
    @Test func textKeepsTodaysLines() {
        let out = Lines()
        let log = LineLogHandler.logger(source: LogSource.supervisor, format: .text, write: out.write)
        log.info(
            "running (ready in 15 ms)",
            metadata: [
                LogKey.event: .string(LogEventName.childReady), LogKey.server: "reference",
                LogKey.replica: LogValue.hidden(0), LogKey.pid: LogValue.of(Int32(4242)), "ready_ms": LogValue.of(15),
            ])
        log.info(
            "backoff: exited with status 70; restarting in 0.1 s",
            metadata: [LogKey.server: "pair", LogKey.replica: LogValue.of(1), LogKey.pid: LogValue.hidden(Int32(9))])
        log.info("reload: 1 added, 0 removed, 0 changed, 0 unchanged")
        #expect(
            out.all == [
                "mcp-supervisor: reference[4242]: running (ready in 15 ms)\n",
                "mcp-supervisor: pair#1: backoff: exited with status 70; restarting in 0.1 s\n",
                "mcp-supervisor: reload: 1 added, 0 removed, 0 changed, 0 unchanged\n",
            ])
    }

    @Test func forwardedLinesLeadWithTheChild() {
        let hostLine = LineLogHandler.text(
            source: LogSource.supervisor, message: "serving x 1.0 from /p.so at http://127.0.0.1:1/mcp",
            metadata: [
                LogKey.source: .string(LogSource.host), LogKey.server: "noisy", LogKey.replica: LogValue.hidden(0),
                LogKey.pid: LogValue.of(Int32(77)),
            ])
        #expect(hostLine == "noisy[77]: mcp-plugin-host: serving x 1.0 from /p.so at http://127.0.0.1:1/mcp")
        let pluginLine = LineLogHandler.text(
            source: LogSource.supervisor, message: "spam 1 of 5000",
            metadata: [
                LogKey.source: .string(LogSource.plugin), LogKey.server: "pair", LogKey.replica: LogValue.of(0),
                LogKey.pid: LogValue.of(Int32(5)),
            ])
        #expect(pluginLine == "pair#0[5]: spam 1 of 5000")
    }

    @Test func jsonHasTheFieldsInOrderAndTypesKept() throws {
        let line = LineLogHandler.json(
            source: LogSource.supervisor, level: .notice, message: "exited with status 70",
            metadata: [
                "status": LogValue.of(Int32(70)), LogKey.event: .string(LogEventName.childExit),
                LogKey.server: "crashy", LogKey.replica: LogValue.hidden(0), LogKey.pid: LogValue.of(Int32(31)),
                "reason": "exited with status 70",
            ], time: "2026-12-01T22:00:00.000Z")
        #expect(
            line == #"{"time":"2026-12-01T22:00:00.000Z","level":"notice","source":"mcp-supervisor","#
                + #""event":"child.exit","server":"crashy","replica":0,"pid":31,"message":"exited with status 70","#
                + #""reason":"exited with status 70","status":70}"#)
        let parsed = try JSONParser.parse(line)
        #expect(parsed["replica"] == .int(0))
    }

    @Test func jsonLinesAreOneLineEvenWithNewlinesInTheMessage() throws {
        let out = Lines()
        let log = LineLogHandler.logger(source: LogSource.host, format: .json, write: out.write)
        log.error("two\nlines \"quoted\"", metadata: [LogKey.event: .string(LogEventName.hostFailure)])
        let written = try #require(out.all.first)
        #expect(written.filter { $0 == "\n" }.count == 1 && written.hasSuffix("\n"))
        let parsed = try JSONParser.parse(String(written.dropLast()))
        #expect(parsed["message"] == "two\nlines \"quoted\"")
        #expect(parsed["level"] == "error")
        #expect(parsed["source"] == "mcp-plugin-host")
        let time = try #require(parsed["time"]?.stringValue)
        #expect(time.count == 24 && time.hasSuffix("Z"))
    }
}

struct ForwardedLineTests {
    @Test func aHostJSONLineKeepsItsLevelEventAndFields() {
        let line = Array(
            #"{"time":"t","level":"notice","source":"mcp-plugin-host","event":"host.drain","server":"liar","pid":1,"message":"draining","inflight":3}"#
                .utf8)
        let f = ForwardedLine.parse(line[...], textLevel: .info)
        #expect(f.level == .notice)
        #expect(f.event == LogEventName.hostDrain)
        #expect(f.source == LogSource.host)
        #expect(f.message == "draining")
        #expect(f.fields == ["inflight": 3])  // server, pid and the rest of the reserved keys are the supervisor's
    }

    @Test func plainTextIsAMessageAtTheStreamsLevel() {
        let f = ForwardedLine.parse(Array("spam 5 of 5000".utf8)[...], textLevel: .warning)
        #expect(f.level == .warning && f.source == LogSource.plugin && f.event == LogEventName.childOutput)
        #expect(f.message == "spam 5 of 5000")
        let brace = ForwardedLine.parse(Array("{not json".utf8)[...], textLevel: .info)
        #expect(brace.message == "{not json" && brace.source == LogSource.plugin)
        let noLevel = ForwardedLine.parse(Array(#"{"message":"m"}"#.utf8)[...], textLevel: .info)
        #expect(noLevel.source == LogSource.plugin)
    }
}
