//! Managed databases: the engines berth runs, each on a pinned major
//! version, and what each engine's official image needs (its data path,
//! port, the environment it reads credentials from, the readiness check).
//!
//! The major version never changes under existing data: the outage that
//! motivated berth was a database image that upgraded itself. So a database
//! records the version its data was made with, and a tag that names another
//! version is refused once the volume holds data.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{DatabaseId, DatabaseName, ImageRef, ProjectName};

/// An engine berth manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseEngine {
    Postgres,
    Mysql,
    Mariadb,
    Redis,
    Valkey,
    Mongodb,
}

/// Why an engine or version was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseError {
    #[error("unknown engine {0:?}: use postgres, mysql, mariadb, redis, valkey or mongodb")]
    UnknownEngine(String),
    #[error("{engine} {version:?} is not a supported version: use one of {supported}")]
    UnknownVersion {
        engine: DatabaseEngine,
        version: String,
        supported: String,
    },
    #[error(
        "the image's tag {tag:?} names version {found}, not {version}: pick the version the image runs"
    )]
    ImageVersion {
        tag: String,
        found: String,
        version: String,
    },
}

/// What an engine's readiness check is: a command Docker runs inside the
/// container (an argument array, never a shell string).
pub type ReadinessCommand = &'static [&'static str];

impl DatabaseEngine {
    pub const ALL: [DatabaseEngine; 6] = [
        DatabaseEngine::Postgres,
        DatabaseEngine::Mysql,
        DatabaseEngine::Mariadb,
        DatabaseEngine::Redis,
        DatabaseEngine::Valkey,
        DatabaseEngine::Mongodb,
    ];

    pub fn parse(input: &str) -> Result<DatabaseEngine, DatabaseError> {
        let s = input.trim().to_ascii_lowercase();
        let alias = match s.as_str() {
            "postgresql" | "pg" => "postgres",
            "mongo" => "mongodb",
            other => other,
        };
        DatabaseEngine::ALL
            .into_iter()
            .find(|e| e.as_str() == alias)
            .ok_or_else(|| DatabaseError::UnknownEngine(input.trim().to_owned()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseEngine::Postgres => "postgres",
            DatabaseEngine::Mysql => "mysql",
            DatabaseEngine::Mariadb => "mariadb",
            DatabaseEngine::Redis => "redis",
            DatabaseEngine::Valkey => "valkey",
            DatabaseEngine::Mongodb => "mongodb",
        }
    }

    /// The name people know it by.
    pub fn label(self) -> &'static str {
        match self {
            DatabaseEngine::Postgres => "PostgreSQL",
            DatabaseEngine::Mysql => "MySQL",
            DatabaseEngine::Mariadb => "MariaDB",
            DatabaseEngine::Redis => "Redis",
            DatabaseEngine::Valkey => "Valkey",
            DatabaseEngine::Mongodb => "MongoDB",
        }
    }

    /// The pinned major versions berth offers, newest first.
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            DatabaseEngine::Postgres => &["17", "16", "15"],
            DatabaseEngine::Mysql => &["8.4"],
            DatabaseEngine::Mariadb => &["11.4", "10.11"],
            DatabaseEngine::Redis => &["7.4"],
            DatabaseEngine::Valkey => &["8"],
            DatabaseEngine::Mongodb => &["8.0", "7.0"],
        }
    }

    /// The version a new database gets when none is asked for.
    pub fn default_version(self) -> &'static str {
        match self {
            DatabaseEngine::Postgres => "16",
            other => other.versions()[0],
        }
    }

    /// A supported version of this engine (`None`: the default).
    pub fn version(self, input: Option<&str>) -> Result<&'static str, DatabaseError> {
        let Some(v) = input.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(self.default_version());
        };
        self.versions()
            .iter()
            .copied()
            .find(|s| *s == v)
            .ok_or_else(|| DatabaseError::UnknownVersion {
                engine: self,
                version: v.to_owned(),
                supported: self.versions().join(", "),
            })
    }

    /// The official image at a version (`postgres:16`).
    pub fn official_image(self, version: &str) -> ImageRef {
        let repo = match self {
            DatabaseEngine::Postgres => "postgres",
            DatabaseEngine::Mysql => "mysql",
            DatabaseEngine::Mariadb => "mariadb",
            DatabaseEngine::Redis => "redis",
            DatabaseEngine::Valkey => "valkey/valkey",
            DatabaseEngine::Mongodb => "mongo",
        };
        ImageRef::parse(&format!("{repo}:{version}")).expect("official image names are valid")
    }

    /// The port it listens on inside the container.
    pub fn port(self) -> u16 {
        match self {
            DatabaseEngine::Postgres => 5432,
            DatabaseEngine::Mysql | DatabaseEngine::Mariadb => 3306,
            DatabaseEngine::Redis | DatabaseEngine::Valkey => 6379,
            DatabaseEngine::Mongodb => 27017,
        }
    }

    /// Where the official image keeps its data: the volume's mount path.
    pub fn data_path(self) -> &'static str {
        match self {
            DatabaseEngine::Postgres => "/var/lib/postgresql/data",
            DatabaseEngine::Mysql | DatabaseEngine::Mariadb => "/var/lib/mysql",
            DatabaseEngine::Redis | DatabaseEngine::Valkey => "/data",
            DatabaseEngine::Mongodb => "/data/db",
        }
    }

    /// The connection URL's scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            DatabaseEngine::Postgres => "postgres",
            DatabaseEngine::Mysql | DatabaseEngine::Mariadb => "mysql",
            DatabaseEngine::Redis | DatabaseEngine::Valkey => "redis",
            DatabaseEngine::Mongodb => "mongodb",
        }
    }

    /// Whether the engine has users and databases of its own (Redis and
    /// Valkey have one password and numbered databases).
    pub fn has_users(self) -> bool {
        !matches!(self, DatabaseEngine::Redis | DatabaseEngine::Valkey)
    }

    /// The environment the official image reads its first user, password
    /// and database from at initialisation. Redis and Valkey read none: their
    /// password goes to the server through [`DatabaseEngine::command`].
    pub fn credential_env(self, c: &Credentials) -> Vec<(String, String)> {
        let pairs: Vec<(&str, &str)> = match self {
            DatabaseEngine::Postgres => vec![
                ("POSTGRES_USER", &c.user),
                ("POSTGRES_PASSWORD", &c.password),
                ("POSTGRES_DB", &c.database),
            ],
            DatabaseEngine::Mysql => vec![
                ("MYSQL_USER", &c.user),
                ("MYSQL_PASSWORD", &c.password),
                ("MYSQL_DATABASE", &c.database),
                (
                    "MYSQL_ROOT_PASSWORD",
                    c.admin_password.as_ref().unwrap_or(&c.password),
                ),
            ],
            DatabaseEngine::Mariadb => vec![
                ("MARIADB_USER", &c.user),
                ("MARIADB_PASSWORD", &c.password),
                ("MARIADB_DATABASE", &c.database),
                (
                    "MARIADB_ROOT_PASSWORD",
                    c.admin_password.as_ref().unwrap_or(&c.password),
                ),
            ],
            DatabaseEngine::Redis | DatabaseEngine::Valkey => {
                vec![("REDIS_PASSWORD", &c.password)]
            }
            DatabaseEngine::Mongodb => vec![
                ("MONGO_INITDB_ROOT_USERNAME", &c.user),
                ("MONGO_INITDB_ROOT_PASSWORD", &c.password),
                ("MONGO_INITDB_DATABASE", &c.database),
            ],
        };
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// The server's command, where the image's default does not take the
    /// password from the environment. The script is a constant: the password
    /// reaches it through `$REDIS_PASSWORD`, never spliced into the text. It
    /// goes through the image's own entrypoint, which drops root as usual.
    pub fn command(self) -> Option<Vec<String>> {
        let server = match self {
            DatabaseEngine::Redis => "redis-server",
            DatabaseEngine::Valkey => "valkey-server",
            _ => return None,
        };
        Some(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("exec docker-entrypoint.sh {server} --requirepass \"$REDIS_PASSWORD\""),
        ])
    }

    /// The readiness check Docker runs in the container: the engine's own
    /// tool over TCP (a Postgres or MariaDB that is still initialising
    /// listens on its socket only, and must not count as ready).
    pub fn readiness(self) -> ReadinessCommand {
        match self {
            DatabaseEngine::Postgres => &["CMD", "pg_isready", "-q", "-h", "127.0.0.1"],
            DatabaseEngine::Mysql => &["CMD", "mysqladmin", "ping", "-h", "127.0.0.1"],
            DatabaseEngine::Mariadb => &["CMD", "mariadb-admin", "ping", "-h", "127.0.0.1"],
            DatabaseEngine::Redis => &["CMD", "redis-cli", "-h", "127.0.0.1", "ping"],
            DatabaseEngine::Valkey => &["CMD", "valkey-cli", "-h", "127.0.0.1", "ping"],
            DatabaseEngine::Mongodb => &[
                "CMD",
                "mongosh",
                "--quiet",
                "--eval",
                "db.adminCommand('ping')",
            ],
        }
    }

    /// Checks that an image's tag does not name another version than the
    /// database's (`postgres:17` for a version 16 database). Tags that name
    /// no version (`latest`, none, `alpine`) pass: the UI flags them.
    pub fn check_image(self, image: &ImageRef, version: &str) -> Result<(), DatabaseError> {
        let Some(tag) = image.tag() else {
            return Ok(());
        };
        match tag_version(tag) {
            Some(found) if !versions_agree(&found, version) => Err(DatabaseError::ImageVersion {
                tag: tag.to_owned(),
                found,
                version: version.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for DatabaseEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The version a tag names: its leading `digits(.digits)*` (`16.4-bookworm`
/// → `16.4`, `16-3.4` → `16`); `None` when it starts with none.
pub fn tag_version(tag: &str) -> Option<String> {
    let end = tag
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(tag.len());
    let v = tag[..end].trim_end_matches('.');
    (!v.is_empty() && v.starts_with(|c: char| c.is_ascii_digit())).then(|| v.to_owned())
}

/// Two versions agree when every component both name is the same
/// (`16` and `16.4` do, `8` and `8.4` do, `16` and `17` do not).
pub fn versions_agree(a: &str, b: &str) -> bool {
    a.split('.').zip(b.split('.')).all(|(x, y)| x == y)
}

/// Whether an image's version is left to whoever pushes its tag.
pub fn is_unpinned(image: &ImageRef) -> bool {
    image.digest().is_none() && image.tag().is_none_or(|t| tag_version(t).is_none())
}

/// A database's credentials. Stored sealed; `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub user: String,
    pub password: String,
    /// The database inside the server (for Redis and Valkey: `0`).
    pub database: String,
    /// MySQL's and MariaDB's root password: not the app user's, so an app
    /// holding the URL is not the server's administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &crate::REDACTED)
            .field("database", &self.database)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| crate::REDACTED),
            )
            .finish()
    }
}

impl Credentials {
    /// The URL an app on the project network connects with. The password is
    /// made of URL-safe characters (see the generator), so nothing needs escaping.
    pub fn url(&self, engine: DatabaseEngine, host: &str, port: u16) -> String {
        let scheme = engine.scheme();
        let Credentials {
            user,
            password,
            database,
            ..
        } = self;
        match engine {
            DatabaseEngine::Redis | DatabaseEngine::Valkey => {
                format!("{scheme}://default:{password}@{host}:{port}/{database}")
            }
            DatabaseEngine::Mongodb => {
                format!("{scheme}://{user}:{password}@{host}:{port}/{database}?authSource=admin")
            }
            _ => format!("{scheme}://{user}:{password}@{host}:{port}/{database}"),
        }
    }
}

/// Whether berth keeps the database running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseState {
    Running,
    Stopped,
}

impl DatabaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseState::Running => "running",
            DatabaseState::Stopped => "stopped",
        }
    }
}

/// A managed database as stored (its credentials are read apart, on purpose).
#[derive(Debug, Clone)]
pub struct Database {
    pub id: DatabaseId,
    pub project: ProjectName,
    pub name: DatabaseName,
    pub engine: DatabaseEngine,
    /// The major version its data is made with.
    pub version: String,
    pub image: ImageRef,
    /// A port published on 127.0.0.1 (`None`: none, the default).
    pub host_port: Option<u16>,
    pub desired: DatabaseState,
    /// What the last action did, or why it failed.
    pub message: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Database {
    /// Flagged in the UI: a tag that names no version.
    pub fn unpinned(&self) -> bool {
        is_unpinned(&self.image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_parse_with_their_usual_names_and_refuse_others() {
        assert_eq!(
            DatabaseEngine::parse("PostgreSQL").unwrap(),
            DatabaseEngine::Postgres
        );
        assert_eq!(
            DatabaseEngine::parse("mongo").unwrap(),
            DatabaseEngine::Mongodb
        );
        let err = DatabaseEngine::parse("oracle").unwrap_err().to_string();
        assert!(err.contains("oracle") && err.contains("postgres"), "{err}");
    }

    #[test]
    fn versions_are_pinned_and_each_engine_has_a_default() {
        let pg = DatabaseEngine::Postgres;
        assert_eq!(pg.version(None).unwrap(), "16");
        assert_eq!(pg.version(Some("15")).unwrap(), "15");
        let err = pg.version(Some("latest")).unwrap_err().to_string();
        assert!(err.contains("17, 16, 15"), "{err}");
        for e in DatabaseEngine::ALL {
            assert!(e.versions().contains(&e.default_version()));
            let image = e.official_image(e.default_version());
            assert!(!is_unpinned(&image), "{image:?}");
            e.check_image(&image, e.default_version()).unwrap();
        }
        assert_eq!(pg.official_image("16").as_str(), "postgres:16");
    }

    #[test]
    fn an_image_naming_another_version_is_refused() {
        let pg = DatabaseEngine::Postgres;
        let img = |s: &str| ImageRef::parse(s).unwrap();
        assert!(pg.check_image(&img("postgres:17"), "16").is_err());
        assert!(
            pg.check_image(&img("postgis/postgis:17-3.5"), "16")
                .is_err()
        );
        pg.check_image(&img("postgis/postgis:16-3.4"), "16")
            .unwrap();
        pg.check_image(&img("postgres:16.4-bookworm"), "16")
            .unwrap();
        pg.check_image(&img("postgres:latest"), "16").unwrap();
        DatabaseEngine::Mysql
            .check_image(&img("mysql:8"), "8.4")
            .unwrap();
        assert!(
            DatabaseEngine::Mongodb
                .check_image(&img("mongo:7.0"), "8.0")
                .is_err()
        );
        assert!(is_unpinned(&img("postgres")));
        assert!(is_unpinned(&img("postgres:latest")));
        assert!(is_unpinned(&img("redis:alpine")));
        assert!(!is_unpinned(&img("redis:7.4-alpine")));
    }

    #[test]
    fn credentials_never_show_the_password_in_debug() {
        let c = Credentials {
            user: "app".into(),
            password: "s3cretPW".into(),
            database: "app".into(),
            admin_password: Some("r00tPW".into()),
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cretPW") && !shown.contains("r00tPW"),
            "{shown}"
        );
        assert_eq!(
            c.url(DatabaseEngine::Postgres, "main", 5432),
            "postgres://app:s3cretPW@main:5432/app"
        );
    }

    #[test]
    fn database_names_follow_the_app_name_rules() {
        assert!(DatabaseName::parse("main-db").is_ok());
        assert!(DatabaseName::parse("Main").is_err());
        assert!(DatabaseName::parse("a_b").is_err());
    }
}
