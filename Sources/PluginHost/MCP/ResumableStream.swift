import Locking
import Synchronization

/// Legacy-era (2025-03-26 to 2025-11-25) SSE streams a client can resume with `Last-Event-ID`.
///
/// Every stream of a session (each POST answered with SSE, and the GET stream) gets a number; its events get
/// ids `<stream>-<seq>`, unique across the session, so a `Last-Event-ID` names both the stream and the place in
/// it. The events of every stream are kept in a bounded buffer per session (`limits`): when a client's connection
/// drops, the stream goes on filling the buffer (a legacy call is not cancelled by a disconnect), and a GET with
/// `Last-Event-ID` replays what came after that id on that stream only, then carries the rest of it live. The
/// oldest events go first when the buffer is over budget; a stream that ended is forgotten once its events are.
/// docs/protocol.md ("Resumable streams") describes the choice.
final class EventReplay: Sendable {
    struct Limits: Sendable {
        /// Bytes of event data kept per session, across its streams.
        var maxBytes: Int
        /// Streams remembered per session (the oldest ended one goes first).
        var maxStreams: Int
    }

    fileprivate struct Stream {
        var sink: (any ReplySink)?
        var nextSeq = 1
        var events: [(seq: Int, bytes: [UInt8])] = []
        var ended = false
    }

    fileprivate struct State {
        var streams: [Int: Stream] = [:]
        var nextStream = 1
        var bytes = 0
        /// Every kept event in the order sent, for eviction: (stream, size).
        var order: [(stream: Int, size: Int)] = []
        var orderHead = 0
        /// Events kept, across the streams.
        var kept = 0
    }

    private let state = Locked<State>(State())
    let limits: Limits
    /// 2025-11-25: a stream starts with an event carrying only an id, so the client can resume even before
    /// the first message (the spec's "prime the client to reconnect"); older clients would not expect it.
    let primes: Bool

    /// False with a budget of 0: events carry no id and nothing is kept.
    var resumable: Bool { limits.maxBytes > 0 }
    /// Every stream starts with a priming event.
    var primesStreams: Bool { primes && resumable }

    init(limits: Limits, primes: Bool) {
        self.limits = limits
        self.primes = primes
    }

    /// A new stream written to `sink` (the response of one POST, or a GET).
    func open(on sink: any ReplySink) -> SessionStream {
        let number = state.withLock { s -> Int in
            let n = s.nextStream
            s.nextStream += 1
            s.streams[n] = Stream(sink: sink)
            trimStreams(&s)
            return n
        }
        return SessionStream(replay: self, number: number, first: sink)
    }

    enum ResumeError: Error, Equatable {
        case malformed
        case unknown
    }

    /// The stream and position a `Last-Event-ID` names.
    static func parse(_ lastEventID: String) -> (stream: Int, seq: Int)? {
        let parts = lastEventID.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let stream = Int(parts[0]), let seq = Int(parts[1]), stream > 0, seq >= 0 else {
            return nil
        }
        return (stream, seq)
    }

    /// Moves the stream named by `lastEventID` to `sink`: starts it, replays every kept event after that id,
    /// then the stream goes on there (or ends, if it has). A connection it still had is ended.
    func resume(_ lastEventID: String, on sink: any ReplySink) throws(ResumeError) -> SessionStream {
        guard let (number, seq) = Self.parse(lastEventID) else { throw .malformed }
        let found = state.withLock { s -> Bool in
            guard var stream = s.streams[number], seq < stream.nextSeq else { return false }
            let previous = stream.sink
            stream.sink = nil
            previous?.endStream()
            guard sink.startStream(headers: []) else { return true }
            for event in stream.events where event.seq > seq {
                sink.sendEvent(event.bytes, comment: false, id: "\(number)-\(event.seq)")
            }
            if stream.ended {
                sink.endStream()
            } else {
                stream.sink = sink
            }
            s.streams[number] = stream
            return true
        }
        guard found else { throw .unknown }
        return SessionStream(replay: self, number: number, first: nil)
    }

    /// True while the stream has a client connection.
    func isAttached(_ number: Int) -> Bool {
        state.withLock { s in s.streams[number].map { $0.sink.map { !$0.isFinished } ?? false } ?? false }
    }

    /// Forgets a stream (a fresh GET replaces the session's old one).
    func drop(_ number: Int) {
        state.withLock { s in
            Self.remove(number, from: &s)?.sink?.endStream()
        }
    }

    var keptBytes: Int { state.withLock { $0.bytes } }

    // Called by SessionStream. A connection the client closed shows as `isFinished` (no close handler is
    // registered: the transport may run one synchronously inside a write made under this lock).

    /// The stream's connection, or nil (and forgotten) when the client closed it.
    private static func live(_ stream: inout Stream) -> (any ReplySink)? {
        if let sink = stream.sink, sink.isFinished { stream.sink = nil }
        return stream.sink
    }

    fileprivate func started(_ number: Int, headers: [(String, String)]) -> Bool {
        state.withLock { s -> Bool in
            guard var stream = s.streams[number] else { return false }
            defer { s.streams[number] = stream }
            guard let sink = Self.live(&stream) else { return true }  // the client is gone: keep buffering
            guard sink.startStream(headers: headers) else { return true }
            if primesStreams { sink.sendEvent([], comment: false, id: "\(number)-0") }
            return true
        }
    }

    fileprivate func send(_ number: Int, _ bytes: [UInt8]) {
        state.withLock { s in
            guard var stream = s.streams[number], !stream.ended else { return }
            guard resumable else {
                Self.live(&stream)?.sendEvent(bytes, comment: false, id: nil)
                s.streams[number] = stream
                return
            }
            let seq = stream.nextSeq
            stream.nextSeq += 1
            stream.events.append((seq, bytes))
            Self.live(&stream)?.sendEvent(bytes, comment: false, id: "\(number)-\(seq)")
            s.streams[number] = stream
            s.bytes += bytes.count
            s.kept += 1
            s.order.append((number, bytes.count))
            evict(&s)
        }
    }

    fileprivate func comment(_ number: Int) {
        state.withLock { s in
            guard var stream = s.streams[number] else { return }
            Self.live(&stream)?.sendEvent([], comment: true, id: nil)
            s.streams[number] = stream
        }
    }

    fileprivate func end(_ number: Int) {
        state.withLock { s in
            guard var stream = s.streams[number], !stream.ended else { return }
            stream.ended = true
            stream.sink?.endStream()
            stream.sink = nil
            if stream.events.isEmpty {
                s.streams[number] = nil
            } else {
                s.streams[number] = stream
            }
        }
    }

    /// A whole (non-streamed) response: nothing to replay, so the stream is forgotten.
    fileprivate func responded(_ number: Int) {
        state.withLock { s in _ = Self.remove(number, from: &s) }
    }

    fileprivate func firstSink(_ number: Int) -> (any ReplySink)? { state.withLock { $0.streams[number]?.sink } }

    /// Drops the oldest events until the buffer is within budget. The newest event stays while its stream has
    /// no connection (the final answer of a call whose client is reconnecting), whatever its size.
    private func evict(_ s: inout State) {
        while s.bytes > limits.maxBytes, s.orderHead < s.order.count {
            let (number, size) = s.order[s.orderHead]
            if s.orderHead == s.order.count - 1, var stream = s.streams[number], Self.live(&stream) == nil { break }
            s.orderHead += 1
            if var stream = s.streams[number], !stream.events.isEmpty {
                stream.events.removeFirst()
                s.bytes -= size
                s.kept -= 1
                if stream.ended && stream.events.isEmpty {
                    s.streams[number] = nil
                } else {
                    s.streams[number] = stream
                }
            }
        }
        if s.orderHead > 64, s.orderHead * 2 > s.order.count {
            s.order.removeFirst(s.orderHead)
            s.orderHead = 0
        }
    }

    /// Forgets the oldest ended streams beyond `maxStreams` (live ones are never dropped).
    private func trimStreams(_ s: inout State) {
        guard s.streams.count > limits.maxStreams else { return }
        for number in s.streams.keys.sorted() where s.streams.count > limits.maxStreams {
            guard let stream = s.streams[number], stream.ended else { continue }
            _ = Self.remove(number, from: &s)
        }
    }

    /// Forgets a whole stream and its events. Their entries in `order` go stale: once stale entries outnumber
    /// the live ones, `order` is rebuilt from the streams still kept, so it stays bounded by what is kept.
    private static func remove(_ number: Int, from s: inout State) -> Stream? {
        guard let stream = s.streams.removeValue(forKey: number) else { return nil }
        s.bytes -= stream.events.reduce(0) { $0 + $1.bytes.count }
        s.kept -= stream.events.count
        if s.order.count - s.orderHead > 2 * s.kept + 64 {
            s.order = s.order[s.orderHead...].filter { s.streams[$0.stream] != nil }
            s.orderHead = 0
        }
        return stream
    }

    /// Entries of the eviction order (for tests: bounded by the events kept).
    var orderEntries: Int { state.withLock { $0.order.count - $0.orderHead } }
}

/// One resumable stream of a legacy session, as the `ReplySink` the dispatcher writes to. Its events go to
/// whichever connection carries the stream now (none while the client reconnects: then they are only kept).
final class SessionStream: ReplySink {
    let replay: EventReplay
    let number: Int
    /// The connection the stream was opened on: whole responses and timers go there.
    private let first: (any ReplySink)?
    private let done = Atomic<Bool>(false)

    fileprivate init(replay: EventReplay, number: Int, first: (any ReplySink)?) {
        self.replay = replay
        self.number = number
        self.first = first
    }

    var isFinished: Bool { done.load(ordering: .acquiring) }
    var isAttached: Bool { replay.isAttached(number) }

    func respond(status: Int, headers: [(String, String)], body: [UInt8]) {
        guard !done.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let sink = replay.firstSink(number)
        replay.responded(number)
        sink?.respond(status: status, headers: headers, body: body)
    }

    func startStream(headers: [(String, String)]) -> Bool {
        guard !isFinished else { return false }
        return replay.started(number, headers: headers)
    }

    func sendEvent(_ json: [UInt8], comment: Bool, id: String?) {
        guard !isFinished else { return }
        if comment { replay.comment(number) } else { replay.send(number, json) }
    }

    func endStream() {
        guard !done.exchange(true, ordering: .acquiringAndReleasing) else { return }
        replay.end(number)
    }

    /// A resumable stream outlives its connections: a disconnect is not the end (legacy calls run on).
    func onClientGone(_ body: @escaping @Sendable () -> Void) {}

    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) -> any DispatchTimer {
        guard let first else { return NoTimer() }
        return first.schedule(after: delay, body)
    }

    private struct NoTimer: DispatchTimer {
        func cancel() {}
    }
}
