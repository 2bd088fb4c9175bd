//! Running a short command inside a running container (a password change,
//! a check), to its end. Argument arrays only: nothing goes through a shell
//! unless the caller's argv names one. Secrets travel in the exec's
//! environment, never in its argv.

use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;

use crate::{DockerClient, DockerError};

/// How much of a command's output is kept (its end, where errors are).
const KEEP_OUTPUT: usize = 16 * 1024;

/// What a command run with [`DockerClient::exec`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit code (`-1` when Docker did not say).
    pub exit_code: i64,
    /// The last 16 KiB of stdout and stderr, interleaved.
    pub output: String,
}

impl DockerClient {
    /// Runs `argv` in the running container `id` with `env` added to its
    /// environment, waits for it to end and returns its exit code and the
    /// end of its output. Values of `env` are never logged.
    pub async fn exec(
        &self,
        id: &str,
        argv: &[String],
        env: &[(String, String)],
    ) -> Result<ExecOutput, DockerError> {
        let docker = self.docker().await?;
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(argv.to_vec()),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            ..Default::default()
        };
        let exec = docker
            .create_exec(id, options)
            .await
            .map_err(|e| self.err(e))?;
        let mut output = Vec::new();
        if let StartExecResults::Attached {
            output: mut out, ..
        } = docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| self.err(e))?
        {
            while let Some(chunk) = out.next().await {
                output.extend_from_slice(&chunk.map_err(|e| self.err(e))?.into_bytes());
                if output.len() > 2 * KEEP_OUTPUT {
                    output.drain(..output.len() - KEEP_OUTPUT);
                }
            }
        }
        let inspect = docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| self.err(e))?;
        if output.len() > KEEP_OUTPUT {
            output.drain(..output.len() - KEEP_OUTPUT);
        }
        Ok(ExecOutput {
            exit_code: inspect.exit_code.unwrap_or(-1),
            output: String::from_utf8_lossy(&output).into_owned(),
        })
    }
}
