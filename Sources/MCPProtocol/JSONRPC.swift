/// JSON-RPC 2.0 framing as MCP uses it.
public enum JSONRPC {
    public static let parseError: Int64 = -32700
    public static let invalidRequest: Int64 = -32600
    public static let methodNotFound: Int64 = -32601
    public static let invalidParams: Int64 = -32602
    public static let internalError: Int64 = -32603
    /// MCP 2025-11-25 and earlier: resource not found (replaced by -32602 in 2026-07-28).
    public static let legacyResourceNotFound: Int64 = -32002
    /// MCP 2026-07-28: HTTP headers do not match the body, or a required header is missing.
    /// The gateway's edge refused the request: too many from this client address (HTTP 429, docs/errors.md).
    public static let rateLimited: Int64 = -32010
    /// The gateway's edge refused the request: no valid bearer token (HTTP 401, docs/errors.md).
    public static let unauthorized: Int64 = -32011
    public static let headerMismatch: Int64 = -32020
    /// MCP 2026-07-28: a capability the request needs was not declared by the client.
    public static let missingClientCapability: Int64 = -32021
    /// MCP 2026-07-28: the requested protocol version is not supported.
    public static let unsupportedProtocolVersion: Int64 = -32022

    /// One decoded message body.
    public enum Message: Sendable, Equatable {
        case request(id: JSONValue, method: String, params: [String: JSONValue])
        case notification(method: String, params: [String: JSONValue])
        /// A response sent by the client: the answer to a server-to-client request (`result` or `error`).
        case response(id: JSONValue, result: JSONValue?, error: JSONValue?)
        /// An array body. MCP removed JSON-RPC batching in 2025-06-18.
        case batch(count: Int)
        /// Not a valid JSON-RPC message; `id` is set when one could be recovered.
        case invalid(reason: String, id: JSONValue?)
    }

    /// Classifies a parsed JSON body.
    public static func decode(_ value: JSONValue) -> Message {
        guard case .object(let o) = value else {
            if case .array(let a) = value { return .batch(count: a.count) }
            return .invalid(reason: "the body must be a JSON-RPC object, not \(value.typeName)", id: nil)
        }
        var id: JSONValue? = nil
        if let rawID = o["id"] {
            switch rawID {
            case .string, .int: id = rawID
            case .double(let d) where d == d.rounded(): id = rawID
            default: return .invalid(reason: "\"id\" must be a string or an integer", id: nil)
            }
        }
        guard o["jsonrpc"] == .string("2.0") else {
            return .invalid(reason: "\"jsonrpc\" must be \"2.0\"", id: id)
        }
        guard let methodValue = o["method"] else {
            if o["result"] != nil || o["error"] != nil, let id {
                return .response(id: id, result: o["result"], error: o["error"])
            }
            return .invalid(reason: "\"method\" is missing", id: id)
        }
        guard case .string(let method) = methodValue, !method.isEmpty else {
            return .invalid(reason: "\"method\" must be a non-empty string", id: id)
        }
        var params: [String: JSONValue] = [:]
        if let p = o["params"] {
            switch p {
            case .object(let po): params = po
            case .null: break
            default: return .invalid(reason: "\"params\" must be an object", id: id)
            }
        }
        if let id { return .request(id: id, method: method, params: params) }
        return .notification(method: method, params: params)
    }

    public static func result(id: JSONValue, _ result: JSONValue) -> JSONValue {
        .object(["jsonrpc": "2.0", "id": id, "result": result])
    }

    /// An error response; `id` nil serializes no id (for errors that cannot be tied to a request).
    public static func error(id: JSONValue?, code: Int64, message: String, data: JSONValue? = nil) -> JSONValue {
        var err: [String: JSONValue] = ["code": .int(code), "message": .string(message)]
        if let data { err["data"] = data }
        var o: [String: JSONValue] = ["jsonrpc": "2.0", "error": .object(err)]
        if let id { o["id"] = id }
        return .object(o)
    }

    /// A request (the server's own, to the client).
    public static func request(id: JSONValue, method: String, params: JSONValue) -> JSONValue {
        .object(["jsonrpc": "2.0", "id": id, "method": .string(method), "params": params])
    }

    public static func notification(method: String, params: JSONValue) -> JSONValue {
        .object(["jsonrpc": "2.0", "method": .string(method), "params": params])
    }
}
