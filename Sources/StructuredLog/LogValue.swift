import Contracts
import Logging
import MCPProtocol

/// Metadata values as our handler writes them: numbers and booleans stay JSON numbers and booleans, and a value
/// can be kept out of the terminal line's subject while still in the JSON (a replica index of a one-replica
/// server, the pid of a process that is already gone).
public enum LogValue {
    /// A number, boolean or other value that renders as itself in JSON.
    public static func of(_ value: some CustomStringConvertible & Sendable) -> Logger.Metadata.Value {
        .stringConvertible(value)
    }

    /// A value that JSON carries but the text line's subject leaves out.
    public static func hidden(_ value: some CustomStringConvertible & Sendable) -> Logger.Metadata.Value {
        .stringConvertible(Hidden(value: value))
    }

    static func isHidden(_ value: Logger.Metadata.Value) -> Bool {
        if case .stringConvertible(let v) = value { return v is any HiddenValue }
        return false
    }

    /// A metadata value as JSON.
    public static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let s): return .string(s)
        case .array(let a): return .array(a.map(json))
        case .dictionary(let d): return .object(d.mapValues(json))
        case .stringConvertible(let v): return scalar(v)
        }
    }

    private static func scalar(_ v: any CustomStringConvertible & Sendable) -> JSONValue {
        switch v {
        case let h as any HiddenValue: return scalar(h.wrapped)
        case let b as Bool: return .bool(b)
        case let i as Int: return .int(Int64(i))
        case let i as Int32: return .int(Int64(i))
        case let i as Int64: return .int(i)
        case let i as UInt32: return .int(Int64(i))
        case let d as Double: return d.isFinite ? .double(d) : .string("\(d)")
        case let j as JSONField: return j.value
        default: return .string(v.description)
        }
    }

    /// A JSON value (a child's field) as metadata, keeping its type for the JSON line.
    public static func from(_ value: JSONValue) -> Logger.Metadata.Value {
        switch value {
        case .string(let s): return .string(s)
        case .array(let a): return .array(a.map(from))
        case .object(let o): return .dictionary(o.mapValues(from))
        default: return .stringConvertible(JSONField(value: value))
        }
    }
}

private protocol HiddenValue {
    var wrapped: any CustomStringConvertible & Sendable { get }
}

private struct Hidden<T: CustomStringConvertible & Sendable>: CustomStringConvertible, Sendable, HiddenValue {
    let value: T
    var description: String { value.description }
    var wrapped: any CustomStringConvertible & Sendable { value }
}

/// A JSON scalar carried through metadata (numbers, booleans, null from a child's line).
struct JSONField: CustomStringConvertible, Sendable {
    let value: JSONValue
    var description: String { JSONWriter.string(value) }
}
