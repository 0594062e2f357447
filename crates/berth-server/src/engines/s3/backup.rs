//! S3 backups over the S3 API, as the service's admin: one part per bucket, a POSIX tar
//! (pax) of its objects, which Berth compresses (zstd). Each object is one entry whose pax
//! header carries its key (`path`, any UTF-8, any length), its `size` and its content type
//! (`BERTH.content_type`); the ustar name beside it is only a placeholder. Other metadata
//! (`x-amz-meta-*`, tags, versions) is not carried. Objects are listed a page at a time and
//! each body streamed through as it downloads, so no object is held whole whatever its size;
//! one deleted between listing and reading is left out, and counts are the objects actually
//! written (bucket -> objects).
//!
//! Restore replaces one bucket's contents: the bucket is made if missing, every object in it
//! deleted, then each object of the archive put back with its content type, streamed (a
//! multipart upload for one larger than a part). No other bucket is touched.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio_util::io::{ReaderStream, StreamReader};

use super::{S3, admin_client};
use crate::engines::backup::{BackupEngine, Dump, DumpPart, PartKind, RestoreStream};
use crate::engines::tenancy::{ServiceAccess, url_encode};
use crate::s3client::S3Client;

const BLOCK: usize = 512;
const CONTENT_TYPE_KEY: &str = "BERTH.content_type";
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// Chunks (as the HTTP body gives them, tens of KiB) waiting for the upload.
const CHANNEL: usize = 64;
/// A pax header is a few hundred bytes; more than this is not one of ours.
const PAX_LIMIT: u64 = 1 << 20;
/// Keys listed at once.
const PAGE: usize = 1000;

#[async_trait]
impl BackupEngine for S3 {
    async fn plan(&self, service: &ServiceAccess<'_>) -> Result<Vec<DumpPart>, String> {
        let client = admin_client(service.host_port, service.params);
        let mut buckets = client
            .list_buckets()
            .await
            .map_err(|e| format!("listing buckets: {e}"))?;
        buckets.sort();
        Ok(buckets
            .into_iter()
            .map(|bucket| DumpPart::database(format!("bucket-{}.tar", url_encode(&bucket)), bucket))
            .collect())
    }

    async fn dump(&self, service: &ServiceAccess<'_>, part: &DumpPart) -> Result<Dump, String> {
        let bucket = part_bucket(part)?.to_string();
        let client = admin_client(service.host_port, service.params);
        Ok(Dump::produced_by(
            "reading objects",
            CHANNEL,
            |sender| async move { dump_bucket(&client, &bucket, &sender).await },
        ))
    }

    async fn restore(
        &self,
        service: &ServiceAccess<'_>,
        part: &DumpPart,
        stream: RestoreStream,
    ) -> Result<(), String> {
        let bucket = part_bucket(part)?;
        let client = admin_client(service.host_port, service.params);
        // Into a new service, the bucket is made first (s3s-fs refuses to make one that
        // exists with BucketAlreadyExists, not AWS' BucketAlreadyOwnedByYou).
        let exists = client
            .bucket_exists(bucket)
            .await
            .map_err(|e| format!("looking for bucket {bucket}: {e}"))?;
        if !exists {
            client
                .create_bucket(bucket)
                .await
                .map_err(|e| format!("creating bucket {bucket}: {e}"))?;
        }
        empty_bucket(&client, bucket).await?;
        let mut reader = StreamReader::new(stream.map_err(std::io::Error::other));
        while let Some(entry) = next_entry(&mut reader).await? {
            let mut body = (&mut reader).take(entry.size);
            client
                .put_stream(
                    bucket,
                    &entry.key,
                    &entry.content_type,
                    ReaderStream::new(&mut body),
                    u64::MAX,
                )
                .await
                .map_err(|e| format!("writing {:?}: {e}", entry.key))?;
            if body.limit() != 0 {
                return Err(format!("the archive ends inside {:?}", entry.key));
            }
            skip(&mut reader, padding(entry.size)).await?;
        }
        Ok(())
    }

    async fn counts(
        &self,
        service: &ServiceAccess<'_>,
        database: Option<&str>,
    ) -> Result<BTreeMap<String, u64>, String> {
        let bucket = database.ok_or("an S3 count names its bucket")?;
        let client = admin_client(service.host_port, service.params);
        let mut n = 0u64;
        let mut token: Option<String> = None;
        loop {
            let page = client
                .list(bucket, "", token.as_deref(), PAGE)
                .await
                .map_err(|e| format!("listing {bucket}: {e}"))?;
            n += page.objects.len() as u64;
            match page.next_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        Ok(BTreeMap::from([(bucket.to_string(), n)]))
    }
}

fn part_bucket(part: &DumpPart) -> Result<&str, String> {
    match (part.kind, part.database.as_deref()) {
        (PartKind::Database, Some(bucket)) if !bucket.is_empty() => Ok(bucket),
        _ => Err(format!("{} is not a bucket part", part.file)),
    }
}

async fn send(sender: &mpsc::Sender<Result<Bytes, String>>, bytes: Bytes) -> Result<(), String> {
    sender
        .send(Ok(bytes))
        .await
        .map_err(|_| "the upload stopped reading the archive".to_string())
}

async fn dump_bucket(
    client: &S3Client,
    bucket: &str,
    out: &mpsc::Sender<Result<Bytes, String>>,
) -> Result<BTreeMap<String, u64>, String> {
    let mut written = 0u64;
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list(bucket, "", token.as_deref(), PAGE)
            .await
            .map_err(|e| format!("listing {bucket}: {e}"))?;
        for object in page.objects {
            let Some(response) = client
                .get_object(bucket, &object.key, None)
                .await
                .map_err(|e| format!("reading {:?}: {e}", object.key))?
            else {
                tracing::warn!(%bucket, key = %object.key, "listed but gone when read: left out of the backup");
                continue;
            };
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(DEFAULT_CONTENT_TYPE)
                .to_string();
            let size = response
                .content_length()
                .ok_or_else(|| format!("{:?} was sent without its length", object.key))?;
            send(out, entry_header(&object.key, &content_type, size)?.into()).await?;
            let mut body = response.bytes_stream();
            let mut sent = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| format!("reading {:?}: {e}", object.key))?;
                sent += chunk.len() as u64;
                if sent > size {
                    break;
                }
                send(out, chunk).await?;
            }
            if sent != size {
                return Err(format!(
                    "{:?}: {sent} bytes read, {size} announced",
                    object.key
                ));
            }
            send(out, Bytes::from(vec![0u8; padding(size) as usize])).await?;
            written += 1;
        }
        match page.next_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    // The end of the archive: two empty blocks.
    send(out, Bytes::from(vec![0u8; 2 * BLOCK])).await?;
    Ok(BTreeMap::from([(bucket.to_string(), written)]))
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// One pax record: `<length> <key>=<value>\n`, the length counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut length = rest + 1;
    while length != rest + length.to_string().len() {
        length = rest + length.to_string().len();
    }
    let mut out = format!("{length} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

fn block_of(header: &mut tar::Header, size: u64, name: &str) -> Result<(), String> {
    header.set_path(name).map_err(|e| e.to_string())?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    Ok(())
}

/// The pax header (key, size, content type) and the ustar header of one object: everything
/// that precedes its bytes.
fn entry_header(key: &str, content_type: &str, size: u64) -> Result<Vec<u8>, String> {
    let mut pax = pax_record("path", key.as_bytes());
    pax.extend(pax_record("size", size.to_string().as_bytes()));
    pax.extend(pax_record(CONTENT_TYPE_KEY, content_type.as_bytes()));
    let mut out = Vec::with_capacity(3 * BLOCK + pax.len());
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XHeader);
    block_of(&mut header, pax.len() as u64, "PaxHeader/object")?;
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&pax);
    out.resize(out.len() + padding(pax.len() as u64) as usize, 0);
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    // Sizes past ustar's 8 GiB go in GNU's binary form; the pax size says it for everyone.
    block_of(&mut header, size, "object")?;
    out.extend_from_slice(header.as_bytes());
    Ok(out)
}

/// An object of the archive, its bytes next in the input.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    key: String,
    content_type: String,
    size: u64,
}

async fn read_block<R: AsyncRead + Unpin>(reader: &mut R) -> Result<[u8; BLOCK], String> {
    let mut block = [0u8; BLOCK];
    reader
        .read_exact(&mut block)
        .await
        .map_err(|e| format!("reading the archive (cut off?): {e}"))?;
    Ok(block)
}

async fn skip<R: AsyncRead + Unpin>(reader: &mut R, n: u64) -> Result<(), String> {
    let skipped = tokio::io::copy(&mut reader.take(n), &mut tokio::io::sink())
        .await
        .map_err(|e| format!("reading the archive: {e}"))?;
    if skipped != n {
        return Err("the archive is cut off".into());
    }
    Ok(())
}

fn checksum_ok(block: &[u8; BLOCK]) -> bool {
    let header = tar::Header::from_byte_slice(block);
    let computed: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    header.cksum().ok() == Some(computed)
}

/// The next object's header; `None` at the archive's end (an empty block). Directory and
/// global entries, which this format does not write, are skipped.
async fn next_entry<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<Entry>, String> {
    let mut extensions: HashMap<String, Vec<u8>> = HashMap::new();
    loop {
        let block = read_block(reader).await?;
        if block.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        if !checksum_ok(&block) {
            return Err("a damaged header in the archive (bad checksum)".into());
        }
        let header = tar::Header::from_byte_slice(&block);
        let size = header.entry_size().map_err(|e| e.to_string())?;
        let kind = header.entry_type();
        if kind.is_pax_local_extensions() {
            if size > PAX_LIMIT {
                return Err(format!("a pax header of {size} bytes in the archive"));
            }
            let mut data = vec![0u8; size as usize];
            reader
                .read_exact(&mut data)
                .await
                .map_err(|e| format!("reading the archive: {e}"))?;
            skip(reader, padding(size)).await?;
            for extension in tar::PaxExtensions::new(&data) {
                let extension = extension.map_err(|e| format!("a bad pax record: {e}"))?;
                let key = extension
                    .key()
                    .map_err(|_| "a pax key that is not UTF-8".to_string())?;
                extensions.insert(key.to_string(), extension.value_bytes().to_vec());
            }
            continue;
        }
        if kind.is_file() || kind == tar::EntryType::Continuous {
            let text = |name: &str| {
                extensions
                    .get(name)
                    .map(|v| String::from_utf8(v.clone()))
                    .transpose()
                    .map_err(|_| format!("the archive's {name} is not UTF-8"))
            };
            let key = match text("path")? {
                Some(key) => key,
                None => String::from_utf8(header.path_bytes().into_owned())
                    .map_err(|_| "a name that is not UTF-8 in the archive".to_string())?,
            };
            let size = match text("size")? {
                Some(size) => size
                    .parse()
                    .map_err(|_| format!("a bad pax size {size:?}"))?,
                None => size,
            };
            if key.is_empty() {
                return Err("an object without a key in the archive".into());
            }
            let content_type =
                text(CONTENT_TYPE_KEY)?.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string());
            return Ok(Some(Entry {
                key,
                content_type,
                size,
            }));
        }
        // A directory, a link or a global header: nothing to restore.
        extensions.clear();
        skip(reader, size + padding(size)).await?;
    }
}

/// Deletes every object of the bucket, a page at a time.
async fn empty_bucket(client: &S3Client, bucket: &str) -> Result<(), String> {
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list(bucket, "", token.as_deref(), PAGE)
            .await
            .map_err(|e| format!("listing {bucket}: {e}"))?;
        for object in &page.objects {
            client
                .delete_object(bucket, &object.key)
                .await
                .map_err(|e| format!("emptying {bucket}: deleting {:?}: {e}", object.key))?;
        }
        match page.next_token {
            Some(next) => token = Some(next),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive as `dump_bucket` writes it.
    fn archive(objects: &[(&str, &str, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, content_type, bytes) in objects {
            out.extend(entry_header(key, content_type, bytes.len() as u64).unwrap());
            out.extend_from_slice(bytes);
            out.resize(out.len() + padding(bytes.len() as u64) as usize, 0);
        }
        out.extend([0u8; 2 * BLOCK]);
        out
    }

    fn objects() -> Vec<(&'static str, &'static str, Vec<u8>)> {
        let long = "deep/".repeat(40) + "ünïcødé ☃ name.bin";
        vec![
            ("a.txt", "text/plain", b"hello".to_vec()),
            ("empty", "application/x-empty", Vec::new()),
            (
                Box::leak(long.into_boxed_str()),
                "image/png",
                (0..1500u32).map(|i| (i % 251) as u8).collect(),
            ),
            ("exact", "application/octet-stream", vec![7u8; BLOCK]),
        ]
    }

    #[test]
    fn pax_records_count_their_own_length() {
        for value in ["", "x", &"y".repeat(90), &"z".repeat(995)] {
            let record = pax_record("path", value.as_bytes());
            let (length, _) = std::str::from_utf8(&record)
                .unwrap()
                .split_once(' ')
                .unwrap();
            assert_eq!(length.parse::<usize>().unwrap(), record.len(), "{value:?}");
        }
    }

    #[test]
    fn the_tar_crate_reads_the_archive_with_keys_content_types_and_bytes() {
        let objects = objects();
        let bytes = archive(&objects);
        let mut read = tar::Archive::new(bytes.as_slice());
        let mut got = Vec::new();
        for entry in read.entries().unwrap() {
            let mut entry = entry.unwrap();
            let content_type = entry
                .pax_extensions()
                .unwrap()
                .unwrap()
                .map(|e| e.unwrap())
                .find(|e| e.key() == Ok(CONTENT_TYPE_KEY))
                .map(|e| e.value().unwrap().to_string());
            let key = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            got.push((key, content_type.unwrap(), data));
        }
        let want: Vec<_> = objects
            .iter()
            .map(|(k, t, b)| (k.to_string(), t.to_string(), b.clone()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_archive_is_read_back_and_a_damaged_one_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let objects = objects();
            let bytes = archive(&objects);
            let mut reader = bytes.as_slice();
            for (key, content_type, data) in &objects {
                let entry = next_entry(&mut reader).await.unwrap().unwrap();
                assert_eq!(
                    entry,
                    Entry {
                        key: key.to_string(),
                        content_type: content_type.to_string(),
                        size: data.len() as u64
                    }
                );
                let mut body = vec![0u8; data.len()];
                reader.read_exact(&mut body).await.unwrap();
                assert_eq!(&body, data);
                skip(&mut reader, padding(entry.size)).await.unwrap();
            }
            assert!(next_entry(&mut reader).await.unwrap().is_none());

            // An archive cut inside a header; a flipped byte in a header.
            let mut reader = &bytes[..BLOCK + 100];
            assert!(next_entry(&mut reader).await.is_err());
            let mut flipped = bytes.clone();
            flipped[100] ^= 1; // inside the first pax header's block
            let mut reader = flipped.as_slice();
            assert!(next_entry(&mut reader).await.is_err());
        });
    }
}
