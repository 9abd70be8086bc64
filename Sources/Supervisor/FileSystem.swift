import SupervisorCore

#if canImport(Glibc)
    import Glibc
#endif

/// The real file system for the configuration loader.
public struct LocalFiles: ConfigFileSource {
    public init() {}

    public func read(_ path: String) -> Result<String, FileReadError> {
        guard let f = fopen(path, "r") else { return .failure(FileReadError(String(cString: strerror(errno)))) }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n > 0 { bytes += buf[0..<n] }
            if n < buf.count {
                if ferror(f) != 0 { return .failure(FileReadError(String(cString: strerror(errno)))) }
                break
            }
            if bytes.count > 16 << 20 { return .failure(FileReadError("larger than 16 MiB")) }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(FileReadError("not UTF-8 text"))
        }
        return .success(text)
    }

    public func list(_ directory: String) -> [String]? {
        guard let d = opendir(directory) else { return nil }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) {
                String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
