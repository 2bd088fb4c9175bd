//! argon2id hashing, run on the blocking pool because it is slow on purpose.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};

use crate::StoreError;

/// How many hashes may run at once, each on a thread of its own kept for
/// hashing. argon2id takes about 19 MiB and most of a core each time.
/// Without a cap a burst of logins multiplies both (40 parallel attempts once
/// took berth to 720 MB); and on tokio's blocking pool each hash may land on
/// a fresh thread whose malloc arena keeps its 19 MiB afterwards. Two
/// dedicated threads keep at most two such blocks; the rest wait their turn.
pub const HASH_THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

/// Runs `work` on one of the hashing threads; `None` if they are gone.
async fn on_hash_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    static JOBS: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let jobs = JOBS.get_or_init(|| {
        let (send, receive) = std::sync::mpsc::channel::<Job>();
        let receive = std::sync::Arc::new(std::sync::Mutex::new(receive));
        for n in 0..HASH_THREADS {
            let receive = receive.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("berth-hash-{n}"))
                .spawn(move || {
                    loop {
                        let job = receive.lock().map(|r| r.recv());
                        match job {
                            Ok(Ok(job)) => job(),
                            _ => return,
                        }
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start a password hashing thread");
            }
        }
        std::sync::Mutex::new(send)
    });
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(work());
    });
    jobs.lock().ok()?.send(job).ok()?;
    result.await.ok()
}

pub async fn hash(password: &berth_core::Password) -> Result<String, StoreError> {
    let password = password.expose().to_owned();
    on_hash_thread(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| StoreError::Hash(e.to_string()))
    })
    .await
    .unwrap_or_else(|| Err(StoreError::Hash("the hashing threads are gone".to_owned())))
}

/// False for a wrong password and for a hash that cannot be read.
pub async fn verify(password: &str, hash: &str) -> bool {
    let password = password.to_owned();
    let hash = hash.to_owned();
    on_hash_thread(move || verify_reusing_memory(&password, &hash).unwrap_or(false))
        .await
        .unwrap_or(false)
}

/// argon2's own `verify_password` allocates its 19 MiB of blocks each time,
/// and glibc kept each of them resident: every wrong login grew berth by
/// 19 MiB. Each hashing thread keeps one block buffer instead and hashes
/// into it, so logins cost at most `HASH_THREADS` buffers in all.
fn verify_reusing_memory(password: &str, hash: &str) -> Option<bool> {
    use argon2::{Algorithm, Block, Params, Version};
    thread_local! {
        static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let parsed = PasswordHash::new(hash).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .ok()?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).ok()?;
    let expected = parsed.hash?;
    let mut salt = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    BLOCKS
        .with(|memory| {
            let mut memory = memory.borrow_mut();
            memory.resize(blocks, Block::default());
            argon2.hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                &mut out,
                &mut memory[..blocks],
            )
        })
        .ok()?;
    // `Output`'s equality is constant-time.
    Some(argon2::password_hash::Output::new(&out).ok()? == expected)
}

/// A hash of nothing in particular, verified against when a username does not
/// exist so that a login takes as long whether the user exists or not.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3r5zTQmlwJgGxD5UDLEZ/bBhr+lAdQhUNHvz4QdWgVQ";
