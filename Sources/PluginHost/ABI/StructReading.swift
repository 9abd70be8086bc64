import PluginABI

/// A struct the plugin hands the host (its table and its declarations). The host reads each one up to the
/// `struct_size` the plugin wrote in it and no further, because the plugin may be compiled against an older
/// or a newer 1.x header than the host: a newer one appends fields the host must not mistake for its own
/// (and may be laid out in arrays with a larger stride), an older one lacks fields the host must treat as
/// absent instead of reading past the plugin's memory.
protocol PluginStruct {
    /// The C type name, for load errors.
    static var cName: String { get }
    /// The fewest bytes any 1.x plugin sends: the end of the last field ABI 1.0 declares. It is computed from
    /// the current header with that field's key path, so it stays right when later minors append fields
    /// (which change `MemoryLayout<Self>.size`, never a 1.0 field's offset).
    static var size1_0: Int { get }
    /// All fields zero: what a field the plugin did not send reads as.
    init()
    var struct_size: UInt32 { get }
}

extension PluginStruct {
    /// Where `field` ends in this struct (its offset plus its size): what `MCPP_HAS` compares `struct_size` with.
    static func end<Field>(of field: KeyPath<Self, Field>) -> Int {
        MemoryLayout<Self>.offset(of: field)! + MemoryLayout<Field>.size
    }
}

extension mcpp_plugin: PluginStruct {
    static var cName: String { "mcpp_plugin" }
    static var size1_0: Int { end(of: \.get_extension) }
}

extension mcpp_tool: PluginStruct {
    static var cName: String { "mcpp_tool" }
    static var size1_0: Int { end(of: \.annotations) }
}

extension mcpp_resource: PluginStruct {
    static var cName: String { "mcpp_resource" }
    static var size1_0: Int { end(of: \.size) }
}

extension mcpp_resource_template: PluginStruct {
    static var cName: String { "mcpp_resource_template" }
    static var size1_0: Int { end(of: \.mime_type) }
}

extension mcpp_prompt: PluginStruct {
    static var cName: String { "mcpp_prompt" }
    static var size1_0: Int { end(of: \.args) }
}

extension mcpp_prompt_arg: PluginStruct {
    static var cName: String { "mcpp_prompt_arg" }
    static var size1_0: Int { end(of: \.description) }
}

/// A plugin struct whose `struct_size` the host cannot read by: smaller than ABI 1.0's, or an array element
/// larger than the array's stride.
struct StructSizeError: Error, CustomStringConvertible {
    /// Which struct, e.g. `tool 3 ("echo")`.
    var subject: String
    var problem: String

    var description: String { "\(subject): \(problem)" }
}

/// Reads plugin structs by the ABI's rule: up to their own `struct_size`, fields past it zero.
enum StructReader {
    /// The `struct_size` at the start of the plugin struct at `pointer`.
    static func declaredSize(at pointer: UnsafeRawPointer) -> Int {
        Int(pointer.loadUnaligned(as: UInt32.self))
    }

    /// A `T` holding the first `min(declaredSize, MemoryLayout<T>.size)` bytes at `pointer`, zero after them.
    static func readPrefix<T: PluginStruct>(_: T.Type = T.self, from pointer: UnsafeRawPointer, declaredSize: Int)
        -> T
    {
        var value = T()
        withUnsafeMutableBytes(of: &value) { destination in
            let count = max(0, min(declaredSize, destination.count))
            destination.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: count))
        }
        return value
    }

    /// Reads the struct at `pointer` up to its `struct_size` (or `maxSize`, the stride of the array it is in),
    /// refusing one smaller than ABI 1.0's.
    ///
    /// - Parameters:
    ///   - kind: what the struct is, e.g. `tool` or `prompt 0 ("greet") argument`.
    ///   - index: its place among the structs of its kind (the order of the add_* calls, or the array index).
    ///   - nameField: the field that names it in errors, used only when the plugin sent it whole.
    static func read<T: PluginStruct>(
        _: T.Type = T.self, at pointer: UnsafeRawPointer, kind: String, index: Int? = nil,
        nameField: KeyPath<T, mcpp_str>? = nil, maxSize: Int? = nil
    ) throws(StructSizeError) -> T {
        let declared = declaredSize(at: pointer)
        let readable = min(declared, maxSize ?? declared)
        let value = readPrefix(T.self, from: pointer, declaredSize: readable)
        func subject() -> String {
            // The name only when the plugin sent that field whole: a partial pointer or length is garbage.
            let name = nameField.flatMap { readable >= T.end(of: $0) ? value[keyPath: $0] : nil }
            return Self.subject(kind: kind, index: index, name: name)
        }
        if declared < T.size1_0 {
            throw StructSizeError(
                subject: subject(),
                problem: "struct_size \(declared) is smaller than \(T.cName) 1.0 (\(T.size1_0))")
        }
        if let maxSize, declared > maxSize {
            throw StructSizeError(
                subject: subject(),
                problem:
                    "struct_size \(declared) is larger than the array's stride (\(maxSize), the first element's struct_size)"
            )
        }
        return value
    }

    /// Reads `count` structs laid out `struct_size` bytes apart, the first one's `struct_size` being the
    /// stride (a plugin compiled against another minor has another stride than `MemoryLayout<T>.stride`).
    static func readArray<T: PluginStruct>(
        _: T.Type = T.self, at base: UnsafeRawPointer, count: Int, kind: String, nameField: KeyPath<T, mcpp_str>? = nil
    ) throws(StructSizeError) -> [T] {
        guard count > 0 else { return [] }
        let first = try read(T.self, at: base, kind: kind, index: 0, nameField: nameField)
        let stride = Int(first.struct_size)
        var values = [first]
        values.reserveCapacity(count)
        for i in 1..<count {
            values.append(
                try read(
                    T.self, at: base.advanced(by: i * stride), kind: kind, index: i, nameField: nameField,
                    maxSize: stride))
        }
        return values
    }

    /// How errors name a struct: `tool 3 ("echo")`; the name is cut at 80 bytes, invalid UTF-8 repaired.
    static func subject(kind: String, index: Int?, name: mcpp_str?) -> String {
        var subject = kind + (index.map { " \($0)" } ?? "")
        if let name, name.len > 0, let bytes = name.ptr {
            let shown = String(decoding: UnsafeRawBufferPointer(start: bytes, count: min(name.len, 80)), as: UTF8.self)
            subject += " (\"\(shown)\")"
        }
        return subject
    }
}
