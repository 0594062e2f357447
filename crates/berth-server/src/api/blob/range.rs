//! The `Range` header of a blob download, read as S3 reads it: one byte range (`bytes=0-99`,
//! `bytes=100-`, `bytes=-100`) is honoured; anything else (another unit, several ranges, a
//! malformed value) is ignored and the whole blob is sent, as RFC 9110 §14.2 allows and S3
//! does. Only a range that passed this check reaches the S3 server, so a client's odd header
//! can never turn into an upstream error.

/// The range to ask S3 for, normalised (`bytes=first-last`), or `None` to send the whole blob.
pub fn single_byte_range(header: &str) -> Option<String> {
    let (unit, spec) = header.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    match (number(first), number(last)) {
        (Some(first), Some(last)) if first <= last => Some(format!("bytes={first}-{last}")),
        (Some(first), None) if last.is_empty() => Some(format!("bytes={first}-")),
        // A suffix range of zero bytes is unsatisfiable by definition; ignore it.
        (None, Some(suffix)) if first.is_empty() && suffix > 0 => Some(format!("bytes=-{suffix}")),
        _ => None,
    }
}

/// A byte position: ASCII digits only (no sign, no spaces inside), within u64.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::single_byte_range;

    #[test]
    fn one_byte_range_in_each_form_is_honoured() {
        assert_eq!(
            single_byte_range("bytes=0-99").as_deref(),
            Some("bytes=0-99")
        );
        assert_eq!(
            single_byte_range("bytes=100-").as_deref(),
            Some("bytes=100-")
        );
        assert_eq!(
            single_byte_range("bytes=-100").as_deref(),
            Some("bytes=-100")
        );
        assert_eq!(
            single_byte_range(" Bytes = 5 - 5 ").as_deref(),
            Some("bytes=5-5")
        );
    }

    #[test]
    fn anything_else_is_ignored() {
        for header in [
            "null",
            "",
            "bytes=",
            "bytes=-",
            "bytes=-0",
            "bytes=9-3",
            "bytes=0-1,4-5",
            "items=0-9",
            "bytes=+1-2",
            "bytes=a-b",
            "bytes=99999999999999999999999-",
            "bytes=1-2-3",
        ] {
            assert_eq!(single_byte_range(header), None, "{header:?}");
        }
    }
}
