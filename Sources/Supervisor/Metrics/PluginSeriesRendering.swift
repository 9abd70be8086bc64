import Contracts

/// The plugins' own families (`mcp_plugin_*`, docs/metrics.md, "Plugin series") from the replicas' answers of one
/// scrape: one family per name across every server and replica, the replica's `server`, `group` and `replica`
/// labels first, then the plugin's.
///
/// A name means one family on the page, so the first replica (in page order) to report a name decides its kind,
/// help, label names and buckets; a replica whose family of that name differs has it left off (and counted in
/// `conflicts`), as has a series whose labels were already written by its replica.
enum PluginSeriesRendering {
    struct Result: Equatable {
        /// Families left off because another replica reported the same name with another shape: "server/name".
        var conflicts: [String] = []
    }

    @discardableResult
    static func write(_ replicas: [TrafficRendering.Replica], into page: inout PageWriter) -> Result {
        var result = Result()
        var order: [String] = []
        var first: [String: PluginMetricFamily] = [:]
        var members: [String: [(Int, PluginMetricFamily)]] = [:]
        for (i, r) in replicas.enumerated() {
            for f in r.snapshot.plugin {
                if let shape = first[f.name] {
                    guard shape.kind == f.kind, shape.help == f.help, shape.labelNames == f.labelNames,
                        shape.bounds == f.bounds
                    else {
                        result.conflicts.append(r.server + "/" + f.name)
                        continue
                    }
                } else {
                    first[f.name] = f
                    order.append(f.name)
                }
                members[f.name, default: []].append((i, f))
            }
        }
        for name in order {
            let shape = first[name]!
            let full = PluginMetrics.prefix + name
            let kind: Exposition.Kind =
                switch shape.kind {
                case .counter: .counter
                case .gauge: .gauge
                case .histogram: .histogram
                }
            page.family(full, kind, help: shape.help)
            let bounds =
                shape.bounds.map { page.format == .openMetrics ? Exposition.canonical($0) : Exposition.bound($0) }
                + ["+Inf"]
            for (i, f) in members[name]! {
                let r = replicas[i]
                var written = Set<[String]>()
                for s in f.series where written.insert(s.labelValues).inserted {
                    let labels = PageWriter.Labels(
                        [("server", r.server), ("group", r.group), ("replica", String(r.index))]
                            + Array(zip(shape.labelNames, s.labelValues)))
                    guard shape.kind == .histogram else {
                        page.begin(full, labels)
                        page.end(s.value)
                        continue
                    }
                    var running = 0
                    for (b, bound) in bounds.enumerated() {
                        running += s.buckets[b]
                        page.begin(full + "_bucket", labels)
                        page.label("le", bound)
                        page.end(running)
                    }
                    page.begin(full + "_sum", labels)
                    page.end(s.value)
                    page.begin(full + "_count", labels)
                    page.end(running)
                }
            }
        }
        return result
    }
}
