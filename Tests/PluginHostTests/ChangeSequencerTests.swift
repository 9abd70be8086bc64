import Dispatch
import Synchronization
import Testing

@testable import PluginHost

/// A server's change notifications leave in the order it sent them, even though a list change re-reads the lists
/// first (the flake CI once saw: a resource update overtook the list change sent before it).
struct ChangeSequencerTests {
    /// A server whose re-read of its lists waits until the test lets it go.
    final class SlowSource: ChangeSource {
        let delivered = Mutex<[String]>([])
        let refreshes = Mutex(0)
        let concurrentRefreshes = Mutex((now: 0, most: 0))
        let release = DispatchSemaphore(value: 0)
        let refreshing = DispatchSemaphore(value: 0)
        let arrived = DispatchSemaphore(value: 0)
        let failRefresh: Bool

        init(failRefresh: Bool = false) { self.failRefresh = failRefresh }

        func refreshLists() -> Bool {
            concurrentRefreshes.withLock {
                $0.now += 1; $0.most = max($0.most, $0.now)
            }
            refreshing.signal()
            release.wait()
            concurrentRefreshes.withLock { $0.now -= 1 }
            refreshes.withLock { $0 += 1 }
            return !failRefresh
        }

        func deliverChange(lists: UInt32, uri: String?) {
            delivered.withLock { $0.append(uri ?? "lists:\(lists)") }
            arrived.signal()
        }

        func runDetached(_ work: @escaping @Sendable () -> Void) { DispatchQueue.global().async(execute: work) }

        /// Waits until `count` notifications were delivered (false after 10 s).
        func waitFor(_ count: Int) -> Bool {
            let deadline = DispatchTime.now() + 10
            while delivered.withLock({ $0.count }) < count {
                if arrived.wait(timeout: deadline) == .timedOut { return false }
            }
            return true
        }
    }

    @Test func anUpdateAfterAListChangeWaitsForTheReRead() {
        let source = SlowSource()
        let sequencer = ChangeSequencer()
        sequencer.post(.lists(1), from: source)
        #expect(source.refreshing.wait(timeout: .now() + 10) == .success)
        // The re-read is under way and held: the update posted now must not overtake it.
        sequencer.post(.resource("reference://readme"), from: source)
        sequencer.post(.lists(4), from: source)
        #expect(source.delivered.withLock { $0 }.isEmpty)
        source.release.signal()
        #expect(source.refreshing.wait(timeout: .now() + 10) == .success)
        source.release.signal()
        #expect(source.waitFor(3))
        #expect(source.delivered.withLock { $0 } == ["lists:1", "reference://readme", "lists:4"])
        #expect(source.concurrentRefreshes.withLock { $0.most } == 1)
    }

    @Test func anUpdateOnAnIdleQueueIsDeliveredAtOnceOnTheCallersThread() {
        let source = SlowSource()
        let sequencer = ChangeSequencer()
        sequencer.post(.resource("a://1"), from: source)
        // No hop: delivered before post returned.
        #expect(source.delivered.withLock { $0 } == ["a://1"])
        sequencer.post(.resource("a://2"), from: source)
        #expect(source.delivered.withLock { $0 } == ["a://1", "a://2"])
    }

    @Test func aFailedReReadDropsOnlyItsOwnNotification() {
        let source = SlowSource(failRefresh: true)
        let sequencer = ChangeSequencer()
        sequencer.post(.lists(2), from: source)
        sequencer.post(.resource("a://after"), from: source)
        #expect(source.refreshing.wait(timeout: .now() + 10) == .success)
        source.release.signal()
        #expect(source.waitFor(1))
        #expect(source.delivered.withLock { $0 } == ["a://after"])
        #expect(source.refreshes.withLock { $0 } == 1)
    }
}
