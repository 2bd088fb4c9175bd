//! Is a freshly started container ready to take over the route? An HTTP path
//! answering the expected status, else the image's HEALTHCHECK, else "still
//! running after N seconds" (and its port accepting connections).

use std::time::Duration;

use berth_core::HealthCheck;
use berth_docker::{ContainerState, DockerClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long an image's own HEALTHCHECK may take at least: Docker's default
/// interval is 30 s, so the configured retries alone would cut it short.
const IMAGE_HEALTHCHECK_MIN: Duration = Duration::from_secs(180);

/// How often an HTTP check is tried while the edge holds the app's requests
/// (a recreate): a try that just missed the app's start then costs the held
/// requests this much, not a whole interval.
const HELD_TRY_EVERY: Duration = Duration::from_millis(50);

/// Waits until the container passes its check; the error says why it did not.
/// `held`: the app's requests wait at the edge meanwhile.
pub(crate) async fn wait_healthy(
    docker: &DockerClient,
    container_id: &str,
    target: Option<std::net::SocketAddr>,
    check: &HealthCheck,
    image_has_healthcheck: bool,
    held: bool,
    log: &mut (dyn FnMut(String) + Send),
) -> Result<(), String> {
    let interval = Duration::from_millis(u64::from(check.interval_ms.max(50)));
    let timeout = Duration::from_millis(u64::from(check.timeout_ms.max(100)));
    let retries = check.retries.max(1);
    if let Some(path) = &check.path {
        // Held: more tries, as often as HELD_TRY_EVERY, within the same
        // time (`retries` intervals).
        let (pause, tries) = match held {
            true if interval > HELD_TRY_EVERY => {
                let per_interval = interval.as_millis() / HELD_TRY_EVERY.as_millis();
                let per_interval = u32::try_from(per_interval).unwrap_or(u32::MAX);
                (HELD_TRY_EVERY, retries.saturating_mul(per_interval))
            }
            _ => (interval, retries),
        };
        let Some(target) = target else {
            return Err("the app's container has no address to check".to_owned());
        };
        log(format!(
            "health check: GET {path} expecting {}, every {} ms, up to {tries} tries",
            check.expected_status,
            pause.as_millis()
        ));
        let mut last = String::new();
        for attempt in 1..=tries {
            still_running(docker, container_id).await?;
            match tokio::time::timeout(timeout, http_status(target, path)).await {
                Ok(Ok(status)) if status == check.expected_status => {
                    log(format!("health check passed: {status} (try {attempt})"));
                    return Ok(());
                }
                Ok(Ok(status)) => last = format!("answered {status}"),
                Ok(Err(err)) => last = err,
                Err(_) => last = format!("no answer within {} ms", check.timeout_ms),
            }
            tokio::time::sleep(pause).await;
        }
        return Err(format!(
            "health check GET {path} failed {tries} times (last: {last})"
        ));
    }
    if image_has_healthcheck {
        log("health check: the image's HEALTHCHECK".to_owned());
        let budget = (interval * retries).max(IMAGE_HEALTHCHECK_MIN);
        let deadline = tokio::time::Instant::now() + budget;
        loop {
            let info = still_running(docker, container_id).await?;
            match info.as_deref() {
                Some("healthy") => {
                    log("health check passed: healthy".to_owned());
                    return Ok(());
                }
                Some("unhealthy") => {
                    return Err("the image's HEALTHCHECK says unhealthy".to_owned());
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the image's HEALTHCHECK did not pass within {} s",
                    budget.as_secs()
                ));
            }
            tokio::time::sleep(interval.min(Duration::from_millis(500))).await;
        }
    }
    log(format!(
        "health check: still running after {} s",
        check.start_secs
    ));
    // The definition of this check is a period of time, polled so an early exit fails at once.
    let until = tokio::time::Instant::now() + Duration::from_secs(u64::from(check.start_secs));
    loop {
        still_running(docker, container_id).await?;
        if tokio::time::Instant::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(target) = target {
        let mut last = String::new();
        for _ in 0..retries {
            match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
                Ok(Ok(_)) => {
                    log(format!(
                        "health check passed: running, {target} accepts connections"
                    ));
                    return Ok(());
                }
                Ok(Err(err)) => last = err.to_string(),
                Err(_) => last = "connect timed out".to_owned(),
            }
            still_running(docker, container_id).await?;
            tokio::time::sleep(interval).await;
        }
        return Err(format!(
            "the app's port never accepted a connection ({last})"
        ));
    }
    log("health check passed: running".to_owned());
    Ok(())
}

/// Fails when the container is no longer running; returns its HEALTHCHECK state.
async fn still_running(docker: &DockerClient, id: &str) -> Result<Option<String>, String> {
    match docker.inspect_container(id).await {
        Ok(Some(info)) if info.state == ContainerState::Running => Ok(info.health),
        Ok(Some(info)) => Err(match info.exit_code {
            Some(code) => format!("the new container exited with code {code}"),
            None => format!("the new container is {}", info.state),
        }),
        Ok(None) => Err("the new container was removed".to_owned()),
        Err(err) => Err(err.to_string()),
    }
}

/// One plain HTTP/1.1 GET on loopback; the status code of the answer.
async fn http_status(target: std::net::SocketAddr, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect(target)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: berth-health-check\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 4096 {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("cannot read: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    parse_status_line(&buf).ok_or_else(|| "the answer is not HTTP".to_owned())
}

fn parse_status_line(buf: &[u8]) -> Option<u16> {
    let line = buf.split(|b| *b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_give_their_code() {
        assert_eq!(parse_status_line(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status_line(b"HTTP/1.0 500 Oops\r\nX: y"), Some(500));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
    }
}
