import Contracts
import Dispatch
import Logging
import StructuredLog

#if canImport(Glibc)
    import Glibc
#endif

/// A token bucket of forwarded lines. Each server has one, shared by every replica's stdout and stderr; when the
/// log goes to the journal, every server's also draws on one bucket for all servers (`ForwardingLimits`).
final class LineBudget {
    let linesPerSecond: Double
    let burst: Double
    private var tokens: Double
    private var lastRefill: Double

    init(linesPerSecond: Double, burst: Double) {
        self.linesPerSecond = linesPerSecond
        self.burst = burst
        tokens = burst
        lastRefill = Clock.now()
    }

    /// Refills for the time passed; true when a line may go now (it is then counted).
    func available(_ now: Double) -> Bool {
        tokens = min(burst, tokens + (now - lastRefill) * linesPerSecond)
        lastRefill = now
        return tokens >= 1
    }

    func take() { tokens -= 1 }
}

/// How many forwarded child lines the log takes. To stderr as text: 2,000 lines/s per server after a burst of
/// 20,000. To the journal, whose per-unit rate limit (RateLimitIntervalSec=30s, RateLimitBurst=10000 by default)
/// would otherwise drop the supervisor's own lines along with a chatty plugin's: 50 lines/s per server after a
/// burst of 1,000, and all servers together 150 lines/s after a burst of 3,000 — at most 7,500 forwarded lines in
/// any 30 s, leaving journald's remaining quarter to the supervisor itself.
public struct ForwardingLimits: Sendable {
    public var perServer: (linesPerSecond: Double, burst: Double)
    public var total: (linesPerSecond: Double, burst: Double)?

    public static let text = ForwardingLimits(perServer: (2000, 20000), total: nil)
    public static let journal = ForwardingLimits(perServer: (50, 1000), total: (150, 3000))
}

/// Forwards a child's stdout or stderr, line by line, into the supervisor's log, tagged with server, replica and
/// pid. A line that is one of the host's JSON log lines keeps its level, event and fields; any other line (a
/// plugin printing) becomes the message of a `child.output` line, at info from stdout and warning from stderr.
///
/// Reading keeps up with any burst (the pipe applies back-pressure, nothing is lost while the supervisor reads).
/// A child that floods beyond `linesPerSecond` (after a burst allowance) has the excess dropped, counted, and
/// reported once per second, so one noisy plugin cannot drown the supervisor or its journal.
final class LogForwarder: @unchecked Sendable {
    // @unchecked: used only on the supervisor's queue (its read source and the drop report both run there).
    private let fd: Int32
    private let server: String
    private let replica: SupervisorLog.Replica
    private let pid: Int32
    private let textLevel: Logger.Level
    private let log: SupervisorLog
    private var source: DispatchSourceRead?
    private var framer = LineFramer(maxLineBytes: LogForwarder.maxLineBytes, overflow: .split)
    private var dropped = 0
    /// A drop report is due within a second even when no further line comes (a burst that ends while over
    /// budget would otherwise be reported only at the child's exit).
    private var reportPending = false
    private let queue: DispatchQueue
    private let budgets: [LineBudget]
    static let maxLineBytes = 16 * 1024

    /// - Parameter budgets: the buckets a line must find room in (the server's, and the journal's total).
    init(
        fd: Int32, server: String, replica: SupervisorLog.Replica, pid: Int32, textLevel: Logger.Level,
        queue: DispatchQueue, log: SupervisorLog, budgets: [LineBudget]
    ) {
        self.fd = fd
        self.server = server
        self.replica = replica
        self.pid = pid
        self.textLevel = textLevel
        self.log = log
        self.budgets = budgets
        self.queue = queue
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
        framer.append(bytes)  // an endless line is cut in pieces, not buffered forever
        while case .line(let line) = framer.next() { emit(line[...]) }
    }

    private func flushPartial() {
        if let last = framer.finish() { emit(last[...]) }
    }

    /// The message of the child's last `host.failure` line (why the host gave up), kept for `status`.
    private(set) var hostFailure: String?

    private func emit(_ line: ArraySlice<UInt8>) {
        let parsed = ForwardedLine.parse(line, textLevel: textLevel)
        if parsed.event == LogEventName.hostFailure || parsed.event == LogEventName.programExit {
            hostFailure = parsed.message
        }
        let now = Clock.now()
        guard budgets.allSatisfy({ $0.available(now) }) else {
            dropped += 1
            if !reportPending {
                reportPending = true
                queue.asyncAfter(deadline: .now() + .seconds(1)) { [weak self] in
                    guard let self else { return }
                    self.reportPending = false
                    self.reportDrops(force: true)
                }
            }
            return
        }
        for budget in budgets { budget.take() }
        reportDrops(force: false)
        log.child(server: server, replica: replica, pid: pid, parsed)
    }

    private var lastReport = 0.0

    private func reportDrops(force: Bool) {
        guard dropped > 0 else { return }
        let now = Clock.now()
        guard force || now - lastReport >= 1 else { return }
        lastReport = now
        log.event(
            .warning, LogEventName.childLogsDropped, server: server, replica: replica, pid: pid,
            message: "dropped \(dropped) log line(s): more than \(Int(budgets[0].linesPerSecond)) lines/s",
            fields: ["dropped": LogValue.of(dropped)])
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
