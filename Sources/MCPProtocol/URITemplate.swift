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

    /// Matches a URI against the template; returns the variables, percent-decoded, or nil (also when a variable's
    /// part of the URI is not valid percent-encoding).
    ///
    /// Each variable takes the shortest non-empty run of bytes that lets the rest match (`{var}` within one path
    /// segment, `{+var}` anywhere). Worked out from the end: for each part, the positions from which the rest of
    /// the template matches, so the time is linear in the URI's length for each part. Trying every split afresh
    /// was exponential in the number of variables (a 300-byte URI against `{a}x{b}x{c}` took seconds; found by
    /// the fuzzer, Fuzz/corpus/uri-template, docs/reliability.md).
    public func match(_ uri: String) -> [String: String]? {
        let bytes = Array(uri.utf8)
        let n = bytes.count
        // stop[o]: the first position at or after o holding '/', '?' or '#' (n if none): where {var} must end.
        var stop = [Int](repeating: n, count: n + 1)
        if n > 0 {
            for o in stride(from: n - 1, through: 0, by: -1) {
                let c = bytes[o]
                stop[o] = c == UInt8(ascii: "/") || c == UInt8(ascii: "?") || c == UInt8(ascii: "#") ? o : stop[o + 1]
            }
        }
        // next[i][o]: the first position at or after o from which parts i... match the rest of the URI (n + 1: none).
        var next = [[Int]](repeating: [], count: parts.count + 1)
        next[parts.count] = [Int](repeating: n, count: n + 1) + [n + 1]  // the empty rest matches only at the end
        for i in stride(from: parts.count - 1, through: 0, by: -1) {
            var row = [Int](repeating: n + 1, count: n + 2)
            for o in stride(from: n, through: 0, by: -1) {
                let matches: Bool
                switch parts[i] {
                case .literal(let l):
                    let lit = l.utf8
                    matches =
                        n - o >= lit.count && bytes[o..<o + lit.count].elementsEqual(lit)
                        && next[i + 1][o + lit.count] == o + lit.count
                case .variable(_, let reserved):
                    // The shortest non-empty value: the first position after o where the rest matches.
                    let end = o < n ? next[i + 1][o + 1] : n + 1
                    matches = end <= (reserved ? n : stop[o])
                }
                row[o] = matches ? o : row[o + 1]
            }
            next[i] = row
        }
        guard next[0][0] == 0 else { return nil }
        var vars: [String: String] = [:]
        var o = 0
        for (i, part) in parts.enumerated() {
            switch part {
            case .literal(let l):
                o += l.utf8.count
            case .variable(let name, _):
                let end = next[i + 1][o + 1]
                guard let value = Self.percentDecode(bytes[o..<end]) else { return nil }
                vars[name] = value
                o = end
            }
        }
        return vars
    }

    static func percentDecode(_ s: ArraySlice<UInt8>) -> String? {
        guard s.contains(UInt8(ascii: "%")) else { return String(validating: s, as: UTF8.self) }
        var out: [UInt8] = []
        var bytes = s
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
