import MCPProtocol
import Synchronization

/// Legacy-era (2025-11-25 and earlier) sessions: created by `initialize`, named by `Mcp-Session-Id`,
/// ended by DELETE. Bounded: the least recently used session is dropped when the table is full.
final class SessionStore: Sendable {
    struct Session {
        var version: String
        var logThreshold: Int = 7  // debug: everything until logging/setLevel says otherwise
        var lastUsed: ContinuousClock.Instant
        /// Every SSE stream of the session, kept for Last-Event-ID (ResumableStream.swift).
        let replay: EventReplay
        /// The GET stream (resumable like the others; it may be waiting for its client to reconnect).
        var stream: SessionStream?
        var inFlight: [String: PluginCall] = [:]
        /// What `initialize` declared (elicitation, sampling, roots are checked before the host asks).
        var clientCapabilities: JSONValue = [:]
        /// URIs from resources/subscribe: only these get notifications/resources/updated.
        var subscriptions: Set<String> = []
        /// The client sent `notifications/initialized`: the host may send it requests (lifecycle.mdx).
        var initialized = false
        /// Input requests waiting for `initialized` (a call that came first, on another connection).
        var awaitingInitialized: [@Sendable () -> Void] = []
    }

    /// Runs `body` now if the session is initialized, else once it is (false: not now).
    func whenInitialized(_ id: String, _ body: @escaping @Sendable () -> Void) -> Bool {
        sessions.withLock { s in
            guard var session = s[id] else { return true }
            if session.initialized { return true }
            session.awaitingInitialized.append(body)
            s[id] = session
            return false
        }
    }

    /// `notifications/initialized` arrived: what waited for it runs.
    func markInitialized(_ id: String) {
        let waiting = sessions.withLock { s -> [@Sendable () -> Void] in
            guard var session = s[id], !session.initialized else { return [] }
            session.initialized = true
            defer {
                session.awaitingInitialized = []
                s[id] = session
            }
            return session.awaitingInitialized
        }
        for body in waiting { body() }
    }

    private let sessions = Mutex<[String: Session]>([:])
    private let maxSessions: Int
    private let idleTimeout: Duration
    private let replayLimits: EventReplay.Limits

    init(maxSessions: Int, idleTimeout: Duration, replayLimits: EventReplay.Limits) {
        self.maxSessions = maxSessions
        self.idleTimeout = idleTimeout
        self.replayLimits = replayLimits
    }

    /// A new random session id: 128 bits from the system CSPRNG (getrandom on Linux), as hex.
    static func newID() -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return bytes.map { byte in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }

    func create(version: String) -> String {
        let id = Self.newID()
        let now = ContinuousClock.now
        let evicted = sessions.withLock { s -> [SessionStream] in
            var gone: [SessionStream] = []
            // Expire idle sessions, then the oldest ones if still full.
            for (key, session) in s where session.inFlight.isEmpty && session.lastUsed + idleTimeout < now {
                if let stream = session.stream { gone.append(stream) }
                s.removeValue(forKey: key)
            }
            while s.count >= maxSessions, let oldest = s.min(by: { $0.value.lastUsed < $1.value.lastUsed }) {
                if let stream = oldest.value.stream { gone.append(stream) }
                s.removeValue(forKey: oldest.key)
            }
            s[id] = Session(
                version: version, lastUsed: now,
                replay: EventReplay(limits: replayLimits, primes: version >= ProtocolVersion.resumptionPriming))
            return gone
        }
        for stream in evicted { stream.endStream() }
        return id
    }

    /// Looks a session up and marks it used.
    func touch(_ id: String) -> Session? {
        sessions.withLock { s in
            guard var session = s[id] else { return nil }
            session.lastUsed = .now
            s[id] = session
            return session
        }
    }

    func update(_ id: String, _ body: (inout Session) -> Void) {
        sessions.withLock { s in
            if var session = s[id] {
                body(&session)
                s[id] = session
            }
        }
    }

    /// Ends a session; returns its in-flight calls and stream so the caller can cancel and close them.
    func remove(_ id: String) -> Session? { sessions.withLock { $0.removeValue(forKey: id) } }

    func allStreams() -> [SessionStream] { sessions.withLock { $0.values.compactMap(\.stream) } }

    /// The GET streams of the sessions subscribed to `uri`.
    func streams(subscribedTo uri: String) -> [SessionStream] {
        sessions.withLock { $0.values.filter { $0.subscriptions.contains(uri) }.compactMap(\.stream) }
    }

    var count: Int { sessions.withLock { $0.count } }
}
