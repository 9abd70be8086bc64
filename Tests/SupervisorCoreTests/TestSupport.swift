@testable import SupervisorCore

/// An in-memory file system for `ConfigLoader`: a `[path: text]` dictionary. A folder exists when some file lies
/// below it (or it is listed in `emptyDirectories`); `unreadable` paths fail both `read` and `list`.
struct MemoryFileSource: ConfigFileSource {
    var files: [String: String]
    var emptyDirectories: Set<String> = []
    var unreadable: Set<String> = []

    init(_ files: [String: String], emptyDirectories: Set<String> = [], unreadable: Set<String> = []) {
        self.files = files
        self.emptyDirectories = emptyDirectories
        self.unreadable = unreadable
    }

    func read(_ path: String) -> Result<String, FileReadError> {
        if unreadable.contains(path) { return .failure(FileReadError("Permission denied")) }
        guard let text = files[path] else { return .failure(FileReadError("No such file or directory")) }
        return .success(text)
    }

    func list(_ directory: String) -> [String]? {
        if unreadable.contains(directory) { return nil }
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        var names = Set<String>()
        for path in files.keys where path.hasPrefix(prefix) {
            let rest = path.dropFirst(prefix.count)
            names.insert(String(rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)[0]))
        }
        if names.isEmpty && !emptyDirectories.contains(directory) { return nil }
        // Deliberately not sorted: the loader must not depend on the listing order.
        return names.sorted().reversed()
    }
}

extension TOMLTable {
    /// The value at a path of keys (each element one key, so keys may contain dots).
    func value(_ path: String...) -> TOMLValue? { value(path[...]) }

    func value(_ path: ArraySlice<String>) -> TOMLValue? {
        guard let first = path.first, let e = self[first] else { return nil }
        if path.count == 1 { return e.value }
        guard case .table(let t) = e.value else { return nil }
        return t.value(path.dropFirst())
    }

    /// The sub-table at a path.
    func table(_ path: String...) -> TOMLTable? {
        guard case .table(let t)? = value(path[...]) else { return nil }
        return t
    }
}

extension TOMLValue {
    var arrayItems: [TOMLValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    var tableValue: TOMLTable? {
        if case .table(let t) = self { return t }
        return nil
    }

    var doubleValue: Double? {
        if case .float(let d) = self { return d }
        return nil
    }
}

/// Parses TOML and returns the error, or nil if it parsed.
func tomlError(_ text: String) -> TOMLError? {
    do throws(TOMLError) {
        _ = try TOMLParser.parse(text)
        return nil
    } catch {
        return error
    }
}

func approximatelyEqual(_ a: Double, _ b: Double, tolerance: Double = 1e-9) -> Bool {
    abs(a - b) <= tolerance * Swift.max(1, abs(a), abs(b))
}
