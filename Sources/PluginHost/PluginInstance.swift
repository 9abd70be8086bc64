import CHostSupport
import MCPProtocol
import PluginABI
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The created plugin: its instance pointer, its declarations and the threads its handlers run on.
public final class PluginInstance: @unchecked Sendable {
    // @unchecked: the raw pointers are immutable after init and only used under the ABI's thread rules.
    public let loaded: LoadedPlugin
    public let serverName: String
    public let serverVersion: String
    public let serverTitle: String?
    public let instructions: String?
    /// Most handlers that may run at once (1 for SERIAL plugins).
    public let concurrency: Int
    public let hasCompletions: Bool

    private var instance: UnsafeMutableRawPointer?
    private var hostTable: UnsafePointer<mcpp_host>?
    private let catalogBox = Mutex(Catalog())
    private let pool: HandlerPool
    private let stuckCalls = Mutex<Set<UInt>>([])
    /// The health check in progress (its start, monotonic seconds) and whether destroy has begun.
    private let healthGate = Mutex<(since: Double?, closed: Bool)>((nil, false))
    /// One lazily started thread for health and diagnose callbacks.
    private let healthPool = HandlerPool(maxThreads: 1)
    private let describeLock = Mutex<Void>(())
    private let logSink: @Sendable (String) -> Void
    /// Called after the catalog changed (bits: MCPP_LIST_*), and when a resource changed (uri).
    let changeHandlers = Mutex<[@Sendable (UInt32, String?) -> Void]>([])
    /// Called when every call slot is held by a call stuck past its deadline.
    public let onHung = Mutex<(@Sendable (String) -> Void)?>(nil)

    var table: mcpp_plugin { loaded.table.pointee }

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
        let t = loaded.table.pointee
        func str(_ s: mcpp_str) -> String? { text(s.ptr, s.len).flatMap { $0.isEmpty ? nil : $0 } }
        self.serverName = str(t.name) ?? "plugin"
        self.serverVersion = str(t.version) ?? "0.0.0"
        self.serverTitle = str(t.title)
        self.instructions = str(t.instructions)
        self.hasCompletions = t.complete != nil
        if t.threading == MCPP_THREADING_CONCURRENT {
            let declared = t.max_concurrency == 0 ? 16 : Int(t.max_concurrency)
            self.concurrency = max(1, min(declared, maxConcurrency))
        } else {
            self.concurrency = 1
        }
        self.pool = HandlerPool(maxThreads: concurrency)

        let ctx = Unmanaged.passUnretained(self).toOpaque()
        let host = makeHostTable(context: ctx)
        self.hostTable = host
        var errorText = ""
        var instanceOut: UnsafeMutableRawPointer? = nil
        let status: mcpp_status = withUnsafeMutablePointer(to: &errorText) { errPtr in
            var w = mcpp_writer()
            w.struct_size = UInt32(MemoryLayout<mcpp_writer>.size)
            w.ctx = UnsafeMutableRawPointer(errPtr)
            w.write = { ctx, p, n in
                guard let ctx, let s = text(p, n) else { return }
                ctx.assumingMemoryBound(to: String.self).pointee += s
            }
            return config.withCString { c in
                withActivity("create") {
                    t.create(host, c, config.utf8.count, &w, &instanceOut)
                }
            }
        }
        guard status == MCPP_OK else {
            let reason = errorText.split(whereSeparator: \.isNewline).joined(separator: " ")
            throw HostFailure(
                .createFailed,
                "the plugin's create failed (status \(status))" + (reason.isEmpty ? "" : ": " + reason))
        }
        self.instance = instanceOut
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
        let c = catalog
        return [
            "name": .string(serverName), "version": .string(serverVersion),
            "abiMinor": .int(Int64(loaded.abiMinor)),
            "threading": table.threading == MCPP_THREADING_CONCURRENT ? "concurrent" : "serial",
            "concurrency": .int(Int64(concurrency)),
            "tools": .array(c.tools.map { .string($0.name) }),
            "resources": .array(c.resources.map { .string($0.uri) }),
            "resourceTemplates": .array(c.templates.map { .string($0.template.text) }),
            "prompts": .array(c.prompts.map { .string($0.name) }),
            "completions": .bool(hasCompletions),
        ]
    }

    private func describe() throws(Catalog.DeclarationError) -> Catalog {
        final class Box {
            var catalog = Catalog()
            var error: Catalog.DeclarationError?
        }
        let box = Box()
        var reg = mcpp_registry()
        reg.struct_size = UInt32(MemoryLayout<mcpp_registry>.size)
        reg.ctx = Unmanaged.passUnretained(box).toOpaque()
        reg.add_tool = { ctx, tool in
            let box = Unmanaged<Box>.fromOpaque(ctx!).takeUnretainedValue()
            guard let t = tool?.pointee else { return MCPP_E_INVALID }
            func s(_ v: mcpp_str) -> String? { text(v.ptr, v.len) }
            do {
                guard let name = s(t.name) else {
                    throw Catalog.DeclarationError(description: "a tool name is not valid UTF-8")
                }
                try box.catalog.addTool(
                    name: name, title: s(t.title), description: s(t.description), inputSchema: s(t.input_schema),
                    outputSchema: s(t.output_schema), annotations: s(t.annotations),
                    nonblocking: t.flags & UInt32(MCPP_TOOL_NONBLOCKING) != 0)
                return MCPP_OK
            } catch {
                box.error = box.error ?? (error as? Catalog.DeclarationError)
                return MCPP_E_INVALID
            }
        }
        reg.add_resource = { ctx, res in
            let box = Unmanaged<Box>.fromOpaque(ctx!).takeUnretainedValue()
            guard let r = res?.pointee else { return MCPP_E_INVALID }
            func s(_ v: mcpp_str) -> String? { text(v.ptr, v.len) }
            do {
                try box.catalog.addResource(
                    uri: s(r.uri) ?? "", name: s(r.name) ?? "", title: s(r.title), description: s(r.description),
                    mimeType: s(r.mime_type), size: r.size >= 0 ? r.size : nil)
                return MCPP_OK
            } catch {
                box.error = box.error ?? (error as? Catalog.DeclarationError)
                return MCPP_E_INVALID
            }
        }
        reg.add_resource_template = { ctx, tmpl in
            let box = Unmanaged<Box>.fromOpaque(ctx!).takeUnretainedValue()
            guard let r = tmpl?.pointee else { return MCPP_E_INVALID }
            func s(_ v: mcpp_str) -> String? { text(v.ptr, v.len) }
            do {
                try box.catalog.addTemplate(
                    uriTemplate: s(r.uri_template) ?? "", name: s(r.name) ?? "", title: s(r.title),
                    description: s(r.description), mimeType: s(r.mime_type))
                return MCPP_OK
            } catch {
                box.error = box.error ?? (error as? Catalog.DeclarationError)
                return MCPP_E_INVALID
            }
        }
        reg.add_prompt = { ctx, prompt in
            let box = Unmanaged<Box>.fromOpaque(ctx!).takeUnretainedValue()
            guard let p = prompt?.pointee else { return MCPP_E_INVALID }
            func s(_ v: mcpp_str) -> String? { text(v.ptr, v.len) }
            var args: [Catalog.PromptArgument] = []
            if let a = p.args, p.arg_count > 0 {
                // Step by the plugin's own struct size: an older plugin's array has a smaller stride.
                let stride = Int(a.pointee.struct_size)
                guard stride >= 56 else {  // sizeof(mcpp_prompt_arg) in ABI 1.0
                    box.error =
                        box.error ?? Catalog.DeclarationError(description: "prompt arguments have a bad struct_size")
                    return MCPP_E_INVALID
                }
                for i in 0..<Int(p.arg_count) {
                    var arg = mcpp_prompt_arg()  // fields the plugin's older struct lacks stay zero
                    withUnsafeMutableBytes(of: &arg) { dst in
                        dst.copyMemory(
                            from: UnsafeRawBufferPointer(
                                start: UnsafeRawPointer(a).advanced(by: i * stride), count: min(stride, dst.count)))
                    }
                    args.append(
                        .init(
                            name: s(arg.name) ?? "", title: s(arg.title), description: s(arg.description),
                            required: arg.flags & UInt32(MCPP_ARG_REQUIRED) != 0))
                }
            }
            do {
                try box.catalog.addPrompt(
                    name: s(p.name) ?? "", title: s(p.title), description: s(p.description), arguments: args)
                return MCPP_OK
            } catch {
                box.error = box.error ?? (error as? Catalog.DeclarationError)
                return MCPP_E_INVALID
            }
        }
        let status = withActivity("describe") { table.describe(instance, &reg) }
        if let e = box.error { throw e }
        guard status == MCPP_OK else {
            throw Catalog.DeclarationError(description: "describe returned status \(status)")
        }
        return box.catalog
    }

    // MARK: Calls

    /// Makes a call object; `submit` runs it. Split so the caller can wire the call up before any event fires.
    public func makeCall(
        kind: CallKind, arguments: [String: JSONValue], observer: any CallObserver, maxOutputBytes: Int
    )
        -> PluginCall
    {
        let call = PluginCall(
            id: callRegistry.makeID(), kind: kind, arguments: arguments, observer: observer,
            maxOutputBytes: maxOutputBytes)
        callRegistry.insert(call)
        return call
    }

    /// Whether a call may run on the calling (network) thread: a NONBLOCKING tool of a CONCURRENT plugin.
    public func mayRunInline(_ tool: Catalog.Tool) -> Bool {
        tool.nonblocking && table.threading == MCPP_THREADING_CONCURRENT
    }

    /// Runs a call on the calling thread (see `mayRunInline`).
    public func runInline(_ call: PluginCall) { run(call) }

    /// Runs a call on a handler thread. The observer hears progress, logs and the outcome.
    public func submit(_ call: PluginCall) {
        pool.submit { [self] in self.run(call) }
    }

    private func run(_ call: PluginCall) {
        if call.isCancelled {
            // Cancelled while queued: the plugin never sees it.
            if call.finish(outcome: MCPP_OUTCOME_INTERNAL, message: "cancelled before it started") {
                callRegistry.remove(call.id)
            }
            return
        }
        mcph_thread_init()
        let t = table
        let handle = CallRegistry.handle(for: call)
        call.setHandlerRunning(true)
        withActivity(call.kind.activity) {
            switch call.kind {
            case .tool(let name):
                guard let f = t.call_tool else { return missing(call, "tools") }
                name.withCString { f(instance, handle, $0, name.utf8.count) }
            case .resource(let uri, let template, _):
                guard let f = t.read_resource else { return missing(call, "resources") }
                let tmpl = template ?? ""
                uri.withCString { u in tmpl.withCString { f(instance, handle, u, uri.utf8.count, $0, tmpl.utf8.count) }
                }
            case .prompt(let name):
                guard let f = t.get_prompt else { return missing(call, "prompts") }
                name.withCString { f(instance, handle, $0, name.utf8.count) }
            case .complete(let refKind, let ref, let arg, let value):
                guard let f = t.complete else { return missing(call, "completion") }
                ref.withCString { r in
                    arg.withCString { a in
                        value.withCString { v in
                            f(instance, handle, refKind, r, ref.utf8.count, a, arg.utf8.count, v, value.utf8.count)
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
        if let f = table.cancel, call.isHandlerRunning || !call.isFinished {
            let handle = CallRegistry.handle(for: call)
            withActivity("cancel " + call.kind.activity) { f(instance, handle) }
        }
    }

    /// Called `hangGrace` after a call's deadline: if its handler still runs, its slot counts as lost.
    public func checkOverrun(_ call: PluginCall) {
        guard call.isHandlerRunning else { return }
        let stuck = stuckCalls.withLock { s -> Int in
            s.insert(call.id)
            return s.count
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

    func listsChanged(_ lists: UInt32) {
        // describe() runs on a handler thread so it never overlaps a SERIAL plugin's handler, and under
        // describeLock so two notifications never run it concurrently.
        pool.submit { [self] in
            do {
                let catalog = try describeLock.withLock { _ in try describe() }
                catalogBox.withLock { $0 = catalog }
                for h in changeHandlers.withLock({ $0 }) { h(lists, nil) }
            } catch {
                log("the plugin's new declarations are invalid, keeping the previous ones: \(error)")
            }
        }
    }

    func resourceUpdated(_ uri: String) {
        for h in changeHandlers.withLock({ $0 }) { h(0, uri) }
    }

    /// Runs a text-returning callback with a host writer that collects what it writes.
    private func collect(
        _ f: (UnsafeMutableRawPointer?, UnsafePointer<mcpp_writer>?) -> mcpp_status, _ activity: String
    )
        -> (mcpp_status, String)
    {
        var out = ""
        let st = withUnsafeMutablePointer(to: &out) { d in
            var w = mcpp_writer()
            w.struct_size = UInt32(MemoryLayout<mcpp_writer>.size)
            w.ctx = UnsafeMutableRawPointer(d)
            w.write = { ctx, p, n in
                guard let ctx, let s = text(p, n) else { return }
                ctx.assumingMemoryBound(to: String.self).pointee += s
            }
            return withActivity(activity) { f(instance, &w) }
        }
        return (st, out)
    }

    /// Health callback, if the plugin has one: (healthy, detail). Runs on the calling thread.
    public func health() -> (Bool, String)? {
        guard let f = table.health else { return nil }
        let (st, detail) = collect(f, "health")
        return (st == MCPP_OK, detail)
    }

    /// Diagnose callback, if the plugin has one: its report. Runs on the calling thread.
    public func diagnose() -> String? {
        guard let f = table.diagnose else { return nil }
        return collect(f, "diagnose").1
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
        let refusal: HealthCheck? = healthGate.withLock { g in
            if g.closed { return .closed }
            if let since = g.since { return .busy(seconds: now - since) }
            g.since = now
            return nil
        }
        if let refusal { return done(refusal) }
        healthPool.submit { [self] in
            let h = health()
            let report = diagnose ? self.diagnose() : nil
            let seconds = monotonicSeconds() - now
            healthGate.withLock { $0.since = nil }
            done(.answered(ok: h?.0, detail: h?.1 ?? "", report: report, seconds: seconds))
        }
    }

    /// Graceful end: destroy the instance (after every call finished).
    public func destroy() {
        guard let instance else { return }
        let healthRunning = healthGate.withLock { g in
            g.closed = true
            return g.since != nil
        }
        if healthRunning {
            // destroy must not overlap a health or diagnose callback (ABI rule); that one has not returned.
            log("the plugin's health callback has not returned; exiting without destroy")
            return
        }
        withActivity("destroy") { table.destroy?(instance) }
        self.instance = nil
    }
}

/// CLOCK_MONOTONIC in seconds.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
