//! One object of a backup on its way to S3: the dump's stream, compressed with zstd unless the
//! tool compressed it already, hashed and counted as it passes, uploaded in parts (one part
//! in memory at a time), then read back and checked. A multipart upload's id is recorded on
//! the backup before its first part, so a crash's cleanup can abort it.

use std::sync::{Arc, Mutex as StdMutex};

use async_compression::tokio::bufread::ZstdEncoder;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio_util::io::{ReaderStream, StreamReader};

use super::super::{ManagerError, ManagerResult, ServiceManager};
use super::destination::Target;

/// What was stored: size and SHA-256 of the bytes as uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    pub sha256: String,
}

type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// zstd over a stream of bytes, streaming (level 3: fast, and far smaller than the input).
pub fn zstd(stream: ByteStream) -> ByteStream {
    let reader = StreamReader::new(stream.map_err(std::io::Error::other));
    let encoder = ZstdEncoder::new(reader);
    Box::pin(ReaderStream::new(encoder).map_err(|e| e.to_string()))
}

impl ServiceManager {
    /// Uploads `stream` as `key`, reporting bytes read to the backup's progress, and checks
    /// what the destination now holds against what passed through.
    pub(super) async fn upload_verified(
        &self,
        backup_row: i64,
        target: &Target,
        key: &str,
        content_type: &str,
        stream: ByteStream,
    ) -> ManagerResult<Stored> {
        let digest = Arc::new(StdMutex::new((Sha256::new(), 0u64)));
        let tap = digest.clone();
        let progress = self.backup_runs.progress_handle(backup_row);
        let hashed = stream.map(move |chunk| {
            if let Ok(bytes) = &chunk {
                let mut d = tap.lock().expect("digest");
                d.0.update(bytes);
                d.1 += bytes.len() as u64;
                progress.add(bytes.len() as u64);
            }
            chunk
        });
        let store = self.store.clone();
        let recorded_key = key.to_string();
        target
            .client
            .put_stream_recorded(
                &target.bucket,
                key,
                content_type,
                Box::pin(hashed),
                u64::MAX,
                |upload_id| async move {
                    if let Err(e) = store
                        .add_pending_upload(backup_row, &recorded_key, &upload_id)
                        .await
                    {
                        tracing::warn!(backup = backup_row, "recording a multipart upload: {e}");
                    }
                },
            )
            .await
            .map_err(|e| ManagerError::Unavailable(format!("uploading {key}: {e}")))?;
        self.store.clear_pending_uploads(backup_row, key).await?;
        let (hasher, size) = {
            let d = digest.lock().expect("digest");
            (d.0.clone(), d.1)
        };
        let sent = Stored {
            size,
            sha256: hex::encode(hasher.finalize()),
        };
        self.check_stored(target, key, &sent).await?;
        Ok(sent)
    }

    /// Reads `key` back from the destination and compares size and SHA-256 with `expected`.
    pub(super) async fn check_stored(
        &self,
        target: &Target,
        key: &str,
        expected: &Stored,
    ) -> ManagerResult<()> {
        let read = target
            .client
            .sha256_of(&target.bucket, key)
            .await
            .map_err(|e| ManagerError::Unavailable(format!("reading {key} back: {e}")))?;
        match read {
            None => Err(ManagerError::Unavailable(format!(
                "{key} is missing from the destination right after its upload"
            ))),
            Some((size, sha256)) if size == expected.size && sha256 == expected.sha256 => Ok(()),
            Some((size, sha256)) => Err(ManagerError::Unavailable(format!(
                "{key} as stored ({size} bytes, sha256 {sha256}) differs from what was sent \
                 ({} bytes, sha256 {})",
                expected.size, expected.sha256
            ))),
        }
    }
}
