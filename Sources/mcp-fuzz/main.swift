// Fuzz targets for the parsers that read bytes from outside (issue 17, docs/reliability.md), one executable:
//
//   mcp-fuzz TARGET FILE|DIR...      runs every input once (a normal build: the committed corpus and every crash
//                                    found so far, as a regression test; exit 0 when nothing trapped)
//   scripts/fuzz.sh TARGET [SECONDS] builds this with libFuzzer's coverage instrumentation and AddressSanitizer
//                                    (.build-fuzz) and fuzzes TARGET from Fuzz/corpus/TARGET
//
// Each target checks properties, not only "no crash": JSON round-trips, the line framer's memory bound.
import CHostSupport
import Contracts
import Foundation
import MCPProtocol
import PluginHost
import SupervisorCore

/// One fuzz target: takes any bytes; traps (precondition) when a property fails.
typealias Target = @Sendable ([UInt8]) -> Void

let targets: [String: Target] = FuzzTargets.all

enum FuzzTargets {
    /// One dispatcher for every input, as one host serves every request (sessions and streams included).
    static let dispatcher = DispatcherFuzzing()
    /// One host on a loopback port for every input of `http`, made on first use.
    nonisolated(unsafe) static var http: HTTPFuzzing?
    /// The file the `elf` target writes each input into (unlinked), made on first use.
    nonisolated(unsafe) static var elfFile: Int32 = -1

    static let all: [String: Target] = [
        // The host's MCP dispatcher (both eras) fed a raw request: "VERB\nName: value...\n\nbody". A POST is
        // always answered (every call has a 300 ms deadline), within two seconds.
        "dispatcher": { bytes in
            let status = dispatcher.feed(bytes)
            let post = bytes.starts(with: Array("POST\n".utf8)) || bytes == Array("POST".utf8)
            check(!post || status != nil, "a POST got no answer within two seconds")
            if let status { check((200..<600).contains(status), "HTTP status \(status)") }
        },
        // The host's whole HTTP path (NIO's parser, Origin/Host checks, limits, gzip, the dispatcher) fed raw bytes
        // on a fresh loopback connection: the connection is closed within five seconds of the client's EOF, and
        // what comes back is HTTP responses.
        "http": { bytes in
            if http == nil {
                do { http = try HTTPFuzzing() } catch { fatalError("cannot start the fuzzed host: \(error)") }
            }
            let answer = http!.feed(bytes)
            check(answer != nil, "the host kept the connection open five seconds after the client's EOF")
            if let answer, !answer.isEmpty {
                check(answer.starts(with: Array("HTTP/1.1 ".utf8)), "not an HTTP response: \(answer.prefix(40))")
            }
        },
        // The ELF reader of `--check` and of the loader's checks (CHostSupport), on a file holding the input: a
        // verdict, and whatever it reports stays within its fields.
        "elf": { bytes in
            if elfFile < 0 {
                // A file nobody else sees: made and unlinked at once (it goes with the process).
                var template = Array((ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp").utf8CString.dropLast())
                template += Array("/mcp-fuzz-elf-XXXXXX".utf8CString)
                elfFile = mkstemp(&template)
                check(elfFile >= 0, "cannot make the elf target's file")
                _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
            }
            check(ftruncate(elfFile, 0) == 0, "ftruncate")
            _ = bytes.withUnsafeBytes { pwrite(elfFile, $0.baseAddress, $0.count, 0) }
            var reason = [CChar](repeating: 0, count: 256)
            _ = mcph_elf_check(elfFile, &reason, reason.count)
            check(reason.contains(0), "mcph_elf_check's reason is not terminated")
            var info = mcph_elf_info()
            _ = mcph_elf_inspect(elfFile, &info, &reason, reason.count)
            check((0...Int32(MCPH_MAX_NEEDED)).contains(info.needed_count), "needed_count \(info.needed_count)")
            check(reason.contains(0), "mcph_elf_inspect's reason is not terminated")
        },
        // Fails on the bytes "trap": shows the replay reports a failing input (test_fuzz_corpus.py), not fuzzed.
        "self-check": { bytes in check(bytes != Array("trap".utf8), "self-check: the input is 'trap'") },
        // The JSON parser and writer: what parses serializes to bytes that parse to the same value, and writing that
        // again gives the same bytes.
        "json": { bytes in
            guard let value = try? JSONParser.parse(bytes) else { return }
            let written = JSONWriter.serialize(value)
            guard let again = try? JSONParser.parse(written) else {
                check(false, "the writer's output does not parse: \(String(decoding: written, as: UTF8.self))")
                return
            }
            check(sameJSON(again, value), "round trip changed the value")
            check(JSONWriter.serialize(again) == written, "writing is not deterministic")
        },
        // The TOML parser: anything is an error or a table.
        "toml": { bytes in
            _ = try? TOMLParser.parse(String(decoding: bytes, as: UTF8.self))
        },
        // The config loader on a main file and one server file (split at the first line "----"), read from memory.
        "config": { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            let parts = text.components(separatedBy: "\n----\n")
            let files = [
                "/fuzz/supervisor.toml": parts[0],
                "/fuzz/servers.d/a.toml": parts.count > 1 ? parts[1] : "plugin = \"/fuzz/a.so\"\n",
            ]
            let loader = ConfigLoader(source: MemorySource(files: files))
            _ = try? loader.load(mainFile: "/fuzz/supervisor.toml")
        },
        // URI templates (RFC 6570 level 1 as resources use them): a template on the first line, a URI on the second.
        "uri-template": { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            let lines = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
            guard let template = URITemplate(String(lines[0])) else { return }
            _ = template.match(lines.count > 1 ? String(lines[1]) : "")
        },
        // The control socket's and the host-supervisor channel's lines: framed, parsed, decoded by every reader of
        // such a line. The framer never holds more than its limit plus one read.
        "control-line": { bytes in
            var framer = LineFramer(maxLineBytes: 512, overflow: .reject)
            var rest = bytes[...]
            while !rest.isEmpty {
                let chunk = rest.prefix(97)
                rest = rest.dropFirst(chunk.count)
                framer.append(chunk)
                check(framer.pendingBytes <= 512 + chunk.count, "the framer holds \(framer.pendingBytes) bytes")
                while let frame = framer.next() {
                    guard case .line(let line) = frame, let value = try? JSONParser.parse(line) else { continue }
                    _ = SupervisorMessage.decode(value)
                    _ = HostMessage.decode(value)
                    if case .object(let params)? = value["params"] {
                        _ = try? StatusParams.decode(params)
                        _ = try? HealthParams.decode(params)
                        _ = try? LogsParams.decode(params)
                        _ = try? ServerActionParams.decode(params)
                    }
                    _ = ControlMethod(rawValue: value["method"]?.stringValue ?? "")
                }
            }
        },
    ]
}

/// The same JSON value, numbers compared as numbers: the writer prints a double with no fraction below 1e15 as an
/// integer (2.5e10 as 25000000000), which parses back as `.int`, and JSON does not tell the two apart.
func sameJSON(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case (.int(let x), .double(let y)), (.double(let y), .int(let x)): return Double(x) == y
    case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { sameJSON($0, $1) }
    case (.object(let x), .object(let y)):
        return x.count == y.count && x.allSatisfy { k, v in y[k].map { sameJSON(v, $0) } ?? false }
    default: return a == b
    }
}

/// A property of a target: when it does not hold, says which on stderr and traps (release builds keep the message,
/// which `precondition` would drop), so libFuzzer records the input and a replay fails naming it.
func check(_ holds: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    guard !holds() else { return }
    let text = "mcp-fuzz: property failed: \(message())\n"
    FileHandle.standardError.write(text.data(using: .utf8)!)
    fatalError(message())
}

/// Files from memory, for the config target (a folder lists the files under it).
struct MemorySource: ConfigFileSource {
    var files: [String: String]
    func read(_ path: String) -> Result<String, FileReadError> {
        files[path].map { .success($0) } ?? .failure(FileReadError("No such file or directory"))
    }
    func list(_ directory: String) -> [String]? {
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        let names = files.keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
        return names.filter { !$0.contains("/") }
    }
}

func usage() -> Never {
    print("usage: mcp-fuzz TARGET FILE|DIR... (targets: \(FuzzTargets.all.keys.sorted().joined(separator: ", ")))")
    exit(64)
}

let arguments = CommandLine.arguments
guard arguments.count >= 2, let target = targets[arguments[1]] else { usage() }

#if FUZZING
    // libFuzzer's driver (libclang_rt.fuzzer_no_main, linked by scripts/fuzz.sh) runs the target; its own flags
    // follow the target's name.
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<Int32>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32
    nonisolated(unsafe) var chosen: Target = target
    var cArguments: [UnsafeMutablePointer<CChar>?] =
        ([arguments[0]] + arguments.dropFirst(2)).map { strdup($0) } + [nil]
    var argc = Int32(cArguments.count - 1)
    let status = cArguments.withUnsafeMutableBufferPointer { buffer -> Int32 in
        var argv = buffer.baseAddress!
        return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            chosen(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
            return 0
        }
    }
    exit(status)
#else
    guard arguments.count >= 3 else { usage() }
    var count = 0
    for path in arguments.dropFirst(2) {
        for file in inputFiles(path) {
            guard let data = FileManager.default.contents(atPath: file) else {
                print("mcp-fuzz: \(file): cannot be read")
                exit(1)
            }
            target(Array(data))
            count += 1
        }
    }
    print("mcp-fuzz \(arguments[1]): \(count) inputs, none failed")
#endif

/// A file, or every file in a folder (sorted, so a failure names the same input each time).
func inputFiles(_ path: String) -> [String] {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        print("mcp-fuzz: \(path): no such file or folder")
        exit(1)
    }
    guard isDirectory.boolValue else { return [path] }
    let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    return names.filter { !$0.hasPrefix(".") }.sorted().map { path + "/" + $0 }
}
