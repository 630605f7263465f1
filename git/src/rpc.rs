//! Driving the system `git` in stateless-RPC mode (gitprotocol-http(5)):
//! ref advertisements, `upload-pack` (fetch, clone) and `receive-pack`
//! (push), with request and response bodies streamed through the child's
//! pipes so that a push is never held in memory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, BodyDataStream};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::Limits;
use crate::pkt::{self, Packet, PushHead};

/// The two services git's smart HTTP offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    UploadPack,
    ReceivePack,
}

impl Service {
    /// Reads the `service` query parameter (`git-upload-pack`, …).
    pub fn from_query(name: &str) -> Option<Self> {
        match name {
            "git-upload-pack" => Some(Self::UploadPack),
            "git-receive-pack" => Some(Self::ReceivePack),
            _ => None,
        }
    }

    /// The `git` subcommand.
    pub fn command(self) -> &'static str {
        match self {
            Self::UploadPack => "upload-pack",
            Self::ReceivePack => "receive-pack",
        }
    }

    pub fn advertisement_type(self) -> &'static str {
        match self {
            Self::UploadPack => "application/x-git-upload-pack-advertisement",
            Self::ReceivePack => "application/x-git-receive-pack-advertisement",
        }
    }

    pub fn result_type(self) -> &'static str {
        match self {
            Self::UploadPack => "application/x-git-upload-pack-result",
            Self::ReceivePack => "application/x-git-receive-pack-result",
        }
    }
}

/// Why running `git` failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("starting `git {command}` failed: is `git` installed and on PATH?")]
    Spawn {
        command: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("`git {command}` failed: {stderr}")]
    Failed {
        command: &'static str,
        stderr: String,
    },
    #[error("preparing the repository at {path} failed")]
    Repo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What every `git` child runs with: no user or system configuration.
fn git() -> Command {
    let mut command = Command::new("git");
    command
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .kill_on_drop(true);
    command
}

/// Creates the bare repository at `path` unless it exists. It is made
/// beside its final place and renamed in, so that two first pushes racing
/// each other never see half a repository.
pub async fn ensure_repo(path: &Path, branch: &str) -> Result<(), RpcError> {
    if tokio::fs::try_exists(path.join("HEAD"))
        .await
        .unwrap_or(false)
    {
        return Ok(());
    }
    let repo_error = |source| RpcError::Repo {
        path: path.to_path_buf(),
        source,
    };
    let parent = path.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(repo_error)?;
    // Unique per call: two first pushes to one site may both get here.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let temp = parent.join(format!(
        ".init-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        path.file_name().and_then(|n| n.to_str()).unwrap_or("repo")
    ));
    let output = git()
        .args(["init", "--bare", "--quiet"])
        .arg(format!("--initial-branch={branch}"))
        .arg(&temp)
        .output()
        .await
        .map_err(|source| RpcError::Spawn {
            command: "init",
            source,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(RpcError::Failed {
            command: "init",
            stderr,
        });
    }
    if tokio::fs::rename(&temp, path).await.is_err() {
        // Another push made it first; theirs is as good as ours.
        let _ = tokio::fs::remove_dir_all(&temp).await;
    }
    tracing::info!(repo = %path.display(), "created repository");
    Ok(())
}

/// The ref advertisement that opens a fetch or a push, with the
/// `# service=…` header that smart HTTP puts before it.
pub async fn advertise(repo: &Path, service: Service) -> Result<Bytes, RpcError> {
    let command = service.command();
    let output = git()
        .args([command, "--stateless-rpc", "--advertise-refs"])
        .arg(repo)
        .output()
        .await
        .map_err(|source| RpcError::Spawn { command, source })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(RpcError::Failed { command, stderr });
    }
    let mut body = BytesMut::new();
    body.extend_from_slice(&pkt::encode(
        format!("# service=git-{command}\n").as_bytes(),
    ));
    body.extend_from_slice(pkt::FLUSH);
    body.extend_from_slice(&output.stdout);
    Ok(body.freeze())
}

/// Runs `git upload-pack` on the request body and streams its answer.
pub fn upload_pack(repo: &Path, body: Body) -> Result<Body, RpcError> {
    let command = Service::UploadPack.command();
    let mut child = git()
        .args([command, "--stateless-rpc"])
        .arg(repo)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RpcError::Spawn { command, source })?;
    let (stdin, stdout) = take_pipes(&mut child);
    tokio::spawn(feed(stdin, BytesMut::new(), body.into_data_stream()));
    tokio::spawn(reap(child, command));
    Ok(Body::from_stream(tokio_util::io::ReaderStream::new(stdout)))
}

/// A running `receive-pack`, fed with the push, its output not yet read.
pub struct ReceivePack {
    child: Child,
    stdout: tokio::process::ChildStdout,
}

/// Settings for one `receive-pack`.
pub struct ReceiveSettings<'a> {
    pub hooks_dir: &'a Path,
    pub limits: &'a Limits,
    pub branch: &'a str,
    pub publish_dir: &'a str,
}

/// Starts `git receive-pack` and feeds it `head` (the bytes read so far)
/// then the rest of the request body.
pub fn receive_pack(
    repo: &Path,
    settings: &ReceiveSettings<'_>,
    head: BytesMut,
    rest: BodyDataStream,
) -> Result<ReceivePack, RpcError> {
    let command = Service::ReceivePack.command();
    let limits = settings.limits;
    let mut child = git()
        .arg("-c")
        .arg(format!("receive.maxInputSize={}", limits.max_push_bytes))
        .arg("-c")
        .arg(format!("core.hooksPath={}", settings.hooks_dir.display()))
        // Refuses objects git itself considers malformed, among them trees
        // with `..` or `.git` entries, before they are stored.
        .args(["-c", "receive.fsckObjects=true"])
        .args([command, "--stateless-rpc"])
        .arg(repo)
        .env(crate::hook::BRANCH_ENV, settings.branch)
        .env(crate::hook::PUBLISH_DIR_ENV, settings.publish_dir)
        .env("ECSTATIC_MAX_PUSH_BYTES", limits.max_push_bytes.to_string())
        .env("ECSTATIC_MAX_FILES", limits.max_files.to_string())
        .env("ECSTATIC_MAX_FILE_BYTES", limits.max_file_bytes.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RpcError::Spawn { command, source })?;
    let (stdin, stdout) = take_pipes(&mut child);
    tokio::spawn(feed(stdin, head, rest));
    Ok(ReceivePack { child, stdout })
}

impl ReceivePack {
    /// Passes the child's output to `tx` and waits for it to exit. With
    /// side-band, output is passed a packet at a time and the final flush is
    /// held back (returned as `true`), so that progress lines can still be
    /// sent after it; without, it is passed through as it comes.
    pub async fn relay(mut self, head: &PushHead, tx: &mpsc::Sender<Bytes>) -> (bool, bool) {
        let held_flush = if head.side_band() {
            relay_packets(&mut self.stdout, tx).await
        } else {
            relay_raw(&mut self.stdout, tx).await;
            false
        };
        let succeeded = wait(self.child, "receive-pack").await;
        (succeeded, held_flush)
    }
}

/// Forwards packets until the stream's flush, which is held back. Returns
/// whether the flush was seen.
async fn relay_packets(stdout: &mut (impl AsyncRead + Unpin), tx: &mpsc::Sender<Bytes>) -> bool {
    let mut buf = BytesMut::with_capacity(64 << 10);
    loop {
        match pkt::split_packet(&mut buf) {
            Ok(Some(Packet::Flush)) => {
                // Anything after the final flush would be out of protocol;
                // pass it on rather than lose it.
                if !buf.is_empty() {
                    let _ = tx.send(buf.split().freeze()).await;
                }
                relay_raw(stdout, tx).await;
                return true;
            }
            Ok(Some(Packet::Data(data) | Packet::Special(data))) => {
                let _ = tx.send(data).await;
                continue;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "`receive-pack` wrote no pkt-lines: passing it through");
                let _ = tx.send(buf.split().freeze()).await;
                relay_raw(stdout, tx).await;
                return false;
            }
        }
        match stdout.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                if !buf.is_empty() {
                    let _ = tx.send(buf.split().freeze()).await;
                }
                return false;
            }
            Ok(_) => {}
        }
    }
}

async fn relay_raw(stdout: &mut (impl AsyncRead + Unpin), tx: &mpsc::Sender<Bytes>) {
    let mut buf = BytesMut::with_capacity(64 << 10);
    while let Ok(n) = stdout.read_buf(&mut buf).await {
        if n == 0 {
            break;
        }
        let _ = tx.send(buf.split().freeze()).await;
    }
}

fn take_pipes(child: &mut Child) -> (ChildStdin, tokio::process::ChildStdout) {
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    (stdin, stdout)
}

/// Writes `head` and then every chunk of `rest` to the child, then closes
/// its stdin so that it sees the end of the request.
async fn feed(mut stdin: ChildStdin, head: BytesMut, mut rest: BodyDataStream) {
    if !head.is_empty() && stdin.write_all(&head).await.is_err() {
        return;
    }
    while let Some(chunk) = rest.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                // The child sees a truncated request and says so itself.
                tracing::debug!(%error, "reading the request body failed");
                return;
            }
        };
        if stdin.write_all(&chunk).await.is_err() {
            // The child stopped reading (it refused the request): its own
            // output tells the client why.
            return;
        }
    }
    let _ = stdin.shutdown().await;
}

/// Waits for a child whose output is streamed elsewhere, and logs how it
/// ended.
async fn reap(child: Child, command: &'static str) {
    wait(child, command).await;
}

/// Waits for `child`, logging its stderr when it failed. Returns whether it
/// succeeded.
async fn wait(mut child: Child, command: &'static str) -> bool {
    let mut stderr = Vec::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_end(&mut stderr).await;
    }
    let stderr = String::from_utf8_lossy(&stderr[..stderr.len().min(4096)]);
    match child.wait().await {
        Ok(status) if status.success() => true,
        Ok(status) => {
            tracing::debug!(command, %status, stderr = stderr.trim(), "`git` exited with an error");
            false
        }
        Err(error) => {
            tracing::warn!(command, %error, "waiting for `git` failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Relays `bytes`, delivered through a pipe of `capacity` bytes so that
    /// reads end at every possible place, and returns what was sent and
    /// whether a flush was held back.
    async fn relay_through(bytes: &[u8], capacity: usize) -> (Vec<Bytes>, bool) {
        let (mut writer, mut reader) = tokio::io::duplex(capacity);
        let data = bytes.to_vec();
        tokio::spawn(async move { writer.write_all(&data).await.unwrap() });
        let (tx, mut rx) = mpsc::channel(1024);
        let held = relay_packets(&mut reader, &tx).await;
        drop(tx);
        let mut sent = Vec::new();
        while let Some(item) = rx.recv().await {
            sent.push(item);
        }
        (sent, held)
    }

    /// Two first pushes to one site used to run `git init` in the same
    /// temporary directory, and one of them failed with a 500.
    #[tokio::test]
    async fn racing_first_pushes_each_get_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repos/1000.git");
        let inits = (0..6).map(|_| ensure_repo(&repo, "main"));
        for result in futures_util::future::join_all(inits).await {
            result.unwrap();
        }
        assert!(repo.join("HEAD").is_file());
        let leftovers = std::fs::read_dir(dir.path().join("repos")).unwrap().count();
        assert_eq!(leftovers, 1, "temporary init directories were left behind");
    }

    #[tokio::test]
    async fn relays_whole_packets_and_holds_the_final_flush() {
        let packets = [
            pkt::progress("resolving deltas"),
            pkt::encode(b"\x010030unpack ok\n"),
        ];
        let mut stream: Vec<u8> = packets.concat();
        stream.extend_from_slice(pkt::FLUSH);
        for capacity in 1..=stream.len() {
            let (sent, held) = relay_through(&stream, capacity).await;
            assert!(held, "capacity {capacity}");
            assert_eq!(sent, packets, "capacity {capacity}");
        }
    }

    #[tokio::test]
    async fn passes_output_that_is_not_pkt_lines_through() {
        let (sent, held) = relay_through(b"fatal: not a pkt-line\n", 7).await;
        assert!(!held);
        assert_eq!(sent.concat(), b"fatal: not a pkt-line\n");

        // Output cut short (the child died) is passed on and holds nothing.
        let (sent, held) = relay_through(b"0010\x02progr", 3).await;
        assert!(!held);
        assert_eq!(sent.concat(), b"0010\x02progr");
    }
}
