import CTrust
import Locking
import MCPProtocol

/// Legacy-era (2025-11-25 and earlier) sessions: created by `initialize`, named by `Mcp-Session-Id`,
/// ended by DELETE. Bounded: the least recently used session is dropped when the table is full.
///
/// Replicas share one listening socket, so a client's next connection may reach another replica than the one
/// that answered its `initialize`. The session id is therefore sealed (ChaCha20-Poly1305 under the key every
/// replica of the server shares, as `requestState` is): it carries the negotiated version and the client's
/// capabilities, and a replica that does not know the session opens the id and adopts it (docs/protocol.md,
/// "Legacy sessions across replicas"). What stays in the replica that holds it: the GET stream and its replay
/// buffer, subscriptions, the log level, input requests in flight.
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

    private let sessions = Locked<[String: Session]>([:])
    private let maxSessions: Int
    private let idleTimeout: Duration
    private let replayLimits: EventReplay.Limits

    private let key: [UInt8]
    private let binding: [UInt8]
    /// Sealed ids longer than this (a client that declared huge capabilities) are not made: a random id, which
    /// only the replica that made it knows.
    static let maxSealedIDBytes = 2048

    init(
        maxSessions: Int, idleTimeout: Duration, replayLimits: EventReplay.Limits, key: [UInt8] = [],
        server: String = ""
    ) {
        self.maxSessions = maxSessions
        self.idleTimeout = idleTimeout
        self.replayLimits = replayLimits
        self.key = key
        self.binding = Array("mcp-supervisor session 1\n\(server)\n".utf8)
    }

    /// `s1.` and the sealed {version, capabilities, 128 random bits}, base64url; nil without a key or when too long.
    private func sealedID(version: String, capabilities: JSONValue) -> String? {
        guard key.count == 32 else { return nil }
        let plain = JSONWriter.serialize(
            ["v": 1, "ver": .string(version), "caps": capabilities, "n": .string(Self.newID())])
        var sealed = [UInt8](repeating: 0, count: plain.count + Int(MCPT_SEAL_OVERHEAD))
        let n = key.withUnsafeBufferPointer { k in
            binding.withUnsafeBufferPointer { aad in
                plain.withUnsafeBufferPointer { p in
                    mcpt_seal(k.baseAddress, aad.baseAddress, aad.count, p.baseAddress, p.count, &sealed)
                }
            }
        }
        guard n == sealed.count else { return nil }
        let id = Self.sealedPrefix + Self.base64URL(sealed)
        return id.utf8.count <= Self.maxSealedIDBytes ? id : nil
    }

    /// What a sealed id says, if this server's key made it.
    private func openID(_ id: String) -> (version: String, capabilities: JSONValue)? {
        guard key.count == 32, Self.isSealed(id), id.utf8.count <= Self.maxSealedIDBytes,
            let sealed = Base64.decode(Self.fromBase64URL(String(id.dropFirst(Self.sealedPrefix.count)))),
            sealed.count > Int(MCPT_SEAL_OVERHEAD)
        else { return nil }
        var plain = [UInt8](repeating: 0, count: sealed.count - Int(MCPT_SEAL_OVERHEAD))
        let n = key.withUnsafeBufferPointer { k in
            binding.withUnsafeBufferPointer { aad in
                sealed.withUnsafeBufferPointer { s in
                    mcpt_open(k.baseAddress, aad.baseAddress, aad.count, s.baseAddress, s.count, &plain)
                }
            }
        }
        guard n >= 0, let value = try? JSONParser.parse(plain[0..<n]), value["v"] == 1,
            let version = value["ver"]?.stringValue, ProtocolVersion.legacy.contains(version),
            let caps = value["caps"], case .object = caps
        else { return nil }
        return (version, caps)
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        String(
            Base64.encode(bytes).compactMap { c -> Character? in
                switch c {
                case "+": return "-"
                case "/": return "_"
                case "=": return nil
                default: return c
                }
            })
    }

    static func fromBase64URL(_ text: String) -> String {
        var s = String(
            text.map { c -> Character in
                switch c {
                case "-": return "+"
                case "_": return "/"
                default: return c
                }
            })
        while s.utf8.count % 4 != 0 { s += "=" }
        return s
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

    func create(version: String, capabilities: JSONValue = [:]) -> String {
        let id = sealedID(version: version, capabilities: capabilities) ?? Self.newID()
        insert(id, version: version, capabilities: capabilities, initialized: false)
        return id
    }

    private func insert(_ id: String, version: String, capabilities: JSONValue, initialized: Bool) {
        let now = ContinuousClock.now
        var endedIDs: [String] = []
        let evicted = sessions.withLock { s -> [SessionStream] in
            var gone: [SessionStream] = []
            // Expire idle sessions, then the oldest ones if still full. Their sealed ids are ended here, so the
            // cap and the idle timeout are not undone by adopting them again.
            for (key, session) in s where session.inFlight.isEmpty && session.lastUsed + idleTimeout < now {
                if let stream = session.stream { gone.append(stream) }
                s.removeValue(forKey: key)
                endedIDs.append(key)
            }
            while s.count >= maxSessions, let oldest = s.min(by: { $0.value.lastUsed < $1.value.lastUsed }) {
                if let stream = oldest.value.stream { gone.append(stream) }
                s.removeValue(forKey: oldest.key)
                endedIDs.append(oldest.key)
            }
            guard s[id] == nil else { return gone }  // adopted by two requests at once: the first stays
            var session = Session(
                version: version, lastUsed: now,
                replay: EventReplay(limits: replayLimits, primes: version >= ProtocolVersion.resumptionPriming))
            session.clientCapabilities = capabilities
            session.initialized = initialized
            s[id] = session
            return gone
        }
        for key in endedIDs { end(key) }
        for stream in evicted { stream.endStream() }
    }

    /// Looks a session up and marks it used; a session another replica made is adopted here (its id opens).
    func touch(_ id: String) -> Session? {
        if let session = touchLocal(id) { return session }
        guard !isEnded(id), let (version, capabilities) = openID(id) else { return nil }
        // The client sent notifications/initialized to the replica it initialized with (or will: a request the
        // host sends waits only for this replica's own flag, which would never be set here).
        insert(id, version: version, capabilities: capabilities, initialized: true)
        return touchLocal(id)
    }

    private func touchLocal(_ id: String) -> Session? {
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

    /// Ends a session; returns its in-flight calls and stream so the caller can cancel and close them. A session
    /// another replica holds ends here; the caller reports it so that replica ends its copy too.
    func remove(_ id: String) -> Session? {
        var session = sessions.withLock { $0.removeValue(forKey: id) }
        if session == nil, touch(id) != nil { session = sessions.withLock { $0.removeValue(forKey: id) } }
        if session != nil { end(id) }
        return session
    }

    /// Ends a session another replica's DELETE ended (the supervisor relays it): removes this replica's copy, if it
    /// adopted one, and keeps the id from being adopted again. Nothing happens for an id this server's key did not
    /// make.
    func endedElsewhere(_ id: String) -> Session? {
        guard openID(id) != nil else { return nil }
        let session = sessions.withLock { $0.removeValue(forKey: id) }
        end(id)
        return session
    }

    /// What every sealed id starts with (a random one is hex digits only).
    static let sealedPrefix = "s1."

    static func isSealed(_ id: String) -> Bool { id.hasPrefix(sealedPrefix) }

    /// Sealed ids ended by DELETE, here or (relayed by the supervisor) on another replica, so they are not adopted
    /// again (kept for the idle timeout, at most `maxSessions`).
    private let ended = Locked<[String: ContinuousClock.Instant]>([:])

    private func end(_ id: String) {
        guard Self.isSealed(id) else { return }
        let now = ContinuousClock.now
        ended.withLock { e in
            if e.count >= maxSessions {
                for (key, at) in e where at + idleTimeout < now { e.removeValue(forKey: key) }
                if e.count >= maxSessions, let oldest = e.min(by: { $0.value < $1.value }) {
                    e.removeValue(forKey: oldest.key)
                }
            }
            e[id] = now
        }
    }

    private func isEnded(_ id: String) -> Bool {
        ended.withLock { e in
            guard let at = e[id] else { return false }
            if at + idleTimeout < .now {
                e.removeValue(forKey: id)
                return false
            }
            return true
        }
    }

    func allStreams() -> [SessionStream] { sessions.withLock { $0.values.compactMap(\.stream) } }

    /// The GET streams of the sessions subscribed to `uri`.
    func streams(subscribedTo uri: String) -> [SessionStream] {
        sessions.withLock { $0.values.filter { $0.subscriptions.contains(uri) }.compactMap(\.stream) }
    }

    var count: Int { sessions.withLock { $0.count } }
}

/// Where the legacy sessions a host's DELETEs end are reported: set once the control channel is up (the supervisor
/// relays each to the server's other replicas), shared by the host's dispatchers.
final class SessionEndRelay: Sendable {
    private let relay = Locked<(@Sendable (String) -> Void)?>(nil)

    func set(_ relay: @escaping @Sendable (String) -> Void) { self.relay.withLock { $0 = relay } }

    func report(_ id: String) { relay.withLock { $0 }?(id) }
}
