//! One-shot job containers ("sidecars"): a dump or a restore run in a
//! container of the database's own image on its network, with its stdout
//! as a stream and its stdin as a sink. Docker has no call that kills an
//! exec; a container can be stopped and removed, so a cancelled or timed
//! out dump really ends.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::{DockerClient, DockerError};

/// Streams of a sidecar may run for hours: no request time-out on them
/// (the caller has its own).
const STREAM_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// How much of a sidecar's stderr is kept for the error message.
const STDERR_TAIL: usize = 4096;

/// What to run. Its `Debug` shows environment keys only: values are secrets.
#[derive(Clone, Default)]
pub struct SidecarSpec {
    /// The container's name (`berth-job-…`).
    pub name: String,
    /// The database's own image, so its client tools match the server.
    pub image: String,
    /// The network to join (the database's), so the database's name resolves.
    pub network: String,
    /// The program and its arguments (the image's entrypoint is replaced).
    pub argv: Vec<String>,
    /// `KEY=value` pairs; values may be passwords.
    pub env: Vec<String>,
    /// `berth.kind=job` and the owner's labels.
    pub labels: BTreeMap<String, String>,
    /// Keep stdin open and hand it to the caller (restores).
    pub stdin: bool,
}

impl fmt::Debug for SidecarSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self
            .env
            .iter()
            .map(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k))
            .collect();
        f.debug_struct("SidecarSpec")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("network", &self.network)
            .field("argv", &self.argv)
            .field("env_keys", &keys)
            .field("labels", &self.labels)
            .field("stdin", &self.stdin)
            .finish()
    }
}

/// A started sidecar: read `stdout`, write `stdin`, await `exit`, and
/// [`DockerClient::remove_sidecar`] it in every case.
pub struct Sidecar {
    /// The container's ID.
    pub id: String,
    /// What the command writes to stdout (stderr is kept apart, see [`Sidecar::stderr`]).
    pub stdout: Pin<Box<dyn AsyncRead + Send>>,
    /// The command's stdin, when the spec asked for it; shut it down to send end-of-file.
    pub stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    /// The exit code once the container stopped.
    pub exit: Pin<Box<dyn Future<Output = io::Result<i64>> + Send>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sidecar")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The last few KB of a sidecar's stderr, readable after (or while) it runs.
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    /// The tail as text, trimmed.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().expect("stderr poisoned");
        String::from_utf8_lossy(&bytes).trim().to_owned()
    }
}

impl Sidecar {
    /// A handle on the stderr tail that outlives the moved streams.
    pub fn stderr(&self) -> StderrTail {
        StderrTail(self.stderr.clone())
    }
}

impl DockerClient {
    /// Creates and starts a sidecar, attached before it starts so no byte
    /// of its output is lost. The image must be present.
    pub async fn run_sidecar(&self, spec: &SidecarSpec) -> Result<Sidecar, DockerError> {
        let docker = self.docker().await?.clone().with_timeout(STREAM_TIMEOUT);
        let (entry, args) = spec
            .argv
            .split_first()
            .ok_or_else(|| DockerError::Other("a sidecar needs a command".to_owned()))?;
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: Some(vec![entry.clone()]),
            cmd: Some(args.to_vec()),
            env: Some(spec.env.clone()),
            labels: Some(
                spec.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<HashMap<_, _>>(),
            ),
            open_stdin: Some(spec.stdin),
            stdin_once: Some(spec.stdin),
            attach_stdin: Some(spec.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                network_mode: (!spec.network.is_empty()).then(|| spec.network.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut options = CreateContainerOptionsBuilder::new();
        if !spec.name.is_empty() {
            options = options.name(&spec.name);
        }
        let id = docker
            .create_container(Some(options.build()), body)
            .await
            .map_err(|e| self.err(e))?
            .id;
        let started = async {
            let attach = AttachContainerOptionsBuilder::new()
                .stdin(spec.stdin)
                .stdout(true)
                .stderr(true)
                .stream(true)
                .build();
            let attached = docker
                .attach_container(&id, Some(attach))
                .await
                .map_err(|e| self.err(e))?;
            docker
                .start_container(&id, None)
                .await
                .map_err(|e| self.err(e))?;
            Ok::<_, DockerError>(attached)
        }
        .await;
        let attached = match started {
            Ok(a) => a,
            Err(e) => {
                let _ = self.remove_sidecar(&id).await;
                return Err(e);
            }
        };
        tracing::info!(container.name = %spec.name, container.id = %id, container.image = %spec.image, "started a job container");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let tail = stderr.clone();
        let stdout = attached.output.try_filter_map(move |chunk| {
            let tail = tail.clone();
            async move {
                Ok(match chunk {
                    LogOutput::StdOut { message } => Some(message),
                    LogOutput::StdErr { message } => {
                        let mut t = tail.lock().expect("stderr poisoned");
                        t.extend_from_slice(&message);
                        let excess = t.len().saturating_sub(STDERR_TAIL);
                        t.drain(..excess);
                        None
                    }
                    _ => None,
                })
            }
        });
        let reader = tokio_util::io::StreamReader::new(stdout.map_err(io::Error::other).boxed());
        let wait_docker = docker.clone();
        let wait_id = id.clone();
        let exit = Box::pin(async move {
            let options = WaitContainerOptionsBuilder::new()
                .condition("not-running")
                .build();
            match wait_docker
                .wait_container(&wait_id, Some(options))
                .next()
                .await
            {
                Some(Ok(r)) => Ok(r.status_code),
                // bollard reports a non-zero exit as this error.
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    Ok(code)
                }
                Some(Err(e)) => Err(io::Error::other(e)),
                None => Err(io::Error::other("the container's wait stream ended")),
            }
        });
        Ok(Sidecar {
            id,
            stdout: Box::pin(reader),
            stdin: spec.stdin.then_some(attached.input),
            exit,
            stderr,
        })
    }

    /// Kills and removes a sidecar (it keeps no volume of its own). Ok if
    /// it is already gone.
    pub async fn remove_sidecar(&self, id: &str) -> Result<(), DockerError> {
        self.remove_container(id).await
    }
}
