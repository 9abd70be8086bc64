import Locking
import Synchronization

/// Gathers the answers to the requests of one JSON-RPC batch and sends them as one array once all are in.
final class BatchCollector: Sendable {
    private struct State {
        var slots: [[UInt8]?] = []
        var sealed = false
        var sent = false
    }

    private let state = Locked<State>(State())
    private let out: any ReplySink
    private let asJSON: Bool

    init(out: any ReplySink, asJSON: Bool) {
        self.out = out
        self.asJSON = asJSON
    }

    /// A place for one answer, in batch order.
    func reserve() -> Int {
        state.withLock { s in
            s.slots.append(nil)
            return s.slots.count - 1
        }
    }

    /// Every slot is reserved: the answer goes out when the last one is filled (at once if all are).
    func sealed() {
        state.withLock { $0.sealed = true }
        flushIfComplete()
    }

    func fill(_ slot: Int, _ body: [UInt8]) {
        state.withLock { s in if s.slots[slot] == nil { s.slots[slot] = body } }
        flushIfComplete()
    }

    /// The sink one request of the batch answers into.
    func sink(_ slot: Int) -> any ReplySink { BatchSlot(collector: self, slot: slot, timers: out) }

    private func flushIfComplete() {
        let bodies = state.withLock { s -> [[UInt8]]? in
            guard s.sealed, !s.sent, s.slots.allSatisfy({ $0 != nil }) else { return nil }
            s.sent = true
            return s.slots.map { $0! }
        }
        guard let bodies else { return }
        if bodies.isEmpty { return out.respond(status: 202, headers: [], body: []) }
        var array: [UInt8] = [UInt8(ascii: "[")]
        for (i, body) in bodies.enumerated() {
            if i > 0 { array.append(UInt8(ascii: ",")) }
            array += body
        }
        array.append(UInt8(ascii: "]"))
        if asJSON {
            out.respond(status: 200, headers: [("Content-Type", "application/json")], body: array)
        } else {
            out.startStream(headers: [])
            out.sendEvent(array)
            out.endStream()
        }
    }
}

/// One request's place in a batch: its whole JSON answer fills the slot (it never streams: `Accept` is JSON).
private final class BatchSlot: ReplySink {
    let collector: BatchCollector
    let slot: Int
    /// The batch's own connection, for timers (call deadlines).
    let timers: any ReplySink
    private let done = Atomic<Bool>(false)

    init(collector: BatchCollector, slot: Int, timers: any ReplySink) {
        self.collector = collector
        self.slot = slot
        self.timers = timers
    }

    var isFinished: Bool { done.load(ordering: .acquiring) }

    func respond(status: Int, headers: [(String, String)], body: [UInt8]) {
        guard !done.exchange(true, ordering: .acquiringAndReleasing) else { return }
        collector.fill(slot, body)
    }

    func startStream(headers: [(String, String)]) -> Bool { false }
    func sendEvent(_ json: [UInt8], comment: Bool, id: String?) {}
    func endStream() {}
    func onClientGone(_ body: @escaping @Sendable () -> Void) {}

    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) -> any DispatchTimer {
        timers.schedule(after: delay, body)
    }
}
