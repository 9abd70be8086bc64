import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// Forwards a child's stdout or stderr, line by line, into the supervisor's log, tagged with server and pid.
///
/// Reading keeps up with any burst (the pipe applies back-pressure, nothing is lost while the supervisor reads).
/// A child that floods beyond `linesPerSecond` (after a burst allowance) has the excess dropped, counted, and
/// reported once per second, so one noisy plugin cannot drown the supervisor or its journal.
final class LogForwarder {
    private let fd: Int32
    private let label: String
    private let log: SupervisorLog
    private var source: DispatchSourceRead?
    private var partial: [UInt8] = []
    private var tokens: Double
    private var lastRefill: Double
    private var dropped = 0
    private let linesPerSecond: Double
    private let burst: Double
    static let maxLineBytes = 16 * 1024

    init(
        fd: Int32, label: String, queue: DispatchQueue, log: SupervisorLog, linesPerSecond: Double = 2000,
        burst: Double = 20000
    ) {
        self.fd = fd
        self.label = label
        self.log = log
        self.linesPerSecond = linesPerSecond
        self.burst = burst
        self.tokens = burst
        self.lastRefill = Clock.now()
        let s = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        s.setEventHandler { [weak self] in self?.readAvailable() }
        s.setCancelHandler { Glibc.close(fd) }
        s.resume()
        source = s
    }

    /// Reads what the pipe holds now; returns false at end of file.
    @discardableResult
    private func readAvailable() -> Bool {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n > 0 {
                consume(buf[0..<n])
                continue
            }
            if n == 0 {
                flushPartial()
                reportDrops(force: true)
                source?.cancel()
                source = nil
                return false
            }
            if errno == EINTR { continue }
            if errno != EAGAIN { source?.cancel(); source = nil }
            return true
        }
    }

    private func consume(_ bytes: ArraySlice<UInt8>) {
        var start = bytes.startIndex
        while let nl = bytes[start...].firstIndex(of: 0x0A) {
            if partial.isEmpty {
                emit(bytes[start..<nl])
            } else {
                partial += bytes[start..<nl]
                emit(partial[...])
                partial.removeAll(keepingCapacity: true)
            }
            start = bytes.index(after: nl)
        }
        partial += bytes[start...]
        if partial.count >= Self.maxLineBytes {
            emit(partial[...])  // an endless line is cut, not buffered forever
            partial.removeAll(keepingCapacity: true)
        }
    }

    private func flushPartial() {
        if !partial.isEmpty { emit(partial[...]) }
        partial.removeAll()
    }

    private func emit(_ line: ArraySlice<UInt8>) {
        let now = Clock.now()
        tokens = min(burst, tokens + (now - lastRefill) * linesPerSecond)
        lastRefill = now
        guard tokens >= 1 else {
            dropped += 1
            return
        }
        tokens -= 1
        reportDrops(force: false)
        log.child(label, String(decoding: line, as: UTF8.self))
    }

    private var lastReport = 0.0

    private func reportDrops(force: Bool) {
        guard dropped > 0 else { return }
        let now = Clock.now()
        guard force || now - lastReport >= 1 else { return }
        lastReport = now
        log.line("\(label): dropped \(dropped) log line(s): more than \(Int(linesPerSecond)) lines/s")
        dropped = 0
    }

    /// The child is gone: read what is left in the pipe, then stop (the write end may still be held by an
    /// orphaned grandchild; the source then ends when that one is killed too).
    func finish() {
        if let s = source, !readAvailable() {
            _ = s
        }
    }

    deinit { source?.cancel() }
}
