import CSupervisorSupport
import Contracts
import Logging
import StructuredLog

/// The supervisor's log: swift-log with our `LineLogHandler` (readable text, or one JSON object per line), every
/// line carrying as metadata the server, replica and pid it is about and the event's name, so nothing downstream
/// parses text. Each line is written with one write(2), so lines from different sources never interleave.
///
/// Lines about a server also go to the control socket's ring (`LogTap`), indexed by that server, in the text
/// format whatever `--log-format` says (that is what `mcpctl logs` shows).
public struct SupervisorLog: Sendable {
    public var logger: Logger
    /// Keeps recent lines per server for the control socket (set by the supervisor; used on its queue only).
    var tap: LogTap?
    /// How many forwarded child lines it takes (stricter for the journal).
    public var limits = ForwardingLimits.text

    public init(format: LogFormat = .text) {
        logger = LineLogHandler.logger(source: LogSource.supervisor, format: format)
    }

    public init(logger: Logger, limits: ForwardingLimits = .text) {
        self.logger = logger
        self.limits = limits
    }

    /// To the journal with fields (stderr is the journal's stream, `JOURNAL_STREAM`): docs/systemd.md.
    public static func journal() -> SupervisorLog {
        SupervisorLog(logger: JournalLogHandler.logger(source: LogSource.supervisor), limits: .journal)
    }

    /// The replica a line is about: its index, shown as `NAME#i` in the text only when the server has more than
    /// one replica (the JSON always carries it).
    public struct Replica: Sendable {
        public var index: Int
        public var shown: Bool
        public init(_ index: Int, of count: Int) {
            self.index = index
            self.shown = count > 1
        }
    }

    /// One event.
    /// - Parameters:
    ///   - event: a `LogEventName`.
    ///   - pid: the child the line is about; `showPID: false` keeps it out of the text (a backoff line is about
    ///     the replica, not the process that already exited).
    ///   - fields: the event's own fields, JSON-only.
    public func event(
        _ level: Logger.Level, _ event: String, server: String? = nil, replica: Replica? = nil, pid: Int32? = nil,
        showPID: Bool = true, message: String, fields: Logger.Metadata = [:]
    ) {
        var metadata = fields
        metadata[LogKey.event] = .string(event)
        if let server { metadata[LogKey.server] = .string(server) }
        if let replica {
            metadata[LogKey.replica] = replica.shown ? LogValue.of(replica.index) : LogValue.hidden(replica.index)
        }
        if let pid { metadata[LogKey.pid] = showPID ? LogValue.of(pid) : LogValue.hidden(pid) }
        logger.log(level: level, "\(message)", metadata: metadata)
        if let server, let tap {
            tap.record(
                server, LineLogHandler.text(source: LogSource.supervisor, message: message, metadata: metadata))
        }
    }

    /// A line of code not yet given an event: `mcp-supervisor: text`, about no server.
    public func line(_ text: String) {
        event(.info, LogEventName.message, message: text)
    }

    /// A line a child wrote (structured or plain text), with the child's server, replica and pid.
    func child(server: String, replica: Replica, pid: Int32, _ line: ForwardedLine) {
        var metadata: Logger.Metadata = [:]
        for (k, v) in line.fields { metadata[k] = LogValue.from(v) }
        metadata[LogKey.source] = .string(line.source)
        metadata[LogKey.event] = .string(line.event)
        metadata[LogKey.server] = .string(server)
        metadata[LogKey.replica] = replica.shown ? LogValue.of(replica.index) : LogValue.hidden(replica.index)
        metadata[LogKey.pid] = LogValue.of(pid)
        logger.log(level: line.level, "\(line.message)", metadata: metadata)
        tap?.record(
            server, LineLogHandler.text(source: LogSource.supervisor, message: line.message, metadata: metadata))
    }
}

/// Monotonic time in seconds.
public enum Clock {
    public static func now() -> Double { Double(mcps_monotonic_ns()) / 1e9 }
}
