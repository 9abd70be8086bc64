import Contracts
import Dispatch
import SupervisorCore
import Testing

@testable import Supervisor

#if canImport(Glibc)
    import Glibc
#endif

/// `/healthz` answers for the supervisor itself: 200 while its queue answers, 503 once the queue has not answered
/// within `MetricsServer.healthTimeout` (a stuck supervisor), 200 again when it is free.
struct HealthzTests {
    /// A free loopback port (bound to 0, read, released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Bool in
                bind(fd, p, length) == 0 && getsockname(fd, p, &length) == 0
            }
        }
        try #require(bound)
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// One `GET path` on a new connection: the status code and the body, and how long it took.
    static func get(_ port: Int, _ path: String) throws -> (status: Int, body: String, seconds: Double) {
        let started = Clock.now()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        try #require(connected, "connect to 127.0.0.1:\(port)")
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        try #require(write(fd, request, request.count) == request.count)
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        let statusLine = text.split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        let status = try #require(parts.count >= 2 ? Int(parts[1]) : nil, "no status line in \(text)")
        let body = text.components(after: "\r\n\r\n")
        return (status, body, Clock.now() - started)
    }

    @Test func healthzIs503WhileTheSupervisorsQueueIsStuck() throws {
        let state = FileManagerFree.temporaryFolder()
        defer { FileManagerFree.remove(state) }
        let port = try Self.freePort()
        var config = SupervisorConfig(
            mainFile: state + "/supervisor.toml", stateDirectory: state + "/state",
            serversDirectory: state + "/servers.d")
        config.metricsListen = MetricsAddress(host: "127.0.0.1", port: port, isIPv6: false)
        let supervisor = Supervisor(
            config: config, hostExecutable: "/bin/false", files: LocalFiles(), log: SupervisorLog())
        supervisor.queue.sync { supervisor.openMetricsListener() }
        defer {
            supervisor.queue.sync { supervisor.closeMetricsListener() }
            supervisor.shutdownMetricsLoop()
        }
        let healthy = try Self.get(port, "/healthz")
        #expect(healthy.status == 200)

        // The queue is busy for 2.5 s: the listener answers for it after its 1 s limit.
        let released = DispatchSemaphore(value: 0)
        supervisor.queue.async { _ = released.wait(timeout: .now() + 2.5) }
        let stuck = try Self.get(port, "/healthz")
        released.signal()
        #expect(stuck.status == 503)
        #expect(stuck.body.contains("did not answer"))
        #expect(stuck.seconds >= 0.9 && stuck.seconds < 2.4, "answered after \(stuck.seconds) s")

        // Free again: 200.
        supervisor.queue.sync {}
        #expect(try Self.get(port, "/healthz").status == 200)
    }
}

/// A per-test folder without Foundation (the supervisor's tests do not link it).
enum FileManagerFree {
    static func temporaryFolder() -> String {
        var template = Array("/tmp/mcp-healthz-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        return String(cString: made!)
    }

    /// Removes a folder this test made, and what is in it (`rm -rf` semantics, no symlinks followed).
    static func remove(_ path: String) {
        guard let dir = opendir(path) else {
            unlink(path)
            return
        }
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            let child = path + "/" + name
            var st = stat()
            if lstat(child, &st) == 0, st.st_mode & S_IFMT == S_IFDIR { remove(child) } else { unlink(child) }
        }
        closedir(dir)
        rmdir(path)
    }
}

extension String {
    fileprivate func components(after separator: String) -> String {
        guard let r = firstRange(of: separator) else { return "" }
        return String(self[r.upperBound...])
    }
}
