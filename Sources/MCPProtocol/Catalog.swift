/// Everything a plugin declared: tools, resources, resource templates and prompts, already in wire form.
public struct Catalog: Sendable {
    public struct Tool: Sendable {
        public var name: String
        public var json: JSONValue
        /// `Mcp-Param-{header}` headers that mirror arguments (`x-mcp-header`), each with the chain of
        /// `properties` keys that leads to its value in the arguments.
        public var mirroredHeaders: [(header: String, path: [String])]
        /// The plugin promised the handler never blocks (MCPP_TOOL_NONBLOCKING).
        public var nonblocking: Bool
    }

    public struct Resource: Sendable {
        public var uri: String
        public var json: JSONValue
    }

    public struct Template: Sendable {
        public var template: URITemplate
        public var name: String
        public var json: JSONValue
    }

    public struct Prompt: Sendable {
        public var name: String
        public var json: JSONValue
        public var requiredArguments: [String]
    }

    public private(set) var tools: [Tool] = []
    public private(set) var resources: [Resource] = []
    public private(set) var templates: [Template] = []
    public private(set) var prompts: [Prompt] = []
    /// 2026-07-28 cache hints per list (ABI 1.1 `set_list_cache`): ttlMs and cacheScope ("private"/"public").
    public var cacheHints: [ListKind: (ttlMs: Int64, scope: String)] = [:]
    private var toolIndex: [String: Int] = [:]
    private var resourceIndex: [String: Int] = [:]
    private var promptIndex: [String: Int] = [:]

    public init() {}

    static func isToolNameByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."):
            return true
        default: return false
        }
    }

    public struct DeclarationError: Error, Sendable, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    // MARK: Declaring

    public mutating func addTool(
        name: String, title: String?, description: String?, inputSchema: String?, outputSchema: String?,
        annotations: String?, nonblocking: Bool = false
    ) throws(DeclarationError) {
        guard !name.isEmpty else { throw DeclarationError(description: "a tool has an empty name") }
        // tools.mdx (2025-11-25 and 2026-07-28): 1-128 of A-Z a-z 0-9 _ - . (clients and gateways rely on it).
        guard name.utf8.count <= 128 else {
            throw DeclarationError(description: "tool '\(name.prefix(40))...' has a name longer than 128 characters")
        }
        guard name.utf8.allSatisfy(Self.isToolNameByte) else {
            throw DeclarationError(
                description:
                    "tool '\(name)' has a character outside A-Z a-z 0-9 _ - . in its name (MCP's tool name rule)")
        }
        guard toolIndex[name] == nil else { throw DeclarationError(description: "tool '\(name)' is declared twice") }
        var o: [String: JSONValue] = ["name": .string(name)]
        if let title, !title.isEmpty { o["title"] = .string(title) }
        if let description, !description.isEmpty { o["description"] = .string(description) }
        var mirrored: [(header: String, path: [String])] = []
        if let inputSchema, !inputSchema.isEmpty {
            let schema = try Self.parseObject(inputSchema, what: "the input schema of tool '\(name)'")
            o["inputSchema"] = .raw(Array(inputSchema.utf8))
            mirrored = try Self.headerAnnotations(schema, tool: name)
        } else {
            o["inputSchema"] = ["type": "object"]
        }
        if let outputSchema, !outputSchema.isEmpty {
            _ = try Self.parseObject(outputSchema, what: "the output schema of tool '\(name)'")
            o["outputSchema"] = .raw(Array(outputSchema.utf8))
        }
        if let annotations, !annotations.isEmpty {
            _ = try Self.parseObject(annotations, what: "the annotations of tool '\(name)'")
            o["annotations"] = .raw(Array(annotations.utf8))
        }
        toolIndex[name] = tools.count
        tools.append(Tool(name: name, json: .object(o), mirroredHeaders: mirrored, nonblocking: nonblocking))
    }

    public mutating func addResource(
        uri: String, name: String, title: String?, description: String?, mimeType: String?, size: Int64?
    ) throws(DeclarationError) {
        guard !uri.isEmpty else { throw DeclarationError(description: "a resource has an empty uri") }
        guard !name.isEmpty else { throw DeclarationError(description: "resource '\(uri)' has an empty name") }
        guard resourceIndex[uri] == nil else {
            throw DeclarationError(description: "resource '\(uri)' is declared twice")
        }
        var o: [String: JSONValue] = ["uri": .string(uri), "name": .string(name)]
        if let title, !title.isEmpty { o["title"] = .string(title) }
        if let description, !description.isEmpty { o["description"] = .string(description) }
        if let mimeType, !mimeType.isEmpty { o["mimeType"] = .string(mimeType) }
        if let size, size >= 0 { o["size"] = .int(size) }
        resourceIndex[uri] = resources.count
        resources.append(Resource(uri: uri, json: .object(o)))
    }

    public mutating func addTemplate(
        uriTemplate: String, name: String, title: String?, description: String?, mimeType: String?
    ) throws(DeclarationError) {
        guard let t = URITemplate(uriTemplate) else {
            throw DeclarationError(description: "resource template '\(uriTemplate)' is not a valid URI template")
        }
        guard !name.isEmpty else {
            throw DeclarationError(description: "resource template '\(uriTemplate)' has an empty name")
        }
        guard !templates.contains(where: { $0.template.text == uriTemplate }) else {
            throw DeclarationError(description: "resource template '\(uriTemplate)' is declared twice")
        }
        var o: [String: JSONValue] = ["uriTemplate": .string(uriTemplate), "name": .string(name)]
        if let title, !title.isEmpty { o["title"] = .string(title) }
        if let description, !description.isEmpty { o["description"] = .string(description) }
        if let mimeType, !mimeType.isEmpty { o["mimeType"] = .string(mimeType) }
        templates.append(Template(template: t, name: name, json: .object(o)))
    }

    public struct PromptArgument: Sendable {
        public var name: String
        public var title: String?
        public var description: String?
        public var required: Bool
        public init(name: String, title: String?, description: String?, required: Bool) {
            self.name = name
            self.title = title
            self.description = description
            self.required = required
        }
    }

    public mutating func addPrompt(name: String, title: String?, description: String?, arguments: [PromptArgument])
        throws(DeclarationError)
    {
        guard !name.isEmpty else { throw DeclarationError(description: "a prompt has an empty name") }
        guard promptIndex[name] == nil else {
            throw DeclarationError(description: "prompt '\(name)' is declared twice")
        }
        var o: [String: JSONValue] = ["name": .string(name)]
        if let title, !title.isEmpty { o["title"] = .string(title) }
        if let description, !description.isEmpty { o["description"] = .string(description) }
        if !arguments.isEmpty {
            o["arguments"] = .array(
                arguments.map { a in
                    var ao: [String: JSONValue] = ["name": .string(a.name)]
                    if let t = a.title, !t.isEmpty { ao["title"] = .string(t) }
                    if let d = a.description, !d.isEmpty { ao["description"] = .string(d) }
                    if a.required { ao["required"] = true }
                    return .object(ao)
                })
        }
        promptIndex[name] = prompts.count
        prompts.append(
            Prompt(name: name, json: .object(o), requiredArguments: arguments.filter(\.required).map(\.name)))
    }

    /// The `x-mcp-header` annotations of an input schema (2026-07-28 "Custom Headers from Tool Parameters"),
    /// checked as a client must check them, so a tool no conforming client would accept is refused here with the
    /// reason: a non-empty token, unique ignoring case, on a property of type string, integer or boolean that is
    /// reached from the root through `properties` keys only (never through items, oneOf/anyOf/allOf/not,
    /// if/then/else, $ref or $defs).
    static func headerAnnotations(_ schema: JSONValue, tool: String) throws(DeclarationError) -> [(
        header: String, path: [String]
    )] {
        var found: [(header: String, path: [String])] = []
        var names: Set<String> = []
        // Values under these keywords are instances, not schemas: an "x-mcp-header" key there is data.
        let instanceKeywords: Set<String> = ["default", "const", "enum", "examples"]

        func fail(_ path: [String], _ why: String) -> DeclarationError {
            let place = path.isEmpty ? "the schema root" : "property '\(path.joined(separator: "."))'"
            return DeclarationError(description: "tool '\(tool)': x-mcp-header at \(place) \(why)")
        }

        func visit(_ node: JSONValue, path: [String], reachable: Bool) throws(DeclarationError) {
            switch node {
            case .array(let items):
                for item in items { try visit(item, path: path, reachable: false) }
            case .object(let o):
                if let annotation = o["x-mcp-header"] {
                    guard reachable, !path.isEmpty else {
                        throw fail(
                            path, "is not statically reachable (only a chain of 'properties' keys may lead to it)")
                    }
                    guard case .string(let header) = annotation, !header.isEmpty,
                        header.utf8.allSatisfy(Self.isTokenChar)
                    else {
                        throw fail(path, "must be a non-empty HTTP token (RFC 9110 tchar)")
                    }
                    guard case .string(let type) = o["type"], ["string", "integer", "boolean"].contains(type) else {
                        throw fail(path, "is only allowed on a property of type string, integer or boolean")
                    }
                    guard names.insert(header.lowercased()).inserted else {
                        throw fail(path, "'\(header)' is used twice (names are compared ignoring case)")
                    }
                    found.append((header, path))
                }
                for (key, value) in o where key != "x-mcp-header" && !instanceKeywords.contains(key) {
                    if key == "properties", case .object(let props) = value {
                        for (property, sub) in props { try visit(sub, path: path + [property], reachable: reachable) }
                    } else {
                        try visit(value, path: path, reachable: false)
                    }
                }
            default:
                break
            }
        }
        try visit(schema, path: [], reachable: true)
        return found.sorted { $0.path.lexicographicallyPrecedes($1.path) }
    }

    /// RFC 9110 tchar: ALPHA / DIGIT / one of !#$%&'*+-.^_`|~
    static func isTokenChar(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return Array("!#$%&'*+-.^_`|~".utf8).contains(b)
        }
    }

    private static func parseObject(_ text: String, what: String) throws(DeclarationError) -> JSONValue {
        let v: JSONValue
        do { v = try JSONParser.parse(text) } catch {
            throw DeclarationError(description: "\(what) is not valid JSON: \(error)")
        }
        guard case .object = v else { throw DeclarationError(description: "\(what) must be a JSON object") }
        return v
    }

    // MARK: Looking up

    public func tool(named name: String) -> Tool? { toolIndex[name].map { tools[$0] } }
    public func prompt(named name: String) -> Prompt? { promptIndex[name].map { prompts[$0] } }
    public func hasResource(_ uri: String) -> Bool { resourceIndex[uri] != nil }

    /// The first template that matches `uri`, with its variables.
    public func matchTemplate(_ uri: String) -> (Template, [String: String])? {
        for t in templates {
            if let vars = t.template.match(uri) { return (t, vars) }
        }
        return nil
    }

    public func template(withText text: String) -> Template? { templates.first { $0.template.text == text } }

    // MARK: Pagination

    public enum ListKind: Sendable, Hashable { case tools, resources, templates, prompts }

    /// One page of a list. The cursor is opaque to clients: base64 of the offset.
    public func page(_ kind: ListKind, cursor: String?, pageSize: Int) throws(ProtocolError) -> (
        items: [JSONValue], nextCursor: String?
    ) {
        let all: [JSONValue]
        switch kind {
        case .tools: all = tools.map(\.json)
        case .resources: all = resources.map(\.json)
        case .templates: all = templates.map(\.json)
        case .prompts: all = prompts.map(\.json)
        }
        var start = 0
        if let cursor {
            guard let bytes = Base64.decode(cursor), let text = String(validating: bytes, as: UTF8.self),
                text.hasPrefix("o:"), let n = Int(text.dropFirst(2)), n >= 0, n <= all.count
            else { throw ProtocolError.invalidParams("invalid cursor") }
            start = n
        }
        let end = min(all.count, start + max(1, pageSize))
        let next = end < all.count ? Base64.encode(Array("o:\(end)".utf8)) : nil
        return (Array(all[start..<end]), next)
    }
}
