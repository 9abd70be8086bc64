import Testing

@testable import PluginHost

struct RequestHeadersTests {
    @Test func namesMatchWithoutRegardToAsciiCase() {
        let headers = RequestHeaders([("content-TYPE", "application/json"), ("Mcp-Session-Id", "abc")])
        #expect(headers.first("Content-Type") == "application/json")
        #expect(headers.first("MCP-SESSION-ID") == "abc")
        #expect(headers.first("Content-Typ") == nil)
        #expect(headers.first("Mcp-Session-Ie") == nil)
        // Only letters fold: "[" (0x5B) and "{" (0x7B) differ by the case bit but are not the same name.
        #expect(RequestHeaders.sameName("a[", "a{") == false)
        #expect(RequestHeaders.sameName("x-1", "X-1"))
    }

    @Test func valuesSplitEveryFieldOnCommasAndTrim() {
        let headers = RequestHeaders([
            ("Accept", " application/json ,\ttext/event-stream"), ("X", "y"), ("accept", "*/*,, "),
        ])
        #expect(headers.values("Accept") == ["application/json", "text/event-stream", "*/*"])
        #expect(headers.values("Missing").isEmpty)
    }

    @Test func mediaTypeDropsParametersAndLowercases() {
        #expect(RequestHeaders.mediaType(" Application/JSON; charset=utf-8") == "application/json")
        #expect(RequestHeaders.mediaType("text/event-stream") == "text/event-stream")
        #expect(RequestHeaders.mediaType(";q=1") == "")
        #expect(RequestHeaders.mediaType("TEXT/Plain-é") == "text/plain-é")
    }

    @Test func hostNamesAreLowercasedWithoutThePort() {
        #expect(OriginPolicy.hostName("LocalHost:8080") == "localhost")
        #expect(OriginPolicy.hostName("[::1]:39001") == "[::1]")
        #expect(OriginPolicy.hostName("127.0.0.1") == "127.0.0.1")
        #expect(OriginPolicy.hostName("[::1") == "[::1")
        let policy = OriginPolicy(allowedHosts: [], allowedOrigins: [])
        #expect(policy.problem(host: "LOCALHOST:1", origin: "http://127.0.0.1:5") == nil)
        #expect(policy.problem(host: "evil.example:80", origin: nil) != nil)
    }
}
