/// A series of the plugin's own, published by the supervisor's metrics endpoint as `mcp_plugin_<name>` with the
/// labels `server`, `group` and `replica` and the fixed labels given here (the host extension
/// `org.mcp-supervisor.metrics/1`; docs/metrics.md, "Plugin series", has the rules and limits).
///
/// Register a series once — in `onCreate` or later, from any thread — and keep it; updates are lock-free calls
/// into the host. Registration returns nil when the host has no metrics extension (an older host) or refused the
/// series (its log says why), so a plugin works the same without its metrics:
///
/// ```swift
/// let deploys = PluginMetric.counter("deploy_runs_total", help: "Deploys run.", labels: ["env": "prod"])
/// deploys?.add()
/// ```
public struct PluginMetric: Sendable {
    /// The handle and the extension table, as addresses (both live as long as the process).
    private let handle: UInt
    private let table: UInt

    public static func counter(_ name: String, help: String, labels: KeyValuePairs<String, String> = [:])
        -> PluginMetric?
    {
        register(MCPP_METRIC_COUNTER, name, help, labels, [])
    }

    public static func gauge(_ name: String, help: String, labels: KeyValuePairs<String, String> = [:])
        -> PluginMetric?
    {
        register(MCPP_METRIC_GAUGE, name, help, labels, [])
    }

    /// `buckets`: 1 to 32 increasing upper bounds; empty takes the host's duration buckets (0.0005 s to 30 s).
    public static func histogram(
        _ name: String, help: String, labels: KeyValuePairs<String, String> = [:], buckets: [Double] = []
    ) -> PluginMetric? {
        register(MCPP_METRIC_HISTOGRAM, name, help, labels, buckets)
    }

    /// Counter or gauge: adds `delta` (a counter ignores a negative one). False when the host refused it.
    @discardableResult public func add(_ delta: Double = 1) -> Bool {
        extensionTable.pointee.add(OpaquePointer(bitPattern: handle), delta) == MCPP_OK
    }

    /// Gauge: sets the value. False when the host refused it (another kind, NaN, an infinity).
    @discardableResult public func set(_ value: Double) -> Bool {
        extensionTable.pointee.set(OpaquePointer(bitPattern: handle), value) == MCPP_OK
    }

    /// Histogram: records one observation. False when the host refused it.
    @discardableResult public func observe(_ value: Double) -> Bool {
        extensionTable.pointee.observe(OpaquePointer(bitPattern: handle), value) == MCPP_OK
    }

    private var extensionTable: UnsafePointer<mcpp_metrics> { UnsafePointer(bitPattern: table)! }

    private static func register(
        _ kind: Int32, _ name: String, _ help: String, _ labels: KeyValuePairs<String, String>, _ buckets: [Double]
    ) -> PluginMetric? {
        guard let host = Runtime.host, host.pointee.abi_minor >= 1,
            let raw = host.pointee.get_extension(host.pointee.ctx, MCPP_METRICS_EXTENSION)
        else { return nil }
        let m = raw.assumingMemoryBound(to: mcpp_metrics.self)
        guard Int(m.pointee.struct_size) >= MemoryLayout<mcpp_metrics>.size else { return nil }
        // The strings only have to live through the call (the host copies them): one buffer holds them all.
        let texts = [name, help] + labels.flatMap { [$0.key, $0.value] }
        var bytes: [UInt8] = []
        var ranges: [(Int, Int)] = []
        for t in texts {
            ranges.append((bytes.count, t.utf8.count))
            bytes.append(contentsOf: t.utf8)
        }
        var out: OpaquePointer? = nil
        let status = bytes.withUnsafeBufferPointer { all -> mcpp_status in
            let base = UnsafeRawPointer(all.baseAddress)?.assumingMemoryBound(to: CChar.self)
            let strs = ranges.map { r in mcpp_str(ptr: r.1 == 0 ? nil : base.map { $0 + r.0 }, len: r.1) }
            return strs.withUnsafeBufferPointer { s in
                buckets.withUnsafeBufferPointer { b in
                    m.pointee.register_metric(
                        m.pointee.ctx, kind, s[0].ptr, s[0].len, s[1].ptr, s[1].len,
                        s.count > 2 ? s.baseAddress! + 2 : nil, labels.count, b.isEmpty ? nil : b.baseAddress,
                        b.count, &out)
                }
            }
        }
        guard status == MCPP_OK, let out else { return nil }
        return PluginMetric(handle: UInt(bitPattern: out), table: UInt(bitPattern: m))
    }
}
