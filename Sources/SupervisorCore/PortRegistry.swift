import MCPProtocol

/// Which port each server has. Static ports come from the configuration; dynamic ones are picked from the
/// range once and then kept (persisted in the state folder), so a server's port never moves.
public struct PortRegistry: Sendable, Equatable {
    /// server name → port, for dynamically assigned ports.
    public private(set) var assignments: [String: Int] = [:]

    public init(assignments: [String: Int] = [:]) { self.assignments = assignments }

    /// The port for a server. `tryBind` binds the port and keeps the socket (never bind-then-close); it returns
    /// false if the port is taken. A dynamic server keeps its recorded port; a new one gets the first free port
    /// of the range that no other server holds.
    public mutating func port(
        for server: ServerConfig, range: ClosedRange<Int>, reserved: Set<Int>, tryBind: (Int) -> Bool
    ) -> Result<Int, PortError> {
        if let port = server.port {
            return tryBind(port) ? .success(port) : .failure(.inUse(port, static: true))
        }
        if let port = assignments[server.name] {
            if !reserved.contains(port) {
                return tryBind(port) ? .success(port) : .failure(.inUse(port, static: false))
            }
            // A static server now claims this port: the static setting wins and this server moves once.
            assignments.removeValue(forKey: server.name)
        }
        let taken = Set(assignments.values).union(reserved)
        for port in range where !taken.contains(port) {
            if tryBind(port) {
                assignments[server.name] = port
                return .success(port)
            }
        }
        return .failure(.rangeExhausted(range))
    }

    /// Forgets the ports of servers no longer configured.
    public mutating func retain(only names: Set<String>) {
        assignments = assignments.filter { names.contains($0.key) }
    }

    public enum PortError: Error, Sendable, Equatable, CustomStringConvertible {
        case inUse(Int, static: Bool)
        case rangeExhausted(ClosedRange<Int>)

        public var description: String {
            switch self {
            case .inUse(let p, let isStatic):
                return "port \(p) is in use by another program"
                    + (isStatic ? "" : " (this server's recorded port; it never moves)")
            case .rangeExhausted(let r): return "no free port left in \(r.lowerBound)-\(r.upperBound)"
            }
        }
    }

    // MARK: Persistence format

    /// `{"version":1,"ports":{"name":port,...}}`
    public func encoded() -> [UInt8] {
        var ports: [String: JSONValue] = [:]
        for (k, v) in assignments { ports[k] = .int(Int64(v)) }
        return JSONWriter.serialize(["version": 1, "ports": .object(ports)]) + [0x0A]
    }

    public static func decode(_ bytes: [UInt8]) -> PortRegistry? {
        guard let v = try? JSONParser.parse(bytes), v["version"] == .int(1),
            case .object(let ports) = v["ports"] ?? .null
        else { return nil }
        var a: [String: Int] = [:]
        var used = Set<Int>()
        for (k, p) in ports {
            guard case .int(let i) = p, (1...65535).contains(i), used.insert(Int(i)).inserted else { return nil }
            a[k] = Int(i)
        }
        return PortRegistry(assignments: a)
    }

    /// What can still be read from a damaged registry (truncated, a byte flipped): every complete `"name": port`
    /// pair with a valid server name and port, the first of any repeated port. Never guesses: a pair cut short
    /// is left out.
    public static func salvage(_ bytes: [UInt8]) -> [String: Int] {
        var found: [String: Int] = [:]
        var used = Set<Int>()
        var i = 0
        func isNameByte(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D
                || b == 0x5F || b == 0x2E
        }
        while i < bytes.count {
            guard bytes[i] == 0x22 else {  // a quote opens a candidate name
                i += 1
                continue
            }
            var j = i + 1
            while j < bytes.count, isNameByte(bytes[j]) { j += 1 }
            guard j < bytes.count, bytes[j] == 0x22, j > i + 1 else {
                i = j
                continue
            }
            let name = String(decoding: bytes[(i + 1)..<j], as: UTF8.self)
            var k = j + 1
            while k < bytes.count, bytes[k] == 0x20 || bytes[k] == 0x09 || bytes[k] == 0x0A { k += 1 }
            guard k < bytes.count, bytes[k] == 0x3A else {
                i = j + 1
                continue
            }
            k += 1
            while k < bytes.count, bytes[k] == 0x20 || bytes[k] == 0x09 || bytes[k] == 0x0A { k += 1 }
            var digits = 0
            var value = 0
            while k < bytes.count, bytes[k] >= 0x30, bytes[k] <= 0x39, digits < 6 {
                value = value * 10 + Int(bytes[k] - 0x30)
                digits += 1
                k += 1
            }
            // Complete only when something follows the number (a comma, a brace, a space): a number at the very
            // end may have lost digits.
            let complete = digits > 0 && k < bytes.count && !(bytes[k] >= 0x30 && bytes[k] <= 0x39)
            if complete, name != "version", name != "ports", (1...65535).contains(value), found[name] == nil,
                used.insert(value).inserted
            {
                found[name] = value
            }
            i = k
        }
        return found
    }
}
