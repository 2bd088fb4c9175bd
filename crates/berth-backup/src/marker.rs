/// The bytes a healthy dump of an engine starts with. Checked on the raw
/// dump, before compression, so an empty or error-text "dump" never counts
/// as a backup (dokploy#1382: a 20-byte gzip reported as success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatMarker {
    /// `pg_dump -Fc`: the custom archive starts with `PGDMP`.
    PgCustom,
    /// `pg_dumpall --roles-only`: plain SQL with pg_dumpall's banner.
    PgDumpallSql,
    /// `mariadb-dump` / `mysqldump`: the `-- MariaDB dump` or `-- MySQL dump` banner.
    MysqlSql,
    /// An RDB file (Redis, Valkey): `REDIS` (Valkey 9 may write `VALKEY`).
    Rdb,
    /// `mongodump --archive`: the archive's magic number 0x8199e26d, little-endian.
    MongoArchive,
}

/// mariadb-dump since 10.5.25 / 11.x writes this line before its banner, so
/// the old `mysql` client refuses to replay the dump (the "sandbox mode").
const MARIADB_SANDBOX_LINE: &[u8] = b"/*M!999999\\- enable the sandbox mode */";

impl FormatMarker {
    /// How many leading bytes [`FormatMarker::matches`] needs to decide.
    pub const fn needed(self) -> usize {
        match self {
            // The sandbox line, its trailing space and newline, the banner.
            Self::MysqlSql => MARIADB_SANDBOX_LINE.len() + 3 + 16,
            Self::PgDumpallSql => 64,
            Self::PgCustom | Self::Rdb => 6,
            Self::MongoArchive => 4,
        }
    }

    /// Whether `head` (the first bytes of the dump, possibly fewer than
    /// [`FormatMarker::needed`] when the dump is that short) starts right.
    pub fn matches(self, head: &[u8]) -> bool {
        match self {
            Self::PgCustom => head.starts_with(b"PGDMP"),
            Self::PgDumpallSql => {
                // pg_dumpall starts with "--\n-- PostgreSQL database cluster dump".
                let text = String::from_utf8_lossy(head);
                text.trim_start_matches(['-', '\n', ' ', '\r'])
                    .starts_with("PostgreSQL database cluster dump")
            }
            Self::MysqlSql => {
                let mut rest = head;
                if let Some(after) = rest.strip_prefix(MARIADB_SANDBOX_LINE) {
                    // mariadb-dump 10.11.18 (Debian bookworm) writes the line
                    // as `... */ \n`: a space before the newline.
                    let after = after.strip_prefix(b" ").unwrap_or(after);
                    rest = after
                        .strip_prefix(b"\r\n")
                        .or(after.strip_prefix(b"\n"))
                        .unwrap_or(after);
                }
                rest.starts_with(b"-- MariaDB dump") || rest.starts_with(b"-- MySQL dump")
            }
            Self::Rdb => head.starts_with(b"REDIS") || head.starts_with(b"VALKEY"),
            Self::MongoArchive => head.starts_with(&[0x6d, 0xe2, 0x99, 0x81]),
        }
    }

    pub const fn describe(self) -> &'static str {
        match self {
            Self::PgCustom => "PGDMP (pg_dump custom format)",
            Self::PgDumpallSql => "a pg_dumpall SQL banner",
            Self::MysqlSql => "'-- MariaDB dump' or '-- MySQL dump'",
            Self::Rdb => "REDIS (an RDB file)",
            Self::MongoArchive => "the mongodump archive magic number",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FormatMarker::*;

    #[test]
    fn each_engine_accepts_its_own_banner_and_refuses_others() {
        assert!(PgCustom.matches(b"PGDMP\x01\x0e"));
        assert!(!PgCustom.matches(b"pg_dump: error: connection"));
        assert!(!PgCustom.matches(b""));
        assert!(MysqlSql.matches(b"-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB"));
        assert!(MysqlSql.matches(b"-- MySQL dump 10.13  Distrib 8.0.36"));
        assert!(
            MysqlSql.matches(b"/*M!999999\\- enable the sandbox mode */\n-- MariaDB dump 10.19")
        );
        // As mariadb-dump 10.11.18 really writes it (berth-test/mariadb).
        assert!(
            MysqlSql.matches(b"/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19")
        );
        assert!(!MysqlSql.matches(b"mysqldump: Got error: 1045"));
        assert!(Rdb.matches(b"REDIS0011"));
        assert!(!Rdb.matches(b"NOAUTH"));
        assert!(MongoArchive.matches(&[0x6d, 0xe2, 0x99, 0x81, 0, 0]));
        assert!(PgDumpallSql.matches(b"--\n-- PostgreSQL database cluster dump\n--\n"));
    }
}
