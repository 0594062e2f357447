//! Masking of secret values in previews and API responses.

/// The mask shown instead of a secret.
pub const MASK: &str = "********";

/// Whether an environment variable or parameter name holds a secret. Any name containing
/// PASSWORD, SECRET, KEY or TOKEN is secret; URLs are handled by [`mask_url`].
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["PASSWORD", "SECRET", "KEY", "TOKEN"]
        .iter()
        .any(|needle| upper.contains(needle))
}

/// Replaces the password in `scheme://user:password@host...` with the mask; other strings
/// are returned unchanged.
pub fn mask_url(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_string();
    };
    let rest = &value[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return value.to_string();
    };
    let userinfo = &authority[..at];
    let masked_userinfo = match userinfo.find(':') {
        Some(colon) => format!("{}:{MASK}", &userinfo[..colon]),
        None => MASK.to_string(),
    };
    format!(
        "{}{}{}",
        &value[..scheme_end + 3],
        masked_userinfo,
        &rest[at..]
    )
}

/// Masks a value given its name: secrets entirely, URLs in their password part.
pub fn mask_value(name: &str, value: &str) -> String {
    if is_secret_name(name) {
        MASK.to_string()
    } else {
        mask_url(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_urls_and_secret_names() {
        assert_eq!(
            mask_url("postgresql://u:s3cret@h:5432/db"),
            "postgresql://u:********@h:5432/db"
        );
        assert_eq!(
            mask_url("redis://:pw@h:6379/2"),
            "redis://:********@h:6379/2"
        );
        assert_eq!(mask_url("http://h:9000"), "http://h:9000");
        assert_eq!(mask_value("POSTGRES_PASSWORD", "x"), MASK);
        assert_eq!(mask_value("S3_ACCESS_KEY", "x"), MASK);
        assert_eq!(mask_value("POSTGRES_HOST", "db"), "db");
    }
}
