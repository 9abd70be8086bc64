/// The `/metrics` page as values: metric families with their samples, read from swift-prometheus's text output or
/// built by `TrafficRendering`, merged into one page and written as the Prometheus text format 0.0.4 or as
/// OpenMetrics 1.0.0 (when the scraper's Accept header asks for `application/openmetrics-text`).
///
/// Why not swift-prometheus for everything: its registry renders text 0.0.4 only, and its histograms record one
/// value at a time, so the hosts' histograms (bucket counts accumulated in another process) cannot go into it.
/// The supervisor's own series still come from the registry (`SupervisorMetrics`); this file reads that text back
/// into families, so that the page has one HELP and TYPE per family even where both sides have series of the
/// same family (`mcp_server_errors_total`: the crashes the supervisor counts, the other types the hosts count).
enum Exposition {
    enum Format: Sendable {
        /// `text/plain; version=0.0.4`.
        case text
        /// `application/openmetrics-text; version=1.0.0`.
        case openMetrics

        var contentType: String {
            switch self {
            case .text: return "text/plain; version=0.0.4; charset=utf-8"
            case .openMetrics: return "application/openmetrics-text; version=1.0.0; charset=utf-8"
            }
        }

        /// OpenMetrics when the Accept header names it (with any parameters, in any position), else text 0.0.4.
        static func negotiate(accept: [String]) -> Format {
            for header in accept {
                for item in header.split(separator: ",") {
                    let media = item.split(separator: ";").first.map { $0.trimmingSpaces.lowercased() } ?? ""
                    if media == "application/openmetrics-text" {
                        // `q=0` means "not this one".
                        let q = item.split(separator: ";").dropFirst().map { $0.trimmingSpaces }
                        if q.contains(where: { $0 == "q=0" || $0 == "q=0.0" || $0 == "q=0.00" || $0 == "q=0.000" }) {
                            continue
                        }
                        return .openMetrics
                    }
                }
            }
            return .text
        }
    }

    enum Kind: String, Sendable {
        case counter, gauge, histogram, summary, untyped
    }

    struct Sample: Sendable {
        /// The sample's full name (`x_total`, `x_bucket`, `x_sum`, ...).
        var name: String
        var labels: [(String, String)]
        var value: Double
    }

    struct Family: Sendable {
        /// As in text 0.0.4: a counter's name ends in `_total` (OpenMetrics drops it from the family name).
        var name: String
        var kind: Kind
        var help: String
        var samples: [Sample] = []
    }

    // MARK: Reading text 0.0.4 (the registry's output)

    /// The families of a text-format page, in order; a sample without a TYPE line before it is `untyped`.
    static func parse(_ bytes: [UInt8]) -> [Family] {
        var families: [Family] = []
        var index: [String: Int] = [:]
        func family(_ name: String) -> Int {
            if let i = index[name] { return i }
            families.append(Family(name: name, kind: .untyped, help: ""))
            index[name] = families.count - 1
            return families.count - 1
        }
        var current: Int?
        for raw in bytes.split(separator: UInt8(ascii: "\n")) {
            if raw.first != UInt8(ascii: "#") {
                guard let sample = raw.withUnsafeBufferPointer({ parseSample(bytes: $0) }) else { continue }
                if let c = current, belongs(sample.name, to: families[c]) {
                    families[c].samples.append(sample)
                } else {
                    let i = family(sample.name)
                    families[i].samples.append(sample)
                    current = i
                }
                continue
            }
            let line = String(decoding: raw, as: UTF8.self)
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let rest = line.dropFirst(7)
                let name = String(rest.prefix { $0 != " " })
                let text = rest.dropFirst(name.count + 1)
                let i = family(name)
                if line.hasPrefix("# HELP ") {
                    families[i].help = unescape(text)
                } else {
                    families[i].kind = Kind(rawValue: String(text)) ?? .untyped
                }
                current = i
                continue
            }
            // Any other line starting with # is a comment.
        }
        return families
    }

    private static func belongs(_ sample: String, to family: Family) -> Bool {
        if sample == family.name { return true }
        guard family.kind == .histogram || family.kind == .summary else { return false }
        return ["_bucket", "_sum", "_count"].contains { sample == family.name + $0 }
    }

    /// A HELP text's or a label value's escapes (`\\\\`, `\\"`, `\\n`) resolved.
    private static func unescape<S: StringProtocol>(_ text: S) -> String {
        var out = ""
        var escaped = false
        for c in text {
            if escaped {
                out.append(c == "n" ? "\n" : c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// `name{a="x",b="y"} value [timestamp]` or `name value`. Works on the line's bytes and makes a String only
    /// of each finished name and value: this runs for every sample of every scrape (a 50-server page has ~4,000),
    /// and a scalar-by-scalar String build made it 40 % of the scrape's CPU (perf, docs/performance.md).
    static func parseSample(bytes c: UnsafeBufferPointer<UInt8>) -> Sample? {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\"), space = UInt8(ascii: " ")
        let open = UInt8(ascii: "{"), close = UInt8(ascii: "}"), comma = UInt8(ascii: ","), equals = UInt8(ascii: "=")
        func text(_ r: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: c[r]), as: UTF8.self) }
        var i = 0
        while i < c.count, c[i] != open, c[i] != space { i += 1 }
        guard i > 0 else { return nil }
        let name = text(0..<i)
        var labels: [(String, String)] = []
        if i < c.count, c[i] == open {
            i += 1
            while i < c.count, c[i] != close {
                while i < c.count, c[i] == comma || c[i] == space { i += 1 }
                if i < c.count, c[i] == close { break }
                let keyStart = i
                while i < c.count, c[i] != equals { i += 1 }
                var keyEnd = i
                while keyEnd > keyStart, c[keyEnd - 1] == space { keyEnd -= 1 }
                guard i + 1 < c.count, c[i + 1] == quote else { return nil }
                i += 2
                let valueStart = i
                var plain = true
                while i < c.count, c[i] != quote {
                    if c[i] == backslash {
                        plain = false
                        i += 1
                    }
                    i += 1
                }
                guard i < c.count else { return nil }
                var value = text(valueStart..<i)
                if !plain { value = unescape(value) }
                i += 1
                labels.append((text(keyStart..<keyEnd), value))
            }
            guard i < c.count else { return nil }
            i += 1
        }
        while i < c.count, c[i] == space { i += 1 }
        let valueStart = i
        while i < c.count, c[i] != space { i += 1 }
        guard i > valueStart, let value = number(Substring(text(valueStart..<i))) else { return nil }
        return Sample(name: name, labels: labels, value: value)
    }

    private static func number(_ token: Substring) -> Double? {
        switch token {
        case "+Inf", "Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default: return Double(token)
        }
    }

    // MARK: Merging

    /// `extra`'s families added to `base`; where both have a family of one name, its samples are joined (the
    /// first HELP and TYPE kept) and samples with the same name and labels are added up.
    static func merge(_ base: [Family], _ extra: [Family]) -> [Family] {
        var out = base
        var index: [String: Int] = [:]
        for (i, f) in out.enumerated() { index[f.name] = i }
        for f in extra {
            guard let i = index[f.name] else {
                index[f.name] = out.count
                out.append(f)
                continue
            }
            if out[i].help.isEmpty { out[i].help = f.help }
            var seen: [String: Int] = [:]
            for (j, s) in out[i].samples.enumerated() { seen[key(s)] = j }
            for s in f.samples {
                if let j = seen[key(s)] {
                    out[i].samples[j].value += s.value
                } else {
                    seen[key(s)] = out[i].samples.count
                    out[i].samples.append(s)
                }
            }
        }
        return out
    }

    private static func key(_ s: Sample) -> String {
        s.name + "\u{0}" + s.labels.sorted { $0.0 < $1.0 }.map { $0.0 + "\u{1}" + $0.1 }.joined(separator: "\u{0}")
    }

    // MARK: Writing

    /// The page, families sorted by name; OpenMetrics ends with `# EOF`.
    static func render(_ families: [Family], _ format: Format) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(families.reduce(0) { $0 + 100 + $1.samples.count * 120 })
        for family in families.sorted(by: { $0.name < $1.name }) {
            switch format {
            case .text: text(family, into: &out)
            case .openMetrics: openMetrics(family, into: &out)
            }
        }
        if format == .openMetrics { out.append(contentsOf: "# EOF\n".utf8) }
        return out
    }

    private static func text(_ family: Family, into out: inout [UInt8]) {
        if !family.help.isEmpty {
            out.append(contentsOf: "# HELP \(family.name) ".utf8)
            escape(family.help, quotes: false, into: &out)
            out.append(UInt8(ascii: "\n"))
        }
        out.append(contentsOf: "# TYPE \(family.name) \(family.kind.rawValue)\n".utf8)
        for sample in family.samples {
            line(sample.name, sample.labels, value(sample.value), into: &out)
        }
    }

    private static func openMetrics(_ family: Family, into out: inout [UInt8]) {
        let name =
            family.kind == .counter && family.name.hasSuffix("_total")
            ? String(family.name.dropLast("_total".count)) : family.name
        out.append(contentsOf: "# TYPE \(name) \(family.kind == .untyped ? "unknown" : family.kind.rawValue)\n".utf8)
        if !family.help.isEmpty {
            out.append(contentsOf: "# HELP \(name) ".utf8)
            escape(family.help, quotes: true, into: &out)
            out.append(UInt8(ascii: "\n"))
        }
        for sample in family.samples {
            var sampleName = sample.name
            if family.kind == .counter, sampleName == name { sampleName += "_total" }
            var labels = sample.labels
            if family.kind == .histogram, let i = labels.firstIndex(where: { $0.0 == "le" }),
                let bound = number(Substring(labels[i].1))
            {
                labels[i].1 = canonical(bound)
            }
            line(sampleName, labels, value(sample.value), into: &out)
        }
    }

    private static func line(_ name: String, _ labels: [(String, String)], _ value: String, into out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        if !labels.isEmpty {
            out.append(UInt8(ascii: "{"))
            for (i, (key, text)) in labels.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: key.utf8)
                out.append(contentsOf: "=\"".utf8)
                escape(text, quotes: true, into: &out)
                out.append(UInt8(ascii: "\""))
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: value.utf8)
        out.append(UInt8(ascii: "\n"))
    }

    /// Backslash, line feed and (in label values, and in OpenMetrics help) the double quote.
    static func escape(_ text: String, quotes: Bool, into out: inout [UInt8]) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\"") where quotes: out.append(contentsOf: #"\""#.utf8)
            default: out.append(byte)
            }
        }
    }

    /// A sample value: integers without a fraction, `+Inf`, `-Inf`, `NaN`, else the shortest exact form.
    static func value(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }

    /// A bucket bound as text 0.0.4 writes it (`0.005`, `1`, `+Inf`).
    static func bound(_ v: Double) -> String { value(v) }

    /// OpenMetrics' canonical number for `le`: `1.0`, `0.005`, `+Inf`.
    static func canonical(_ v: Double) -> String {
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v.isNaN { return "NaN" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) + ".0" }
        return "\(v)"
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}

extension String {
    fileprivate var trimmingSpaces: String { Substring(self).trimmingSpaces }
}
