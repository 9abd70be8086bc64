import Contracts
import Logging
import MCPProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// Our swift-log handler: one line per log call, written with one write(2) so lines from different threads and
/// processes never interleave, in the text a person reads or as one JSON object (`LogFormat`).
///
/// Text: `SOURCE: SUBJECT: message`, where the subject is `server`, `server#replica` (when the server has more
/// than one) and `[pid]`, each only when the line carries it. A line forwarded from a child (its `source` is not
/// ours) reads `SUBJECT: [CHILD-SOURCE: ]message`, as it did before the log was structured. The time is left to
/// the journal. JSON: `LogKey.ordered` first, then the event's own fields sorted by name.
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public let source: String
    public let format: LogFormat
    private let write: @Sendable (String) -> Void

    /// - Parameters:
    ///   - source: the executable's name, the text line's prefix and the JSON `source`.
    ///   - write: receives each line, newline included (default: stderr).
    public init(source: String, format: LogFormat, write: @escaping @Sendable (String) -> Void = LineLogHandler.stderr)
    {
        self.source = source
        self.format = format
        self.write = write
    }

    /// A logger that writes through this handler, without touching the global `LoggingSystem`.
    public static func logger(
        source: String, format: LogFormat, write: @escaping @Sendable (String) -> Void = LineLogHandler.stderr
    ) -> Logger {
        Logger(label: source) { _ in LineLogHandler(source: source, format: format, write: write) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let more = event.metadata { all.merge(more) { $1 } }
        let line: String
        switch format {
        case .text: line = Self.text(source: source, message: event.message.description, metadata: all)
        case .json:
            line = Self.json(source: source, level: event.level, message: event.message.description, metadata: all)
        }
        write(line + "\n")
    }

    // MARK: Rendering

    /// The terminal line (no newline).
    public static func text(source: String, message: String, metadata: Logger.Metadata) -> String {
        var subject = ""
        if case .some(.string(let server)) = metadata[LogKey.server] {
            subject = server
            if let replica = metadata[LogKey.replica], !LogValue.isHidden(replica) { subject += "#\(replica)" }
        }
        if let pid = metadata[LogKey.pid], !LogValue.isHidden(pid) { subject += "[\(pid)]" }
        let from = metadata[LogKey.source].map { "\($0)" } ?? source
        if from != source {
            // Forwarded from a child: its subject leads, then its own prefix (none for a plugin's plain text).
            let prefix = from == LogSource.plugin ? "" : from + ": "
            return subject.isEmpty ? prefix + message : subject + ": " + prefix + message
        }
        return subject.isEmpty ? "\(source): \(message)" : "\(source): \(subject): \(message)"
    }

    /// The JSON line (no newline): keys in `LogKey.ordered` order, then the rest sorted.
    public static func json(
        source: String, level: Logger.Level, message: String, metadata: Logger.Metadata, time: String = now()
    ) -> String {
        var w = JSONWriter(capacity: 256)
        var first = true
        func key(_ k: String) {
            w.writeRaw(first ? "{" : ",")
            first = false
            w.writeString(k)
            w.writeRaw(":")
        }
        key(LogKey.time)
        w.writeString(time)
        key(LogKey.level)
        w.writeString(level.rawValue)
        key(LogKey.source)
        w.write(metadata[LogKey.source].map(LogValue.json) ?? .string(source))
        for k in [LogKey.event, LogKey.server, LogKey.replica, LogKey.pid] {
            if let v = metadata[k] {
                key(k)
                w.write(LogValue.json(v))
            }
        }
        key(LogKey.message)
        w.writeString(message)
        let reserved = Set(LogKey.ordered)
        for k in metadata.keys.sorted() where !reserved.contains(k) {
            key(k)
            w.write(LogValue.json(metadata[k]!))
        }
        w.writeRaw("}")
        return String(decoding: w.bytes, as: UTF8.self)
    }

    /// Now as RFC 3339 UTC with milliseconds: `2026-12-01T21:58:04.123Z`.
    public static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var tm = tm()
        var seconds = ts.tv_sec
        gmtime_r(&seconds, &tm)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }

    /// Writes the whole line to stderr with write(2): unbuffered, so a line is out before the process can die.
    public static let stderr: @Sendable (String) -> Void = { writeAll(2, $0) }
    /// The same to stdout.
    public static let stdout: @Sendable (String) -> Void = { writeAll(1, $0) }

    public static func writeAll(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { buf in
            var off = 0
            while off < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + off, buf.count - off)
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    return
                }
                off += n
            }
        }
    }
}

extension JSONWriter {
    fileprivate mutating func writeRaw(_ s: String) { write(.raw(Array(s.utf8))) }
}
