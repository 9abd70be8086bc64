import Dispatch
import SupervisorCore

/// The supervisor's one timer: every deadline the machine arms (heartbeats, probes, start and stop timeouts,
/// backoff, cool-down) waits here, and one Dispatch timer source wakes the queue for the earliest. Each wake-up
/// reports every deadline that is due or within its `early` tolerance, so nearby deadlines share it: 50 idle
/// servers cost a couple of wake-ups per heartbeat interval, not a hundred. A timer source per deadline cost more
/// than the probe it timed (set up and torn down twice per probe, measured), and a cancelled one never wakes
/// the queue again, so an idle supervisor stays asleep.
final class DeadlineScheduler {
    private let source: DispatchSourceTimer
    private var table: [Deadline: (at: Double, early: Double)] = [:]
    /// When the source will fire next (nil: not armed).
    private var armedAt: Double?
    private let now: () -> Double
    /// A deadline was armed or cancelled since the last `rearm`.
    private var changed = false
    /// `fire` is handing out the deadlines reached.
    private var firing = false

    /// - Parameters:
    ///   - now: the monotonic clock the deadlines are measured on.
    ///   - due: called on `queue` for each deadline reached, earliest first.
    init(queue: DispatchQueue, now: @escaping () -> Double, due: @escaping (Deadline) -> Void) {
        self.now = now
        source = DispatchSource.makeTimerSource(queue: queue)
        source.setEventHandler { [unowned self] in
            self.armedAt = nil
            self.fire(due)
        }
        source.schedule(deadline: .distantFuture)
        source.resume()
    }

    func arm(_ deadline: Deadline, at: Double, early: Double) {
        table[deadline] = (at, early)
        changed = true
    }

    func cancel(_ deadline: Deadline) {
        guard table.removeValue(forKey: deadline) != nil else { return }
        changed = true
    }

    /// Sets the source for the earliest deadline. An earlier wake-up already set stays (it finds nothing due and
    /// sets the source again), so a burst of changes costs no re-arming; nothing is done when no deadline changed
    /// since the last call (a pong), or while the deadlines reached are being handed out (the wake-up's own
    /// rearm at its end sees them all: re-arming in between set the source for a deadline about to be handed
    /// out, one wasted wake-up per heartbeat round).
    func rearm() {
        guard changed, !firing else { return }
        changed = false
        var earliest: Double?
        for entry in table.values where earliest == nil || entry.at < earliest! { earliest = entry.at }
        guard let due = earliest else { return }
        if let armed = armedAt, armed <= due + 0.001 { return }
        armedAt = due
        let delay = max(0, due - now())
        source.schedule(deadline: .now() + .nanoseconds(Int(delay * 1e9)), leeway: .milliseconds(1))
    }

    private func fire(_ due: (Deadline) -> Void) {
        let current = now()
        var reached: [(deadline: Deadline, entry: (at: Double, early: Double))] = []
        for (deadline, entry) in table where entry.at - entry.early <= current + 0.000_5 {
            reached.append((deadline, entry))
        }
        reached.sort { $0.entry.at < $1.entry.at }
        firing = true
        for (deadline, entry) in reached {
            // An earlier one may have moved or cancelled it.
            guard let still = table[deadline], still == entry else { continue }
            table[deadline] = nil
            due(deadline)
        }
        firing = false
        changed = true
        rearm()
    }

    deinit { source.cancel() }
}
