import MCPProtocol

/// A plugin's own series (the `org.mcp-supervisor.metrics/1` extension of mcp_plugin.h), as the host reports
/// them in its `metrics` answer and the supervisor publishes them: `mcp_plugin_<name>` with the `server`, `group`
/// and `replica` labels, then the plugin's fixed labels (docs/metrics.md, "Plugin series").
///
/// The rules are checked twice with the same code: by the host when the plugin registers a series (the plugin
/// gets MCPP_E_INVALID and the log names what is wrong), and by the supervisor when it decodes a host's answer
/// (a family that breaks them is left off the page, so a broken host cannot make the page invalid).
public struct PluginMetricFamily: Sendable, Equatable {
    public var name: String
    public var kind: PluginMetrics.Kind
    public var help: String
    public var labelNames: [String]
    /// A histogram's upper bounds (finite, increasing); empty for counters and gauges.
    public var bounds: [Double]
    public var series: [PluginMetricSeries]

    public init(
        name: String, kind: PluginMetrics.Kind, help: String, labelNames: [String], bounds: [Double],
        series: [PluginMetricSeries]
    ) {
        self.name = name
        self.kind = kind
        self.help = help
        self.labelNames = labelNames
        self.bounds = bounds
        self.series = series
    }
}

public struct PluginMetricSeries: Sendable, Equatable {
    /// One value per label name of the family, in its order.
    public var labelValues: [String]
    /// A counter's or gauge's value; a histogram's sum.
    public var value: Double
    /// A histogram's non-cumulative counts: one per bound, then +Inf. Empty for counters and gauges.
    public var buckets: [Int]

    public init(labelValues: [String], value: Double, buckets: [Int]) {
        self.labelValues = labelValues
        self.value = value
        self.buckets = buckets
    }
}

public enum PluginMetrics {
    public static let extensionID = "org.mcp-supervisor.metrics/1"
    /// Every plugin series' name starts with this on the page.
    public static let prefix = "mcp_plugin_"
    public static let maxSeries = 256
    public static let maxLabels = 8
    public static let maxNameBytes = 64
    public static let maxHelpBytes = 512
    public static let maxLabelValueBytes = 256
    public static let maxBuckets = 32
    /// Labels the supervisor writes itself (and Prometheus's own).
    public static let reservedLabels: Set<String> = ["server", "group", "replica", "le", "quantile"]
    /// The histogram buckets when the plugin names none: the host's own duration buckets.
    public static let defaultBounds = TrafficMetrics.durationBuckets

    /// The values of MCPP_METRIC_*.
    public enum Kind: Int32, Sendable {
        case counter = 0
        case gauge = 1
        case histogram = 2

        public var name: String {
            switch self {
            case .counter: "counter"
            case .gauge: "gauge"
            case .histogram: "histogram"
            }
        }
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`.
    static func isIdentifier(_ s: String) -> Bool {
        guard let first = s.utf8.first, !(48...57).contains(first) else { return false }
        return s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) || $0 == 95 }
    }

    /// What is wrong with a series' name for its kind, or nil.
    public static func nameProblem(_ name: String, kind: Kind) -> String? {
        if name.isEmpty || name.utf8.count > maxNameBytes {
            return "the name must be 1 to \(maxNameBytes) bytes"
        }
        if !isIdentifier(name) { return "the name '\(name)' is not [a-zA-Z_][a-zA-Z0-9_]*" }
        if kind == .counter {
            return name.hasSuffix("_total") && name != "_total" ? nil : "a counter's name must end in _total"
        }
        for suffix in ["_total", "_bucket", "_sum", "_count", "_created"] where name.hasSuffix(suffix) {
            return "only a counter's name may end in \(suffix == "_total" ? suffix : suffix + " (reserved)")"
        }
        return nil
    }

    /// What is wrong with a label name, or nil.
    public static func labelProblem(_ label: String) -> String? {
        if !isIdentifier(label) { return "the label name '\(label)' is not [a-zA-Z_][a-zA-Z0-9_]*" }
        if label.hasPrefix("__") { return "the label name '\(label)' starts with __ (reserved)" }
        if reservedLabels.contains(label) { return "the label name '\(label)' is the supervisor's" }
        return nil
    }

    /// What is wrong with a family's shape (help, label names, bounds), or nil.
    public static func shapeProblem(kind: Kind, help: String, labelNames: [String], bounds: [Double]) -> String? {
        if help.isEmpty || help.utf8.count > maxHelpBytes { return "the help text must be 1 to \(maxHelpBytes) bytes" }
        if labelNames.count > maxLabels { return "more than \(maxLabels) labels" }
        for label in labelNames {
            if let p = labelProblem(label) { return p }
        }
        if Set(labelNames).count != labelNames.count { return "a label name is given twice" }
        if kind == .histogram {
            if bounds.isEmpty || bounds.count > maxBuckets { return "a histogram needs 1 to \(maxBuckets) buckets" }
            for (i, b) in bounds.enumerated() {
                if !b.isFinite { return "bucket \(i) is not a finite number" }
                if i > 0, b <= bounds[i - 1] { return "the buckets are not strictly increasing (bucket \(i))" }
            }
        } else if !bounds.isEmpty {
            return "only a histogram has buckets"
        }
        return nil
    }

    /// What is wrong with one label value, or nil.
    public static func valueProblem(_ value: String) -> String? {
        value.utf8.count > maxLabelValueBytes ? "a label value is longer than \(maxLabelValueBytes) bytes" : nil
    }

    /// What is wrong with a whole family as decoded from a host, or nil.
    public static func familyProblem(_ f: PluginMetricFamily) -> String? {
        if let p = nameProblem(f.name, kind: f.kind) { return p }
        if let p = shapeProblem(kind: f.kind, help: f.help, labelNames: f.labelNames, bounds: f.bounds) {
            return p
        }
        return nil
    }
}

extension PluginMetricFamily {
    enum Key {
        static let name = "n"
        static let kind = "k"
        static let help = "h"
        static let labels = "l"
        static let bounds = "b"
        static let series = "s"
    }

    func encoded() -> JSONValue {
        .object([
            Key.name: .string(name), Key.kind: .int(Int64(kind.rawValue)), Key.help: .string(help),
            Key.labels: .array(labelNames.map { .string($0) }), Key.bounds: .array(bounds.map { .double($0) }),
            Key.series: .array(
                series.map { s in
                    .array([
                        .array(s.labelValues.map { .string($0) }), .double(s.value),
                        .array(s.buckets.map { .int(Int64($0)) }),
                    ])
                }),
        ])
    }

    /// A family from a host's answer; nil when it is not well formed or breaks the rules. Series that do not fit
    /// the family (label count, bucket count) are skipped, as are series beyond `PluginMetrics.maxSeries`.
    static func decode(_ v: JSONValue) -> PluginMetricFamily? {
        guard let name = v[Key.name]?.stringValue, let k = v[Key.kind].flatMap(intValue),
            let kind = PluginMetrics.Kind(rawValue: Int32(clamping: k)), let help = v[Key.help]?.stringValue,
            case .array(let l) = v[Key.labels], case .array(let b) = v[Key.bounds], case .array(let s) = v[Key.series]
        else { return nil }
        let labelNames = l.compactMap(\.stringValue)
        let bounds = b.compactMap(\.numberValue)
        guard labelNames.count == l.count, bounds.count == b.count else { return nil }
        var family = PluginMetricFamily(
            name: name, kind: kind, help: help, labelNames: labelNames, bounds: bounds, series: [])
        guard PluginMetrics.familyProblem(family) == nil else { return nil }
        for row in s.prefix(PluginMetrics.maxSeries) {
            guard case .array(let r) = row, r.count == 3, case .array(let values) = r[0],
                let value = r[1].numberValue, case .array(let counts) = r[2]
            else { continue }
            let labelValues = values.compactMap(\.stringValue)
            let buckets = counts.compactMap(intValue)
            guard labelValues.count == labelNames.count, labelValues.count == values.count,
                labelValues.allSatisfy({ PluginMetrics.valueProblem($0) == nil }),
                buckets.count == counts.count,
                buckets.count == (kind == .histogram ? bounds.count + 1 : 0)
            else { continue }
            family.series.append(PluginMetricSeries(labelValues: labelValues, value: value, buckets: buckets))
        }
        return family
    }
}
