import CSupervisorSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The supervisor's log: one line per event on stderr (journald adds time and priority), each written with one
/// write(2) so lines from different sources never interleave.
public struct SupervisorLog: Sendable {
    /// Keeps recent lines per server for the control socket (set by the supervisor; used on its queue only).
    var tap: LogTap?

    public init() {}

    public func line(_ text: String) {
        write("mcp-supervisor: " + text)
        tap?.event(text)
    }

    /// A line a child wrote, tagged with its server, replica and pid.
    func child(_ label: String, _ text: String) {
        write(label + ": " + text)
        tap?.child(label, text)
    }

    private func write(_ s: String) {
        var s = s
        s.append("\n")
        s.withUTF8 { buf in
            var off = 0
            while off < buf.count {
                let n = Glibc.write(2, buf.baseAddress! + off, buf.count - off)
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    return
                }
                off += n
            }
        }
    }
}

/// Monotonic time in seconds.
public enum Clock {
    public static func now() -> Double { Double(mcps_monotonic_ns()) / 1e9 }
}
