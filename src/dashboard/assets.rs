//! The dashboard's static files, embedded in the binary (`include_bytes!`): its style sheet, its
//! page script, its icon and the vendored charting library (`assets/vendor/`, see its README),
//! served at `/dashboard/assets/...` with their content type and a long cache lifetime. Their
//! URLs carry [`version`], a hash of every file, so a new build is never served from a stale
//! cache. Nothing here needs a session: the files hold no data.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;

/// One embedded file: its path under `/dashboard/assets/`, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/dashboard.css"),
    },
    Asset {
        path: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/dashboard.js"),
    },
    Asset { path: "favicon.svg", content_type: "image/svg+xml", bytes: include_bytes!("../../assets/favicon.svg") },
    Asset {
        path: "vendor/chart.js/chart.umd.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/vendor/chart.js/chart.umd.min.js"),
    },
    Asset {
        path: "vendor/chart.js/LICENSE.md",
        content_type: "text/markdown; charset=utf-8",
        bytes: include_bytes!("../../assets/vendor/chart.js/LICENSE.md"),
    },
];

/// A short hash of every embedded file: pages add `?v=<version>` to the assets' URLs.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for asset in ASSETS {
            hasher.update(asset.path.as_bytes());
            hasher.update(asset.bytes);
        }
        format!("{:016x}", hasher.digest())
    })
}

/// `GET /dashboard/assets/{*path}`: the file with its content type, cached for a year (the URL
/// changes with the content); 404 for anything else.
pub async fn serve(Path(path): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.path == path) else {
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "no such asset\n")
            .into_response();
    };
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
