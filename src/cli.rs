//! The command line. Every setting is a flag and an environment variable at once.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use berth_core::{Password, Username};
use berth_store::{Store, api_tokens, passwords, users};
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "A self-hosted PaaS in one binary: deploy apps on your own Docker server from a browser."
)]
pub struct Cli {
    /// Where berth keeps its database and keys.
    #[arg(long, env = "BERTH_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the dashboard, the API and the workers.
    Serve(ServeArgs),
    /// Manage admin accounts (for automation and locked-out admins).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address of the dashboard and API. Keep it on 127.0.0.1 unless a proxy in front adds TLS.
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:8800")]
    pub listen: SocketAddr,
    /// Docker engine to drive, e.g. unix:///var/run/docker.sock or tcp://host:2375.
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an admin account; the password is read from standard input.
    Create {
        #[arg(long)]
        username: String,
        /// Read the password from standard input (required, so it never appears in the process list).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Set a new password for an admin and end their sessions.
    ResetPassword {
        #[arg(long)]
        username: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token and print it once.
    Create {
        #[arg(long)]
        name: String,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(crate::serve::serve(&cli.data_dir, args)),
        Command::Admin { command } => runtime.block_on(admin(&cli.data_dir, command)),
        Command::Token {
            command: TokenCommand::Create { name },
        } => runtime.block_on(create_token(&cli.data_dir, &name)),
    }
}

async fn admin(data_dir: &Path, command: AdminCommand) -> anyhow::Result<()> {
    crate::serve::init_tracing();
    let store = Store::open(data_dir)
        .await
        .context("cannot open the database")?;
    match command {
        AdminCommand::Create { username, .. } => {
            let username = Username::parse(&username).context("invalid --username")?;
            let password = read_password()?;
            let hash = passwords::hash(&password).await?;
            users::create(&store, &username, &hash).await?;
            println!("admin {username} created");
        }
        AdminCommand::ResetPassword { username, .. } => {
            let username = Username::parse(&username).context("invalid --username")?;
            let password = read_password()?;
            let hash = passwords::hash(&password).await?;
            users::reset_password(&store, &username, &hash).await?;
            println!("password of {username} reset; their sessions were ended");
        }
    }
    store.close().await;
    Ok(())
}

async fn create_token(data_dir: &Path, name: &str) -> anyhow::Result<()> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        bail!("--name must be 1 to 100 characters");
    }
    let store = Store::open(data_dir)
        .await
        .context("cannot open the database")?;
    let (_, token) = api_tokens::create(&store, name).await?;
    store.close().await;
    println!("{token}");
    eprintln!(
        "This is the only time the token is shown. Use it as `Authorization: Bearer <token>` against /api/v1."
    );
    Ok(())
}

/// The first line of standard input, without its line ending.
fn read_password() -> anyhow::Result<Password> {
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .context("cannot read the password from standard input")?;
    let line = input.lines().next().unwrap_or_default();
    Password::parse_new(line).map_err(|e| anyhow::anyhow!("the password {e}"))
}
