//! The pipeline against real components: a real dump process, a real
//! directory, a real S3 server (s3s-fs), real zstd and age.

mod common;

use tokio_util::sync::CancellationToken;

use berth_backup::destination::S3Destination;
use berth_backup::{
    ArtifactKey, Checksum, DecryptionKey, Destination, DestinationError, Encryption, FormatMarker,
    LocalDir, PipelineError, PipelineOptions, RestoreError, SecretString, restore, run_backup,
    verify_checksum,
};
use std::time::{Duration, Instant};

use berth_backup::run_backup_cancellable;
use common::{S3Server, closed_port, dump_process, files_under, targets};

/// PGDMP followed by `mib` MiB of data that compresses only partly
/// (base64 of random bytes), as a stand-in for pg_dump's output.
fn fake_pg_dump(mib: u32, exit: i32) -> String {
    format!(
        "printf PGDMP; head -c {} /dev/urandom | base64 -w 0; exit {exit}",
        mib * 1024 * 768
    )
}

fn passphrase(p: &str) -> Encryption {
    // A low scrypt work factor: the tests need speed, not brute-force resistance.
    Encryption::Passphrase {
        passphrase: SecretString::from(p.to_owned()),
        work_factor: Some(10),
    }
}

fn key(s: &str) -> ArtifactKey {
    ArtifactKey::parse(s).unwrap()
}

async fn restored_bytes(
    dest: &Destination,
    k: &str,
    sum: Checksum,
    decryption: Option<DecryptionKey>,
) -> Vec<u8> {
    let (out, report) = restore(dest, &key(k), Some(sum), decryption, Vec::new())
        .await
        .expect("restore");
    assert_eq!(report.restored_bytes as usize, out.len());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_reaches_local_and_s3_at_once_and_both_restore_byte_for_byte() {
    let s3 = S3Server::start(&["backups"]);
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let mut cfg = s3.config("backups");
    cfg.prefix = "berth/prod".into();
    let s3_dest = S3Destination::new(cfg).unwrap();
    let k = "db/main/2027-01-01T03-00-00Z-1.dump.zst.age";
    // Keep a copy of what the dump printed, to compare the restore with.
    let original = dir.path().join("original");
    let script = format!(
        "{{ {}; }} | tee {}",
        fake_pg_dump(16, 0),
        original.display()
    );
    let options = PipelineOptions {
        encryption: Some(passphrase("correct horse")),
        ..Default::default()
    };

    let report = run_backup(
        dump_process(&script, FormatMarker::PgCustom),
        &options,
        &targets(&local, Some(s3_dest.clone()), k),
    )
    .await;

    assert!(report.fully_succeeded(), "{report:#?}");
    let sum = report.sha256.unwrap();
    let original = std::fs::read(&original).unwrap();
    assert_eq!(report.dump_bytes, original.len() as u64);
    for d in &report.destinations {
        assert_eq!(d.sha256, Some(sum), "{d:?}");
        assert_eq!(d.size, report.stored_bytes);
    }
    assert_eq!(
        report.destinations[1].location,
        format!("s3://backups/berth/prod/{k}")
    );
    // Several 5 MiB parts went up and were joined into one object.
    assert!(
        report.stored_bytes > 10 * 1024 * 1024,
        "{}",
        report.stored_bytes
    );
    assert_eq!(s3.files("backups"), [format!("berth/prod/{k}")]);
    assert_eq!(
        files_under(dir.path()),
        ["db/main/2027-01-01T03-00-00Z-1.dump.zst.age", "original"]
    );

    for dest in [Destination::Local(local), Destination::S3(s3_dest)] {
        assert_eq!(
            verify_checksum(&dest, &key(k), sum).await.unwrap(),
            report.stored_bytes
        );
        let key = DecryptionKey::Passphrase(SecretString::from("correct horse".to_owned()));
        let back = restored_bytes(&dest, k, sum, Some(key)).await;
        assert!(
            back == original,
            "{} restored {} bytes, not the dump",
            dest.label(),
            back.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unencrypted_backup_restores_and_an_identity_decrypts_a_recipient_backup() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let dump = "printf 'REDIS0011'; seq 1 200000";
    let report = run_backup(
        dump_process(dump, FormatMarker::Rdb),
        &PipelineOptions::default(),
        &targets(&local, None, "plain.rdb.zst"),
    )
    .await;
    assert!(report.fully_succeeded(), "{report:#?}");
    // zstd shrank the repetitive dump: compression really happened.
    assert!(report.stored_bytes * 3 < report.dump_bytes, "{report:?}");
    let back = restored_bytes(
        &Destination::Local(local.clone()),
        "plain.rdb.zst",
        report.sha256.unwrap(),
        None,
    )
    .await;
    assert!(back.starts_with(b"REDIS00111\n2\n3\n"));
    assert_eq!(back.len() as u64, report.dump_bytes);

    let identity = age::pq::Identity::generate();
    let options = PipelineOptions {
        encryption: Some(Encryption::Recipients(vec![identity.to_public()])),
        ..Default::default()
    };
    let report = run_backup(
        dump_process(dump, FormatMarker::Rdb),
        &options,
        &targets(&local, None, "pq.rdb.zst.age"),
    )
    .await;
    assert!(report.fully_succeeded(), "{report:#?}");
    let back = restored_bytes(
        &Destination::Local(local),
        "pq.rdb.zst.age",
        report.sha256.unwrap(),
        Some(DecryptionKey::Identity(identity)),
    )
    .await;
    assert_eq!(back.len() as u64, report.dump_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_that_exits_non_zero_leaves_nothing_at_any_destination() {
    let s3 = S3Server::start(&["backups"]);
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let s3_dest = S3Destination::new(s3.config("backups")).unwrap();
    // 12 MiB went out (two S3 parts uploaded) before the dump failed.
    let report = run_backup(
        dump_process(&fake_pg_dump(12, 3), FormatMarker::PgCustom),
        &PipelineOptions::default(),
        &targets(&local, Some(s3_dest), "db/failed.dump.zst"),
    )
    .await;

    assert!(
        matches!(report.error, Some(PipelineError::DumpExit(3))),
        "{report:#?}"
    );
    assert!(!report.succeeded());
    for d in &report.destinations {
        assert!(
            matches!(d.error, Some(DestinationError::Aborted(_))),
            "{d:?}"
        );
    }
    assert!(
        files_under(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
    assert!(
        s3.files("backups").is_empty(),
        "multipart upload left {:?}",
        s3.files("backups")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_without_the_engines_marker_is_not_a_backup_even_with_exit_code_zero() {
    let s3 = S3Server::start(&["backups"]);
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let s3_dest = S3Destination::new(s3.config("backups")).unwrap();
    for (script, marker) in [
        (
            "echo 'pg_dump: error: connection to server failed'",
            FormatMarker::PgCustom,
        ),
        ("true", FormatMarker::PgCustom),
        ("printf PGD", FormatMarker::PgCustom),
        ("printf '\\037\\213\\010'", FormatMarker::PgCustom),
        (
            "echo 'mariadb-dump: Got error: 1045: Access denied'",
            FormatMarker::MysqlSql,
        ),
        ("printf PGDMP", FormatMarker::Rdb),
    ] {
        let report = run_backup(
            dump_process(script, marker),
            &PipelineOptions::default(),
            &targets(&local, Some(s3_dest.clone()), "x.zst"),
        )
        .await;
        assert!(
            matches!(report.error, Some(PipelineError::BadMarker { .. })),
            "{script}: {report:#?}"
        );
        assert!(files_under(dir.path()).is_empty());
        assert!(s3.files("backups").is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_s3_down_the_local_copy_succeeds_and_the_s3_failure_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let mut cfg =
        common::S3Server::config_for(&format!("http://127.0.0.1:{}", closed_port()), "backups");
    cfg.label = "offsite".into();
    let s3_dest = S3Destination::new(cfg).unwrap();
    let report = run_backup(
        dump_process(&fake_pg_dump(2, 0), FormatMarker::PgCustom),
        &PipelineOptions::default(),
        &targets(&local, Some(s3_dest.clone()), "db/a.dump.zst"),
    )
    .await;

    assert!(report.error.is_none(), "{report:#?}");
    assert!(report.succeeded() && !report.fully_succeeded());
    assert!(report.destinations[0].ok());
    let s3_result = &report.destinations[1];
    assert_eq!(s3_result.label, "offsite");
    let msg = s3_result
        .error
        .as_ref()
        .expect("S3 failure recorded")
        .to_string();
    assert!(msg.starts_with("S3:"), "{msg}");
    assert_eq!(files_under(dir.path()), ["db/a.dump.zst"]);
    // The Test button fails too, instead of passing on a listing.
    assert!(s3_dest.test().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_failed_dump_is_reported_by_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let script = "echo 'pg_dump: error: password authentication failed' >&2; exit 1";
    let report = run_backup(
        dump_process(script, FormatMarker::PgCustom),
        &PipelineOptions::default(),
        &targets(&local, None, "a.zst"),
    )
    .await;
    assert!(
        matches!(report.error, Some(PipelineError::DumpExit(1))),
        "{report:#?}"
    );
    assert!(files_under(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_server_that_refuses_the_keys_fails_only_its_copy_with_the_servers_error() {
    let s3 = S3Server::start(&["backups"]);
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let mut cfg = s3.config("backups");
    cfg.secret_access_key = SecretString::from("not-the-secret".to_owned());
    let s3_dest = S3Destination::new(cfg).unwrap();
    let report = run_backup(
        dump_process(&fake_pg_dump(1, 0), FormatMarker::PgCustom),
        &PipelineOptions::default(),
        &targets(&local, Some(s3_dest.clone()), "a.zst"),
    )
    .await;
    assert!(report.destinations[0].ok(), "{report:#?}");
    let msg = report.destinations[1]
        .error
        .as_ref()
        .expect("refused")
        .to_string();
    assert!(
        msg.contains("SignatureDoesNotMatch") || msg.contains("403"),
        "{msg}"
    );
    assert!(s3.files("backups").is_empty());
    // The Test button says so too.
    assert!(s3_dest.test().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_passphrase_fails_cleanly_and_a_missing_one_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let options = PipelineOptions {
        encryption: Some(passphrase("right")),
        ..Default::default()
    };
    let report = run_backup(
        dump_process(&fake_pg_dump(1, 0), FormatMarker::PgCustom),
        &options,
        &targets(&local, None, "e.zst.age"),
    )
    .await;
    assert!(report.fully_succeeded());
    let dest = Destination::Local(local);
    let wrong = DecryptionKey::Passphrase(SecretString::from("wrong".to_owned()));
    let err = restore(
        &dest,
        &key("e.zst.age"),
        report.sha256,
        Some(wrong),
        Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RestoreError::WrongKey), "{err:?}");
    assert_eq!(
        err.to_string(),
        "wrong passphrase or key: the backup cannot be decrypted with it"
    );
    let err = restore(&dest, &key("e.zst.age"), report.sha256, None, Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RestoreError::NeedsKey), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_fails_verification_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let dump = "printf PGDMP; seq 1 100000";
    for (name, encryption) in [("plain.zst", None), ("enc.zst.age", Some(passphrase("p")))] {
        let options = PipelineOptions {
            encryption,
            ..Default::default()
        };
        let report = run_backup(
            dump_process(dump, FormatMarker::PgCustom),
            &options,
            &targets(&local, None, name),
        )
        .await;
        let sum = report.sha256.unwrap();
        let path = dir.path().join(name);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        let dest = Destination::Local(local.clone());

        let err = verify_checksum(&dest, &key(name), sum).await.unwrap_err();
        assert!(
            matches!(err, RestoreError::ChecksumMismatch { .. }),
            "{err:?}"
        );
        let decryption = options
            .encryption
            .as_ref()
            .map(|_| DecryptionKey::Passphrase(SecretString::from("p".to_owned())));
        let err = restore(&dest, &key(name), Some(sum), decryption, Vec::new())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RestoreError::Decompress(_) | RestoreError::ChecksumMismatch { .. }
            ),
            "{name}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_test_writes_reads_back_and_deletes_its_object() {
    let s3 = S3Server::start(&["backups"]);
    let mut cfg = s3.config("backups");
    cfg.prefix = "some/prefix".into();
    S3Destination::new(cfg)
        .unwrap()
        .test()
        .await
        .expect("test passes");
    assert!(
        s3.files("backups").is_empty(),
        "test object left: {:?}",
        s3.files("backups")
    );
    // (Its failures: refused keys and a server that is down, in the tests above.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_artifact_removes_exactly_that_one_at_each_destination() {
    let s3 = S3Server::start(&["backups"]);
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let s3_dest = S3Destination::new(s3.config("backups")).unwrap();
    for name in ["db/1.zst", "db/2.zst"] {
        let r = run_backup(
            dump_process("printf PGDMP; seq 1 1000", FormatMarker::PgCustom),
            &PipelineOptions::default(),
            &targets(&local, Some(s3_dest.clone()), name),
        )
        .await;
        assert!(r.fully_succeeded(), "{r:#?}");
    }
    for dest in [Destination::Local(local), Destination::S3(s3_dest)] {
        dest.delete(&key("db/1.zst")).await.unwrap();
        // Deleting again is fine: retention may be retried.
        dest.delete(&key("db/1.zst")).await.unwrap();
    }
    assert_eq!(files_under(dir.path()), ["db/2.zst"]);
    assert_eq!(s3.files("backups"), ["db/2.zst"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_past_its_time_out_fails_and_leaves_nothing_at_either_destination() {
    let s3 = S3Server::start(&["backups"]);
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let s3_dest = S3Destination::new(s3.config("backups")).unwrap();
    // 6 MiB (one S3 part uploaded), then the dump hangs.
    let script = format!(
        "{}; exec sleep 60",
        fake_pg_dump(8, 0).replace("; exit 0", "")
    );
    let options = PipelineOptions {
        timeout: Some(Duration::from_secs(3)),
        ..Default::default()
    };
    let started = Instant::now();
    let report = run_backup(
        dump_process(&script, FormatMarker::PgCustom),
        &options,
        &targets(&local, Some(s3_dest), "db/slow.zst"),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(report.error, Some(PipelineError::TimedOut(_))),
        "{report:#?}"
    );
    for d in &report.destinations {
        assert!(
            matches!(d.error, Some(DestinationError::Aborted(_))),
            "{d:?}"
        );
    }
    assert!(
        report.destinations[1].size > 0,
        "nothing reached S3 before the time-out: {report:#?}"
    );
    assert!(
        files_under(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
    assert!(s3.files("backups").is_empty(), "{:?}", s3.files("backups"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_backup_stops_at_once_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let cancel = CancellationToken::new();
    let later = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        later.cancel();
    });
    let script = "printf PGDMP; seq 1 1000; exec sleep 60";
    let started = Instant::now();
    let report = run_backup_cancellable(
        dump_process(script, FormatMarker::PgCustom),
        &PipelineOptions::default(),
        &targets(&local, None, "c.zst"),
        cancel,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(report.error, Some(PipelineError::Cancelled)),
        "{report:#?}"
    );
    assert!(
        files_under(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_files_of_a_killed_run_are_removed_at_start_and_finished_backups_stay() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let r = run_backup(
        dump_process("printf PGDMP; seq 1 10", FormatMarker::PgCustom),
        &PipelineOptions::default(),
        &targets(&local, None, "db/kept.zst"),
    )
    .await;
    assert!(r.fully_succeeded());
    // What a berth killed with -9 mid-write leaves (the name LocalDir uses).
    std::fs::write(
        dir.path().join("db/.next.zst.partial-00000000deadbeef"),
        b"half",
    )
    .unwrap();
    std::fs::write(
        dir.path().join(".top.zst.partial-0000000000000001"),
        b"half",
    )
    .unwrap();
    assert_eq!(local.remove_stale_partials().await.unwrap(), 2);
    assert_eq!(files_under(dir.path()), ["db/kept.zst"]);
}
