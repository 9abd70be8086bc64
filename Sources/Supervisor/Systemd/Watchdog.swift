import CSystemd
import Contracts
import Dispatch
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The systemd watchdog (`WatchdogSec=`): `WATCHDOG=1` every half interval, sent only when, since the last
/// ping, the supervisor's event loop ran a block, its one deadline timer fired, and its control socket answered a
/// `version` call. A wedged loop, a timer that no longer fires or a control socket that no longer answers stops
/// the pings, and systemd kills and restarts the supervisor. Runs on its own queue, so a wedged supervisor queue
/// cannot ping on its behalf.
final class Watchdog: @unchecked Sendable {
    // @unchecked: every mutable property is touched only on `queue`.
    private let queue = DispatchQueue(label: "mcp-supervisor.watchdog")
    /// WATCHDOG_USEC in seconds; pings every half of it.
    let interval: Double
    private let notifier: SystemdNotifier
    private let log: SupervisorLog
    private var timer: DispatchSourceTimer?
    private var loopAnswered = false
    private var timerAnswered = false
    private var controlAnswered = false
    /// The control socket to call (set once it listens).
    private var controlPath: String?
    /// What failed at the last tick (logged once per change).
    private var failing: [String] = []
    private var ticks = 0
    /// Asks the supervisor's queue to run a block and arm a timer check: set by the supervisor.
    private let probeLoop: (@escaping @Sendable () -> Void, @escaping @Sendable () -> Void) -> Void

    /// - Parameter probeLoop: runs its first argument on the supervisor's queue and its second when the
    ///   supervisor's deadline timer fires next.
    init(
        interval: Double, notifier: SystemdNotifier, log: SupervisorLog,
        probeLoop: @escaping (@escaping @Sendable () -> Void, @escaping @Sendable () -> Void) -> Void
    ) {
        self.interval = interval
        self.notifier = notifier
        self.log = log
        self.probeLoop = probeLoop
    }

    func start(controlPath: String?) {
        queue.async { [self] in
            self.controlPath = controlPath
            let t = DispatchSource.makeTimerSource(queue: queue)
            let half = Int(interval / 2 * 1e6)
            t.schedule(deadline: .now(), repeating: .microseconds(half), leeway: .microseconds(max(1, half / 20)))
            t.setEventHandler { [unowned self] in
                self.ticks += 1
                self.tick(first: self.ticks == 1)
            }
            t.resume()
            timer = t
        }
    }

    func stop() {
        queue.sync {
            timer?.cancel()
            timer = nil
        }
    }

    private func tick(first: Bool) {
        if !first {
            var missing: [String] = []
            if !loopAnswered { missing.append("event loop") }
            if !timerAnswered { missing.append("timers") }
            if !controlAnswered { missing.append("control socket") }
            if missing.isEmpty {
                notifier.ping()
                if !failing.isEmpty {
                    log.event(
                        .notice, LogEventName.watchdog, message: "watchdog: self-check passes again; pinging",
                        fields: ["check": "ok"])
                }
            } else if missing != failing {
                log.event(
                    .error, LogEventName.watchdog,
                    message: "watchdog: self-check failed (\(missing.joined(separator: ", "))): no ping",
                    fields: ["check": .string(missing.joined(separator: ","))])
            }
            failing = missing
        }
        loopAnswered = false
        timerAnswered = false
        probeLoop(
            { [self] in queue.async { self.loopAnswered = true } },
            { [self] in queue.async { self.timerAnswered = true } })
        controlAnswered = controlPath.map { Self.callVersion($0, timeout: interval / 4) } ?? false
    }

    /// Connects to the control socket, calls `version` and waits at most `timeout` for the answer.
    static func callVersion(_ path: String, timeout: Double) -> Bool {
        guard let addr = UnixSocketAddress.make(path) else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard UnixSocketAddress.withSockaddr(addr, { connect(fd, $0, $1) }) == 0 else { return false }
        let request = Array(#"{"jsonrpc":"2.0","id":"watchdog","method":"version"}"#.utf8) + [10]
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count
        else { return false }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        let deadline = Clock.now() + timeout
        while !answer.contains(10) && Clock.now() < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return false }
            answer += buffer.prefix(n)
        }
        return String(decoding: answer, as: UTF8.self).contains(#""result""#)
    }
}
