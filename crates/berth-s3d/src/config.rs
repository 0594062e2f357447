//! The admin key, from the environment contract of the official RustFS image
//! (`RUSTFS_ACCESS_KEY`, `RUSTFS_SECRET_KEY`) or from files named by `RUSTFS_ACCESS_KEY_FILE`,
//! `RUSTFS_SECRET_KEY_FILE` (what Berth uses: a container's environment shows in
//! `docker inspect`, a file does not). Without a complete pair the server does not start: it is
//! never open to anonymous writes.

use crate::keys::{KeyPair, MIN_SECRET_LEN, valid_access_key, valid_secret_key};

pub const ACCESS_KEY_VAR: &str = "RUSTFS_ACCESS_KEY";
pub const SECRET_KEY_VAR: &str = "RUSTFS_SECRET_KEY";

/// Reads the admin pair through `var` (the process environment outside tests). Errors name
/// variables and files, never values.
pub fn admin_key(var: impl Fn(&str) -> Option<String>) -> Result<KeyPair, String> {
    let access_key = value_or_file(&var, ACCESS_KEY_VAR)?;
    let secret_key = value_or_file(&var, SECRET_KEY_VAR)?;
    let (Some(access_key), Some(secret_key)) = (access_key, secret_key) else {
        return Err(format!(
            "no admin key: set {ACCESS_KEY_VAR} and {SECRET_KEY_VAR} (or {ACCESS_KEY_VAR}_FILE and \
             {SECRET_KEY_VAR}_FILE); berth-s3d does not run without authentication"
        ));
    };
    if !valid_access_key(&access_key) {
        return Err(format!(
            "{ACCESS_KEY_VAR} must be 3 to 128 characters of A-Z, a-z, 0-9, '-' and '_'"
        ));
    }
    if !valid_secret_key(&secret_key) {
        return Err(format!(
            "{SECRET_KEY_VAR} must be {MIN_SECRET_LEN} to 256 printable ASCII characters"
        ));
    }
    Ok(KeyPair {
        access_key,
        secret_key,
    })
}

/// `NAME` or the contents of the file `NAME_FILE` names (one trailing newline dropped, as
/// `echo` and editors leave one); both set is an error, like the official images.
fn value_or_file(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<String>, String> {
    let file_var = format!("{name}_FILE");
    let value = var(name).filter(|v| !v.is_empty());
    let file = var(&file_var).filter(|v| !v.is_empty());
    match (value, file) {
        (Some(_), Some(_)) => Err(format!("both {name} and {file_var} are set; set one")),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{file_var}: cannot read {path}: {e}"))?;
            let text = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            Ok(Some(text.to_string()).filter(|t| !t.is_empty()))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_values_from_the_environment() {
        let pair = admin_key(env(&[
            ("RUSTFS_ACCESS_KEY", "rustfsadmin"),
            ("RUSTFS_SECRET_KEY", "rustfsadmin-secret"),
        ]))
        .unwrap();
        assert_eq!(pair.access_key, "rustfsadmin");
        assert_eq!(pair.secret_key, "rustfsadmin-secret");
    }

    #[test]
    fn reads_values_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let ak = dir.path().join("ak");
        let sk = dir.path().join("sk");
        std::fs::write(&ak, "admin\n").unwrap();
        std::fs::write(&sk, "has blanks in it\n").unwrap();
        let err = admin_key(env(&[
            ("RUSTFS_ACCESS_KEY_FILE", ak.to_str().unwrap()),
            ("RUSTFS_SECRET_KEY_FILE", sk.to_str().unwrap()),
        ]))
        .unwrap_err();
        // Blanks are refused; the message names the variable, never the value.
        assert!(err.contains("RUSTFS_SECRET_KEY"), "{err}");
        assert!(!err.contains("blanks"), "{err}");
        std::fs::write(&sk, "s3cret-value\r\n").unwrap();
        let pair = admin_key(env(&[
            ("RUSTFS_ACCESS_KEY_FILE", ak.to_str().unwrap()),
            ("RUSTFS_SECRET_KEY_FILE", sk.to_str().unwrap()),
        ]))
        .unwrap();
        assert_eq!(pair.access_key, "admin");
        assert_eq!(pair.secret_key, "s3cret-value");
    }

    #[test]
    fn refuses_to_run_open_or_half_configured() {
        for vars in [
            &[][..],
            &[("RUSTFS_ACCESS_KEY", "admin")][..],
            &[("RUSTFS_SECRET_KEY", "s3cret-value")][..],
            &[("RUSTFS_ACCESS_KEY", ""), ("RUSTFS_SECRET_KEY", "")][..],
        ] {
            let err = admin_key(env(vars)).unwrap_err();
            assert!(err.contains("no admin key"), "{vars:?}: {err}");
        }
    }

    #[test]
    fn refuses_both_forms_and_weak_values() {
        let err = admin_key(env(&[
            ("RUSTFS_ACCESS_KEY", "admin"),
            ("RUSTFS_ACCESS_KEY_FILE", "/nonexistent"),
            ("RUSTFS_SECRET_KEY", "s3cret-value"),
        ]))
        .unwrap_err();
        assert!(err.contains("both"), "{err}");
        let err = admin_key(env(&[
            ("RUSTFS_ACCESS_KEY", "admin"),
            ("RUSTFS_SECRET_KEY", "short"),
        ]))
        .unwrap_err();
        assert!(err.contains("RUSTFS_SECRET_KEY"), "{err}");
        let err = admin_key(env(&[
            ("RUSTFS_ACCESS_KEY", "ad/min"),
            ("RUSTFS_SECRET_KEY", "s3cret-value"),
        ]))
        .unwrap_err();
        assert!(err.contains("RUSTFS_ACCESS_KEY"), "{err}");
        let err = admin_key(env(&[
            ("RUSTFS_ACCESS_KEY_FILE", "/nonexistent/ak"),
            ("RUSTFS_SECRET_KEY", "s3cret-value"),
        ]))
        .unwrap_err();
        assert!(err.contains("/nonexistent/ak"), "{err}");
    }
}
