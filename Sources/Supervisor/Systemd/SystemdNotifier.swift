import CSystemd
import Contracts
import SupervisorCore

#if canImport(Glibc)
    import Glibc
#endif

/// The service manager's side of the supervisor, through libsystemd (never a re-implementation of the protocol):
/// readiness, status, reload and stop notifications, the watchdog's pings and the fd store. Without
/// `NOTIFY_SOCKET` (not started by systemd) every call is a no-op. Used on the supervisor's queue, except
/// `ping`, which the watchdog sends from its own queue (libsystemd's sd_notify keeps no state).
public final class SystemdNotifier: @unchecked Sendable {
    /// `NOTIFY_SOCKET` was set when the supervisor started.
    public let enabled: Bool
    /// The last `STATUS=` sent, so an unchanged line is not sent again.
    private var lastStatus: String?

    public init() {
        enabled = getenv("NOTIFY_SOCKET") != nil
    }

    /// Sends one notification (several `KEY=value` lines). Returns false when it could not be sent.
    @discardableResult
    public func notify(_ lines: [String]) -> Bool {
        guard enabled else { return false }
        return sd_pid_notify(0, 0, lines.joined(separator: "\n")) > 0
    }

    public func ready(status: String) {
        lastStatus = status
        notify(["READY=1", "STATUS=\(status)"])
    }

    /// `STATUS=` when it changed since the last one.
    public func status(_ line: String) {
        guard enabled, line != lastStatus else { return }
        lastStatus = line
        notify(["STATUS=\(line)"])
    }

    /// `RELOADING=1` with the monotonic time of the reload's start (systemd 253's notify-reload reads it; 252
    /// ignores it), before the new configuration is read.
    public func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let usec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        notify(["RELOADING=1", "MONOTONIC_USEC=\(usec)", "STATUS=reloading the configuration"])
        lastStatus = nil
    }

    public func stopping() {
        notify(["STOPPING=1", "STATUS=stopping every server"])
        lastStatus = nil
    }

    public func ping() { notify(["WATCHDOG=1"]) }

    /// Keeps a listening socket in systemd's fd store under the server's name (`FDSTORE=1`, `FDNAME=`).
    @discardableResult
    public func store(fd: Int32, name: String) -> Bool {
        guard enabled else { return false }
        var descriptor = fd
        return sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=\(name)", &descriptor, 1) > 0
    }

    /// Drops a stored socket (`FDSTOREREMOVE=1`): its server is gone or moved to another port.
    public func removeStored(name: String) {
        notify(["FDSTOREREMOVE=1", "FDNAME=\(name)"])
    }

    /// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for this process), in seconds; nil when off.
    public static func watchdogInterval() -> Double? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return Double(usec) / 1e6
    }

    /// The sockets systemd passed (`LISTEN_FDS`, `LISTEN_FDNAMES`, checked against `LISTEN_PID`), by name. The
    /// variables are removed from our environment; each descriptor is made close-on-exec. Unnamed ones are
    /// named `unknown` by libsystemd.
    public static func inheritedSockets() -> [(name: String, fd: Int32)] {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let count = sd_listen_fds_with_names(1, &names)
        guard count > 0 else { return [] }
        var result: [(String, Int32)] = []
        for i in 0..<Int(count) {
            let fd = SD_LISTEN_FDS_START + Int32(i)
            let name = names?[i].map { String(cString: $0) } ?? "unknown"
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            result.append((name, fd))
            free(names?[i])
        }
        free(names)
        return result
    }
}

/// Whether stderr is the journal's stream (`JOURNAL_STREAM=dev:ino` names stderr's device and inode): then the
/// supervisor writes its lines with `sd_journal_sendv` and fields instead of text on stderr.
public enum JournalStream {
    public static func isStderr() -> Bool {
        guard let value = getenv("JOURNAL_STREAM") else { return false }
        let parts = String(cString: value).split(separator: ":")
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }
}

/// The one line `systemctl status` shows: how many servers, how many healthy, and who is not, e.g.
/// `12 servers: 11 healthy, 1 degraded (search)`.
public enum StatusLine {
    /// What a server counts as: its health while it has processes, else its state.
    static func category(_ server: ServerState) -> String {
        switch server.status {
        case .running, .starting:
            return HealthAggregate.state(server.replicas.map(\.health.state)).rawValue
        default:
            return server.status.rawValue
        }
    }

    static let order = [
        "healthy", "initializing", "degraded", "unhealthy", "offline", "starting", "waiting", "stopping",
        "stopped", "down", "failed",
    ]

    public static func make(_ servers: [String: ServerState]) -> String {
        var groups: [String: [String]] = [:]
        for name in servers.keys.sorted() { groups[category(servers[name]!), default: []].append(name) }
        let count = servers.count
        var parts: [String] = []
        for key in order + groups.keys.filter({ !order.contains($0) }).sorted() {
            guard let names = groups[key] else { continue }
            if key == "healthy" {
                parts.append("\(names.count) healthy")
            } else {
                let shown = names.prefix(3).joined(separator: ", ") + (names.count > 3 ? ", +\(names.count - 3)" : "")
                parts.append("\(names.count) \(key) (\(shown))")
            }
        }
        let head = "\(count) server\(count == 1 ? "" : "s")"
        return parts.isEmpty ? head : head + ": " + parts.joined(separator: ", ")
    }
}
