//! Reading an artifact back: from a destination, through age and zstd, to
//! any `AsyncWrite` (a `docker exec`'s stdin, a file), with its SHA-256
//! checked against berth's record.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::iter;
use std::time::{Duration, Instant};

use age::secrecy::SecretString;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_util::io::SyncIoBridge;

use crate::checksum::Checksum;
use crate::destination::{ArtifactKey, Destination};
use crate::error::{DestinationError, RestoreError};

const AGE_MAGIC: &[u8] = b"age-encryption.org/";
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// What decrypts an encrypted backup.
pub enum DecryptionKey {
    Passphrase(SecretString),
    Identity(age::pq::Identity),
}

impl std::fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Passphrase(_) => "Passphrase([REDACTED])",
            Self::Identity(_) => "Identity([REDACTED])",
        })
    }
}

#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// Bytes read from the destination (the artifact).
    pub stored_bytes: u64,
    /// Bytes written to the output (the dump).
    pub restored_bytes: u64,
    pub sha256: Checksum,
    pub duration: Duration,
}

/// Streams the artifact at `key` into `out`, decrypted and decompressed,
/// then shuts `out` down so the process reading it sees the end.
///
/// The checksum can only be known at the end: on a mismatch `out` has
/// already received the data and the error says so; the caller must treat
/// the restore as failed (pg_restore `--single-transaction` rolls back when
/// its input is cut). Run [`verify_checksum`] first to check before writing.
pub async fn restore<W>(
    destination: &Destination,
    key: &ArtifactKey,
    expected: Option<Checksum>,
    decryption: Option<DecryptionKey>,
    out: W,
) -> Result<(W, RestoreReport), RestoreError>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let started = Instant::now();
    let source = destination.open(key).await.map_err(RestoreError::Source)?;
    let worker = tokio::task::spawn_blocking(move || decode(source, decryption, out));
    let (out, stored_bytes, restored_bytes, sha256) = worker
        .await
        .map_err(|e| RestoreError::Worker(e.to_string()))??;
    if let Some(expected) = expected
        && expected != sha256
    {
        return Err(RestoreError::ChecksumMismatch {
            expected: expected.to_hex(),
            actual: sha256.to_hex(),
        });
    }
    Ok((
        out,
        RestoreReport {
            stored_bytes,
            restored_bytes,
            sha256,
            duration: started.elapsed(),
        },
    ))
}

/// Reads the artifact through and checks its SHA-256, writing nothing:
/// the restic `check --read-data` of one backup.
pub async fn verify_checksum(
    destination: &Destination,
    key: &ArtifactKey,
    expected: Checksum,
) -> Result<u64, RestoreError> {
    let mut source = destination.open(key).await.map_err(RestoreError::Source)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let mut total = 0u64;
    loop {
        let n = source
            .read(&mut buf)
            .await
            .map_err(|e| RestoreError::Source(DestinationError::Read(e)))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let actual = Checksum::from_hasher(hasher);
    if actual != expected {
        return Err(RestoreError::ChecksumMismatch {
            expected: expected.to_hex(),
            actual: actual.to_hex(),
        });
    }
    Ok(total)
}

/// Hashes and counts what is read through it.
struct Hashing<'a, R> {
    inner: R,
    hasher: &'a mut Sha256,
    count: &'a mut u64,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        *self.count += n as u64;
        Ok(n)
    }
}

type Decoded<W> = (W, u64, u64, Checksum);

fn decode<W: AsyncWrite + Unpin>(
    source: Box<dyn AsyncRead + Send + Unpin>,
    decryption: Option<DecryptionKey>,
    out: W,
) -> Result<Decoded<W>, RestoreError> {
    let mut hasher = Sha256::new();
    let mut stored = 0u64;
    let mut out = SyncIoBridge::new(out);
    let restored = {
        let hashing = Hashing {
            inner: SyncIoBridge::new(source),
            hasher: &mut hasher,
            count: &mut stored,
        };
        let mut input = BufReader::with_capacity(256 * 1024, hashing);
        let head = input
            .fill_buf()
            .map_err(|e| RestoreError::Source(DestinationError::Read(e)))?
            .to_vec();
        if head.starts_with(AGE_MAGIC) {
            let key = decryption.ok_or(RestoreError::NeedsKey)?;
            let decryptor = age::Decryptor::new_buffered(&mut input).map_err(decrypt_error)?;
            let plain = match &key {
                DecryptionKey::Passphrase(p) => {
                    let identity = age::scrypt::Identity::new(p.clone());
                    decryptor.decrypt(iter::once(&identity as &dyn age::Identity))
                }
                DecryptionKey::Identity(identity) => {
                    decryptor.decrypt(iter::once(identity as &dyn age::Identity))
                }
            }
            .map_err(decrypt_error)?;
            decompress(plain, &mut out)?
        } else if head.starts_with(ZSTD_MAGIC) {
            decompress(input, &mut out)?
        } else {
            let shown = String::from_utf8_lossy(&head[..head.len().min(16)]).into_owned();
            return Err(RestoreError::NotZstd(shown));
        }
    };
    out.flush().map_err(RestoreError::Write)?;
    out.shutdown().map_err(RestoreError::Write)?;
    Ok((
        out.into_inner(),
        stored,
        restored,
        Checksum::from_hasher(hasher),
    ))
}

fn decrypt_error(e: age::DecryptError) -> RestoreError {
    match e {
        age::DecryptError::DecryptionFailed
        | age::DecryptError::NoMatchingKeys
        | age::DecryptError::KeyDecryptionFailed => RestoreError::WrongKey,
        other => RestoreError::Decrypt(other.to_string()),
    }
}

fn decompress<R: Read, W: Write>(input: R, out: &mut W) -> Result<u64, RestoreError> {
    let mut decoder = zstd::stream::read::Decoder::new(input).map_err(RestoreError::Decompress)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(RestoreError::Decompress(e)),
        };
        if n == 0 {
            return Ok(total);
        }
        out.write_all(&buf[..n]).map_err(RestoreError::Write)?;
        total += n as u64;
    }
}
