//! Counting the keys of an RDB snapshot as it streams by: the counts a backup records are
//! those of the snapshot itself, per database (`db3`), with how many of them carry an expiry
//! (`db3.expiring`: those may be gone by the time a restore is compared). Values are skipped,
//! not decoded. A type this scanner does not know (a module's, or a newer Redis's) is an error:
//! a count that silently skipped keys would make a restore look wrong, or worse, right.

use std::collections::BTreeMap;

use tokio::io::{AsyncRead, AsyncReadExt};

const OP_FUNCTION2: u8 = 0xF5;
const OP_MODULE_AUX: u8 = 0xF7;
const OP_IDLE: u8 = 0xF8;
const OP_FREQ: u8 = 0xF9;
const OP_AUX: u8 = 0xFA;
const OP_RESIZEDB: u8 = 0xFB;
const OP_EXPIRETIME_MS: u8 = 0xFC;
const OP_EXPIRETIME: u8 = 0xFD;
const OP_SELECTDB: u8 = 0xFE;
const OP_EOF: u8 = 0xFF;

/// Keys per database (`db0`, ...) and keys with an expiry (`db0.expiring`).
pub(super) async fn count_keys<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<BTreeMap<String, u64>, String> {
    let mut r = Scanner { reader };
    let mut magic = [0u8; 9];
    r.exact(&mut magic).await?;
    if &magic[..5] != b"REDIS" {
        return Err("not an RDB file".into());
    }
    let mut counts = BTreeMap::new();
    let mut db = 0u64;
    let mut expiring = false;
    loop {
        let op = r.byte().await?;
        match op {
            OP_EOF => return Ok(counts),
            OP_SELECTDB => db = r.length().await?,
            OP_RESIZEDB => {
                r.length().await?;
                r.length().await?;
            }
            OP_AUX => {
                r.skip_string().await?;
                r.skip_string().await?;
            }
            OP_EXPIRETIME_MS => {
                r.skip(8).await?;
                expiring = true;
            }
            OP_EXPIRETIME => {
                r.skip(4).await?;
                expiring = true;
            }
            OP_FREQ => r.skip(1).await?,
            OP_IDLE => {
                r.length().await?;
            }
            OP_FUNCTION2 => r.skip_string().await?,
            OP_MODULE_AUX => {
                return Err("the snapshot holds module data, which Berth cannot count".into());
            }
            value_type => {
                r.skip_string().await?; // the key
                r.skip_value(value_type).await?;
                *counts.entry(format!("db{db}")).or_insert(0) += 1;
                if expiring {
                    *counts.entry(format!("db{db}.expiring")).or_insert(0) += 1;
                }
                expiring = false;
            }
        }
    }
}

struct Scanner<'a, R> {
    reader: &'a mut R,
}

impl<R: AsyncRead + Unpin> Scanner<'_, R> {
    async fn exact(&mut self, buffer: &mut [u8]) -> Result<(), String> {
        self.reader
            .read_exact(buffer)
            .await
            .map(|_| ())
            .map_err(|e| format!("reading the snapshot: {e}"))
    }

    async fn byte(&mut self) -> Result<u8, String> {
        let mut b = [0u8; 1];
        self.exact(&mut b).await?;
        Ok(b[0])
    }

    async fn skip(&mut self, mut n: u64) -> Result<(), String> {
        let mut buffer = [0u8; 8192];
        while n > 0 {
            let take = n.min(buffer.len() as u64) as usize;
            self.exact(&mut buffer[..take]).await?;
            n -= take as u64;
        }
        Ok(())
    }

    /// A length; `Err` for the special string encodings (see [`Self::skip_string`]).
    async fn length(&mut self) -> Result<u64, String> {
        match self.length_or_special().await? {
            Length::Plain(n) => Ok(n),
            Length::Special(kind) => Err(format!("unexpected special encoding {kind}")),
        }
    }

    async fn length_or_special(&mut self) -> Result<Length, String> {
        let first = self.byte().await?;
        Ok(match first >> 6 {
            0 => Length::Plain(u64::from(first & 0x3F)),
            1 => Length::Plain((u64::from(first & 0x3F) << 8) | u64::from(self.byte().await?)),
            2 => match first {
                0x80 => {
                    let mut b = [0u8; 4];
                    self.exact(&mut b).await?;
                    Length::Plain(u64::from(u32::from_be_bytes(b)))
                }
                0x81 => {
                    let mut b = [0u8; 8];
                    self.exact(&mut b).await?;
                    Length::Plain(u64::from_be_bytes(b))
                }
                other => return Err(format!("bad length byte {other:#x}")),
            },
            _ => Length::Special(first & 0x3F),
        })
    }

    async fn skip_string(&mut self) -> Result<(), String> {
        match self.length_or_special().await? {
            Length::Plain(n) => self.skip(n).await,
            Length::Special(0) => self.skip(1).await,
            Length::Special(1) => self.skip(2).await,
            Length::Special(2) => self.skip(4).await,
            Length::Special(3) => {
                // LZF: compressed length, then uncompressed length, then the bytes.
                let compressed = self.length().await?;
                self.length().await?;
                self.skip(compressed).await
            }
            Length::Special(other) => Err(format!("unknown string encoding {other}")),
        }
    }

    async fn skip_strings(&mut self, per_item: u64) -> Result<(), String> {
        let n = self.length().await?;
        for _ in 0..n * per_item {
            self.skip_string().await?;
        }
        Ok(())
    }

    async fn skip_value(&mut self, value_type: u8) -> Result<(), String> {
        match value_type {
            0 => self.skip_string().await,       // string
            1 | 2 => self.skip_strings(1).await, // list, set
            4 => self.skip_strings(2).await,     // hash
            3 => {
                // zset: member, then a score as a length-prefixed decimal (253-255: nan/inf).
                let n = self.length().await?;
                for _ in 0..n {
                    self.skip_string().await?;
                    let len = self.byte().await?;
                    if len < 253 {
                        self.skip(u64::from(len)).await?;
                    }
                }
                Ok(())
            }
            5 => {
                // zset2: member, then an 8-byte binary double.
                let n = self.length().await?;
                for _ in 0..n {
                    self.skip_string().await?;
                    self.skip(8).await?;
                }
                Ok(())
            }
            // One blob each: zipmap, ziplist, intset, zset/hash ziplist, hash/zset/set listpack.
            9..=13 | 16 | 17 | 20 => self.skip_string().await,
            14 => self.skip_strings(1).await, // quicklist of ziplists
            18 => {
                // quicklist2: per node a container kind, then its blob.
                let n = self.length().await?;
                for _ in 0..n {
                    self.length().await?;
                    self.skip_string().await?;
                }
                Ok(())
            }
            15 | 19 | 21 => self.skip_stream(value_type).await,
            other => Err(format!(
                "the snapshot holds a value of type {other}, which Berth cannot count (a module's, \
                 or a newer Redis's)"
            )),
        }
    }

    async fn skip_stream(&mut self, version: u8) -> Result<(), String> {
        self.skip_strings(2).await?; // listpacks: master ID, then the listpack
        self.length().await?; // number of entries
        self.length().await?; // last id ms
        self.length().await?; // last id seq
        if version >= 19 {
            for _ in 0..5 {
                // first id (ms, seq), max deleted id (ms, seq), entries added
                self.length().await?;
            }
        }
        let groups = self.length().await?;
        for _ in 0..groups {
            self.skip_string().await?; // name
            self.length().await?; // last id ms
            self.length().await?; // last id seq
            if version >= 19 {
                self.length().await?; // entries read
            }
            let pending = self.length().await?;
            for _ in 0..pending {
                self.skip(16 + 8).await?; // raw id, delivery time
                self.length().await?; // delivery count
            }
            let consumers = self.length().await?;
            for _ in 0..consumers {
                self.skip_string().await?; // name
                self.skip(8).await?; // seen time
                if version >= 21 {
                    self.skip(8).await?; // active time
                }
                let owned = self.length().await?;
                self.skip(owned * 16).await?;
            }
        }
        Ok(())
    }
}

enum Length {
    Plain(u64),
    Special(u8),
}
