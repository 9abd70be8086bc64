/// One request in flight, as a handler sees it: its arguments, progress and log reporting, cancellation.
///
/// Valid only while the handler runs; the kit finishes the call when the handler returns or throws.
/// ABI 1.1's input requests (`elicit`, `sample`, `roots`), request state and cache hints are in Input.swift.
public final class Call: @unchecked Sendable {
    // @unchecked: the host's functions are thread-safe ([any] in mcp_plugin.h); the pointers never change.
    let host: UnsafePointer<mcpp_host>
    let handle: OpaquePointer
    /// Lets the host's handler thread go while the handler waits for the client (see Input.swift).
    let park: @Sendable () -> Void

    init(host: UnsafePointer<mcpp_host>, handle: OpaquePointer, park: @escaping @Sendable () -> Void = {}) {
        self.host = host
        self.handle = handle
        self.park = park
    }

    // MARK: Arguments

    private func read<T>(
        _ key: String, _ body: (UnsafePointer<CChar>, Int) -> (mcpp_status, T?)
    ) throws -> T? {
        let (status, value) = key.withCString { body($0, key.utf8.count) }
        switch status {
        case MCPP_OK: return value
        case MCPP_E_NOT_FOUND: return nil
        case MCPP_E_TYPE: throw PluginError.invalidParams("argument '\(key)' has the wrong type")
        default: throw PluginError.internalError("reading argument '\(key)' failed with status \(status)")
        }
    }

    private func required<T>(_ key: String, _ value: T?) throws -> T {
        guard let value else { throw PluginError.invalidParams("missing required argument '\(key)'") }
        return value
    }

    /// A string argument, or nil when absent. Throws `invalidParams` for another type.
    public func optionalString(_ key: String) throws -> String? {
        try read(key) { k, n in
            var p: UnsafePointer<CChar>? = nil
            var len = 0
            let st = host.pointee.arg_string(handle, k, n, &p, &len)
            guard st == MCPP_OK, let p else { return (st, nil) }
            let s = String(
                decoding: UnsafeRawBufferPointer(start: p, count: len).bindMemory(to: UInt8.self), as: UTF8.self)
            return (st, s)
        }
    }

    public func string(_ key: String) throws -> String { try required(key, optionalString(key)) }

    public func optionalInt(_ key: String) throws -> Int64? {
        try read(key) { k, n in
            var v: Int64 = 0
            let st = host.pointee.arg_int(handle, k, n, &v)
            return (st, v)
        }
    }

    public func int(_ key: String) throws -> Int64 { try required(key, optionalInt(key)) }

    public func optionalDouble(_ key: String) throws -> Double? {
        try read(key) { k, n in
            var v: Double = 0
            let st = host.pointee.arg_double(handle, k, n, &v)
            return (st, v)
        }
    }

    public func double(_ key: String) throws -> Double { try required(key, optionalDouble(key)) }

    public func optionalBool(_ key: String) throws -> Bool? {
        try read(key) { k, n in
            var v: Int32 = 0
            let st = host.pointee.arg_bool(handle, k, n, &v)
            return (st, v != 0)
        }
    }

    public func bool(_ key: String) throws -> Bool { try required(key, optionalBool(key)) }

    /// An argument as JSON text, or nil when absent.
    public func json(_ key: String) throws -> String? {
        try read(key) { k, n in jsonText(k, n) }
    }

    /// All arguments as one JSON object text.
    public func argumentsJSON() -> String { jsonText(nil, 0).1 ?? "{}" }

    private func jsonText(_ k: UnsafePointer<CChar>?, _ n: Int) -> (mcpp_status, String?) {
        var p: UnsafePointer<CChar>? = nil
        var len = 0
        let st = host.pointee.arg_json(handle, k, n, &p, &len)
        guard st == MCPP_OK, let p else { return (st, nil) }
        return (
            st, String(decoding: UnsafeRawBufferPointer(start: p, count: len).bindMemory(to: UInt8.self), as: UTF8.self)
        )
    }

    // MARK: While running

    /// True once the client cancelled, went away or the deadline passed (Swift task cancellation follows too).
    public var isCancelled: Bool { host.pointee.is_cancelled(handle) != 0 }

    /// Reports progress (sent only if the client asked for it). `total` nil: unknown.
    public func progress(_ progress: Double, total: Double? = nil, message: String? = nil) {
        let m = message ?? ""
        _ = m.withCString { host.pointee.progress(handle, progress, total ?? -1, $0, m.utf8.count) }
    }

    /// Log levels of `log(_:_:)`.
    public enum LogLevel: Int32, Sendable {
        case emergency = 0, alert, critical, error, warning, notice, info, debug
    }

    /// A log message tied to this call (to the client if it asked for that level, and to the host's log).
    public func log(_ level: LogLevel, _ message: String) {
        _ = message.withCString { host.pointee.call_log(handle, level.rawValue, $0, message.utf8.count) }
    }
}
