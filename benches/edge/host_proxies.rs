//! The proxies berth is measured against, run on the host with a config of
//! their own in a temp dir: Debian's nginx and HAProxy, each in front of one
//! upstream on plain HTTP and HTTPS (127.0.0.1, free ports), stopped on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Whether `program` can be run (`program -v` starts).
pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The bench's self-signed certificate for `localhost`, as files.
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Certificate then key in one file, as HAProxy's `crt` wants them.
    pub combined: PathBuf,
}

impl CertFiles {
    pub fn write(dir: &Path, cert_pem: &str, key_pem: &str) -> anyhow::Result<CertFiles> {
        let files = CertFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            combined: dir.join("cert-and-key.pem"),
        };
        std::fs::write(&files.cert, cert_pem)?;
        std::fs::write(&files.key, key_pem)?;
        std::fs::write(&files.combined, format!("{cert_pem}{key_pem}"))?;
        Ok(files)
    }
}

/// A proxy process on the host, listening on `http_port` and `https_port`.
pub struct HostProxy {
    pub name: &'static str,
    pub child: Child,
    pub http_port: u16,
    pub https_port: u16,
    /// The signal that stops it gracefully.
    stop_signal: &'static str,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl HostProxy {
    /// nginx with two workers, keep-alive to the upstream, access log off,
    /// setting the same forwarded headers berth does.
    pub fn nginx(dir: &Path, upstream: SocketAddr, tls: &CertFiles) -> anyhow::Result<HostProxy> {
        let (http_port, https_port) = (free_port()?, free_port()?);
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("logs"))?;
        let config = format!(
            r#"daemon off;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream app {{ server {upstream}; keepalive 128; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl http2;
        server_name localhost 127.0.0.1;
        keepalive_requests 1000000;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }}
    }}
}}
"#,
            prefix = prefix.display(),
            cert = tls.cert.display(),
            key = tls.key.display(),
        );
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, config)?;
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .args(["-e", "stderr"])
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start nginx")?;
        HostProxy {
            name: "nginx",
            child,
            http_port,
            https_port,
            stop_signal: "-QUIT",
        }
        .listening()
    }

    /// HAProxy with two threads, keep-alive to the upstream (connections
    /// reused across clients), setting the same forwarded headers berth does.
    pub fn haproxy(dir: &Path, upstream: SocketAddr, tls: &CertFiles) -> anyhow::Result<HostProxy> {
        let (http_port, https_port) = (free_port()?, free_port()?);
        let config = format!(
            r#"global
    nbthread 2
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend bench
    bind 127.0.0.1:{http_port}
    bind 127.0.0.1:{https_port} ssl crt {combined}
    option forwardfor
    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
    http-request set-header X-Forwarded-Proto http if !{{ ssl_fc }}
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend app
backend app
    server app {upstream}
"#,
            combined = tls.combined.display(),
        );
        let conf = dir.join("haproxy.cfg");
        std::fs::write(&conf, config)?;
        // -db: in the foreground, one process (its two threads), no daemon.
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&conf)
            .args(["-db", "-q"])
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start haproxy")?;
        HostProxy {
            name: "HAProxy",
            child,
            http_port,
            https_port,
            stop_signal: "-USR1",
        }
        .listening()
    }

    /// Waits until the proxy accepts connections on both ports.
    fn listening(mut self) -> anyhow::Result<HostProxy> {
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [self.http_port, self.https_port] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    bail!("{} exited at start ({status})", self.name);
                }
                if Instant::now() > deadline {
                    bail!("{} did not start listening within 10 s", self.name);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(self)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for HostProxy {
    fn drop(&mut self) {
        // nginx: SIGQUIT, HAProxy: SIGUSR1 is the graceful stop; nginx's
        // master takes its workers with it.
        let _ = Command::new("kill")
            .args([self.stop_signal, &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
