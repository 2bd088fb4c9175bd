//! `berth serve`: open the store, connect to Docker, bind, print where to go, run until SIGTERM.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use berth_deploy::Runtime;
use berth_docker::DockerClient;
use berth_store::{Store, sessions, users};
use tokio::sync::watch;

use crate::cli::{BaseDomain, ServeArgs};

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"))
        // bollard logs request bodies (container env, so secrets) at debug: never let it.
        .add_directive("bollard=info".parse().expect("a valid directive"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub async fn serve(data_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    set_process_title();
    init_tracing();
    let store = Store::open(data_dir)
        .await
        .with_context(|| format!("cannot open the database in {}", data_dir.display()))?;
    let docker = DockerClient::connect(args.docker_host.as_deref())
        .context("invalid --docker-host / DOCKER_HOST")?;
    let runtime = Runtime::new(store.clone(), docker.clone()).await?;
    runtime
        .configure(berth_deploy::Options {
            volumes_root: args.volumes_root.clone(),
            static_root: args.static_root.clone(),
            git_file_root: args.git_file_root.clone(),
            templates_dir: args.templates_dir.clone(),
            publish_app_ports: args.publish_app_ports,
            object_labels: args.object_label.iter().cloned().collect(),
        })
        .context("invalid --volumes-root or --static-root")?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: pick another address with --listen or BERTH_LISTEN",
                args.listen
            )
        })?;
    let addr = listener.local_addr()?;

    // The edge: bound before anything is printed, so a taken port fails the start with its fix.
    let resolver = std::sync::Arc::new(berth_edge::tls::CertResolver::new());
    let http01 = std::sync::Arc::new(berth_edge::tls::Http01Challenges::new());
    // Each client connection needs a descriptor or two: raise the soft limit
    // to the hard one, and cap the edge's connections below it, so a flood
    // at the edge cannot leave the dashboard unable to accept.
    let open_files = berth_edge::raise_open_file_limit();
    let limits = berth_edge::Limits {
        trusted_proxies: args.trusted_proxies.clone(),
        ..berth_edge::Limits::default()
    }
    .fit_open_files(open_files);
    tracing::info!(
        open_files,
        edge.max_connections = limits.max_connections,
        edge.max_connections_per_client = limits.max_connections_per_client,
        "open-file limit"
    );
    let edge = berth_edge::Edge::new(resolver.clone(), http01.clone(), limits);
    let certs = berth_edge::acme::CertManager::new(
        store.clone(),
        acme_config(data_dir, &args),
        resolver,
        http01,
    );
    let loaded = certs
        .load()
        .await
        .context("cannot load the stored certificates")?;
    tracing::info!(certificates = loaded, "certificates loaded");
    let edge_listeners = berth_edge::Listeners::bind(
        args.http_listen,
        args.https_listen,
        "--http-listen or BERTH_HTTP_LISTEN",
        "--https-listen or BERTH_HTTPS_LISTEN",
    )
    .await?;
    let (edge_http, edge_https) = (edge_listeners.http_addr(), edge_listeners.https_addr());
    edge.set_ports(edge_http.port(), edge_https.port());
    // The dashboard's domain routes to its own listener; 0.0.0.0 is reached through loopback.
    let dashboard_upstream = if addr.ip().is_unspecified() {
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
    } else {
        addr
    };
    edge.set_dashboard(dashboard_upstream);
    let base_domain = match &args.base_domain {
        BaseDomain::Domain(domain) => domain.clone(),
        BaseDomain::Auto => {
            let domain = crate::public_addr::auto_base_domain()?;
            tracing::info!(base_domain = %domain, "base domain from this server's public address (DNS by sslip.io)");
            domain
        }
    };
    runtime.check_network_reach().await;
    runtime
        .attach_edge(edge.clone(), base_domain.clone(), dashboard_upstream)
        .await
        .context("cannot build the edge's routes")?;
    runtime.resume_stacks().await;
    // The flag wins over what the settings page saved: the certificate task
    // picks the domain up on its first pass.
    if let Some(domain) = &args.dashboard_domain {
        runtime
            .services()
            .domains
            .set_dashboard_domain(Some(domain))
            .await
            .context("cannot set the dashboard domain")?;
        // A restart after fixing DNS tries at once instead of waiting out the backoff.
        if let Some(cert) =
            berth_store::certificates::find_by_domain(&store, domain.as_str()).await?
            && cert.serial.is_none()
        {
            berth_store::certificates::make_due(&store, cert.id).await?;
        }
    }
    if args.dashboard_domain.is_some() && !addr.ip().is_loopback() {
        tracing::warn!(listen = %addr, "the dashboard's own listener is not on loopback and answers plain HTTP there; keep --listen on 127.0.0.1 when the dashboard has a domain");
    }
    let public_url = args
        .dashboard_domain
        .as_ref()
        .map(|domain| match edge_https.port() {
            443 => format!("https://{domain}/"),
            port => format!("https://{domain}:{port}/"),
        });

    let setup_token = if users::count(&store).await? == 0 {
        Some(new_setup_token())
    } else {
        None
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "berth {} is running", env!("CARGO_PKG_VERSION"))?;
        if let Some(token) = &setup_token {
            writeln!(
                out,
                "Open the dashboard and enter this token to create the admin account."
            )?;
            writeln!(out, "setup token: {token}")?;
        }
        if let Some(url) = &public_url {
            writeln!(
                out,
                "open: {url} (served once its certificate is issued; this terminal says when)"
            )?;
        }
        writeln!(out, "base domain: {base_domain}")?;
        writeln!(out, "edge http: http://{edge_http}")?;
        writeln!(out, "edge https: https://{edge_https}")?;
        // Last, so scripts can read up to this line and know they have everything.
        writeln!(out, "dashboard: http://{addr}")?;
        out.flush()?;
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let edge_server = tokio::spawn(berth_edge::serve(
        edge.clone(),
        edge_listeners,
        stopped(stop_rx.clone()),
    ));
    // Obtains certificates for domains with ACME and renews them ahead of expiry.
    let cert_task = tokio::spawn({
        let certs = certs.clone();
        let store = store.clone();
        let stop = stopped(stop_rx.clone());
        async move {
            let domains = move || {
                let store = store.clone();
                async move {
                    berth_store::certificates::acme_hosts(&store)
                        .await
                        .unwrap_or_else(|err| {
                            tracing::warn!(error = %err, "cannot list the domains that want certificates");
                            Vec::new()
                        })
                }
            };
            certs.run(domains, stop).await
        }
    });
    if let (Some(domain), Some(url)) = (args.dashboard_domain.clone(), public_url.clone()) {
        tokio::spawn(report_dashboard_certificate(
            certs.clone(),
            store.clone(),
            domain,
            url,
            addr,
            stopped(stop_rx.clone()),
        ));
    }
    let watcher = tokio::spawn({
        let runtime = runtime.clone();
        let stop = stopped(stop_rx.clone());
        async move { runtime.watch_docker(stop).await }
    });
    let janitor = tokio::spawn({
        let store = store.clone();
        let stop = stopped(stop_rx.clone());
        async move {
            tokio::pin!(stop);
            loop {
                if let Err(err) = sessions::delete_expired(&store).await {
                    tracing::warn!(error = %err, "could not delete expired sessions");
                }
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
                }
            }
        }
    });

    // Collects the server's and the containers' figures into the history.
    let monitor = berth_monitor::Monitor::new(
        docker,
        store.clone(),
        berth_monitor::MonitorConfig {
            interval: std::time::Duration::from_secs(args.metrics_interval),
            ..berth_monitor::MonitorConfig::default()
        },
    );
    let collector = tokio::spawn({
        let monitor = monitor.clone();
        let stop = stopped(stop_rx.clone());
        async move { monitor.run(stop).await }
    });

    // Backups and restores: jobs interrupted by the last stop are cleaned up
    // first, then the runner and the backup scheduler start.
    let jobs_stop = tokio_util::sync::CancellationToken::new();
    runtime
        .start_jobs(jobs_stop.clone())
        .await
        .context("cannot start the job runner")?;
    tokio::spawn({
        let jobs_stop = jobs_stop.clone();
        let stop = stopped(stop_rx.clone());
        async move {
            stop.await;
            jobs_stop.cancel();
        }
    });

    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    let state = berth_web::AppState::new(runtime.services(), setup_token)
        .with_certificates(certs)
        .with_edge_secret(edge.dashboard_secret())
        .with_monitor(monitor);
    tracing::info!(listen = %addr, "dashboard listening");
    berth_web::serve(listener, state, stopped(stop_rx))
        .await
        .context("the dashboard server failed")?;
    let _ = watcher.await;
    let _ = edge_server.await;
    let _ = cert_task.await;
    let _ = janitor.await;
    let _ = collector.await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Tells the terminal (and the journal) how the dashboard's certificate is
/// doing: each failed attempt with the CA's own words and when the next one
/// comes, then the URL once it is issued. The certificate task does the work
/// and the retrying (with backoff); this only watches its record.
async fn report_dashboard_certificate(
    certs: std::sync::Arc<berth_edge::acme::CertManager>,
    store: Store,
    domain: berth_core::DomainName,
    url: String,
    local: std::net::SocketAddr,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut reported_failures = 0;
    loop {
        let cert = berth_store::certificates::find_by_domain(&store, domain.as_str())
            .await
            .ok()
            .flatten();
        if let Some(cert) = cert {
            if cert.serial.is_some() && cert.failures == 0 {
                println!("certificate for {domain} issued: open {url}");
                tracing::info!(dashboard.domain = %domain, "the dashboard is served over HTTPS");
                return;
            }
            if cert.failures > reported_failures {
                reported_failures = cert.failures;
                let ca = certs
                    .settings()
                    .await
                    .map(|s| s.directory_url)
                    .unwrap_or_default();
                let error = cert.last_error.as_deref().unwrap_or("unknown error");
                let hint = if error.starts_with("cannot reach the CA") {
                    "Check that this server can open HTTPS connections to the CA."
                } else {
                    "Check that the domain's DNS points at this server and that ports 80 and 443 are open."
                };
                let retry = cert
                    .next_attempt_at
                    .map(|at| ((at - berth_store::now()).max(0) + 59) / 60)
                    .map_or_else(String::new, |m| format!(" berth tries again in {m} min."));
                println!(
                    "no certificate for {domain} yet from {ca}: {error}. {hint}{retry} \
                     Until then the dashboard is only on http://{local} (e.g. through \
                     `ssh -L {port}:{local} <server>`); it is never served over plain HTTP on \
                     the public ports.",
                    port = local.port(),
                );
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

fn acme_config(data_dir: &Path, args: &ServeArgs) -> berth_edge::acme::AcmeConfig {
    let mut config = berth_edge::acme::AcmeConfig::new(data_dir);
    config.default_directory = args.acme_directory.clone();
    config.ca_bundle = args.acme_ca_bundle.clone();
    config.renew_before = std::time::Duration::from_secs(args.acme_renew_before_days * 24 * 3600);
    config.check_interval = std::time::Duration::from_secs(args.acme_check_interval_secs.max(1));
    config
}

/// The one-time token that claims a fresh install.
fn new_setup_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `ps`, `top` and `btop` show the process as `berth`, whatever the binary was called.
fn set_process_title() {
    const TITLE: &[u8] = b"berth\0";
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes
    // from the pointer; TITLE is static, NUL-terminated and 6 bytes long.
    #[expect(
        unsafe_code,
        reason = "prctl is the only way to set the thread/process name"
    )]
    unsafe {
        libc::prctl(libc::PR_SET_NAME, TITLE.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}
