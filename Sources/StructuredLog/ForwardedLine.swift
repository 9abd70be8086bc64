import Contracts
import Logging
import MCPProtocol

/// A line a child wrote to its stdout or stderr, as the supervisor forwards it: one of our JSON log lines (its
/// level, source, event and fields kept) or plain text (a plugin printing), which becomes the message.
public struct ForwardedLine: Sendable, Equatable {
    public var level: Logger.Level
    public var source: String
    public var event: String
    public var message: String
    /// The line's own fields beyond `LogKey.ordered`; a child's server, replica and pid are not taken from the
    /// line (the supervisor knows them better).
    public var fields: [String: JSONValue]

    /// Reads one line. A JSON object with a string `message` and a known `level` is a structured line; anything
    /// else is text at `textLevel`.
    public static func parse(_ line: ArraySlice<UInt8>, textLevel: Logger.Level) -> ForwardedLine {
        if line.first == UInt8(ascii: "{"), case .some(.object(let o)) = try? JSONParser.parse(line),
            let message = o[LogKey.message]?.stringValue,
            let level = o[LogKey.level]?.stringValue.flatMap(Logger.Level.init(rawValue:))
        {
            var fields = o
            for k in LogKey.ordered { fields[k] = nil }
            return ForwardedLine(
                level: level, source: o[LogKey.source]?.stringValue ?? LogSource.host,
                event: o[LogKey.event]?.stringValue ?? LogEventName.message, message: message, fields: fields)
        }
        return ForwardedLine(
            level: textLevel, source: LogSource.plugin, event: LogEventName.childOutput,
            message: String(decoding: line, as: UTF8.self), fields: [:])
    }
}
