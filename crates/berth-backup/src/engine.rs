//! The commands that dump and restore each engine, built as argument arrays.
//!
//! Nothing here goes through a shell with interpolated values: the argv is
//! exec'd as is, identifiers are [`DbIdent`]s (which cannot start with `-` or
//! hold quotes), and passwords only travel in the environment of the exec or
//! sidecar container (`PGPASSWORD`, `MYSQL_PWD`, `REDISCLI_AUTH`). That closes
//! the injection class of coolify#4978 and dokploy PR#4862.
//!
//! MongoDB's tools read no password from the environment. Their command is
//! the one exception: a constant `sh` script (no value is ever spliced into
//! it) hands `$BERTH_MONGO_CONFIG`, a YAML (JSON) config with the password,
//! to `--config` through a here-document on fd 3, so the password is neither
//! in argv nor on disk.

use std::fmt;

use age::secrecy::{ExposeSecret, SecretString};

use crate::marker::FormatMarker;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    MariaDb,
    /// Oracle's MySQL: the same flags as MariaDB, with `mysqldump`/`mysql`.
    MySql,
    Redis,
    Valkey,
    MongoDb,
}

/// A database or user name that is safe as one argv element: letters,
/// digits, `_`, `-`, `.`, not starting with `-`, at most 63 bytes (the
/// PostgreSQL limit, the smallest of the engines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbIdent(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid database identifier {0:?}: use letters, digits, '_', '-' or '.', not starting with '-', at most 63 bytes"
)]
pub struct InvalidIdent(pub String);

impl DbIdent {
    pub fn parse(s: &str) -> Result<Self, InvalidIdent> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidIdent(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DbIdent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the dump connects: the database container's name on its network.
#[derive(Debug, Clone)]
pub struct Connection {
    pub host: String,
    pub port: u16,
    pub user: DbIdent,
    /// Shown as `[REDACTED]` by `Debug` (secrecy).
    pub password: SecretString,
    /// The database to dump; unused for Redis/Valkey.
    pub database: Option<DbIdent>,
}

/// One environment variable of an exec; the value never shows in `Debug`.
pub struct EnvVar {
    pub name: &'static str,
    value: SecretString,
}

impl EnvVar {
    fn new(name: &'static str, value: &str) -> Self {
        Self {
            name,
            value: SecretString::from(value.to_owned()),
        }
    }
}

impl fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=[REDACTED]", self.name)
    }
}

/// A command for `docker exec` or a sidecar container: argv plus environment.
#[derive(Debug)]
pub struct ExecCommand {
    pub argv: Vec<String>,
    pub env: Vec<EnvVar>,
    /// What the command's stdout must start with ([`None`] for restores).
    pub marker: Option<FormatMarker>,
}

impl ExecCommand {
    /// `NAME=value` strings for bollard's `env`. The only place values are exposed.
    pub fn env_strings(&self) -> Vec<String> {
        self.env
            .iter()
            .map(|v| format!("{}={}", v.name, v.value.expose_secret()))
            .collect()
    }
}

/// How a dump goes back into a database of an engine: what berth-deploy
/// follows when it wires a restore ([`Engine::restore_method`]).
#[derive(Debug)]
pub enum RestoreMethod {
    /// The server stays up; the dump is streamed into this command's stdin,
    /// run in a sidecar container from the database's own image on its
    /// network (pg_restore, mariadb/mysql, mongorestore).
    Stdin(ExecCommand),
    /// The server reads the dump only when it starts (Redis/Valkey: an RDB
    /// file); see [`FileIntoVolume`] for the steps.
    FileIntoVolume(FileIntoVolume),
}

/// A restore that puts the dump into the database's data volume as the file
/// the server loads at start. Every command runs in a sidecar container from
/// the database's image, with the database container's volumes
/// (`volumes_from`), as [`FileIntoVolume::user`]; no network is needed. In order:
///
/// 1. Stop the database container, and only then write: its own shutdown
///    may write the file (Redis saves `dump.rdb` on SIGTERM).
/// 2. [`FileIntoVolume::write`]: the dump streamed into its stdin lands
///    beside the file, as [`FileIntoVolume::partial`].
/// 3. If the stream was whole (the restore returned `Ok`: checksum matched)
///    and `write` exited 0: [`FileIntoVolume::commit`] renames it over
///    [`FileIntoVolume::path`]. Otherwise [`FileIntoVolume::discard`]
///    removes it, and the old file is as it was.
/// 4. Start the database container: it loads the file.
///
/// A server with `appendonly yes` loads its AOF instead of the RDB; berth's
/// managed Redis keeps the official image's default (no AOF).
#[derive(Debug)]
pub struct FileIntoVolume {
    /// The file the server loads at start.
    pub path: String,
    /// Where `write` puts the stream, in the same directory (so `commit` is a rename).
    pub partial: String,
    /// The image's user that owns the data dir (the server must read and
    /// later replace the file). A name, not an id: the official Debian and
    /// Alpine images give it different group ids.
    pub user: String,
    /// stdin → `partial`.
    pub write: ExecCommand,
    /// `partial` → `path`, atomically.
    pub commit: ExecCommand,
    /// Removes `partial`.
    pub discard: ExecCommand,
}

impl FileIntoVolume {
    /// Plain tools without a shell, present in every official image
    /// (coreutils or busybox): `cp /dev/stdin` copies a pipe to its end.
    fn new(path: &str, user: &str) -> Self {
        let partial = format!("{path}.berth-restore");
        let command = |argv: Vec<String>| ExecCommand {
            argv,
            env: Vec::new(),
            marker: None,
        };
        Self {
            write: command(vec![s("cp"), s("/dev/stdin"), partial.clone()]),
            commit: command(vec![s("mv"), s("-f"), partial.clone(), path.to_owned()]),
            discard: command(vec![s("rm"), s("-f"), partial.clone()]),
            path: path.to_owned(),
            partial,
            user: user.to_owned(),
        }
    }
}

/// The constant script for MongoDB tools (see the module docs). `$0` is the
/// tool, `"$@"` its arguments; only the environment carries values.
pub const MONGO_WRAPPER: &str =
    "exec \"$0\" \"$@\" --config=/dev/fd/3 3<<BERTH_EOF\n$BERTH_MONGO_CONFIG\nBERTH_EOF\n";

fn mongo_config(conn: &Connection) -> String {
    // JSON is YAML, and serde_json escapes every character a password can hold.
    serde_json::json!({ "password": conn.password.expose_secret() }).to_string()
}

fn s(x: &str) -> String {
    x.to_owned()
}

impl Engine {
    pub const fn marker(self) -> FormatMarker {
        match self {
            Self::Postgres => FormatMarker::PgCustom,
            Self::MariaDb | Self::MySql => FormatMarker::MysqlSql,
            Self::Redis | Self::Valkey => FormatMarker::Rdb,
            Self::MongoDb => FormatMarker::MongoArchive,
        }
    }

    /// The command whose stdout is the dump.
    pub fn dump_command(self, conn: &Connection) -> ExecCommand {
        let port = conn.port.to_string();
        let (argv, env) = match self {
            // -Z0: pg_dump's own zlib is the slow part of a dump; berth
            // compresses with zstd instead, and the archive stays PGDMP.
            // Everything but the password could be argv; env keeps it uniform.
            Self::Postgres => (
                vec![
                    s("pg_dump"),
                    s("--format=custom"),
                    s("--compress=0"),
                    s("--no-password"),
                ],
                pg_env(conn, &port),
            ),
            Self::MariaDb | Self::MySql => {
                let tool = if self == Self::MariaDb {
                    "mariadb-dump"
                } else {
                    "mysqldump"
                };
                // --single-transaction: a consistent snapshot without locking
                // InnoDB tables for the whole dump (dokploy#2443).
                let mut argv = vec![
                    s(tool),
                    format!("--host={}", conn.host),
                    format!("--port={port}"),
                    format!("--user={}", conn.user),
                    s("--single-transaction"),
                    s("--quick"),
                    s("--routines"),
                    s("--events"),
                    s("--triggers"),
                    s("--max-allowed-packet=1G"),
                ];
                // One database, without --databases: no CREATE DATABASE/USE in
                // the dump, so it restores into a database of another name.
                if let Some(db) = &conn.database {
                    argv.push(db.to_string());
                }
                (
                    argv,
                    vec![EnvVar::new("MYSQL_PWD", conn.password.expose_secret())],
                )
            }
            Self::Redis | Self::Valkey => {
                let tool = if self == Self::Redis {
                    "redis-cli"
                } else {
                    "valkey-cli"
                };
                // --rdb -: the replica-sync snapshot straight to stdout.
                // redis-cli 7.0 leaves the 40-byte EOF mark of a diskless
                // transfer after the RDB on stdout; the pipeline drops it
                // (RdbEofMarkStrip in pipeline.rs). `--user default` with
                // REDISCLI_AUTH is `AUTH default <password>`, which a
                // `--requirepass` server accepts (tested against 7.0).
                let argv = vec![
                    s(tool),
                    s("-h"),
                    conn.host.clone(),
                    s("-p"),
                    port,
                    s("--user"),
                    conn.user.to_string(),
                    s("--rdb"),
                    s("-"),
                ];
                (
                    argv,
                    vec![EnvVar::new("REDISCLI_AUTH", conn.password.expose_secret())],
                )
            }
            Self::MongoDb => {
                let mut argv = vec![
                    s("sh"),
                    s("-c"),
                    s(MONGO_WRAPPER),
                    s("mongodump"),
                    format!("--host={}", conn.host),
                    format!("--port={port}"),
                    format!("--username={}", conn.user),
                    s("--authenticationDatabase=admin"),
                    s("--archive"),
                ];
                if let Some(db) = &conn.database {
                    argv.push(format!("--db={db}"));
                }
                (
                    argv,
                    vec![EnvVar::new("BERTH_MONGO_CONFIG", &mongo_config(conn))],
                )
            }
        };
        ExecCommand {
            argv,
            env,
            marker: Some(self.marker()),
        }
    }

    /// PostgreSQL roles are cluster-wide, so `pg_dump` never has them. berth
    /// keeps them as a second, small artifact from `pg_dumpall --roles-only`
    /// (password hashes included: it needs the superuser the official image
    /// creates), replayed with `psql` before `pg_restore` into a new server.
    pub fn postgres_roles_command(conn: &Connection) -> ExecCommand {
        let port = conn.port.to_string();
        ExecCommand {
            argv: vec![s("pg_dumpall"), s("--roles-only"), s("--no-password")],
            env: pg_env(conn, &port),
            marker: Some(FormatMarker::PgDumpallSql),
        }
    }

    /// The command that reads a dump on stdin and loads it into
    /// `conn.database`; `None` for Redis/Valkey, which have none
    /// ([`Engine::restore_method`] says how they restore).
    pub fn restore_command(self, conn: &Connection) -> Option<ExecCommand> {
        match self.restore_method(conn) {
            RestoreMethod::Stdin(cmd) => Some(cmd),
            RestoreMethod::FileIntoVolume(_) => None,
        }
    }

    /// How a dump of this engine is restored into `conn.database`.
    pub fn restore_method(self, conn: &Connection) -> RestoreMethod {
        let port = conn.port.to_string();
        let (argv, env) = match self {
            // --single-transaction: all or nothing, so a failed restore leaves
            // the database as it was; --clean --if-exists replaces only the
            // objects that are in the dump, in this one database (coolify#7987).
            Self::Postgres => {
                let mut argv = vec![
                    s("pg_restore"),
                    s("--single-transaction"),
                    s("--exit-on-error"),
                    s("--clean"),
                    s("--if-exists"),
                    s("--no-password"),
                ];
                let db = conn.database.as_ref().map_or("postgres", DbIdent::as_str);
                argv.push(format!("--dbname={db}"));
                (argv, pg_env(conn, &port))
            }
            Self::MariaDb | Self::MySql => {
                let tool = if self == Self::MariaDb {
                    "mariadb"
                } else {
                    "mysql"
                };
                let mut argv = vec![
                    s(tool),
                    format!("--host={}", conn.host),
                    format!("--port={port}"),
                    format!("--user={}", conn.user),
                    s("--max-allowed-packet=1G"),
                ];
                if let Some(db) = &conn.database {
                    argv.push(db.to_string());
                }
                (
                    argv,
                    vec![EnvVar::new("MYSQL_PWD", conn.password.expose_secret())],
                )
            }
            // An RDB is loaded only when the server starts. The official
            // images' data dir and user (redis:7, valkey/valkey:8), and the
            // file name the server loads from it by default.
            Self::Redis => {
                return RestoreMethod::FileIntoVolume(FileIntoVolume::new(
                    "/data/dump.rdb",
                    "redis",
                ));
            }
            Self::Valkey => {
                return RestoreMethod::FileIntoVolume(FileIntoVolume::new(
                    "/data/dump.rdb",
                    "valkey",
                ));
            }
            Self::MongoDb => {
                let mut argv = vec![
                    s("sh"),
                    s("-c"),
                    s(MONGO_WRAPPER),
                    s("mongorestore"),
                    format!("--host={}", conn.host),
                    format!("--port={port}"),
                    format!("--username={}", conn.user),
                    s("--authenticationDatabase=admin"),
                    s("--archive"),
                    s("--drop"),
                ];
                if let Some(db) = &conn.database {
                    // Touch only the chosen database.
                    argv.push(format!("--nsInclude={db}.*"));
                }
                (
                    argv,
                    vec![EnvVar::new("BERTH_MONGO_CONFIG", &mongo_config(conn))],
                )
            }
        };
        RestoreMethod::Stdin(ExecCommand {
            argv,
            env,
            marker: None,
        })
    }
}

fn pg_env(conn: &Connection, port: &str) -> Vec<EnvVar> {
    let mut env = vec![
        EnvVar::new("PGHOST", &conn.host),
        EnvVar::new("PGPORT", port),
        EnvVar::new("PGUSER", conn.user.as_str()),
        EnvVar::new("PGPASSWORD", conn.password.expose_secret()),
    ];
    if let Some(db) = &conn.database {
        env.push(EnvVar::new("PGDATABASE", db.as_str()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    const NASTY: &str = ")'\"$\\ pass word";

    fn conn() -> Connection {
        Connection {
            host: "berth-db-main".into(),
            port: 5432,
            user: DbIdent::parse("app").unwrap(),
            password: SecretString::from(NASTY.to_owned()),
            database: Some(DbIdent::parse("shop").unwrap()),
        }
    }

    const ALL: [Engine; 6] = [
        Engine::Postgres,
        Engine::MariaDb,
        Engine::MySql,
        Engine::Redis,
        Engine::Valkey,
        Engine::MongoDb,
    ];

    fn commands() -> Vec<ExecCommand> {
        let c = conn();
        let mut all: Vec<ExecCommand> = ALL.iter().map(|e| e.dump_command(&c)).collect();
        all.extend(ALL.iter().filter_map(|e| e.restore_command(&c)));
        all.push(Engine::postgres_roles_command(&c));
        all
    }

    #[test]
    fn a_password_of_quotes_dollar_backslash_and_space_never_appears_in_argv() {
        for cmd in commands() {
            for arg in &cmd.argv {
                assert!(!arg.contains(NASTY), "password in argv: {:?}", cmd.argv);
                assert!(
                    !arg.contains("pass word"),
                    "password in argv: {:?}",
                    cmd.argv
                );
            }
            // …and it does reach the process, through the environment, intact.
            assert!(
                cmd.env_strings()
                    .iter()
                    .any(|e| e.contains(NASTY) || e.contains("pass word")),
                "password missing from env: {:?}",
                cmd.argv
            );
        }
    }

    #[test]
    fn debug_output_of_a_command_never_shows_the_password() {
        for cmd in commands() {
            let shown = format!("{cmd:?}");
            assert!(!shown.contains("pass word"), "{shown}");
        }
        assert!(!format!("{:?}", conn()).contains("pass word"));
    }

    #[test]
    fn only_the_mongo_tools_go_through_sh_and_their_script_is_a_constant() {
        for cmd in commands() {
            if cmd.argv[0] == "sh" {
                assert_eq!(cmd.argv[2], MONGO_WRAPPER);
                assert!(cmd.argv[3] == "mongodump" || cmd.argv[3] == "mongorestore");
            }
        }
    }

    #[test]
    fn mariadb_and_mysql_dumps_take_a_consistent_snapshot_with_routines_and_events() {
        for engine in [Engine::MariaDb, Engine::MySql] {
            let argv = engine.dump_command(&conn()).argv;
            for flag in ["--single-transaction", "--quick", "--routines", "--events"] {
                assert!(argv.iter().any(|a| a == flag), "{engine:?} lacks {flag}");
            }
            assert!(!argv.iter().any(|a| a == "--databases"));
        }
    }

    #[test]
    fn postgres_dumps_in_custom_format_without_its_own_compression() {
        let cmd = Engine::Postgres.dump_command(&conn());
        assert_eq!(
            cmd.argv,
            [
                "pg_dump",
                "--format=custom",
                "--compress=0",
                "--no-password"
            ]
        );
        assert_eq!(cmd.marker, Some(FormatMarker::PgCustom));
        let env = cmd.env_strings();
        assert!(env.contains(&"PGDATABASE=shop".to_owned()));
    }

    #[test]
    fn identifiers_that_could_be_read_as_options_or_quotes_are_refused() {
        for bad in [
            "",
            "-h",
            "--all-databases",
            "a b",
            "a'b",
            "a;b",
            "a\"b",
            "a$b",
            &"x".repeat(64),
        ] {
            assert!(DbIdent::parse(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["app", "shop_2", "my-db", "v1.2"] {
            assert!(DbIdent::parse(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn redis_and_valkey_restore_a_file_into_the_volume_and_the_others_through_stdin() {
        for engine in ALL {
            match engine.restore_method(&conn()) {
                RestoreMethod::FileIntoVolume(m) => {
                    assert!(
                        matches!(engine, Engine::Redis | Engine::Valkey),
                        "{engine:?}"
                    );
                    assert_eq!(m.path, "/data/dump.rdb");
                    // The commit is a rename within one directory.
                    assert_eq!(m.partial, "/data/dump.rdb.berth-restore");
                    assert_eq!(m.write.argv, ["cp", "/dev/stdin", m.partial.as_str()]);
                    assert_eq!(
                        m.commit.argv,
                        ["mv", "-f", m.partial.as_str(), m.path.as_str()]
                    );
                    assert_eq!(m.discard.argv, ["rm", "-f", m.partial.as_str()]);
                    assert!(engine.restore_command(&conn()).is_none());
                }
                RestoreMethod::Stdin(cmd) => {
                    assert!(
                        !matches!(engine, Engine::Redis | Engine::Valkey),
                        "{engine:?}"
                    );
                    assert_eq!(cmd.marker, None);
                }
            }
        }
    }

    /// No MongoDB tools exist on these machines: a stand-in `mongodump`
    /// script records what it got, to prove the constant wrapper hands the
    /// config over fd 3 intact and keeps the password out of argv.
    #[test]
    fn the_mongo_wrapper_hands_the_password_over_fd_3_with_a_stand_in_mongodump() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("mongodump");
        std::fs::write(
            &fake,
            "#!/bin/sh\nfor a in \"$@\"; do printf 'ARG:%s\\n' \"$a\"; done\ncase \"$*\" in *--config=/dev/fd/3*) cat <&3;; esac\n",
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let cmd = Engine::MongoDb.dump_command(&conn());
        let mut argv = cmd.argv.clone();
        argv[3] = fake.display().to_string();
        let mut proc = std::process::Command::new(&argv[0]);
        proc.args(&argv[1..]).env_clear();
        for kv in cmd.env_strings() {
            let (k, v) = kv.split_once('=').unwrap();
            proc.env(k, v);
        }
        let out = proc.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let config_line = text
            .lines()
            .find(|l| l.starts_with('{'))
            .expect("config on fd 3");
        let config: serde_json::Value = serde_json::from_str(config_line).unwrap();
        assert_eq!(config["password"], NASTY);
        assert!(text.contains("ARG:--archive"));
        for line in text.lines().filter(|l| l.starts_with("ARG:")) {
            assert!(!line.contains("pass word"), "{line}");
        }
    }
}
