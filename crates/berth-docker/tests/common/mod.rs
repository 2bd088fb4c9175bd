//! Helpers for tests against the real Docker engine: a per-test label and a
//! guard that removes what the test created, the test image, plain HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_docker::{BuildSpec, DockerClient, MountKind};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The image the tests run: busybox httpd serving /www on port 8080.
pub const WEB_IMAGE: &str = "berth-test/web:latest";

/// The marker `berth-test/web` serves (docker/test-images/web/index.html).
pub const WEB_MARKER: &str = "berth-test-marker: served-by-busybox-httpd";

/// One test's view of the engine. Everything it creates carries
/// `berth.managed=true` and `berth.test=<id>`; dropping it removes all of that,
/// even when the test panicked: containers, networks, volumes, and the
/// anonymous volumes of its containers (which carry no labels, and which
/// removing a container keeps).
pub struct TestEnv {
    pub docker: DockerClient,
    pub id: String,
}

impl TestEnv {
    pub fn new() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let id = format!(
            "docker-{}-{}-{nanos:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        TestEnv {
            docker: DockerClient::connect(None).expect("DOCKER_HOST is valid"),
            id,
        }
    }

    /// `berth.managed=true` and `berth.test=<id>`.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("berth.managed".to_owned(), "true".to_owned()),
            ("berth.test".to_owned(), self.id.clone()),
        ])
    }

    /// The filter that finds this test's objects.
    pub fn filter(&self) -> [(&str, &str); 1] {
        [("berth.test", self.id.as_str())]
    }

    /// A name for a Docker object, unique to this test.
    pub fn name(&self, what: &str) -> String {
        format!("berth-test-{}-{what}", self.id)
    }

    pub async fn assert_nothing_left(&self) {
        let containers = self.docker.list_containers(&self.filter()).await.unwrap();
        assert!(containers.is_empty(), "containers left: {containers:?}");
        let networks = self.docker.list_networks(&self.filter()).await.unwrap();
        assert!(networks.is_empty(), "networks left: {networks:?}");
        let volumes = self.docker.list_volumes(&self.filter()).await.unwrap();
        assert!(volumes.is_empty(), "volumes left: {volumes:?}");
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime: clean up from a
        // thread with its own runtime and client.
        let id = self.id.clone();
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let docker = DockerClient::connect(None)?;
                let filter = [("berth.test", id.as_str())];
                let mut anonymous = BTreeSet::new();
                for c in docker.list_containers(&filter).await? {
                    anonymous.extend(
                        c.mounts
                            .into_iter()
                            .filter(|m| m.kind == MountKind::Volume)
                            .filter_map(|m| m.name)
                            .filter(|name| is_anonymous_volume(name)),
                    );
                    docker.remove_container(&c.id).await?;
                }
                for n in docker.list_networks(&filter).await? {
                    docker.remove_network(&n.name).await?;
                }
                for v in docker.list_volumes(&filter).await? {
                    docker.remove_volume(&v.name).await?;
                }
                for name in anonymous {
                    docker.remove_volume(&name).await?;
                }
                Ok::<_, berth_docker::DockerError>(())
            })
        })
        .join();
        match cleaned {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cleanup of berth.test={} failed: {e}", self.id),
            Err(_) => eprintln!("cleanup of berth.test={} panicked", self.id),
        }
    }
}

/// Docker names an anonymous volume with 64 hex digits.
pub fn is_anonymous_volume(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Makes sure `berth-test/web:latest` exists, building it like
/// `docker/test-images/build web` would when it is missing.
pub async fn ensure_web_image(docker: &DockerClient) {
    if !docker.image_exists(WEB_IMAGE).await.unwrap() {
        build_web_image(docker, WEB_IMAGE, BTreeMap::new()).await;
    }
}

/// Builds the web test image as `tag`, with extra labels, from `/bin/busybox`
/// through the build API; returns the build output.
pub async fn build_web_image(
    docker: &DockerClient,
    tag: &str,
    labels: BTreeMap<String, String>,
) -> Vec<String> {
    let busybox = std::fs::read("/bin/busybox").expect(
        "berth-test/web is missing and /bin/busybox is not there (apt-get install busybox-static)",
    );
    let dockerfile = b"FROM scratch\n\
        COPY busybox /busybox\n\
        COPY index.html /www/index.html\n\
        LABEL berth.test-image=true\n\
        EXPOSE 8080\n\
        CMD [\"/busybox\", \"httpd\", \"-f\", \"-v\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";
    let index = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>berth-test-web</title></head>\n\
         <body>\n<h1>berth-test-web</h1>\n<p id=\"marker\">{WEB_MARKER}</p>\n</body>\n</html>\n"
    );
    let context = tar(&[
        ("Dockerfile", 0o644, dockerfile),
        ("busybox", 0o755, &busybox),
        ("index.html", 0o644, index.as_bytes()),
    ]);
    let spec = BuildSpec {
        tag: tag.to_owned(),
        labels,
        ..Default::default()
    };
    let mut output = docker.build_image(&spec, context);
    let mut lines = Vec::new();
    while let Some(line) = output.next().await {
        lines.push(line.expect("building the web test image").line);
    }
    lines
}

/// A tar archive (ustar) of regular files.
pub fn tar(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, mode, data) in files {
        assert!(name.len() < 100, "tar name too long: {name}");
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        let mut octal = |at: usize, width: usize, value: u64| {
            let text = format!("{value:0w$o}\0", w = width - 1);
            header[at..at + width].copy_from_slice(text.as_bytes());
        };
        octal(100, 8, u64::from(*mode));
        octal(108, 8, 0);
        octal(116, 8, 0);
        octal(124, 12, data.len() as u64);
        octal(136, 12, 0);
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// `GET path` over plain HTTP/1.0 on 127.0.0.1:port: status and body.
pub async fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP response: {response:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head:?}")))?;
    Ok((status, body.to_owned()))
}

/// Polls `check` until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
