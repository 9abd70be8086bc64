import MCPProtocol
import NIOCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Legacy-era (2025-11-25 and earlier) sessions: created by `initialize`, named by `Mcp-Session-Id`,
/// ended by DELETE. Bounded: the least recently used session is dropped when the table is full.
final class SessionStore: Sendable {
    struct Session {
        var version: String
        var logThreshold: Int = 7  // debug: everything until logging/setLevel says otherwise
        var lastUsed: NIODeadline
        var stream: HTTPResponder?
        var inFlight: [String: PluginCall] = [:]
    }

    private let sessions = Mutex<[String: Session]>([:])
    private let maxSessions: Int
    private let idleTimeout: TimeAmount

    init(maxSessions: Int, idleTimeout: TimeAmount) {
        self.maxSessions = maxSessions
        self.idleTimeout = idleTimeout
    }

    /// A new random session id: 128 bits from the system CSPRNG (getrandom on Linux), as hex.
    static func newID() -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return bytes.map { b in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }

    func create(version: String) -> String {
        let id = Self.newID()
        let now = NIODeadline.now()
        let evicted = sessions.withLock { s -> [HTTPResponder] in
            var gone: [HTTPResponder] = []
            // Expire idle sessions, then the oldest ones if still full.
            for (k, v) in s where v.inFlight.isEmpty && v.lastUsed + idleTimeout < now {
                if let st = v.stream { gone.append(st) }
                s.removeValue(forKey: k)
            }
            while s.count >= maxSessions, let oldest = s.min(by: { $0.value.lastUsed < $1.value.lastUsed }) {
                if let st = oldest.value.stream { gone.append(st) }
                s.removeValue(forKey: oldest.key)
            }
            s[id] = Session(version: version, lastUsed: now)
            return gone
        }
        for r in evicted { r.endStream() }
        return id
    }

    /// Looks a session up and marks it used.
    func touch(_ id: String) -> Session? {
        sessions.withLock { s in
            guard var v = s[id] else { return nil }
            v.lastUsed = .now()
            s[id] = v
            return v
        }
    }

    func update(_ id: String, _ body: (inout Session) -> Void) {
        sessions.withLock { s in
            if var v = s[id] {
                body(&v)
                s[id] = v
            }
        }
    }

    /// Ends a session; returns its in-flight calls and stream so the caller can cancel and close them.
    func remove(_ id: String) -> Session? { sessions.withLock { $0.removeValue(forKey: id) } }

    func allStreams() -> [HTTPResponder] { sessions.withLock { $0.values.compactMap(\.stream) } }

    func removeAll() -> [Session] {
        sessions.withLock { s in
            let all = Array(s.values)
            s.removeAll()
            return all
        }
    }

    var count: Int { sessions.withLock { $0.count } }
}
