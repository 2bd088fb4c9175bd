//! [`DockerClient`]: where the engine is, connecting lazily, negotiating the API version.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};
use futures_util::{FutureExt, Stream, StreamExt, future, stream};
use tokio::sync::{Mutex, OnceCell, mpsc};

use crate::DockerError;

/// The socket used when neither `--docker-host` nor `DOCKER_HOST` says otherwise.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// How long to wait for the engine to answer the version handshake or a ping.
/// A missing or refused unix socket fails at once; this bounds a TCP engine
/// that does not answer.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait for the engine to start answering an ordinary request.
/// Streams (pull, logs, events) are not cut off once they have started.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A handle on one Docker engine. Cheap to clone; clones share the connection
/// pool and the negotiated API version.
#[derive(Clone)]
pub struct DockerClient {
    inner: Arc<Inner>,
}

struct Inner {
    target: String,
    endpoint: Endpoint,
    /// Set once the API version has been negotiated; stays empty (and is
    /// retried on the next call) while the engine cannot be reached.
    docker: OnceCell<Docker>,
    /// Serialises `ensure_network`: Docker 20.10 happily creates two networks
    /// with the same name.
    network_lock: Mutex<()>,
    /// Serialises `ensure_volume`: Docker's create answers with the existing
    /// volume when the name is taken, so "created now" needs a look first,
    /// and two looks must not both see nothing.
    volume_lock: Mutex<()>,
}

/// Where the engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// Path of a unix socket.
    Unix(String),
    /// `host:port` of an engine speaking plain HTTP.
    Tcp(String),
}

impl fmt::Debug for DockerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerClient")
            .field("target", &self.inner.target)
            .field("negotiated", &self.inner.docker.initialized())
            .finish()
    }
}

impl DockerClient {
    /// Prepares a client; never contacts the daemon.
    ///
    /// `host` is `unix:///path`, `/path` or `tcp://host:port` (plain HTTP; TLS
    /// is not supported). `None` means `DOCKER_HOST`, else
    /// [`DEFAULT_DOCKER_HOST`]. Fails only when the host cannot be understood.
    pub fn connect(host: Option<&str>) -> Result<Self, DockerError> {
        let from_env;
        let host = match host {
            Some(host) => host,
            None => {
                from_env = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
                from_env.as_deref().unwrap_or(DEFAULT_DOCKER_HOST)
            }
        };
        let endpoint = parse_host(host)?;
        let target = match &endpoint {
            Endpoint::Unix(path) => format!("unix://{path}"),
            Endpoint::Tcp(addr) => format!("tcp://{addr}"),
        };
        Ok(DockerClient {
            inner: Arc::new(Inner {
                target,
                endpoint,
                docker: OnceCell::new(),
                network_lock: Mutex::new(()),
                volume_lock: Mutex::new(()),
            }),
        })
    }

    /// What berth tries, for error messages: e.g. `unix:///var/run/docker.sock`.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// The API version in use, once negotiated (e.g. `1.41`).
    pub fn api_version(&self) -> Option<String> {
        self.inner
            .docker
            .get()
            .map(|d| d.client_version().to_string())
    }

    /// Checks that the engine answers, negotiating the API version first if
    /// that has not happened yet.
    pub async fn ping(&self) -> Result<(), DockerError> {
        let docker = self.docker().await?;
        docker
            .clone()
            .with_timeout(CONNECT_TIMEOUT)
            .ping()
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    pub(crate) fn network_lock(&self) -> &Mutex<()> {
        &self.inner.network_lock
    }

    pub(crate) fn volume_lock(&self) -> &Mutex<()> {
        &self.inner.volume_lock
    }

    /// The bollard client, version negotiated. The first call (and every call
    /// after a failed one) talks to the engine.
    pub(crate) async fn docker(&self) -> Result<&Docker, DockerError> {
        self.inner.docker.get_or_try_init(|| self.negotiate()).await
    }

    async fn negotiate(&self) -> Result<Docker, DockerError> {
        let secs = CONNECT_TIMEOUT.as_secs();
        let docker = match &self.inner.endpoint {
            Endpoint::Unix(path) => Docker::connect_with_unix(path, secs, API_DEFAULT_VERSION),
            Endpoint::Tcp(addr) => Docker::connect_with_http(addr, secs, API_DEFAULT_VERSION),
        }
        .map_err(|e| self.err(e))?;
        let docker = docker.negotiate_version().await.map_err(|e| self.err(e))?;
        tracing::debug!(
            docker.target = %self.inner.target,
            docker.api_version = %docker.client_version(),
            "negotiated Docker API version"
        );
        Ok(docker.with_timeout(REQUEST_TIMEOUT))
    }

    /// Maps a bollard error, naming this client's target when unreachable.
    pub(crate) fn err(&self, err: bollard::errors::Error) -> DockerError {
        DockerError::from_bollard(&self.inner.target, err)
    }
}

/// Understands `unix:///path`, `/path`, `tcp://host[:port]` and `http://host[:port]`.
pub(crate) fn parse_host(host: &str) -> Result<Endpoint, DockerError> {
    let invalid = || DockerError::InvalidHost(host.to_owned());
    let host = host.trim();
    if let Some(path) = host.strip_prefix("unix://") {
        return unix_path(path).ok_or_else(invalid);
    }
    if host.starts_with('/') {
        return unix_path(host).ok_or_else(invalid);
    }
    let authority = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
        .ok_or_else(invalid)?;
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let (name, port) = if let Some(rest) = authority.strip_prefix('[') {
        // [v6 address]:port
        let (addr, after) = rest.split_once(']').ok_or_else(invalid)?;
        let name = format!("[{addr}]");
        match after {
            "" => (name, None),
            _ => (name, Some(after.strip_prefix(':').ok_or_else(invalid)?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) => (name.to_owned(), Some(port)),
            None => (authority.to_owned(), None),
        }
    };
    let name_ok = !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#'))
        && (name.starts_with('[') || !name.contains(':'));
    if !name_ok {
        return Err(invalid());
    }
    let port = match port {
        None => 2375,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(invalid()),
        },
    };
    Ok(Endpoint::Tcp(format!("{name}:{port}")))
}

fn unix_path(path: &str) -> Option<Endpoint> {
    let ok = path.starts_with('/') && path.len() > 1 && !path.contains('\0');
    ok.then(|| Endpoint::Unix(path.to_owned()))
}

/// Docker's `label` filter from `(key, value)` pairs; an empty value matches
/// any value of the key.
pub(crate) fn label_filters(labels: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let mut filters = HashMap::new();
    if !labels.is_empty() {
        let values = labels
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    (*k).to_owned()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        filters.insert("label".to_owned(), values);
    }
    filters
}

/// A stream fed by `produce` through a channel. `produce` may borrow its own
/// locals across awaits (bollard's build stream borrows the client), runs
/// only while the stream is polled, and is dropped with it.
pub(crate) fn channel_stream<T, F, Fut>(
    produce: F,
) -> impl Stream<Item = T> + Send + Unpin + 'static
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    let driver = produce(tx)
        .into_stream()
        .filter_map(|()| future::ready(None::<T>));
    let items = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Box::pin(stream::select(driver, items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_into_endpoints() {
        let unix = |p: &str| Endpoint::Unix(p.to_owned());
        let tcp = |a: &str| Endpoint::Tcp(a.to_owned());
        assert_eq!(
            parse_host("unix:///var/run/docker.sock").unwrap(),
            unix("/var/run/docker.sock")
        );
        assert_eq!(parse_host("/run/d.sock").unwrap(), unix("/run/d.sock"));
        assert_eq!(
            parse_host("tcp://10.0.0.2:2375").unwrap(),
            tcp("10.0.0.2:2375")
        );
        assert_eq!(parse_host("tcp://docker").unwrap(), tcp("docker:2375"));
        assert_eq!(parse_host("http://h:1/").unwrap(), tcp("h:1"));
        assert_eq!(parse_host("tcp://[::1]:2376").unwrap(), tcp("[::1]:2376"));
    }

    #[test]
    fn malformed_hosts_are_refused() {
        for host in [
            "",
            "unix://",
            "unix://relative.sock",
            "docker.sock",
            "ssh://user@host",
            "https://h:2376",
            "tcp://",
            "tcp://h:0",
            "tcp://h:port",
            "tcp://h:99999",
            "tcp://h/x",
            "tcp://a:b:c",
        ] {
            assert!(
                matches!(parse_host(host), Err(DockerError::InvalidHost(_))),
                "{host:?} should be invalid"
            );
        }
    }

    #[test]
    fn connect_names_its_target_without_contacting_the_engine() {
        let client = DockerClient::connect(Some("/nonexistent/berth.sock")).unwrap();
        assert_eq!(client.target(), "unix:///nonexistent/berth.sock");
        let client = DockerClient::connect(Some("tcp://127.0.0.1:1")).unwrap();
        assert_eq!(client.target(), "tcp://127.0.0.1:1");
        assert!(DockerClient::connect(Some("ftp://x")).is_err());
    }

    #[test]
    fn label_filters_match_key_and_value() {
        let f = label_filters(&[("berth.managed", "true"), ("berth.app", "")]);
        assert_eq!(f["label"], vec!["berth.managed=true", "berth.app"]);
        assert!(label_filters(&[]).is_empty());
    }
}
