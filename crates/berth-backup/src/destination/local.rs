use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ArtifactKey, DestinationResult, Piece, Tally, next_piece, stopped};
use crate::error::DestinationError;

/// A directory on berth's host (default `<data dir>/backups`).
#[derive(Debug, Clone)]
pub struct LocalDir {
    label: String,
    root: PathBuf,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> DestinationError + '_ {
    move |source| DestinationError::Local {
        path: path.display().to_string(),
        source,
    }
}

impl LocalDir {
    pub fn new(label: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        Self {
            label: label.into(),
            root: root.into(),
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path_of(&self, key: &ArtifactKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    /// Written as a hidden temp file in the final directory (so the rename
    /// is atomic, on one file system), fsynced, renamed, and the directory
    /// fsynced so the rename survives a power cut. Removed on any failure.
    pub(crate) async fn write(
        &self,
        key: &ArtifactKey,
        mut rx: mpsc::Receiver<Piece>,
        cancel: CancellationToken,
    ) -> DestinationResult {
        let final_path = self.path_of(key);
        let dir = final_path.parent().unwrap_or(&self.root).to_path_buf();
        let name = final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dir.join(format!(".{name}.partial-{:016x}", rand::random::<u64>()));
        let mut tally = Tally::new();
        let outcome = async {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(io_err(&dir))?;
            let mut file = tokio::fs::File::create(&temp)
                .await
                .map_err(io_err(&temp))?;
            while let Some(piece) = next_piece(&mut rx, &cancel).await {
                match piece {
                    Piece::Data(bytes) => {
                        file.write_all(&bytes).await.map_err(io_err(&temp))?;
                        tally.add(&bytes);
                    }
                    Piece::Commit(expected) => {
                        let sum = tally.check(&expected)?;
                        file.flush().await.map_err(io_err(&temp))?;
                        file.sync_all().await.map_err(io_err(&temp))?;
                        drop(file);
                        tokio::fs::rename(&temp, &final_path)
                            .await
                            .map_err(io_err(&final_path))?;
                        let d = tokio::fs::File::open(&dir).await.map_err(io_err(&dir))?;
                        d.sync_all().await.map_err(io_err(&dir))?;
                        return Ok(sum);
                    }
                }
            }
            Err(stopped(&cancel))
        }
        .await;
        if outcome.is_err() {
            // Best effort: the file may never have been created.
            let _ = tokio::fs::remove_file(&temp).await;
        }
        tally.result(&self.label, final_path.display().to_string(), outcome)
    }

    /// Removes the temp files of writes that never finished: berth killed
    /// mid-backup leaves its `.<name>.partial-<random>` behind. Call at start,
    /// before any backup runs. Returns how many were removed.
    pub async fn remove_stale_partials(&self) -> Result<usize, DestinationError> {
        let mut removed = 0;
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&dir)(e)),
            };
            while let Some(entry) = entries.next_entry().await.map_err(io_err(&dir))? {
                let path = entry.path();
                let kind = entry.file_type().await.map_err(io_err(&path))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if kind.is_dir() {
                    dirs.push(path);
                } else if kind.is_file() && name.starts_with('.') && name.contains(".partial-") {
                    tokio::fs::remove_file(&path).await.map_err(io_err(&path))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    pub(crate) async fn open(
        &self,
        key: &ArtifactKey,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>, DestinationError> {
        let path = self.path_of(key);
        let file = tokio::fs::File::open(&path).await.map_err(io_err(&path))?;
        Ok(Box::new(file))
    }

    pub(crate) async fn delete(&self, key: &ArtifactKey) -> Result<(), DestinationError> {
        let path = self.path_of(key);
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }
}
