import Contracts
import Foundation
import Testing

/// Where a command server's program is, and what the box opens for it (docs/servers.md, "The box and a program").
struct ProgramLookupTests {
    /// A folder with `venv/bin/tool` (a script whose `#!` names `venv/bin/python`, a symlink into `base/bin`),
    /// `notexec` (a regular file without x), and `server.py`.
    private func layout() throws -> String {
        let root = NSTemporaryDirectory() + "lookup-\(UUID().uuidString)"
        let fm = FileManager.default
        for dir in ["venv/bin", "base/bin", "plain"] {
            try fm.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
        }
        try "#!/bin/sh\n".write(toFile: root + "/base/bin/python3.11", atomically: true, encoding: .utf8)
        try fm.createSymbolicLink(atPath: root + "/venv/bin/python", withDestinationPath: root + "/base/bin/python3.11")
        try "#!\(root)/venv/bin/python\nprint()\n".write(
            toFile: root + "/venv/bin/tool", atomically: true, encoding: .utf8)
        try "x".write(toFile: root + "/plain/notexec", atomically: true, encoding: .utf8)
        try "print()".write(toFile: root + "/server.py", atomically: true, encoding: .utf8)
        for file in ["/base/bin/python3.11", "/venv/bin/tool"] {
            try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: root + file)
        }
        return root
    }

    @Test func findsOnPathAndNamesWhatIsWrong() throws {
        let root = try layout()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let path = "\(root)/plain:\(root)/venv/bin"
        #expect(
            ProgramLookup.find("tool", searchPath: path, workingDirectory: nil) == .executable("\(root)/venv/bin/tool"))
        #expect(
            ProgramLookup.find("notexec", searchPath: path, workingDirectory: nil)
                == .notExecutable("\(root)/plain/notexec"))
        #expect(ProgramLookup.find("nothing-here", searchPath: path, workingDirectory: nil) == .notOnPath)
        #expect(
            ProgramLookup.find("./missing", searchPath: path, workingDirectory: root) == .missing("\(root)/./missing"))
        #expect(
            ProgramLookup.find("venv/bin/tool", searchPath: "", workingDirectory: root)
                == .executable("\(root)/venv/bin/tool"))
    }

    @Test func opensTheProgramsPrefixItsInterpretersAndTheFilesItsArgumentsName() throws {
        let root = try layout()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let real = URL(fileURLWithPath: root).resolvingSymlinksInPath().path
        let paths = ProgramLookup.readPaths(
            command: ["\(root)/venv/bin/tool", "server.py", "--config=\(root)/server.py", "--flag", "/no/such/file"],
            searchPath: "/usr/bin:/bin", workingDirectory: root)
        #expect(paths.contains("\(root)/venv"))
        #expect(paths.contains("\(root)/base") || paths.contains("\(real)/base"))
        #expect(paths.contains("\(root)/server.py"))
        #expect(!paths.contains("/no/such/file"))
        #expect(!paths.contains("/") && !paths.contains("/usr"))
    }

    @Test func aSystemProgramNeedsNothingBeyondTheSystemSet() {
        #expect(
            ProgramLookup.readPaths(command: ["sh", "-c", "true"], searchPath: "/usr/bin:/bin", workingDirectory: nil)
                .isEmpty)
    }

    @Test func nothingForAProgramThatIsNotFound() {
        #expect(
            ProgramLookup.readPaths(command: ["no-such-program"], searchPath: "/nonexistent", workingDirectory: nil)
                .isEmpty)
    }
}
