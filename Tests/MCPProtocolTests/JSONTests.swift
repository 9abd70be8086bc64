import Testing

@testable import MCPProtocol

struct JSONParserTests {
    @Test func parsesEveryKindOfValue() throws {
        let v = try JSONParser.parse(#"{"a":[1,-2.5,true,false,null,"x\n\u00e9\ud83d\ude00"],"b":{}}"#)
        #expect(v["a"] == .array([.int(1), .double(-2.5), .bool(true), .bool(false), .null, .string("x\né😀")]))
        #expect(v["b"] == .object([:]))
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "\"abc", "tru", "{\"a\" 1}", "[1] x", "\"\u{01}\"",
        "\"\\x\"", "{1:2}", "NaN", "1e999",
    ])
    func rejectsMalformedInput(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0xFE, 0x22]) }
    }

    @Test func limitsNesting() throws {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let ok = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        _ = try JSONParser.parse(ok)
    }

    @Test func reportsWhereParsingStopped() {
        do {
            _ = try JSONParser.parse("{\"a\": tru}")
            Issue.record("parsed invalid JSON")
        } catch {
            #expect(error.offset == 6)
        }
    }

    @Test func writerRoundTrips() throws {
        let v: JSONValue = ["s": "quote\" backslash\\ ctl\u{01} tab\t", "n": 42, "d": .double(1.5), "a": [nil, true]]
        let text = JSONWriter.string(v)
        #expect(try JSONParser.parse(text) == v)
        #expect(text.contains("\\u0001"))
    }

    @Test func writerEscapesExactlyWhatJSONRequires() {
        #expect(JSONWriter.string(.string("plain é 😀")) == "\"plain é 😀\"")
        #expect(JSONWriter.string(.string("\"a\\b\"")) == #""\"a\\b\"""#)
        #expect(JSONWriter.string(.string("\n\r\t\u{1f}x")) == #""\n\r\t\u001fx""#)
        #expect(JSONWriter.string(.string("")) == "\"\"")
    }

    @Test func writerSortsObjectKeys() {
        let v: JSONValue = ["b": 1, "a": ["z": true, "y": nil], "c": "x"]
        #expect(JSONWriter.string(v) == #"{"a":{"y":null,"z":true},"b":1,"c":"x"}"#)
    }

    @Test func writerInsertsRawFragmentsVerbatim() {
        let v: JSONValue = .array([.raw(Array("{\"type\":\"object\"}".utf8))])
        #expect(JSONWriter.string(v) == "[{\"type\":\"object\"}]")
    }
}

struct JSONRPCTests {
    @Test func classifiesMessages() throws {
        #expect(
            JSONRPC.decode(try JSONParser.parse(#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#))
                == .request(id: .int(1), method: "ping", params: [:]))
        #expect(
            JSONRPC.decode(try JSONParser.parse(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#))
                == .notification(method: "notifications/initialized", params: [:]))
        #expect(
            JSONRPC.decode(try JSONParser.parse(#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#)) == .batch(count: 1))
        #expect(
            JSONRPC.decode(try JSONParser.parse(#"{"jsonrpc":"2.0","id":3,"result":{}}"#))
                == .response(id: .int(3), result: [:], error: nil))
    }

    @Test(arguments: [
        #"{"id":1,"method":"ping"}"#, #"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
        #"{"jsonrpc":"2.0","id":{},"method":"ping"}"#, #"{"jsonrpc":"2.0","id":1,"method":5}"#,
        #"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#, #"42"#,
    ])
    func rejectsInvalidRequests(_ text: String) throws {
        guard case .invalid = JSONRPC.decode(try JSONParser.parse(text)) else {
            Issue.record("accepted \(text)")
            return
        }
    }
}

struct ModernRequestRulesTests {
    let meta: JSONValue = [
        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": [:],
    ]

    func headers(_ h: [String: String]) -> (String) -> String? {
        { name in h.first { $0.key.lowercased() == name.lowercased() }?.value }
    }

    @Test func acceptsAWellFormedToolCall() {
        let e = ModernRequestRules.validate(
            method: "tools/call", params: ["name": "echo", "_meta": meta],
            header: headers(["mcp-protocol-version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo"]))
        #expect(e == nil)
    }

    @Test func rejectsMismatchesWithTheRightCodes() {
        let good = ["MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo"]
        func check(_ h: [String: String], params: [String: JSONValue]? = nil) -> ProtocolError? {
            ModernRequestRules.validate(
                method: "tools/call", params: params ?? ["name": "echo", "_meta": meta], header: headers(h))
        }
        #expect(check(good.merging(["Mcp-Name": "other"]) { $1 })?.code == -32020)
        #expect(check(good.merging(["Mcp-Method": "tools/list"]) { $1 })?.code == -32020)
        #expect(check(good.filter { $0.key != "Mcp-Name" })?.code == -32020)
        #expect(check(good.filter { $0.key != "MCP-Protocol-Version" })?.code == -32020)
        #expect(check(good.merging(["MCP-Protocol-Version": "2026-01-01"]) { $1 })?.code == -32020)
        #expect(check(good, params: ["name": "echo"])?.code == -32602)
        let old: JSONValue = [
            "io.modelcontextprotocol/protocolVersion": "1900-01-01", "io.modelcontextprotocol/clientCapabilities": [:],
        ]
        let unsupported = check(
            good.merging(["MCP-Protocol-Version": "1900-01-01"]) { $1 }, params: ["name": "echo", "_meta": old])
        #expect(unsupported?.code == -32022)
        #expect(unsupported?.httpStatus == 400)
        #expect(unsupported?.data?["requested"] == "1900-01-01")
    }

    @Test func decodesBase64SentinelNames() {
        #expect(ModernRequestRules.decodeHeaderValue("=?base64?SGVsbG8sIOS4lueVjA==?=") == "Hello, 世界")
        #expect(ModernRequestRules.decodeHeaderValue("plain-name") == "plain-name")
        #expect(ModernRequestRules.decodeHeaderValue("bad\u{7F}") == nil)
        #expect(ModernRequestRules.decodeHeaderValue("=?base64?!!!?=") == nil)
    }

    @Test func checksMirroredParameterHeaders() {
        let mirrored = [(header: "Region", path: ["region"])]
        #expect(
            ModernRequestRules.validateParamHeaders(
                mirrored: mirrored, arguments: ["region": "us-west1"], header: headers(["Mcp-Param-Region": "us-west1"])
            )
                == nil)
        #expect(
            ModernRequestRules.validateParamHeaders(
                mirrored: mirrored, arguments: ["region": "us-west1"], header: headers([:]))?.code == -32020)
        #expect(
            ModernRequestRules.validateParamHeaders(mirrored: mirrored, arguments: [:], header: headers([:])) == nil)
        // a header the body does not back is a mismatch too
        #expect(
            ModernRequestRules.validateParamHeaders(
                mirrored: mirrored, arguments: [:], header: headers(["Mcp-Param-Region": "us-west1"]))?.code == -32020)
        // nested: the value at the exact chain of properties
        let nested = [(header: "Tenant", path: ["target", "tenant"])]
        #expect(
            ModernRequestRules.validateParamHeaders(
                mirrored: nested, arguments: ["target": ["tenant": "acme"]],
                header: headers(["Mcp-Param-Tenant": "acme"]))
                == nil)
        #expect(
            ModernRequestRules.validateParamHeaders(
                mirrored: nested, arguments: ["target": ["tenant": "acme"]],
                header: headers(["Mcp-Param-Tenant": "evil"]))?
                .code == -32020)
        #expect(
            ModernRequestRules.validateParamHeaders(
                mirrored: nested, arguments: ["target": ["tenant": 42]], header: headers(["Mcp-Param-Tenant": "42.0"]))
                == nil)
    }
}

struct URITemplateTests {
    @Test func matchesSegmentsAndDecodes() {
        let t = URITemplate("demo://notes/{id}/data")!
        #expect(t.match("demo://notes/42/data") == ["id": "42"])
        #expect(t.match("demo://notes/a%20b/data") == ["id": "a b"])
        #expect(t.match("demo://notes/4/2/data") == nil)
        #expect(t.match("demo://notes//data") == nil)
        #expect(URITemplate("file:///{+path}")!.match("file:///a/b/c") == ["path": "a/b/c"])
    }

    @Test func matchesWithSeveralVariablesAndRefusesBadEscapes() {
        let t = URITemplate("x://{a}.{b}/{+rest}")!
        // Shortest first: a takes "1", b the rest of the segment.
        #expect(t.match("x://1.2.3/p/q") == ["a": "1", "b": "2.3", "rest": "p/q"])
        #expect(t.match("x://%41.b/c") == ["a": "A", "b": "b", "rest": "c"])
        #expect(t.match("x://%4.b/c") == nil)  // not percent-encoding
        #expect(t.match("x://%FF.b/c") == nil)  // not UTF-8 once decoded
        #expect(URITemplate("n://{id}")!.match("n://é") == ["id": "é"])
    }

    /// Found by the fuzzer (Fuzz/corpus/uri-template): trying every split afresh is exponential in the number of
    /// variables; a URI that almost matches must be refused after a bounded search, not after minutes.
    @Test func aNearMissWithManyVariablesIsRefused() {
        let t = URITemplate("{a}x{b}x{c}x{d}x{e}x{f}y")!
        #expect(t.match(String(repeating: "x", count: 3000)) == nil)
        #expect(t.match(String(repeating: "x", count: 3000) + "y") != nil)
        let r = URITemplate("{+a}/{+b}/{+c}/{+d}.")!
        #expect(r.match(String(repeating: "/", count: 2000)) == nil)
    }

    @Test(arguments: ["x://{", "x://}", "x://{}", "x://{a}{b}", "x://{a b}"])
    func rejectsInvalidTemplates(_ text: String) {
        #expect(URITemplate(text) == nil)
    }
}

struct CatalogTests {
    @Test func paginatesWithOpaqueCursors() throws {
        var c = Catalog()
        for i in 0..<5 {
            try c.addTool(
                name: "t\(i)", title: nil, description: nil, inputSchema: nil, outputSchema: nil, annotations: nil)
        }
        let p1 = try c.page(.tools, cursor: nil, pageSize: 2)
        #expect(p1.items.count == 2)
        let p2 = try c.page(.tools, cursor: p1.nextCursor, pageSize: 2)
        let p3 = try c.page(.tools, cursor: p2.nextCursor, pageSize: 2)
        #expect(p3.items.count == 1)
        #expect(p3.nextCursor == nil)
        #expect(throws: ProtocolError.self) { try c.page(.tools, cursor: "garbage", pageSize: 2) }
    }

    @Test func rejectsBadDeclarations() throws {
        var c = Catalog()
        try c.addTool(name: "a", title: nil, description: nil, inputSchema: nil, outputSchema: nil, annotations: nil)
        #expect(throws: Catalog.DeclarationError.self) {
            try c.addTool(
                name: "a", title: nil, description: nil, inputSchema: nil, outputSchema: nil, annotations: nil)
        }
        #expect(throws: Catalog.DeclarationError.self) {
            try c.addTool(
                name: "b", title: nil, description: nil, inputSchema: "{", outputSchema: nil, annotations: nil)
        }
        #expect(throws: Catalog.DeclarationError.self) {
            try c.addTool(
                name: "c", title: nil, description: nil, inputSchema: "[]", outputSchema: nil, annotations: nil)
        }
    }

    @Test func findsMirroredHeadersInTheSchema() throws {
        var c = Catalog()
        try c.addTool(
            name: "sql", title: nil, description: nil,
            inputSchema: #"{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"}}}"#,
            outputSchema: nil, annotations: nil)
        #expect(c.tool(named: "sql")?.mirroredHeaders.first?.header == "Region")
        try c.addTool(
            name: "nested", title: nil, description: nil,
            inputSchema: #"""
                {"type":"object","properties":{"target":{"type":"object","properties":{
                  "tenant":{"type":"string","x-mcp-header":"Tenant"},"id":{"type":"integer","x-mcp-header":"Id"}}},
                  "note":{"type":"string","default":{"x-mcp-header":"data, not an annotation"}}}}
                """#,
            outputSchema: nil, annotations: nil)
        let headers = c.tool(named: "nested")?.mirroredHeaders.map { "\($0.header)=\($0.path.joined(separator: "."))" }
        #expect(headers == ["Id=target.id", "Tenant=target.tenant"])
    }

    @Test(arguments: [
        (
            #"{"type":"object","properties":{"a":{"type":"array","items":{"type":"string","x-mcp-header":"A"}}}}"#,
            "not statically reachable"
        ),
        (
            #"{"type":"object","properties":{"a":{"oneOf":[{"type":"string","x-mcp-header":"A"}]}}}"#,
            "not statically reachable"
        ),
        (#"{"type":"object","$defs":{"a":{"type":"string","x-mcp-header":"A"}}}"#, "not statically reachable"),
        (#"{"type":"object","x-mcp-header":"Root"}"#, "the schema root"),
        (#"{"type":"object","properties":{"a":{"type":"number","x-mcp-header":"A"}}}"#, "string, integer or boolean"),
        (#"{"type":"object","properties":{"a":{"type":"string","x-mcp-header":""}}}"#, "HTTP token"),
        (#"{"type":"object","properties":{"a":{"type":"string","x-mcp-header":"A B"}}}"#, "HTTP token"),
        (
            #"{"type":"object","properties":{"a":{"type":"string","x-mcp-header":"Id"},"b":{"type":"string","x-mcp-header":"ID"}}}"#,
            "used twice"
        ),
    ])
    func refusesMisplacedHeaderAnnotations(_ schema: String, _ reason: String) {
        var c = Catalog()
        do {
            try c.addTool(
                name: "bad", title: nil, description: nil, inputSchema: schema, outputSchema: nil, annotations: nil)
            Issue.record("accepted \(schema)")
        } catch {
            #expect(error.description.contains("tool 'bad': x-mcp-header"), "\(error)")
            #expect(error.description.contains(reason), "\(error)")
        }
        #expect(c.tool(named: "bad") == nil)
    }
}

struct Base64Tests {
    @Test func roundTrips() {
        for n in 0..<10 {
            let data = (0..<n).map { UInt8($0 * 37 & 0xFF) }
            #expect(Base64.decode(Base64.encode(data)) == data)
        }
        #expect(Base64.encode(Array("Hello, 世界".utf8)) == "SGVsbG8sIOS4lueVjA==")
        #expect(Base64.decode("abc") == nil)
    }
}

struct JSONWriterTests {
    @Test func writesObjectKeysInSortedOrder() {
        let error = JSONRPC.error(id: .int(3), code: JSONRPC.invalidRequest, message: "no")
        #expect(JSONWriter.string(error) == #"{"error":{"code":-32600,"message":"no"},"id":3,"jsonrpc":"2.0"}"#)
        let nested: JSONValue = ["b": ["z": 1, "a": [["y": 2, "x": 3]]], "a": nil, "B": true, "é": 0, "_": 1]
        #expect(JSONWriter.string(nested) == #"{"B":true,"_":1,"a":null,"b":{"a":[{"x":3,"y":2}],"z":1},"é":0}"#)
    }

    /// Dictionaries built in different orders, and of different sizes (so of different hash layouts), must
    /// still come out as the same bytes.
    @Test(arguments: [2, 9, 40, 300])
    func theSameObjectIsAlwaysTheSameBytes(keyCount: Int) {
        let keys = (0..<keyCount).map { "key\($0 * 7919 % 1000)-\($0)" }
        var forward: [String: JSONValue] = [:]
        for (i, key) in keys.enumerated() { forward[key] = .int(Int64(i)) }
        var backward: [String: JSONValue] = [:]
        for (i, key) in keys.enumerated().reversed() { backward[key] = .int(Int64(i)) }
        var grown: [String: JSONValue] = Dictionary(minimumCapacity: 4 * keyCount)
        for (i, key) in keys.enumerated().shuffled() { grown[key] = .int(Int64(i)) }
        let text = JSONWriter.string(.object(forward))
        #expect(JSONWriter.string(.object(backward)) == text)
        #expect(JSONWriter.string(.object(grown)) == text)
        let written = keys.sorted().map { key in "\"\(key)\":\(keys.firstIndex(of: key)!)" }
        #expect(text == "{" + written.joined(separator: ",") + "}")
    }
}
