//! Names that reach Docker (container and volume names), SQL and shells. They are validated
//! here, once, so every later use can rely on them being plain `[a-z0-9-]` words.

use thiserror::Error;

/// Longest service name we accept: `berth-{type}-{name}-data` must stay a sane Docker name.
pub const MAX_NAME_LEN: usize = 63;

/// Longest service name: `berth-{type}-{name}` is the container's hostname and its name on the
/// Berth network, so it must fit one DNS label (63 characters) for every type; `berth-postgres-`
/// is the longest prefix (15).
pub const MAX_SERVICE_NAME_LEN: usize = 48;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("name must not be empty")]
    Empty,
    #[error("name is {0} characters long; the limit is {MAX_NAME_LEN}")]
    TooLong(usize),
    #[error(
        "service name is {0} characters long; the limit is {MAX_SERVICE_NAME_LEN} (berth-<type>-<name> must fit a 63-character DNS label)"
    )]
    ServiceNameTooLong(usize),
    #[error(
        "name {0:?} is invalid: use lowercase letters, digits and '-', starting with a letter and not ending with '-'"
    )]
    Invalid(String),
}

/// Validates a service or project slug: `^[a-z][a-z0-9-]*[a-z0-9]$` (or one letter), at most 63 chars.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.chars().count()));
    }
    let bytes = name.as_bytes();
    let ok_start = bytes[0].is_ascii_lowercase();
    let ok_end = bytes[bytes.len() - 1] != b'-';
    let ok_chars = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if ok_start && ok_end && ok_chars {
        Ok(())
    } else {
        Err(NameError::Invalid(name.to_string()))
    }
}

/// Validates a service name: a valid name (see [`validate_name`]) of at most
/// [`MAX_SERVICE_NAME_LEN`] characters.
pub fn validate_service_name(name: &str) -> Result<(), NameError> {
    validate_name(name)?;
    let len = name.chars().count();
    if len > MAX_SERVICE_NAME_LEN {
        return Err(NameError::ServiceNameTooLong(len));
    }
    Ok(())
}

/// Turns a free-form project name into a slug candidate (`My App!` -> `my-app`).
pub fn slugify(input: &str) -> String {
    let mut out = String::new();
    for c in input.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out.truncate(MAX_NAME_LEN);
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Deterministic Docker names for a service, so a crashed create can be adopted, never duplicated.
pub fn container_name(service_type: &str, name: &str) -> String {
    format!("berth-{service_type}-{name}")
}

pub fn volume_name(service_type: &str, name: &str) -> String {
    format!("berth-{service_type}-{name}-data")
}

/// Longest SQL identifier PostgreSQL keeps (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// The alphabet and shape of an engine's tenant names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameStyle {
    /// `[a-z0-9_]{1,63}`: SQL identifiers, Redis ACL users, MongoDB databases.
    Identifier,
    /// `[a-z0-9-]{3,63}`, starting and ending with a letter or digit, no `--` runs beyond
    /// what the slugs had: a DNS label, as S3 bucket names must be.
    DnsLabel,
}

impl NameStyle {
    fn separator(self) -> char {
        match self {
            NameStyle::Identifier => '_',
            NameStyle::DnsLabel => '-',
        }
    }

    const fn max_len(self) -> usize {
        MAX_IDENTIFIER_BYTES
    }

    /// Lowercases and replaces every other byte by the separator; a DNS label also loses
    /// separators at its ends and is padded to its minimum length.
    fn normalise(self, raw: &str) -> String {
        let sep = self.separator();
        let mut out: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    sep
                }
            })
            .collect();
        if self == NameStyle::DnsLabel {
            out = out.trim_matches(sep).to_string();
            while out.len() < 3 {
                out.push('0');
            }
        }
        out
    }
}

/// The name of a project environment's share of a service: `{project}_{environment}` in the
/// engine's style (`_` for identifiers, `-` for DNS labels), lowercased, every other byte
/// turned into the separator. Names longer than 63 bytes are cut to 54 bytes plus the
/// separator and 8 hex digits of a SHA-256 of the full name, so two long names that share a
/// prefix stay distinct.
pub fn tenant_name(style: NameStyle, project_slug: &str, environment_slug: &str) -> String {
    let full = style.normalise(&format!("{project_slug}_{environment_slug}"));
    if full.len() <= style.max_len() {
        full
    } else {
        with_hash_suffix(style, &full, &full)
    }
}

/// `base` cut to leave room for the separator + 8 hex digits of SHA-256(`seed`). Used for long
/// names and to tell apart two tenants whose names collide after normalisation.
pub fn with_hash_suffix(style: NameStyle, base: &str, seed: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(seed.as_bytes()));
    let keep = style.max_len() - 9;
    let cut: String = base.chars().take(keep).collect();
    let cut = match style {
        NameStyle::Identifier => cut,
        NameStyle::DnsLabel => cut.trim_end_matches('-').to_string(),
    };
    format!("{cut}{}{}", style.separator(), &digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_are_safe_identifiers() {
        let id = NameStyle::Identifier;
        assert_eq!(
            tenant_name(id, "web-shop", "production"),
            "web_shop_production"
        );
        assert_eq!(tenant_name(id, "a", "Staging 2"), "a_staging_2");
        let long = tenant_name(id, &"p".repeat(60), "production");
        assert_eq!(long.len(), MAX_IDENTIFIER_BYTES);
        let other = tenant_name(id, &"p".repeat(60), "productioN2");
        assert_ne!(long, other, "hash suffix keeps long names distinct");
        for name in [long, other, tenant_name(id, "x\"; DROP", "e")] {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
        }
        let suffixed = with_hash_suffix(id, "a_b_c", "project 7 env 9");
        assert!(suffixed.starts_with("a_b_c_") && suffixed.len() == 14);
    }

    /// S3 bucket names: 3-63 of `[a-z0-9-]`, starting and ending with a letter or digit.
    fn is_dns_label(name: &str) -> bool {
        (3..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    }

    #[test]
    fn dns_label_tenant_names_are_valid_bucket_names() {
        let dns = NameStyle::DnsLabel;
        assert_eq!(
            tenant_name(dns, "web_shop", "production"),
            "web-shop-production"
        );
        let cases = [
            tenant_name(dns, "a", "b"),
            tenant_name(dns, "-", "-"),
            tenant_name(dns, &"p".repeat(60), "production"),
            tenant_name(dns, &format!("{}-", "p".repeat(53)), "x"),
            with_hash_suffix(dns, &format!("{}-", "q".repeat(53)), "seed"),
            with_hash_suffix(dns, "ab", "seed"),
        ];
        for name in cases {
            assert!(is_dns_label(&name), "{name:?} is not a DNS label");
        }
        assert_ne!(
            tenant_name(dns, &"p".repeat(60), "production"),
            tenant_name(dns, &"p".repeat(60), "productioN2")
        );
    }

    #[test]
    fn accepts_plain_slugs() {
        for ok in ["a", "my-postgres", "db1", "a-b-c"] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert!(matches!(
            validate_name(&"a".repeat(200)),
            Err(NameError::TooLong(200))
        ));
        for bad in [
            "My-Postgres",
            "has space",
            "1abc",
            "-abc",
            "abc-",
            "a;rm -rf /",
            "x'; DROP TABLE services;--",
            "a$(id)",
            "a_b",
            "ü",
        ] {
            assert!(
                matches!(validate_name(bad), Err(NameError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn slugify_normalises() {
        assert_eq!(slugify("My App!"), "my-app");
        assert_eq!(slugify("  --Hello__World--  "), "hello-world");
        assert_eq!(slugify(&"ab".repeat(100)).len(), MAX_NAME_LEN);
    }

    #[test]
    fn service_names_fit_a_dns_label_with_the_longest_prefix() {
        let longest = "a".repeat(MAX_SERVICE_NAME_LEN);
        assert!(validate_service_name(&longest).is_ok());
        assert_eq!(format!("berth-postgres-{longest}").len(), 63);
        assert_eq!(
            validate_service_name(&"a".repeat(MAX_SERVICE_NAME_LEN + 1)),
            Err(NameError::ServiceNameTooLong(MAX_SERVICE_NAME_LEN + 1))
        );
    }
}
