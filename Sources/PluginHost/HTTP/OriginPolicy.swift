/// DNS rebinding protection: which Host and Origin headers the endpoint accepts. Loopback names always pass;
/// `--allowed-host` and `--allowed-origin` add more.
struct OriginPolicy: Sendable {
    var allowedHosts: [String]
    var allowedOrigins: [String]

    private static let loopbackNames = ["localhost", "127.0.0.1", "::1", "[::1]"]

    /// The host part of an authority, lowercased: `[::1]:8080` → `[::1]`, `Example:80` → `example`. On the
    /// bytes: this runs for every request.
    static func hostName(_ authority: Substring) -> String {
        let u = authority.utf8
        let end: Substring.UTF8View.Index
        if u.first == UInt8(ascii: "[") {
            end = u.firstIndex(of: UInt8(ascii: "]")).map { u.index(after: $0) } ?? u.endIndex
        } else {
            end = u.firstIndex(of: UInt8(ascii: ":")) ?? u.endIndex
        }
        return asciiLowercased(u[u.startIndex..<end])
    }

    /// Nil when the request may proceed, else the reason it may not (the text of the 403 reply).
    func problem(host: String?, origin: String?) -> String? {
        guard let host else { return "the Host header is required" }
        let name = Self.hostName(Substring(host))
        guard Self.loopbackNames.contains(name) || allowedHosts.contains(name) || allowedHosts.contains(host) else {
            return "Host '\(host)' is not allowed (DNS rebinding protection); see --allowed-host"
        }
        if let origin {
            if allowedOrigins.contains(origin) { return nil }
            let parts = origin.split(separator: "/", omittingEmptySubsequences: true)
            guard parts.count == 2, parts[0] == "http:" || parts[0] == "https:",
                Self.loopbackNames.contains(Self.hostName(parts[1]))
            else { return "Origin '\(origin)' is not allowed; see --allowed-origin" }
        }
        return nil
    }
}
