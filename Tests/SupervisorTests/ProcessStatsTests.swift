import Testing

@testable import Supervisor

#if canImport(Glibc)
    import Glibc
#endif

/// A real child process (`sleep 30`), killed and reaped by `stop()`.
struct SleepingChild {
    let pid: pid_t
    /// Wall-clock seconds just before the spawn.
    let spawnedAt: Double

    init() throws {
        var pid: pid_t = 0
        let spawnedAt = Self.wallClock()
        let args = ["/bin/sleep", "30"]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        let rc = posix_spawn(&pid, "/bin/sleep", nil, nil, &argv, environ)
        guard rc == 0 else { throw SpawnError(code: rc) }
        self.pid = pid
        self.spawnedAt = spawnedAt
    }

    func stop() {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    static func wallClock() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    struct SpawnError: Error { var code: Int32 }
}

struct ProcessStatsTests {
    @Test func ownDescriptorsAreCountedExactly() throws {
        // Tests run in parallel and may open descriptors meanwhile: the count must be exact in a round where
        // nothing else changed (the same before and after), and such a round comes within a few tries.
        var exact = false
        var before = 0
        for _ in 0..<50 where !exact {
            before = try #require(ProcessStats.readSelf()).openFDs
            var fds: [Int32] = [0, 0]
            #expect(pipe(&fds) == 0)
            let file = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)
            #expect(file >= 0)
            let during = try #require(ProcessStats.readSelf()).openFDs
            Glibc.close(fds[0])
            Glibc.close(fds[1])
            Glibc.close(file)
            let after = try #require(ProcessStats.readSelf()).openFDs
            exact = after == before && during == before + 3
        }
        #expect(exact)
        #expect(before >= 3)  // stdin, stdout, stderr at least
        let limit = try #require(ProcessStats.maxFDs())
        var rl = rlimit()
        #expect(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0)
        #expect(limit == Int(rl.rlim_cur))
        #expect(before < limit)
    }

    @Test func ownMemoryGrowsWithWhatIsTouched() throws {
        let before = try #require(ProcessStats.readSelf())
        let size = 64 << 20
        let block = try #require(malloc(size))
        defer { free(block) }
        memset(block, 1, size)  // touched: resident
        let after = try #require(ProcessStats.readSelf())
        #expect(after.residentBytes - before.residentBytes >= size * 9 / 10)
        #expect(after.virtualBytes >= after.residentBytes)
        #expect(after.virtualBytes - before.virtualBytes >= size * 9 / 10)  // (other tests run meanwhile)
    }

    @Test func ownCPUTimeMatchesGetrusage() throws {
        func seconds(_ u: rusage) -> Double {
            Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec)
                + Double(u.ru_stime.tv_usec) / 1e6
        }
        func used() -> Double {
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            return seconds(usage)
        }
        // Burn 0.2 s of CPU (by getrusage) so that the reading is not just zero.
        var x: UInt64 = 1
        let start = used()
        while used() - start < 0.2 { for i in 0..<10_000 { x = x &* 6364136223846793005 &+ UInt64(i) } }
        #expect(x != 0)
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let stats = try #require(ProcessStats.readSelf())
        var usageAfter = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usageAfter)
        #expect(stats.cpuSeconds >= 0.18)
        // /proc counts clock ticks (1/100 s): within two ticks of getrusage, read just before and after.
        #expect(stats.cpuSeconds >= seconds(usage) - 0.02)
        #expect(stats.cpuSeconds <= seconds(usageAfter) + 0.02)
    }

    @Test func aChildProcessIsReadAndIsGoneOnceReaped() throws {
        let child = try SleepingChild()
        // Right after exec the new image has touched no page yet: wait (with a deadline) until it has some.
        var read = ProcessStats.read(pid: child.pid)
        let deadline = Clock.now() + 5
        while let r = read, r.residentBytes == 0, Clock.now() < deadline {
            usleep(1000)
            read = ProcessStats.read(pid: child.pid)
        }
        let stats = try #require(read)
        // Started when it was spawned (btime has whole seconds: within a second and a bit).
        #expect(abs(stats.startTime - child.spawnedAt) < 1.5)
        #expect(stats.residentBytes > 0)
        #expect(stats.residentBytes % ProcessStats.pageSize == 0)
        #expect(stats.cpuSeconds < 1)
        // sleep inherits our three standard descriptors at least; its fd folder is not ours, nothing is left out.
        #expect(stats.openFDs >= 3)
        let own = try #require(ProcessStats.readSelf())
        #expect(own.startTime <= child.spawnedAt + 0.01)
        child.stop()
        #expect(ProcessStats.read(pid: child.pid) == nil)
        #expect(ProcessStats.read(pid: -1) == nil)
    }
}
