//! One object of a backup on its way to S3: the dump's stream, compressed with zstd unless the
//! tool compressed it already, hashed and counted as it passes, uploaded in parts (one part
//! in memory at a time), then checked on the destination. A multipart upload's id is recorded
//! on the backup before its first part, so a crash's cleanup can abort it.
//!
//! The check: S3 servers answer each PUT and part with the MD5 of what they received as its
//! ETag, and give the object the MD5 of the body (one PUT) or of its parts' MD5s plus `-N`
//! (multipart). Berth computes those MD5s while sending; when every ETag the server answered
//! was the MD5 of what was sent, a HEAD whose size and ETag equal the sent ones proves the
//! stored bytes without reading them (Berth's own S3, AWS without KMS, MinIO). Otherwise
//! (SSE-KMS, SSE-C, servers with other ETags) the object is read back whole and its SHA-256
//! compared, as before. Either way a difference fails the backup.

use std::sync::{Arc, Mutex as StdMutex};

use async_compression::tokio::bufread::ZstdEncoder;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio_util::io::{ReaderStream, StreamReader};

use super::super::{ManagerError, ManagerResult, ServiceManager};
use super::destination::Target;
use crate::s3client::{Uploaded, unquote_etag};

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
        let uploaded = target
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
        self.check_stored(target, key, &sent, &uploaded).await?;
        Ok(sent)
    }

    /// Checks that `key` on the destination is what was sent: by its size and ETag when the
    /// server's ETags are MD5s of what it received, else by reading it back.
    async fn check_stored(
        &self,
        target: &Target,
        key: &str,
        expected: &Stored,
        uploaded: &Uploaded,
    ) -> ManagerResult<()> {
        if uploaded.server_etags_are_md5 {
            let head = target
                .client
                .head_object(&target.bucket, key)
                .await
                .map_err(|e| ManagerError::Unavailable(format!("looking {key} up: {e}")))?
                .ok_or_else(|| {
                    ManagerError::Unavailable(format!(
                        "{key} is missing from the destination right after its upload"
                    ))
                })?;
            match by_etag(uploaded, head.size, head.etag.as_deref()) {
                ByEtag::Matches => return Ok(()),
                ByEtag::Differs(why) => {
                    return Err(ManagerError::Unavailable(format!(
                        "{key} as stored differs from what was sent: {why}"
                    )));
                }
                ByEtag::Unprovable => {}
            }
        }
        self.read_back(target, key, expected).await
    }

    /// Reads `key` back from the destination and compares size and SHA-256 with `expected`.
    async fn read_back(&self, target: &Target, key: &str, expected: &Stored) -> ManagerResult<()> {
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

/// What a destination's HEAD says about an object just uploaded.
#[derive(Debug, PartialEq, Eq)]
enum ByEtag {
    /// Size and ETag are those of the bytes sent.
    Matches,
    /// The destination holds something else (why, in words).
    Differs(String),
    /// The ETag proves nothing (not an MD5 form): read the object back.
    Unprovable,
}

/// Compares a HEAD's size and ETag with what an upload sent. Only meaningful for a server that
/// answered every part (or the PUT) with the MD5 of what it received
/// ([`Uploaded::server_etags_are_md5`]); for any other, or an ETag of another form, the
/// answer is [`ByEtag::Unprovable`].
fn by_etag(uploaded: &Uploaded, size: u64, etag: Option<&str>) -> ByEtag {
    if !uploaded.server_etags_are_md5 {
        return ByEtag::Unprovable;
    }
    let Some(etag) = etag.and_then(unquote_etag).filter(|e| is_md5_etag(e)) else {
        return ByEtag::Unprovable;
    };
    if size != uploaded.size {
        return ByEtag::Differs(format!("{size} bytes stored, {} bytes sent", uploaded.size));
    }
    if etag != uploaded.etag {
        return ByEtag::Differs(format!(
            "its ETag is {etag}, the MD5 of what was sent gives {}",
            uploaded.etag
        ));
    }
    ByEtag::Matches
}

/// `<32 hex>` (one PUT) or `<32 hex>-<parts>` (multipart): the forms S3 derives from MD5s.
fn is_md5_etag(etag: &str) -> bool {
    let (digest, parts) = match etag.split_once('-') {
        Some((digest, parts)) => (digest, Some(parts)),
        None => (etag, None),
    };
    digest.len() == 32
        && digest.bytes().all(|b| b.is_ascii_hexdigit())
        && parts.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::{ByEtag, Uploaded, by_etag, is_md5_etag};

    fn uploaded(etag: &str, server_etags_are_md5: bool) -> Uploaded {
        Uploaded {
            size: 100,
            etag: etag.into(),
            server_etags_are_md5,
        }
    }

    const ONE: &str = "5d41402abc4b2a76b9719d911017c592";
    const MULTI: &str = "7d793037a0760186574b0282f2f435e7-3";

    #[test]
    fn the_same_size_and_etag_prove_the_object() {
        let sent = uploaded(ONE, true);
        assert_eq!(
            by_etag(&sent, 100, Some(&format!("\"{ONE}\""))),
            ByEtag::Matches
        );
        let sent = uploaded(MULTI, true);
        assert_eq!(
            by_etag(&sent, 100, Some(&format!("\"{MULTI}\""))),
            ByEtag::Matches
        );
        // Servers differ in case.
        let upper = format!("\"{}\"", MULTI.to_ascii_uppercase());
        assert_eq!(by_etag(&sent, 100, Some(&upper)), ByEtag::Matches);
    }

    #[test]
    fn another_size_or_etag_is_a_difference() {
        let sent = uploaded(MULTI, true);
        let ByEtag::Differs(why) = by_etag(&sent, 99, Some(MULTI)) else {
            panic!("a shorter object passed");
        };
        assert!(why.contains("99 bytes stored, 100 bytes sent"), "{why}");
        let other = "00000000000000000000000000000000-3";
        let ByEtag::Differs(why) = by_etag(&sent, 100, Some(other)) else {
            panic!("another ETag passed");
        };
        assert!(why.contains(other) && why.contains(MULTI), "{why}");
        // One part fewer is another object too.
        let fewer = MULTI.replace("-3", "-2");
        assert!(matches!(
            by_etag(&sent, 100, Some(&fewer)),
            ByEtag::Differs(_)
        ));
    }

    #[test]
    fn etags_that_are_no_md5_leave_the_proof_to_a_read_back() {
        // The server answered a part with something other than its MD5 (SSE-KMS, SSE-C, …):
        // even a matching-looking ETag proves nothing.
        let sent = uploaded(MULTI, false);
        assert_eq!(by_etag(&sent, 100, Some(MULTI)), ByEtag::Unprovable);
        assert_eq!(by_etag(&sent, 1, Some("x")), ByEtag::Unprovable);
        let sent = uploaded(MULTI, true);
        for etag in [
            None,
            Some("W/\"abc\""),
            Some("\"opaque-version-7\""),
            Some(""),
        ] {
            assert_eq!(by_etag(&sent, 100, etag), ByEtag::Unprovable, "{etag:?}");
        }
    }

    #[test]
    fn md5_forms_are_recognised() {
        assert!(is_md5_etag(ONE));
        assert!(is_md5_etag(MULTI));
        assert!(!is_md5_etag(&ONE[1..]));
        assert!(!is_md5_etag(&format!("{ONE}-")));
        assert!(!is_md5_etag(&format!("{ONE}-x")));
        assert!(!is_md5_etag(&ONE.replace('5', "g")));
    }
}
