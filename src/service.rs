//! `berth service install|uninstall`: berth as a systemd service that
//! survives reboots. It runs as root: it drives the Docker socket, which is
//! root-equivalent anyway, and binds ports 80 and 443 (docs/install.md).
//! systemctl is run with argument arrays, never through a shell.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The unit's name, and the file under /etc/systemd/system.
pub const UNIT: &str = "berth.service";
const UNIT_DIR: &str = "/etc/systemd/system";
/// Where a service's data lives unless `--data-dir` says otherwise.
pub const SERVICE_DATA_DIR: &str = "/var/lib/berth";

/// What goes into the unit.
#[derive(Debug, Clone)]
pub struct UnitSpec {
    /// The berth binary, absolute.
    pub binary: PathBuf,
    /// The data dir, absolute.
    pub data_dir: PathBuf,
    /// More `berth serve` arguments (already validated flags and values).
    pub serve_args: Vec<String>,
}

/// The unit file's text.
pub fn unit_file(spec: &UnitSpec) -> String {
    let mut exec = vec![
        spec.binary.display().to_string(),
        "serve".to_owned(),
        "--data-dir".to_owned(),
        spec.data_dir.display().to_string(),
    ];
    exec.extend(spec.serve_args.iter().cloned());
    let exec: Vec<String> = exec.iter().map(|a| quote(a)).collect();
    // systemd creates /var/lib/berth (0700) itself when it is the data dir.
    let state_dir = if spec.data_dir == Path::new(SERVICE_DATA_DIR) {
        "StateDirectory=berth\nStateDirectoryMode=0700\n"
    } else {
        ""
    };
    format!(
        "# Written by `berth service install`; `berth service uninstall` removes it (and keeps the data).
[Unit]
Description=berth, a self-hosted PaaS (dashboard, edge proxy on :80/:443, apps on Docker)
Documentation=man:systemd.service(5)
After=network-online.target docker.service
Wants=network-online.target docker.service

[Service]
Type=simple
# Root: berth drives the Docker socket (root-equivalent anyway) and binds ports 80 and 443.
User=root
ExecStart={exec}
{state_dir}Restart=always
RestartSec=5
# stdout (the setup token, the URL to open) and the logs go to the journal.
StandardOutput=journal
StandardError=journal
KillSignal=SIGTERM
TimeoutStopSec=90
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
",
        exec = exec.join(" ")
    )
}

/// One ExecStart argument as systemd reads it: `%` and `$` are doubled so
/// neither a specifier nor a variable is expanded; anything unusual is quoted.
fn quote(arg: &str) -> String {
    let escaped = arg.replace('%', "%%").replace('$', "$$");
    let plain = !escaped.is_empty()
        && escaped
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._:@=+-,%$".contains(c));
    if plain {
        escaped
    } else {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// `berth service install`: writes the unit, reloads systemd, enables and
/// starts it, and says where to go next. With `dry_run`, prints the unit only.
pub fn install(spec: &UnitSpec, public_url: Option<&str>, dry_run: bool) -> anyhow::Result<()> {
    let unit = unit_file(spec);
    if dry_run {
        print!("{unit}");
        return Ok(());
    }
    let path = Path::new(UNIT_DIR).join(UNIT);
    std::fs::write(&path, &unit).with_context(|| {
        format!(
            "cannot write {}: run `berth service install` as root (sudo)",
            path.display()
        )
    })?;
    systemctl(&["daemon-reload"])?;
    systemctl(&["enable", "--now", UNIT])?;
    println!("berth is installed as {UNIT} and running; it starts again after a reboot.");
    println!("data: {}", spec.data_dir.display());
    match public_url {
        Some(url) => println!("open: {url}"),
        None => println!(
            "open: http://127.0.0.1:8800 on this server (e.g. `ssh -L 8800:127.0.0.1:8800 <server>`), \
             or install with --dashboard-domain to reach it over HTTPS"
        ),
    }
    println!("setup token: journalctl -u {UNIT} --no-pager | grep 'setup token'");
    Ok(())
}

/// `berth service uninstall`: stops, disables and removes the unit; the data stays.
pub fn uninstall() -> anyhow::Result<()> {
    let path = Path::new(UNIT_DIR).join(UNIT);
    if !path.exists() {
        bail!("{} does not exist: nothing to uninstall", path.display());
    }
    systemctl(&["disable", "--now", UNIT])?;
    std::fs::remove_file(&path).with_context(|| {
        format!(
            "cannot remove {}: run `berth service uninstall` as root (sudo)",
            path.display()
        )
    })?;
    systemctl(&["daemon-reload"])?;
    println!(
        "{UNIT} is stopped and removed; the data is left where it was (by default {SERVICE_DATA_DIR})."
    );
    Ok(())
}

fn systemctl(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("systemctl")
        .args(args)
        .status()
        .context("cannot run systemctl: is this a systemd machine?")?;
    if !status.success() {
        bail!("systemctl {} failed ({status})", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(binary: &str, data_dir: &str) -> UnitSpec {
        UnitSpec {
            binary: binary.into(),
            data_dir: data_dir.into(),
            serve_args: vec!["--dashboard-domain".into(), "berth.example.com".into()],
        }
    }

    #[test]
    fn the_unit_runs_the_binary_as_root_restarts_always_and_keeps_data_in_var_lib_berth() {
        let unit = unit_file(&spec("/usr/local/bin/berth", SERVICE_DATA_DIR));
        assert!(unit.contains(
            "\nExecStart=/usr/local/bin/berth serve --data-dir /var/lib/berth --dashboard-domain berth.example.com\n"
        ));
        for line in [
            "User=root",
            "Restart=always",
            "StandardOutput=journal",
            "StateDirectory=berth",
            "After=network-online.target docker.service",
            "Wants=network-online.target docker.service",
            "WantedBy=multi-user.target",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line}:\n{unit}");
        }
    }

    #[test]
    fn odd_paths_are_quoted_and_specifiers_escaped() {
        let unit = unit_file(&spec("/opt/my berth/berth", "/srv/100%$data"));
        assert!(
            unit.contains("ExecStart=\"/opt/my berth/berth\" serve --data-dir /srv/100%%$$data ")
        );
        assert!(!unit.contains("StateDirectory"));
    }
}
