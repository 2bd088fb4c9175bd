//! Real database containers for the engine tests: a labelled network per
//! test, the database from a `docker/test-images` image, and dumps and
//! restores run as berth runs them: in a sidecar container from the
//! database's own image (on its network, or with its volumes), its stdout
//! streamed through the pipeline or a restore streamed into its stdin.
//!
//! Docker is driven with bollard here, in the tests only; the production
//! sidecar belongs in berth-docker.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_backup::{
    ArtifactKey, BackupReport, Checksum, DecryptionKey, Destination, DumpSource, ExecCommand,
    FileIntoVolume, PipelineOptions, RestoreError, RestoreReport, Target, restore,
    run_backup_cancellable,
};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptions,
    StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio_util::io::StreamReader;
use tokio_util::sync::CancellationToken;

/// One test's Docker objects: a network and the containers on it, all
/// labelled `berth.test=<label>` and removed (with their anonymous volumes)
/// on drop, pass or fail.
pub struct DockerTest {
    pub docker: Docker,
    /// The value of the `berth.test` label on everything this test creates.
    pub label: String,
    pub network: String,
    /// `berth-test-<kind>-<random>`: the prefix of every name.
    prefix: String,
    containers: Mutex<Vec<String>>,
}

/// What `docker exec` gave back.
#[derive(Debug)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// How a sidecar is attached to the database besides its image.
#[derive(Debug, Default, Clone, Copy)]
pub struct SidecarOptions<'a> {
    /// On the test's network (dumps and stdin restores reach the server by name).
    pub network: bool,
    /// The volumes of this container (a restore into a stopped server's volume).
    pub volumes_from: Option<&'a str>,
    /// Run as this user of the image instead of its default.
    pub user: Option<&'a str>,
}

impl SidecarOptions<'_> {
    pub fn on_network() -> Self {
        Self {
            network: true,
            ..Default::default()
        }
    }
}

impl DockerTest {
    /// Connects to Docker, checks that the images exist and makes the network.
    pub async fn new(kind: &str, images: &[&str]) -> Self {
        let docker = Docker::connect_with_local_defaults().expect("Docker");
        for image in images {
            assert!(
                docker.inspect_image(image).await.is_ok(),
                "{image} is missing: run docker/test-images/build"
            );
        }
        let prefix = format!("berth-test-{kind}-{:08x}", rand::random::<u32>());
        let test = Self {
            docker,
            label: prefix.clone(),
            network: prefix.clone(),
            prefix,
            containers: Mutex::new(Vec::new()),
        };
        test.docker
            .create_network(NetworkCreateRequest {
                name: test.network.clone(),
                driver: Some("bridge".into()),
                labels: Some(test.labels()),
                ..Default::default()
            })
            .await
            .unwrap();
        test
    }

    pub fn name(&self, part: &str) -> String {
        format!("{}-{part}", self.prefix)
    }

    fn labels(&self) -> HashMap<String, String> {
        HashMap::from([("berth.test".to_owned(), self.label.clone())])
    }

    async fn create(&self, part: &str, body: ContainerCreateBody) -> String {
        let options = CreateContainerOptionsBuilder::new()
            .name(&self.name(part))
            .build();
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .unwrap()
            .id;
        self.containers.lock().unwrap().push(id.clone());
        id
    }

    /// Starts a long-running container (the database) on the network, with
    /// the image's entrypoint; `cmd` replaces the image's command.
    /// Returns its name, which is also its host name on the network.
    pub async fn start_database(
        &self,
        part: &str,
        image: &str,
        env: Vec<String>,
        cmd: Option<Vec<String>>,
    ) -> String {
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            env: Some(env),
            cmd,
            labels: Some(self.labels()),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.create(part, body).await;
        let name = self.name(part);
        self.docker.start_container(&name, None).await.unwrap();
        name
    }

    /// `docker exec` of a fixed command (as the image's default user: root).
    pub async fn exec(&self, container: &str, cmd: &[&str], env: &[String]) -> ExecOutput {
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
            env: Some(env.to_vec()),
            ..Default::default()
        };
        let id = self.docker.create_exec(container, config).await.unwrap().id;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&id, None).await.unwrap()
        {
            while let Some(Ok(chunk)) = output.next().await {
                match chunk {
                    LogOutput::StdOut { message } => stdout.extend_from_slice(&message),
                    LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    _ => {}
                }
            }
        }
        let code = self
            .docker
            .inspect_exec(&id)
            .await
            .unwrap()
            .exit_code
            .unwrap_or(-1);
        ExecOutput {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// [`DockerTest::exec`] that must exit 0; its stdout, trimmed.
    pub async fn exec_ok(&self, container: &str, cmd: &[&str], env: &[String]) -> String {
        let out = self.exec(container, cmd, env).await;
        assert_eq!(out.code, 0, "{cmd:?} in {container}: {out:?}");
        out.stdout.trim().to_owned()
    }

    /// Polls `cmd` in `container` until it exits 0 (a readiness check).
    pub async fn wait_until_ok(&self, container: &str, cmd: &[&str], env: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = self.exec(container, cmd, env).await;
            if out.code == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{container} did not get ready: {cmd:?} still gives {out:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn stop(&self, container: &str) {
        let options = StopContainerOptionsBuilder::new().t(30).build();
        self.docker
            .stop_container(container, Some(options))
            .await
            .unwrap();
    }

    pub async fn start(&self, container: &str) {
        self.docker.start_container(container, None).await.unwrap();
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub async fn kill(&self, container: &str) {
        self.docker
            .kill_container(container, None::<KillContainerOptions>)
            .await
            .unwrap();
    }

    /// A one-shot container from `image` running `cmd` (its argv[0] as the
    /// entrypoint, so the image's own entrypoint script is not involved).
    pub async fn sidecar(
        &self,
        part: &str,
        image: &str,
        cmd: &ExecCommand,
        stdin: bool,
        options: SidecarOptions<'_>,
    ) -> String {
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint: Some(vec![cmd.argv[0].clone()]),
            cmd: Some(cmd.argv[1..].to_vec()),
            env: Some(cmd.env_strings()),
            user: options.user.map(str::to_owned),
            labels: Some(self.labels()),
            open_stdin: Some(stdin),
            stdin_once: Some(stdin),
            attach_stdin: Some(stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some(if options.network {
                    self.network.clone()
                } else {
                    "none".to_owned()
                }),
                volumes_from: options.volumes_from.map(|c| vec![c.to_owned()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.create(part, body).await
    }

    /// The exit code of a container once it is not running.
    pub async fn exit_code(&self, id: &str) -> std::io::Result<i64> {
        exit_code(&self.docker, id).await
    }

    /// Runs `cmd` (a dump) in a sidecar on the network and streams its
    /// stdout through the pipeline to `targets`; its stderr is printed.
    pub async fn backup(
        &self,
        part: &str,
        image: &str,
        cmd: &ExecCommand,
        options: &PipelineOptions,
        targets: &[Target],
    ) -> BackupReport {
        self.backup_watching(part, image, cmd, options, targets, None)
            .await
    }

    /// [`DockerTest::backup`] that also watches the database container, as
    /// berth's backup runner must: a dump whose server was killed can wait
    /// forever on its connection (SIGKILL sends the dump no FIN when the
    /// container's network goes with it), so when `database` stops the run
    /// is cancelled (every destination aborts) and the sidecar removed.
    pub async fn backup_watching(
        &self,
        part: &str,
        image: &str,
        cmd: &ExecCommand,
        options: &PipelineOptions,
        targets: &[Target],
        database: Option<&str>,
    ) -> BackupReport {
        let id = self
            .sidecar(part, image, cmd, false, SidecarOptions::on_network())
            .await;
        let attach = AttachContainerOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        let attached = self
            .docker
            .attach_container(&id, Some(attach))
            .await
            .unwrap();
        self.docker.start_container(&id, None).await.unwrap();
        let tag = part.to_owned();
        let stdout = attached.output.try_filter_map(move |chunk| {
            let tag = tag.clone();
            async move {
                Ok(match chunk {
                    LogOutput::StdOut { message } => Some(message),
                    LogOutput::StdErr { message } => {
                        eprintln!("{tag}: {}", String::from_utf8_lossy(&message).trim_end());
                        None
                    }
                    _ => None,
                })
            }
        });
        let reader = StreamReader::new(
            stdout
                .map_err(std::io::Error::other)
                .map_ok(Bytes::from)
                .boxed(),
        );
        let source = DumpSource {
            reader,
            exit: exit_code(&self.docker, &id),
            marker: cmd.marker.expect("a dump command has a marker"),
        };
        let cancel = CancellationToken::new();
        let watcher = database.map(|database| {
            let docker = self.docker.clone();
            let database = database.to_owned();
            let cancel = cancel.clone();
            let sidecar = id.clone();
            tokio::spawn(async move {
                let _ = exit_code(&docker, &database).await;
                cancel.cancel();
                let _ = docker
                    .kill_container(&sidecar, None::<KillContainerOptions>)
                    .await;
            })
        });
        let report = run_backup_cancellable(source, options, targets, cancel).await;
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        report
    }

    /// Streams the artifact at `destination`/`key` into the stdin of `cmd`
    /// run in a sidecar; returns what the restore reported and the
    /// sidecar's exit code.
    #[expect(
        clippy::too_many_arguments,
        reason = "a test helper, each argument named at the call"
    )]
    pub async fn restore(
        &self,
        part: &str,
        image: &str,
        cmd: &ExecCommand,
        options: SidecarOptions<'_>,
        destination: &Destination,
        key: &ArtifactKey,
        sha256: Option<Checksum>,
        decryption: Option<DecryptionKey>,
    ) -> (Result<RestoreReport, RestoreError>, i64) {
        let id = self.sidecar(part, image, cmd, true, options).await;
        let attach = AttachContainerOptionsBuilder::new()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        let attached = self
            .docker
            .attach_container(&id, Some(attach))
            .await
            .unwrap();
        self.docker.start_container(&id, None).await.unwrap();
        let tag = part.to_owned();
        let log = tokio::spawn(attached.output.for_each(move |chunk| {
            let tag = tag.clone();
            async move {
                if let Ok(chunk) = chunk {
                    eprintln!(
                        "{tag}: {}",
                        String::from_utf8_lossy(&chunk.into_bytes()).trim_end()
                    );
                }
            }
        }));
        let result = restore(destination, key, sha256, decryption, attached.input)
            .await
            .map(|(_input, report)| report);
        // A failed restore may leave stdin open; the sidecar then never ends.
        if result.is_err() {
            let _ = self
                .docker
                .kill_container(&id, None::<KillContainerOptions>)
                .await;
        }
        let code = tokio::time::timeout(Duration::from_secs(300), exit_code(&self.docker, &id))
            .await
            .expect("the restore sidecar ends")
            .unwrap();
        let _ = log.await;
        (result, code)
    }

    /// A [`FileIntoVolume`] restore into the volume of `database`, step by
    /// step as its docs say: stop, write, commit (or discard), start.
    #[expect(
        clippy::too_many_arguments,
        reason = "a test helper, each argument named at the call"
    )]
    pub async fn restore_file_into_volume(
        &self,
        part: &str,
        database: &str,
        image: &str,
        method: &FileIntoVolume,
        destination: &Destination,
        key: &ArtifactKey,
        sha256: Option<Checksum>,
        decryption: Option<DecryptionKey>,
    ) -> Result<RestoreReport, String> {
        self.stop(database).await;
        let options = SidecarOptions {
            network: false,
            volumes_from: Some(database),
            user: Some(&method.user),
        };
        let (result, code) = self
            .restore(
                &format!("{part}-write"),
                image,
                &method.write,
                options,
                destination,
                key,
                sha256,
                decryption,
            )
            .await;
        let (step, outcome) = match (&result, code) {
            (Ok(_), 0) => ("commit", Ok(())),
            (Ok(_), code) => ("discard", Err(format!("the write exited with {code}"))),
            (Err(e), _) => ("discard", Err(e.to_string())),
        };
        let cmd = if step == "commit" {
            &method.commit
        } else {
            &method.discard
        };
        let id = self
            .sidecar(&format!("{part}-{step}"), image, cmd, false, options)
            .await;
        self.start(&id).await;
        let step_code = self.exit_code(&id).await.unwrap();
        assert_eq!(step_code, 0, "the {step} step failed");
        self.start(database).await;
        outcome.and(result.map_err(|e| e.to_string()))
    }
}

async fn exit_code(docker: &Docker, id: &str) -> std::io::Result<i64> {
    let options = WaitContainerOptionsBuilder::new()
        .condition("not-running")
        .build();
    match docker.wait_container(id, Some(options)).next().await {
        Some(Ok(r)) => Ok(r.status_code),
        // bollard reports a non-zero exit as this error.
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(std::io::Error::other(e)),
        None => Err(std::io::Error::other("wait stream ended")),
    }
}

impl Drop for DockerTest {
    fn drop(&mut self) {
        // Sidecars first: the database's anonymous volumes go with the
        // database once no sidecar (volumes_from) holds them any more.
        for c in self.containers.lock().unwrap().iter().rev() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", "-v", c])
                .output();
        }
        let _ = std::process::Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
    }
}
