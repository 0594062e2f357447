//! Commands inside a container that move data: a dump tool's stdout streamed out (backups),
//! or a stream fed into a restore tool's stdin. Unlike `exec.rs` nothing is collected: at most
//! a few chunks are in flight, so memory stays bounded whatever the size, and a slow reader
//! slows the tool down instead of filling memory (Docker's socket applies the back-pressure).
//!
//! A command that fails is never mistaken for a short, complete stream: after its stdout
//! ends, the exit code is checked and a non-zero one arrives as the stream's last item, an
//! error carrying the end of stderr. Consumers that store the stream (a multipart upload)
//! therefore abort instead of completing.

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{DockerClient, DockerError, DockerResult};

/// Chunks in flight between Docker and the consumer (each at most what Docker sent at once,
/// typically ≤ 32 KiB).
const CHANNEL_CHUNKS: usize = 16;
/// How much of stderr is kept for the error message.
const STDERR_TAIL_BYTES: usize = 4096;

/// What a streamed command's stdout yields: data, or at the end why the command failed.
pub type ExecChunk = Result<Bytes, String>;

impl DockerClient {
    /// Runs `argv` in `container` and streams its stdout. `stdin` (secrets only, small) is
    /// written first. The stream ends with `Err` if the command exits non-zero.
    pub async fn exec_output_stream(
        &self,
        container: &str,
        argv: &[&str],
        user: Option<&str>,
        stdin: Option<Vec<u8>>,
    ) -> DockerResult<impl Stream<Item = ExecChunk> + Send + 'static> {
        let (docker, exec_id, mut output, input) =
            self.start_attached(container, argv, user).await?;
        let (tx, rx) = mpsc::channel::<ExecChunk>(CHANNEL_CHUNKS);
        tokio::spawn(async move {
            if let Some(mut input) = input {
                if let Some(bytes) = stdin
                    && let Err(e) = input.write_all(&bytes).await
                {
                    let _ = tx
                        .send(Err(format!("writing to the command's stdin: {e}")))
                        .await;
                    return;
                }
                input.shutdown().await.ok();
            }
            let mut stderr = Vec::new();
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(LogOutput::StdOut { message }) => {
                        if tx.send(Ok(message)).await.is_err() {
                            // The consumer gave up; dropping the attachment ends the command
                            // (its next write fails).
                            return;
                        }
                    }
                    Ok(LogOutput::StdErr { message }) => keep_tail(&mut stderr, &message),
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx
                            .send(Err(format!("reading the command's output: {e}")))
                            .await;
                        return;
                    }
                }
            }
            if let Some(failure) = exit_failure(&docker, &exec_id, &stderr).await {
                let _ = tx.send(Err(failure)).await;
            }
        });
        Ok(tokio_stream_from(rx))
    }

    /// Runs `argv` in `container` with `input` streamed into its stdin; returns its stdout
    /// (capped) once it exits 0, or an error with the end of its stderr. A failing `input`
    /// stream stops the command (its stdin is closed early) and is reported as the error.
    pub async fn exec_with_input_stream<S>(
        &self,
        container: &str,
        argv: &[&str],
        user: Option<&str>,
        mut input_stream: S,
    ) -> DockerResult<Result<Vec<u8>, String>>
    where
        S: Stream<Item = Result<Bytes, String>> + Unpin + Send,
    {
        let (docker, exec_id, mut output, input) =
            self.start_attached(container, argv, user).await?;
        let mut input = input.ok_or_else(|| DockerError::Other("no stdin attached".into()))?;
        // Feed stdin and drain stdout/stderr concurrently: a tool that writes while it reads
        // would otherwise block on a full pipe.
        let feed = async {
            let fed = async {
                while let Some(chunk) = input_stream.next().await {
                    let chunk = chunk?;
                    input
                        .write_all(&chunk)
                        .await
                        .map_err(|e| format!("writing to the command's stdin: {e}"))?;
                }
                Ok::<(), String>(())
            }
            .await;
            // Closed in every case: a command still reading must see the end of its input,
            // or it (and Docker's attachment) would wait for more forever.
            input.shutdown().await.ok();
            fed
        };
        let drain = async {
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(LogOutput::StdOut { message }) => keep_tail(&mut stdout, &message),
                    Ok(LogOutput::StdErr { message }) => keep_tail(&mut stderr, &message),
                    Ok(_) => {}
                    Err(e) => return Err(format!("reading the command's output: {e}")),
                }
            }
            Ok((stdout, stderr))
        };
        let (fed, drained) = tokio::join!(feed, drain);
        if let Err(e) = fed {
            return Ok(Err(e));
        }
        let (stdout, stderr) = match drained {
            Ok(out) => out,
            Err(e) => return Ok(Err(e)),
        };
        Ok(match exit_failure(&docker, &exec_id, &stderr).await {
            Some(failure) => Err(failure),
            None => Ok(stdout),
        })
    }

    #[allow(clippy::type_complexity)]
    async fn start_attached(
        &self,
        container: &str,
        argv: &[&str],
        user: Option<&str>,
    ) -> DockerResult<(
        bollard::Docker,
        String,
        std::pin::Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
        Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    )> {
        let container = container.to_string();
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let user = user.map(str::to_string);
        self.with(|d| async move {
            let created = d
                .create_exec(
                    &container,
                    CreateExecOptions {
                        cmd: Some(argv),
                        user,
                        attach_stdin: Some(true),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await?;
            match d.start_exec(&created.id, None).await? {
                StartExecResults::Attached { output, input } => {
                    Ok((d, created.id, output, Some(input)))
                }
                StartExecResults::Detached => Err(DockerError::Other(
                    "the command started detached; nothing to stream".into(),
                )),
            }
        })
        .await
    }
}

/// `Some(reason)` if the exec exited non-zero (or its exit code cannot be read).
async fn exit_failure(docker: &bollard::Docker, exec_id: &str, stderr: &[u8]) -> Option<String> {
    match docker.inspect_exec(exec_id).await {
        Ok(inspected) => match inspected.exit_code {
            Some(0) => None,
            code => Some(format!(
                "exit code {}: {}",
                code.map(|c| c.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                String::from_utf8_lossy(stderr).trim()
            )),
        },
        Err(e) => Some(format!("reading the command's exit code: {e}")),
    }
}

/// Keeps the last `STDERR_TAIL_BYTES` of what a command said: the end explains a failure.
fn keep_tail(buffer: &mut Vec<u8>, bytes: &[u8]) {
    buffer.extend_from_slice(bytes);
    if buffer.len() > STDERR_TAIL_BYTES {
        let cut = buffer.len() - STDERR_TAIL_BYTES;
        buffer.drain(..cut);
    }
}

fn tokio_stream_from(mut rx: mpsc::Receiver<ExecChunk>) -> impl Stream<Item = ExecChunk> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
