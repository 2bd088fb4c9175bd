//! Step 5: checks across services (dependencies exist and do not loop,
//! secrets are declared) and the settings that need a confirmation.

use std::path::Path;

use berth_core::{BindRules, HostPath};

use crate::normalize::Ctx;
use crate::plan::{FileObject, MountSource, Service, WarningKind};

/// Capabilities that amount to root on the host.
const DANGEROUS_CAPS: &[&str] = &["SYS_ADMIN", "NET_ADMIN", "ALL", "SYS_MODULE", "SYS_PTRACE"];

pub fn validate(
    services: &[Service],
    secrets: &[FileObject],
    configs: &[FileObject],
    rules: Option<&BindRules>,
    ctx: &mut Ctx,
) {
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    for s in services {
        let name = s.name.as_str();
        for dep in &s.depends_on {
            if dep.required && !names.contains(&dep.service.as_str()) {
                ctx.err(
                    &["services", name, "depends_on"],
                    format!("{:?} is not a service of this file", dep.service),
                );
            }
        }
        for (kind, mounts, declared) in [
            ("secrets", &s.secrets, secrets),
            ("configs", &s.configs, configs),
        ] {
            for m in mounts {
                if !declared.iter().any(|d| d.name == m.source) {
                    ctx.err(
                        &["services", name, kind],
                        format!("{:?} is not declared under the top-level {kind}", m.source),
                    );
                }
            }
        }
        if let Some(image) = &s.image
            && !image.is_pinned()
        {
            ctx.warn(
                Some(name),
                WarningKind::UnpinnedImage,
                format!("{image} is not pinned to a version: it can change on the next pull"),
            );
        }
        dangers(s, rules, ctx);
    }
    if let Some(cycle) = cycle(services) {
        ctx.err(
            &["services", &cycle, "depends_on"],
            "depends_on forms a loop: no service could start first",
        );
    }
}

fn dangers(s: &Service, rules: Option<&BindRules>, ctx: &mut Ctx) {
    let name = s.name.as_str();
    let danger = |ctx: &mut Ctx, message: String| {
        ctx.warn(Some(name), WarningKind::Dangerous, message);
    };
    if s.privileged {
        danger(
            ctx,
            "privileged: the container is root on the host".to_owned(),
        );
    }
    match s.network_mode.as_deref() {
        Some("host") => danger(
            ctx,
            "network_mode: host: the container shares the host's network".to_owned(),
        ),
        None | Some("bridge" | "none" | "default") => {}
        Some(other) => ctx.err(
            &["services", name, "network_mode"],
            format!("{other:?} is not supported: use host, none or the stack's network"),
        ),
    }
    if s.pid.as_deref() == Some("host") {
        danger(
            ctx,
            "pid: host: the container sees and can signal every host process".to_owned(),
        );
    }
    if !s.devices.is_empty() {
        danger(
            ctx,
            format!(
                "devices: host devices {} are passed in",
                s.devices.join(", ")
            ),
        );
    }
    for cap in &s.cap_add {
        let bare = cap.trim_start_matches("CAP_").to_ascii_uppercase();
        if DANGEROUS_CAPS.contains(&bare.as_str()) {
            danger(
                ctx,
                format!("cap_add: {cap} gives the container power over the host"),
            );
        }
    }
    for mount in &s.volumes {
        let MountSource::Bind { path, .. } = &mount.source else {
            continue;
        };
        // Relative paths live in the stack's own directory under the
        // volumes root; only absolute ones can reach the rest of the host.
        if !(path.starts_with('/') || path.starts_with('~')) {
            continue;
        }
        if path.ends_with("docker.sock") {
            danger(
                ctx,
                format!("{path} is the Docker socket: whoever has it is root on this host"),
            );
            continue;
        }
        let refusal = match (HostPath::parse(path), rules) {
            (Ok(p), Some(rules)) => rules
                .check(Path::new(p.as_str()))
                .err()
                .map(|e| e.to_string()),
            (Ok(p), None) => Some(format!("{p} is a host path outside the volumes root")),
            (Err(e), _) => Some(format!("the host path {path:?} {e}")),
        };
        if let Some(why) = refusal {
            danger(ctx, why);
        }
    }
}

/// A service on a depends_on loop, if there is one.
fn cycle(services: &[Service]) -> Option<String> {
    let index = |n: &str| services.iter().position(|s| s.name == n);
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; services.len()];
    fn visit(
        i: usize,
        services: &[Service],
        state: &mut [u8],
        index: &dyn Fn(&str) -> Option<usize>,
    ) -> bool {
        if state[i] == 1 {
            return true;
        }
        if state[i] == 2 {
            return false;
        }
        state[i] = 1;
        for dep in &services[i].depends_on {
            if let Some(j) = index(&dep.service)
                && visit(j, services, state, index)
            {
                return true;
            }
        }
        state[i] = 2;
        false
    }
    (0..services.len())
        .find(|&i| visit(i, services, &mut state, &index))
        .map(|i| services[i].name.clone())
}
