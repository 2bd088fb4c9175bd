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
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once at start; boxing would only move the size"
)]
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
    /// Manage the key that encrypts environment values at rest.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Run berth as a systemd service that starts again after a reboot.
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Compose stacks and templates.
    Stack {
        #[command(subcommand)]
        command: StackCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Write /etc/systemd/system/berth.service (running this binary as root,
    /// data in /var/lib/berth unless --data-dir is given), enable and start it.
    Install {
        /// Print the unit and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Passed on to `berth serve --dashboard-domain`.
        #[arg(long, value_parser = parse_dashboard_domain)]
        dashboard_domain: Option<berth_core::DomainName>,
        /// Passed on to `berth serve --base-domain` (a domain or `auto`).
        #[arg(long, value_parser = check_base_domain)]
        base_domain: Option<String>,
    },
    /// Stop, disable and remove the unit; the data stays.
    Uninstall,
}

#[derive(Subcommand, Debug)]
pub enum StackCommand {
    /// Print what a compose file or template would install, as JSON; nothing
    /// is installed. Exits non-zero with the errors when it cannot plan.
    Plan {
        /// The compose file or template.
        file: PathBuf,
        /// berth (a berth template), coolify (a Coolify template) or compose;
        /// guessed from the file when not given.
        #[arg(long, value_parser = parse_format)]
        format: Option<berth_compose::Format>,
        /// A value for one of the plan's inputs (repeatable).
        #[arg(long = "input", value_name = "KEY=VALUE", value_parser = parse_input)]
        inputs: Vec<(String, String)>,
    },
}

fn parse_format(input: &str) -> Result<berth_compose::Format, String> {
    berth_compose::Format::parse(input)
        .ok_or_else(|| "the format is berth, coolify or compose".to_owned())
}

fn parse_input(input: &str) -> Result<(String, String), String> {
    match input.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err("an input is KEY=VALUE".to_owned()),
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address of the dashboard and API. Keep it on 127.0.0.1 unless a proxy in front adds TLS.
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:8800")]
    pub listen: SocketAddr,
    /// Docker engine to drive, e.g. unix:///var/run/docker.sock or tcp://host:2375.
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// The edge's plain HTTP listener: apps' domains, ACME HTTP-01 answers, redirects to HTTPS.
    #[arg(long, env = "BERTH_HTTP_LISTEN", default_value = "0.0.0.0:80")]
    pub http_listen: SocketAddr,
    /// The edge's HTTPS listener.
    #[arg(long, env = "BERTH_HTTPS_LISTEN", default_value = "0.0.0.0:443")]
    pub https_listen: SocketAddr,
    /// A proxy in front of the edge (a CDN such as Cloudflare, a load balancer), as an address or CIDR: its X-Forwarded-For and -Proto are believed and extended instead of replaced. Repeat the flag or separate with commas.
    #[arg(
        long = "trusted-proxy",
        env = "BERTH_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<berth_edge::Cidr>,
    /// Every app answers to <app>.<project>.<base domain>; with `localhost`, browsers on this machine reach them without DNS.
    /// `auto`: this server's public IPv4 address under the outside wildcard-DNS service sslip.io (<a-b-c-d>.sslip.io).
    #[arg(long, env = "BERTH_BASE_DOMAIN", default_value = "localhost", value_parser = parse_base_domain)]
    pub base_domain: BaseDomain,
    /// Serve the dashboard over HTTPS at this domain through the edge (its certificate comes from ACME at start).
    /// Point the domain's DNS at this server first; the dashboard's own listener stays where --listen says.
    #[arg(long, env = "BERTH_DASHBOARD_DOMAIN", value_parser = parse_dashboard_domain)]
    pub dashboard_domain: Option<berth_core::DomainName>,
    /// ACME directory used until one is chosen on the certificates page: production, staging (Let's Encrypt) or an https:// URL.
    #[arg(long, env = "BERTH_ACME_DIRECTORY", default_value = "production", value_parser = parse_acme_directory)]
    pub acme_directory: String,
    /// Extra root certificates (PEM) to trust for the ACME directory, for a private CA such as step-ca or Pebble.
    #[arg(long, env = "BERTH_ACME_CA_BUNDLE")]
    pub acme_ca_bundle: Option<PathBuf>,
    /// Renew ACME certificates this many days before they expire (earlier when the CA suggests a renewal window).
    #[arg(long, env = "BERTH_ACME_RENEW_BEFORE_DAYS", default_value_t = 30)]
    pub acme_renew_before_days: u64,
    /// How often (seconds) the certificate task looks for new domains and due renewals.
    #[arg(long, env = "BERTH_ACME_CHECK_INTERVAL_SECS", default_value_t = 15)]
    pub acme_check_interval_secs: u64,
    /// Host directories apps may bind-mount live under this directory (default <data dir>/volumes); anything else needs the admin's "dangerous mount" confirmation.
    #[arg(long, env = "BERTH_VOLUMES_ROOT")]
    pub volumes_root: Option<PathBuf>,
    /// Static sites' directories must lie under this directory (default <data dir>/static): the edge serves nothing from elsewhere.
    #[arg(long, env = "BERTH_STATIC_ROOT")]
    pub static_root: Option<PathBuf>,
    /// Git repositories on this server (file:// or a path) may be cloned only from under this directory; unset, only https:// and ssh remotes are.
    #[arg(long, env = "BERTH_GIT_FILE_ROOT")]
    pub git_file_root: Option<PathBuf>,
    /// More templates for the catalogue: every <id>.yaml in berth's template format in this directory (one with an id of berth's own replaces it).
    #[arg(long, env = "BERTH_TEMPLATES_DIR")]
    pub templates_dir: Option<PathBuf>,
    /// Publish apps' ports on 127.0.0.1 and send the edge there, instead of straight to each container's address (for hosts that cannot reach Docker's networks; berth falls back by itself when it finds that).
    #[arg(long, env = "BERTH_PUBLISH_APP_PORTS")]
    pub publish_app_ports: bool,
    /// A label (KEY=VALUE) put on every container, network, volume and image berth creates, besides its own; tests mark theirs with berth.test=<run> so cleanup finds them.
    #[arg(long, env = "BERTH_OBJECT_LABEL", value_parser = parse_label)]
    pub object_label: Vec<(String, String)>,
    /// Seconds between two collections of the server's and the containers' figures (5 to 60).
    #[arg(long, env = "BERTH_METRICS_INTERVAL", default_value_t = 10, value_parser = clap::value_parser!(u64).range(5..=60))]
    pub metrics_interval: u64,
}

fn parse_label(input: &str) -> Result<(String, String), String> {
    match input.split_once('=') {
        Some((key, value)) if !key.is_empty() && !key.starts_with("berth.managed") => {
            Ok((key.to_owned(), value.to_owned()))
        }
        _ => Err("a label is KEY=VALUE (and not berth.managed)".to_owned()),
    }
}

/// `--base-domain`: a domain, or `auto` (found at start, see [`crate::public_addr`]).
#[derive(Debug, Clone)]
pub enum BaseDomain {
    Auto,
    Domain(berth_core::DomainName),
}

fn parse_base_domain(input: &str) -> Result<BaseDomain, String> {
    if input.trim().eq_ignore_ascii_case("auto") {
        return Ok(BaseDomain::Auto);
    }
    let domain =
        berth_core::DomainName::parse(input).map_err(|e| format!("the base domain {e}"))?;
    if domain.is_wildcard() {
        return Err("the base domain cannot be a wildcard: give the domain itself, such as apps.example.com".to_owned());
    }
    Ok(BaseDomain::Domain(domain))
}

fn check_base_domain(input: &str) -> Result<String, String> {
    match parse_base_domain(input)? {
        BaseDomain::Auto => Ok("auto".to_owned()),
        BaseDomain::Domain(domain) => Ok(domain.to_string()),
    }
}

fn parse_dashboard_domain(input: &str) -> Result<berth_core::DomainName, String> {
    let domain =
        berth_core::DomainName::parse(input).map_err(|e| format!("the dashboard domain {e}"))?;
    if domain.is_wildcard() {
        return Err(
            "the dashboard domain cannot be a wildcard: give one name, such as berth.example.com"
                .to_owned(),
        );
    }
    Ok(domain)
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
pub enum SecretsCommand {
    /// Replace the key (data dir/secret.key) and re-encrypt every stored value
    /// with the new one. A running berth picks up the new key by itself.
    RotateKey,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token and print it once.
    Create {
        #[arg(long)]
        name: String,
        /// The token stops working this many days from now (default: never).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: Option<u32>,
        /// The token may only read (GET and HEAD); anything else gets 403.
        #[arg(long)]
        read_only: bool,
    },
    /// List the API tokens with when each was made and last used.
    List,
    /// Revoke an API token: requests with it get 401 from now on.
    Revoke {
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
            command:
                TokenCommand::Create {
                    name,
                    expires_in_days,
                    read_only,
                },
        } => runtime.block_on(create_token(
            &cli.data_dir,
            &name,
            berth_core::TokenScope {
                expires_at: expires_in_days
                    .map(|days| berth_store::now() + i64::from(days) * 24 * 3600),
                read_only,
            },
        )),
        Command::Token {
            command: TokenCommand::List,
        } => runtime.block_on(list_tokens(&cli.data_dir)),
        Command::Token {
            command: TokenCommand::Revoke { name },
        } => runtime.block_on(revoke_token(&cli.data_dir, &name)),
        Command::Secrets {
            command: SecretsCommand::RotateKey,
        } => runtime.block_on(rotate_key(&cli.data_dir)),
        Command::Service { command } => service(&cli.data_dir, command),
        Command::Stack {
            command:
                StackCommand::Plan {
                    file,
                    format,
                    inputs,
                },
        } => plan_stack(&file, format, inputs),
    }
}

fn service(data_dir: &Path, command: ServiceCommand) -> anyhow::Result<()> {
    match command {
        ServiceCommand::Install {
            dry_run,
            dashboard_domain,
            base_domain,
        } => {
            // The default ./data means "not chosen": a service keeps its data in /var/lib/berth.
            let data_dir = if data_dir == Path::new("./data") {
                PathBuf::from(crate::service::SERVICE_DATA_DIR)
            } else {
                std::path::absolute(data_dir).context("cannot resolve --data-dir")?
            };
            let binary =
                std::env::current_exe().context("cannot find the path of this berth binary")?;
            let mut serve_args = Vec::new();
            if let Some(domain) = &dashboard_domain {
                serve_args.extend(["--dashboard-domain".to_owned(), domain.to_string()]);
            }
            if let Some(base) = base_domain {
                serve_args.extend(["--base-domain".to_owned(), base]);
            }
            let spec = crate::service::UnitSpec {
                binary,
                data_dir,
                serve_args,
            };
            let url = dashboard_domain.map(|d| format!("https://{d}/"));
            crate::service::install(&spec, url.as_deref(), dry_run)
        }
        ServiceCommand::Uninstall => crate::service::uninstall(),
    }
}

fn plan_stack(
    file: &Path,
    format: Option<berth_compose::Format>,
    inputs: Vec<(String, String)>,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let format = format.unwrap_or_else(|| berth_compose::Format::detect(&text));
    let options = berth_compose::Options {
        inputs: inputs.into_iter().collect(),
        ..Default::default()
    };
    let plan = berth_compose::plan(&text, format, &options);
    println!("{}", serde_json::to_string_pretty(&plan)?);
    if !plan.is_ok() {
        let errors: Vec<String> = plan.errors.iter().map(|e| format!("  {e}")).collect();
        bail!("cannot plan {}:\n{}", file.display(), errors.join("\n"));
    }
    Ok(())
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

async fn create_token(
    data_dir: &Path,
    name: &str,
    scope: berth_core::TokenScope,
) -> anyhow::Result<()> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        bail!("--name must be 1 to 100 characters");
    }
    let store = Store::open(data_dir)
        .await
        .context("cannot open the database")?;
    let (_, token) = api_tokens::create(&store, name, scope).await?;
    store.close().await;
    println!("{token}");
    eprintln!(
        "This is the only time the token is shown. Use it as `Authorization: Bearer <token>` against /api/v1."
    );
    Ok(())
}

async fn list_tokens(data_dir: &Path) -> anyhow::Result<()> {
    let store = Store::open(data_dir)
        .await
        .context("cannot open the database")?;
    let tokens = api_tokens::list(&store).await?;
    store.close().await;
    let when = |at: i64| {
        time::OffsetDateTime::from_unix_timestamp(at)
            .map(|t| t.date().to_string())
            .unwrap_or_default()
    };
    for token in &tokens {
        let used = token.last_used_at.map_or_else(
            || "never used".to_owned(),
            |at| format!("last used {}", when(at)),
        );
        let expires = token.expires_at.map_or_else(
            || "never expires".to_owned(),
            |at| format!("expires {}", when(at)),
        );
        let scope = if token.read_only {
            "read-only"
        } else {
            "read-write"
        };
        println!(
            "{}\tmade {}\t{used}\t{expires}\t{scope}",
            token.name,
            when(token.created_at)
        );
    }
    if tokens.is_empty() {
        eprintln!("No API tokens. Make one with `berth token create --name NAME`.");
    }
    Ok(())
}

async fn revoke_token(data_dir: &Path, name: &str) -> anyhow::Result<()> {
    let store = Store::open(data_dir)
        .await
        .context("cannot open the database")?;
    let revoked = api_tokens::revoke(&store, name.trim()).await;
    store.close().await;
    match revoked {
        Ok(()) => {
            eprintln!("Token {name} revoked: requests with it are refused from now on.");
            Ok(())
        }
        Err(berth_store::StoreError::NotFound { .. }) => {
            bail!("there is no API token named {name} (see `berth token list`)")
        }
        Err(err) => Err(err.into()),
    }
}

async fn rotate_key(data_dir: &Path) -> anyhow::Result<()> {
    crate::serve::init_tracing();
    let store = Store::open(data_dir)
        .await
        .context("cannot open the database")?;
    let rotation = berth_store::crypto::rotate_key(&store)
        .await
        .context("cannot rotate the secret key; the old key is still in use")?;
    store.close().await;
    println!(
        "secret key rotated: {} -> {}; re-encrypted {} values and {} history entries",
        rotation.old_id, rotation.new_id, rotation.values, rotation.snapshots
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

fn parse_acme_directory(value: &str) -> Result<String, String> {
    berth_edge::acme::directory_url(value)
        .ok_or_else(|| "expected production, staging or an https:// URL".to_owned())
}
