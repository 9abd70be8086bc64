@_exported import PluginABI

/// A whole plugin described as Swift values: its identity, threading model, and the tools, resources,
/// resource templates and prompts it serves.
///
/// Export it from your plugin module with the ABI's one entry point:
///
/// ```swift
/// let plugin = PluginDefinition(name: "my-plugin", version: "1.0.0") {
///     Tool("shout", description: "Upper-cases text", inputSchema: #"{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}"#) { call in
///         .text(try call.string("text").uppercased())
///     }
/// }
///
/// @c(mcpp_negotiate_v1)
/// public func mcppNegotiateV1(_ n: UnsafeMutablePointer<mcpp_negotiation>?) -> mcpp_status {
///     plugin.negotiate(n)
/// }
/// ```
public final class PluginDefinition: Sendable {
    public let name: String
    public let version: String
    public let title: String?
    public let instructions: String?
    public let threading: Threading
    let tools: [Tool]
    let resources: [Resource]
    let templates: [ResourceTemplate]
    let prompts: [Prompt]
    let completer: Completer?
    let onCreate: (@Sendable (_ config: String) throws -> Void)?
    let healthCheck: (@Sendable () -> HealthStatus)?
    let listCache: [ListCache]

    /// How the host may call handlers.
    public enum Threading: Sendable {
        /// One handler at a time.
        case serial
        /// Up to `max` handlers at once (0: the host's default).
        case concurrent(max: Int = 0)
    }

    /// - Parameters:
    ///   - onCreate: validates the plugin configuration (JSON text); a thrown error fails startup with its message.
    ///   - health: the answer to the host's health probe.
    ///   - completions: values for a prompt or resource-template argument being typed.
    ///   - listCache: cache hints for the lists (2026-07-28 `ttlMs` and `cacheScope`; default 0 / private).
    public init(
        name: String, version: String, title: String? = nil, instructions: String? = nil,
        threading: Threading = .concurrent(), onCreate: (@Sendable (_ config: String) throws -> Void)? = nil,
        health: (@Sendable () -> HealthStatus)? = nil, completions: Completer? = nil, listCache: [ListCache] = [],
        @PluginBuilder _ items: () -> [PluginItem]
    ) {
        self.name = name
        self.version = version
        self.title = title
        self.instructions = instructions
        self.threading = threading
        self.onCreate = onCreate
        self.healthCheck = health
        self.completer = completions
        self.listCache = listCache
        var tools: [Tool] = []
        var resources: [Resource] = []
        var templates: [ResourceTemplate] = []
        var prompts: [Prompt] = []
        for item in items() {
            switch item {
            case .tool(let t): tools.append(t)
            case .resource(let r): resources.append(r)
            case .template(let t): templates.append(t)
            case .prompt(let p): prompts.append(p)
            }
        }
        self.tools = tools
        self.resources = resources
        self.templates = templates
        self.prompts = prompts
    }

    /// The body of `mcpp_negotiate_v1`: installs this definition and hands the host its static table.
    public func negotiate(_ n: UnsafeMutablePointer<mcpp_negotiation>?) -> mcpp_status {
        guard let n else { return MCPP_E_INVALID }
        let size1_0 =
            MemoryLayout<mcpp_negotiation>.offset(of: \mcpp_negotiation.plugin)! + MemoryLayout<UnsafeRawPointer>.size
        guard Int(n.pointee.struct_size) >= size1_0 else { return MCPP_E_INVALID }
        Runtime.install(self)
        n.pointee.plugin_abi_minor = UInt32(MCPP_ABI_MINOR)
        n.pointee.plugin = Runtime.table
        guard n.pointee.host_abi_major == UInt32(MCPP_ABI_MAJOR), n.pointee.host_abi_minor >= UInt32(MCPP_ABI_MINOR)
        else { return MCPP_E_VERSION }
        return MCPP_OK
    }
}

/// A cache hint for some of the plugin's lists: 2026-07-28 clients may reuse a page of them for `ttlMs`
/// milliseconds within `scope` (`.resources` covers resources/list and resources/templates/list).
public struct ListCache: Sendable {
    public var lists: ListKinds
    public var ttlMs: Int64
    public var scope: CacheScope

    public init(_ lists: ListKinds, ttlMs: Int64, scope: CacheScope = .private) {
        self.lists = lists
        self.ttlMs = ttlMs
        self.scope = scope
    }
}

/// One declaration inside a `PluginDefinition`.
public enum PluginItem: Sendable {
    case tool(Tool)
    case resource(Resource)
    case template(ResourceTemplate)
    case prompt(Prompt)
}

@resultBuilder
public enum PluginBuilder {
    public static func buildExpression(_ t: Tool) -> [PluginItem] { [.tool(t)] }
    public static func buildExpression(_ r: Resource) -> [PluginItem] { [.resource(r)] }
    public static func buildExpression(_ t: ResourceTemplate) -> [PluginItem] { [.template(t)] }
    public static func buildExpression(_ p: Prompt) -> [PluginItem] { [.prompt(p)] }
    public static func buildBlock(_ parts: [PluginItem]...) -> [PluginItem] { parts.flatMap { $0 } }
    public static func buildArray(_ parts: [[PluginItem]]) -> [PluginItem] { parts.flatMap { $0 } }
    public static func buildOptional(_ part: [PluginItem]?) -> [PluginItem] { part ?? [] }
    public static func buildEither(first: [PluginItem]) -> [PluginItem] { first }
    public static func buildEither(second: [PluginItem]) -> [PluginItem] { second }
}

/// The plugin's answer to a health probe.
public enum HealthStatus: Sendable {
    case healthy(String = "ok")
    case unhealthy(String)
}

/// Completion values for an argument: `(ref, argument, partial value) -> values`.
public typealias Completer = @Sendable (_ ref: CompletionRef, _ argument: String, _ value: String) -> [String]

/// What a completion request refers to.
public enum CompletionRef: Sendable, Equatable {
    case prompt(String)
    case resourceTemplate(String)
}
