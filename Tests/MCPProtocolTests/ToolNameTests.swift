import Testing

@testable import MCPProtocol

/// tools.mdx: a tool's name is 1-128 of A-Z a-z 0-9 _ - . (docs/protocol.md, 2025-11-25 #31).
struct ToolNameTests {
    private func add(_ name: String) -> String? {
        var catalog = Catalog()
        do {
            try catalog.addTool(
                name: name, title: nil, description: nil, inputSchema: nil, outputSchema: nil, annotations: nil)
            return nil
        } catch {
            return error.description
        }
    }

    @Test func theSpecsExamplesAndTheLimitsAreAccepted() {
        for name in ["getUser", "DATA_EXPORT_v2", "admin.tools.list", "a", String(repeating: "x", count: 128)] {
            #expect(add(name) == nil, "\(name)")
        }
    }

    @Test func badNamesAreRefusedNamingTheRule() {
        #expect(add(String(repeating: "x", count: 129))?.contains("longer than 128") == true)
        for name in ["get user", "a,b", "naïve", "slash/name", "tab\tname", "colon:name"] {
            let error = add(name)
            #expect(error?.contains("outside A-Z a-z 0-9 _ - .") == true, "\(name): \(error ?? "accepted")")
        }
        #expect(add("")?.contains("empty name") == true)
    }
}
