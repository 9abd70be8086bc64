#if canImport(Glibc)
    import Glibc
#endif

/// A child's resource use from /proc: resident memory, open descriptors, threads and CPU time.
struct ProcStats: Equatable {
    var rssBytes: Int
    var openFDs: Int
    var threads: Int
    /// utime + stime, in seconds.
    var cpuSeconds: Double

    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// Reads /proc/PID; nil when the process is gone.
    static func read(pid: Int32) -> ProcStats? {
        guard let status = readFile("/proc/\(pid)/status"), let stat = readFile("/proc/\(pid)/stat") else {
            return nil
        }
        var rss = 0
        var threads = 0
        for line in status.split(separator: "\n") {
            if line.hasPrefix("VmRSS:") {
                rss =
                    (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0)
                    * 1024
            } else if line.hasPrefix("Threads:") {
                threads = Int(line.split(separator: "\t", omittingEmptySubsequences: true).last ?? "") ?? 0
            }
        }
        // The command name (field 2) is in parentheses and may contain spaces: count fields after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        guard fields.count > 13, let ut = Double(fields[11]), let st = Double(fields[12]) else { return nil }
        return ProcStats(
            rssBytes: rss, openFDs: countFDs(pid), threads: threads, cpuSeconds: (ut + st) / ticksPerSecond)
    }

    private static func countFDs(_ pid: Int32) -> Int {
        guard let d = opendir("/proc/\(pid)/fd") else { return -1 }
        defer { closedir(d) }
        var n = 0
        while readdir(d) != nil { n += 1 }
        return max(0, n - 2)  // . and ..
    }

    private static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(fd, &buf, buf.count)
            if n <= 0 { break }
            bytes += buf[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
