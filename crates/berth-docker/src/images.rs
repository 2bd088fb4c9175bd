//! Images: is it here, pull it with progress, build it from a tar context, remove it.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{BuildInfo, CreateImageInfo};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, RemoveImageOptionsBuilder,
};
use bollard::{body_full, body_try_stream};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::client::channel_stream;
use crate::{DockerClient, DockerError};

/// One progress message of a pull, as the daemon sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    /// Layer ID (or tag) the message is about, if any.
    pub id: Option<String>,
    /// E.g. `Downloading`, `Pull complete`, `Status: Downloaded newer image for …`.
    pub status: String,
    /// Bytes done, for download/extract progress.
    pub current: Option<u64>,
    /// Bytes in all, when known.
    pub total: Option<u64>,
}

/// What to build, for [`DockerClient::build_image`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildSpec {
    /// Tag for the result, e.g. `berth/app:3`.
    pub tag: String,
    /// Path of the Dockerfile inside the context; empty means `Dockerfile`.
    pub dockerfile: String,
    /// Labels added to the image.
    pub labels: BTreeMap<String, String>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// The stage of a multi-stage Dockerfile to build (`None`: the last).
    pub target: Option<String>,
}

/// The build context: a tar archive, whole in memory or read as it is sent
/// (so a large repository never sits in berth's memory).
pub struct BuildContext(ContextBody);

enum ContextBody {
    Whole(Vec<u8>),
    Streamed(std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>),
}

impl BuildContext {
    /// A context read chunk by chunk while it is sent to the daemon; an
    /// error ends the upload, and with it the build.
    pub fn streamed(
        chunks: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> BuildContext {
        BuildContext(ContextBody::Streamed(Box::pin(chunks)))
    }
}

impl From<Vec<u8>> for BuildContext {
    fn from(tar: Vec<u8>) -> BuildContext {
        BuildContext(ContextBody::Whole(tar))
    }
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            ContextBody::Whole(tar) => write!(f, "BuildContext({} bytes)", tar.len()),
            ContextBody::Streamed(_) => f.write_str("BuildContext(streamed)"),
        }
    }
}

/// One line of build output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildProgress {
    /// The line, without its newline.
    pub line: String,
}

/// A local image as berth needs it for deploys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:…`: what rollbacks and cleanup go by.
    pub id: String,
    /// `repo@sha256:…` for pulled images; empty for local builds.
    pub repo_digests: Vec<String>,
    /// Whether the image declares a HEALTHCHECK (other than `NONE`).
    pub has_healthcheck: bool,
    /// The paths the image declares with `VOLUME`, sorted: where a container
    /// of it keeps data in an anonymous volume unless berth mounts a named
    /// one there.
    pub volumes: Vec<String>,
    /// The TCP ports the image declares with `EXPOSE`, sorted.
    pub exposed_ports: Vec<u16>,
}

impl DockerClient {
    /// The local image (reference or ID), or `None` when it is not here.
    pub async fn image_info(&self, image: &str) -> Result<Option<ImageInfo>, DockerError> {
        if image.is_empty() {
            return Ok(None);
        }
        let docker = self.docker().await?;
        match docker.inspect_image(image).await.map_err(|e| self.err(e)) {
            Ok(i) => {
                let config = i.config.unwrap_or_default();
                let has_healthcheck = config
                    .healthcheck
                    .and_then(|h| h.test)
                    .is_some_and(|t| t.first().is_some_and(|first| first != "NONE"));
                let mut volumes = config.volumes.unwrap_or_default();
                volumes.sort();
                let mut exposed_ports: Vec<u16> = config
                    .exposed_ports
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|p| p.strip_suffix("/tcp")?.parse().ok())
                    .collect();
                exposed_ports.sort_unstable();
                Ok(Some(ImageInfo {
                    id: i.id.unwrap_or_default(),
                    repo_digests: i.repo_digests.unwrap_or_default(),
                    has_healthcheck,
                    volumes,
                    exposed_ports,
                }))
            }
            Err(DockerError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the image (a reference or an ID) is present locally.
    pub async fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        if image.is_empty() {
            return Ok(false);
        }
        let docker = self.docker().await?;
        match docker.inspect_image(image).await.map_err(|e| self.err(e)) {
            Ok(_) => Ok(true),
            Err(DockerError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Pulls an image, streaming the daemon's progress. A reference without a
    /// tag or digest pulls `:latest` (never every tag). When the pull fails
    /// the stream ends with `Err(DockerError::Daemon { .. })` carrying the
    /// daemon's message (or `Unreachable` when the engine itself is gone).
    pub fn pull_image(
        &self,
        image: &str,
    ) -> impl Stream<Item = Result<PullProgress, DockerError>> + Send + Unpin + 'static {
        let client = self.clone();
        let image = image.to_owned();
        channel_stream(move |tx| async move {
            let docker = match client.docker().await {
                Ok(docker) => docker,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let (from_image, tag) = split_reference(&image);
            let mut options = CreateImageOptionsBuilder::new().from_image(from_image);
            if let Some(tag) = tag {
                options = options.tag(tag);
            }
            tracing::info!(image.ref = %image, "pulling image");
            let mut messages = docker.create_image(Some(options.build()), None, None);
            while let Some(message) = messages.next().await {
                let item = message.map(pull_progress).map_err(|e| client.err(e));
                let failed = item.is_err();
                if let Err(e) = &item {
                    tracing::warn!(image.ref = %image, error = %e, "pull failed");
                }
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        })
    }

    /// Builds an image from a tar archive of the build context with the
    /// classic builder, streaming its output. When the build fails the
    /// stream ends with `Err(DockerError::Daemon { .. })` carrying the
    /// daemon's message. Images named in `FROM` must already be present.
    pub fn build_image(
        &self,
        spec: &BuildSpec,
        context: impl Into<BuildContext>,
    ) -> impl Stream<Item = Result<BuildProgress, DockerError>> + Send + Unpin + 'static {
        let client = self.clone();
        let spec = spec.clone();
        let context = context.into();
        channel_stream(move |tx| async move {
            let docker = match client.docker().await {
                Ok(docker) => docker,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let dockerfile = if spec.dockerfile.is_empty() {
                "Dockerfile"
            } else {
                &spec.dockerfile
            };
            let labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
            let build_args: HashMap<String, String> = spec.build_args.clone().into_iter().collect();
            let mut options = BuildImageOptionsBuilder::new()
                .dockerfile(dockerfile)
                .t(&spec.tag)
                .rm(true)
                .forcerm(true)
                .labels(&labels)
                .buildargs(&build_args);
            if let Some(target) = &spec.target {
                options = options.target(target);
            }
            let options = options.build();
            tracing::info!(image.ref = %spec.tag, "building image");
            let body = match context.0 {
                ContextBody::Whole(tar) => body_full(Bytes::from(tar)),
                ContextBody::Streamed(chunks) => body_try_stream(chunks),
            };
            let mut messages = docker.build_image(options, None, Some(body));
            while let Some(message) = messages.next().await {
                let items = match message {
                    Ok(info) => build_lines(info),
                    Err(e) => vec![Err(client.err(e))],
                };
                for item in items {
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
            }
        })
    }

    /// Removes an image by reference or ID (untagging it first if it has
    /// several tags). Ok if it is not there; `Conflict` while a container
    /// uses it. Untagged parent layers are kept: another build running at
    /// the same time may be using them as its cache, and pruning them under
    /// it fails that build ("unknown parent image ID").
    pub async fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        let docker = self.docker().await?;
        let options = RemoveImageOptionsBuilder::new().noprune(true).build();
        match docker
            .remove_image(image, Some(options), None)
            .await
            .map_err(|e| self.err(e))
        {
            Ok(_) | Err(DockerError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Splits `repo[:tag]` for the pull API; a digest reference is passed whole,
/// and a missing tag means `latest`.
fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) => (&image[..name_start + i], Some(&image[name_start + i + 1..])),
        None => (image, Some("latest")),
    }
}

fn pull_progress(info: CreateImageInfo) -> PullProgress {
    let detail = info.progress_detail.unwrap_or_default();
    PullProgress {
        id: info.id,
        status: info.status.unwrap_or_default(),
        current: detail.current.and_then(|n| u64::try_from(n).ok()),
        total: detail
            .total
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| *n > 0),
    }
}

fn build_lines(info: BuildInfo) -> Vec<Result<BuildProgress, DockerError>> {
    if let Some(detail) = info.error_detail {
        let message = detail.message.unwrap_or_default();
        return vec![Err(DockerError::Daemon {
            status: 500,
            message,
        })];
    }
    let text = match (info.stream, info.status) {
        (Some(stream), _) => stream,
        (None, Some(status)) => match info.id {
            Some(id) => format!("{id}: {status}"),
            None => status,
        },
        (None, None) => return Vec::new(),
    };
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(BuildProgress { line: l.to_owned() }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(split_reference("nginx"), ("nginx", Some("latest")));
        assert_eq!(split_reference("postgres:16"), ("postgres", Some("16")));
        assert_eq!(
            split_reference("127.0.0.1:1/berth-test/nope:1"),
            ("127.0.0.1:1/berth-test/nope", Some("1"))
        );
        assert_eq!(
            split_reference("registry:5000/app"),
            ("registry:5000/app", Some("latest"))
        );
        assert_eq!(
            split_reference("app@sha256:abcd"),
            ("app@sha256:abcd", None)
        );
    }
}
