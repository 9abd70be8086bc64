/// A tool: its declaration and the handler that answers `tools/call`.
public struct Tool: Sendable {
    public let name: String
    public let title: String?
    public let description: String?
    /// JSON Schema of the arguments, as JSON text (`{"type":"object"}` when nil).
    public let inputSchema: String?
    /// JSON Schema of `structuredContent`, as JSON text.
    public let outputSchema: String?
    /// ToolAnnotations as JSON text.
    public let annotations: String?
    /// The handler never blocks and returns within microseconds (lets the host skip a thread hop).
    public let nonblocking: Bool
    let handler: @Sendable (Call) async throws -> ToolResult

    public init(
        _ name: String, title: String? = nil, description: String? = nil, inputSchema: String? = nil,
        outputSchema: String? = nil, annotations: String? = nil, nonblocking: Bool = false,
        handler: @escaping @Sendable (Call) async throws -> ToolResult
    ) {
        self.name = name
        self.title = title
        self.description = description
        self.inputSchema = inputSchema
        self.outputSchema = outputSchema
        self.annotations = annotations
        self.nonblocking = nonblocking
        self.handler = handler
    }
}

/// A fixed resource and the handler that answers `resources/read` for it.
public struct Resource: Sendable {
    public let uri: String
    public let name: String
    public let title: String?
    public let description: String?
    public let mimeType: String?
    let handler: @Sendable (Call) async throws -> [ResourceContents]

    public init(
        _ uri: String, name: String, title: String? = nil, description: String? = nil, mimeType: String? = nil,
        handler: @escaping @Sendable (Call) async throws -> [ResourceContents]
    ) {
        self.uri = uri
        self.name = name
        self.title = title
        self.description = description
        self.mimeType = mimeType
        self.handler = handler
    }
}

/// A family of resources named by an RFC 6570 template; `call.string(variable)` reads its variables.
public struct ResourceTemplate: Sendable {
    public let uriTemplate: String
    public let name: String
    public let title: String?
    public let description: String?
    public let mimeType: String?
    let handler: @Sendable (Call) async throws -> [ResourceContents]

    public init(
        _ uriTemplate: String, name: String, title: String? = nil, description: String? = nil, mimeType: String? = nil,
        handler: @escaping @Sendable (Call) async throws -> [ResourceContents]
    ) {
        self.uriTemplate = uriTemplate
        self.name = name
        self.title = title
        self.description = description
        self.mimeType = mimeType
        self.handler = handler
    }
}

/// A prompt argument.
public struct PromptArgument: Sendable {
    public let name: String
    public let description: String?
    public let required: Bool

    public init(_ name: String, description: String? = nil, required: Bool = false) {
        self.name = name
        self.description = description
        self.required = required
    }
}

/// A prompt and the handler that answers `prompts/get`.
public struct Prompt: Sendable {
    public let name: String
    public let title: String?
    public let description: String?
    public let arguments: [PromptArgument]
    let handler: @Sendable (Call) async throws -> PromptResult

    public init(
        _ name: String, title: String? = nil, description: String? = nil, arguments: [PromptArgument] = [],
        handler: @escaping @Sendable (Call) async throws -> PromptResult
    ) {
        self.name = name
        self.title = title
        self.description = description
        self.arguments = arguments
        self.handler = handler
    }
}

/// One content block of a tool result or prompt message.
public enum Content: Sendable {
    case text(String)
    case image(data: [UInt8], mimeType: String)
    case audio(data: [UInt8], mimeType: String)
    case resourceText(uri: String, mimeType: String, text: String)
    case resourceBlob(uri: String, mimeType: String, data: [UInt8])
    /// A content block given as JSON text, for kinds without a case here.
    case json(String)
}

/// The result of a tool call.
public struct ToolResult: Sendable {
    public var content: [Content]
    /// `structuredContent` as JSON text (an object).
    public var structured: String?
    public var isError: Bool

    public init(content: [Content], structured: String? = nil, isError: Bool = false) {
        self.content = content
        self.structured = structured
        self.isError = isError
    }

    public static func text(_ s: String) -> ToolResult { ToolResult(content: [.text(s)]) }
    public static func error(_ message: String) -> ToolResult { ToolResult(content: [.text(message)], isError: true) }
}

/// Contents of a resource read: text or binary, for the requested URI unless `uri` says otherwise.
public enum ResourceContents: Sendable {
    case text(String, uri: String? = nil, mimeType: String? = nil)
    case blob([UInt8], uri: String? = nil, mimeType: String? = nil)
}

/// A prompt message.
public struct PromptMessage: Sendable {
    public var role: Role
    public var content: Content

    public enum Role: Sendable {
        case user, assistant
    }

    public static func user(_ c: Content) -> PromptMessage { PromptMessage(role: .user, content: c) }
    public static func assistant(_ c: Content) -> PromptMessage { PromptMessage(role: .assistant, content: c) }
}

/// The result of `prompts/get`.
public struct PromptResult: Sendable {
    public var description: String?
    public var messages: [PromptMessage]

    public init(description: String? = nil, messages: [PromptMessage]) {
        self.description = description
        self.messages = messages
    }
}

/// Errors a handler throws to choose the protocol outcome. Any other error thrown by a tool becomes a
/// tool error result (`isError: true`) with the error's description, so the model can see it.
public enum PluginError: Error, Sendable {
    case notFound(String)
    case invalidParams(String)
    case internalError(String)
}

/// A tool failure the model should see: the call ends with a tool error result carrying `message`.
public struct ToolError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
