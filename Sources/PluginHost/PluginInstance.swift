import CHostSupport
import Contracts
import Dispatch
import Locking
import MCPProtocol
import PluginABI
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The created plugin: its instance pointer, its declarations and the threads its handlers run on.
///
/// Sendable without `@unchecked`: the plugin's table is a `let` copy inside `LoadedPlugin` (whose own note says
/// why its pointers may cross threads), the instance pointer is an atomic, and every other mutable property is
/// behind a lock.
public final class PluginInstance: Sendable {
    public let loaded: LoadedPlugin
    public let serverName: String
    public let serverVersion: String
    public let serverTitle: String?
    public let instructions: String?
    /// Most handlers that may run at once (1 for SERIAL plugins).
    public let concurrency: Int
    public let hasCompletions: Bool

    /// What create returned, as its address (a raw pointer is not Sendable; its bits are): set once in init
    /// before any handler can run, taken back by destroy.
    private let instanceAddress = Atomic<UInt>(0)
    private let catalogBox = Locked(Catalog())
    private let pool: HandlerPool
    private let stuckCalls = Locked<Set<UInt>>([])
    private let busyHandlers = Atomic<Int>(0)
    /// The health check in progress (its start, monotonic seconds) and whether destroy has begun.
    /// When the health or diagnose callback in progress started (nil: none), whether no new one may start
    /// (destroy began), and the destroy waiting for the one in progress to return.
    private let healthGate = Locked<(since: Double?, closed: Bool, destroyWaiting: DispatchSemaphore?)>(
        (nil, false, nil))
    /// One lazily started thread for health and diagnose callbacks.
    private let healthPool = HandlerPool(maxThreads: 1)
    private let describeLock = Locked<Void>(())
    /// The plugin's own series (the metrics extension) and the extension's table (static, never freed).
    let metrics = PluginMetricsRegistry()
    private let metricsTableAddress = Atomic<UInt>(0)
    var metricsTable: UnsafeRawPointer? { UnsafeRawPointer(bitPattern: metricsTableAddress.load(ordering: .acquiring)) }
    private let logSink: @Sendable (String) -> Void
    /// Called after the catalog changed (bits: MCPP_LIST_*), and when a resource changed (uri).
    let changeHandlers = Locked<[@Sendable (UInt32, String?) -> Void]>([])
    /// Keeps the plugin's change notifications in the order it sent them (a list change re-describes first).
    private let changes = ChangeSequencer()
    private let changeRelay = Locked<(@Sendable (PluginChange) -> Void)?>(nil)
    /// Called when every call slot is held by a call stuck past its deadline.
    public let onHung = Locked<(@Sendable (String) -> Void)?>(nil)

    /// The plugin's table, as read up to its `struct_size` when it was loaded.
    var table: mcpp_plugin { loaded.contents }

    private var instance: UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: instanceAddress.load(ordering: .acquiring))
    }

    /// Creates the plugin instance and reads its declarations.
    ///
    /// - Parameters:
    ///   - loaded: the negotiated plugin.
    ///   - config: the plugin configuration as JSON text.
    ///   - maxConcurrency: the operator's cap on handler threads.
    ///   - log: writes one line to the host's log.
    public init(loaded: LoadedPlugin, config: String, maxConcurrency: Int, log: @escaping @Sendable (String) -> Void)
        throws(HostFailure)
    {
        self.loaded = loaded
        self.logSink = log
        let table = loaded.contents
        func optionalText(_ value: mcpp_str) -> String? {
            text(value.ptr, value.len).flatMap { $0.isEmpty ? nil : $0 }
        }
        self.serverName = optionalText(table.name) ?? "plugin"
        self.serverVersion = optionalText(table.version) ?? "0.0.0"
        self.serverTitle = optionalText(table.title)
        self.instructions = optionalText(table.instructions)
        self.hasCompletions = table.complete != nil
        if table.threading == MCPP_THREADING_CONCURRENT {
            let declared = table.max_concurrency == 0 ? 16 : Int(table.max_concurrency)
            self.concurrency = max(1, min(declared, maxConcurrency))
        } else {
            self.concurrency = 1
        }
        self.pool = HandlerPool(maxThreads: concurrency)

        // The host table lives as long as the process (the ABI calls it static); it is never freed.
        let hostTable = makeHostTable(context: Unmanaged.passUnretained(self).toOpaque())
        metricsTableAddress.store(
            UInt(bitPattern: makeMetricsTable(context: Unmanaged.passUnretained(self).toOpaque())),
            ordering: .releasing)
        var errorText = ""
        var instanceOut: UnsafeMutableRawPointer? = nil
        let status: mcpp_status = withUnsafeMutablePointer(to: &errorText) { errorSink in
            var writer = mcpp_writer()
            writer.struct_size = UInt32(MemoryLayout<mcpp_writer>.size)
            writer.ctx = UnsafeMutableRawPointer(errorSink)
            writer.write = { ctx, bytes, count in
                guard let ctx, let piece = text(bytes, count) else { return }
                ctx.assumingMemoryBound(to: String.self).pointee += piece
            }
            return config.withCString { configText in
                withActivity("create") {
                    table.create(hostTable, configText, config.utf8.count, &writer, &instanceOut)
                }
            }
        }
        guard status == MCPP_OK else {
            let reason = errorText.split(whereSeparator: \.isNewline).joined(separator: " ")
            throw HostFailure(
                .createFailed,
                "the plugin's create failed (status \(status))" + (reason.isEmpty ? "" : ": " + reason))
        }
        instanceAddress.store(UInt(bitPattern: instanceOut), ordering: .releasing)
        do {
            let catalog = try describe()
            catalogBox.withLock { $0 = catalog }
        } catch {
            throw HostFailure(.invalidDeclarations, "invalid declarations: \(error.description)")
        }
    }

    public var catalog: Catalog { catalogBox.withLock { $0 } }

    /// Identity, threading and declared names, for `--check`.
    public var summary: JSONValue {
        let catalog = catalog
        return [
            "name": .string(serverName), "version": .string(serverVersion),
            "abiMinor": .int(Int64(loaded.abiMinor)),
            "threading": table.threading == MCPP_THREADING_CONCURRENT ? "concurrent" : "serial",
            "concurrency": .int(Int64(concurrency)),
            "tools": .array(catalog.tools.map { .string($0.name) }),
            "resources": .array(catalog.resources.map { .string($0.uri) }),
            "resourceTemplates": .array(catalog.templates.map { .string($0.template.text) }),
            "prompts": .array(catalog.prompts.map { .string($0.name) }),
            "completions": .bool(hasCompletions),
        ]
    }

    /// Asks the plugin for its declarations. Every struct it passes is read up to its own `struct_size`
    /// (StructReader); one smaller than ABI 1.0's fails the whole describe, naming the struct.
    private func describe() throws(Catalog.DeclarationError) -> Catalog {
        /// What the registry callbacks build; they are C functions, so they reach it through `ctx`.
        final class Declarations {
            var catalog = Catalog()
            var error: Catalog.DeclarationError?
            /// How many add_tool, add_resource, ... calls came so far: the index errors name.
            var counts: [String: Int] = [:]

            static func from(_ ctx: UnsafeMutableRawPointer?) -> Declarations {
                Unmanaged<Declarations>.fromOpaque(ctx!).takeUnretainedValue()
            }

            /// Runs one add_* call: `body` gets the declaration's index among those of `kind`. The first error
            /// is kept for the describe failure.
            func declare(_ kind: String, _ body: (Int) throws -> Void) -> mcpp_status {
                let index = counts[kind, default: 0]
                counts[kind] = index + 1
                do {
                    try body(index)
                    return MCPP_OK
                } catch let failure as StructSizeError {
                    error = error ?? Catalog.DeclarationError(description: failure.description)
                } catch let failure as Catalog.DeclarationError {
                    error = error ?? failure
                } catch {
                    self.error = self.error ?? Catalog.DeclarationError(description: "\(error)")
                }
                return MCPP_E_INVALID
            }
        }
        let declarations = Declarations()
        var registry = mcpp_registry()
        registry.struct_size = UInt32(MemoryLayout<mcpp_registry>.size)
        registry.ctx = Unmanaged.passUnretained(declarations).toOpaque()
        registry.add_tool = { ctx, pointer in
            guard let pointer else { return MCPP_E_INVALID }
            return Declarations.from(ctx).declare("tool") { index in
                let tool = try StructReader.read(
                    mcpp_tool.self, at: pointer, kind: "tool", index: index, nameField: \.name)
                func optionalText(_ value: mcpp_str) -> String? { text(value.ptr, value.len) }
                guard let name = optionalText(tool.name) else {
                    throw Catalog.DeclarationError(description: "a tool name is not valid UTF-8")
                }
                try Declarations.from(ctx).catalog.addTool(
                    name: name, title: optionalText(tool.title), description: optionalText(tool.description),
                    inputSchema: optionalText(tool.input_schema), outputSchema: optionalText(tool.output_schema),
                    annotations: optionalText(tool.annotations),
                    nonblocking: tool.flags & UInt32(MCPP_TOOL_NONBLOCKING) != 0)
            }
        }
        registry.add_resource = { ctx, pointer in
            guard let pointer else { return MCPP_E_INVALID }
            return Declarations.from(ctx).declare("resource") { index in
                let resource = try StructReader.read(
                    mcpp_resource.self, at: pointer, kind: "resource", index: index, nameField: \.uri)
                func optionalText(_ value: mcpp_str) -> String? { text(value.ptr, value.len) }
                try Declarations.from(ctx).catalog.addResource(
                    uri: optionalText(resource.uri) ?? "", name: optionalText(resource.name) ?? "",
                    title: optionalText(resource.title), description: optionalText(resource.description),
                    mimeType: optionalText(resource.mime_type), size: resource.size >= 0 ? resource.size : nil)
            }
        }
        registry.add_resource_template = { ctx, pointer in
            guard let pointer else { return MCPP_E_INVALID }
            return Declarations.from(ctx).declare("resource template") { index in
                let template = try StructReader.read(
                    mcpp_resource_template.self, at: pointer, kind: "resource template", index: index,
                    nameField: \.uri_template)
                func optionalText(_ value: mcpp_str) -> String? { text(value.ptr, value.len) }
                try Declarations.from(ctx).catalog.addTemplate(
                    uriTemplate: optionalText(template.uri_template) ?? "", name: optionalText(template.name) ?? "",
                    title: optionalText(template.title), description: optionalText(template.description),
                    mimeType: optionalText(template.mime_type))
            }
        }
        registry.add_prompt = { ctx, pointer in
            guard let pointer else { return MCPP_E_INVALID }
            return Declarations.from(ctx).declare("prompt") { index in
                let prompt = try StructReader.read(
                    mcpp_prompt.self, at: pointer, kind: "prompt", index: index, nameField: \.name)
                func optionalText(_ value: mcpp_str) -> String? { text(value.ptr, value.len) }
                var arguments: [Catalog.PromptArgument] = []
                if let array = prompt.args, prompt.arg_count > 0 {
                    let declared = try StructReader.readArray(
                        mcpp_prompt_arg.self, at: array, count: Int(prompt.arg_count),
                        kind: StructReader.subject(kind: "prompt", index: index, name: prompt.name) + " argument",
                        nameField: \.name)
                    arguments = declared.map { argument in
                        .init(
                            name: optionalText(argument.name) ?? "", title: optionalText(argument.title),
                            description: optionalText(argument.description),
                            required: argument.flags & UInt32(MCPP_ARG_REQUIRED) != 0)
                    }
                }
                try Declarations.from(ctx).catalog.addPrompt(
                    name: optionalText(prompt.name) ?? "", title: optionalText(prompt.title),
                    description: optionalText(prompt.description), arguments: arguments)
            }
        }
        registry.set_list_cache = { ctx, lists, ttl, scope in
            guard ttl >= 0, scope == MCPP_CACHE_PRIVATE || scope == MCPP_CACHE_PUBLIC,
                lists & ~UInt32(MCPP_LIST_TOOLS | MCPP_LIST_RESOURCES | MCPP_LIST_PROMPTS) == 0
            else { return MCPP_E_INVALID }
            let hint = (ttlMs: ttl, scope: scope == MCPP_CACHE_PUBLIC ? "public" : "private")
            let declarations = Declarations.from(ctx)
            if lists & UInt32(MCPP_LIST_TOOLS) != 0 { declarations.catalog.cacheHints[.tools] = hint }
            if lists & UInt32(MCPP_LIST_RESOURCES) != 0 {
                declarations.catalog.cacheHints[.resources] = hint
                declarations.catalog.cacheHints[.templates] = hint
            }
            if lists & UInt32(MCPP_LIST_PROMPTS) != 0 { declarations.catalog.cacheHints[.prompts] = hint }
            return MCPP_OK
        }
        let status = withActivity("describe") { table.describe(instance, &registry) }
        if let error = declarations.error { throw error }
        guard status == MCPP_OK else {
            throw Catalog.DeclarationError(description: "describe returned status \(status)")
        }
        return declarations.catalog
    }

    // MARK: Calls

    /// Makes a call object; `submit` runs it. Split so the caller can wire the call up before any event fires.
    public func makeCall(
        kind: CallKind, arguments: [String: JSONValue], observer: any CallObserver, maxOutputBytes: Int,
        input: RetryInput
    )
        -> PluginCall
    {
        let call = PluginCall(
            id: callRegistry.makeID(), kind: kind, arguments: arguments, observer: observer,
            maxOutputBytes: maxOutputBytes, priorAnswers: input.answers, priorState: input.pluginState,
            callbackQueue: { [self] job in submitCallback(job, activity: kind.activity) })
        callRegistry.insert(call)
        return call
    }

    /// Runs an input callback (ABI 1.1) on a handler thread, like a handler: one at a time for a SERIAL plugin.
    private func submitCallback(_ job: @escaping @Sendable () -> Void, activity: String) {
        pool.submit {
            mcph_thread_init()
            withActivity("input callback of " + activity) { job() }
        }
    }

    /// Whether a call may run on the calling (network) thread: a NONBLOCKING tool of a CONCURRENT plugin.
    public func mayRunInline(_ tool: Catalog.Tool) -> Bool {
        tool.nonblocking && table.threading == MCPP_THREADING_CONCURRENT
    }

    /// Runs a call on the calling thread (see `mayRunInline`).
    public func runInline(_ call: PluginCall) { run(call) }

    /// Runs a call on a handler thread. The observer hears progress, logs and the outcome.
    public func submit(_ call: PluginCall) {
        pool.submit { [self] in
            busyHandlers.add(1, ordering: .relaxed)
            self.run(call)
            busyHandlers.subtract(1, ordering: .relaxed)
        }
    }

    /// Handler slots in use now: submitted calls running on a handler thread (stuck ones included).
    public var slotsBusy: Int { busyHandlers.load(ordering: .relaxed) }

    private func run(_ call: PluginCall) {
        if call.isCancelled {
            // Cancelled while queued: the plugin never sees it.
            if call.finish(outcome: MCPP_OUTCOME_INTERNAL, message: "cancelled before it started") {
                callRegistry.remove(call.id)
            }
            return
        }
        mcph_thread_init()
        let table = table
        let instance = instance
        let handle = CallRegistry.handle(for: call)
        call.setHandlerRunning(true)
        withActivity(call.kind.activity) {
            switch call.kind {
            case .tool(let name):
                guard let callTool = table.call_tool else { return missing(call, "tools") }
                name.withCString { callTool(instance, handle, $0, name.utf8.count) }
            case .resource(let uri, let template, _):
                guard let readResource = table.read_resource else { return missing(call, "resources") }
                let matched = template ?? ""
                uri.withCString { uriText in
                    matched.withCString {
                        readResource(instance, handle, uriText, uri.utf8.count, $0, matched.utf8.count)
                    }
                }
            case .prompt(let name):
                guard let getPrompt = table.get_prompt else { return missing(call, "prompts") }
                name.withCString { getPrompt(instance, handle, $0, name.utf8.count) }
            case .complete(let refKind, let ref, let arg, let value):
                guard let complete = table.complete else { return missing(call, "completion") }
                ref.withCString { refText in
                    arg.withCString { argText in
                        value.withCString { valueText in
                            complete(
                                instance, handle, refKind, refText, ref.utf8.count, argText, arg.utf8.count,
                                valueText, value.utf8.count)
                        }
                    }
                }
            }
        }
        call.setHandlerRunning(false)
        if stuckCalls.withLock({ $0.remove(call.id) }) != nil {
            log("call \(call.kind.activity) returned after overrunning its deadline; its slot is free again")
        }
    }

    private func missing(_ call: PluginCall, _ what: String) {
        if call.finish(outcome: MCPP_OUTCOME_NOT_FOUND, message: "this plugin has no \(what) handler") {
            callRegistry.remove(call.id)
        }
    }

    /// Cancels a call: the flag the plugin polls, then its cancel callback.
    public func cancel(_ call: PluginCall) {
        guard call.markCancelled(), !call.isFinished else { return }
        if let cancel = table.cancel, call.isHandlerRunning || !call.isFinished {
            let handle = CallRegistry.handle(for: call)
            withActivity("cancel " + call.kind.activity) { cancel(instance, handle) }
        }
    }

    /// Called `hangGrace` after a call's deadline: if its handler still runs, its slot counts as lost.
    public func checkOverrun(_ call: PluginCall) {
        guard call.isHandlerRunning else { return }
        let stuck = stuckCalls.withLock { stuckIDs -> Int in
            stuckIDs.insert(call.id)
            return stuckIDs.count
        }
        log("call \(call.kind.activity) is still running past its deadline; \(stuck) of \(concurrency) slots stuck")
        if stuck >= concurrency {
            onHung.withLock { $0 }?(
                "plugin hung: every call slot (\(concurrency)) is held by a call that overran its deadline "
                    + "(last: \(call.kind.activity))")
        }
    }

    // MARK: Plugin-initiated events

    func pluginLog(level: Int32, message: String) {
        log("[\(LogLevel.name(level))] \(message)")
    }

    func log(_ line: String) { logSink(line) }

    func listsChanged(_ lists: UInt32) { changes.post(.lists(lists), from: self) }

    func resourceUpdated(_ uri: String) { changes.post(.resource(uri), from: self) }

    /// Where the plugin's own change notifications go besides this host's listeners: the supervisor, which relays
    /// them to the server's other replicas (docs/protocol.md, "Replicas"). Changes relayed to this host are
    /// applied with `listsChanged`/`resourceUpdated` and never relayed again.
    public func relayChanges(to relay: @escaping @Sendable (PluginChange) -> Void) {
        changeRelay.withLock { $0 = relay }
    }

    func relay(lists: UInt32) {
        let known = lists & UInt32(MCPP_LIST_TOOLS | MCPP_LIST_RESOURCES | MCPP_LIST_PROMPTS)
        if known != 0 { relay(.lists(known)) }
    }

    func relay(_ change: PluginChange) { changeRelay.withLock { $0 }?(change) }

    /// Runs a text-returning callback with a host writer that collects what it writes.
    private func collect(
        _ callback: (UnsafeMutableRawPointer?, UnsafePointer<mcpp_writer>?) -> mcpp_status, _ activity: String
    )
        -> (mcpp_status, String)
    {
        var collected = ""
        let status = withUnsafeMutablePointer(to: &collected) { sink in
            var writer = mcpp_writer()
            writer.struct_size = UInt32(MemoryLayout<mcpp_writer>.size)
            writer.ctx = UnsafeMutableRawPointer(sink)
            writer.write = { ctx, bytes, count in
                guard let ctx, let piece = text(bytes, count) else { return }
                ctx.assumingMemoryBound(to: String.self).pointee += piece
            }
            return withActivity(activity) { callback(instance, &writer) }
        }
        return (status, collected)
    }

    /// Health callback, if the plugin has one: (healthy, detail). Runs on the calling thread.
    public func health() -> (Bool, String)? {
        guard let health = table.health else { return nil }
        let (status, detail) = collect(health, "health")
        return (status == MCPP_OK, detail)
    }

    /// Diagnose callback, if the plugin has one: its report. Runs on the calling thread.
    public func diagnose() -> String? {
        guard let diagnose = table.diagnose else { return nil }
        return collect(diagnose, "diagnose").1
    }

    /// Calls whose handler is still running past their deadline (stuck call slots).
    public var stuckCallCount: Int { stuckCalls.withLock { $0.count } }

    /// What a health check of the plugin found.
    public enum HealthCheck: Sendable {
        /// The callbacks answered: `ok` is nil when the plugin has no health callback (it counts as healthy),
        /// `report` is the diagnose output when asked for and implemented.
        case answered(ok: Bool?, detail: String, report: String?, seconds: Double)
        /// The previous health check has been running this long and has not returned: no second one is
        /// started (checks never pile up on a plugin that blocks in its callback).
        case busy(seconds: Double)
        /// The instance is being destroyed.
        case closed
    }

    /// Runs the plugin's health callback (and diagnose, when `diagnose`) on the host's health thread — never on
    /// the event loop, never on a handler slot — and reports through `done` from that thread. At most one check
    /// runs at a time.
    public func checkHealth(diagnose: Bool, _ done: @escaping @Sendable (HealthCheck) -> Void) {
        let now = monotonicSeconds()
        let refusal: HealthCheck? = healthGate.withLock { gate in
            if gate.closed { return .closed }
            if let since = gate.since { return .busy(seconds: now - since) }
            gate.since = now
            return nil
        }
        if let refusal { return done(refusal) }
        healthPool.submit { [self] in
            let verdict = health()
            let report = diagnose ? self.diagnose() : nil
            let seconds = monotonicSeconds() - now
            let waiting = healthGate.withLock { gate in
                gate.since = nil
                defer { gate.destroyWaiting = nil }
                return gate.destroyWaiting
            }
            waiting?.signal()
            done(.answered(ok: verdict?.0, detail: verdict?.1 ?? "", report: report, seconds: seconds))
        }
    }

    /// Graceful end: destroy the instance (after every call finished). Only the first call destroys it. A
    /// health or diagnose callback in progress (a probe that arrived with the stop) is waited for, up to
    /// `healthWait`: destroy must not overlap it (ABI rule), and skipping destroy for a probe that returns a
    /// moment later lost the plugin's own cleanup.
    public func destroy(healthWait: Duration = .seconds(5)) {
        let returned = DispatchSemaphore(value: 0)
        let healthRunning = healthGate.withLock { gate in
            gate.closed = true
            if gate.since == nil { return false }
            gate.destroyWaiting = returned
            return true
        }
        if healthRunning,
            returned.wait(timeout: .now() + .nanoseconds(Int(healthWait.wholeNanoseconds))) == .timedOut
        {
            log(
                "the plugin's health callback has not returned within \(healthWait.components.seconds) s; exiting without destroy"
            )
            return
        }
        let address = instanceAddress.exchange(0, ordering: .acquiringAndReleasing)
        guard let instance = UnsafeMutableRawPointer(bitPattern: address) else { return }
        withActivity("destroy") { table.destroy?(instance) }
    }
}

/// CLOCK_MONOTONIC in seconds.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

extension PluginInstance: ChangeSource {
    func refreshLists() -> Bool {
        // describe() runs on a handler thread (runDetached) so it never overlaps a SERIAL plugin's handler, and
        // under describeLock so it never overlaps another describe.
        do {
            let catalog = try describeLock.withLock { _ in try describe() }
            catalogBox.withLock { $0 = catalog }
            return true
        } catch {
            log("the plugin's new declarations are invalid, keeping the previous ones: \(error)")
            return false
        }
    }

    func deliverChange(lists: UInt32, uri: String?) {
        for handler in changeHandlers.withLock({ $0 }) { handler(lists, uri) }
    }

    func runDetached(_ work: @escaping @Sendable () -> Void) { pool.submit(work) }
}
