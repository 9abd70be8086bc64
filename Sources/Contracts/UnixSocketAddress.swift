#if canImport(Glibc)
    import Glibc
#endif

/// The `sockaddr_un` of a control socket path, built in one place for the server (bind) and mcpctl (connect).
public enum UnixSocketAddress {
    /// The longest path a `sockaddr_un` holds (its `sun_path` less the terminating NUL).
    public static var maxPathBytes: Int { MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1 }

    /// The address, or nil when the path is too long for one (see `maxPathBytes`).
    public static func make(_ path: String) -> sockaddr_un? {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count <= maxPathBytes else { return nil }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
        }
        return addr
    }

    /// Calls `body` with the address as the `sockaddr` pointer and length that bind(2) and connect(2) take.
    public static func withSockaddr<R>(_ addr: sockaddr_un, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var copy = addr
        return withUnsafePointer(to: &copy) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
