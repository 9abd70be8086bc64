import MCPProtocol
import Testing

@testable import PluginHost

/// The legacy-era rules on what a plugin's input request may hold (docs/protocol.md, 2025-11-25 #40 and #42).
struct InputRequestShapeTests {
    @Test func urlModeElicitationNeedsAWebURLAndGetsAnElicitationID() throws {
        func url(_ u: String, id: JSONValue? = nil) -> JSONValue {
            var o: [String: JSONValue] = ["message": "Sign in", "mode": "url", "url": .string(u)]
            if let id { o["elicitationId"] = id }
            return .object(o)
        }
        #expect(InputRequestShape.isValid(method: "elicitation/create", params: url("https://example.org/auth?x=1")))
        #expect(InputRequestShape.isValid(method: "elicitation/create", params: url("http://127.0.0.1:8080/")))
        for bad in [
            "ftp://example.org/", "https://", "https:///path", "javascript:alert(1)", "https://a b/", "/relative",
        ] {
            #expect(!InputRequestShape.isValid(method: "elicitation/create", params: url(bad)), "\(bad)")
        }
        #expect(!InputRequestShape.isValid(method: "elicitation/create", params: url("https://e.org/", id: 7)))
        let filled = InputRequestShape.completed(method: "elicitation/create", params: url("https://e.org/"))
        let id = try #require(filled["elicitationId"]?.stringValue)
        #expect(id.count == 32)
        let other = InputRequestShape.completed(method: "elicitation/create", params: url("https://e.org/"))
        #expect(other["elicitationId"]?.stringValue != id)
        // The plugin's own id is kept; a form request is left as it is.
        let own = InputRequestShape.completed(method: "elicitation/create", params: url("https://e.org/", id: "mine"))
        #expect(own["elicitationId"]?.stringValue == "mine")
        let form: JSONValue = ["message": "ok?", "requestedSchema": ["type": "object", "properties": [:]]]
        #expect(InputRequestShape.completed(method: "elicitation/create", params: form) == form)
    }

    @Test func contextInclusionNeedsTheSamplingContextCapability() {
        let params: JSONValue = ["messages": [], "maxTokens": 10, "includeContext": "thisServer"]
        let plain: JSONValue = ["sampling": [:]]
        let withContext: JSONValue = ["sampling": ["context": [:]]]
        #expect(
            MCPDispatcher.missingCapability(
                method: "sampling/createMessage", params: params, declared: plain, version: "2025-11-25")
                == ["sampling": ["context": [:]]])
        #expect(
            MCPDispatcher.missingCapability(
                method: "sampling/createMessage", params: params, declared: withContext, version: "2025-11-25") == nil)
        let none: JSONValue = ["messages": [], "maxTokens": 10, "includeContext": "none"]
        #expect(
            MCPDispatcher.missingCapability(
                method: "sampling/createMessage", params: none, declared: plain, version: "2025-11-25") == nil)
    }
}
