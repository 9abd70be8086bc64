import CHostSupport
import Contracts
import Locking
import PluginABI

/// The series a plugin registered through the metrics extension (`org.mcp-supervisor.metrics/1`). Registration
/// runs here, under a lock, and checks the rules of `PluginMetrics`; the values live in C cells
/// (`mcph_metric_*`) that the plugin updates without a lock and without entering Swift, and that are read when
/// the supervisor asks for metrics. Series are never removed (the plugin holds their handles for the life of
/// the process), so a cell is never freed.
final class PluginMetricsRegistry: Sendable {
    private struct Family {
        var kind: PluginMetrics.Kind
        var help: String
        var labelNames: [String]
        var bounds: [Double]
        var cells: [(values: [String], address: UInt)] = []
        var index: [[String]: Int] = [:]
    }

    private struct State {
        var families: [String: Family] = [:]
        var order: [String] = []
        var count = 0
    }

    private let state = Locked(State())

    enum Failure: Error, Equatable {
        case invalid(String)
        case full
    }

    /// Registers (or finds again) one series; the cell's address is the plugin's handle.
    func register(
        kind rawKind: Int32, name: String, help: String, labels: [(String, String)], bounds given: [Double]
    ) -> Result<OpaquePointer, Failure> {
        guard let kind = PluginMetrics.Kind(rawValue: rawKind) else {
            return .failure(.invalid("the kind \(rawKind) is not MCPP_METRIC_COUNTER, _GAUGE or _HISTOGRAM"))
        }
        if let p = PluginMetrics.nameProblem(name, kind: kind) { return .failure(.invalid(p)) }
        let bounds = kind == .histogram && given.isEmpty ? PluginMetrics.defaultBounds : given
        let labelNames = labels.map(\.0), values = labels.map(\.1)
        if let p = PluginMetrics.shapeProblem(kind: kind, help: help, labelNames: labelNames, bounds: bounds) {
            return .failure(.invalid(p))
        }
        for v in values {
            if let p = PluginMetrics.valueProblem(v) { return .failure(.invalid(p)) }
        }
        return state.withLock { s in
            if let family = s.families[name] {
                guard family.kind == kind, family.help == help, family.labelNames == labelNames,
                    family.bounds == bounds
                else {
                    return .failure(
                        .invalid(
                            "'\(name)' is registered already as a \(family.kind.name) with other help, labels "
                                + "(\(family.labelNames.joined(separator: ", "))) or buckets"))
                }
                if let i = family.index[values], let cell = OpaquePointer(bitPattern: family.cells[i].address) {
                    return .success(cell)
                }
            }
            guard s.count < PluginMetrics.maxSeries else { return .failure(.full) }
            guard
                let cell = bounds.withUnsafeBufferPointer({ mcph_metric_new(kind.rawValue, $0.baseAddress, $0.count) })
            else { return .failure(.invalid("out of memory")) }
            var family =
                s.families[name] ?? Family(kind: kind, help: help, labelNames: labelNames, bounds: bounds)
            if s.families[name] == nil { s.order.append(name) }
            family.index[values] = family.cells.count
            family.cells.append((values, UInt(bitPattern: cell)))
            s.families[name] = family
            s.count += 1
            return .success(cell)
        }
    }

    /// Every family with its series' values now.
    func snapshot() -> [PluginMetricFamily] {
        state.withLock { s in
            s.order.map { name in
                let f = s.families[name]!
                var room = [UInt64](repeating: 0, count: f.kind == .histogram ? f.bounds.count + 1 : 0)
                let series = f.cells.map { cell -> PluginMetricSeries in
                    var value = 0.0
                    let pointer = OpaquePointer(bitPattern: cell.address)
                    room.withUnsafeMutableBufferPointer { mcph_metric_read(pointer, &value, $0.baseAddress, $0.count) }
                    return PluginMetricSeries(
                        labelValues: cell.values, value: value, buckets: room.map { Int(clamping: $0) })
                }
                return PluginMetricFamily(
                    name: name, kind: f.kind, help: f.help, labelNames: f.labelNames,
                    bounds: f.kind == .histogram ? f.bounds : [], series: series)
            }
        }
    }
}

/// The extension's table for one plugin instance (`ctx` is the instance, as in `mcpp_host`); static for the life
/// of the process.
func makeMetricsTable(context: UnsafeMutableRawPointer) -> UnsafePointer<mcpp_metrics> {
    var table = mcpp_metrics()
    table.struct_size = UInt32(MemoryLayout<mcpp_metrics>.size)
    table.ctx = context
    table.register_metric = { ctx, kind, name, nameLen, help, helpLen, labels, labelCount, buckets, bucketCount, out in
        guard let ctx, let out else { return MCPP_E_INVALID }
        let instance = Unmanaged<PluginInstance>.fromOpaque(ctx).takeUnretainedValue()
        return instance.registerMetric(
            kind: kind, name: mcpp_str(ptr: name, len: nameLen), help: mcpp_str(ptr: help, len: helpLen),
            labels: labels, labelCount: labelCount, buckets: buckets,
            bucketCount: bucketCount, out: out)
    }
    table.add = mcph_metric_add
    table.set = mcph_metric_set
    table.observe = mcph_metric_observe
    let pointer = UnsafeMutablePointer<mcpp_metrics>.allocate(capacity: 1)
    pointer.initialize(to: table)
    return UnsafePointer(pointer)
}

extension PluginInstance {
    /// mcpp_metrics.register_metric: reads the plugin's strings, registers, and logs what is wrong on failure.
    func registerMetric(
        kind: Int32, name: mcpp_str, help: mcpp_str, labels: UnsafePointer<mcpp_str>?, labelCount: Int,
        buckets: UnsafePointer<Double>?, bucketCount: Int, out: UnsafeMutablePointer<OpaquePointer?>
    ) -> mcpp_status {
        func fail(_ why: String) -> mcpp_status {
            log("metrics: refused series '\(text(name.ptr, name.len) ?? "?")': \(why)")
            return MCPP_E_INVALID
        }
        guard let metricName = text(name.ptr, name.len) else { return fail("the name is not UTF-8") }
        guard let helpText = text(help.ptr, help.len) else { return fail("the help text is not UTF-8") }
        guard labelCount <= PluginMetrics.maxLabels else { return fail("more than \(PluginMetrics.maxLabels) labels") }
        guard labelCount == 0 || labels != nil else { return fail("labels is NULL") }
        guard bucketCount <= PluginMetrics.maxBuckets else {
            return fail("more than \(PluginMetrics.maxBuckets) buckets")
        }
        guard bucketCount == 0 || buckets != nil else { return fail("buckets is NULL") }
        var pairs: [(String, String)] = []
        for i in 0..<labelCount {
            guard let key = text(labels![2 * i].ptr, labels![2 * i].len),
                let value = text(labels![2 * i + 1].ptr, labels![2 * i + 1].len)
            else {
                return fail("label \(i) is not UTF-8")
            }
            pairs.append((key, value))
        }
        let bounds = bucketCount == 0 ? [] : Array(UnsafeBufferPointer(start: buckets, count: bucketCount))
        switch metrics.register(kind: kind, name: metricName, help: helpText, labels: pairs, bounds: bounds) {
        case .success(let cell):
            out.pointee = cell
            return MCPP_OK
        case .failure(.invalid(let why)):
            return fail(why)
        case .failure(.full):
            log("metrics: refused series '\(metricName)': the plugin has \(PluginMetrics.maxSeries) series already")
            return MCPP_E_TOO_LARGE
        }
    }
}
