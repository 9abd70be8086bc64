import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The bridge between the C ABI and a `PluginDefinition`: the static `mcpp_plugin` table and its thunks.
/// One plugin per process, so the state is process-wide.
enum Runtime {
    struct State: @unchecked Sendable {
        // @unchecked: `host` is an immutable static table, thread-safe by the ABI's rules.
        var definition: PluginDefinition?
        var host: UnsafePointer<mcpp_host>?
        /// Running handlers by call handle, with an id so a reused handle address never removes a newer entry.
        var tasks: [UInt: (id: Int, task: Task<Void, Never>)] = [:]
    }

    static let state = Mutex(State())

    static func install(_ d: PluginDefinition) {
        state.withLock { $0.definition = d }
        _ = table
    }

    static var definition: PluginDefinition? { state.withLock { $0.definition } }
    static var host: UnsafePointer<mcpp_host>? { state.withLock { $0.host } }

    /// Copies a string into memory that lives as long as the process (for the static table).
    static func permanent(_ s: String?) -> mcpp_str {
        guard let s, !s.isEmpty else { return mcpp_str(ptr: nil, len: 0) }
        return mcpp_str(ptr: UnsafePointer(strdup(s)), len: s.utf8.count)
    }

    /// The plugin's static table, built once from the installed definition.
    nonisolated(unsafe) static let table: UnsafePointer<mcpp_plugin> = {
        guard let d = definition else { fatalError("MCPPluginKit: negotiate() must install a definition first") }
        var t = mcpp_plugin()
        t.struct_size = UInt32(MemoryLayout<mcpp_plugin>.size)
        switch d.threading {
        case .serial: t.threading = UInt32(MCPP_THREADING_SERIAL)
        case .concurrent(let m):
            t.threading = UInt32(MCPP_THREADING_CONCURRENT)
            t.max_concurrency = UInt32(max(0, m))
        }
        t.name = permanent(d.name)
        t.version = permanent(d.version)
        t.title = permanent(d.title)
        t.instructions = permanent(d.instructions)
        t.create = { host, config, len, err, instance in
            guard let host else { return MCPP_E_INVALID }
            Runtime.state.withLock { $0.host = host }
            let text =
                config.map {
                    String(
                        decoding: UnsafeRawBufferPointer(start: $0, count: len).bindMemory(to: UInt8.self),
                        as: UTF8.self)
                } ?? "{}"
            do {
                try Runtime.definition?.onCreate?(text)
            } catch {
                write(err, "\(error)")
                return MCPP_E_FAILED
            }
            instance?.pointee = UnsafeMutableRawPointer(bitPattern: 1)  // the definition is the instance
            return MCPP_OK
        }
        t.destroy = { _ in }
        t.describe = { _, reg in
            guard let reg, let d = Runtime.definition else { return MCPP_E_INVALID }
            return describe(d, reg)
        }
        t.call_tool = { _, call, name, len in
            guard let call, let (d, host) = Runtime.context() else { return }
            let n = string(name, len)
            guard let tool = d.tools.first(where: { $0.name == n }) else {
                return finish(host, call, MCPP_OUTCOME_NOT_FOUND, "unknown tool \(n)")
            }
            run(host, call) { c in
                let host = c.host
                let call = c.handle
                do {
                    let r = try await tool.handler(c)
                    for item in r.content { try add(host, call, item) }
                    if let s = r.structured {
                        try check(s.withCString { host.pointee.set_structured(call, $0, s.utf8.count) })
                    }
                    finish(host, call, r.isError ? MCPP_OUTCOME_TOOL_ERROR : MCPP_OUTCOME_OK, "")
                } catch let e as PluginError {
                    finish(host, call, e)
                } catch let e as InputError {
                    finish(host, call, e)
                } catch {
                    finish(host, call, MCPP_OUTCOME_TOOL_ERROR, "\(error)")
                }
            }
        }
        t.read_resource = { _, call, uri, uriLen, tmpl, tmplLen in
            guard let call, let (d, host) = Runtime.context() else { return }
            let u = string(uri, uriLen)
            let tt = string(tmpl, tmplLen)
            let handler =
                tt.isEmpty
                ? d.resources.first(where: { $0.uri == u })?.handler
                : d.templates.first(where: { $0.uriTemplate == tt })?.handler
            guard let handler else { return finish(host, call, MCPP_OUTCOME_NOT_FOUND, "unknown resource \(u)") }
            run(host, call) { c in
                let host = c.host
                let call = c.handle
                do {
                    for item in try await handler(c) {
                        switch item {
                        case .text(let s, let uri, let mime):
                            try add(host, call, .resourceText(uri: uri ?? "", mimeType: mime ?? "", text: s))
                        case .blob(let b, let uri, let mime):
                            try add(host, call, .resourceBlob(uri: uri ?? "", mimeType: mime ?? "", data: b))
                        }
                    }
                    finish(host, call, MCPP_OUTCOME_OK, "")
                } catch let e as PluginError {
                    finish(host, call, e)
                } catch let e as InputError {
                    finish(host, call, e)
                } catch {
                    finish(host, call, MCPP_OUTCOME_INTERNAL, "\(error)")
                }
            }
        }
        t.get_prompt = { _, call, name, len in
            guard let call, let (d, host) = Runtime.context() else { return }
            let n = string(name, len)
            guard let prompt = d.prompts.first(where: { $0.name == n }) else {
                return finish(host, call, MCPP_OUTCOME_NOT_FOUND, "unknown prompt \(n)")
            }
            run(host, call) { c in
                let host = c.host
                let call = c.handle
                do {
                    let r = try await prompt.handler(c)
                    if let desc = r.description {
                        try check(desc.withCString { host.pointee.set_description(call, $0, desc.utf8.count) })
                    }
                    for m in r.messages {
                        try check(host.pointee.set_role(call, m.role == .user ? MCPP_ROLE_USER : MCPP_ROLE_ASSISTANT))
                        try add(host, call, m.content)
                    }
                    finish(host, call, MCPP_OUTCOME_OK, "")
                } catch let e as PluginError {
                    finish(host, call, e)
                } catch let e as InputError {
                    finish(host, call, e)
                } catch {
                    finish(host, call, MCPP_OUTCOME_INTERNAL, "\(error)")
                }
            }
        }
        if d.completer != nil {
            t.complete = { _, call, kind, ref, refLen, arg, argLen, value, valueLen in
                guard let call, let (d, host) = Runtime.context(), let completer = d.completer else { return }
                let r = string(ref, refLen)
                let values = completer(
                    kind == MCPP_REF_PROMPT ? .prompt(r) : .resourceTemplate(r), string(arg, argLen),
                    string(value, valueLen))
                for v in values { _ = v.withCString { host.pointee.add_completion(call, $0, v.utf8.count) } }
                _ = host.pointee.set_completion_info(call, Int64(values.count), 0)
                finish(host, call, MCPP_OUTCOME_OK, "")
            }
        }
        t.cancel = { _, call in
            guard let call else { return }
            let key = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(call)))
            Runtime.state.withLock { $0.tasks[key]?.task }?.cancel()
        }
        if d.healthCheck != nil {
            t.health = { _, detail in
                switch Runtime.definition?.healthCheck?() ?? .healthy() {
                case .healthy(let s):
                    write(detail, s)
                    return MCPP_OK
                case .unhealthy(let s):
                    write(detail, s)
                    return MCPP_E_FAILED
                }
            }
        }
        let p = UnsafeMutablePointer<mcpp_plugin>.allocate(capacity: 1)
        p.initialize(to: t)
        return UnsafePointer(p)
    }()

    static func context() -> (PluginDefinition, UnsafePointer<mcpp_host>)? {
        state.withLock { s in
            guard let d = s.definition, let h = s.host else { return nil }
            return (d, h)
        }
    }

    static func string(_ p: UnsafePointer<CChar>?, _ n: Int) -> String {
        guard let p, n > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: n).bindMemory(to: UInt8.self), as: UTF8.self)
    }

    static func write(_ w: UnsafePointer<mcpp_writer>?, _ s: String) {
        guard let w, let f = w.pointee.write else { return }
        s.withCString { f(w.pointee.ctx, $0, s.utf8.count) }
    }

    struct StatusError: Error, CustomStringConvertible {
        var status: mcpp_status
        var description: String { "the host refused the result (status \(status))" }
    }

    static func check(_ st: mcpp_status) throws {
        if st != MCPP_OK { throw PluginError.internalError(StatusError(status: st).description) }
    }

    static func finish(_ host: UnsafePointer<mcpp_host>, _ call: OpaquePointer, _ outcome: Int32, _ msg: String) {
        msg.withCString { host.pointee.finish(call, outcome, $0, msg.utf8.count) }
    }

    /// An input request that gave no answer, propagated out of the handler.
    static func finish(_ host: UnsafePointer<mcpp_host>, _ call: OpaquePointer, _ e: InputError) {
        switch e {
        case .suspended: finish(host, call, MCPP_OUTCOME_OK, "")  // the host answers input_required instead
        case .unsupported: finish(host, call, MCPP_OUTCOME_NEEDS_CAPABILITY, e.description)
        case .refused: finish(host, call, MCPP_OUTCOME_TOOL_ERROR, e.description)
        case .cancelled, .notOffered: finish(host, call, MCPP_OUTCOME_INTERNAL, e.description)
        }
    }

    static func finish(_ host: UnsafePointer<mcpp_host>, _ call: OpaquePointer, _ e: PluginError) {
        switch e {
        case .notFound(let m): finish(host, call, MCPP_OUTCOME_NOT_FOUND, m)
        case .invalidParams(let m): finish(host, call, MCPP_OUTCOME_INVALID_PARAMS, m)
        case .internalError(let m): finish(host, call, MCPP_OUTCOME_INTERNAL, m)
        }
    }

    /// Runs an async handler on a Swift task while the host's handler thread waits, so the host's concurrency
    /// limit still holds, until the handler ends or parks to wait for the client's input (ABI 1.1): then the
    /// thread goes back to the host and the task finishes the call later. The host's cancel callback cancels
    /// the task.
    static func run(
        _ host: UnsafePointer<mcpp_host>, _ call: OpaquePointer, _ body: @escaping @Sendable (Call) async -> Void
    ) {
        let key = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(call)))
        let done = DispatchSemaphore(value: 0)
        let released = Atomic<Bool>(false)
        let release: @Sendable () -> Void = {
            if !released.exchange(true, ordering: .acquiringAndReleasing) { done.signal() }
        }
        let c = Call(host: host, handle: call, park: release)
        let sendableCall = SendableHandle(call)
        let id = nextTaskID.add(1, ordering: .relaxed).oldValue
        let task = state.withLock { s -> Task<Void, Never> in
            // Created under the lock, so the task's own removal (below) always comes after this insertion.
            let t = Task {
                _ = sendableCall
                await body(c)
                state.withLock { s in
                    if s.tasks[key]?.id == id { s.tasks.removeValue(forKey: key) }
                }
                release()
            }
            s.tasks[key] = (id, t)
            return t
        }
        if c.isCancelled { task.cancel() }
        done.wait()
    }

    static let nextTaskID = Atomic<Int>(1)

    struct SendableHandle: @unchecked Sendable {
        let handle: OpaquePointer
        init(_ h: OpaquePointer) { handle = h }
    }

    static func add(_ host: UnsafePointer<mcpp_host>, _ call: OpaquePointer, _ item: Content) throws {
        let h = host.pointee
        switch item {
        case .text(let s):
            try check(s.withCString { h.add_text(call, $0, s.utf8.count) })
        case .image(let data, let mime):
            try check(
                mime.withCString { m in
                    data.withUnsafeBufferPointer { h.add_image(call, m, mime.utf8.count, $0.baseAddress, data.count) }
                })
        case .audio(let data, let mime):
            try check(
                mime.withCString { m in
                    data.withUnsafeBufferPointer { h.add_audio(call, m, mime.utf8.count, $0.baseAddress, data.count) }
                })
        case .resourceText(let uri, let mime, let text):
            try check(
                uri.withCString { u in
                    mime.withCString { m in
                        text.withCString {
                            h.add_resource_text(call, u, uri.utf8.count, m, mime.utf8.count, $0, text.utf8.count)
                        }
                    }
                })
        case .resourceBlob(let uri, let mime, let data):
            try check(
                uri.withCString { u in
                    mime.withCString { m in
                        data.withUnsafeBufferPointer {
                            h.add_resource_blob(call, u, uri.utf8.count, m, mime.utf8.count, $0.baseAddress, data.count)
                        }
                    }
                })
        case .json(let s):
            try check(s.withCString { h.add_content_json(call, $0, s.utf8.count) })
        }
    }

    /// Declares everything through the registry; strings are copied by the host, so temporaries suffice.
    static func describe(_ d: PluginDefinition, _ reg: UnsafePointer<mcpp_registry>) -> mcpp_status {
        var arena: [UnsafeMutablePointer<CChar>] = []
        defer { for p in arena { free(p) } }
        func s(_ v: String?) -> mcpp_str {
            guard let v, !v.isEmpty, let p = strdup(v) else { return mcpp_str(ptr: nil, len: 0) }
            arena.append(p)
            return mcpp_str(ptr: UnsafePointer(p), len: v.utf8.count)
        }
        let r = reg.pointee
        for t in d.tools {
            var tool = mcpp_tool()
            tool.struct_size = UInt32(MemoryLayout<mcpp_tool>.size)
            tool.flags = t.nonblocking ? UInt32(MCPP_TOOL_NONBLOCKING) : 0
            tool.name = s(t.name)
            tool.title = s(t.title)
            tool.description = s(t.description)
            tool.input_schema = s(t.inputSchema)
            tool.output_schema = s(t.outputSchema)
            tool.annotations = s(t.annotations)
            guard r.add_tool(r.ctx, &tool) == MCPP_OK else { return MCPP_E_INVALID }
        }
        for x in d.resources {
            var res = mcpp_resource()
            res.struct_size = UInt32(MemoryLayout<mcpp_resource>.size)
            res.uri = s(x.uri)
            res.name = s(x.name)
            res.title = s(x.title)
            res.description = s(x.description)
            res.mime_type = s(x.mimeType)
            res.size = -1
            guard r.add_resource(r.ctx, &res) == MCPP_OK else { return MCPP_E_INVALID }
        }
        for x in d.templates {
            var tm = mcpp_resource_template()
            tm.struct_size = UInt32(MemoryLayout<mcpp_resource_template>.size)
            tm.uri_template = s(x.uriTemplate)
            tm.name = s(x.name)
            tm.title = s(x.title)
            tm.description = s(x.description)
            tm.mime_type = s(x.mimeType)
            guard r.add_resource_template(r.ctx, &tm) == MCPP_OK else { return MCPP_E_INVALID }
        }
        for p in d.prompts {
            var args = p.arguments.map { a -> mcpp_prompt_arg in
                var x = mcpp_prompt_arg()
                x.struct_size = UInt32(MemoryLayout<mcpp_prompt_arg>.size)
                x.flags = a.required ? UInt32(MCPP_ARG_REQUIRED) : 0
                x.name = s(a.name)
                x.description = s(a.description)
                return x
            }
            let st = args.withUnsafeMutableBufferPointer { buf -> mcpp_status in
                var pr = mcpp_prompt()
                pr.struct_size = UInt32(MemoryLayout<mcpp_prompt>.size)
                pr.arg_count = UInt32(buf.count)
                pr.name = s(p.name)
                pr.title = s(p.title)
                pr.description = s(p.description)
                pr.args = UnsafePointer(buf.baseAddress)
                return r.add_prompt(r.ctx, &pr)
            }
            guard st == MCPP_OK else { return MCPP_E_INVALID }
        }
        // set_list_cache is 1.1, the last field of mcpp_registry: an older registry just loses the hint.
        if Int(r.struct_size) >= MemoryLayout<mcpp_registry>.size, let setListCache = r.set_list_cache {
            for hint in d.listCache {
                guard setListCache(r.ctx, hint.lists.rawValue, hint.ttlMs, hint.scope.raw) == MCPP_OK else {
                    return MCPP_E_INVALID
                }
            }
        }
        return MCPP_OK
    }
}
