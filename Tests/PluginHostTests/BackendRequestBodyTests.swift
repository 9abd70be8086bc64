import MCPProtocol
import Testing

@testable import PluginHost

/// The gateway writes its requests' envelope and `_meta` around the serialized params (BackendClient.body): the
/// bytes must be the same JSON-RPC request as the one built as an object.
struct BackendRequestBodyTests {
    private func expected(
        id: Int64, method: String, params: [String: JSONValue], progress: Bool, capabilities: JSONValue
    ) -> JSONValue {
        var p = params
        p["_meta"] = BackendClient.meta(progressToken: progress ? id : nil, capabilities: capabilities)
        return JSONRPC.request(id: .int(id), method: method, params: .object(p))
    }

    @Test func theBytesAreTheRequestBuiltAsAnObject() throws {
        let cases: [(Int64, String, [String: JSONValue], Bool, JSONValue)] = [
            (1, "tools/call", ["name": "echo", "arguments": ["text": "hé \"quoted\"\n"]], true, [:]),
            (42, "tools/list", [:], false, [:]),
            (7, "resources/read", ["uri": "reference://readme"], false, [:]),
            (9_007_199_254_740_993, "prompts/get", ["name": "p", "arguments": [:]], true, ["elicitation": [:]]),
            (3, "tools/call", ["name": "x", "_meta": ["stray": true]], false, ["roots": ["listChanged": true]]),
        ]
        for (id, method, params, progress, caps) in cases {
            let bytes = BackendClient.body(
                id: id, method: method, params: params, progress: progress, capabilities: caps)
            let parsed = try JSONParser.parse(bytes)
            var want = expected(id: id, method: method, params: params, progress: progress, capabilities: caps)
            if params["_meta"] != nil {
                // A stray _meta in the params is replaced by the gateway's, as before.
                var p = params
                p["_meta"] = BackendClient.meta(progressToken: progress ? id : nil, capabilities: caps)
                want = JSONRPC.request(id: .int(id), method: method, params: .object(p))
            }
            #expect(parsed == want, "\(method) \(id): \(String(decoding: bytes, as: UTF8.self))")
        }
    }
}
