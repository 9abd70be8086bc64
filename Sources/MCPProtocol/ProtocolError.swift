/// A request the engine rejects: the HTTP status and the JSON-RPC error to answer with.
public struct ProtocolError: Error, Sendable, Equatable {
    public var httpStatus: Int
    public var code: Int64
    public var message: String
    public var data: JSONValue?

    public init(httpStatus: Int, code: Int64, message: String, data: JSONValue? = nil) {
        self.httpStatus = httpStatus
        self.code = code
        self.message = message
        self.data = data
    }

    public static func headerMismatch(_ message: String) -> ProtocolError {
        ProtocolError(httpStatus: 400, code: JSONRPC.headerMismatch, message: "Header mismatch: " + message)
    }

    public static func invalidParams(_ message: String, httpStatus: Int = 400) -> ProtocolError {
        ProtocolError(httpStatus: httpStatus, code: JSONRPC.invalidParams, message: message)
    }

    public static func methodNotFound(_ method: String, httpStatus: Int) -> ProtocolError {
        ProtocolError(httpStatus: httpStatus, code: JSONRPC.methodNotFound, message: "Method not found: \(method)")
    }

    public static func unsupportedVersion(_ requested: String) -> ProtocolError {
        ProtocolError(
            httpStatus: 400, code: JSONRPC.unsupportedProtocolVersion,
            message: "Unsupported protocol version \(requested); this server speaks "
                + ProtocolVersion.modern.joined(separator: ", ") + " per request and "
                + ProtocolVersion.legacy.joined(separator: ", ") + " through initialize",
            data: ["supported": .array(ProtocolVersion.all.map { .string($0) }), "requested": .string(requested)])
    }

    /// The JSON-RPC error response for this error.
    public func response(id: JSONValue?) -> JSONValue {
        JSONRPC.error(id: id, code: code, message: message, data: data)
    }
}
