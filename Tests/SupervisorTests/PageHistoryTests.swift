import Contracts
import Testing

@testable import Supervisor

/// Totals with `observations` placed in the buckets given (index into durationBuckets, or durationBuckets.count
/// for +Inf).
func totals(requests: Int, errors: Int = 0, buckets: [Int: Int] = [:]) -> TrafficTotals {
    var b = [Int](repeating: 0, count: TrafficMetrics.durationBuckets.count + 1)
    for (i, n) in buckets { b[i] = n }
    return TrafficTotals(requests: requests, errors: errors, buckets: b)
}

func close(_ a: Double?, _ b: Double, tolerance: Double = 1e-9) -> Bool {
    guard let a else { return false }
    return abs(a - b) <= tolerance
}

struct PageHistoryTests {
    @Test func firstCallIsTheBaselineThenRatesOverTheInterval() {
        var h = PageHistory(interval: 10)
        h.record(time: 100, servers: ["a": [0: totals(requests: 40, errors: 2)]])
        #expect(h.samples("a").isEmpty)
        h.record(time: 110, servers: ["a": [0: totals(requests: 90, errors: 7)]])
        let s = h.samples("a")
        #expect(s.count == 1)
        #expect(s[0].time == 110)
        #expect(close(s[0].requestRate, 5))  // 50 requests in 10 s
        #expect(close(s[0].errorRatio, 0.1))  // 5 of 50
        #expect(s[0].p95 == nil)  // no observation in the interval's buckets
    }

    @Test func rateUsesTheRealElapsedTime() {
        var h = PageHistory(interval: 10)
        h.record(time: 0, servers: ["a": [0: totals(requests: 0)]])
        h.record(time: 12.5, servers: ["a": [0: totals(requests: 25)]])
        #expect(close(h.samples("a").last?.requestRate, 2))
    }

    @Test func noRequestsMeansZeroRateAndZeroErrorRatio() {
        var h = PageHistory(interval: 10)
        h.record(time: 0, servers: ["a": [0: totals(requests: 7, errors: 7)]])
        h.record(time: 10, servers: ["a": [0: totals(requests: 7, errors: 7)]])
        let s = h.samples("a")[0]
        #expect(s.requestRate == 0)
        #expect(s.errorRatio == 0)
        #expect(s.p95 == nil)
    }

    @Test func aReplicaWhoseCountersWentDownCountsItsNewTotalsFromZero() {
        var h = PageHistory(interval: 10)
        h.record(time: 0, servers: ["a": [0: totals(requests: 100, errors: 10), 1: totals(requests: 5)]])
        // Replica 0 restarted and has served 30 (3 errors) since; replica 1 served 10 more.
        h.record(time: 10, servers: ["a": [0: totals(requests: 30, errors: 3), 1: totals(requests: 15)]])
        let s = h.samples("a")[0]
        #expect(close(s.requestRate, 4))  // (30 + 10) / 10
        #expect(close(s.errorRatio, 3.0 / 40))
    }

    @Test func aResetSeenInOneBucketAloneIsAReset() {
        // Requests went up but a bucket went down: the replica restarted (its buckets count from zero).
        var h = PageHistory(interval: 10)
        h.record(time: 0, servers: ["a": [0: totals(requests: 10, buckets: [3: 10])]])
        h.record(time: 10, servers: ["a": [0: totals(requests: 20, buckets: [3: 5, 8: 15])]])
        let s = h.samples("a")[0]
        #expect(close(s.requestRate, 2))  // 20 from zero, not 10
        // 20 observations: 5 in (0.0025, 0.005], 15 in (0.1, 0.2]; rank 19 → 0.1 + 0.1 × (19 − 5) / 15.
        #expect(close(s.p95, 0.1 + 0.1 * 14.0 / 15.0))
    }

    @Test func aReplicaThatAppearedCountsFromItsFirstSample() {
        var h = PageHistory(interval: 10)
        h.record(time: 0, servers: ["a": [0: totals(requests: 10)]])
        h.record(time: 10, servers: ["a": [0: totals(requests: 20), 1: totals(requests: 500)]])
        #expect(close(h.samples("a")[0].requestRate, 1))  // replica 1's 500 is its baseline
        h.record(time: 20, servers: ["a": [0: totals(requests: 30), 1: totals(requests: 530)]])
        #expect(close(h.samples("a")[1].requestRate, 4))  // (10 + 30) / 10
    }

    @Test func aReplicaMissingFromOneCallKeepsItsTotals() {
        var h = PageHistory(interval: 10)
        h.record(time: 0, servers: ["a": [0: totals(requests: 10), 1: totals(requests: 10)]])
        h.record(time: 10, servers: ["a": [0: totals(requests: 20)]])  // replica 1 did not answer
        #expect(close(h.samples("a")[0].requestRate, 1))
        h.record(time: 20, servers: ["a": [0: totals(requests: 30), 1: totals(requests: 40)]])
        #expect(close(h.samples("a")[1].requestRate, 4))  // replica 1's 30 since time 0, counted once
    }

    @Test func aReplicaMissingLongerThanTheGraceIsForgotten() {
        var h = PageHistory(interval: 10)
        h.record(time: 0, servers: ["a": [0: totals(requests: 0), 1: totals(requests: 10)]])
        var t = 0.0
        for _ in 0...PageHistory.replicaGrace {
            t += 10
            h.record(time: t, servers: ["a": [0: totals(requests: 0)]])
        }
        t += 10
        h.record(time: t, servers: ["a": [0: totals(requests: 0), 1: totals(requests: 1000)]])
        #expect(h.samples("a").last?.requestRate == 0)  // a new baseline, not 990 requests
    }

    @Test func serversNotListedAreDropped() {
        var h = PageHistory(interval: 10)
        h.record(time: 0, servers: ["a": [0: totals(requests: 0)], "b": [0: totals(requests: 0)]])
        h.record(time: 10, servers: ["a": [0: totals(requests: 10)], "b": [0: totals(requests: 10)]])
        h.record(time: 20, servers: ["a": [0: totals(requests: 20)]])
        #expect(h.servers == ["a"])
        #expect(h.samples("b").isEmpty)
        #expect(h.samples("a").count == 2)
        // Back again: a new history from a new baseline.
        h.record(time: 30, servers: ["a": [0: totals(requests: 30)], "b": [0: totals(requests: 99)]])
        #expect(h.samples("b").isEmpty)
    }

    @Test func aServerWithoutReplicasGetsZeroSamples() {
        var h = PageHistory(interval: 10)
        h.record(time: 0, servers: ["a": [:]])
        h.record(time: 10, servers: ["a": [:]])
        #expect(h.samples("a") == [PageSample(time: 10, requestRate: 0, errorRatio: 0, p95: nil)])
    }

    @Test func callsCloserThanTheIntervalAreIgnored() {
        var h = PageHistory(interval: 10)
        h.record(time: 0, servers: ["a": [0: totals(requests: 0)]])
        h.record(time: 3, servers: ["a": [0: totals(requests: 30)]])
        h.record(time: 4.9, servers: ["a": [0: totals(requests: 49)]])
        #expect(h.samples("a").isEmpty)
        h.record(time: 8.99, servers: ["a": [0: totals(requests: 95)]])  // a caller's 0.9 × interval on its clock
        #expect(h.samples("a").count == 1)
        #expect(close(h.samples("a")[0].requestRate, 95 / 8.99))
    }

    @Test func aClockThatWentBackRetakesTheBaseline() {
        var h = PageHistory(interval: 10)
        h.record(time: 100, servers: ["a": [0: totals(requests: 0)]])
        h.record(time: 110, servers: ["a": [0: totals(requests: 10)]])
        h.record(time: 50, servers: ["a": [0: totals(requests: 20)]])
        #expect(h.samples("a").isEmpty)
        h.record(time: 60, servers: ["a": [0: totals(requests: 40)]])
        #expect(close(h.samples("a")[0].requestRate, 2))
    }

    @Test func p95IsHistogramQuantileOverTheIntervalsBucketIncreases() {
        var h = PageHistory(interval: 10)
        // Before: many fast calls. In the interval: 50 in (0.005, 0.01] and 50 in (0.01, 0.025].
        h.record(time: 0, servers: ["a": [0: totals(requests: 1000, buckets: [0: 1000])]])
        h.record(time: 10, servers: ["a": [0: totals(requests: 1100, buckets: [0: 1000, 4: 50, 5: 50])]])
        // rank 95: 45 into the 50 of (0.01, 0.025] → 0.01 + 0.015 × 0.9 = 0.0235.
        #expect(close(h.samples("a")[0].p95, 0.0235))
    }

    @Test func p95SumsTheReplicasBuckets() {
        var h = PageHistory(interval: 10)
        h.record(time: 0, servers: ["a": [0: totals(requests: 0), 1: totals(requests: 0)]])
        h.record(
            time: 10,
            servers: ["a": [0: totals(requests: 10, buckets: [7: 10]), 1: totals(requests: 10, buckets: [8: 10])]])
        // 20 observations, 10 in (0.05, 0.1], 10 in (0.1, 0.2]; rank 19 → 0.1 + 0.1 × 9 / 10 = 0.19.
        #expect(close(h.samples("a")[0].p95, 0.19))
    }

    @Test func quantileEdges() {
        let n = TrafficMetrics.durationBuckets.count
        func b(_ pairs: [Int: Int]) -> [Int] {
            var a = [Int](repeating: 0, count: n + 1)
            for (i, c) in pairs { a[i] = c }
            return a
        }
        #expect(PageHistory.quantile(0.95, buckets: b([:])) == nil)
        // All in the first bucket: its lower bound is 0 → 0.0005 × 0.95.
        #expect(close(PageHistory.quantile(0.95, buckets: b([0: 10])), 0.000475))
        // The rank in +Inf: the highest finite bound.
        #expect(PageHistory.quantile(0.95, buckets: b([n: 3])) == 30)
        #expect(PageHistory.quantile(0.95, buckets: b([0: 90, n: 10])) == 30)
        // Exactly at a bucket's top: 95 of 100 in the first bucket → its upper bound.
        #expect(close(PageHistory.quantile(0.95, buckets: b([0: 95, 3: 5])), 0.0005))
        // One observation: the rank 0.95 is near the top of its bucket.
        #expect(close(PageHistory.quantile(0.95, buckets: b([8: 1])), 0.1 + 0.1 * 0.95))
        // A wrong bucket count is no answer rather than a wrong one.
        #expect(PageHistory.quantile(0.95, buckets: [1, 2, 3]) == nil)
    }

    @Test func historyKeepsTheLastCapacitySamplesOldestFirst() {
        var h = PageHistory(interval: 10)
        h.record(time: 0, servers: ["a": [0: totals(requests: 0)]])
        var requests = 0
        for i in 1...(PageHistory.capacity * 5 + 7) {
            requests += i  // rate i / 10 in interval i
            h.record(time: Double(i * 10), servers: ["a": [0: totals(requests: requests)]])
            let s = h.samples("a")
            #expect(s.count == min(i, PageHistory.capacity))
            #expect(s.last?.time == Double(i * 10))
            #expect(close(s.last?.requestRate, Double(i) / 10))
        }
        let s = h.samples("a")
        let last = PageHistory.capacity * 5 + 7
        #expect(s.map(\.time) == (last - PageHistory.capacity + 1...last).map { Double($0 * 10) })
    }

    @Test func memoryPerServerIsBoundedAndDocumented() {
        var h = PageHistory(interval: 10)
        var requests = 0
        var full = 0
        for i in 0..<(PageHistory.capacity * 10) {
            requests += 3
            h.record(time: Double(i * 10), servers: ["a": [0: totals(requests: requests, buckets: [4: requests])]])
            if i == PageHistory.capacity { full = h.storageBytes("a") }
            #expect(h.samples("a").count <= PageHistory.capacity)
        }
        #expect(full > 0)
        #expect(h.storageBytes("a") == full)  // filling it further allocates nothing more
        // PageHistory's documentation: about 2.7 KB per server with one replica, 210 bytes per further one.
        #expect(full <= 2800)
        #expect(MemoryLayout<PageSample>.stride == 40)
        var two = PageHistory(interval: 10)
        for i in 0..<(PageHistory.capacity + 5) {
            two.record(time: Double(i * 10), servers: ["a": [0: totals(requests: i), 1: totals(requests: i)]])
        }
        #expect(two.storageBytes("a") - full <= 220)
    }

    @Test func trafficTotalsFromASnapshot() {
        var snapshot = TrafficSnapshot()
        snapshot.requests = [
            RequestCount(method: "tools/call", outcome: "ok", count: 7),
            RequestCount(method: "tools/call", outcome: "error", count: 2),
            RequestCount(method: "ping", outcome: "ok", count: 4),
            RequestCount(method: "other", outcome: "error", count: 1),
        ]
        let n = TrafficMetrics.durationBuckets.count + 1
        var a = [Int](repeating: 0, count: n)
        a[2] = 5
        var b = [Int](repeating: 0, count: n)
        b[2] = 1
        b[n - 1] = 3
        snapshot.operations = [
            OperationHistogram(method: "tools/call", tool: "echo", errorType: "", buckets: a, sum: 0.01, count: 5),
            OperationHistogram(method: "ping", tool: "", errorType: "", buckets: b, sum: 40, count: 4),
            // A malformed one (wrong bucket count) is left out rather than misread.
            OperationHistogram(method: "ping", tool: "", errorType: "", buckets: [9], sum: 1, count: 9),
        ]
        let t = TrafficTotals(snapshot)
        #expect(t.requests == 14)
        #expect(t.errors == 3)
        var expected = [Int](repeating: 0, count: n)
        expected[2] = 6
        expected[n - 1] = 3
        #expect(t.buckets == expected)
    }
}
