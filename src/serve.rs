//! `berth serve`: open the store, connect to Docker, bind, print where to go, run until SIGTERM.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use berth_deploy::Engine;
use berth_docker::DockerClient;
use berth_store::{Store, sessions, users};
use tokio::sync::watch;

use crate::cli::ServeArgs;

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
    let engine = Engine::new(store.clone(), docker).await?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: pick another address with --listen or BERTH_LISTEN",
                args.listen
            )
        })?;
    let addr = listener.local_addr()?;

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
        // Last, so scripts can read up to this line and know they have everything.
        writeln!(out, "dashboard: http://{addr}")?;
        out.flush()?;
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let watcher = tokio::spawn({
        let engine = engine.clone();
        let stop = stopped(stop_rx.clone());
        async move { engine.watch_docker(stop).await }
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

    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    let state = berth_web::AppState::new(engine, setup_token);
    tracing::info!(listen = %addr, "dashboard listening");
    berth_web::serve(listener, state, stopped(stop_rx))
        .await
        .context("the dashboard server failed")?;
    let _ = watcher.await;
    let _ = janitor.await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
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
