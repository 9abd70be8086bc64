/// The `/metrics` page written straight into bytes (`PageWriter`), as the Prometheus text format 0.0.4 or as
/// OpenMetrics 1.0.0 (when the scraper's Accept header asks for `application/openmetrics-text`).
///
/// The supervisor's own series come from swift-prometheus's registry (`SupervisorMetrics`), whose text 0.0.4 output
/// goes onto the page as it is, or converted line by line to OpenMetrics (`appendRegistryAsOpenMetrics`); the
/// host-derived families (`TrafficRendering`) are written here, because the registry's histograms (2.4.1) record one
/// value at a time and cannot take bucket counts accumulated in another process. The two sides have no family in
/// common (the supervisor's count of calls lost in crashes is written with the hosts' `mcp_server_errors_total`),
/// so each family has one HELP and TYPE. Nothing is parsed back or kept as values between the two: an earlier
/// version read the registry's text into families and merged them, which with the label tuples of ~4,000 samples
/// was a third of a 50-server scrape's CPU (docs/performance.md).
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
        case counter, gauge, histogram
    }

    // MARK: The registry's page as OpenMetrics

    /// swift-prometheus's text 0.0.4 output as OpenMetrics: TYPE before HELP, a counter family named without its
    /// `_total` (the samples keep it), double quotes in HELP escaped, histogram `le` bounds canonical (`1.0`).
    static func appendRegistryAsOpenMetrics(_ text: [UInt8], into out: inout [UInt8]) {
        let newline = UInt8(ascii: "\n")
        var help: ArraySlice<UInt8>?
        var helpName: ArraySlice<UInt8> = []
        var start = 0
        while start < text.count {
            var end = start
            while end < text.count, text[end] != newline { end += 1 }
            let line = text[start..<end]
            start = end + 1
            if line.starts(with: helpPrefix) {
                let rest = line.dropFirst(helpPrefix.count)
                let name = rest.prefix { $0 != UInt8(ascii: " ") }
                helpName = name
                help = rest.dropFirst(name.count + 1)
                continue
            }
            if line.starts(with: typePrefix) {
                let rest = line.dropFirst(typePrefix.count)
                let name = rest.prefix { $0 != UInt8(ascii: " ") }
                let kind = rest.dropFirst(name.count + 1)
                var family = name
                if kind.elementsEqual("counter".utf8), family.reversed().starts(with: "_total".utf8.reversed()) {
                    family = family.dropLast(6)
                }
                out.append(contentsOf: typePrefix)
                out.append(contentsOf: family)
                out.append(UInt8(ascii: " "))
                out.append(contentsOf: kind)
                out.append(newline)
                if let h = help, helpName.elementsEqual(name) {
                    out.append(contentsOf: helpPrefix)
                    out.append(contentsOf: family)
                    out.append(UInt8(ascii: " "))
                    for byte in h {
                        if byte == UInt8(ascii: "\"") { out.append(UInt8(ascii: "\\")) }
                        out.append(byte)
                    }
                    out.append(newline)
                }
                help = nil
                continue
            }
            guard !line.isEmpty, line.first != UInt8(ascii: "#") else { continue }
            appendCanonicalBound(line, into: &out)
            out.append(newline)
        }
    }

    private static let helpPrefix = Array("# HELP ".utf8)
    private static let typePrefix = Array("# TYPE ".utf8)
    private static let lePrefix = Array("le=\"".utf8)

    /// A sample line with its `le` value canonical for OpenMetrics (an integer bound gets `.0`).
    private static func appendCanonicalBound(_ line: ArraySlice<UInt8>, into out: inout [UInt8]) {
        guard let open = line.firstIndex(of: UInt8(ascii: "{")),
            line[..<open].reversed().starts(with: "_bucket".utf8.reversed())
        else { return out.append(contentsOf: line) }
        var i = open
        while i + lePrefix.count <= line.endIndex {
            if line[i..<(i + lePrefix.count)].elementsEqual(lePrefix),
                i == open + 1 || line[i - 1] == UInt8(ascii: ",")
            {
                let valueStart = i + lePrefix.count
                guard let close = line[valueStart...].firstIndex(of: UInt8(ascii: "\"")) else { break }
                let value = line[valueStart..<close]
                let plainInteger = value.allSatisfy { ($0 >= 48 && $0 <= 57) || $0 == UInt8(ascii: "-") }
                if plainInteger, !value.isEmpty {
                    out.append(contentsOf: line[..<close])
                    out.append(contentsOf: ".0".utf8)
                    out.append(contentsOf: line[close...])
                    return
                }
                break
            }
            i += 1
        }
        out.append(contentsOf: line)
    }

    // MARK: Writing

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

/// Writes families and samples of the page into one buffer, in the page's format; `finish()` ends it (OpenMetrics:
/// `# EOF`). A sample is `begin`, any number of `label`, then `end`: no label list is built.
struct PageWriter {
    let format: Exposition.Format
    private(set) var bytes: [UInt8] = []
    private var labelled = false

    init(format: Exposition.Format, capacity: Int = 1 << 16) {
        self.format = format
        bytes.reserveCapacity(capacity)
    }

    /// A family's HELP and TYPE. `name` as in text 0.0.4 (a counter's ends in `_total`; OpenMetrics drops it).
    mutating func family(_ name: String, _ kind: Exposition.Kind, help: String) {
        switch format {
        case .text:
            if !help.isEmpty {
                bytes.append(contentsOf: "# HELP ".utf8)
                bytes.append(contentsOf: name.utf8)
                bytes.append(UInt8(ascii: " "))
                Exposition.escape(help, quotes: false, into: &bytes)
                bytes.append(UInt8(ascii: "\n"))
            }
            bytes.append(contentsOf: "# TYPE ".utf8)
            bytes.append(contentsOf: name.utf8)
        case .openMetrics:
            let base = kind == .counter && name.hasSuffix("_total") ? String(name.dropLast(6)) : name
            bytes.append(contentsOf: "# TYPE ".utf8)
            bytes.append(contentsOf: base.utf8)
            bytes.append(UInt8(ascii: " "))
            bytes.append(contentsOf: kind.rawValue.utf8)
            bytes.append(UInt8(ascii: "\n"))
            guard !help.isEmpty else { return }
            bytes.append(contentsOf: "# HELP ".utf8)
            bytes.append(contentsOf: base.utf8)
            bytes.append(UInt8(ascii: " "))
            Exposition.escape(help, quotes: true, into: &bytes)
            bytes.append(UInt8(ascii: "\n"))
            return
        }
        bytes.append(UInt8(ascii: " "))
        bytes.append(contentsOf: kind.rawValue.utf8)
        bytes.append(UInt8(ascii: "\n"))
    }

    /// Starts a sample: its full name and the labels already rendered (`Labels.rendered`), maybe none.
    mutating func begin(_ name: String, _ labels: Labels) {
        bytes.append(contentsOf: name.utf8)
        labelled = !labels.bytes.isEmpty
        if labelled {
            bytes.append(UInt8(ascii: "{"))
            bytes.append(contentsOf: labels.bytes)
        }
    }

    mutating func label(_ key: String, _ value: String) {
        bytes.append(UInt8(ascii: labelled ? "," : "{"))
        labelled = true
        bytes.append(contentsOf: key.utf8)
        bytes.append(contentsOf: "=\"".utf8)
        Exposition.escape(value, quotes: true, into: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func end(_ value: Int) {
        closeLabels()
        appendInteger(value)
        bytes.append(UInt8(ascii: "\n"))
    }

    mutating func end(_ value: Double) {
        closeLabels()
        if value == value.rounded(), abs(value) < 1e15 {
            appendInteger(Int(value))
        } else {
            bytes.append(contentsOf: Exposition.value(value).utf8)
        }
        bytes.append(UInt8(ascii: "\n"))
    }

    /// Decimal digits straight into the buffer (a String per sample was measurable on a 4,000-sample page).
    private mutating func appendInteger(_ value: Int) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        let m = value.magnitude
        var divisor: UInt = 1
        while m / divisor >= 10 { divisor *= 10 }
        while divisor > 0 {
            bytes.append(UInt8(48 + (m / divisor) % 10))
            divisor /= 10
        }
    }

    private mutating func closeLabels() {
        if labelled { bytes.append(UInt8(ascii: "}")) }
        bytes.append(UInt8(ascii: " "))
    }

    /// The registry's text 0.0.4 output, in this page's format.
    mutating func registry(_ text: [UInt8]) {
        switch format {
        case .text: bytes.append(contentsOf: text)
        case .openMetrics: Exposition.appendRegistryAsOpenMetrics(text, into: &bytes)
        }
    }

    /// The page; OpenMetrics ends with `# EOF`.
    mutating func finish() -> [UInt8] {
        if format == .openMetrics { bytes.append(contentsOf: "# EOF\n".utf8) }
        return bytes
    }

    /// A label set rendered once (`server="a",group="b",replica="0"`) and written before each sample's own labels.
    struct Labels: Sendable {
        let bytes: [UInt8]
        static let none = Labels(bytes: [])

        init(bytes: [UInt8]) { self.bytes = bytes }

        init(_ pairs: [(String, String)]) {
            var out: [UInt8] = []
            for (i, (key, value)) in pairs.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: key.utf8)
                out.append(contentsOf: "=\"".utf8)
                Exposition.escape(value, quotes: true, into: &out)
                out.append(UInt8(ascii: "\""))
            }
            bytes = out
        }
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
