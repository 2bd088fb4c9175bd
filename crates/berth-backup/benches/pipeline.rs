//! `cargo bench -p berth-backup --bench pipeline`: the pipeline's speed and
//! memory with a synthetic dump (SQL-like text, made in process so the
//! generator costs little) to a local directory and s3s-fs at once.
//!
//! Prints throughput, berth's peak RSS above idle at 100 MB and at 1 GB (the
//! goal: under 64 MB, and the same for both sizes) and the restore time.
//! age uses a post-quantum recipient: a passphrase adds scrypt's one-off
//! 2^N KiB, which is not streaming memory. The PostgreSQL comparison with a
//! plain `pg_dump -Fc > file` is issue 11's `--bench backup`, for the next session.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use berth_backup::destination::S3Destination;
use berth_backup::{
    ArtifactKey, DecryptionKey, DumpSource, Encryption, FormatMarker, LocalDir, PipelineOptions,
    restore, run_backup,
};
use tokio::io::{AsyncRead, ReadBuf};

/// `PGDMP` then `total` bytes of rows like `42\titem 42\t2027-01-01 …\n`.
struct Synthetic {
    total: u64,
    produced: u64,
    row: u64,
    pending: Vec<u8>,
}

impl Synthetic {
    fn new(total: u64) -> Self {
        Self {
            total,
            produced: 0,
            row: 0,
            pending: b"PGDMP".to_vec(),
        }
    }
}

impl AsyncRead for Synthetic {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.pending.len() < buf.remaining() && this.produced < this.total {
            let line = format!(
                "{}\titem number {}\t{}\t2027-01-{:02} 03:{:02}:{:02}+00\t{}\n",
                this.row,
                this.row,
                this.row.wrapping_mul(2_654_435_761) % 100_000,
                this.row % 28 + 1,
                this.row % 60,
                (this.row / 60) % 60,
                if this.row.is_multiple_of(3) {
                    "shipped"
                } else {
                    "pending"
                }
            );
            this.row += 1;
            this.produced += line.len() as u64;
            this.pending.extend_from_slice(line.as_bytes());
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.drain(..n);
        Poll::Ready(Ok(()))
    }
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux: "5" in clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let s3 = common::S3Server::start(&["bench"]);
    let dir = tempfile::tempdir().unwrap();
    let identity = age::pq::Identity::generate();
    let options = PipelineOptions {
        encryption: Some(Encryption::Recipients(vec![identity.to_public()])),
        ..Default::default()
    };
    let mut s3_config = s3.config("bench");
    s3_config.part_size = berth_backup::destination::DEFAULT_PART_SIZE;
    let s3_dest = S3Destination::new(s3_config).unwrap();
    println!(
        "pipeline bench: synthetic dump → zstd 3 → age (pq recipient) → local dir + s3s-fs (16 MiB parts)"
    );
    for (name, size) in [("100 MB", 100_000_000u64), ("1 GB", 1_000_000_000)] {
        let key = ArtifactKey::parse(&format!("bench-{}.zst.age", size)).unwrap();
        let targets = common::targets(
            &LocalDir::new("local", dir.path()),
            Some(s3_dest.clone()),
            key.as_str(),
        );
        let idle = status_kib("VmRSS:");
        reset_peak();
        let started = Instant::now();
        let source = DumpSource {
            reader: Synthetic::new(size),
            exit: async { Ok(0) },
            marker: FormatMarker::PgCustom,
        };
        let report = run_backup(source, &options, &targets).await;
        let took = started.elapsed();
        let peak = status_kib("VmHWM:");
        assert!(report.fully_succeeded(), "{report:#?}");
        println!(
            "{name}: dump {:.0} MB → stored {:.0} MB in {:.2} s = {:.0} MB/s of dump; peak RSS {:.1} MB above idle ({:.1} MB)",
            report.dump_bytes as f64 / 1e6,
            report.stored_bytes as f64 / 1e6,
            took.as_secs_f64(),
            report.dump_bytes as f64 / 1e6 / took.as_secs_f64(),
            peak.saturating_sub(idle) as f64 / 1024.0,
            idle as f64 / 1024.0,
        );
        for (label, dest) in [
            ("local", &targets[0].destination),
            ("S3", &targets[1].destination),
        ] {
            let started = Instant::now();
            let identity = DecryptionKey::Identity(identity.clone());
            let (_, r) = restore(dest, &key, report.sha256, Some(identity), tokio::io::sink())
                .await
                .unwrap();
            let took = started.elapsed();
            println!(
                "  restore from {label}: {:.2} s = {:.0} MB/s of dump",
                took.as_secs_f64(),
                r.restored_bytes as f64 / 1e6 / took.as_secs_f64()
            );
        }
        for t in &targets {
            t.destination.delete(&key).await.unwrap();
        }
    }
}
