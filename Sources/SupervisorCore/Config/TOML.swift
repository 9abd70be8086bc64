/// A TOML value with the line it was written on, so every configuration error can name file, line and key.
public indirect enum TOMLValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case bool(Bool)
    case array([TOMLValue])
    case table(TOMLTable)

    public var typeName: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a number"
        case .bool: return "a boolean"
        case .array: return "an array"
        case .table: return "a table"
        }
    }
}

/// A TOML table: keys in file order, each with its value and line.
public struct TOMLTable: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var value: TOMLValue
        public var line: Int
    }

    public private(set) var entries: [Entry] = []
    /// The line of the table's header (`[name]`), or of its first key for the root/inline tables.
    public var line: Int

    public init(line: Int) { self.line = line }

    public subscript(key: String) -> Entry? { entries.first { $0.key == key } }

    public var keys: [String] { entries.map(\.key) }

    mutating func set(_ key: String, _ value: TOMLValue, line: Int) {
        entries.append(Entry(key: key, value: value, line: line))
    }

    mutating func update(_ key: String, _ body: (inout TOMLValue) -> Void) {
        if let i = entries.firstIndex(where: { $0.key == key }) { body(&entries[i].value) }
    }
}

/// A syntax error at a line of a TOML file.
public struct TOMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

/// A parser for the TOML that configuration files need: `[table]` and `[[array.of.tables]]` headers, dotted and
/// quoted keys, basic and literal strings (also multi-line), integers (with `_`, hex, octal, binary), floats,
/// booleans, arrays and inline tables, comments. Dates and times are not supported (no setting uses them);
/// using one is a clear error. Duplicate keys and tables are errors, as TOML says.
public struct TOMLParser {
    private let s: [UInt8]
    private var i = 0
    private var line = 1

    public static func parse(_ text: String) throws(TOMLError) -> TOMLTable {
        var p = TOMLParser(s: Array(text.utf8))
        return try p.document()
    }

    private init(s: [UInt8]) { self.s = s }

    private func err(_ m: String) -> TOMLError { TOMLError(line: line, message: m) }

    private var atEnd: Bool { i >= s.count }
    private var cur: UInt8 { s[i] }

    private mutating func skipSpaces() {
        while !atEnd, cur == 0x20 || cur == 0x09 { i += 1 }
    }

    private mutating func skipComment() {
        if !atEnd, cur == UInt8(ascii: "#") {
            while !atEnd, cur != 0x0A { i += 1 }
        }
    }

    /// Spaces, comments and newlines (inside arrays).
    private mutating func skipTrivia() {
        while !atEnd {
            if cur == 0x20 || cur == 0x09 || cur == 0x0D {
                i += 1
            } else if cur == 0x0A {
                i += 1
                line += 1
            } else if cur == UInt8(ascii: "#") {
                skipComment()
            } else {
                return
            }
        }
    }

    private mutating func endOfLine() throws(TOMLError) {
        skipSpaces()
        skipComment()
        if atEnd { return }
        if cur == 0x0D, i + 1 < s.count, s[i + 1] == 0x0A { i += 1 }
        guard cur == 0x0A else { throw err("expected the end of the line") }
        i += 1
        line += 1
    }

    // MARK: Document

    private mutating func document() throws(TOMLError) -> TOMLTable {
        var root = TOMLTable(line: 1)
        var path: [String] = []
        var definedTables = Set<String>()
        var arrayTables = Set<String>()
        while true {
            skipTrivia()
            if atEnd { return root }
            let startLine = line
            if cur == UInt8(ascii: "[") {
                let isArray = i + 1 < s.count && s[i + 1] == UInt8(ascii: "[")
                i += isArray ? 2 : 1
                skipSpaces()
                let keys = try key()
                skipSpaces()
                guard !atEnd, cur == UInt8(ascii: "]") else { throw err("expected ']' after the table name") }
                i += 1
                if isArray {
                    guard !atEnd, cur == UInt8(ascii: "]") else { throw err("expected ']]'") }
                    i += 1
                }
                try endOfLine()
                let name = keys.joined(separator: ".")
                // Identity by key path (NUL-joined): a quoted "a.b" is not the nested a.b.
                let id = keys.joined(separator: "\u{0}")
                if isArray {
                    guard !definedTables.contains(id) || arrayTables.contains(id) else {
                        throw TOMLError(
                            line: startLine, message: "'\(name)' is already a table, not an array of tables")
                    }
                    arrayTables.insert(id)
                    definedTables.insert(id)
                    // A new element: the previous element's sub-tables may be defined again for this one.
                    definedTables = definedTables.filter { !$0.hasPrefix(id + "\u{0}") }
                    try Self.appendArrayTable(&root, keys[...], line: startLine)
                } else {
                    guard !definedTables.contains(id) else {
                        throw TOMLError(line: startLine, message: "table [\(name)] is defined twice")
                    }
                    definedTables.insert(id)
                    try Self.ensureTable(&root, keys[...], line: startLine)
                }
                path = keys
                continue
            }
            let keys = try key()
            skipSpaces()
            guard !atEnd, cur == UInt8(ascii: "=") else {
                throw err("expected '=' after key '\(keys.joined(separator: "."))'")
            }
            i += 1
            skipSpaces()
            let v = try value()
            try endOfLine()
            try Self.insert(&root, path[...], keys[...], v, line: startLine)
        }
    }

    /// Walks to the table at `path` (the last element of an array of tables) and runs `body` on it.
    private static func withTable(
        _ t: inout TOMLTable, _ path: ArraySlice<String>, line: Int, create: Bool,
        _ body: (inout TOMLTable) throws(TOMLError) -> Void
    ) throws(TOMLError) {
        guard let first = path.first else { return try body(&t) }
        if t[first] == nil {
            guard create else { throw TOMLError(line: line, message: "no table '\(first)'") }
            t.set(first, .table(TOMLTable(line: line)), line: line)
        }
        var failure: TOMLError?
        t.update(first) { v in
            do throws(TOMLError) {
                switch v {
                case .table(var sub):
                    try withTable(&sub, path.dropFirst(), line: line, create: create, body)
                    v = .table(sub)
                case .array(var items):
                    guard case .table(var last)? = items.last else {
                        throw TOMLError(line: line, message: "'\(first)' is a value, not a table")
                    }
                    try withTable(&last, path.dropFirst(), line: line, create: create, body)
                    items[items.count - 1] = .table(last)
                    v = .array(items)
                default:
                    throw TOMLError(line: line, message: "'\(first)' is a value, not a table")
                }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    private static func ensureTable(_ root: inout TOMLTable, _ keys: ArraySlice<String>, line: Int) throws(TOMLError) {
        try withTable(&root, keys, line: line, create: true) { t in t.line = line }
    }

    private static func appendArrayTable(_ root: inout TOMLTable, _ keys: ArraySlice<String>, line: Int)
        throws(TOMLError)
    {
        let parent = keys.dropLast()
        let name = keys.last!
        try withTable(&root, parent, line: line, create: true) { (t) throws(TOMLError) in
            if let e = t[name] {
                guard case .array(var items) = e.value else {
                    throw TOMLError(line: line, message: "'\(name)' is already defined on line \(e.line)")
                }
                items.append(.table(TOMLTable(line: line)))
                t.update(name) { $0 = .array(items) }
            } else {
                t.set(name, .array([.table(TOMLTable(line: line))]), line: line)
            }
        }
    }

    private static func insert(
        _ root: inout TOMLTable, _ tablePath: ArraySlice<String>, _ keys: ArraySlice<String>, _ v: TOMLValue, line: Int
    ) throws(TOMLError) {
        try withTable(&root, tablePath + keys.dropLast(), line: line, create: true) { (t) throws(TOMLError) in
            let k = keys.last!
            if let e = t[k] {
                throw TOMLError(
                    line: line, message: "key '\(keys.joined(separator: "."))' is already set on line \(e.line)")
            }
            t.set(k, v, line: line)
        }
    }

    // MARK: Keys

    private mutating func key() throws(TOMLError) -> [String] {
        var parts: [String] = []
        while true {
            skipSpaces()
            guard !atEnd else { throw err("expected a key") }
            if cur == UInt8(ascii: "\"") {
                parts.append(try basicString())
            } else if cur == UInt8(ascii: "'") {
                parts.append(try literalString())
            } else {
                let start = i
                while !atEnd, Self.isBareKeyChar(cur) { i += 1 }
                guard i > start else { throw err("expected a key, found '\(Self.show(cur))'") }
                parts.append(String(decoding: s[start..<i], as: UTF8.self))
            }
            skipSpaces()
            if !atEnd, cur == UInt8(ascii: ".") {
                i += 1
                continue
            }
            return parts
        }
    }

    private static func isBareKeyChar(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2D
    }

    private static func show(_ c: UInt8) -> String {
        c >= 0x20 && c < 0x7F ? String(UnicodeScalar(c)) : "byte \(c)"
    }

    // MARK: Values

    private mutating func value() throws(TOMLError) -> TOMLValue {
        guard !atEnd else { throw err("expected a value") }
        switch cur {
        case UInt8(ascii: "\""): return .string(try basicString())
        case UInt8(ascii: "'"): return .string(try literalString())
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "{"): return try inlineTable()
        case UInt8(ascii: "t"):
            try word("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try word("false")
            return .bool(false)
        default: return try number()
        }
    }

    private mutating func word(_ w: String) throws(TOMLError) {
        let b = Array(w.utf8)
        guard i + b.count <= s.count, Array(s[i..<i + b.count]) == b else { throw err("invalid value") }
        i += b.count
    }

    private mutating func number() throws(TOMLError) -> TOMLValue {
        let start = i
        while !atEnd, cur != 0x2C, cur != 0x5D, cur != 0x7D, cur != 0x20, cur != 0x09, cur != 0x0A, cur != 0x0D,
            cur != UInt8(ascii: "#")
        {
            i += 1
        }
        let raw = String(decoding: s[start..<i], as: UTF8.self)
        guard !raw.isEmpty else { throw err("expected a value") }
        if raw.contains(where: { $0 == ":" }) || (raw.count >= 10 && raw.dropFirst(4).first == "-") {
            throw err("dates and times are not supported in this configuration: '\(raw)'")
        }
        let text = raw.replacingOccurrences("_", "")
        if raw.hasPrefix("_") || raw.hasSuffix("_") || raw.contains("__") { throw err("invalid number '\(raw)'") }
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where text.hasPrefix(prefix) {
            guard let v = Int64(text.dropFirst(2), radix: radix) else { throw err("invalid integer '\(raw)'") }
            return .integer(v)
        }
        let unsigned = text.hasPrefix("-") || text.hasPrefix("+") ? text.dropFirst() : Substring(text)
        if !unsigned.isEmpty, unsigned.allSatisfy({ $0 >= "0" && $0 <= "9" }) {
            if unsigned.count > 1, unsigned.hasPrefix("0") { throw err("leading zeros are not allowed: '\(raw)'") }
            guard let v = Int64(text) else { throw err("integer '\(raw)' does not fit in 64 bits") }
            return .integer(v)
        }
        switch text {
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: break
        }
        guard Self.isTOMLFloat(unsigned), let d = Double(text) else {
            throw err("invalid value '\(raw)' (strings need quotes)")
        }
        return .float(d)
    }

    /// TOML's float grammar after the sign: an integer part without leading zeros, then a fraction, an exponent,
    /// or both. Swift's Double(_:) accepts more ("Infinity", "01.5", "1.e5"), so this checks first.
    static func isTOMLFloat(_ s: Substring) -> Bool {
        var it = Array(s.utf8)[...]
        func digits() -> Int {
            var n = 0
            while let c = it.first, c >= 0x30 && c <= 0x39 {
                it.removeFirst()
                n += 1
            }
            return n
        }
        let leadingZero = it.first == 0x30
        let n = digits()
        guard n > 0, !(n > 1 && leadingZero) else { return false }
        var hasFraction = false
        var hasExponent = false
        if it.first == UInt8(ascii: ".") {
            it.removeFirst()
            guard digits() > 0 else { return false }
            hasFraction = true
        }
        if it.first == UInt8(ascii: "e") || it.first == UInt8(ascii: "E") {
            it.removeFirst()
            if it.first == UInt8(ascii: "+") || it.first == UInt8(ascii: "-") { it.removeFirst() }
            guard digits() > 0 else { return false }
            hasExponent = true
        }
        return it.isEmpty && (hasFraction || hasExponent)
    }

    private mutating func array() throws(TOMLError) -> TOMLValue {
        i += 1
        var items: [TOMLValue] = []
        while true {
            skipTrivia()
            guard !atEnd else { throw err("unterminated array") }
            if cur == UInt8(ascii: "]") {
                i += 1
                return .array(items)
            }
            items.append(try value())
            skipTrivia()
            guard !atEnd else { throw err("unterminated array") }
            if cur == UInt8(ascii: ",") {
                i += 1
                continue
            }
            guard cur == UInt8(ascii: "]") else { throw err("expected ',' or ']' in the array") }
        }
    }

    private mutating func inlineTable() throws(TOMLError) -> TOMLValue {
        i += 1
        var t = TOMLTable(line: line)
        skipSpaces()
        if !atEnd, cur == UInt8(ascii: "}") {
            i += 1
            return .table(t)
        }
        while true {
            skipSpaces()
            let l = line
            let keys = try key()
            skipSpaces()
            guard !atEnd, cur == UInt8(ascii: "=") else { throw err("expected '=' in the inline table") }
            i += 1
            skipSpaces()
            let v = try value()
            try Self.insert(&t, [], keys[...], v, line: l)
            skipSpaces()
            guard !atEnd else { throw err("unterminated inline table") }
            if cur == UInt8(ascii: ",") {
                i += 1
                continue
            }
            guard cur == UInt8(ascii: "}") else { throw err("expected ',' or '}' in the inline table") }
            i += 1
            return .table(t)
        }
    }

    private mutating func literalString() throws(TOMLError) -> String {
        if i + 2 < s.count, s[i + 1] == UInt8(ascii: "'"), s[i + 2] == UInt8(ascii: "'") {
            i += 3
            if !atEnd, cur == 0x0A {
                i += 1
                line += 1
            }
            let start = i
            while i + 2 < s.count,
                !(s[i] == UInt8(ascii: "'") && s[i + 1] == UInt8(ascii: "'") && s[i + 2] == UInt8(ascii: "'"))
            {
                if s[i] == 0x0A { line += 1 }
                i += 1
            }
            guard i + 2 < s.count else { throw err("unterminated multi-line literal string") }
            // Up to two quotes right before the closing delimiter belong to the string.
            var extra = 0
            while extra < 2, i + 3 + extra < s.count, s[i + 3 + extra] == UInt8(ascii: "'") { extra += 1 }
            let v = s[start..<(i + extra)]
            i += 3 + extra
            return try utf8(v)
        }
        i += 1
        let start = i
        while !atEnd, cur != UInt8(ascii: "'") {
            if cur == 0x0A { throw err("unterminated string") }
            i += 1
        }
        guard !atEnd else { throw err("unterminated string") }
        let v = s[start..<i]
        i += 1
        return try utf8(v)
    }

    private func utf8(_ b: ArraySlice<UInt8>) throws(TOMLError) -> String {
        guard let v = String(validating: b, as: UTF8.self) else { throw err("invalid UTF-8 in string") }
        return v
    }

    private mutating func basicString() throws(TOMLError) -> String {
        let multi = i + 2 < s.count && s[i + 1] == UInt8(ascii: "\"") && s[i + 2] == UInt8(ascii: "\"")
        i += multi ? 3 : 1
        if multi, !atEnd, cur == 0x0A {
            i += 1
            line += 1
        }
        var out: [UInt8] = []
        while true {
            guard !atEnd else { throw err("unterminated string") }
            let c = cur
            if c == UInt8(ascii: "\"") {
                if !multi {
                    i += 1
                    break
                }
                if i + 2 < s.count, s[i + 1] == UInt8(ascii: "\""), s[i + 2] == UInt8(ascii: "\"") {
                    // Up to two quotes right before the closing delimiter belong to the string.
                    var extra = 0
                    while extra < 2, i + 3 + extra < s.count, s[i + 3 + extra] == UInt8(ascii: "\"") { extra += 1 }
                    out += [UInt8](repeating: UInt8(ascii: "\""), count: extra)
                    i += 3 + extra
                    break
                }
            }
            if c == 0x0A {
                guard multi else { throw err("unterminated string") }
                line += 1
            }
            if c == UInt8(ascii: "\\") {
                i += 1
                guard !atEnd else { throw err("unterminated string") }
                let e = cur
                i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "e"): out.append(0x1B)
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "u"), UInt8(ascii: "U"):
                    let n = e == UInt8(ascii: "u") ? 4 : 8
                    guard i + n <= s.count, let v = UInt32(String(decoding: s[i..<i + n], as: UTF8.self), radix: 16),
                        let scalar = Unicode.Scalar(v)
                    else { throw err("invalid unicode escape") }
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                    i += n
                case 0x0A, 0x20, 0x09, 0x0D:
                    // Line-ending backslash (multi-line strings only): skip whitespace and newlines.
                    guard multi else { throw err("invalid escape") }
                    i -= 1
                    while !atEnd, cur == 0x20 || cur == 0x09 || cur == 0x0A || cur == 0x0D {
                        if cur == 0x0A { line += 1 }
                        i += 1
                    }
                default: throw err("invalid escape '\\\(Self.show(e))'")
                }
                continue
            }
            if c < 0x20 && c != 0x09 && !(multi && (c == 0x0A || c == 0x0D)) {
                throw err("control character in string")
            }
            out.append(c)
            i += 1
        }
        return try utf8(out[...])
    }
}

extension String {
    func replacingOccurrences(_ target: Character, _ replacement: String) -> String {
        var r = ""
        for ch in self { if ch == target { r += replacement } else { r.append(ch) } }
        return r
    }
}
