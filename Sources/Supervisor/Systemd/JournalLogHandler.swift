import CSystemd
import Contracts
import Logging
import MCPProtocol
import StructuredLog

#if canImport(Glibc)
    import Glibc
#endif

/// The swift-log handler used when stderr is the journal (`JOURNAL_STREAM`): every line, the supervisor's own and
/// every child's forwarded one, goes to journald with `sd_journal_sendv` and fields instead of as text:
///
/// - `MESSAGE=` the readable line without the `mcp-supervisor: ` prefix (the journal shows the identifier);
/// - `PRIORITY=` from the line's level (trace/debug 7, info 6, notice 5, warning 4, error 3, critical 2);
/// - `SYSLOG_IDENTIFIER=` who wrote it: `mcp-supervisor`, `mcp-plugin-host`, or `plugin` for a plugin's own text;
/// - `MCP_SERVER=`, `MCP_REPLICA=`, `MCP_PID=` (the child's), `MCP_EVENT=`, `MCP_SOURCE=`, and every other field of
///   the line as `MCP_<KEY>=` (the JSON log's key upper-cased, other characters `_`: `MCP_EXIT_STATUS=`,
///   `MCP_RESTARTS=`), the value as the JSON log writes it (strings bare).
///
/// A line journald refuses (not running, socket gone) is written to stderr as text instead.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public let source: String

    public init(source: String) { self.source = source }

    public static func logger(source: String) -> Logger {
        Logger(label: source) { _ in JournalLogHandler(source: source) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// `MCP_` and the key upper-cased, anything but letters, digits and `_` as `_` (journal field names).
    public static func fieldName(_ key: String) -> String {
        var name = "MCP_"
        for scalar in key.unicodeScalars {
            switch scalar {
            case "a"..."z": name.unicodeScalars.append(Unicode.Scalar(scalar.value - 32)!)
            case "A"..."Z", "0"..."9", "_": name.unicodeScalars.append(scalar)
            default: name.append("_")
            }
        }
        return name
    }

    /// The journal fields of one line, `KEY=value` each.
    public static func fields(source: String, level: Logger.Level, message: String, metadata: Logger.Metadata)
        -> [String]
    {
        var text = LineLogHandler.text(source: source, message: message, metadata: metadata)
        if text.hasPrefix(source + ": ") { text.removeFirst(source.count + 2) }
        let from = metadata[LogKey.source].map { "\($0)" } ?? source
        var out = ["MESSAGE=" + text, "PRIORITY=\(priority(level))", "SYSLOG_IDENTIFIER=" + from]
        if metadata[LogKey.source] == nil { out.append("MCP_SOURCE=" + source) }
        for key in metadata.keys.sorted() {
            let value: String
            switch LogValue.json(metadata[key]!) {
            case .string(let s): value = s
            case let other: value = JSONWriter.string(other)
            }
            out.append(fieldName(key) + "=" + value)
        }
        return out
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let more = event.metadata { all.merge(more) { $1 } }
        let message = event.message.description
        let fields = Self.fields(source: source, level: event.level, message: message, metadata: all)
        if Self.send(fields) < 0 {
            LineLogHandler.stderr(LineLogHandler.text(source: source, message: message, metadata: all) + "\n")
        }
    }

    /// sd_journal_sendv with one iovec per field (binary safe: a value may hold newlines).
    static func send(_ fields: [String]) -> Int32 {
        var bytes: [UInt8] = []
        var spans: [(Int, Int)] = []
        for field in fields {
            spans.append((bytes.count, field.utf8.count))
            bytes.append(contentsOf: field.utf8)
        }
        return bytes.withUnsafeBytes { raw in
            let vectors = spans.map {
                iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress! + $0.0), iov_len: $0.1)
            }
            return vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
    }
}
