import Locking

/// A server's own change notifications, in the order the server sent them.
///
/// A list change first re-reads the lists (a plugin's `describe`, a program's `*/list`) and only then reaches
/// the listeners; a resource update needs no such step. Delivering each as it came would let an update sent
/// after a list change overtake it. The sequencer keeps one queue per server and one drainer at a time, so the
/// notifications leave in the order they were posted and two re-reads never overlap.
final class ChangeSequencer: Sendable {
    enum Change: Sendable {
        case lists(UInt32)
        case resource(String)
    }

    private struct State {
        var pending: [Change] = []
        var head = 0
        var draining = false
    }

    private let state = Locked(State())

    /// Queues a change. A resource update that finds the queue idle is delivered at once on the caller's
    /// thread; anything that needs a re-read runs on `source.runDetached`, never on the caller's thread (which
    /// may be inside the plugin's own handler).
    func post(_ change: Change, from source: some ChangeSource) {
        let start = state.withLock { s -> Bool in
            s.pending.append(change)
            if s.draining { return false }
            s.draining = true
            return true
        }
        guard start else { return }
        if case .resource = change {
            drain(inline: true, source)
        } else {
            source.runDetached { self.drain(inline: false, source) }
        }
    }

    private enum Step {
        case done, handOff
        case run(Change)
    }

    private func drain(inline: Bool, _ source: some ChangeSource) {
        while true {
            let step = state.withLock { s -> Step in
                guard s.head < s.pending.count else {
                    s.pending.removeAll(keepingCapacity: true)
                    s.head = 0
                    s.draining = false
                    return .done
                }
                let next = s.pending[s.head]
                if inline, case .lists = next { return .handOff }
                s.head += 1
                return .run(next)
            }
            switch step {
            case .done:
                return
            case .handOff:
                source.runDetached { self.drain(inline: false, source) }
                return
            case .run(.lists(let lists)):
                if source.refreshLists() { source.deliverChange(lists: lists, uri: nil) }
            case .run(.resource(let uri)):
                source.deliverChange(lists: 0, uri: uri)
            }
        }
    }
}

/// What a `ChangeSequencer` needs from the server it orders.
protocol ChangeSource: Sendable {
    /// Re-reads the server's lists; false keeps the previous ones and drops the notification (logged by the
    /// server).
    func refreshLists() -> Bool
    /// Hands a change to the host's listeners.
    func deliverChange(lists: UInt32, uri: String?)
    /// Runs work off the caller's thread.
    func runDetached(_ work: @escaping @Sendable () -> Void)
}
