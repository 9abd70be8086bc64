/// Recent log lines per server, for the control socket's `logs` method, and the live `logs --follow` listeners.
///
/// `SupervisorLog` hands every line to its tap; the tap keeps the lines that concern a known server (a child's
/// output, `NAME[PID]: …`, and the supervisor's events about it, `mcp-supervisor: NAME…: …`) in a ring of
/// `capacity` lines per server. Only the supervisor's queue touches it (every log call of the daemon runs there).
final class LogTap: @unchecked Sendable {
    // @unchecked: used only on the supervisor's queue.
    let capacity: Int
    private var rings: [String: Ring] = [:]
    private var followers: [String: [Int: (String) -> Void]] = [:]
    private var nextFollower = 0
    /// Whether a name is a configured server (set by the supervisor; lines about anything else are not kept).
    var isServer: (String) -> Bool = { _ in false }

    init(capacity: Int = 1000) { self.capacity = capacity }

    private struct Ring {
        var lines: [String] = []
        var head = 0  // the oldest line once the ring is full

        mutating func append(_ line: String, capacity: Int) {
            if lines.count < capacity {
                lines.append(line)
            } else {
                lines[head] = line
                head = (head + 1) % capacity
            }
        }

        func last(_ n: Int) -> [String] {
            let ordered = Array(lines[head...] + lines[..<head])
            return Array(ordered.suffix(max(0, n)))
        }
    }

    /// A supervisor event line (without the `mcp-supervisor: ` prefix).
    func event(_ text: String) {
        guard let name = Self.serverName(text), isServer(name) else { return }
        record(name, "mcp-supervisor: " + text)
    }

    /// A line a child wrote; `label` is `NAME[PID]` or `NAME#i[PID]`.
    func child(_ label: String, _ text: String) {
        guard let name = Self.serverName(label + ":"), isServer(name) else { return }
        record(name, label + ": " + text)
    }

    private func record(_ name: String, _ line: String) {
        rings[name, default: Ring()].append(line, capacity: capacity)
        if let fs = followers[name] {
            for f in fs.values { f(line) }
        }
    }

    /// The last `n` lines of a server, oldest first.
    func recent(_ name: String, _ n: Int) -> [String] { rings[name]?.last(n) ?? [] }

    /// Calls `body` with every new line of the server until `unfollow` is called with the returned id.
    func follow(_ name: String, _ body: @escaping (String) -> Void) -> Int {
        nextFollower += 1
        followers[name, default: [:]][nextFollower] = body
        return nextFollower
    }

    func unfollow(_ name: String, _ id: Int) {
        followers[name]?[id] = nil
        if followers[name]?.isEmpty == true { followers[name] = nil }
    }

    /// `NAME` of `NAME: …`, `NAME[PID]: …`, `NAME#i[PID]: …` or `NAME#i: …`; nil for other lines.
    static func serverName(_ text: String) -> String? {
        var name = ""
        for c in text.unicodeScalars {
            switch c {
            case "a"..."z", "A"..."Z", "0"..."9", "-", "_", ".":
                name.unicodeScalars.append(c)
            case ":", "[", "#":
                return name.isEmpty ? nil : name
            default:
                return nil
            }
            if name.utf8.count > 64 { return nil }
        }
        return nil
    }
}
