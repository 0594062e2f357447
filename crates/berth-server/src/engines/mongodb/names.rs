//! Names that reach a MongoDB server, checked before any command carries them. The server
//! checks too, but a name it would accept on one platform and refuse on another (`*`, `:` are
//! refused on Windows only) must not depend on where the service happens to run.

use thiserror::Error;

/// Longest database name mongod accepts, in bytes.
pub const MAX_DATABASE_LEN: usize = 63;

/// Longest user name Berth sends. mongod has no documented limit; a bound keeps commands and
/// error messages small.
pub const MAX_USER_LEN: usize = 256;

/// Characters no database name may contain on any platform mongod runs on.
const DATABASE_FORBIDDEN: &[char] = &[
    '/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?', '\0',
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("{0} name must not be empty")]
    Empty(&'static str),
    #[error("database name {name:?} is {len} bytes long; MongoDB allows {MAX_DATABASE_LEN}")]
    DatabaseTooLong { name: String, len: usize },
    #[error(
        "database name {name:?} contains {found:?}; MongoDB database names cannot contain any of / \\ . space \" $ * < > : | ? or NUL"
    )]
    DatabaseCharacter { name: String, found: char },
    #[error("user name is {0} bytes long; the limit is {MAX_USER_LEN}")]
    UserTooLong(usize),
    #[error("user name {0:?} contains NUL")]
    UserNul(String),
}

/// A database name every mongod accepts: 1 to 63 bytes, none of `/\. "$*<>:|?` nor NUL.
pub fn validate_database(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty("database"));
    }
    if let Some(found) = name.chars().find(|c| DATABASE_FORBIDDEN.contains(c)) {
        return Err(NameError::DatabaseCharacter {
            name: name.to_string(),
            found,
        });
    }
    if name.len() > MAX_DATABASE_LEN {
        return Err(NameError::DatabaseTooLong {
            name: name.to_string(),
            len: name.len(),
        });
    }
    Ok(())
}

/// A user name Berth sends. MongoDB user names are free-form strings (`a.b`, `$x`, `x,y=z` are
/// all valid); they travel as BSON string values, never as keys or inside a namespace, so only
/// NUL (which BSON C strings cannot hold) and an empty or oversized name are refused.
pub fn validate_user(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty("user"));
    }
    if name.contains('\0') {
        return Err(NameError::UserNul(name.replace('\0', "\\0")));
    }
    if name.len() > MAX_USER_LEN {
        return Err(NameError::UserTooLong(name.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_are_valid_databases() {
        for name in ["shop_production", "a", "x1_y2", "ümlaut", &"d".repeat(63)] {
            assert_eq!(validate_database(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn every_forbidden_database_character_is_refused() {
        for c in "/\\. \"$*<>:|?\0".chars() {
            let name = format!("a{c}b");
            assert!(
                matches!(validate_database(&name), Err(NameError::DatabaseCharacter { found, .. }) if found == c),
                "{name:?}"
            );
        }
        assert_eq!(validate_database(""), Err(NameError::Empty("database")));
    }

    #[test]
    fn database_length_counts_bytes() {
        assert!(matches!(
            validate_database(&"d".repeat(64)),
            Err(NameError::DatabaseTooLong { len: 64, .. })
        ));
        // 32 two-byte characters: 32 characters, 64 bytes.
        assert!(matches!(
            validate_database(&"é".repeat(32)),
            Err(NameError::DatabaseTooLong { len: 64, .. })
        ));
    }

    #[test]
    fn odd_user_names_are_allowed_but_not_nul_or_empty() {
        for name in [
            "a.b",
            "$x",
            "a$b",
            "x,y=z",
            "sp ace",
            "ümlaut",
            "we:ird@/?#%",
        ] {
            assert_eq!(validate_user(name), Ok(()), "{name}");
        }
        assert_eq!(validate_user(""), Err(NameError::Empty("user")));
        assert!(matches!(validate_user("a\0b"), Err(NameError::UserNul(_))));
        assert!(matches!(
            validate_user(&"u".repeat(MAX_USER_LEN + 1)),
            Err(NameError::UserTooLong(_))
        ));
    }
}
