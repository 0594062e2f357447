//! Blob pathnames: what a project may name its objects, and where they live in the backing
//! bucket (`p{project_id}/{pathname}`). The backing S3 server may map keys to files (s3s-fs
//! does), so a pathname that could leave its project's prefix — `..`, `.`, empty segments, a
//! leading `/`, a backslash, control characters — is refused, not cleaned: a client that sent
//! one has a bug worth seeing, and two spellings never name one object.

/// Longest pathname accepted, in bytes (S3 keys stop at 1024 bytes; the project prefix needs
/// room).
pub const MAX_PATHNAME_BYTES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("pathname is empty")]
    Empty,
    #[error("pathname is {0} bytes long; at most {MAX_PATHNAME_BYTES} are allowed")]
    TooLong(usize),
    #[error("pathname must not start with '/'")]
    Absolute,
    #[error("pathname must not contain '{0}' segments")]
    DotSegment(&'static str),
    #[error("pathname must not contain empty segments ('//') or end with '/'")]
    EmptySegment,
    #[error("pathname must not contain control characters (NUL, newline, ...)")]
    Control,
    #[error("pathname must not contain '\\\\'")]
    Backslash,
}

/// Checks a pathname a client gave (already percent-decoded).
pub fn validate(pathname: &str) -> Result<(), PathError> {
    if pathname.is_empty() {
        return Err(PathError::Empty);
    }
    if pathname.len() > MAX_PATHNAME_BYTES {
        return Err(PathError::TooLong(pathname.len()));
    }
    if pathname.chars().any(char::is_control) {
        return Err(PathError::Control);
    }
    if pathname.contains('\\') {
        return Err(PathError::Backslash);
    }
    if pathname.starts_with('/') {
        return Err(PathError::Absolute);
    }
    validate_prefix_segments(pathname)?;
    if pathname.ends_with('/') {
        return Err(PathError::EmptySegment);
    }
    Ok(())
}

/// Checks a listing prefix: empty is fine, a trailing `/` is fine, the rest as a pathname.
pub fn validate_prefix(prefix: &str) -> Result<(), PathError> {
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix.len() > MAX_PATHNAME_BYTES {
        return Err(PathError::TooLong(prefix.len()));
    }
    if prefix.chars().any(char::is_control) {
        return Err(PathError::Control);
    }
    if prefix.contains('\\') {
        return Err(PathError::Backslash);
    }
    if prefix.starts_with('/') {
        return Err(PathError::Absolute);
    }
    validate_prefix_segments(prefix.strip_suffix('/').unwrap_or(prefix))
}

fn validate_prefix_segments(path: &str) -> Result<(), PathError> {
    for segment in path.split('/') {
        match segment {
            "" => return Err(PathError::EmptySegment),
            "." => return Err(PathError::DotSegment(".")),
            ".." => return Err(PathError::DotSegment("..")),
            _ => {}
        }
    }
    Ok(())
}

/// The project's key prefix in the backing bucket.
pub fn project_prefix(project_id: i64) -> String {
    format!("p{project_id}/")
}

/// The object key of a (validated) pathname.
pub fn object_key(project_id: i64, pathname: &str) -> String {
    format!("{}{pathname}", project_prefix(project_id))
}

/// The pathname of a key under the project's prefix; `None` for any other key.
pub fn pathname_of(project_id: i64, key: &str) -> Option<&str> {
    key.strip_prefix(&project_prefix(project_id))
}

/// `images/avatar.png` -> `images/avatar-<suffix>.png`: the suffix goes before the last
/// extension of the last segment (none for dotfiles or names without one).
pub fn with_suffix(pathname: &str, suffix: &str) -> String {
    let (dir, name) = match pathname.rfind('/') {
        Some(i) => pathname.split_at(i + 1),
        None => ("", pathname),
    };
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{dir}{}-{suffix}{}", &name[..dot], &name[dot..]),
        _ => format!("{dir}{name}-{suffix}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_pathnames_pass() {
        for ok in [
            "a",
            "images/avatar.png",
            "deep/er/file.tar.gz",
            "ünïcødé/файл.txt",
            "with space/and+plus",
            "...",
            "a..b/c",
            ".hidden",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn escapes_and_odd_names_are_refused() {
        let cases = [
            ("", PathError::Empty),
            ("/etc/passwd", PathError::Absolute),
            ("..", PathError::DotSegment("..")),
            ("../p2/secret", PathError::DotSegment("..")),
            ("a/../../p2/x", PathError::DotSegment("..")),
            ("a/./b", PathError::DotSegment(".")),
            ("a//b", PathError::EmptySegment),
            ("dir/", PathError::EmptySegment),
            ("a\0b", PathError::Control),
            ("a\nb", PathError::Control),
            ("a\\..\\b", PathError::Backslash),
        ];
        for (path, expected) in cases {
            assert_eq!(validate(path), Err(expected), "{path:?}");
        }
        let long = "x".repeat(2048);
        assert_eq!(validate(&long), Err(PathError::TooLong(2048)));
    }

    #[test]
    fn prefixes_may_end_with_a_slash_but_not_escape() {
        assert_eq!(validate_prefix(""), Ok(()));
        assert_eq!(validate_prefix("images/"), Ok(()));
        assert_eq!(validate_prefix("ima"), Ok(()));
        assert!(validate_prefix("../").is_err());
        assert!(validate_prefix("/").is_err());
        assert!(validate_prefix("a//").is_err());
    }

    #[test]
    fn keys_stay_under_their_project() {
        assert_eq!(object_key(7, "a/b.png"), "p7/a/b.png");
        assert_eq!(pathname_of(7, "p7/a/b.png"), Some("a/b.png"));
        // Project 7's prefix is not a prefix of project 70's keys.
        assert_eq!(pathname_of(7, "p70/a"), None);
    }

    #[test]
    fn suffixes_go_before_the_extension() {
        assert_eq!(
            with_suffix("images/avatar.png", "ab12"),
            "images/avatar-ab12.png"
        );
        assert_eq!(with_suffix("a.tar.gz", "x"), "a.tar-x.gz");
        assert_eq!(with_suffix("README", "x"), "README-x");
        assert_eq!(with_suffix("dir.d/.env", "x"), "dir.d/.env-x");
    }
}
