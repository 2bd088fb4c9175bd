//! Getting a build context out of a git repository with the `git` program:
//! argument arrays only (never a shell), `--` before every URL and path, no
//! terminal prompts, and the process killed if the deploy is cancelled.
//!
//! SSH remotes use the app's deploy key when it has one: berth writes the
//! private key to its own 0600 file for the clone ([`KeyFile`]) and hands
//! it to ssh through `GIT_SSH_COMMAND`. git runs that variable through a
//! shell, so the paths in it (berth's own, never user input) are quoted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// Never ask about unknown host keys or passwords on a terminal nobody
/// watches, and use nothing of root's own: no ~/.ssh/config, no agent, no
/// default identity files.
const DEFAULT_SSH: &str =
    "ssh -F /dev/null -o BatchMode=yes -o IdentityAgent=none -o IdentityFile=none";

/// How git may reach a repository. Anything else (`http://`, `git://`,
/// `ext::`, other helpers) is refused before git runs, and git itself is
/// told the same list (`GIT_ALLOW_PROTOCOL`), submodules included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transport {
    Https,
    Ssh,
    /// A repository on this server, allowed only under the admin's root.
    File(PathBuf),
}

impl Transport {
    /// How `url` would be reached; `file_root` is where local repositories
    /// may be (`None`: nowhere).
    pub(crate) fn of(url: &str, file_root: Option<&Path>) -> Result<Transport, String> {
        let url = url.trim();
        if url.starts_with('-') {
            return Err("a repository URL may not start with '-'".to_owned());
        }
        if let Some(rest) = url.strip_prefix("https://") {
            return if rest.is_empty() {
                Err("the URL names no host".to_owned())
            } else {
                Ok(Transport::Https)
            };
        }
        if is_ssh_url(url) {
            return Ok(Transport::Ssh);
        }
        let path = match url.strip_prefix("file://") {
            Some(path) => path,
            None if url.starts_with('/') => url,
            None => {
                return Err(
                    "only https://, ssh:// (or user@host:path) and, for repositories on this server, file:// URLs can be cloned"
                        .to_owned(),
                );
            }
        };
        let Some(root) = file_root else {
            return Err(
                "repositories on this server can be cloned only from under the directory set with --git-file-root"
                    .to_owned(),
            );
        };
        // Resolved, so neither `..` nor a symlink leads out of the root.
        let resolved = std::fs::canonicalize(path)
            .map_err(|_| format!("{path} is not a repository on this server"))?;
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        if !resolved.starts_with(&root) {
            return Err(format!(
                "{path} is outside the git file root {}",
                root.display()
            ));
        }
        Ok(Transport::File(resolved))
    }

    fn allowed_protocols(&self) -> &'static str {
        match self {
            Transport::File(_) => "https:ssh:file",
            Transport::Https | Transport::Ssh => "https:ssh",
        }
    }
}

/// How ssh reaches a repository: the app's deploy key, if it has one, and
/// berth's own known_hosts, where a host's key is recorded on first use
/// (`accept-new`) and must match from then on.
pub(crate) struct Ssh<'a> {
    pub key_file: Option<&'a Path>,
    pub known_hosts: &'a Path,
}

impl Ssh<'_> {
    fn command(&self) -> String {
        let identity = match self.key_file {
            Some(key) => format!(
                "-i {} -o IdentitiesOnly=yes",
                shell_quote(&key.to_string_lossy())
            ),
            None => "-o IdentityFile=none".to_owned(),
        };
        // No system-wide known hosts: only what berth itself recorded counts,
        // unhashed so the page can show which key each host has.
        format!(
            "ssh -F /dev/null {identity} -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o GlobalKnownHostsFile=/dev/null -o HashKnownHosts=no -o UserKnownHostsFile={}",
            shell_quote(&self.known_hosts.to_string_lossy()),
        )
    }
}

/// The host and port of an SSH URL (`ssh://[user@]host[:port]/path`,
/// `git+ssh://…` or scp-like `[user@]host:path`), as ssh names it in
/// known_hosts: `host` on port 22, `[host]:port` on any other.
pub(crate) fn known_hosts_name(url: &str) -> Option<String> {
    if !is_ssh_url(url) {
        return None;
    }
    let (authority, scp_like) = match url.split_once("://") {
        Some((_, rest)) => (rest.split('/').next().unwrap_or_default(), false),
        None => (url.split_once(':').map(|(host, _)| host)?, true),
    };
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else if scp_like {
        (host_port, None)
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let host = host.to_ascii_lowercase();
    match port.filter(|p| !p.is_empty() && *p != "22") {
        Some(port) => Some(format!("[{host}]:{port}")),
        None => Some(host),
    }
}

/// A host key recorded in known_hosts, as `ssh-keygen -l` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`…
    pub kind: String,
    /// `SHA256:` and the unpadded base64 of the key's SHA-256.
    pub fingerprint: String,
}

/// The keys `known_hosts` (its text) records for `name` (see
/// [`known_hosts_name`]); hashed and marker (`@revoked`) lines are skipped.
pub(crate) fn recorded_host_keys(known_hosts: &str, name: &str) -> Vec<HostKey> {
    use base64::Engine;
    use sha2::Digest;
    known_hosts
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let hosts = words.next()?;
            if hosts.starts_with('#') || hosts.starts_with('@') || hosts.starts_with('|') {
                return None;
            }
            if !hosts.split(',').any(|h| h.eq_ignore_ascii_case(name)) {
                return None;
            }
            let kind = words.next()?;
            let blob = base64::engine::general_purpose::STANDARD
                .decode(words.next()?)
                .ok()?;
            Some(HostKey {
                kind: kind.to_owned(),
                fingerprint: format!(
                    "SHA256:{}",
                    base64::engine::general_purpose::STANDARD_NO_PAD
                        .encode(sha2::Sha256::digest(&blob))
                ),
            })
        })
        .collect()
}

/// One shell word, whatever `s` holds.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Whether git reaches `url` over SSH: `ssh://…`, `git+ssh://…` or the
/// scp-like `user@host:path` (a `:` before any `/`, no `://`).
pub(crate) fn is_ssh_url(url: &str) -> bool {
    if let Some((scheme, _)) = url.split_once("://") {
        return matches!(scheme, "ssh" | "git+ssh" | "ssh+git");
    }
    match url.split_once(':') {
        // `helper::address` is git's syntax for a remote helper (`ext::`, `fd::`), not ssh.
        Some((host, rest)) => {
            !host.is_empty()
                && !host.contains('/')
                && !host.contains(char::is_whitespace)
                && !rest.starts_with(':')
        }
        None => false,
    }
}

/// A private key written for one clone, readable by its owner only, and
/// removed when dropped (also when the deploy is cancelled mid-clone).
pub(crate) struct KeyFile(PathBuf);

impl KeyFile {
    pub(crate) fn write(path: PathBuf, private: &[u8]) -> Result<KeyFile, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot write the deploy key file {}: {e}", path.display()))?;
        let key = KeyFile(path);
        file.write_all(private)
            .map_err(|e| format!("cannot write the deploy key file {}: {e}", key.0.display()))?;
        Ok(key)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A shallow clone of `branch`; returns the commit checked out.
pub(crate) async fn clone(
    url: &str,
    transport: &Transport,
    branch: &str,
    into: &Path,
    ssh: Option<&Ssh<'_>>,
) -> Result<String, String> {
    if url.starts_with('-') || branch.starts_with('-') {
        return Err("a repository URL or branch may not start with '-'".to_owned());
    }
    let protocols = transport.allowed_protocols();
    let mut args = vec!["clone", "--quiet", "--single-branch", "--no-tags"];
    // Local clones ignore --depth with a warning; remote ones are shallow.
    if url.contains("://") && !url.starts_with("file://") || url.contains('@') {
        args.extend(["--depth", "1"]);
    }
    if !branch.is_empty() {
        args.extend(["--branch", branch]);
    }
    args.push("--");
    args.push(url);
    let target = into.to_string_lossy().into_owned();
    args.push(&target);
    let ssh_command = ssh.map_or_else(|| DEFAULT_SSH.to_owned(), Ssh::command);
    if let Err(err) = run(&args, None, &ssh_command, protocols).await {
        // ssh's own warning is a page of text: say what happened and what to do.
        if err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
            let host = known_hosts_name(url).unwrap_or_default();
            let file = ssh.map(|s| s.known_hosts.display().to_string());
            return Err(format!(
                "the SSH host key of {host} is not the one recorded when berth first cloned from it, so the clone was stopped (someone may be in between). If the server's key really changed, remove the lines for {host} from {} and deploy again",
                file.unwrap_or_default()
            ));
        }
        return Err(err);
    }
    let head = run(&["rev-parse", "HEAD"], Some(into), DEFAULT_SSH, protocols).await?;
    Ok(String::from_utf8_lossy(&head).trim().to_owned())
}

/// The tree `git archive` makes the context of: `HEAD` or `HEAD:<subdir>`.
fn context_tree(subdir: &str) -> Result<String, String> {
    let subdir = subdir.trim_matches('/');
    if subdir.split('/').any(|part| part == "..") {
        return Err("the subdirectory may not contain '..'".to_owned());
    }
    Ok(if subdir.is_empty() {
        "HEAD".to_owned()
    } else {
        format!("HEAD:{subdir}")
    })
}

/// How much of `git archive`'s output is read at a time.
const CONTEXT_CHUNK: usize = 256 * 1024;

/// The build context of `subdir` (or the whole tree) at HEAD, read from
/// `git archive`'s output while Docker receives it: a large repository is
/// never held in memory. The tree is checked first, so a missing
/// subdirectory fails with git's words instead of an empty context; git
/// failing later ends the upload with its message. Dropping the context
/// kills git.
pub(crate) async fn context_stream(
    repo: &Path,
    subdir: &str,
) -> Result<berth_docker::BuildContext, String> {
    archive_chunks(repo, subdir)
        .await
        .map(berth_docker::BuildContext::streamed)
}

/// `git archive`'s output for [`context_stream`], chunk by chunk.
async fn archive_chunks(
    repo: &Path,
    subdir: &str,
) -> Result<
    impl futures_util::Stream<Item = std::io::Result<tokio_util::bytes::Bytes>> + Send + 'static,
    String,
> {
    use futures_util::StreamExt;
    let tree = context_tree(subdir)?;
    // `HEAD:path` takes the rest as a path, so the type is asked separately.
    let kind = run(
        &["cat-file", "-t", &tree],
        Some(repo),
        DEFAULT_SSH,
        "https:ssh",
    )
    .await
    .unwrap_or_default();
    if kind.trim_ascii() != b"tree" {
        return Err(format!(
            "the subdirectory {} is not a directory of the repository at the commit checked out",
            subdir.trim_matches('/')
        ));
    }
    let mut child = git_command(
        &["archive", "--format=tar", &tree],
        Some(repo),
        DEFAULT_SSH,
        "https:ssh",
    )
    .spawn()
    .map_err(|e| format!("cannot run git: {e}"))?;
    let stdout = child.stdout.take().ok_or("git archive has no output")?;
    // The end of the output: git's exit says whether it is whole.
    let exit = futures_util::stream::once(async move {
        match child.wait_with_output().await {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(Err(std::io::Error::other(format!(
                "git archive failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))),
            Err(e) => Some(Err(e)),
        }
    })
    .filter_map(std::future::ready);
    Ok(tokio_util::io::ReaderStream::with_capacity(stdout, CONTEXT_CHUNK).chain(exit))
}

/// A tar archive of `subdir` (or the whole tree) at HEAD, in memory (stacks
/// build from it; app builds stream with [`context_stream`]).
/// `git archive` leaves out `.git` and untracked files, as a build should.
pub(crate) async fn context_tar(repo: &Path, subdir: &str) -> Result<Vec<u8>, String> {
    let tree = context_tree(subdir)?;
    run(
        &["archive", "--format=tar", &tree],
        Some(repo),
        DEFAULT_SSH,
        "https:ssh",
    )
    .await
}

/// Makes a new ed25519 key pair with `ssh-keygen` (an argument array, no
/// shell) in `dir`, which must not exist yet and is removed afterwards.
/// Returns (public key line, private key in OpenSSH format).
pub(crate) async fn generate_key(dir: &Path, comment: &str) -> Result<(String, Vec<u8>), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(false)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let result = async {
        let key = dir.join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(&key)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let private = std::fs::read(&key).map_err(|e| format!("cannot read the new key: {e}"))?;
        let public = std::fs::read_to_string(key.with_extension("pub"))
            .map_err(|e| format!("cannot read the new public key: {e}"))?;
        Ok((public.trim().to_owned(), private))
    }
    .await;
    let _ = std::fs::remove_dir_all(dir);
    result
}

/// Runs git in a clean room: none of the environment berth was started with
/// (no GIT_* variables, credential helpers or askpass programs), no system
/// or global gitconfig, no prompts, and only `protocols`.
async fn run(
    args: &[&str],
    dir: Option<&Path>,
    ssh_command: &str,
    protocols: &str,
) -> Result<Vec<u8>, String> {
    let out = git_command(args, dir, ssh_command, protocols)
        .output()
        .await
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "git {} failed: {}",
            args.first().copied().unwrap_or_default(),
            stderr.trim()
        ))
    }
}

/// git in the clean room [`run`] describes, its output piped, killed when dropped.
fn git_command(args: &[&str], dir: Option<&Path>, ssh_command: &str, protocols: &str) -> Command {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("HOME", "/nonexistent")
        .env("LC_ALL", "C")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", protocols)
        .env("GIT_SSH_COMMAND", ssh_command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_ssh_and_files_under_the_root_may_be_cloned() {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.path().join("link")).unwrap();
        let of = |url: &str| Transport::of(url, Some(root.path()));
        assert_eq!(of("https://example.com/a.git"), Ok(Transport::Https));
        assert_eq!(of("ssh://git@example.com/a.git"), Ok(Transport::Ssh));
        assert_eq!(of("git@example.com:a/b.git"), Ok(Transport::Ssh));
        let canonical = std::fs::canonicalize(&repo).unwrap();
        assert_eq!(
            of(&format!("file://{}", repo.display())),
            Ok(Transport::File(canonical.clone()))
        );
        assert_eq!(
            of(&repo.display().to_string()),
            Ok(Transport::File(canonical))
        );
        for refused in [
            "ext::sh -c touch% /tmp/pwned",
            "http://example.com/a.git",
            "git://example.com/a.git",
            "fd::17",
            "-uhttps://x",
            "file:///etc",
            &format!("file://{}/../..", repo.display()),
            &format!("file://{}/link", root.path().display()),
        ] {
            assert!(of(refused).is_err(), "{refused} was allowed");
        }
        assert!(
            Transport::of(&format!("file://{}", repo.display()), None).is_err(),
            "no root, no local clones"
        );
    }

    #[test]
    fn ssh_urls_are_told_from_other_sources() {
        for url in [
            "ssh://git@example.com/o/r.git",
            "git@github.com:o/r.git",
            "git+ssh://h/r",
        ] {
            assert!(is_ssh_url(url), "{url}");
        }
        for url in [
            "https://example.com/o/r.git",
            "file:///srv/r",
            "/srv/r",
            "./r:x",
        ] {
            assert!(!is_ssh_url(url), "{url}");
        }
    }

    #[test]
    fn a_key_file_is_readable_by_its_owner_only_and_gone_when_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("berth-key-test-{}.key", std::process::id()));
        let file = KeyFile::write(path.clone(), b"secret").unwrap();
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        drop(file);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_generated_key_is_an_ed25519_pair_and_its_directory_is_removed() {
        let dir = std::env::temp_dir().join(format!("berth-keygen-test-{}", std::process::id()));
        let (public, private) = generate_key(&dir, "berth demo/web").await.unwrap();
        assert!(public.starts_with("ssh-ed25519 "), "{public}");
        assert!(public.ends_with(" berth demo/web"), "{public}");
        assert!(
            String::from_utf8(private)
                .unwrap()
                .contains("OPENSSH PRIVATE KEY")
        );
        assert!(!dir.exists());
    }

    #[test]
    fn paths_in_the_ssh_command_are_single_shell_words() {
        let ssh = Ssh {
            key_file: Some(Path::new("/data dir/it's.key")),
            known_hosts: Path::new("/data dir/known_hosts"),
        };
        assert_eq!(
            ssh.command(),
            "ssh -F /dev/null -i '/data dir/it'\\''s.key' -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o GlobalKnownHostsFile=/dev/null -o HashKnownHosts=no -o UserKnownHostsFile='/data dir/known_hosts'"
        );
        let keyless = Ssh {
            key_file: None,
            known_hosts: Path::new("/d/known_hosts"),
        };
        assert!(
            keyless
                .command()
                .contains("-o IdentityFile=none -o IdentityAgent=none"),
            "{}",
            keyless.command()
        );
    }

    fn git_in(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@berth.invalid"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    #[tokio::test]
    async fn a_streamed_context_is_the_same_tar_as_git_archive_and_a_missing_subdir_is_refused() {
        use futures_util::StreamExt;
        let repo = tempfile::tempdir().unwrap();
        git_in(repo.path(), &["init", "-q", "-b", "main"]);
        std::fs::create_dir(repo.path().join("site")).unwrap();
        // Larger than one chunk, so the stream has several.
        let big: Vec<u8> = (0..3 * CONTEXT_CHUNK as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(repo.path().join("site/big.bin"), &big).unwrap();
        git_in(repo.path(), &["add", "-A"]);
        git_in(repo.path(), &["commit", "-q", "-m", "one"]);
        let whole = context_tar(repo.path(), "site").await.unwrap();
        let err = context_stream(repo.path(), "nope").await.unwrap_err();
        assert!(err.contains("the subdirectory nope is not"), "{err}");
        assert!(context_stream(repo.path(), "../x").await.is_err());
        // The chunks as the Docker client sends them.
        let chunks: Vec<_> = archive_chunks(repo.path(), "site")
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect()
            .await;
        assert!(chunks.len() > 1, "{} chunks", chunks.len());
        assert_eq!(chunks.concat(), whole);
    }

    #[test]
    fn an_ssh_urls_host_is_named_as_known_hosts_names_it() {
        for (url, name) in [
            ("ssh://git@Example.com/o/r.git", Some("example.com")),
            ("ssh://git@example.com:22/o/r.git", Some("example.com")),
            (
                "ssh://git@127.0.0.1:2222/srv/r.git",
                Some("[127.0.0.1]:2222"),
            ),
            ("git+ssh://h:7/r", Some("[h]:7")),
            ("git@github.com:o/r.git", Some("github.com")),
            ("github.com:o/r.git", Some("github.com")),
            ("ssh://git@[::1]:2200/r", Some("[::1]:2200")),
            ("https://example.com/o/r.git", None),
            ("/srv/r", None),
        ] {
            assert_eq!(known_hosts_name(url).as_deref(), name, "{url}");
        }
    }

    #[test]
    fn recorded_host_keys_are_those_of_the_host_with_ssh_keygens_fingerprint() {
        // Fingerprint as `ssh-keygen -lf` printed it for this very line.
        let text = "\
# a comment
[127.0.0.1]:22999 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJTNYs4j7nOxKvx++z3yNewpU+XzNCXFJi9Z0Ohx+vkf
127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJTNYs4j7nOxKvx++z3yNewpU+XzNCXFJi9Z0Ohx+vkf
@revoked [127.0.0.1]:22999 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJTNYs4j7nOxKvx++z3yNewpU+XzNCXFJi9Z0Ohx+vkf
|1|hashed= ssh-ed25519 AAAA
";
        let keys = recorded_host_keys(text, "[127.0.0.1]:22999");
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(keys[0].kind, "ssh-ed25519");
        assert_eq!(
            keys[0].fingerprint,
            "SHA256:1vj4tJ9LejYL6RuLhjNsby+fESnozCVRZvnX/FtLt3U"
        );
        assert!(recorded_host_keys(text, "[127.0.0.1]:22").is_empty());
    }
}
