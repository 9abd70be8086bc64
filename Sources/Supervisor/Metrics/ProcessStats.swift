import Contracts

#if canImport(Glibc)
    import Glibc
#endif

/// A process's resource use as /proc shows it (`/proc/PID/stat` and `fd`): what the per-replica
/// `mcp_supervisor_replica_*` series and the supervisor's own `process_*` series report (docs/metrics.md).
/// The host process only, not what its plugin may have started in its process group.
struct ProcessStats: Equatable, Sendable {
    /// Resident set size (stat's rss, in pages, times the page size).
    var residentBytes: Int
    /// Virtual memory size (stat's vsize, in bytes).
    var virtualBytes: Int
    /// User plus system CPU time (stat's utime + stime, in clock ticks).
    var cpuSeconds: Double
    /// Entries of /proc/PID/fd (for the supervisor itself, without the one reading the folder).
    var openFDs: Int
    /// When the process started, in seconds since the epoch (stat's starttime after boot, plus btime).
    var startTime: Double

    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// The process `pid`; nil when it is gone (or /proc cannot be read).
    static func read(pid: Int32) -> ProcessStats? { read(folder: "/proc/\(pid)", own: false) }

    /// The calling process (the supervisor).
    static func readSelf() -> ProcessStats? { read(folder: "/proc/self", own: true) }

    /// The soft limit on open descriptors of the calling process (RLIMIT_NOFILE), nil when unlimited.
    static func maxFDs() -> Int? { DescriptorLimit.current().soft }

    /// The boot time (`btime` of /proc/stat), seconds since the epoch; read once.
    static let bootTime: Double? = {
        guard let text = readText("/proc/stat") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).droppingLeading(" "))
        }
        return nil
    }()

    private static func read(folder: String, own: Bool) -> ProcessStats? {
        // Bytes, not Strings, and one file: this runs for every replica at every scrape.
        guard let stat = readBytes(folder + "/stat") else { return nil }
        // The command name (field 2) is in parentheses and may contain spaces and parentheses: the fields start
        // after the last ')'. fields[0] is field 3 (state): utime is field 14, stime 15, starttime 22, vsize 23
        // (bytes), rss 24 (pages).
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = numbers(stat[(close + 1)...], count: 22)
        guard fields.count == 22, let utime = fields[11], let stime = fields[12], let started = fields[19],
            let size = fields[20], let resident = fields[21]
        else { return nil }
        guard let fds = countFDs(folder + "/fd", own: own) else { return nil }
        return ProcessStats(
            residentBytes: resident * pageSize, virtualBytes: size,
            cpuSeconds: Double(utime + stime) / ticksPerSecond, openFDs: fds,
            startTime: (bootTime ?? 0) + Double(started) / ticksPerSecond)
    }

    /// The first `count` space-separated fields as non-negative integers (nil for one that is not).
    private static func numbers(_ bytes: ArraySlice<UInt8>, count: Int) -> [Int?] {
        var out: [Int?] = []
        out.reserveCapacity(count)
        var i = bytes.startIndex
        while out.count < count {
            while i < bytes.endIndex, bytes[i] == UInt8(ascii: " ") || bytes[i] == UInt8(ascii: "\n") { i += 1 }
            guard i < bytes.endIndex else { break }
            var value = 0
            var digits = true
            while i < bytes.endIndex, bytes[i] != UInt8(ascii: " "), bytes[i] != UInt8(ascii: "\n") {
                let d = Int(bytes[i]) - 48
                if d < 0 || d > 9 { digits = false } else if digits { value = value &* 10 &+ d }
                i += 1
            }
            out.append(digits ? value : nil)
        }
        return out
    }

    /// The number of open descriptors: `stat()` of /proc/PID/fd gives it as the size (Linux 6.2 and later, one
    /// system call; listing the folder was a tenth of a 50-server scrape's CPU), else the folder's entries are
    /// counted. `own`: the folder is our own, so a descriptor reading it is left out.
    private static func countFDs(_ path: String, own: Bool) -> Int? {
        var st = stat()
        if lstat(path, &st) == 0, st.st_size > 0 { return Int(st.st_size) }
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        let reading = own ? String(dirfd(dir)) : nil
        var count = 0
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." || name == reading { continue }
            count += 1
        }
        return count
    }

    private static func readBytes(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var bytes = [UInt8](repeating: 0, count: 1024)
        var used = 0
        while true {
            if used == bytes.count { bytes += [UInt8](repeating: 0, count: bytes.count) }
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + used, $0.count - used) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { break }
            used += n
        }
        bytes.removeSubrange(used...)
        return bytes
    }

    private static func readText(_ path: String) -> String? {
        readBytes(path).map { String(decoding: $0, as: UTF8.self) }
    }
}

extension Substring {
    fileprivate func droppingLeading(_ character: Character) -> Substring {
        var text = self
        while text.first == character { text = text.dropFirst() }
        return text
    }
}
