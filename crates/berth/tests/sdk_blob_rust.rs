//! The Rust SDK's Blob client against a running Berth with Blob enabled (its S3 service behind
//! it), as a project token: streamed uploads and downloads, ranges, head, paging, copy,
//! delete, and errors as problem+json.

mod common;
mod sdk_support;

use berth_sdk::{Client, ListOptions, PutOptions};
use futures_util::{StreamExt, TryStreamExt};
use sdk_support::*;

/// Bytes that are not all alike, so a misplaced chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn blob_through_the_rust_sdk() {
    let berth = berth_with_blob().await;
    let (project, token) = project_with_token(&berth).await;
    let client = Client::new(berth.url(""), token);
    let blob = client.blob();

    // From bytes, with a content type.
    let text = blob
        .put(
            "docs/hello.txt",
            "hello, blob",
            PutOptions {
                content_type: Some("text/plain".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(text.pathname, "docs/hello.txt");
    assert_eq!(text.size, 11);
    assert_eq!(text.content_type, "text/plain");
    assert_eq!(text.url, format!("/api/blob/{project}/docs/hello.txt"));
    assert!(!text.uploaded_at.is_empty());
    let download = blob.get(&text.url).await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(&download.bytes().await.unwrap()[..], b"hello, blob");

    // From an AsyncRead, streamed: larger than a chunk, read back as a stream.
    let big = pattern(3 * 1024 * 1024 + 17);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &big).unwrap();
    let reader = tokio::fs::File::open(&file).await.unwrap();
    let uploaded = blob
        .put_reader("data/big.bin", reader, PutOptions::default())
        .await
        .unwrap();
    assert_eq!(uploaded.size, big.len() as u64);
    let mut received = Vec::new();
    let mut chunks = 0;
    let mut stream = Box::pin(blob.get(&uploaded.url).await.unwrap().bytes_stream());
    while let Some(chunk) = stream.next().await {
        received.extend_from_slice(&chunk.unwrap());
        chunks += 1;
    }
    assert!(chunks > 1, "arrived as a stream");
    assert!(received == big, "the download equals the upload");

    // A range; head; a random suffix; a pathname with a project named.
    let part = blob.get_range(&uploaded.url, 10, Some(19)).await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(&part.bytes().await.unwrap()[..], &big[10..20]);
    let tail = blob
        .get_range(&uploaded.url, big.len() as u64 - 5, None)
        .await
        .unwrap();
    assert_eq!(&tail.bytes().await.unwrap()[..], &big[big.len() - 5..]);
    let head = blob.head(&uploaded.url).await.unwrap();
    assert_eq!(head.size, big.len() as u64);
    assert_eq!(head.pathname, "data/big.bin");
    let suffixed = blob
        .put(
            "docs/hello.txt",
            "again",
            PutOptions {
                add_random_suffix: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(suffixed.pathname, "docs/hello.txt");
    let odd = blob
        .put("a dir/odd #1?.txt", "odd", PutOptions::default())
        .await
        .unwrap();
    assert_eq!(odd.pathname, "a dir/odd #1?.txt");
    let named = client.with_project(project);
    let by_path = named.blob().get("a dir/odd #1?.txt").await.unwrap();
    assert_eq!(&by_path.bytes().await.unwrap()[..], b"odd");
    assert!(
        blob.get("a dir/odd #1?.txt").await.is_err(),
        "no project named"
    );

    // Pages and the stream over all of them.
    for i in 0..5 {
        blob.put(
            &format!("list/{i}.txt"),
            format!("{i}"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    }
    let first = blob
        .list(&ListOptions {
            prefix: Some("list/".into()),
            limit: Some(2),
            cursor: None,
        })
        .await
        .unwrap();
    assert_eq!(first.blobs.len(), 2);
    assert!(first.has_more && first.cursor.is_some(), "{first:?}");
    let all: Vec<String> = blob
        .list_all(ListOptions {
            prefix: Some("list/".into()),
            limit: Some(2),
            cursor: None,
        })
        .map_ok(|b| b.pathname)
        .try_collect()
        .await
        .unwrap();
    let mut all = all;
    all.sort();
    assert_eq!(
        all,
        (0..5).map(|i| format!("list/{i}.txt")).collect::<Vec<_>>()
    );

    // Copy, delete (by url and pathname), then 404 as problem+json.
    let copied = blob.copy(&text.url, "docs/copy.txt").await.unwrap();
    assert_eq!(copied.pathname, "docs/copy.txt");
    assert_eq!(
        &blob.get(&copied.url).await.unwrap().bytes().await.unwrap()[..],
        b"hello, blob"
    );
    let deleted = blob
        .delete(&[copied.url.as_str(), "docs/hello.txt", "never/there"])
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    let err = blob.get(&copied.url).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    let err = blob.head(&text.url).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");

    // Another project's blob is not this token's to read.
    let other = common::create_project(&berth, &common::unique("other"), &["production"]).await;
    let err = blob
        .get(&format!("/api/blob/{other}/docs/hello.txt"))
        .await
        .unwrap_err();
    assert!(matches!(err.status(), Some(403) | Some(404)), "{err}");
}
