//! MongoDB backups through the official driver: no dump tool runs (the stand-in image has
//! none, and a real mongod's `mongodump` would need the password on its command line). One part
//! per database, without the server's own `admin`, `local` and `config`: the users there are
//! Berth's — the service's root, and the projects' users, which linking makes again (a
//! database restored into a new service is reached by linking the project to that service).
//!
//! A part's format, `berth-mongodb-dump` version 1, is a sequence of records, each one tag
//! byte followed by one BSON document (delimited by the document's own int32 length):
//!
//! - `H` once, first: `{format: "berth-mongodb-dump", version: 1, database}`;
//! - `C` per collection, in name order: `{name, type, options, indexes}` — `options` as
//!   `listCollections` gives them, `indexes` as `listIndexes` gives them (views have none);
//! - `D` per document of the collection announced last, as the server stored it (raw BSON,
//!   never decoded), in `_id` order;
//! - `E` once, last: `{collections, documents}`, so a cut-off part is told from a whole one.
//!
//! The stream holds one cursor batch and about one chunk at a time; counts are the documents
//! actually streamed per collection (`{db}.{collection}`). The stand-in has no snapshot reads,
//! so a collection written to while it is dumped is dumped as the cursor saw it, and counted so.
//!
//! Restore replaces one database: its collections (and views) are dropped one by one rather
//! than with `dropDatabase`, so nothing but that database's data can go (the projects' users,
//! whose authentication database it is, stay), then made again with their options, their
//! documents inserted in bounded batches, and their indexes built after the documents, as
//! `mongorestore` does. Another database is never touched.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use mongodb::Client;
use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio_util::io::StreamReader;

use super::admin::{self, Admin};
use super::{MongoDb, param};
use crate::engines::backup::{BackupEngine, Dump, DumpPart, PartKind, RestoreStream};
use crate::engines::tenancy::{ServiceAccess, url_encode};

const FORMAT: &str = "berth-mongodb-dump";
const VERSION: i32 = 1;
const TAG_HEADER: u8 = b'H';
const TAG_COLLECTION: u8 = b'C';
const TAG_DOCUMENT: u8 = b'D';
const TAG_END: u8 = b'E';
/// The server's databases, never backed up nor restored.
const OWN_DATABASES: [&str; 3] = ["admin", "local", "config"];
/// A BSON document is at most 16 MiB; a record larger than this is not one of ours.
const MAX_RECORD: usize = 32 << 20;
/// Records are gathered into chunks of about this size before they are handed on.
const CHUNK: usize = 1 << 20;
/// Chunks waiting for the upload; with [`CHUNK`] and one cursor batch, the dump's memory.
const CHANNEL: usize = 4;
/// A restore inserts at most this many documents, or this many bytes, at once.
const BATCH_DOCUMENTS: usize = 1000;
const BATCH_BYTES: usize = 8 << 20;

fn root_client(service: &ServiceAccess<'_>) -> Result<Client, String> {
    admin::client(
        service.host_port,
        param(service.params, "username"),
        param(service.params, "password"),
        "admin",
    )
    .map_err(|e| e.to_string())
}

fn driver(what: &str) -> impl Fn(mongodb::error::Error) -> String + '_ {
    move |e| format!("{what}: {}", admin::AdminError::from(e))
}

#[async_trait]
impl BackupEngine for MongoDb {
    async fn plan(&self, service: &ServiceAccess<'_>) -> Result<Vec<DumpPart>, String> {
        let admin = Admin::connect(
            service.host_port,
            param(service.params, "username"),
            param(service.params, "password"),
        )
        .await
        .map_err(|e| e.to_string())?;
        let names = admin.names_in_use().await.map_err(|e| e.to_string());
        admin.close().await;
        let mut names: Vec<String> = names?
            .into_iter()
            .filter(|n| !OWN_DATABASES.contains(&n.as_str()))
            .collect();
        names.sort();
        Ok(names
            .into_iter()
            .map(|database| {
                DumpPart::database(format!("db-{}.bson", url_encode(&database)), database)
            })
            .collect())
    }

    async fn dump(&self, service: &ServiceAccess<'_>, part: &DumpPart) -> Result<Dump, String> {
        let database = part_database(part)?.to_string();
        let client = root_client(service)?;
        Ok(Dump::produced_by(
            "dumping documents",
            CHANNEL,
            |sender| async move {
                let mut out = Records {
                    sender,
                    buffer: BytesMut::new(),
                };
                let result = dump_database(&client, &database, &mut out).await;
                client.shutdown().await;
                result
            },
        ))
    }

    async fn restore(
        &self,
        service: &ServiceAccess<'_>,
        part: &DumpPart,
        stream: RestoreStream,
    ) -> Result<(), String> {
        let database = part_database(part)?;
        let client = root_client(service)?;
        let reader = StreamReader::new(stream.map_err(std::io::Error::other));
        let result = restore_database(&client, database, reader).await;
        client.shutdown().await;
        result
    }

    async fn counts(
        &self,
        service: &ServiceAccess<'_>,
        database: Option<&str>,
    ) -> Result<BTreeMap<String, u64>, String> {
        let database = database.ok_or("a MongoDB count names its database")?;
        let client = root_client(service)?;
        let result = count_documents(&client, database).await;
        client.shutdown().await;
        result
    }
}

fn part_database(part: &DumpPart) -> Result<&str, String> {
    match (part.kind, part.database.as_deref()) {
        (PartKind::Database, Some(db)) if !OWN_DATABASES.contains(&db) => Ok(db),
        _ => Err(format!("{} is not a MongoDB database part", part.file)),
    }
}

/// Records on their way to the upload, gathered into chunks.
struct Records {
    sender: mpsc::Sender<Result<Bytes, String>>,
    buffer: BytesMut,
}

impl Records {
    async fn push(&mut self, tag: u8, document: &[u8]) -> Result<(), String> {
        self.buffer.extend_from_slice(&[tag]);
        self.buffer.extend_from_slice(document);
        if self.buffer.len() >= CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    async fn push_document(&mut self, tag: u8, document: &Document) -> Result<(), String> {
        let bytes = document.to_vec().map_err(|e| e.to_string())?;
        self.push(tag, &bytes).await
    }

    async fn flush(&mut self) -> Result<(), String> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = self.buffer.split().freeze();
        self.sender
            .send(Ok(chunk))
            .await
            .map_err(|_| "the upload stopped reading the dump".to_string())
    }
}

/// A collection as `listCollections` describes it.
struct CollectionInfo {
    name: String,
    kind: String,
    options: Document,
}

impl CollectionInfo {
    fn holds_documents(&self) -> bool {
        self.kind != "view"
    }
}

/// The database's collections and views, by name, without the server's `system.*` ones.
async fn collections(client: &Client, database: &str) -> Result<Vec<CollectionInfo>, String> {
    let listed: Vec<Document> = client
        .database(database)
        .run_cursor_command(doc! { "listCollections": 1 })
        .await
        .map_err(driver("listCollections"))?
        .try_collect()
        .await
        .map_err(driver("listCollections"))?;
    let mut out: Vec<CollectionInfo> = listed
        .into_iter()
        .filter_map(|c| {
            let name = c.get_str("name").ok()?.to_string();
            (!name.starts_with("system.")).then(|| CollectionInfo {
                kind: c.get_str("type").unwrap_or("collection").to_string(),
                options: c.get_document("options").cloned().unwrap_or_default(),
                name,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn dump_database(
    client: &Client,
    database: &str,
    out: &mut Records,
) -> Result<BTreeMap<String, u64>, String> {
    let db = client.database(database);
    out.push_document(
        TAG_HEADER,
        &doc! { "format": FORMAT, "version": VERSION, "database": database },
    )
    .await?;
    let mut counts = BTreeMap::new();
    let mut total: i64 = 0;
    let listed = collections(client, database).await?;
    for collection in &listed {
        let indexes: Vec<Bson> = if collection.holds_documents() {
            db.run_cursor_command(doc! { "listIndexes": &collection.name })
                .await
                .map_err(driver("listIndexes"))?
                .map_ok(Bson::Document)
                .try_collect()
                .await
                .map_err(driver("listIndexes"))?
        } else {
            Vec::new()
        };
        out.push_document(
            TAG_COLLECTION,
            &doc! {
                "name": &collection.name,
                "type": &collection.kind,
                "options": collection.options.clone(),
                "indexes": indexes,
            },
        )
        .await?;
        if !collection.holds_documents() {
            continue;
        }
        let mut cursor = db
            .collection::<RawDocumentBuf>(&collection.name)
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .map_err(driver(&format!("reading {}", collection.name)))?;
        let mut n: u64 = 0;
        while cursor
            .advance()
            .await
            .map_err(driver(&format!("reading {}", collection.name)))?
        {
            out.push(TAG_DOCUMENT, cursor.current().as_bytes()).await?;
            n += 1;
        }
        total += i64::try_from(n).unwrap_or(i64::MAX);
        counts.insert(format!("{database}.{}", collection.name), n);
    }
    out.push_document(
        TAG_END,
        &doc! {
            "collections": i64::try_from(listed.len()).unwrap_or(i64::MAX),
            "documents": total,
        },
    )
    .await?;
    out.flush().await?;
    Ok(counts)
}

/// Reads the next record: its tag and its document's bytes; `None` at the end of the input.
async fn next_record<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<(u8, Vec<u8>)>, String> {
    let mut tag = [0u8; 1];
    match reader.read(&mut tag).await {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(format!("reading the dump: {e}")),
    }
    let mut length = [0u8; 4];
    reader
        .read_exact(&mut length)
        .await
        .map_err(|e| format!("reading the dump: {e}"))?;
    let size = usize::try_from(i32::from_le_bytes(length)).unwrap_or(0);
    if !(5..=MAX_RECORD).contains(&size) {
        return Err(format!(
            "the dump holds a record of {size} bytes: not a dump"
        ));
    }
    let mut bytes = vec![0u8; size];
    bytes[..4].copy_from_slice(&length);
    reader
        .read_exact(&mut bytes[4..])
        .await
        .map_err(|e| format!("reading the dump: {e}"))?;
    Ok(Some((tag[0], bytes)))
}

fn document(bytes: &[u8]) -> Result<Document, String> {
    Document::from_reader(bytes).map_err(|e| format!("an unreadable record in the dump: {e}"))
}

/// A collection being restored: its documents waiting for the next insert, and its indexes,
/// built once its documents are in.
struct Loading {
    name: String,
    indexes: Vec<Document>,
    bypass_validation: bool,
    batch: Vec<RawDocumentBuf>,
    batch_bytes: usize,
    documents: i64,
}

impl Loading {
    async fn insert_batch(&mut self, db: &mongodb::Database) -> Result<(), String> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let collection = db.collection::<RawDocumentBuf>(&self.name);
        let mut insert = collection.insert_many(&batch);
        if self.bypass_validation {
            // The documents passed (or predate) the validator when they were written.
            insert = insert.bypass_document_validation(true);
        }
        insert
            .await
            .map_err(driver(&format!("inserting into {}", self.name)))?;
        Ok(())
    }

    async fn finish(mut self, db: &mongodb::Database) -> Result<i64, String> {
        self.insert_batch(db).await?;
        let indexes: Vec<Document> = self
            .indexes
            .into_iter()
            .filter(|index| index.get_str("name").ok() != Some("_id_"))
            .map(|mut index| {
                // Recorded by the server, not part of a definition.
                index.remove("v");
                index.remove("ns");
                index
            })
            .collect();
        if !indexes.is_empty() {
            db.run_command(doc! { "createIndexes": &self.name, "indexes": indexes })
                .await
                .map_err(driver(&format!("building the indexes of {}", self.name)))?;
        }
        Ok(self.documents)
    }
}

async fn restore_database<R: AsyncRead + Unpin>(
    client: &Client,
    database: &str,
    mut reader: R,
) -> Result<(), String> {
    let header = match next_record(&mut reader).await? {
        Some((TAG_HEADER, bytes)) => document(&bytes)?,
        _ => return Err(format!("not a {FORMAT} file")),
    };
    if header.get_str("format").ok() != Some(FORMAT) {
        return Err(format!("not a {FORMAT} file"));
    }
    match header.get_i32("version") {
        Ok(VERSION) => {}
        other => return Err(format!("{FORMAT} version {other:?} is not known here")),
    }
    if header.get_str("database").ok() != Some(database) {
        return Err(format!(
            "the dump is of database {:?}, not {database:?}",
            header.get_str("database").unwrap_or_default()
        ));
    }
    let db = client.database(database);
    for existing in collections(client, database).await? {
        db.collection::<Document>(&existing.name)
            .drop()
            .await
            .map_err(driver(&format!("dropping {}", existing.name)))?;
    }
    let mut loading: Option<Loading> = None;
    let (mut collections_seen, mut documents_seen) = (0i64, 0i64);
    loop {
        let Some((tag, bytes)) = next_record(&mut reader).await? else {
            return Err("the dump ends before its end record: it was cut off".into());
        };
        match tag {
            TAG_DOCUMENT => {
                let current = loading.as_mut().ok_or("a document before any collection")?;
                current.batch_bytes += bytes.len();
                current.documents += 1;
                current
                    .batch
                    .push(RawDocumentBuf::from_bytes(bytes).map_err(|e| e.to_string())?);
                if current.batch.len() >= BATCH_DOCUMENTS || current.batch_bytes >= BATCH_BYTES {
                    current.insert_batch(&db).await?;
                }
            }
            TAG_COLLECTION => {
                if let Some(done) = loading.take() {
                    documents_seen += done.finish(&db).await?;
                }
                collections_seen += 1;
                let spec = document(&bytes)?;
                let name = spec
                    .get_str("name")
                    .map_err(|_| "a collection without a name")?
                    .to_string();
                let options = spec.get_document("options").cloned().unwrap_or_default();
                let bypass_validation = options.contains_key("validator");
                let mut create = doc! { "create": &name };
                create.extend(options);
                db.run_command(create)
                    .await
                    .map_err(driver(&format!("creating {name}")))?;
                let indexes = spec
                    .get_array("indexes")
                    .map(|a| a.iter().filter_map(Bson::as_document).cloned().collect())
                    .unwrap_or_default();
                loading = Some(Loading {
                    name,
                    indexes,
                    bypass_validation,
                    batch: Vec::new(),
                    batch_bytes: 0,
                    documents: 0,
                });
            }
            TAG_END => {
                if let Some(done) = loading.take() {
                    documents_seen += done.finish(&db).await?;
                }
                let end = document(&bytes)?;
                let want = (
                    end.get_i64("collections").unwrap_or(-1),
                    end.get_i64("documents").unwrap_or(-1),
                );
                if want != (collections_seen, documents_seen) {
                    return Err(format!(
                        "the dump announces {} collection(s) and {} document(s) but holds {collections_seen} and {documents_seen}",
                        want.0, want.1
                    ));
                }
                if next_record(&mut reader).await?.is_some() {
                    return Err("the dump goes on after its end record".into());
                }
                return Ok(());
            }
            other => return Err(format!("unknown record type {other:#04x} in the dump")),
        }
    }
}

async fn count_documents(client: &Client, database: &str) -> Result<BTreeMap<String, u64>, String> {
    let db = client.database(database);
    let mut counts = BTreeMap::new();
    for collection in collections(client, database).await? {
        if !collection.holds_documents() {
            continue;
        }
        let n = db
            .collection::<Document>(&collection.name)
            .count_documents(doc! {})
            .await
            .map_err(driver(&format!("counting {}", collection.name)))?;
        counts.insert(format!("{database}.{}", collection.name), n);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tag: u8, document: &Document) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(document.to_vec().unwrap());
        out
    }

    #[test]
    fn records_are_read_back_as_written_and_garbage_is_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let first = doc! { "format": FORMAT, "version": VERSION, "database": "shop" };
            let second = doc! { "_id": 1, "blob": vec![Bson::Int32(7); 3] };
            let mut bytes = record(TAG_HEADER, &first);
            bytes.extend(record(TAG_DOCUMENT, &second));
            let mut reader = bytes.as_slice();
            let (tag, got) = next_record(&mut reader).await.unwrap().unwrap();
            assert_eq!((tag, document(&got).unwrap()), (TAG_HEADER, first));
            let (tag, got) = next_record(&mut reader).await.unwrap().unwrap();
            assert_eq!((tag, document(&got).unwrap()), (TAG_DOCUMENT, second));
            assert!(next_record(&mut reader).await.unwrap().is_none());

            // A length that is no BSON document's, and a record cut short.
            let mut bad: &[u8] = &[TAG_DOCUMENT, 0xff, 0xff, 0xff, 0x7f];
            assert!(next_record(&mut bad).await.is_err());
            let whole = record(TAG_DOCUMENT, &doc! { "a": "b" });
            let mut cut = &whole[..whole.len() - 1];
            assert!(next_record(&mut cut).await.is_err());
        });
    }

    #[test]
    fn only_project_databases_are_parts() {
        let part = |db: &str| DumpPart {
            file: "x".into(),
            kind: PartKind::Database,
            database: Some(db.into()),
            compressed_by_tool: None,
        };
        assert_eq!(
            part_database(&part("shop_production")).unwrap(),
            "shop_production"
        );
        for own in OWN_DATABASES {
            assert!(part_database(&part(own)).is_err(), "{own}");
        }
    }
}
