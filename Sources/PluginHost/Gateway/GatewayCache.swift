import Locking
import MCPProtocol

/// The gateway's result cache (docs/gateway.md, "Cache"): answers kept for a while and served again for the same
/// method, name and arguments. Bounded by entries and bytes (the oldest entry goes first); a server's entries go
/// when it restarts or its lists change; errors, `input_required` results and retries that carry input are never
/// stored (the caller checks those).
final class GatewayCache: Sendable {
    struct Entry: Sendable {
        var value: JSONValue
        var size: Int
        var backend: String
        var expires: ContinuousClock.Instant
        var sequence: Int
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var bytes = 0
        var sequence = 0
    }

    let maxEntries: Int
    let maxBytes: Int
    private let state = Locked(State())

    init(maxEntries: Int = 4096, maxBytes: Int = 32 << 20) {
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
    }

    /// The key of a call: its method, its name (a tool's or prompt's on the gateway, a resource's URI), its
    /// arguments in canonical form (sorted keys), and the caller's scope (one scope while the gateway has no
    /// authentication: only results every caller may see are stored).
    static func key(method: String, name: String, arguments: [String: JSONValue], scope: String = "") -> String {
        method + "\u{0}" + name + "\u{0}" + JSONWriter.string(.object(arguments)) + "\u{0}" + scope
    }

    func lookup(_ key: String) -> Entry? {
        state.withLock { s in
            guard let e = s.entries[key] else { return nil }
            guard ContinuousClock.now < e.expires else {
                s.entries[key] = nil
                s.bytes -= e.size
                return nil
            }
            return e
        }
    }

    func store(_ key: String, value: JSONValue, size: Int, backend: String, ttl: Duration) {
        guard ttl > .zero, size <= maxBytes / 4 else { return }  // one answer never takes most of the cache
        state.withLock { s in
            if let old = s.entries[key] { s.bytes -= old.size }
            s.sequence += 1
            s.entries[key] = Entry(
                value: value, size: size, backend: backend, expires: .now + ttl, sequence: s.sequence)
            s.bytes += size
            guard s.entries.count > maxEntries || s.bytes > maxBytes else { return }
            // Expired entries first, then the oldest, until within both bounds.
            let now = ContinuousClock.now
            for (k, e) in s.entries where e.expires <= now {
                s.entries[k] = nil
                s.bytes -= e.size
            }
            if s.entries.count > maxEntries || s.bytes > maxBytes {
                for (k, e) in s.entries.sorted(by: { $0.value.sequence < $1.value.sequence }) {
                    guard s.entries.count > maxEntries || s.bytes > maxBytes else { break }
                    s.entries[k] = nil
                    s.bytes -= e.size
                }
            }
        }
    }

    /// Drops one entry (a resource its server said was updated).
    func remove(_ key: String) {
        state.withLock { s in
            if let e = s.entries.removeValue(forKey: key) { s.bytes -= e.size }
        }
    }

    /// Drops every entry of `backend` (it restarted, its lists changed, it left).
    func invalidate(backend: String) {
        state.withLock { s in
            for (k, e) in s.entries where e.backend == backend {
                s.entries[k] = nil
                s.bytes -= e.size
            }
        }
    }

    var count: Int { state.withLock { $0.entries.count } }
    var bytes: Int { state.withLock { $0.bytes } }
}
