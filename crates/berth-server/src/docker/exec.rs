//! Commands run inside a service's container: what an engine needs when its server has no
//! network admin API for a task (S3 key files, a tool shipped only in the image). The argv is
//! passed as a list, never through a shell, so no user input is ever parsed by one.

use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{DockerClient, DockerError, DockerResult};

/// Output cap per stream: an exec is for short admin commands, not for moving data.
const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// What a finished command left.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// `Ok(stdout)` on exit code 0, else an error carrying the exit code and stderr (or
    /// stdout when stderr is empty), trimmed.
    pub fn success(self) -> Result<Vec<u8>, String> {
        if self.exit_code == 0 {
            return Ok(self.stdout);
        }
        let said = if self.stderr.is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        Err(format!(
            "exit code {}: {}",
            self.exit_code,
            String::from_utf8_lossy(said).trim()
        ))
    }
}

impl DockerClient {
    /// Runs `argv` in the running container `container` as `user` (the image's default when
    /// `None`), feeding `stdin` (secrets go here, never in argv: argv shows in `ps`), and
    /// waits for it to end.
    pub async fn exec(
        &self,
        container: &str,
        argv: &[&str],
        user: Option<&str>,
        stdin: Option<Vec<u8>>,
    ) -> DockerResult<ExecOutput> {
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
                        attach_stdin: Some(stdin.is_some()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await?;
            let mut out = ExecOutput::default();
            if let StartExecResults::Attached {
                mut output,
                mut input,
            } = d.start_exec(&created.id, None).await?
            {
                if let Some(bytes) = stdin {
                    input.write_all(&bytes).await.map_err(|e| {
                        DockerError::Other(format!("writing to the command's stdin: {e}"))
                    })?;
                    input.shutdown().await.ok();
                }
                drop(input);
                while let Some(chunk) = output.next().await {
                    use bollard::container::LogOutput;
                    match chunk? {
                        LogOutput::StdOut { message } => append(&mut out.stdout, &message),
                        LogOutput::StdErr { message } => append(&mut out.stderr, &message),
                        _ => {}
                    }
                }
            }
            let inspected = d.inspect_exec(&created.id).await?;
            out.exit_code = inspected.exit_code.unwrap_or(-1);
            Ok(out)
        })
        .await
    }
}

fn append(buffer: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_OUTPUT_BYTES.saturating_sub(buffer.len());
    buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
}
