//! Static sites: files from a directory with their content type, `ETag` and
//! `Last-Modified` (so a browser's revalidation gets `304`), brotli or gzip
//! when the client accepts them, and an optional SPA fallback.
//!
//! Decisions:
//! - Compressed copies are made on the first request and kept in a small
//!   in-memory cache keyed by file, validator and encoding, so a busy site
//!   does not compress the same file again. Files over 8 MiB go uncompressed
//!   (streamed from disk).
//! - The SPA fallback answers `index.html` for a missing path whose last
//!   segment has no extension (`/users/42`), while a missing `/app.js` stays
//!   a 404 so broken asset links are visible.
//! - Dot files (`.git`, `.env`) are never served, except `.well-known`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::io::Write;
use tokio::io::AsyncReadExt;

use crate::proxy::{Body, BoxError, empty, full, not_found, page};

/// Largest file compressed on the fly.
const MAX_COMPRESS_BYTES: u64 = 8 * 1024 * 1024;
/// Smallest file worth compressing.
const MIN_COMPRESS_BYTES: u64 = 256;
/// Total size of the compressed copies kept in memory.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Encoding {
    Brotli,
    Gzip,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }
}

/// A compressed body's key: the file, its validator, the encoding.
type CacheKey = (PathBuf, String, Encoding);

/// Compressed file bodies, and their total size.
#[derive(Default)]
pub(crate) struct Cache {
    inner: Mutex<(HashMap<CacheKey, Bytes>, usize)>,
}

impl Cache {
    fn get(&self, key: &CacheKey) -> Option<Bytes> {
        self.inner.lock().ok()?.0.get(key).cloned()
    }

    fn put(&self, key: CacheKey, value: Bytes) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        // Simple and bounded: start over when full.
        if inner.1 + value.len() > CACHE_BYTES {
            inner.0.clear();
            inner.1 = 0;
        }
        inner.1 += value.len();
        inner.0.insert(key, value);
    }
}

/// The file a request path names, relative to the site's directory, or
/// `None` for a path that tries to leave it or reach a dot file.
fn resolve(rel: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(rel)
        .decode_utf8()
        .ok()?;
    let mut path = PathBuf::new();
    for segment in decoded.split('/') {
        if segment.is_empty() || segment == "." {
            continue;
        }
        if segment == ".."
            || segment.contains(['\\', '\0'])
            || (segment.starts_with('.') && segment != ".well-known")
        {
            return None;
        }
        path.push(segment);
    }
    Some(path)
}

fn accepted(headers: &HeaderMap) -> Option<Encoding> {
    let mut br = false;
    let mut gzip = false;
    for value in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for item in value.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if refused {
                continue;
            }
            match name {
                "br" => br = true,
                "gzip" | "x-gzip" => gzip = true,
                _ => {}
            }
        }
    }
    if br {
        Some(Encoding::Brotli)
    } else if gzip {
        Some(Encoding::Gzip)
    } else {
        None
    }
}

fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || [
            "application/javascript",
            "application/json",
            "application/xml",
            "application/wasm",
            "application/manifest+json",
            "image/svg+xml",
        ]
        .iter()
        .any(|t| content_type.starts_with(t))
}

fn content_type(path: &Path) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let essence = mime.essence_str();
    if essence.starts_with("text/")
        || essence == "application/javascript"
        || essence == "application/json"
    {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_owned()
    }
}

fn compress(data: &[u8], encoding: Encoding) -> std::io::Result<Vec<u8>> {
    match encoding {
        Encoding::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data)?;
            encoder.finish()
        }
        Encoding::Brotli => {
            let mut out = Vec::new();
            {
                // Quality 5: most of brotli's gain at a fraction of its cost at 11.
                let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                writer.write_all(data)?;
            }
            Ok(out)
        }
    }
}

/// Whether the client's validators say its copy is current.
fn not_modified(headers: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return inm.split(',').any(|tag| {
            let tag = tag.trim().trim_start_matches("W/");
            // A compressed variant's tag names the same file version.
            let tag = tag
                .strip_suffix("-br\"")
                .or_else(|| tag.strip_suffix("-gzip\""))
                .map_or_else(|| tag.to_owned(), |t| format!("{t}\""));
            tag == "*" || tag == etag
        });
    }
    if let Some(since) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        return secs(modified) <= secs(since);
    }
    false
}

/// Serves `rel` (the path after the route's prefix, without the query) from
/// `dir`; the request's own path is kept for the trailing-slash redirect.
pub(crate) async fn serve(
    cache: &Cache,
    request: &http::request::Parts,
    dir: &Path,
    spa_fallback: bool,
    rel: &str,
) -> Response<Body> {
    let (method, headers) = (&request.method, &request.headers);
    let (full_path, query) = (request.uri.path(), request.uri.query());
    if method != Method::GET && method != Method::HEAD {
        let mut response = page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "This is a static site: it only answers GET and HEAD.",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let Some(mut path) = resolve(rel) else {
        return not_found();
    };
    let mut opened = open_beneath(dir, &path).await;
    if opened.as_ref().is_some_and(|(_, m)| m.is_dir()) {
        if !full_path.ends_with('/') {
            // Relative links in index.html only work below a trailing slash.
            let location = match query {
                Some(q) => format!("{full_path}/?{q}"),
                None => format!("{full_path}/"),
            };
            return Response::builder()
                .status(StatusCode::PERMANENT_REDIRECT)
                .header(header::LOCATION, location)
                .body(empty())
                .expect("a redirect is valid");
        }
        path.push("index.html");
        opened = open_beneath(dir, &path).await;
    }
    if !opened.as_ref().is_some_and(|(_, m)| m.is_file()) {
        let last = rel.rsplit('/').next().unwrap_or_default();
        if spa_fallback && !last.contains('.') {
            path = PathBuf::from("index.html");
            opened = open_beneath(dir, &path).await;
        }
    }
    let Some((file, meta)) = opened.filter(|(_, m)| m.is_file()) else {
        return not_found();
    };
    let len = meta.len();
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let stamp = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
    let etag = format!(
        "\"{:x}-{:x}-{:x}\"",
        stamp.as_secs(),
        stamp.subsec_nanos(),
        len
    );
    let last_modified = httpdate::fmt_http_date(modified);
    let content_type = content_type(&path);

    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, &content_type)
        .header(header::LAST_MODIFIED, &last_modified)
        .header(header::ACCEPT_RANGES, "none");
    let encoding = accepted(headers).filter(|_| {
        compressible(&content_type) && (MIN_COMPRESS_BYTES..=MAX_COMPRESS_BYTES).contains(&len)
    });
    if compressible(&content_type) {
        builder = builder.header(header::VARY, "accept-encoding");
    }
    let tag = match encoding {
        Some(e) => format!("{}-{}\"", etag.trim_end_matches('"'), e.name()),
        None => etag.clone(),
    };
    builder = builder.header(header::ETAG, &tag);
    if not_modified(headers, &etag, modified) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(empty())
            .expect("a 304 is valid");
    }

    if let Some(encoding) = encoding {
        let key = (dir.join(&path), etag.clone(), encoding);
        let body = match cache.get(&key) {
            Some(body) => body,
            None => {
                let mut data = Vec::new();
                let mut file = tokio::fs::File::from_std(file);
                if file.read_to_end(&mut data).await.is_err() {
                    return not_found();
                }
                let compressed =
                    match tokio::task::spawn_blocking(move || compress(&data, encoding)).await {
                        Ok(Ok(c)) => Bytes::from(c),
                        _ => {
                            return page(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "Something went wrong",
                                "The file could not be compressed.",
                            );
                        }
                    };
                cache.put(key, compressed.clone());
                compressed
            }
        };
        let builder = builder
            .header(header::CONTENT_ENCODING, encoding.name())
            .header(header::CONTENT_LENGTH, body.len());
        let body = if method == Method::HEAD {
            empty()
        } else {
            full(body)
        };
        return builder.body(body).expect("a file response is valid");
    }

    let builder = builder.header(header::CONTENT_LENGTH, len);
    if method == Method::HEAD {
        return builder.body(empty()).expect("a file response is valid");
    }
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file))
        .map_ok(Frame::data)
        .map_err(BoxError::from);
    builder
        .body(StreamBody::new(stream).boxed_unsync())
        .expect("a file response is valid")
}

/// Opens `rel` inside `dir` so that neither `..` nor a symlink (absolute,
/// or relative and climbing) can lead out of it: `openat2` with
/// `RESOLVE_BENEATH` does the walk in the kernel, so nothing can be swapped
/// between a check and the open. Kernels before 5.6 lack it; there the
/// resolved path must stay under the resolved directory. `None` when the
/// file is missing or outside.
async fn open_beneath(dir: &Path, rel: &Path) -> Option<(std::fs::File, std::fs::Metadata)> {
    let (dir, rel) = (dir.to_path_buf(), rel.to_path_buf());
    tokio::task::spawn_blocking(move || {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let root = std::fs::File::open(&dir).ok()?;
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel.as_path()
        };
        // NONBLOCK: a FIFO in a site must not hang the open; it is no file anyway.
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let file = match rustix::fs::openat2(&root, rel, flags, Mode::empty(), resolve) {
            Ok(fd) => std::fs::File::from(fd),
            Err(rustix::io::Errno::NOSYS) => {
                let inside = std::fs::canonicalize(dir.join(rel)).ok()?;
                if !inside.starts_with(std::fs::canonicalize(&dir).ok()?) {
                    return None;
                }
                std::fs::File::open(inside).ok()?
            }
            Err(_) => return None,
        };
        let meta = file.metadata().ok()?;
        Some((file, meta))
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_directory_or_reach_dot_files() {
        assert_eq!(resolve("/a/b.css"), Some(PathBuf::from("a/b.css")));
        assert_eq!(resolve("/a%20b.html"), Some(PathBuf::from("a b.html")));
        assert_eq!(resolve("/../etc/passwd"), None);
        assert_eq!(resolve("/%2e%2e/etc/passwd"), None);
        assert_eq!(resolve("/.git/config"), None);
        assert_eq!(resolve("/a\\..\\b"), None);
        assert!(resolve("/.well-known/security.txt").is_some());
    }

    #[tokio::test]
    async fn no_symlink_leads_out_of_a_site() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.key"), "key").unwrap();
        let site = tempfile::tempdir().unwrap();
        let dir = site.path();
        std::fs::create_dir(dir.join("docs")).unwrap();
        std::fs::write(dir.join("docs/page.html"), "page").unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.key"), dir.join("key.txt")).unwrap();
        std::os::unix::fs::symlink("../..", dir.join("docs/up")).unwrap();
        std::os::unix::fs::symlink("docs/page.html", dir.join("alias.html")).unwrap();
        let open = |rel: &'static str| open_beneath(dir, Path::new(rel));
        assert!(open("docs/page.html").await.is_some());
        assert!(
            open("alias.html").await.is_some(),
            "a link inside stays usable"
        );
        assert!(open("").await.is_some_and(|(_, m)| m.is_dir()));
        assert!(open("etc/passwd").await.is_none());
        assert!(open("key.txt").await.is_none());
        assert!(open("docs/up/etc/passwd").await.is_none());
    }

    #[test]
    fn brotli_is_preferred_and_q_zero_refuses() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate, br"),
        );
        assert_eq!(accepted(&headers), Some(Encoding::Brotli));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, br;q=0"),
        );
        assert_eq!(accepted(&headers), Some(Encoding::Gzip));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        assert_eq!(accepted(&headers), None);
    }
}
