//! `berth service install --dry-run`: the unit it would install, checked by
//! systemd's own verifier where this machine has one.

mod common;

use std::process::Command;

use common::BERTH;

#[test]
fn service_install_dry_run_prints_a_unit_that_systemd_analyze_verify_accepts() {
    let out = Command::new(BERTH)
        .args([
            "service",
            "install",
            "--dry-run",
            "--dashboard-domain",
            "berth.example.com",
            "--base-domain",
            "auto",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit = String::from_utf8(out.stdout).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let binary = std::fs::canonicalize(BERTH).unwrap();
    assert_eq!(
        exec,
        format!(
            "{} serve --data-dir /var/lib/berth --dashboard-domain berth.example.com --base-domain auto",
            binary.display()
        )
    );
    for line in ["Restart=always", "User=root", "StandardOutput=journal"] {
        assert!(unit.lines().any(|l| l == line), "{line}:\n{unit}");
    }

    let Some(analyze) = which("systemd-analyze") else {
        println!(
            "skipped the systemd check: systemd-analyze is not installed (Debian package systemd)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.service");
    std::fs::write(&path, &unit).unwrap();
    let verify = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {stderr}\n{unit}"
    );
    assert!(
        !stderr.contains("berth.service"),
        "systemd-analyze warns about the unit: {stderr}"
    );
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}
