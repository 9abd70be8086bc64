import Testing

@testable import PluginHost

/// The http bridge's reader of a program's SSE streams: each event's data lines, joined, are one message.
struct SSEParserTests {
    @Test func eventsSplitAcrossChunksCommentsAndMultilineData() {
        var p = SSEParser()
        let stream = Array(": comment\r\nevent: message\r\nid: 7\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata:x\n\n\n".utf8)
        var events: [String] = []
        // Byte by byte: no event depends on how the bytes arrive.
        for b in stream { events += p.feed([b]).map { String(decoding: $0, as: UTF8.self) } }
        #expect(events == ["{\"a\":\n1}", "x"])
    }

    @Test func anEventWithoutDataIsNoMessage() {
        var p = SSEParser()
        #expect(p.feed(Array("event: ping\nid: 1\n\n".utf8)).isEmpty)
    }
}
