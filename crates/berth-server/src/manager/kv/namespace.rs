//! How KV keys are stored: every key of project `P` is the Redis key `kv:p{P}:{key}` (Temps'
//! layout, so a Temps KV dump reads the same). The prefix ends with `:` after the decimal id,
//! so no project's prefix is a prefix of another's (`kv:p1:` never starts `kv:p12:...`), and
//! it holds no glob metacharacter: a `SCAN MATCH kv:p{P}:{pattern}` matches the prefix
//! literally before the user's pattern is read, whatever that pattern holds (`*`, `?`, `[`,
//! `\`, `:`, another project's prefix). Returned keys are checked and stripped again here
//! all the same, so isolation never rests on Redis' glob matcher alone.
//!
//! Keys and patterns are non-empty UTF-8 of at most [`MAX_KEY_BYTES`] bytes without control
//! characters (NUL included): Redis would take them, but they cannot be typed, printed or
//! logged safely, and a NUL is where C clients and shells cut strings. Any other Unicode is
//! fine, and so are `*`, `?`, `[`, `:`, `..` and `/`: in a key they are plain characters.

/// Longest key or pattern, in bytes (Temps sets none; Redis' own limit is 512 MB).
pub const MAX_KEY_BYTES: usize = 1024;

/// Most keys one `del` may name.
pub const MAX_DEL_KEYS: usize = 1000;

/// The prefix of every key of `project_id`.
pub fn prefix(project_id: i64) -> String {
    format!("kv:p{project_id}:")
}

/// The Redis key holding `key` of `project_id` (validate `key` first).
pub fn stored_key(project_id: i64, key: &str) -> String {
    format!("{}{key}", prefix(project_id))
}

/// The `SCAN MATCH` pattern for `pattern` within `project_id` (validate `pattern` first).
pub fn scan_pattern(project_id: i64, pattern: &str) -> String {
    format!("{}{pattern}", prefix(project_id))
}

/// The user's key for a Redis key, if it belongs to `prefix`.
pub fn user_key<'a>(prefix: &str, stored: &'a str) -> Option<&'a str> {
    stored.strip_prefix(prefix)
}

/// A key a request may name: what the module doc says, or why not.
pub fn validate_key(key: &str) -> Result<(), String> {
    validate("key", key)
}

/// A `keys` pattern (Redis glob syntax within the project's keys).
pub fn validate_pattern(pattern: &str) -> Result<(), String> {
    validate("pattern", pattern).map_err(|why| {
        if pattern.is_empty() {
            format!("{why}; `*` lists every key")
        } else {
            why
        }
    })
}

fn validate(what: &str, text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!("the {what} must not be empty"));
    }
    if text.len() > MAX_KEY_BYTES {
        return Err(format!(
            "the {what} is {} bytes long; the limit is {MAX_KEY_BYTES} bytes",
            text.len()
        ));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the {what} contains the control character U+{:04X}; keys are printable text",
            c as u32
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis' glob matcher (`stringmatchlen` in util.c) for the syntax Redis documents: `*`,
    /// `?`, `[...]` with `^` and ranges, `\` escapes. Enough to check that no pattern a user can
    /// send, behind the prefix, matches another project's key.
    fn glob(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
            Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
            Some((b'[', rest)) => {
                let Some((&c, text_rest)) = text.split_first() else {
                    return false;
                };
                let (negate, mut p) = match rest.split_first() {
                    Some((b'^', after)) => (true, after),
                    _ => (false, rest),
                };
                let mut matched = false;
                loop {
                    match p {
                        [] => break,
                        [b']', after @ ..] => {
                            p = after;
                            break;
                        }
                        [b'\\', x, after @ ..] => {
                            matched |= *x == c;
                            p = after;
                        }
                        [a, b'-', b, after @ ..] if *b != b']' => {
                            let (lo, hi) = if a <= b { (*a, *b) } else { (*b, *a) };
                            matched |= lo <= c && c <= hi;
                            p = after;
                        }
                        [x, after @ ..] => {
                            matched |= *x == c;
                            p = after;
                        }
                    }
                }
                matched != negate && glob(p, text_rest)
            }
            Some((b'\\', rest)) if !rest.is_empty() => {
                text.first() == rest.first() && glob(&rest[1..], &text[1..])
            }
            Some((&literal, rest)) => text.first() == Some(&literal) && glob(rest, &text[1..]),
        }
    }

    #[test]
    fn no_pattern_reaches_another_projects_keys() {
        let others = [
            stored_key(2, "secret"),
            stored_key(12, "a"),
            stored_key(1, "x").replacen("kv:p1:", "kv:p10:", 1),
            "kv:p2:kv:p1:x".to_string(),
            "other-app:key".to_string(),
        ];
        let patterns = [
            "*",
            "?*",
            "[^x]*",
            "\\*",
            "*:*",
            "kv:p2:*",
            "*p2*",
            "../kv:p2:*",
            "[k]v:p2:*",
            "\\",
            "[",
            "*\\",
            "*secret",
            "[a-z]*",
            "2:*",
        ];
        for pattern in patterns {
            validate_pattern(pattern).unwrap();
            let full = scan_pattern(1, pattern);
            for other in &others {
                if other.starts_with(&prefix(1)) {
                    continue;
                }
                assert!(
                    !glob(full.as_bytes(), other.as_bytes()),
                    "{pattern:?} reaches {other:?}"
                );
            }
        }
        // The matcher itself works: a project's own keys are found.
        assert!(glob(
            scan_pattern(1, "*").as_bytes(),
            stored_key(1, "kv:p2:x").as_bytes()
        ));
        assert!(glob(
            scan_pattern(1, "[^x]*").as_bytes(),
            stored_key(1, "a").as_bytes()
        ));
        assert!(!glob(
            scan_pattern(1, "\\*").as_bytes(),
            stored_key(1, "a").as_bytes()
        ));
    }

    #[test]
    fn prefixes_never_nest() {
        for (a, b) in [(1, 12), (1, 10), (2, 21), (12, 123)] {
            assert!(!prefix(b).starts_with(&prefix(a)), "{a} {b}");
        }
        assert_eq!(user_key(&prefix(1), &stored_key(1, "a:b")), Some("a:b"));
        assert_eq!(user_key(&prefix(1), &stored_key(12, "a")), None);
    }

    #[test]
    fn keys_are_checked() {
        for good in [
            "a",
            "..",
            "../x",
            "a:b",
            "*",
            "[",
            "ключ",
            "🔑",
            "a b",
            &"k".repeat(1024),
        ] {
            assert!(validate_key(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "a\0b",
            "\n",
            "tab\there",
            "\u{7f}",
            "\u{85}",
            &"k".repeat(1025),
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
        // The limit is bytes, not characters.
        assert!(validate_key(&"é".repeat(513)).is_err());
        assert!(validate_pattern("").unwrap_err().contains('*'));
    }
}
