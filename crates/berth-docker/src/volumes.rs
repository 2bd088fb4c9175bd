//! Volumes: where data outlives containers. Named and labelled, created once,
//! listed by label, measured, and removed only when asked to (DESIGN.md:
//! never implicitly). Data moves between volumes through the containers
//! that mount them ([`DockerClient::copy_path`]).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bollard::body_try_stream;
use bollard::models::{Volume, VolumeCreateRequest};
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::client::label_filters;
use crate::containers::{container_ref, is_docker_name};
use crate::{ContainerInfo, DockerClient, DockerError, MountKind};

/// A copy moves a whole volume and the upload's answer comes only once all
/// of it is written, so the usual request timeout would cut large copies
/// short; this bound only keeps a wedged engine from holding one forever.
const COPY_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// A Docker volume as berth sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    /// The volume's name (64 hex digits for an anonymous volume).
    pub name: String,
    /// The volume's labels (`berth.kind`, `berth.resource`, `berth.service`…);
    /// none for an anonymous volume.
    pub labels: BTreeMap<String, String>,
    /// Where the data is on the host, e.g. `/var/lib/docker/volumes/<name>/_data`.
    pub mountpoint: String,
    /// RFC 3339 creation time, when the engine knows it.
    pub created_at: Option<String>,
}

impl From<Volume> for VolumeInfo {
    fn from(v: Volume) -> Self {
        VolumeInfo {
            name: v.name,
            labels: v.labels.into_iter().collect(),
            mountpoint: v.mountpoint,
            created_at: v.created_at.filter(|t| !t.is_empty()),
        }
    }
}

/// How much a volume holds and how many containers use it, from Docker's
/// disk-usage report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VolumeUsage {
    /// Bytes used; `None` when the engine cannot tell (drivers other than
    /// `local`).
    pub size_bytes: Option<u64>,
    /// Containers (running or not) that mount the volume; 0 when the engine
    /// cannot tell.
    pub containers: u64,
}

impl DockerClient {
    /// Creates the local volume `name` with `labels` unless it exists; the
    /// volume, and whether it was created by this call. An existing volume is
    /// returned as it is, labels included, so a caller that seeds a new
    /// volume with data (moving it out of an anonymous one) does so once.
    ///
    /// Docker's create answers with the existing volume when the name is
    /// taken, so this looks first, holding a per-client lock between the look
    /// and the create. A name outside `[a-zA-Z0-9][a-zA-Z0-9_.-]*` is refused
    /// (`Other`) before it reaches a URL.
    pub async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(VolumeInfo, bool), DockerError> {
        if !is_docker_name(name) {
            return Err(DockerError::Other(format!(
                "invalid volume name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* is allowed"
            )));
        }
        let _guard = self.volume_lock().lock().await;
        if let Some(volume) = self.inspect_volume(name).await? {
            return Ok((volume, false));
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            driver: Some("local".to_owned()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let docker = self.docker().await?;
        let volume = docker
            .create_volume(request)
            .await
            .map_err(|e| self.err(e))?;
        tracing::info!(volume.name = name, "created volume");
        Ok((VolumeInfo::from(volume), true))
    }

    /// The volume called `name`, or `None` when there is none.
    pub async fn inspect_volume(&self, name: &str) -> Result<Option<VolumeInfo>, DockerError> {
        if !is_docker_name(name) {
            return Ok(None);
        }
        let docker = self.docker().await?;
        match docker.inspect_volume(name).await.map_err(|e| self.err(e)) {
            Ok(volume) => Ok(Some(VolumeInfo::from(volume))),
            Err(DockerError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Volumes carrying all the given labels (an empty value matches any
    /// value of that key), by name; every volume when `labels` is empty.
    pub async fn list_volumes(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<VolumeInfo>, DockerError> {
        let docker = self.docker().await?;
        let options = ListVolumesOptionsBuilder::new()
            .filters(&label_filters(labels))
            .build();
        let response = docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| self.err(e))?;
        for warning in response.warnings.iter().flatten() {
            tracing::warn!("Docker: {warning}");
        }
        let mut volumes: Vec<VolumeInfo> = response
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(VolumeInfo::from)
            .collect();
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(volumes)
    }

    /// Removes the volume and its data, for an explicit, confirmed delete.
    /// Ok if it is already gone. A volume still mounted by a container (even
    /// a stopped one) is `Conflict` with Docker's message and stays: this
    /// never forces.
    pub async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        if !is_docker_name(name) {
            return Ok(());
        }
        let docker = self.docker().await?;
        let options = RemoveVolumeOptionsBuilder::new().force(false).build();
        match docker
            .remove_volume(name, Some(options))
            .await
            .map_err(|e| self.err(e))
        {
            Ok(()) => {
                tracing::info!(volume.name = name, "removed volume");
                Ok(())
            }
            Err(DockerError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Size and number of users of every volume, by name, from Docker's
    /// disk-usage report (`system df`, volumes only where the engine can
    /// leave the rest out). Walking the volumes takes time on a full disk:
    /// call it for a page, not in a loop.
    pub async fn volume_usage(&self) -> Result<HashMap<String, VolumeUsage>, DockerError> {
        let docker = self.docker().await?;
        let api_version = docker.client_version().to_string();
        // `type` (API 1.42+) skips images and containers; `verbose` (1.52+)
        // lists each volume. Older engines ignore both.
        let body = self.raw_df(&api_version, "type=volume&verbose=1").await?;
        let df: VolumeDf = serde_json::from_slice(&body)
            .map_err(|e| DockerError::Other(format!("cannot decode system df: {e}")))?;
        Ok(df.usage())
    }

    /// Every container, running or not, that mounts the volume `name`, newest
    /// first: what holds a volume that cannot be removed.
    pub async fn containers_using_volume(
        &self,
        name: &str,
    ) -> Result<Vec<ContainerInfo>, DockerError> {
        if !is_docker_name(name) {
            return Ok(Vec::new());
        }
        let filters = HashMap::from([("volume".to_owned(), vec![name.to_owned()])]);
        let mut containers = self.query_containers(filters).await?;
        // Docker's filter also matches a mount's destination or source path.
        containers.retain(|c| {
            c.mounts
                .iter()
                .any(|m| m.kind == MountKind::Volume && m.name.as_deref() == Some(name))
        });
        Ok(containers)
    }

    /// Copies the directory `path` (absolute, not `/`) of `from_container`
    /// to the same path in `to_container`; the number of bytes moved (the
    /// tar stream: file data plus headers).
    ///
    /// This is how data moves from one volume to another: the archive of
    /// `path` is read from the first container (which may be stopped; the
    /// volumes mounted there are read too) and unpacked into the parent of
    /// `path` in the second (created, not necessarily started), so it lands
    /// in whatever is mounted at `path` there. The archive streams from one
    /// request into the other and is never held in memory. Stop the first
    /// container for a consistent copy. A copy that fails half-way leaves
    /// what was written: copy into a fresh volume.
    pub async fn copy_path(
        &self,
        from_container: &str,
        path: &str,
        to_container: &str,
    ) -> Result<u64, DockerError> {
        container_ref(from_container)?;
        container_ref(to_container)?;
        let (path, parent) = split_directory(path)?;
        let docker = self.docker().await?;
        let copied = Arc::new(AtomicU64::new(0));
        // The download's own error (e.g. "Could not find the file") says
        // more than the aborted upload's.
        let download_error = Arc::new(OnceLock::<DockerError>::new());
        let archive = docker
            .download_from_container(
                from_container,
                Some(
                    DownloadFromContainerOptionsBuilder::new()
                        .path(path)
                        .build(),
                ),
            )
            .map({
                let client = self.clone();
                let copied = Arc::clone(&copied);
                let download_error = Arc::clone(&download_error);
                move |chunk| match chunk {
                    Ok(bytes) => {
                        copied.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        Ok(bytes)
                    }
                    Err(e) => {
                        let e = client.err(e);
                        let message = e.to_string();
                        let _ = download_error.set(e);
                        Err(io::Error::other(message))
                    }
                }
            });
        let options = UploadToContainerOptionsBuilder::new().path(parent).build();
        let uploaded = docker
            .clone()
            .with_timeout(COPY_TIMEOUT)
            .upload_to_container(to_container, Some(options), body_try_stream(archive))
            .await
            .map_err(|e| self.err(e));
        if let Some(e) = download_error.get() {
            return Err(e.clone());
        }
        uploaded?;
        let copied = copied.load(Ordering::Relaxed);
        tracing::info!(
            container.from = from_container,
            container.to = to_container,
            copy.path = path,
            copy.bytes = copied,
            "copied directory between containers"
        );
        Ok(copied)
    }
}

/// `path` without a trailing slash, and its parent directory. Refuses
/// relative paths, `/` itself, and `.`, `..` or empty components (the
/// parent would not be where the data lands).
fn split_directory(path: &str) -> Result<(&str, &str), DockerError> {
    let invalid = || {
        DockerError::Other(format!(
            "cannot copy {path:?}: give an absolute directory path other than /"
        ))
    };
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let relative = trimmed.strip_prefix('/').ok_or_else(invalid)?;
    if relative
        .split('/')
        .any(|part| matches!(part, "" | "." | ".."))
    {
        return Err(invalid());
    }
    let parent = match trimmed.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &trimmed[..i],
    };
    Ok((trimmed, parent))
}

/// The volume part of a `system df` answer, in either shape: `Volumes`
/// before API 1.52, `VolumeUsage.Items` (with `verbose`) from 1.52 on.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VolumeDf {
    volumes: Option<Vec<DfVolume>>,
    volume_usage: Option<DfVolumeUsage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DfVolumeUsage {
    items: Option<Vec<DfVolume>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DfVolume {
    name: String,
    usage_data: Option<DfUsageData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DfUsageData {
    /// -1 when unknown.
    size: Option<i64>,
    /// -1 when unknown.
    ref_count: Option<i64>,
}

impl VolumeDf {
    fn usage(self) -> HashMap<String, VolumeUsage> {
        let known = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
        self.volumes
            .into_iter()
            .flatten()
            .chain(
                self.volume_usage
                    .and_then(|u| u.items)
                    .into_iter()
                    .flatten(),
            )
            .map(|v| {
                let usage = v
                    .usage_data
                    .map_or_else(VolumeUsage::default, |u| VolumeUsage {
                        size_bytes: known(u.size),
                        containers: known(u.ref_count).unwrap_or(0),
                    });
                (v.name, usage)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_directories_land_in_their_parent() {
        assert_eq!(split_directory("/data").unwrap(), ("/data", "/"));
        assert_eq!(split_directory("/data/").unwrap(), ("/data", "/"));
        assert_eq!(
            split_directory("/var/lib/postgresql/data").unwrap(),
            ("/var/lib/postgresql/data", "/var/lib/postgresql")
        );
        for bad in [
            "", "/", "//", "data", "./data", "/a//b", "/a/./b", "/a/..", "/..",
        ] {
            assert!(split_directory(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn volume_usage_reads_both_shapes_of_system_df() {
        let legacy = br#"{"LayersSize":0,"Images":null,"Containers":null,"BuildCache":null,
            "Volumes":[
                {"Name":"berth-db","Driver":"local","Labels":{"berth.kind":"database"},
                 "UsageData":{"Size":4096,"RefCount":1}},
                {"Name":"remote","Driver":"nfs","UsageData":{"Size":-1,"RefCount":-1}},
                {"Name":"bare"}
            ]}"#;
        let usage = serde_json::from_slice::<VolumeDf>(legacy).unwrap().usage();
        assert_eq!(
            usage["berth-db"],
            VolumeUsage {
                size_bytes: Some(4096),
                containers: 1
            }
        );
        assert_eq!(usage["remote"], VolumeUsage::default());
        assert_eq!(usage["bare"], VolumeUsage::default());

        let current = br#"{"VolumeUsage":{"ActiveCount":1,"TotalCount":1,"Reclaimable":0,
            "TotalSize":10,"Items":[{"Name":"v","UsageData":{"Size":10,"RefCount":2}}]}}"#;
        let usage = serde_json::from_slice::<VolumeDf>(current).unwrap().usage();
        assert_eq!(
            usage,
            HashMap::from([(
                "v".to_owned(),
                VolumeUsage {
                    size_bytes: Some(10),
                    containers: 2
                }
            )])
        );
        let empty = serde_json::from_slice::<VolumeDf>(br#"{"VolumeUsage":{}}"#).unwrap();
        assert!(empty.usage().is_empty());
    }
}
