//! The route table: host (exact, or `*.example.com`) plus a path prefix →
//! an app's current upstream or a static directory.
//!
//! The table is immutable once built; the edge swaps a whole new one in
//! (arc-swap), so a request sees one consistent table from start to end and
//! in-flight requests to a replaced upstream simply finish.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where a route sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An app (or the dashboard). `upstream` is `None` while it has no running
    /// container: requests get a 502 page naming `name`.
    App {
        name: String,
        upstream: Option<SocketAddr>,
    },
    /// Files from a directory on this server.
    Static { dir: PathBuf, spa_fallback: bool },
}

/// One route as the deploy engine describes it. Hosts are lowercase, already
/// validated (`berth_core::DomainName`); a wildcard is `*.` plus a domain and
/// matches exactly one more label, as in certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub host: String,
    /// `/` or a prefix without a trailing slash, such as `/blog`.
    pub path_prefix: String,
    /// Remove the prefix before passing the path on.
    pub strip_prefix: bool,
    pub target: Target,
    /// On plain HTTP, redirect to HTTPS (only once a certificate exists for the host).
    pub redirect_https: bool,
    /// Send `Strict-Transport-Security` on HTTPS responses.
    pub hsts: bool,
}

impl Route {
    /// A route for a whole host to an app, with the defaults of a new domain.
    pub fn app(host: &str, name: &str, upstream: Option<SocketAddr>) -> Route {
        Route {
            host: host.to_owned(),
            path_prefix: "/".to_owned(),
            strip_prefix: false,
            target: Target::App {
                name: name.to_owned(),
                upstream,
            },
            redirect_https: true,
            hsts: false,
        }
    }

    /// The path to send on: the request's path and query, minus the prefix when stripping.
    pub fn upstream_path<'a>(&self, path_and_query: &'a str) -> std::borrow::Cow<'a, str> {
        if !self.strip_prefix || self.path_prefix == "/" {
            return path_and_query.into();
        }
        let rest = &path_and_query[self.path_prefix.len().min(path_and_query.len())..];
        if rest.is_empty() || rest.starts_with('?') {
            format!("/{rest}").into()
        } else {
            rest.into()
        }
    }
}

/// Whether `prefix` (`/` or `/a/b`) covers `path`: whole segments only, so
/// `/blog` covers `/blog` and `/blog/x` but not `/blogger`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// A host header as typed (`Example.COM:8080`, `[::1]:80`, `example.com.`) → `example.com`.
pub fn normalize_host(raw: &str) -> String {
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // An IPv6 literal: keep it whole, drop the port.
        rest.split(']').next().unwrap_or_default()
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The routes of one host pattern, longest prefix first.
#[derive(Debug, Default)]
struct HostRoutes(Vec<Route>);

impl HostRoutes {
    fn find(&self, path: &str) -> Option<&Route> {
        self.0.iter().find(|r| prefix_matches(&r.path_prefix, path))
    }
}

/// An immutable routing snapshot.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<String, HostRoutes>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, HostRoutes>,
    len: usize,
}

impl RouteTable {
    /// Builds a table. When two routes share host and prefix, the later one wins,
    /// so callers list defaults first and user-made routes after them.
    pub fn new(routes: impl IntoIterator<Item = Route>) -> RouteTable {
        let mut table = RouteTable::default();
        for route in routes {
            let (map, key) = match route.host.strip_prefix("*.") {
                Some(suffix) => (&mut table.wildcard, suffix.to_owned()),
                None => (&mut table.exact, route.host.clone()),
            };
            let entry = map.entry(key).or_default();
            entry.0.retain(|r| r.path_prefix != route.path_prefix);
            entry.0.push(route);
        }
        for host in table.exact.values_mut().chain(table.wildcard.values_mut()) {
            host.0
                .sort_by_key(|r| std::cmp::Reverse(r.path_prefix.len()));
        }
        table.len = table
            .exact
            .values()
            .chain(table.wildcard.values())
            .map(|h| h.0.len())
            .sum();
        table
    }

    /// The route for a normalized host and a path (without query). An exact
    /// host beats a wildcard; within a host the longest prefix wins.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Route> {
        if let Some(route) = self.exact.get(host).and_then(|h| h.find(path)) {
            return Some(route);
        }
        let (_, parent) = host.split_once('.')?;
        self.wildcard.get(parent).and_then(|h| h.find(path))
    }

    /// How many routes the table holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(name: &str, host: &str, prefix: &str) -> Route {
        Route {
            path_prefix: prefix.to_owned(),
            ..Route::app(host, name, None)
        }
    }

    fn name_of(route: Option<&Route>) -> Option<&str> {
        route.map(|r| match &r.target {
            Target::App { name, .. } => name.as_str(),
            Target::Static { .. } => "static",
        })
    }

    #[test]
    fn an_exact_host_beats_a_wildcard() {
        let table = RouteTable::new([
            to("wild", "*.example.com", "/"),
            to("exact", "app.example.com", "/"),
        ]);
        assert_eq!(name_of(table.lookup("app.example.com", "/")), Some("exact"));
        assert_eq!(
            name_of(table.lookup("other.example.com", "/")),
            Some("wild")
        );
        // A wildcard covers one label, like a certificate.
        assert_eq!(name_of(table.lookup("a.b.example.com", "/")), None);
        assert_eq!(name_of(table.lookup("example.com", "/")), None);
    }

    #[test]
    fn the_longest_prefix_wins_on_whole_segments() {
        let table = RouteTable::new([
            to("root", "example.com", "/"),
            to("blog", "example.com", "/blog"),
            to("deep", "example.com", "/blog/admin"),
        ]);
        assert_eq!(
            name_of(table.lookup("example.com", "/blog/x")),
            Some("blog")
        );
        assert_eq!(name_of(table.lookup("example.com", "/blog")), Some("blog"));
        assert_eq!(
            name_of(table.lookup("example.com", "/blog/admin/1")),
            Some("deep")
        );
        assert_eq!(
            name_of(table.lookup("example.com", "/blogger")),
            Some("root")
        );
    }

    #[test]
    fn an_exact_host_without_a_matching_prefix_falls_back_to_the_wildcard() {
        let table = RouteTable::new([
            to("wild", "*.example.com", "/"),
            to("api", "app.example.com", "/api"),
        ]);
        assert_eq!(name_of(table.lookup("app.example.com", "/")), Some("wild"));
        assert_eq!(
            name_of(table.lookup("app.example.com", "/api/v1")),
            Some("api")
        );
    }

    #[test]
    fn a_later_route_replaces_an_earlier_one_with_the_same_host_and_prefix() {
        let table = RouteTable::new([to("first", "a.test", "/"), to("second", "a.test", "/")]);
        assert_eq!(name_of(table.lookup("a.test", "/")), Some("second"));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(normalize_host("Example.COM:8080"), "example.com");
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("[::1]:80"), "::1");
        assert_eq!(normalize_host("web.demo.localhost"), "web.demo.localhost");
    }

    #[test]
    fn stripping_keeps_a_leading_slash_and_the_query() {
        let mut route = to("blog", "a.test", "/blog");
        route.strip_prefix = true;
        assert_eq!(route.upstream_path("/blog/post?x=1"), "/post?x=1");
        assert_eq!(route.upstream_path("/blog"), "/");
        assert_eq!(route.upstream_path("/blog?x=1"), "/?x=1");
        route.strip_prefix = false;
        assert_eq!(route.upstream_path("/blog/post"), "/blog/post");
    }
}
