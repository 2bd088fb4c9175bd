//! Storage: volume names, mount paths, host paths for bind mounts and the
//! rules that keep a bind mount from handing an app the host, the deploy
//! strategy a service uses, and the kinds of resource berth runs.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::name::{NameError, parse_dns_label};

/// The name of one of an app's volumes (`data`, `uploads`): a DNS label, so
/// the Docker volume `berth_<project>_<app>_<volume>` maps back one to one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VolumeName(String);

impl VolumeName {
    pub fn parse(input: &str) -> Result<VolumeName, NameError> {
        let name = parse_dns_label(input)?;
        // Docker's volume name is three names joined: keep the whole short.
        let len = name.len();
        if len > 40 {
            return Err(NameError::TooLong(len));
        }
        Ok(VolumeName(name))
    }

    /// A volume name for a path an image declares with `VOLUME`:
    /// `/var/lib/postgresql/data` → `var-lib-postgresql-data`.
    pub fn for_path(path: &MountPath) -> VolumeName {
        let mut name: String = path
            .as_str()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        while name.contains("--") {
            name = name.replace("--", "-");
        }
        let mut name = name.trim_matches('-').to_owned();
        if name.len() > 40 {
            // Keep the end: it is the part that tells paths apart (`…/data`).
            name = name[name.len() - 40..].trim_start_matches('-').to_owned();
        }
        VolumeName::parse(&name).unwrap_or_else(|_| VolumeName("data".to_owned()))
    }

    /// `<name>-<n>` (the name shortened to make room): a second volume whose
    /// natural name is taken. Always valid, so a loop that counts `n` up ends.
    pub fn with_suffix(&self, n: u32) -> VolumeName {
        let suffix = format!("-{n}");
        let keep = 40usize.saturating_sub(suffix.len()).min(self.0.len());
        VolumeName(format!("{}{suffix}", self.0[..keep].trim_end_matches('-')))
    }

    /// The first of `self`, `self-2`, `self-3`, … that `taken` refuses.
    pub fn first_free(&self, taken: impl Fn(&VolumeName) -> bool) -> VolumeName {
        let mut candidate = self.clone();
        let mut n = 2;
        while taken(&candidate) {
            candidate = self.with_suffix(n);
            n += 1;
        }
        candidate
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for VolumeName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        VolumeName::parse(&value)
    }
}

impl From<VolumeName> for String {
    fn from(value: VolumeName) -> String {
        value.0
    }
}

impl fmt::Display for VolumeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a path was refused. Shown next to the form field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("is required")]
    Empty,
    #[error("must be an absolute path (start with '/')")]
    Relative,
    #[error("may not contain '.' or '..' parts")]
    DotParts,
    #[error("may not contain control characters, ':' or ','")]
    InvalidChar,
    #[error("may not be '/' itself")]
    Root,
    #[error("must be at most 1024 characters")]
    TooLong,
}

/// Checks an absolute path and returns it without a trailing slash.
fn parse_absolute(input: &str) -> Result<String, PathError> {
    let path = input.trim();
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > 1024 {
        return Err(PathError::TooLong);
    }
    if !path.starts_with('/') {
        return Err(PathError::Relative);
    }
    // ':' and ',' would change the meaning of Docker's short mount syntax.
    if path.chars().any(|c| c.is_control() || c == ':' || c == ',') {
        return Err(PathError::InvalidChar);
    }
    let mut parts = Vec::new();
    for part in Path::new(path).components() {
        match part {
            Component::RootDir => {}
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            // Refused rather than resolved: `/srv/x/../..` must not read as
            // something under /srv.
            Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                return Err(PathError::DotParts);
            }
        }
    }
    if path.split('/').any(|p| p == "." || p == "..") {
        return Err(PathError::DotParts);
    }
    if parts.is_empty() {
        return Err(PathError::Root);
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Where a volume is mounted inside a container: absolute, never `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MountPath(String);

impl MountPath {
    pub fn parse(input: &str) -> Result<MountPath, PathError> {
        parse_absolute(input).map(MountPath)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MountPath {
    type Error = PathError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        MountPath::parse(&value)
    }
}

impl From<MountPath> for String {
    fn from(value: MountPath) -> String {
        value.0
    }
}

impl fmt::Display for MountPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A directory (or file) on the host for a bind mount: absolute, with no
/// `.` or `..` parts. Whether berth lets an app have it is
/// [`BindRules::check`]'s call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPath(String);

impl HostPath {
    pub fn parse(input: &str) -> Result<HostPath, PathError> {
        match parse_absolute(input) {
            Err(PathError::Root) => Ok(HostPath("/".to_owned())),
            other => other.map(HostPath),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl TryFrom<String> for HostPath {
    type Error = PathError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        HostPath::parse(&value)
    }
}

impl From<HostPath> for String {
    fn from(value: HostPath) -> String {
        value.0
    }
}

impl fmt::Display for HostPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a mount's data lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "source", rename_all = "lowercase")]
pub enum VolumeSource {
    /// A named Docker volume (its Docker name, `berth_<project>_<app>_<volume>`
    /// unless an orphan was attached).
    Volume(String),
    /// A host directory or file.
    Bind(HostPath),
}

impl VolumeSource {
    /// `volume` or `bind`, as the store, the pages and the API name it.
    pub fn kind(&self) -> &'static str {
        match self {
            VolumeSource::Volume(_) => "volume",
            VolumeSource::Bind(_) => "bind",
        }
    }

    /// The Docker volume's name, or the host path.
    pub fn location(&self) -> &str {
        match self {
            VolumeSource::Volume(name) => name,
            VolumeSource::Bind(path) => path.as_str(),
        }
    }
}

/// One mount of an app: what, where, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppVolume {
    pub name: VolumeName,
    pub source: VolumeSource,
    pub target: MountPath,
    pub read_only: bool,
    /// Made by berth for a path the image declares with `VOLUME`.
    pub from_image: bool,
}

/// The Docker volume berth makes for an app's volume: `_` never occurs in
/// the three names, so the mapping is one to one.
pub fn docker_volume_name(
    project: &crate::ProjectName,
    app: &crate::AppName,
    volume: &VolumeName,
) -> String {
    format!("berth_{project}_{app}_{volume}")
}

/// Host directories no app gets without the admin's explicit "dangerous
/// mount" confirmation: the system's own, and Docker's.
const SYSTEM_DIRS: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/lib/docker",
    "/var/run",
];

/// Why a bind mount is refused without the "dangerous mount" confirmation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindRefusal {
    #[error("'/' would hand the app the whole host")]
    Root,
    #[error("{0} is the Docker socket: whoever has it is root on this host")]
    DockerSocket(String),
    #[error("{path} is a system directory ({dir})")]
    SystemDir { path: String, dir: String },
    #[error(
        "{0} is berth's data dir or one of its parents: it holds the secret key and the database"
    )]
    DataDir(String),
    #[error("{path} is outside the {root_name} {root}; put the directory under it")]
    OutsideRoot {
        path: String,
        root_name: &'static str,
        root: String,
    },
}

/// Where host directories handed to the outside may come from: under a root
/// the admin chose (the volumes root for bind mounts, the static root for
/// static sites), and never from berth's data dir (which holds the secret
/// key and the database), a system directory or `/`.
#[derive(Debug, Clone)]
pub struct BindRules {
    pub root: PathBuf,
    /// How messages name the root: "volumes root", "static root".
    pub root_name: &'static str,
    pub data_dir: PathBuf,
}

impl BindRules {
    /// Whether the root itself is a sane choice: not `/`, a system
    /// directory, or the data dir or one of its parents (everything under
    /// the root is allowed, so such a root would allow the secret key).
    pub fn check_root(&self) -> Result<(), BindRefusal> {
        let root = &self.root;
        let shown = root.display().to_string();
        if root.as_path() == Path::new("/") {
            return Err(BindRefusal::Root);
        }
        if self.data_dir.starts_with(root) {
            return Err(BindRefusal::DataDir(shown));
        }
        if root.starts_with(&self.data_dir) {
            return Ok(());
        }
        match SYSTEM_DIRS.iter().find(|d| root.starts_with(d)) {
            Some(dir) => Err(BindRefusal::SystemDir {
                path: shown,
                dir: (*dir).to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Whether `path` may be used (for a bind mount: without the admin's
    /// "dangerous mount" confirmation). `path` should already have its
    /// symlinks resolved (where it exists), so a link cannot lead around the
    /// rules.
    pub fn check(&self, path: &Path) -> Result<(), BindRefusal> {
        let shown = path.display().to_string();
        let is_socket = path.file_name().is_some_and(|n| n == "docker.sock");
        if path == Path::new("/") {
            return Err(BindRefusal::Root);
        }
        if is_socket {
            return Err(BindRefusal::DockerSocket(shown));
        }
        // The volumes root may sit inside the data dir (its default does):
        // under it is the one place in there apps may use.
        let root = &self.root;
        if path.starts_with(root) && path != root.as_path() {
            return Ok(());
        }
        if self.data_dir.starts_with(path) || path.starts_with(&self.data_dir) {
            return Err(BindRefusal::DataDir(shown));
        }
        if let Some(dir) = SYSTEM_DIRS.iter().find(|d| path.starts_with(d)) {
            return Err(BindRefusal::SystemDir {
                path: shown,
                dir: (*dir).to_owned(),
            });
        }
        Err(BindRefusal::OutsideRoot {
            path: shown,
            root_name: self.root_name,
            root: root.display().to_string(),
        })
    }
}

/// How a new version of a service replaces the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployStrategy {
    /// New beside old → health check → route switch → drain → stop the old.
    /// For stateless web services: no request is ever refused.
    Rolling,
    /// Stop the old → start the new on the same volumes → health check; the
    /// edge holds requests meanwhile, and a failed check brings the old back.
    /// For anything that owns data two containers must not share.
    Recreate,
}

impl DeployStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployStrategy::Rolling => "rolling",
            DeployStrategy::Recreate => "recreate",
        }
    }

    pub fn parse(s: &str) -> Option<DeployStrategy> {
        match s {
            "rolling" => Some(DeployStrategy::Rolling),
            "recreate" => Some(DeployStrategy::Recreate),
            _ => None,
        }
    }

    /// The strategy a service uses, and why: the user's choice when there is
    /// one; otherwise `recreate` for a service with volumes (two containers
    /// writing one database's files corrupt it) and `rolling` for the rest.
    pub fn choose(chosen: Option<DeployStrategy>, volumes: usize) -> (DeployStrategy, String) {
        match chosen {
            Some(s) => (s, format!("{s}: chosen in the deploy settings")),
            None if volumes > 0 => (
                DeployStrategy::Recreate,
                format!(
                    "recreate: chosen by berth because the app has {volumes} volume{}; two containers must not write the same data at once",
                    if volumes == 1 { "" } else { "s" }
                ),
            ),
            None => (
                DeployStrategy::Rolling,
                "rolling: chosen by berth because the app has no volume; the new version starts beside the old, so no request waits".to_owned(),
            ),
        }
    }
}

impl fmt::Display for DeployStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of resource berth runs; every container and volume carries one
/// as its `berth.kind` label, so reconcile treats each by its own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// One service from an image or a git build.
    App,
    /// The services of a compose file or template.
    Stack,
    /// A managed database.
    Database,
    /// A one-off container: a backup sidecar, a restore drill.
    Job,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 4] = [
        ResourceKind::App,
        ResourceKind::Stack,
        ResourceKind::Database,
        ResourceKind::Job,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::App => "app",
            ResourceKind::Stack => "stack",
            ResourceKind::Database => "database",
            ResourceKind::Job => "job",
        }
    }

    pub fn parse(s: &str) -> Option<ResourceKind> {
        ResourceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mount with the app that has it, for the Storage page.
#[derive(Debug, Clone)]
pub struct OwnedVolume {
    pub project: crate::ProjectName,
    pub app: crate::AppName,
    pub volume: AppVolume,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules() -> BindRules {
        BindRules {
            root: PathBuf::from("/var/lib/berth/volumes"),
            root_name: "volumes root",
            data_dir: PathBuf::from("/var/lib/berth"),
        }
    }

    #[test]
    fn a_root_may_not_be_slash_a_system_dir_or_hold_the_data_dir() {
        let with_root = |root: &str| BindRules {
            root: PathBuf::from(root),
            ..rules()
        };
        assert!(with_root("/var/lib/berth/volumes").check_root().is_ok());
        assert!(with_root("/srv/berth").check_root().is_ok());
        assert!(matches!(
            with_root("/").check_root(),
            Err(BindRefusal::Root)
        ));
        assert!(matches!(
            with_root("/var/lib/berth").check_root(),
            Err(BindRefusal::DataDir(_))
        ));
        assert!(matches!(
            with_root("/var").check_root(),
            Err(BindRefusal::DataDir(_))
        ));
        assert!(matches!(
            with_root("/etc/sites").check_root(),
            Err(BindRefusal::SystemDir { .. })
        ));
    }

    #[test]
    fn mount_paths_are_absolute_and_plain() {
        assert_eq!(MountPath::parse("/data/").unwrap().as_str(), "/data");
        assert_eq!(MountPath::parse("/var//lib").unwrap().as_str(), "/var/lib");
        assert_eq!(MountPath::parse("data"), Err(PathError::Relative));
        assert_eq!(MountPath::parse("/"), Err(PathError::Root));
        assert_eq!(MountPath::parse("/a/../b"), Err(PathError::DotParts));
        assert_eq!(MountPath::parse("/a/./b"), Err(PathError::DotParts));
        assert_eq!(MountPath::parse("/a:/b"), Err(PathError::InvalidChar));
        assert_eq!(MountPath::parse(" "), Err(PathError::Empty));
        assert_eq!(HostPath::parse("/").unwrap().as_str(), "/");
        assert_eq!(HostPath::parse("/srv/x/../.."), Err(PathError::DotParts));
    }

    #[test]
    fn bind_mounts_stay_under_the_volumes_root() {
        let r = rules();
        assert_eq!(
            r.check(Path::new("/var/lib/berth/volumes/app/uploads")),
            Ok(())
        );
        assert_eq!(r.check(Path::new("/")), Err(BindRefusal::Root));
        assert!(matches!(
            r.check(Path::new("/etc")),
            Err(BindRefusal::SystemDir { .. })
        ));
        assert!(matches!(
            r.check(Path::new("/etc/ssl")),
            Err(BindRefusal::SystemDir { .. })
        ));
        assert!(matches!(
            r.check(Path::new("/var/run/docker.sock")),
            Err(BindRefusal::DockerSocket(_))
        ));
        assert!(matches!(
            r.check(Path::new("/run/docker.sock")),
            Err(BindRefusal::DockerSocket(_))
        ));
        for data in [
            "/var/lib/berth",
            "/var/lib",
            "/var",
            "/var/lib/berth/certs",
            "/var/lib/berth/volumes",
        ] {
            assert!(
                matches!(r.check(Path::new(data)), Err(BindRefusal::DataDir(_))),
                "{data}"
            );
        }
        assert!(matches!(
            r.check(Path::new("/srv/media")),
            Err(BindRefusal::OutsideRoot { .. })
        ));
        // A sibling whose name merely starts like the root is outside it.
        assert!(r.check(Path::new("/var/lib/berth/volumes2/x")).is_err());
    }

    #[test]
    fn volume_names_for_image_paths_are_valid_and_tell_paths_apart() {
        let name = |p: &str| VolumeName::for_path(&MountPath::parse(p).unwrap()).to_string();
        assert_eq!(name("/var/lib/postgresql/data"), "var-lib-postgresql-data");
        assert_eq!(name("/data"), "data");
        assert_eq!(name("/DATA_dir"), "data-dir");
        let long = name("/a/very/long/path/that/goes/on/and/on/for/ever/data");
        assert!(long.len() <= 40 && long.ends_with("data"), "{long}");
    }

    #[test]
    fn suffixed_names_stay_valid_and_distinct() {
        let long = VolumeName::parse(&"a".repeat(40)).unwrap();
        for n in [2, 10, 12345] {
            let s = long.with_suffix(n);
            assert_eq!(VolumeName::parse(s.as_str()), Ok(s.clone()));
            assert!(s.as_str().ends_with(&format!("-{n}")), "{s}");
        }
        let data = VolumeName::parse("data").unwrap();
        let taken = ["data", "data-2"];
        assert_eq!(
            data.first_free(|c| taken.contains(&c.as_str())).as_str(),
            "data-3"
        );
        assert_eq!(data.first_free(|_| false), data);
    }

    #[test]
    fn strategy_follows_volumes_unless_chosen() {
        assert_eq!(DeployStrategy::choose(None, 0).0, DeployStrategy::Rolling);
        assert_eq!(DeployStrategy::choose(None, 1).0, DeployStrategy::Recreate);
        let (s, why) = DeployStrategy::choose(Some(DeployStrategy::Rolling), 2);
        assert_eq!(s, DeployStrategy::Rolling);
        assert!(why.contains("chosen in the deploy settings"));
        for s in [DeployStrategy::Rolling, DeployStrategy::Recreate] {
            assert_eq!(DeployStrategy::parse(s.as_str()), Some(s));
        }
        for k in ResourceKind::ALL {
            assert_eq!(ResourceKind::parse(k.as_str()), Some(k));
        }
    }

    proptest! {
        #[test]
        fn parsed_mount_paths_reparse_to_themselves(s in "/[a-z0-9/._-]{0,40}") {
            if let Ok(p) = MountPath::parse(&s) {
                prop_assert_eq!(MountPath::parse(p.as_str()), Ok(p.clone()));
                prop_assert!(!p.as_str().split('/').any(|x| x == ".."));
            }
        }

        #[test]
        fn volume_names_for_any_path_parse(s in "/[a-zA-Z0-9/_-]{1,80}") {
            if let Ok(p) = MountPath::parse(&s) {
                let name = VolumeName::for_path(&p);
                prop_assert_eq!(VolumeName::parse(name.as_str()), Ok(name.clone()));
            }
        }
    }
}
