/// RFC 6570 URI templates, as far as resource templates need them: `{var}` (one path segment,
/// percent-decoded) and `{+var}` (reserved expansion, may contain `/`). Matching only.
public struct URITemplate: Sendable, Equatable {
    enum Part: Sendable, Equatable {
        case literal(String)
        case variable(name: String, reserved: Bool)
    }

    public let text: String
    let parts: [Part]

    /// Parses a template; nil when braces are unbalanced, a variable is empty, or two variables touch.
    public init?(_ text: String) {
        self.text = text
        var parts: [Part] = []
        var literal = ""
        var it = text.makeIterator()
        while let c = it.next() {
            if c == "}" { return nil }
            if c != "{" {
                literal.append(c)
                continue
            }
            var name = ""
            var closed = false
            while let d = it.next() {
                if d == "}" {
                    closed = true
                    break
                }
                if d == "{" { return nil }
                name.append(d)
            }
            guard closed else { return nil }
            var reserved = false
            if name.hasPrefix("+") {
                reserved = true
                name.removeFirst()
            }
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }) else {
                return nil
            }
            if literal.isEmpty, case .variable = parts.last { return nil }
            if !literal.isEmpty { parts.append(.literal(literal)) }
            literal = ""
            parts.append(.variable(name: name, reserved: reserved))
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
    }

    public var variableNames: [String] {
        parts.compactMap { if case .variable(let n, _) = $0 { return n } else { return nil } }
    }

    /// Matches a URI against the template; returns the variables, percent-decoded, or nil.
    public func match(_ uri: String) -> [String: String]? {
        var vars: [String: String] = [:]
        return matchFrom(partIndex: 0, rest: Substring(uri), vars: &vars) ? vars : nil
    }

    private func matchFrom(partIndex: Int, rest: Substring, vars: inout [String: String]) -> Bool {
        if partIndex == parts.count { return rest.isEmpty }
        switch parts[partIndex] {
        case .literal(let l):
            guard rest.hasPrefix(l) else { return false }
            return matchFrom(partIndex: partIndex + 1, rest: rest.dropFirst(l.count), vars: &vars)
        case .variable(let name, let reserved):
            // Try the shortest non-empty value first that lets the rest match.
            var end = rest.startIndex
            while end < rest.endIndex {
                let c = rest[end]
                if !reserved && (c == "/" || c == "?" || c == "#") { break }
                end = rest.index(after: end)
                let raw = rest[rest.startIndex..<end]
                var trial = vars
                guard let value = Self.percentDecode(raw) else { continue }
                trial[name] = value
                if matchFrom(partIndex: partIndex + 1, rest: rest[end...], vars: &trial) {
                    vars = trial
                    return true
                }
            }
            return false
        }
    }

    static func percentDecode(_ s: Substring) -> String? {
        guard s.contains("%") else { return String(s) }
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let b = bytes.popFirst() {
            if b != UInt8(ascii: "%") {
                out.append(b)
                continue
            }
            guard bytes.count >= 2, let hi = hexValue(bytes.removeFirst()), let lo = hexValue(bytes.removeFirst())
            else {
                return nil
            }
            out.append(hi << 4 | lo)
        }
        return String(validating: out, as: UTF8.self)
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
