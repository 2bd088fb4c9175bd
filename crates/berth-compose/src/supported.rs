//! What berth accepts from a compose file, and why the rest is refused.
//! A key missing from these lists is an error naming the key and its line:
//! nothing a file asks for is ever dropped without a word.

/// Service keys berth plans.
pub const SERVICE_KEYS: &[&str] = &[
    "build",
    "cap_add",
    "cap_drop",
    "command",
    "configs",
    "container_name",
    "depends_on",
    "deploy",
    "devices",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "labels",
    "links",
    "logging",
    "network_mode",
    "networks",
    "pid",
    "platform",
    "ports",
    "privileged",
    "profiles",
    "read_only",
    "restart",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "volumes",
    "working_dir",
    // Coolify's: leave the service out of the stack's health summary.
    "exclude_from_hc",
];

/// Service keys refused on purpose, with the reason shown to the user.
pub const REFUSED_SERVICE_KEYS: &[(&str, &str)] = &[
    (
        "volumes_from",
        "berth mounts named volumes per service; declare the shared volume in both services instead",
    ),
    (
        "extends",
        "extending services from other files is not supported; inline the service",
    ),
    (
        "ipc",
        "sharing IPC namespaces with the host or other containers is not supported",
    ),
    ("userns_mode", "user namespace modes are not supported"),
    ("cgroup_parent", "berth places containers in cgroups itself"),
    (
        "external_links",
        "containers outside the stack are not reachable by name; use the project network",
    ),
    ("scale", "berth runs one container per service"),
];

/// Top-level keys berth plans (plus any `x-` extension, kept for anchors).
pub const TOP_KEYS: &[&str] = &[
    "configs", "name", "networks", "secrets", "services", "version", "volumes",
];

/// Keys inside `deploy` berth plans.
pub const DEPLOY_KEYS: &[&str] = &["resources", "restart_policy"];

/// Whether `key` is an extension (`x-…`), which compose ignores by design.
pub fn is_extension(key: &str) -> bool {
    key.starts_with("x-")
}

/// The message for a service key berth does not plan.
pub fn refusal(key: &str) -> String {
    match REFUSED_SERVICE_KEYS.iter().find(|(k, _)| *k == key) {
        Some((_, why)) => format!("not supported: {why}"),
        None => "not supported by berth (see the crate's supported list)".to_owned(),
    }
}
