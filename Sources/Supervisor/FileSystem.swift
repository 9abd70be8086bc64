import SupervisorCore

#if canImport(Glibc)
    import Glibc
#endif

/// The real file system for the configuration loader.
public struct LocalFiles: ConfigFileSource {
    public init() {}

    public func read(_ path: String) -> Result<String, FileReadError> {
        let bytes: [UInt8]
        switch Self.bytes(path) {
        case .success(let b): bytes = b
        case .failure(let error):
            return .failure(
                FileReadError(error.code == EFBIG ? "larger than 16 MiB" : String(cString: strerror(error.code))))
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(FileReadError("not UTF-8 text"))
        }
        return .success(text)
    }

    /// A file's bytes (at most 16 MiB: EFBIG beyond), or the errno of what failed.
    static func bytes(_ path: String) -> Result<[UInt8], Errno> {
        guard let f = fopen(path, "r") else { return .failure(Errno(code: errno)) }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n > 0 { bytes += buf[0..<n] }
            if n < buf.count {
                if ferror(f) != 0 { return .failure(Errno(code: errno == 0 ? EIO : errno)) }
                break
            }
            if bytes.count > 16 << 20 { return .failure(Errno(code: EFBIG)) }
        }
        return .success(bytes)
    }

    struct Errno: Error {
        var code: Int32
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
