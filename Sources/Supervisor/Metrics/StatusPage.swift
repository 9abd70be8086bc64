/// The status page for a person (`/` on `metrics_listen`). (Placeholder; the page side of issue 12 renders it.)
enum StatusPage {
    static func render(_ model: StatusPageModel) -> String { "<!doctype html><title>mcp-supervisor</title>" }
}
