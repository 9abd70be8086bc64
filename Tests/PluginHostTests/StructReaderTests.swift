import PluginABI
import Testing

@testable import PluginHost

/// The ABI reading rule on hand-made plugin memory: bytes past `struct_size` are never read, fields past it
/// are zero, arrays step by `struct_size`, and a struct smaller than 1.0's is refused with its name.
struct StructReaderTests {
    /// `count` bytes of 0xAB: what a plugin's memory past a struct looks like to a host that reads too far.
    private func garbage(_ count: Int) -> UnsafeMutableRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16)
        buffer.initializeMemory(as: UInt8.self, repeating: 0xAB)
        return buffer
    }

    private func store<T>(_ value: T, at offset: Int = 0, in buffer: UnsafeMutableRawBufferPointer) {
        withUnsafeBytes(of: value) { bytes in
            UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<offset + bytes.count]).copyMemory(from: bytes)
        }
    }

    @Test func fieldsPastTheDeclaredSizeAreZero() {
        let buffer = garbage(MemoryLayout<mcpp_tool>.size)
        defer { buffer.deallocate() }
        // A tool cut just after its name: everything after reads as absent, not as the 0xAB bytes there.
        let declared = mcpp_tool.end(of: \.name)
        store(UInt32(declared), in: buffer)
        let tool = StructReader.readPrefix(mcpp_tool.self, from: buffer.baseAddress!, declaredSize: declared)
        #expect(tool.struct_size == UInt32(declared))
        #expect(tool.flags == 0xABAB_ABAB)
        #expect(UInt(bitPattern: tool.name.len) == 0xABAB_ABAB_ABAB_ABAB)
        #expect(tool.title.ptr == nil && tool.title.len == 0)
        #expect(tool.annotations.ptr == nil && tool.annotations.len == 0)
    }

    @Test func aLargerStructIsReadOnlyAsFarAsTheHostKnows() throws {
        let size = MemoryLayout<mcpp_resource>.size + 40
        let buffer = garbage(size)
        defer { buffer.deallocate() }
        var resource = mcpp_resource()
        resource.struct_size = UInt32(size)
        resource.size = 42
        store(resource, in: buffer)
        store(UInt32(size), in: buffer)  // the 0xAB tail stays: a later minor's fields
        let read = try StructReader.read(mcpp_resource.self, at: buffer.baseAddress!, kind: "resource", index: 0)
        #expect(read.struct_size == UInt32(size))
        #expect(read.size == 42)
        #expect(read.uri.ptr == nil)
    }

    @Test func aStructSmallerThan1_0IsRefusedWithItsName() throws {
        let name = "echo"
        try name.withCString { text in
            var tool = mcpp_tool()
            tool.struct_size = UInt32(MemoryLayout<mcpp_tool>.offset(of: \mcpp_tool.annotations)!)
            tool.name = mcpp_str(ptr: text, len: 4)
            let error = try #require(throws: StructSizeError.self) {
                try withUnsafeBytes(of: tool) { bytes in
                    try StructReader.read(
                        mcpp_tool.self, at: bytes.baseAddress!, kind: "tool", index: 3, nameField: \.name)
                }
            }
            #expect(
                error.description
                    == "tool 3 (\"echo\"): struct_size \(tool.struct_size) is smaller than mcpp_tool 1.0 "
                    + "(\(mcpp_tool.size1_0))")
        }
    }

    @Test func theNameIsLeftOutWhenThePluginDidNotSendItWhole() throws {
        let buffer = garbage(MemoryLayout<mcpp_prompt>.size)
        defer { buffer.deallocate() }
        store(UInt32(12), in: buffer)  // the name's pointer cut in half
        let error = try #require(throws: StructSizeError.self) {
            try StructReader.read(
                mcpp_prompt.self, at: buffer.baseAddress!, kind: "prompt", index: 0, nameField: \.name)
        }
        #expect(error.subject == "prompt 0")
    }

    @Test func arraysAreWalkedByTheDeclaredStride() throws {
        let stride = MemoryLayout<mcpp_prompt_arg>.size + 24
        let buffer = garbage(3 * stride)
        defer { buffer.deallocate() }
        for index in 0..<3 {
            var argument = mcpp_prompt_arg()
            argument.struct_size = UInt32(stride)
            argument.flags = UInt32(index)
            store(argument, at: index * stride, in: buffer)
            store(UInt32(stride), at: index * stride, in: buffer)
        }
        let arguments = try StructReader.readArray(
            mcpp_prompt_arg.self, at: buffer.baseAddress!, count: 3, kind: "prompt 0 argument")
        #expect(arguments.map(\.flags) == [0, 1, 2])
        #expect(arguments.allSatisfy { $0.name.ptr == nil && $0.description.len == 0 })
    }

    @Test func anArrayElementLargerThanTheStrideIsRefused() throws {
        let stride = MemoryLayout<mcpp_prompt_arg>.size
        let buffer = garbage(2 * stride)
        defer { buffer.deallocate() }
        store(UInt32(stride), in: buffer)
        store(UInt32(stride + 8), at: stride, in: buffer)
        let error = try #require(throws: StructSizeError.self) {
            try StructReader.readArray(mcpp_prompt_arg.self, at: buffer.baseAddress!, count: 2, kind: "argument")
        }
        #expect(error.subject == "argument 1")
        #expect(error.problem.contains("larger than the array's stride (\(stride)"))
    }

    /// The 1.0 minimum never exceeds what the current header defines, and is what ABI 1.0 laid down
    /// (Tests/abi/layout.golden; the integration test compares with the frozen 1.0 header itself).
    @Test func sizes1_0AreTheEndsOfTheLast1_0Fields() {
        #expect(mcpp_plugin.size1_0 == 168 && mcpp_plugin.size1_0 <= MemoryLayout<mcpp_plugin>.size)
        #expect(mcpp_tool.size1_0 == 104 && mcpp_tool.size1_0 <= MemoryLayout<mcpp_tool>.size)
        #expect(mcpp_resource.size1_0 == 96 && mcpp_resource.size1_0 <= MemoryLayout<mcpp_resource>.size)
        #expect(
            mcpp_resource_template.size1_0 == 88
                && mcpp_resource_template.size1_0 <= MemoryLayout<mcpp_resource_template>.size)
        #expect(mcpp_prompt.size1_0 == 64 && mcpp_prompt.size1_0 <= MemoryLayout<mcpp_prompt>.size)
        #expect(mcpp_prompt_arg.size1_0 == 56 && mcpp_prompt_arg.size1_0 <= MemoryLayout<mcpp_prompt_arg>.size)
    }
}
