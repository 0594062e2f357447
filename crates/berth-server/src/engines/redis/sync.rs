//! A snapshot of a Redis server the way a replica gets one: `SYNC` over its published port
//! (after `AUTH` and `REPLCONF rdb-only 1`, so no command stream follows), answered with the
//! RDB file the server writes for it (`$<length>` then the bytes). Berth reads it as a stream;
//! nothing runs in the container and no password reaches a process.

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How much is read from the socket at once.
const CHUNK: usize = 64 * 1024;

/// One RESP command as an array of bulk strings.
fn command(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn reply_line(reader: &mut BufReader<TcpStream>) -> Result<String, String> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .await
        .map_err(|e| format!("reading the server's reply: {e}"))?;
    Ok(line.trim_end().to_string())
}

/// Opens the snapshot stream: its length and its bytes.
pub(super) async fn snapshot(
    host_port: u16,
    password: &str,
) -> Result<
    (
        u64,
        impl Stream<Item = Result<Bytes, String>> + Send + 'static,
    ),
    String,
> {
    let socket = TcpStream::connect(("127.0.0.1", host_port))
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let mut reader = BufReader::new(socket);
    reader
        .get_mut()
        .write_all(&command(&[b"AUTH", password.as_bytes()]))
        .await
        .map_err(|e| e.to_string())?;
    let auth = reply_line(&mut reader).await?;
    if auth != "+OK" {
        return Err("the server refused the admin password".into());
    }
    reader
        .get_mut()
        .write_all(&command(&[b"REPLCONF", b"rdb-only", b"1"]))
        .await
        .map_err(|e| e.to_string())?;
    let replconf = reply_line(&mut reader).await?;
    if replconf != "+OK" {
        return Err(format!("REPLCONF rdb-only (Redis 7+): {replconf}"));
    }
    reader
        .get_mut()
        .write_all(&command(&[b"SYNC"]))
        .await
        .map_err(|e| e.to_string())?;
    // Newlines keep the connection alive while the server writes the snapshot.
    let header = loop {
        let line = reply_line(&mut reader).await?;
        if !line.is_empty() {
            break line;
        }
    };
    let length: u64 = header
        .strip_prefix('$')
        .filter(|rest| !rest.starts_with("EOF:"))
        .and_then(|rest| rest.parse().ok())
        .ok_or_else(|| format!("the server answered SYNC with {header:?}"))?;
    let body =
        futures_util::stream::unfold((reader, length), |(mut reader, remaining)| async move {
            if remaining == 0 {
                return None;
            }
            let want = remaining.min(CHUNK as u64) as usize;
            let mut buffer = vec![0u8; want];
            match reader.read(&mut buffer).await {
                Ok(0) => Some((
                    Err(format!(
                        "the server closed the snapshot {remaining} bytes short"
                    )),
                    (reader, 0),
                )),
                Ok(n) => {
                    buffer.truncate(n);
                    Some((Ok(Bytes::from(buffer)), (reader, remaining - n as u64)))
                }
                Err(e) => Some((Err(format!("reading the snapshot: {e}")), (reader, 0))),
            }
        });
    Ok((length, body))
}
