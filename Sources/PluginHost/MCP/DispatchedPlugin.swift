import MCPProtocol

/// What the dispatcher needs of a plugin: its identity and declarations, and calls it can start, cancel and
/// check. `PluginInstance` is the real one (a loaded `.so`); the unit tests give the dispatcher a fake, so the
/// protocol is tested without a shared object, a socket or a thread pool.
protocol DispatchedPlugin: AnyObject, Sendable {
    var serverName: String { get }
    var serverVersion: String { get }
    var serverTitle: String? { get }
    var instructions: String? { get }
    /// The declarations as of now (a list-changed notification may replace them).
    var catalog: Catalog { get }
    /// Which method families the plugin has handlers for, declared items or not (advertised as capabilities).
    var handlers: PluginHandlers { get }

    /// A call object that `runInline` or `submit` runs; split so the caller can wire it up before any event fires.
    func makeCall(
        kind: CallKind, arguments: [String: JSONValue], observer: any CallObserver, maxOutputBytes: Int,
        input: RetryInput
    ) -> PluginCall
    /// Whether the call may run on the calling (network) thread.
    func mayRunInline(_ tool: Catalog.Tool) -> Bool
    func runInline(_ call: PluginCall)
    func submit(_ call: PluginCall)
    func cancel(_ call: PluginCall)
    /// Called some time after a call's deadline passed, to count it as stuck if its handler still runs.
    func checkOverrun(_ call: PluginCall)
    func log(_ line: String)
    /// Registers a handler for the plugin's list-changed and resource-updated events (`MCPP_LIST_*` bits, a URI).
    func onChange(_ handler: @escaping @Sendable (_ lists: UInt32, _ uri: String?) -> Void)
}

/// The method families a plugin serves.
struct PluginHandlers: OptionSet, Sendable {
    let rawValue: UInt8
    init(rawValue: UInt8) { self.rawValue = rawValue }
    static let tools = PluginHandlers(rawValue: 1)
    static let resources = PluginHandlers(rawValue: 2)
    static let prompts = PluginHandlers(rawValue: 4)
    static let completions = PluginHandlers(rawValue: 8)
}

extension PluginInstance: DispatchedPlugin {
    var handlers: PluginHandlers {
        let table = self.table
        var handlers: PluginHandlers = []
        if table.call_tool != nil { handlers.insert(.tools) }
        if table.read_resource != nil { handlers.insert(.resources) }
        if table.get_prompt != nil { handlers.insert(.prompts) }
        if hasCompletions { handlers.insert(.completions) }
        return handlers
    }

    func onChange(_ handler: @escaping @Sendable (UInt32, String?) -> Void) {
        changeHandlers.withLock { $0.append(handler) }
    }
}
