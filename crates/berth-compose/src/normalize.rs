//! Step 3: the interpolated value tree → typed services, with every short
//! syntax turned into its long form and every key checked against
//! [`crate::supported`]. Problems are collected, not returned at the first,
//! so a user sees them all at once.

use std::collections::BTreeMap;

use berth_core::{Command, DeployStrategy, ImageRef, MountPath, RestartPolicy, VolumeName};
use serde_norway::{Mapping, Value};

use crate::error::Problem;
use crate::parse::Lines;
use crate::plan::{
    Build, Condition, Dependency, EnvFile, FileMount, FileObject, FileSource, Healthcheck, Limits,
    Logging, Mount, MountSource, NamedVolume, PortMapping, Service, Ulimit, Warning, WarningKind,
};
use crate::supported;

/// Collects problems and warnings with the lines they come from.
pub struct Ctx<'a> {
    pub lines: &'a Lines<'a>,
    pub errors: Vec<Problem>,
    pub warnings: Vec<Warning>,
}

impl Ctx<'_> {
    pub fn err(&mut self, path: &[&str], message: impl Into<String>) {
        self.errors.push(Problem::new(
            self.lines.find(path),
            path.join("."),
            message.into(),
        ));
    }

    pub fn warn(&mut self, service: Option<&str>, kind: WarningKind, message: impl Into<String>) {
        self.warnings.push(Warning {
            service: service.map(str::to_owned),
            kind,
            message: message.into(),
        });
    }
}

/// A compose document in typed form. Environment values are `None` where
/// the file names a variable without a value (`- KEY`), which takes the
/// value of the variable of that name.
pub struct Compose {
    pub name: Option<String>,
    pub services: Vec<(Service, BTreeMap<String, Option<String>>)>,
    pub volumes: Vec<NamedVolume>,
    pub networks: Vec<String>,
    pub secrets: Vec<FileObject>,
    pub configs: Vec<FileObject>,
}

pub fn normalize(doc: &Value, ctx: &mut Ctx) -> Compose {
    let mut compose = Compose {
        name: None,
        services: Vec::new(),
        volumes: Vec::new(),
        networks: Vec::new(),
        secrets: Vec::new(),
        configs: Vec::new(),
    };
    let Some(top) = doc.as_mapping() else {
        ctx.err(&[], "a compose file is a mapping with a `services` key");
        return compose;
    };
    for (key, value) in top {
        let Some(key) = key.as_str() else {
            ctx.err(&[], "top-level keys must be strings");
            continue;
        };
        match key {
            "services" => {}
            "name" => compose.name = scalar(value),
            "version" => ctx.warn(
                None,
                WarningKind::Note,
                "`version` is obsolete and ignored, as docker compose does",
            ),
            "volumes" => compose.volumes = top_volumes(value, ctx),
            "networks" => compose.networks = top_networks(value, ctx),
            "secrets" => compose.secrets = top_files("secrets", value, ctx),
            "configs" => compose.configs = top_files("configs", value, ctx),
            k if supported::is_extension(k) => {}
            k => ctx.err(
                &[k],
                format!(
                    "unknown top-level key: berth reads {} and x- extensions",
                    supported::TOP_KEYS.join(", ")
                ),
            ),
        }
    }
    match top.get("services").and_then(Value::as_mapping) {
        Some(services) if !services.is_empty() => {
            for (name, body) in services {
                let Some(name) = name.as_str() else {
                    ctx.err(&["services"], "service names must be strings");
                    continue;
                };
                if let Some(service) = service(name, body, &compose.networks, ctx) {
                    compose.services.push(service);
                }
            }
        }
        _ => ctx.err(&["services"], "at least one service is required"),
    }
    compose
}

/// Reports every key of `v` (a mapping) not in `allowed`: a nested key
/// berth would not apply is an error too, never dropped.
fn check_keys(v: &Value, allowed: &[&str], path: &[&str], ctx: &mut Ctx) {
    for (k, _) in v.as_mapping().into_iter().flatten() {
        let k = k.as_str().unwrap_or_default();
        if !allowed.contains(&k) && !supported::is_extension(k) {
            let message = match allowed {
                [] => "not supported by berth".to_owned(),
                _ => format!("not supported here (berth reads {})", allowed.join(", ")),
            };
            ctx.err(&[path, &[k]].concat(), message);
        }
    }
}

/// A string from a scalar: compose reads `8080` and `true` as text too.
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Sequence(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

/// A `KEY: value` mapping or a `- KEY=value` list; `None` values are keys
/// written without a value.
fn key_values(v: &Value) -> Option<BTreeMap<String, Option<String>>> {
    match v {
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| {
                let k = scalar(k)?;
                match v {
                    Value::Null => Some((k, None)),
                    v => scalar(v).map(|v| (k, Some(v))),
                }
            })
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|item| {
                let item = scalar(item)?;
                Some(match item.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (item, None),
                })
            })
            .collect(),
        Value::Null => Some(BTreeMap::new()),
        _ => None,
    }
}

fn plain_key_values(v: &Value) -> Option<BTreeMap<String, String>> {
    key_values(v).map(|m| {
        m.into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect()
    })
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" | "True" | "yes" => Some(true),
            "false" | "False" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A Go duration as compose writes it (`1m30s`, `500ms`, `10s`); a bare
/// number is seconds.
pub fn duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return secs.checked_mul(1000);
    }
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        total += number * factor;
        rest = &rest[unit_end..];
    }
    // Rounded to whole milliseconds: Docker takes nanoseconds, but no
    // health check or grace period needs finer than a millisecond.
    Some(total.round() as u64)
}

/// A size as compose writes it (`64m`, `1gb`, `512`), in bytes (1024-based,
/// as Docker reads it).
pub fn bytes(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let number: f64 = lower[..split].parse().ok()?;
    let factor: u64 = match lower[split..].trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    Some((number * factor as f64) as u64)
}

fn bytes_value(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        other => scalar(other).and_then(|s| bytes(&s)),
    }
}

/// `name` with every character but ASCII letters and digits replaced by
/// `sep`, letters folded to one case.
pub(crate) fn fold_name(name: &str, sep: char, upper: bool) -> String {
    name.chars()
        .map(|c| match (c.is_ascii_alphanumeric(), upper) {
            (true, true) => c.to_ascii_uppercase(),
            (true, false) => c.to_ascii_lowercase(),
            (false, _) => sep,
        })
        .collect()
}

/// berth's name for a compose volume: a DNS label, so `pg_data` → `pg-data`.
pub fn volume_name(compose_name: &str) -> Option<VolumeName> {
    VolumeName::parse(fold_name(compose_name, '-', false).trim_matches('-')).ok()
}

fn top_volumes(v: &Value, ctx: &mut Ctx) -> Vec<NamedVolume> {
    let mut out = Vec::new();
    let Some(map) = v.as_mapping() else {
        if !v.is_null() {
            ctx.err(&["volumes"], "must be a mapping of volume names");
        }
        return out;
    };
    for (name, body) in map {
        let Some(name) = name.as_str() else { continue };
        let mut labels = BTreeMap::new();
        if let Some(body) = body.as_mapping() {
            for (k, val) in body {
                let k = k.as_str().unwrap_or_default();
                match k {
                    "labels" => labels = plain_key_values(val).unwrap_or_default(),
                    "name" => ctx.warn(
                        None,
                        WarningKind::Note,
                        format!("volumes.{name}.name is ignored: berth names the stack's volumes berth_<project>_<stack>_<volume>"),
                    ),
                    "driver" if val.as_str() == Some("local") => {}
                    "external" => ctx.err(
                        &["volumes", name, k],
                        "external volumes are not supported: berth creates and labels the stack's volumes; attach an existing one from the Storage page",
                    ),
                    _ => ctx.err(
                        &["volumes", name, k],
                        "not supported: berth makes local named volumes",
                    ),
                }
            }
        }
        match volume_name(name) {
            Some(volume) => out.push(NamedVolume {
                name: name.to_owned(),
                volume,
                labels,
            }),
            None => ctx.err(&["volumes", name], "cannot be made into a volume name"),
        }
    }
    out
}

fn top_networks(v: &Value, ctx: &mut Ctx) -> Vec<String> {
    let mut out = Vec::new();
    for (name, body) in v.as_mapping().into_iter().flatten() {
        let Some(name) = name.as_str() else { continue };
        for (k, val) in body.as_mapping().into_iter().flatten() {
            let k = k.as_str().unwrap_or_default();
            match k {
                "driver" if val.as_str() == Some("bridge") => {}
                "internal" | "name" | "attachable" | "labels" => ctx.warn(
                    None,
                    WarningKind::Note,
                    format!("networks.{name}.{k} is ignored: each stack gets one bridge network of its own, where its services reach each other by name"),
                ),
                _ => ctx.err(
                    &["networks", name, k],
                    "not supported: each stack gets a bridge network of its own",
                ),
            }
        }
        out.push(name.to_owned());
    }
    out
}

fn top_files(kind: &str, v: &Value, ctx: &mut Ctx) -> Vec<FileObject> {
    let mut out = Vec::new();
    for (name, body) in v.as_mapping().into_iter().flatten() {
        let Some(name) = name.as_str() else { continue };
        let mut source = None;
        for (k, val) in body.as_mapping().into_iter().flatten() {
            let k = k.as_str().unwrap_or_default();
            let text = scalar(val).unwrap_or_default();
            match k {
                "file" => source = Some(FileSource::File(text)),
                "environment" => source = Some(FileSource::Environment(text)),
                "content" if kind == "configs" => {
                    source = Some(FileSource::Content { text });
                }
                "name" => {}
                _ => ctx.err(
                    &[kind, name, k],
                    "not supported: give the content with `file` or `environment`",
                ),
            }
        }
        match source {
            Some(source) => out.push(FileObject {
                name: name.to_owned(),
                source,
            }),
            None => ctx.err(&[kind, name], "needs `file` or `environment`"),
        }
    }
    out
}

fn command(v: &Value, path: &[&str], ctx: &mut Ctx) -> Option<Vec<String>> {
    match v {
        Value::Null => None,
        Value::Sequence(_) => {
            let args = strings(v);
            if args.is_none() {
                ctx.err(path, "must be a string or a list of strings");
            }
            args
        }
        other => match scalar(other).map(|s| Command::parse(&s)) {
            Some(Ok(c)) => Some(c.args().to_vec()),
            Some(Err(e)) => {
                ctx.err(path, format!("the command {e}"));
                None
            }
            None => {
                ctx.err(path, "must be a string or a list of strings");
                None
            }
        },
    }
}

/// Reads one service; `None` when it is left out (a non-default profile).
fn service(
    name: &str,
    body: &Value,
    networks: &[String],
    ctx: &mut Ctx,
) -> Option<(Service, BTreeMap<String, Option<String>>)> {
    let empty = Mapping::new();
    let map = match body {
        Value::Mapping(m) => m,
        Value::Null => &empty,
        _ => {
            ctx.err(&["services", name], "a service is a mapping");
            return None;
        }
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        ctx.err(
            &["services", name],
            "service names use letters, digits, '_', '-' and '.'",
        );
    }
    if let Some(profiles) = map.get("profiles").and_then(strings)
        && !profiles.iter().any(String::is_empty)
    {
        ctx.warn(
            Some(name),
            WarningKind::Note,
            format!(
                "left out: it belongs to profile(s) {}, and berth plans the default profile, as `docker compose up` does",
                profiles.join(", ")
            ),
        );
        return None;
    }
    let mut s = Service {
        name: name.to_owned(),
        image: None,
        build: None,
        command: None,
        entrypoint: None,
        environment: BTreeMap::new(),
        env_files: Vec::new(),
        healthcheck: None,
        volumes: Vec::new(),
        tmpfs: Vec::new(),
        depends_on: Vec::new(),
        restart: None,
        ports: Vec::new(),
        expose: Vec::new(),
        user: None,
        working_dir: None,
        hostname: None,
        aliases: Vec::new(),
        labels: BTreeMap::new(),
        cap_add: Vec::new(),
        cap_drop: Vec::new(),
        ulimits: BTreeMap::new(),
        shm_size: None,
        stop_grace_period_ms: None,
        stop_signal: None,
        sysctls: BTreeMap::new(),
        tty: false,
        stdin_open: false,
        init: false,
        read_only: false,
        privileged: false,
        network_mode: None,
        pid: None,
        platform: None,
        logging: None,
        security_opt: Vec::new(),
        devices: Vec::new(),
        limits: Limits::default(),
        secrets: Vec::new(),
        configs: Vec::new(),
        container_name: None,
        exclude_from_health: false,
        strategy: DeployStrategy::Rolling,
    };
    let mut env = BTreeMap::new();
    for (key, v) in map {
        let Some(key) = key.as_str() else {
            ctx.err(&["services", name], "keys must be strings");
            continue;
        };
        let path = ["services", name, key];
        if !supported::SERVICE_KEYS.contains(&key) {
            if !supported::is_extension(key) {
                ctx.err(&path, supported::refusal(key));
            }
            continue;
        }
        let bad = |ctx: &mut Ctx, what: &str| ctx.err(&path, format!("must be {what}"));
        match key {
            "image" => match scalar(v).map(|i| ImageRef::parse(&i)) {
                Some(Ok(image)) => s.image = Some(image),
                Some(Err(e)) => ctx.err(&path, format!("the image {e}")),
                None => bad(ctx, "an image reference"),
            },
            "build" => s.build = build(v, &path, ctx),
            "command" => s.command = command(v, &path, ctx),
            "entrypoint" => s.entrypoint = command(v, &path, ctx),
            "environment" => match key_values(v) {
                Some(e) => env = e,
                None => bad(ctx, "a mapping or a list of KEY=value"),
            },
            "env_file" => s.env_files = env_files(v, &path, ctx),
            "healthcheck" => s.healthcheck = healthcheck(v, &path, ctx),
            "volumes" => s.volumes = volumes(v, &path, ctx),
            "tmpfs" => s.tmpfs = strings(v).unwrap_or_default(),
            "depends_on" => s.depends_on = depends_on(v, &path, ctx),
            "restart" => match scalar(v).as_deref().map(restart_policy) {
                Some(Some(p)) => s.restart = Some(p),
                _ => bad(ctx, "no, always, on-failure or unless-stopped"),
            },
            "ports" => s.ports = ports(v, &path, ctx),
            "expose" => {
                for p in strings(v).unwrap_or_default() {
                    match port_range(p.split('/').next().unwrap_or_default()) {
                        Some((start, _)) => s.expose.push(start),
                        None => ctx.err(&path, format!("{p:?} is not a port")),
                    }
                }
            }
            "user" => s.user = scalar(v),
            "working_dir" => s.working_dir = scalar(v),
            "hostname" => s.hostname = scalar(v),
            "container_name" => {
                s.container_name = scalar(v);
                ctx.warn(
                    Some(name),
                    WarningKind::Note,
                    "container_name is ignored: berth names containers berth_<project>_<stack>_<service>; other services reach this one by its service name",
                );
            }
            "labels" => s.labels = plain_key_values(v).unwrap_or_default(),
            "cap_add" => s.cap_add = strings(v).unwrap_or_default(),
            "cap_drop" => s.cap_drop = strings(v).unwrap_or_default(),
            "ulimits" => s.ulimits = ulimits(v, &path, ctx),
            "shm_size" => match bytes_value(v) {
                Some(b) => s.shm_size = Some(b),
                None => bad(ctx, "a size such as 256m"),
            },
            "stop_grace_period" => match scalar(v).as_deref().and_then(duration_ms) {
                Some(ms) => s.stop_grace_period_ms = Some(ms),
                None => bad(ctx, "a duration such as 30s"),
            },
            "stop_signal" => s.stop_signal = scalar(v),
            "sysctls" => s.sysctls = plain_key_values(v).unwrap_or_default(),
            "tty" => s.tty = boolean(v).unwrap_or(false),
            "stdin_open" => s.stdin_open = boolean(v).unwrap_or(false),
            "init" => s.init = boolean(v).unwrap_or(false),
            "read_only" => s.read_only = boolean(v).unwrap_or(false),
            "privileged" => s.privileged = boolean(v).unwrap_or(false),
            "exclude_from_hc" => s.exclude_from_health = boolean(v).unwrap_or(false),
            "network_mode" => s.network_mode = scalar(v),
            "pid" => s.pid = scalar(v),
            "platform" => s.platform = scalar(v),
            "logging" => {
                check_keys(v, &["driver", "options"], &path, ctx);
                let driver = v.get("driver").and_then(scalar);
                let options = v
                    .get("options")
                    .and_then(plain_key_values)
                    .unwrap_or_default();
                s.logging = Some(Logging { driver, options });
            }
            "security_opt" => s.security_opt = strings(v).unwrap_or_default(),
            "devices" => s.devices = strings(v).unwrap_or_default(),
            "deploy" => deploy(v, &path, &mut s, ctx),
            "secrets" => s.secrets = file_mounts(v, "/run/secrets/", &path, ctx),
            "configs" => s.configs = file_mounts(v, "/", &path, ctx),
            "networks" => s.aliases = service_networks(v, networks, &path, ctx),
            // Services reach each other by name on the stack's network;
            // `name:alias` adds the alias.
            "links" => {
                for link in strings(v).unwrap_or_default() {
                    if let Some((_, alias)) = link.split_once(':') {
                        s.aliases.push(alias.to_owned());
                    }
                }
            }
            "profiles" => {}
            _ => ctx.err(&path, supported::refusal(key)),
        }
    }
    if s.image.is_none() && s.build.is_none() {
        ctx.err(&["services", name], "needs an `image` or a `build`");
    }
    Some((s, env))
}

fn restart_policy(text: &str) -> Option<RestartPolicy> {
    let base = text.split(':').next().unwrap_or_default();
    RestartPolicy::parse(base)
}

fn build(v: &Value, path: &[&str], ctx: &mut Ctx) -> Option<Build> {
    if let Some(context) = scalar(v) {
        return Some(Build {
            context,
            dockerfile: None,
            args: BTreeMap::new(),
            target: None,
        });
    }
    let map = v.as_mapping()?;
    let mut b = Build {
        context: ".".to_owned(),
        dockerfile: None,
        args: BTreeMap::new(),
        target: None,
    };
    for (k, val) in map {
        let k = k.as_str().unwrap_or_default();
        match k {
            "context" => b.context = scalar(val).unwrap_or_default(),
            "dockerfile" => b.dockerfile = scalar(val),
            "args" => b.args = plain_key_values(val).unwrap_or_default(),
            "target" => b.target = scalar(val),
            _ => ctx.err(
                &[path, &[k]].concat(),
                "not supported in build: use context, dockerfile, args and target",
            ),
        }
    }
    Some(b)
}

fn env_files(v: &Value, path: &[&str], ctx: &mut Ctx) -> Vec<EnvFile> {
    let items = match v {
        Value::Sequence(items) => items.clone(),
        other => vec![other.clone()],
    };
    let mut out = Vec::new();
    for item in items {
        if let Some(p) = scalar(&item) {
            out.push(EnvFile {
                path: p,
                required: true,
            });
        } else if let Some(p) = item.get("path").and_then(scalar) {
            let required = item.get("required").and_then(boolean).unwrap_or(true);
            out.push(EnvFile { path: p, required });
        } else {
            ctx.err(path, "must be a path or {path, required}");
        }
    }
    out
}

fn healthcheck(v: &Value, path: &[&str], ctx: &mut Ctx) -> Option<Healthcheck> {
    let map = v.as_mapping()?;
    let mut h = Healthcheck {
        test: Vec::new(),
        interval_ms: None,
        timeout_ms: None,
        retries: None,
        start_period_ms: None,
        start_interval_ms: None,
        disable: false,
    };
    for (k, val) in map {
        let k = k.as_str().unwrap_or_default();
        let at = [path, &[k]].concat();
        let dur = |ctx: &mut Ctx| {
            let ms = scalar(val).as_deref().and_then(duration_ms);
            if ms.is_none() {
                ctx.err(&at, "must be a duration such as 10s");
            }
            ms
        };
        match k {
            "test" => {
                h.test = match val {
                    Value::Sequence(_) => strings(val).unwrap_or_default(),
                    other => vec!["CMD-SHELL".to_owned(), scalar(other).unwrap_or_default()],
                }
            }
            "interval" => h.interval_ms = dur(ctx),
            "timeout" => h.timeout_ms = dur(ctx),
            "start_period" => h.start_period_ms = dur(ctx),
            "start_interval" => h.start_interval_ms = dur(ctx),
            "retries" => h.retries = scalar(val).and_then(|r| r.parse().ok()),
            "disable" => h.disable = boolean(val).unwrap_or(false),
            _ => ctx.err(&at, "not a healthcheck key"),
        }
    }
    Some(h)
}

fn mount_target(text: &str, path: &[&str], ctx: &mut Ctx) -> Option<MountPath> {
    match MountPath::parse(text) {
        Ok(p) => Some(p),
        Err(e) => {
            ctx.err(path, format!("the mount path {text:?} {e}"));
            None
        }
    }
}

fn named_source(source: &str, path: &[&str], ctx: &mut Ctx) -> Option<MountSource> {
    let is_path = source.starts_with(['/', '.', '~']);
    if is_path {
        return Some(MountSource::Bind {
            path: source.to_owned(),
            content: None,
            mode: None,
            is_directory: false,
        });
    }
    match volume_name(source) {
        Some(volume) => Some(MountSource::Volume {
            name: source.to_owned(),
            volume,
        }),
        None => {
            ctx.err(
                path,
                format!("{source:?} cannot be made into a volume name"),
            );
            None
        }
    }
}

fn volumes(v: &Value, path: &[&str], ctx: &mut Ctx) -> Vec<Mount> {
    let mut out = Vec::new();
    let Some(items) = v.as_sequence() else {
        ctx.err(path, "must be a list");
        return out;
    };
    for item in items {
        if let Some(text) = scalar(item) {
            let parts: Vec<&str> = text.split(':').collect();
            let (source, target, mode) = match parts.as_slice() {
                [target] => (None, *target, ""),
                [source, target] => (Some(*source), *target, ""),
                [source, target, mode] => (Some(*source), *target, *mode),
                _ => {
                    ctx.err(path, format!("{text:?} is not source:target[:mode]"));
                    continue;
                }
            };
            let Some(target) = mount_target(target, path, ctx) else {
                continue;
            };
            let source = match source {
                None => Some(MountSource::Anonymous {
                    volume: VolumeName::for_path(&target),
                }),
                Some(source) => named_source(source, path, ctx),
            };
            if let Some(source) = source {
                out.push(Mount {
                    source,
                    target,
                    read_only: mode.split(',').any(|m| m == "ro"),
                });
            }
        } else if let Some(map) = item.as_mapping() {
            if let Some(mount) = long_volume(map, path, ctx) {
                out.push(mount);
            }
        } else {
            ctx.err(path, "each volume is a string or a mapping");
        }
    }
    out
}

fn long_volume(map: &Mapping, path: &[&str], ctx: &mut Ctx) -> Option<Mount> {
    let get = |k: &str| map.get(k).and_then(scalar);
    let whole = Value::Mapping(map.clone());
    check_keys(
        &whole,
        &[
            "type",
            "source",
            "target",
            "read_only",
            "bind",
            "volume",
            "tmpfs",
            "consistency",
            // Coolify's: a file's content and mode, or a directory.
            "content",
            "mode",
            "is_directory",
            "isDirectory",
        ],
        path,
        ctx,
    );
    // berth creates missing host directories anyway; other sub-options
    // (propagation, subpath, nocopy) would change what is mounted.
    for (sub, allowed) in [
        ("bind", &["create_host_path"][..]),
        ("volume", &[][..]),
        ("tmpfs", &["size"][..]),
    ] {
        if let Some(body) = map.get(sub) {
            check_keys(body, allowed, &[path, &[sub]].concat(), ctx);
        }
    }
    let target = mount_target(&get("target").unwrap_or_default(), path, ctx)?;
    let kind = get("type").unwrap_or_else(|| "volume".to_owned());
    let source = match (kind.as_str(), get("source")) {
        ("volume", None) => MountSource::Anonymous {
            volume: VolumeName::for_path(&target),
        },
        ("volume", Some(source)) => named_source(&source, path, ctx)?,
        ("bind", Some(source)) => MountSource::Bind {
            path: source,
            content: get("content"),
            mode: get("mode").and_then(|m| u32::from_str_radix(&m, 8).ok()),
            is_directory: map
                .get("is_directory")
                .or_else(|| map.get("isDirectory"))
                .and_then(boolean)
                .unwrap_or(false),
        },
        ("tmpfs", _) => MountSource::Tmpfs {
            size: map
                .get("tmpfs")
                .and_then(|t| t.get("size"))
                .and_then(bytes_value),
        },
        (other, _) => {
            ctx.err(
                path,
                format!("volume type {other:?} needs a source berth supports"),
            );
            return None;
        }
    };
    Some(Mount {
        source,
        target,
        read_only: map.get("read_only").and_then(boolean).unwrap_or(false),
    })
}

fn depends_on(v: &Value, path: &[&str], ctx: &mut Ctx) -> Vec<Dependency> {
    let plain = |service: String| Dependency {
        service,
        condition: Condition::ServiceStarted,
        restart: false,
        required: true,
    };
    match v {
        Value::Sequence(_) => strings(v)
            .unwrap_or_default()
            .into_iter()
            .map(plain)
            .collect(),
        Value::Mapping(map) => {
            let mut out = Vec::new();
            for (name, body) in map {
                let Some(name) = scalar(name) else { continue };
                check_keys(
                    body,
                    &["condition", "restart", "required"],
                    &[path, &[name.as_str()]].concat(),
                    ctx,
                );
                let mut dep = plain(name.clone());
                if let Some(c) = body.get("condition").and_then(scalar) {
                    dep.condition = match c.as_str() {
                        "service_started" => Condition::ServiceStarted,
                        "service_healthy" => Condition::ServiceHealthy,
                        "service_completed_successfully" => Condition::ServiceCompletedSuccessfully,
                        other => {
                            ctx.err(
                                &[path, &[name.as_str(), "condition"]].concat(),
                                format!("{other:?} is not service_started, service_healthy or service_completed_successfully"),
                            );
                            continue;
                        }
                    };
                }
                dep.restart = body.get("restart").and_then(boolean).unwrap_or(false);
                dep.required = body.get("required").and_then(boolean).unwrap_or(true);
                out.push(dep);
            }
            out
        }
        _ => {
            ctx.err(path, "must be a list or a mapping of services");
            Vec::new()
        }
    }
}

fn port_range(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a > 0 && b >= a).then_some((a, b))
}

fn ports(v: &Value, path: &[&str], ctx: &mut Ctx) -> Vec<PortMapping> {
    let mut out = Vec::new();
    for item in v.as_sequence().into_iter().flatten() {
        let mapping = if let Some(text) = scalar(item) {
            let (spec, protocol) = text.split_once('/').unwrap_or((&text, "tcp"));
            let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
            let (target, published, host_ip) = match parts.as_slice() {
                [t] => (*t, None, None),
                [t, p] => (*t, Some(*p), None),
                [t, p, ip] => (*t, Some(*p), Some(*ip)),
                _ => ("", None, None),
            };
            port_range(target).map(|(start, end)| PortMapping {
                host_ip: host_ip.map(str::to_owned),
                published: published.filter(|p| !p.is_empty()).map(str::to_owned),
                target: start,
                target_end: end,
                protocol: protocol.to_owned(),
            })
        } else {
            check_keys(
                item,
                &["target", "published", "host_ip", "protocol"],
                path,
                ctx,
            );
            item.get("target")
                .and_then(scalar)
                .and_then(|t| port_range(&t))
                .map(|(start, end)| PortMapping {
                    host_ip: item.get("host_ip").and_then(scalar),
                    published: item.get("published").and_then(scalar),
                    target: start,
                    target_end: end,
                    protocol: item
                        .get("protocol")
                        .and_then(scalar)
                        .unwrap_or_else(|| "tcp".to_owned()),
                })
        };
        match mapping {
            Some(m) => out.push(m),
            None => ctx.err(path, format!("{item:?} is not a port mapping")),
        }
    }
    out
}

fn ulimits(v: &Value, path: &[&str], ctx: &mut Ctx) -> BTreeMap<String, Ulimit> {
    let mut out = BTreeMap::new();
    for (name, val) in v.as_mapping().into_iter().flatten() {
        let Some(name) = scalar(name) else { continue };
        let n = |x: Option<&Value>| x.and_then(scalar).and_then(|s| s.parse::<i64>().ok());
        let limit = match val {
            Value::Mapping(_) => n(val.get("soft")).zip(n(val.get("hard"))),
            other => n(Some(other)).map(|x| (x, x)),
        };
        match limit {
            Some((soft, hard)) => {
                out.insert(name, Ulimit { soft, hard });
            }
            None => ctx.err(
                &[path, &[name.as_str()]].concat(),
                "must be a number or {soft, hard}",
            ),
        }
    }
    out
}

fn deploy(v: &Value, path: &[&str], s: &mut Service, ctx: &mut Ctx) {
    for (k, val) in v.as_mapping().into_iter().flatten() {
        let k = k.as_str().unwrap_or_default();
        let at = [path, &[k]].concat();
        match k {
            "resources" => {
                for (r, body) in val.as_mapping().into_iter().flatten() {
                    let r = r.as_str().unwrap_or_default();
                    if r != "limits" {
                        ctx.err(
                            &[&at[..], &[r]].concat(),
                            "only deploy.resources.limits is supported",
                        );
                        continue;
                    }
                    s.limits = Limits {
                        cpus: body
                            .get("cpus")
                            .and_then(scalar)
                            .and_then(|c| c.parse().ok()),
                        memory: body.get("memory").and_then(bytes_value),
                        pids: body
                            .get("pids")
                            .and_then(scalar)
                            .and_then(|c| c.parse().ok()),
                    };
                }
            }
            "restart_policy" => {
                let policy = match val.get("condition").and_then(scalar).as_deref() {
                    Some("none") => RestartPolicy::No,
                    Some("on-failure") => RestartPolicy::OnFailure,
                    _ => RestartPolicy::Always,
                };
                s.restart.get_or_insert(policy);
            }
            _ => ctx.err(
                &at,
                format!(
                    "not supported: berth runs one container per service (deploy takes {})",
                    supported::DEPLOY_KEYS.join(", ")
                ),
            ),
        }
    }
}

fn file_mounts(v: &Value, base: &str, path: &[&str], ctx: &mut Ctx) -> Vec<FileMount> {
    let mut out = Vec::new();
    for item in v.as_sequence().into_iter().flatten() {
        let owner = |k: &str| item.get(k).and_then(scalar);
        let (uid, gid) = (owner("uid"), owner("gid"));
        let (source, target, mode) = match scalar(item) {
            Some(source) => (source, None, None),
            None => (
                {
                    check_keys(item, &["source", "target", "mode", "uid", "gid"], path, ctx);
                    item.get("source").and_then(scalar).unwrap_or_default()
                },
                item.get("target").and_then(scalar),
                item.get("mode")
                    .and_then(scalar)
                    .and_then(|m| u32::from_str_radix(m.trim_start_matches("0o"), 8).ok()),
            ),
        };
        if source.is_empty() {
            ctx.err(path, "each entry needs a source");
            continue;
        }
        let target = target.unwrap_or_else(|| source.clone());
        // Compose mounts secrets under /run/secrets/ and configs at /<name>
        // unless the target is absolute.
        let target = if target.starts_with('/') {
            target
        } else {
            format!("{base}{target}")
        };
        out.push(FileMount {
            source,
            target,
            mode,
            uid,
            gid,
        });
    }
    out
}

fn service_networks(v: &Value, declared: &[String], path: &[&str], ctx: &mut Ctx) -> Vec<String> {
    let mut aliases = Vec::new();
    let names: Vec<(String, Option<&Value>)> = match v {
        Value::Sequence(_) => strings(v)
            .unwrap_or_default()
            .into_iter()
            .map(|n| (n, None))
            .collect(),
        Value::Mapping(map) => map
            .iter()
            .filter_map(|(k, body)| scalar(k).map(|k| (k, Some(body))))
            .collect(),
        _ => Vec::new(),
    };
    for (name, body) in names {
        if name != "default" && !declared.contains(&name) {
            ctx.err(
                path,
                format!("network {name:?} is not declared at the top level"),
            );
        }
        if let Some(body) = body {
            check_keys(body, &["aliases"], &[path, &[name.as_str()]].concat(), ctx);
        }
        if let Some(list) = body.and_then(|b| b.get("aliases")).and_then(strings) {
            aliases.extend(list);
        }
    }
    aliases
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_compose_volume_name_folds_to_a_valid_name_or_none(name in ".{0,60}") {
            if let Some(v) = volume_name(&name) {
                prop_assert_eq!(VolumeName::parse(v.as_str()).ok(), Some(v));
            }
        }

        #[test]
        fn whole_seconds_and_minutes_read_back(m in 0u64..1000, s in 0u64..60) {
            prop_assert_eq!(duration_ms(&format!("{m}m{s}s")), Some((m * 60 + s) * 1000));
        }

        #[test]
        fn short_port_syntax_reads_back(ip in "127\\.0\\.0\\.[0-9]", host in 1u16.., target in 1u16..) {
            let lines = Lines::new("", &[]);
            let mut ctx = Ctx { lines: &lines, errors: Vec::new(), warnings: Vec::new() };
            let v = Value::Sequence(vec![Value::String(format!("{ip}:{host}:{target}/udp"))]);
            let p = &ports(&v, &[], &mut ctx)[0];
            prop_assert_eq!(p.host_ip.as_deref(), Some(ip.as_str()));
            prop_assert_eq!(p.published.clone(), Some(host.to_string()));
            prop_assert_eq!((p.target, p.protocol.as_str()), (target, "udp"));
        }
    }

    #[test]
    fn durations_read_like_go() {
        assert_eq!(duration_ms("10s"), Some(10_000));
        assert_eq!(duration_ms("1m30s"), Some(90_000));
        assert_eq!(duration_ms("500ms"), Some(500));
        assert_eq!(duration_ms("1.5s"), Some(1500));
        assert_eq!(duration_ms("2h"), Some(7_200_000));
        assert_eq!(duration_ms("30"), Some(30_000));
        assert_eq!(duration_ms("soon"), None);
        assert_eq!(duration_ms(""), None);
    }

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(bytes("64m"), Some(64 << 20));
        assert_eq!(bytes("1gb"), Some(1 << 30));
        assert_eq!(bytes("500M"), Some(500 << 20));
        assert_eq!(bytes("1024"), Some(1024));
        assert_eq!(bytes("lots"), None);
    }

    #[test]
    fn compose_volume_names_become_dns_labels() {
        assert_eq!(volume_name("pg_data").unwrap().as_str(), "pg-data");
        assert_eq!(volume_name("Data.1").unwrap().as_str(), "data-1");
        assert!(volume_name("__").is_none());
    }

    #[test]
    fn port_ranges_parse() {
        assert_eq!(port_range("80"), Some((80, 80)));
        assert_eq!(port_range("9000-9010"), Some((9000, 9010)));
        assert_eq!(port_range("0"), None);
        assert_eq!(port_range("9-1"), None);
    }
}
