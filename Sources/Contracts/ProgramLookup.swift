#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Where a command server's program is, as both ends see it: the host runs what this finds, and the supervisor
/// opens the box's read paths for it (docs/servers.md, "The box and a program").
public enum ProgramLookup {
    public enum Found: Equatable, Sendable {
        case executable(String)
        /// A regular file that is not executable (the first such match when searching PATH).
        case notExecutable(String)
        /// A name with a '/' that does not exist.
        case missing(String)
        /// A bare name found nowhere on PATH.
        case notOnPath
    }

    /// `name` itself when it holds a '/' (relative to `workingDirectory`), else the first executable regular file
    /// of that name on `searchPath` (an empty entry is the current folder, as for execvp).
    public static func find(_ name: String, searchPath: String, workingDirectory: String?) -> Found {
        if name.contains("/") {
            var full = name
            if !name.hasPrefix("/"), let dir = workingDirectory { full = dir + "/" + name }
            guard access(full, F_OK) == 0 else { return .missing(full) }
            return access(full, X_OK) == 0 ? .executable(full) : .notExecutable(full)
        }
        var nonExecutable: String?
        for dir in searchPath.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + name
            var st = stat()
            guard stat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            if access(candidate, X_OK) == 0 { return .executable(candidate) }
            nonExecutable = nonExecutable ?? candidate
        }
        return nonExecutable.map { .notExecutable($0) } ?? .notOnPath
    }

    /// The folders a boxed program needs to read and execute beyond the system set: the installation prefix of
    /// the program (a `bin` folder's parent: a venv, `/opt/tool`), of the file it links to, and of its script
    /// interpreter (`#!` line, `/usr/bin/env NAME` looked up on PATH), each followed through symlinks, so
    /// `.venv/bin/mcp-server-time` opens the venv and the Python it was made from. The system prefixes (`/`,
    /// `/usr`, ...) are left out: the system set has them. A regular file an argument names is added by itself
    /// (a script, a configuration file); folders and data the program works on are the admin's `read_paths` and
    /// `write_paths`.
    public static func readPaths(command: [String], searchPath: String, workingDirectory: String?) -> [String] {
        guard let name = command.first,
            case .executable(let program) = find(
                name, searchPath: searchPath, workingDirectory: workingDirectory)
        else { return [] }
        var files = [program]
        if let interpreter = interpreter(of: program, searchPath: searchPath) { files.append(interpreter) }
        var out: [String] = []
        for file in files {
            for path in [file, realPath(file)].compactMap({ $0 }) {
                let prefix = installationPrefix(of: path)
                if !systemPrefixes.contains(prefix), !out.contains(prefix) { out.append(prefix) }
            }
        }
        // A regular file the arguments name (`python server.py`, `--config /etc/x.toml`): that file alone.
        for argument in command.dropFirst() where !argument.isEmpty {
            let value =
                argument.hasPrefix("-")
                ? argument.split(separator: "=", maxSplits: 1).dropFirst().first.map(String.init) : argument
            guard let value, !value.isEmpty else { continue }
            let full = value.hasPrefix("/") ? value : workingDirectory.map { $0 + "/" + value } ?? value
            var st = stat()
            if full.hasPrefix("/"), stat(full, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, !out.contains(full) {
                out.append(full)
            }
        }
        return out
    }

    static let systemPrefixes: Set<String> = ["/", "/usr", "/usr/local", "/bin", "/sbin", "/lib", "/lib64"]

    /// `/a/b/bin/tool` → `/a/b`; `/a/b/tool` → `/a/b`.
    static func installationPrefix(of file: String) -> String {
        let dir = parent(file)
        let base = dir.split(separator: "/").last.map(String.init) ?? ""
        return base == "bin" || base == "sbin" ? parent(dir) : dir
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// The interpreter a `#!` line names (the program `env` runs, when it is `env`), as an absolute path.
    static func interpreter(of file: String, searchPath: String) -> String? {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &buffer, buffer.count)
        guard n > 2, buffer[0] == UInt8(ascii: "#"), buffer[1] == UInt8(ascii: "!") else { return nil }
        let line = buffer[2..<n].prefix { $0 != UInt8(ascii: "\n") }
        let words = String(decoding: line, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\t" })
            .map(String.init)
        guard var interpreter = words.first else { return nil }
        if interpreter.hasSuffix("/env") {
            guard let named = words.dropFirst().first(where: { !$0.hasPrefix("-") }),
                case .executable(let found) = find(named, searchPath: searchPath, workingDirectory: nil)
            else { return nil }
            interpreter = found
        }
        return interpreter.hasPrefix("/") ? interpreter : nil
    }
}
