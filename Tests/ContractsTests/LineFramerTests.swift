import Contracts
import Testing

struct LineFramerTests {
    private func drain(_ framer: inout LineFramer) -> [LineFramer.Frame] {
        var frames: [LineFramer.Frame] = []
        while let f = framer.next() { frames.append(f) }
        return frames
    }

    private func line(_ s: String) -> LineFramer.Frame { .line(Array(s.utf8)) }

    @Test func linesSplitAcrossReadsComeOutWhole() {
        var framer = LineFramer(maxLineBytes: 64, overflow: .reject)
        framer.append(Array("{\"a\":".utf8))
        #expect(drain(&framer).isEmpty)
        framer.append(Array("1}\n{\"b\":2}\n{\"c".utf8))
        #expect(drain(&framer) == [line("{\"a\":1}"), line("{\"b\":2}")])
        framer.append(Array("\":3}\n".utf8))
        #expect(drain(&framer) == [line("{\"c\":3}")])
        #expect(framer.pendingBytes == 0)
    }

    @Test func byteByByteIsTheSame() {
        var framer = LineFramer(maxLineBytes: 64, overflow: .reject)
        var frames: [LineFramer.Frame] = []
        for b in "one\n\ntwo\n".utf8 {
            framer.append([b])
            frames += drain(&framer)
        }
        #expect(frames == [line("one"), line(""), line("two")])
    }

    @Test func anOversizedLineIsRejectedOnceAndTheNextLineSurvives() {
        var framer = LineFramer(maxLineBytes: 8, overflow: .reject)
        framer.append(Array("0123456789".utf8))  // over the limit, no newline yet
        #expect(drain(&framer) == [.tooLong])
        framer.append(Array("abcdef".utf8))  // still the same line: skipped, not buffered
        #expect(drain(&framer).isEmpty)
        #expect(framer.pendingBytes == 0)
        framer.append(Array("xyz\nok\n".utf8))
        #expect(drain(&framer) == [line("ok")])
    }

    @Test func aLineOfExactlyTheLimitPasses() {
        var framer = LineFramer(maxLineBytes: 4, overflow: .reject)
        framer.append(Array("abcd\nabcde\nz\n".utf8))
        #expect(drain(&framer) == [line("abcd"), .tooLong, line("z")])
    }

    @Test func splitCutsAnEndlessLineIntoPieces() {
        var framer = LineFramer(maxLineBytes: 4, overflow: .split)
        framer.append(Array("abcdefghij".utf8))
        #expect(drain(&framer) == [line("abcd"), line("efgh")])
        #expect(framer.pendingBytes == 2)
        framer.append(Array("k\n".utf8))
        #expect(drain(&framer) == [line("ijk")])
    }

    @Test func finishHandsBackALastLineWithoutNewline() {
        var framer = LineFramer(maxLineBytes: 16, overflow: .split)
        framer.append(Array("done\ntail".utf8))
        #expect(drain(&framer) == [line("done")])
        #expect(framer.finish() == Array("tail".utf8))
        #expect(framer.finish() == nil)
    }

    @Test func finishInsideARejectedLineGivesNothing() {
        var framer = LineFramer(maxLineBytes: 2, overflow: .reject)
        framer.append(Array("abcdef".utf8))
        #expect(drain(&framer) == [.tooLong])
        #expect(framer.finish() == nil)
    }

    @Test func manyLinesKeepTheBufferSmall() {
        var framer = LineFramer(maxLineBytes: 32, overflow: .reject)
        var count = 0
        for i in 0..<10_000 {
            framer.append(Array("line \(i)\n".utf8))
            while case .line = framer.next() { count += 1 }
            #expect(framer.pendingBytes == 0)
        }
        #expect(count == 10_000)
    }
}
