//! Stacks from a git repository: the compose file is read from a clone,
//! and services with `build:` are built from the clone's tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_compose::Plan;
use berth_docker::BuildSpec;
use futures_util::StreamExt;

use super::install::Names;
use crate::{DeployError, Runtime};

/// A clone under `<data dir>/builds`, removed when dropped (the dir is
/// cleared at start too, should berth stop in between).
struct Clone {
    dir: PathBuf,
    commit: String,
}

impl Drop for Clone {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn failed(message: String) -> DeployError {
    DeployError::Invalid {
        field: "git",
        message,
    }
}

impl Runtime {
    async fn clone_for_stack(&self, url: &str, branch: &str) -> Result<Clone, DeployError> {
        let transport = self.git_transport(url)?;
        let dir = self
            .data_dir()
            .join("builds")
            .join(format!("stack-{}", hex::encode(rand::random::<[u8; 8]>())));
        let mut clone = Clone {
            dir,
            commit: String::new(),
        };
        clone.commit = crate::git::clone(url, &transport, branch, &clone.dir, None)
            .await
            .map_err(|e| failed(format!("cannot clone {url}: {e}")))?;
        Ok(clone)
    }

    /// The compose file at `path` in the repository's `branch`.
    pub(super) async fn read_git_file(
        &self,
        url: &str,
        branch: &str,
        path: &str,
    ) -> Result<String, DeployError> {
        let clone = self.clone_for_stack(url, branch).await?;
        let file = inside(&clone.dir, path)?;
        std::fs::read_to_string(&file)
            .map_err(|e| failed(format!("cannot read {path} in {url} ({branch}): {e}")))
    }

    /// Builds the images of the services with `build:` from a fresh clone;
    /// returns each one's tag (`berth/<project>-<stack>-<service>:<commit>`).
    pub(super) async fn build_stack_images(
        &self,
        names: &Names<'_>,
        plan: &Plan,
        url: &str,
        branch: &str,
        compose_path: &str,
    ) -> Result<BTreeMap<String, String>, DeployError> {
        let mut tags = BTreeMap::new();
        if plan.services.iter().all(|s| s.build.is_none()) {
            return Ok(tags);
        }
        let clone = self.clone_for_stack(url, branch).await?;
        // Contexts are relative to the compose file's directory.
        let base = Path::new(compose_path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for service in &plan.services {
            let Some(build) = &service.build else {
                continue;
            };
            let context = base.join(&build.context);
            let context = context.to_string_lossy();
            inside(&clone.dir, &context)?;
            let tar = crate::git::context_tar(&clone.dir, &context)
                .await
                .map_err(|e| failed(format!("service {}: {e}", service.name)))?;
            let tag = format!(
                "berth/{}-{}-{}:{}",
                names.project,
                names.stack,
                service.name.to_ascii_lowercase(),
                &clone.commit[..clone.commit.len().min(12)]
            );
            let spec = BuildSpec {
                tag: tag.clone(),
                dockerfile: build.dockerfile.clone().unwrap_or_default(),
                labels: names.labels(self),
                build_args: build.args.clone(),
                target: build.target.clone(),
            };
            let mut output = self.docker().build_image(&spec, tar);
            let mut last = String::new();
            while let Some(item) = output.next().await {
                match item {
                    Ok(progress) => last = progress.line,
                    Err(e) => {
                        return Err(failed(format!(
                            "building service {} failed: {e} (last output: {last})",
                            service.name
                        )));
                    }
                }
            }
            tags.insert(service.name.clone(), tag);
        }
        Ok(tags)
    }
}

/// A path inside the clone; `..` and absolute paths are refused.
fn inside(root: &Path, path: &str) -> Result<PathBuf, DeployError> {
    let rel = Path::new(path.trim_start_matches("./"));
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(failed(format!(
            "{path:?} must be a path inside the repository"
        )));
    }
    Ok(root.join(rel))
}
