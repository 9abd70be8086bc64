/// The 2026-07-28 rules for a request: per-request `_meta` and the headers that mirror the body.
public enum ModernRequestRules {
    public static let metaVersionKey = "io.modelcontextprotocol/protocolVersion"
    public static let metaCapabilitiesKey = "io.modelcontextprotocol/clientCapabilities"
    public static let metaClientInfoKey = "io.modelcontextprotocol/clientInfo"
    public static let metaLogLevelKey = "io.modelcontextprotocol/logLevel"
    public static let metaServerInfoKey = "io.modelcontextprotocol/serverInfo"

    /// Methods whose `Mcp-Name` header mirrors a body field, and which field.
    public static func nameField(for method: String) -> String? {
        switch method {
        case "tools/call", "prompts/get": return "name"
        case "resources/read": return "uri"
        default: return nil
        }
    }

    /// The protocol version a request's `_meta` declares, if any.
    public static func declaredVersion(_ params: [String: JSONValue]) -> String? {
        params["_meta"]?[metaVersionKey]?.stringValue
    }

    /// Checks a modern request's `_meta` and mirrored headers.
    ///
    /// - Parameters:
    ///   - method: the body's `method`.
    ///   - params: the body's `params`.
    ///   - header: looks up a request header by name, case-insensitively.
    /// - Returns: the error to answer with, or nil when the request is well-formed.
    public static func validate(method: String, params: [String: JSONValue], header: (String) -> String?)
        -> ProtocolError?
    {
        let meta = params["_meta"]?.objectValue
        guard let bodyVersion = meta?[metaVersionKey]?.stringValue else {
            return .invalidParams("params._meta[\"\(metaVersionKey)\"] is required")
        }
        guard let headerVersion = header("MCP-Protocol-Version") else {
            return .headerMismatch("the MCP-Protocol-Version header is required")
        }
        guard headerVersion == bodyVersion else {
            return .headerMismatch(
                "MCP-Protocol-Version header value '\(headerVersion)' does not match body value '\(bodyVersion)'")
        }
        guard ProtocolVersion.isModern(bodyVersion) else { return .unsupportedVersion(bodyVersion) }
        guard let headerMethod = header("Mcp-Method") else {
            return .headerMismatch("the Mcp-Method header is required")
        }
        guard headerMethod == method else {
            return .headerMismatch("Mcp-Method header value '\(headerMethod)' does not match body value '\(method)'")
        }
        if let field = nameField(for: method) {
            guard let bodyName = params[field]?.stringValue else {
                return .invalidParams("params.\(field) must be a string")
            }
            guard let rawName = header("Mcp-Name") else {
                return .headerMismatch("the Mcp-Name header is required for \(method)")
            }
            guard let headerName = decodeHeaderValue(rawName) else {
                return .headerMismatch("the Mcp-Name header value is not valid")
            }
            guard headerName == bodyName else {
                return .headerMismatch("Mcp-Name header value '\(headerName)' does not match body value '\(bodyName)'")
            }
        }
        guard case .object = meta?[metaCapabilitiesKey] else {
            return .invalidParams("params._meta[\"\(metaCapabilitiesKey)\"] is required and must be an object")
        }
        if let level = meta?[metaLogLevelKey] {
            guard let name = level.stringValue, LogLevel.severity(name) != nil else {
                return .invalidParams("params._meta[\"\(metaLogLevelKey)\"] is not a log level")
            }
        }
        return nil
    }

    /// Checks `Mcp-Param-{Name}` headers against the arguments for the tool's `x-mcp-header` properties.
    ///
    /// - Parameters:
    ///   - mirrored: header name suffix → the chain of `properties` keys to the value, from the input schema.
    ///   - arguments: the call's arguments.
    public static func validateParamHeaders(
        mirrored: [(header: String, path: [String])], arguments: [String: JSONValue], header: (String) -> String?
    ) -> ProtocolError? {
        for (name, path) in mirrored {
            let argument = path.joined(separator: ".")
            let expected = mirroredValue(path, in: arguments)
            let raw = header("Mcp-Param-" + name)
            switch (expected, raw) {
            case (nil, nil): continue
            case (nil, .some):
                // A router may have acted on a header whose value the body does not hold.
                return .headerMismatch(
                    "the Mcp-Param-\(name) header is given but '\(argument)' is not in the arguments")
            case (.some, nil):
                return .headerMismatch("the Mcp-Param-\(name) header is required when '\(argument)' is given")
            case (.some(let e), .some(let r)):
                guard let decoded = decodeHeaderValue(r) else {
                    return .headerMismatch("the Mcp-Param-\(name) header value is not valid")
                }
                if decoded == e { continue }
                if let a = Double(decoded), let b = Double(e), a == b { continue }
                return .headerMismatch("Mcp-Param-\(name) header value '\(decoded)' does not match body value '\(e)'")
            }
        }
        return nil
    }

    /// The text an `x-mcp-header` argument puts in its header (nil when the argument is absent or not a scalar).
    static func mirroredValue(_ path: [String], in arguments: [String: JSONValue]) -> String? {
        var value: JSONValue? = .object(arguments)
        for key in path { value = value?[key] }
        switch value {
        case .none, .some(.null): return nil
        case .some(.string(let s)): return s
        case .some(.int(let i)): return String(i)
        case .some(.double(let d)): return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)"
        case .some(.bool(let b)): return b ? "true" : "false"
        default: return nil
        }
    }

    /// The `Mcp-Param-*` headers a client sends with a call to a tool whose schema mirrors arguments (what the
    /// gateway sends its backends): plain when the text is visible ASCII without leading or trailing spaces,
    /// else `=?base64?...?=` of its UTF-8.
    public static func paramHeaders(mirrored: [(header: String, path: [String])], arguments: [String: JSONValue])
        -> [(String, String)]
    {
        mirrored.compactMap { name, path in
            guard let text = mirroredValue(path, in: arguments) else { return nil }
            let plain =
                text.utf8.allSatisfy { (0x20...0x7E).contains($0) } && text.first != " " && text.last != " "
                && !(text.hasPrefix("=?base64?") && text.hasSuffix("?="))
            return ("Mcp-Param-" + name, plain ? text : "=?base64?" + Base64.encode(Array(text.utf8)) + "?=")
        }
    }

    /// Decodes a mirrored header value: plain visible ASCII, or `=?base64?…?=` holding UTF-8.
    /// Returns nil for invalid characters or invalid base64.
    public static func decodeHeaderValue(_ value: String) -> String? {
        let prefix = "=?base64?"
        let suffix = "?="
        if value.hasPrefix(prefix), value.hasSuffix(suffix), value.utf8.count >= prefix.utf8.count + suffix.utf8.count {
            let inner = String(value.dropFirst(prefix.count).dropLast(suffix.count))
            guard let bytes = Base64.decode(inner) else { return nil }
            return String(validating: bytes, as: UTF8.self)
        }
        for b in value.utf8 where !(b == 0x09 || (b >= 0x20 && b <= 0x7E)) { return nil }
        return value
    }
}
