import Testing

@testable import SupervisorCore

func makeBackoff(initial: Double, max: Double, multiplier: Double, jitter: Double, resetAfter: Double = 60)
    -> BackoffPolicy
{
    var b = BackoffPolicy()
    b.initial = initial
    b.max = max
    b.multiplier = multiplier
    b.jitter = jitter
    b.resetAfter = resetAfter
    return b
}

struct BackoffPolicyTests {
    @Test func exponentialScheduleCappedAtMax() {
        let b = makeBackoff(initial: 0.5, max: 10, multiplier: 2, jitter: 0)
        let expected: [Double] = [0.5, 1, 2, 4, 8, 10, 10, 10]
        for (n, e) in expected.enumerated() {
            #expect(b.delay(attempt: n, random: 0.5) == e, "attempt \(n)")
        }
    }

    @Test func nonPowerOfTwoMultiplier() {
        let b = makeBackoff(initial: 0.1, max: 30, multiplier: 1.5, jitter: 0)
        for n in 0..<20 {
            var e = 0.1
            for _ in 0..<n { e *= 1.5 }
            e = min(e, 30)
            #expect(approximatelyEqual(b.delay(attempt: n, random: 0.3), e), "attempt \(n)")
        }
    }

    @Test func multiplierOneIsConstant() {
        let b = makeBackoff(initial: 2, max: 30, multiplier: 1, jitter: 0)
        for n in [0, 1, 5, 100] {
            #expect(b.delay(attempt: n, random: 0.9) == 2)
        }
    }

    @Test func hugeAttemptStaysAtMaxAndFinite() {
        let b = makeBackoff(initial: 0.1, max: 30, multiplier: 10, jitter: 0)
        for n in [63, 64, 65, 1000, Int.max] {
            let d = b.delay(attempt: n, random: 0.5)
            #expect(d == 30, "attempt \(n)")
        }
    }

    @Test func initialEqualToMax() {
        let b = makeBackoff(initial: 5, max: 5, multiplier: 2, jitter: 0)
        #expect(b.delay(attempt: 0, random: 0) == 5)
        #expect(b.delay(attempt: 3, random: 0) == 5)
    }

    @Test func noJitterIgnoresRandom() {
        let b = makeBackoff(initial: 1, max: 100, multiplier: 2, jitter: 0)
        for n in 0..<6 {
            let expected = Double(1 << n)
            for r in [0, 0.25, 0.5, 0.75, 0.999_999] {
                #expect(b.delay(attempt: n, random: r) == expected)
            }
        }
    }

    @Test func jitterBounds() {
        // jitter 0.2 = ±20 %: random 0 gives the lower bound, random → 1 the upper, 0.5 the plain delay.
        let b = makeBackoff(initial: 1, max: 100, multiplier: 2, jitter: 0.2)
        for n in 0..<5 {
            let d = Double(1 << n)
            #expect(approximatelyEqual(b.delay(attempt: n, random: 0), d * 0.8))
            #expect(approximatelyEqual(b.delay(attempt: n, random: 0.5), d))
            #expect(approximatelyEqual(b.delay(attempt: n, random: 0.999_999), d * 1.2, tolerance: 1e-5))
            #expect(b.delay(attempt: n, random: 0.999_999) < d * 1.2)
        }
    }

    @Test func jitterStaysWithinBoundsAndIsMonotonicInRandom() {
        let b = makeBackoff(initial: 3, max: 100, multiplier: 2, jitter: 0.3)
        var previous = -Double.infinity
        for i in 0..<1000 {
            let r = Double(i) / 1000
            let d = b.delay(attempt: 1, random: r)
            #expect(d >= 6 * 0.7 - 1e-9 && d < 6 * 1.3)
            #expect(d >= previous)
            previous = d
        }
    }

    @Test func jitterAppliesToTheCappedDelay() {
        let b = makeBackoff(initial: 1, max: 10, multiplier: 2, jitter: 0.1)
        #expect(b.delay(attempt: 20, random: 0.5) == 10)
        #expect(approximatelyEqual(b.delay(attempt: 20, random: 0), 9))
        #expect(approximatelyEqual(b.delay(attempt: 20, random: 0.999_999), 11, tolerance: 1e-5))
    }

    @Test func fullJitterNeverNegative() {
        let b = makeBackoff(initial: 1, max: 10, multiplier: 2, jitter: 1)
        #expect(b.delay(attempt: 0, random: 0) == 0)
        for i in 0..<100 { #expect(b.delay(attempt: 3, random: Double(i) / 100) >= 0) }
    }

    @Test func defaultsAreSane() {
        // Whatever the defaults are, they must be a valid policy: positive, growing, capped, jitter within [0, 1].
        let b = BackoffPolicy()
        #expect(b.initial > 0)
        #expect(b.initial <= b.max)
        #expect(b.multiplier >= 1)
        #expect((0...1).contains(b.jitter))
        #expect(b.resetAfter > 0)
        #expect(b.delay(attempt: 1000, random: 0.5) == b.max)
    }
}
