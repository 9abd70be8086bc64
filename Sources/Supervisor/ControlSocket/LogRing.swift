/// Recent log lines per server, for the control socket's `logs` method, and the live `logs --follow` listeners.
///
/// `SupervisorLog` hands the tap every line whose metadata names a server (a child's output and the supervisor's
/// events about it), with that server: nothing is parsed back out of the text. The tap keeps the lines of known
/// servers, as text, in a ring of `capacity` lines per server. Only the supervisor's queue touches it (every log
/// call of the daemon runs there).
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

    /// A line about `server` (ignored unless it is a configured server).
    func record(_ server: String, _ line: String) {
        guard isServer(server) else { return }
        rings[server, default: Ring()].append(line, capacity: capacity)
        if let fs = followers[server] {
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
}
