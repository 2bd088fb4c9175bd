//! The engine as a whole: version, counts, disk usage.

use std::io;
use std::time::Duration;

use bollard::query_parameters::DataUsageOptionsBuilder;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::client::Endpoint;
use crate::error::REASON_TIMEOUT;
use crate::{DockerClient, DockerError};

/// `system df` walks every container's files; give it time.
const DF_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest `system df` answer read (it lists every image and container).
const DF_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// How long to wait before asking again when the engine is busy with
/// another `system df`.
const DF_RETRY: Duration = Duration::from_millis(200);

/// What engines before API 1.42 answer while another `system df` runs
/// (newer ones share the running computation instead).
const DF_BUSY: &str = "disk usage operation is already running";

/// What the engine is and holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// Engine version, e.g. `20.10.24+dfsg1`.
    pub version: String,
    /// The engine's own (highest) API version, e.g. `1.41`.
    pub api_version: String,
    /// The host's operating system, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub os: String,
    /// Running containers.
    pub containers_running: u64,
    /// Stopped containers.
    pub containers_stopped: u64,
    /// Paused containers.
    pub containers_paused: u64,
    /// Images.
    pub images: u64,
    /// Disk usage, `None` when the engine could not compute it.
    pub disk: Option<DiskUsage>,
}

/// Disk space Docker uses, in bytes (as `docker system df` shows it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Image layers (each shared layer counted once).
    pub images_bytes: u64,
    /// Containers' writable layers.
    pub containers_bytes: u64,
    /// Local volumes.
    pub volumes_bytes: u64,
    /// Build cache (not shared with images).
    pub build_cache_bytes: u64,
}

impl DockerClient {
    /// Version, container and image counts, and disk usage (`None` if
    /// `system df` fails).
    pub async fn engine_info(&self) -> Result<EngineInfo, DockerError> {
        let docker = self.docker().await?;
        let (version, info) = tokio::try_join!(
            async { docker.version().await.map_err(|e| self.err(e)) },
            async { docker.info().await.map_err(|e| self.err(e)) },
        )?;
        let disk = match self.disk_usage().await {
            Ok(disk) => Some(disk),
            Err(e) => {
                tracing::warn!(error = %e, "could not read Docker disk usage");
                None
            }
        };
        let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        Ok(EngineInfo {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            os: info
                .operating_system
                .filter(|os| !os.is_empty())
                .or(version.os)
                .unwrap_or_default(),
            containers_running: count(info.containers_running),
            containers_stopped: count(info.containers_stopped),
            containers_paused: count(info.containers_paused),
            images: count(info.images),
            disk,
        })
    }

    /// Disk space used by images, containers, volumes and the build cache.
    pub async fn disk_usage(&self) -> Result<DiskUsage, DockerError> {
        let docker = self.docker().await?;
        let version = docker.client_version();
        // API 1.52 replaced the answer's shape; bollard only decodes the new one.
        if (version.major_version, version.minor_version) >= (1, 52) {
            let options = DataUsageOptionsBuilder::new().build();
            let df = docker
                .clone()
                .with_timeout(DF_TIMEOUT)
                .df(Some(options))
                .await
                .map_err(|e| self.err(e))?;
            let size = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            if df.image_usage.is_some() || df.container_usage.is_some() {
                return Ok(DiskUsage {
                    images_bytes: size(df.image_usage.and_then(|u| u.total_size)),
                    containers_bytes: size(df.container_usage.and_then(|u| u.total_size)),
                    volumes_bytes: size(df.volume_usage.and_then(|u| u.total_size)),
                    build_cache_bytes: size(df.build_cache_usage.and_then(|u| u.total_size)),
                });
            }
        }
        self.legacy_disk_usage(&version.to_string()).await
    }

    /// `GET /system/df` in the pre-1.52 shape, which bollard can no longer
    /// decode.
    async fn legacy_disk_usage(&self, api_version: &str) -> Result<DiskUsage, DockerError> {
        let body = self.raw_df(api_version, "").await?;
        let df: LegacyDf = serde_json::from_slice(&body)
            .map_err(|e| DockerError::Other(format!("cannot decode system df: {e}")))?;
        Ok(df.usage())
    }

    /// The body of `GET /v{api_version}/system/df?{query}`, asked for by hand
    /// in one plain HTTP/1.0 request on the engine's socket: bollard decodes
    /// only the 1.52 shape, and cannot send `type` (its query encoder refuses
    /// a list). While an older engine is busy with another `system df` (it
    /// refuses a second one), asks again until [`DF_TIMEOUT`].
    pub(crate) async fn raw_df(
        &self,
        api_version: &str,
        query: &str,
    ) -> Result<Vec<u8>, DockerError> {
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let request = format!(
            "GET /v{api_version}/system/df{query} HTTP/1.0\r\nHost: docker\r\nUser-Agent: berth\r\n\r\n"
        );
        let attempts = async {
            loop {
                match self.df_once(&request).await {
                    Err(DockerError::Daemon { message, .. }) if message.contains(DF_BUSY) => {
                        tokio::time::sleep(DF_RETRY).await;
                    }
                    answer => return answer,
                }
            }
        };
        tokio::time::timeout(DF_TIMEOUT, attempts)
            .await
            .map_err(|_| DockerError::Unreachable {
                target: self.target().to_owned(),
                reason: REASON_TIMEOUT.to_owned(),
            })?
    }

    async fn df_once(&self, request: &str) -> Result<Vec<u8>, DockerError> {
        let exchange = async {
            match self.endpoint() {
                Endpoint::Unix(path) => exchange(UnixStream::connect(path).await?, request).await,
                Endpoint::Tcp(addr) => {
                    exchange(TcpStream::connect(addr.as_str()).await?, request).await
                }
            }
        };
        let mut response = exchange
            .await
            .map_err(|e| DockerError::from_io(self.target(), &e))?;
        let (status, body) = split_response(&response)
            .ok_or_else(|| DockerError::Other("malformed answer to system df".to_owned()))?;
        if status != 200 {
            #[derive(Deserialize)]
            struct Message {
                message: String,
            }
            let message = serde_json::from_slice::<Message>(body)
                .map(|m| m.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
            return Err(DockerError::Daemon { status, message });
        }
        let body_at = response.len() - body.len();
        response.drain(..body_at);
        Ok(response)
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> io::Result<Vec<u8>> {
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.take(DF_MAX_BYTES).read_to_end(&mut response).await?;
    Ok(response)
}

/// Status code and body of an HTTP/1.0 response (never chunked).
fn split_response(response: &[u8]) -> Option<(u16, &[u8])> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..end]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, &response[end + 4..]))
}

/// The parts of the pre-1.52 `system df` answer berth sums up.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyDf {
    layers_size: Option<i64>,
    containers: Option<Vec<LegacyContainer>>,
    volumes: Option<Vec<LegacyVolume>>,
    build_cache: Option<Vec<LegacyBuildCache>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyContainer {
    size_rw: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyVolume {
    usage_data: Option<LegacyUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyUsage {
    /// -1 when unknown.
    size: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyBuildCache {
    size: Option<i64>,
    shared: Option<bool>,
}

impl LegacyDf {
    /// Sums the way `docker system df` does.
    fn usage(self) -> DiskUsage {
        let bytes = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        DiskUsage {
            images_bytes: bytes(self.layers_size),
            containers_bytes: self
                .containers
                .unwrap_or_default()
                .into_iter()
                .map(|c| bytes(c.size_rw))
                .sum(),
            volumes_bytes: self
                .volumes
                .unwrap_or_default()
                .into_iter()
                .map(|v| bytes(v.usage_data.and_then(|u| u.size)))
                .sum(),
            build_cache_bytes: self
                .build_cache
                .unwrap_or_default()
                .into_iter()
                .filter(|b| b.shared != Some(true))
                .map(|b| bytes(b.size))
                .sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_df_sums_like_the_docker_cli() {
        let body = br#"{"LayersSize":1000,"Images":[],
            "Containers":[{"SizeRw":10},{"SizeRw":5},{}],
            "Volumes":[{"UsageData":{"Size":7,"RefCount":1}},{"UsageData":{"Size":-1,"RefCount":0}}],
            "BuildCache":[{"Size":100,"Shared":false},{"Size":50,"Shared":true}],"BuilderSize":0}"#;
        let df: LegacyDf = serde_json::from_slice(body).unwrap();
        assert_eq!(
            df.usage(),
            DiskUsage {
                images_bytes: 1000,
                containers_bytes: 15,
                volumes_bytes: 7,
                build_cache_bytes: 100,
            }
        );
        let df: LegacyDf =
            serde_json::from_slice(br#"{"LayersSize":0,"BuildCache":null}"#).unwrap();
        assert_eq!(df.usage(), DiskUsage::default());
    }

    #[test]
    fn http_responses_split_into_status_and_body() {
        let response = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}";
        assert_eq!(split_response(response), Some((200, &b"{\"a\":1}"[..])));
        assert_eq!(split_response(b"garbage"), None);
    }
}
