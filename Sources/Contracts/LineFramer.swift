/// Newline-delimited framing, the one every JSON-lines stream of the project uses outside NIO: the supervisor's
/// end of a child's control channel, the control socket server, mcpctl, and the child log forwarder.
///
/// Bytes go in with `append`; whole lines (without their `\n`) come out of `next()`. A line longer than
/// `maxLineBytes` is never buffered whole: with `.split` it comes out in pieces of `maxLineBytes` (a log line is
/// cut, not lost); with `.reject` `next()` says `.tooLong` once and the rest of that line up to its newline is
/// skipped, so the stream goes on with the next line. Memory stays below `maxLineBytes` plus one read.
public struct LineFramer: Sendable {
    public enum Overflow: Sendable {
        /// Emit an over-long line in pieces of `maxLineBytes`.
        case split
        /// Report it and skip it.
        case reject
    }

    public enum Frame: Sendable, Equatable {
        case line([UInt8])
        /// A line longer than `maxLineBytes` was skipped (`.reject`).
        case tooLong
    }

    public let maxLineBytes: Int
    public let overflow: Overflow
    private var buffer: [UInt8] = []
    /// Where the unconsumed bytes of `buffer` start (consumed bytes are dropped in bulk, not line by line).
    private var start = 0
    /// Where the search for the next newline resumes (everything before it was searched already).
    private var scanned = 0
    /// Skipping the rest of a rejected line.
    private var skipping = false

    public init(maxLineBytes: Int, overflow: Overflow) {
        precondition(maxLineBytes > 0)
        self.maxLineBytes = maxLineBytes
        self.overflow = overflow
    }

    /// Bytes buffered and not yet returned as a line.
    public var pendingBytes: Int { buffer.count - start }

    public mutating func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            scanned -= start
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole line, `.tooLong`, or nil when more bytes are needed.
    public mutating func next() -> Frame? {
        while true {
            let newline = buffer[scanned...].firstIndex(of: 0x0A)
            if skipping {
                guard let newline else {
                    start = buffer.count  // still inside the rejected line: drop what came
                    scanned = start
                    return nil
                }
                skipping = false
                start = newline + 1
                scanned = start
                continue
            }
            if let newline, newline - start <= maxLineBytes {
                let line = Array(buffer[start..<newline])
                start = newline + 1
                scanned = start
                return .line(line)
            }
            guard newline != nil || buffer.count - start > maxLineBytes else {
                scanned = buffer.count
                return nil
            }
            switch overflow {
            case .split:
                let line = Array(buffer[start..<start + maxLineBytes])
                start += maxLineBytes
                scanned = start
                return .line(line)
            case .reject:
                skipping = true
                scanned = start
                return .tooLong
            }
        }
    }

    /// At end of input: the last line if it had no newline (nil if nothing is left, or it was being skipped).
    public mutating func finish() -> [UInt8]? {
        defer {
            buffer = []
            start = 0
            scanned = 0
            skipping = false
        }
        guard !skipping, start < buffer.count else { return nil }
        return Array(buffer[start...])
    }
}
