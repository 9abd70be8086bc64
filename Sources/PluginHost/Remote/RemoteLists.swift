import Dispatch
import Locking
import MCPProtocol
import PluginABI

/// Another MCP server's lists, read over JSON-RPC: what the bridge serves for its program (docs/servers.md) and
/// what the gateway merges from its backends (docs/gateway.md). Each list is read page by page and kept as the
/// server sent it; `add(to:)` turns the items into catalog entries.
struct RemoteLists: Sendable {
    var tools: [JSONValue] = []
    var resources: [JSONValue] = []
    var templates: [JSONValue] = []
    var prompts: [JSONValue] = []
    /// The 2026-07-28 cache hints each list came with (the shortest ttlMs and the narrowest scope of its pages);
    /// a list without them is not here.
    var hints: [Catalog.ListKind: (ttlMs: Int64, scope: String)] = [:]

    struct ReadError: Error, Sendable {
        var message: String
    }

    /// Sends one request and hears its answer once.
    typealias Send = (
        _ method: String, _ params: [String: JSONValue],
        _ done: @escaping @Sendable (Result<JSONValue, ProgramRPCError>) -> Void
    ) -> Void

    /// The families `handlers` names, every page of each (a family declared without one of its list methods,
    /// resources without templates, reads as empty).
    static func read(_ handlers: PluginHandlers, send: Send, log: (String) -> Void) throws(ReadError) -> RemoteLists {
        var lists = RemoteLists()
        func read(_ method: String, _ key: String, _ kind: Catalog.ListKind) throws(ReadError) -> [JSONValue] {
            var hint: (ttlMs: Int64, scope: String)?
            let items = try readList(method, key: key, send, log) { h in
                hint =
                    hint.map {
                        (min($0.ttlMs, h.ttlMs), $0.scope == "private" || h.scope == "private" ? "private" : "public")
                    } ?? h
            }
            if let hint { lists.hints[kind] = hint }
            return items
        }
        if handlers.contains(.tools) { lists.tools = try read("tools/list", "tools", .tools) }
        if handlers.contains(.resources) {
            lists.resources = try read("resources/list", "resources", .resources)
            lists.templates = try read("resources/templates/list", "resourceTemplates", .templates)
        }
        if handlers.contains(.prompts) { lists.prompts = try read("prompts/list", "prompts", .prompts) }
        return lists
    }

    /// Every page of one list (`tools/list`, ...), blocking until the last answer.
    static func readList(
        _ method: String, key: String, _ send: Send, _ log: (String) -> Void,
        hint: ((ttlMs: Int64, scope: String)) -> Void = { _ in }
    ) throws(ReadError) -> [JSONValue] {
        var items: [JSONValue] = []
        var cursor: String?
        for _ in 0..<1000 {
            var params: [String: JSONValue] = [:]
            if let cursor { params["cursor"] = .string(cursor) }
            switch wait(method, params, send) {
            case .failure(let e) where e.code == -32601:
                log("\(method): the server answers 'method not found'; serving none")
                return items
            case .failure(let e): throw ReadError(message: "\(method) failed: \(e.code) \(e.message)")
            case .success(let page):
                guard case .array(let got) = page[key] ?? .array([]) else {
                    throw ReadError(message: "\(method): '\(key)' is not an array")
                }
                items += got
                if let ttl = page["ttlMs"]?.intValue, let scope = page["cacheScope"]?.stringValue {
                    hint((max(0, ttl), scope == "public" ? "public" : "private"))
                }
                guard let next = page["nextCursor"]?.stringValue, !next.isEmpty else { return items }
                cursor = next
            }
        }
        throw ReadError(message: "\(method): more than 1000 pages")
    }

    /// Sends one request and waits for its answer.
    static func wait(_ method: String, _ params: [String: JSONValue], _ send: Send) -> Result<
        JSONValue, ProgramRPCError
    > {
        let done = DispatchSemaphore(value: 0)
        let answer = Locked<Result<JSONValue, ProgramRPCError>?>(nil)
        send(method, params) { r in
            answer.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        return answer.withLock { $0 }!
    }

    /// One request's result, or why there is none.
    static func readOne(_ method: String, _ send: Send) throws(ReadError) -> JSONValue {
        switch wait(method, [:], send) {
        case .success(let v): return v
        case .failure(let e): throw ReadError(message: "\(method) failed: \(e.code) \(e.message)")
        }
    }

    /// Adds every item to `catalog`; `toolName` and `promptName` give the name each is served under (the gateway
    /// prefixes them) or throw why it cannot be served. An item the catalog refuses (a duplicate, a bad schema, a
    /// bad name) goes to `note` and is left out; the rest are added.
    func add(
        to catalog: inout Catalog,
        toolName: (String) throws(Catalog.DeclarationError) -> String = { $0 },
        promptName: (String) throws(Catalog.DeclarationError) -> String = { $0 },
        note: (Catalog.DeclarationError) -> Void
    ) {
        func text(_ v: JSONValue?) -> String? {
            guard let v, v != .null else { return nil }
            return JSONWriter.string(v)
        }
        for t in tools {
            guard let name = t["name"]?.stringValue else { continue }
            do {
                try catalog.addTool(
                    name: try toolName(name), title: t["title"]?.stringValue,
                    description: t["description"]?.stringValue, inputSchema: text(t["inputSchema"]),
                    outputSchema: text(t["outputSchema"]), annotations: text(t["annotations"]))
            } catch { note(error) }
        }
        for r in resources {
            guard let uri = r["uri"]?.stringValue else { continue }
            do {
                try catalog.addResource(
                    uri: uri, name: r["name"]?.stringValue ?? uri, title: r["title"]?.stringValue,
                    description: r["description"]?.stringValue, mimeType: r["mimeType"]?.stringValue,
                    size: r["size"]?.intValue)
            } catch { note(error) }
        }
        for r in templates {
            guard let t = r["uriTemplate"]?.stringValue else { continue }
            do {
                try catalog.addTemplate(
                    uriTemplate: t, name: r["name"]?.stringValue ?? t, title: r["title"]?.stringValue,
                    description: r["description"]?.stringValue, mimeType: r["mimeType"]?.stringValue)
            } catch { note(error) }
        }
        for p in prompts {
            guard let name = p["name"]?.stringValue else { continue }
            var declared: [JSONValue] = []
            if case .array(let a) = p["arguments"] { declared = a }
            let arguments: [Catalog.PromptArgument] = declared.compactMap { a in
                guard let n = a["name"]?.stringValue else { return nil }
                return Catalog.PromptArgument(
                    name: n, title: a["title"]?.stringValue, description: a["description"]?.stringValue,
                    required: a["required"]?.boolValue ?? false)
            }
            do {
                try catalog.addPrompt(
                    name: try promptName(name), title: p["title"]?.stringValue,
                    description: p["description"]?.stringValue, arguments: arguments)
            } catch { note(error) }
        }
    }
}

/// How another server's answer to a call becomes the call's outcome (the bridge's program, a gateway backend).
enum RemoteOutcome {
    /// `size`: the answer's length as received (nil: measured here).
    static func finish(
        _ call: PluginCall, kind: CallKind, _ result: Result<JSONValue, ProgramRPCError>, size: Int?, who: String
    ) {
        switch result {
        case .success(let value):
            guard case .object(var o) = value else {
                _ = call.finish(with: .internalError("\(who)'s result is not an object"))
                return
            }
            o.removeValue(forKey: "_meta")
            o.removeValue(forKey: "resultType")
            let size = size ?? JSONWriter.serialize(value).count
            if case .resource = kind, o["contents"] == nil {
                _ = call.finish(with: .internalError("\(who)'s resources/read result has no contents"))
                return
            }
            _ = call.finish(with: .result(o), size: size)
        case .failure(let e):
            switch (e.code, kind) {
            case (-32002, .resource), (-32602, .resource):
                _ = call.finish(with: .notFound(e.message))
            case (-32602, _):
                _ = call.finish(with: .invalidParams(e.message))
            case (JSONRPC.missingClientCapability, _):
                // The server needs an input capability the client did not declare: the client hears it in its
                // own era (-32021 or -32602, with requiredCapabilities).
                _ = call.finish(
                    with: .needsCapability(e.message, missing: e.data?["requiredCapabilities"] ?? [:]))
            default:
                _ = call.finish(with: .internalError("\(who) answered \(e.code): \(e.message)"))
            }
        }
    }

    /// The JSON-RPC method and params that carry `call` to another server, under `name` (a tool's or a prompt's
    /// name there; the gateway strips its prefix).
    static func request(for call: PluginCall, name: String? = nil) -> (String, [String: JSONValue]) {
        switch call.kind {
        case .tool(let n):
            return ("tools/call", ["name": .string(name ?? n), "arguments": .object(call.arguments)])
        case .resource(let uri, _, _):
            return ("resources/read", ["uri": .string(uri)])
        case .prompt(let n):
            return ("prompts/get", ["name": .string(name ?? n), "arguments": .object(call.arguments)])
        case .complete(let refKind, let ref, let argument, let value):
            let r: JSONValue =
                refKind == MCPP_REF_PROMPT
                ? ["type": "ref/prompt", "name": .string(name ?? ref)] : ["type": "ref/resource", "uri": .string(ref)]
            var p: [String: JSONValue] = ["ref": r, "argument": ["name": .string(argument), "value": .string(value)]]
            if !call.arguments.isEmpty { p["context"] = ["arguments": .object(call.arguments)] }
            return ("completion/complete", p)
        }
    }
}
