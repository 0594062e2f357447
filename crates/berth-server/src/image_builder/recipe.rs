//! What one of Berth's images is built from: text files embedded in `berth` (Dockerfile,
//! entrypoint) and, for images whose program Berth builds itself, files taken from the machine
//! at build time (the `berth-s3d` executable shipped beside `berth`). The build context and the
//! input hash are made from the same bytes, so a new executable means a new image.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{BASE_REPOSITORY, ImageError};

/// Engines describe their images with [`ImageRecipe`]; the builder calls it a recipe.
pub use crate::engines::{HostFile, ImageRecipe as Recipe};

/// The directory of the running executable, where [`HostFile::Executable`]s are looked for.
pub fn current_exe_dir() -> Result<PathBuf, ImageError> {
    let exe = std::env::current_exe()
        .map_err(|e| ImageError::Base(format!("cannot find the running executable: {e}")))?;
    exe.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| ImageError::Base(format!("{} has no parent directory", exe.display())))
}

struct Entry {
    name: &'static str,
    bytes: Cow<'static, [u8]>,
    mode: u32,
}

/// A recipe's build context, read once: embedded files first, then host files.
pub struct Context {
    entries: Vec<Entry>,
    suite: &'static str,
    build_args: &'static [(&'static str, &'static str)],
}

impl Context {
    /// Reads the recipe's host files from `exe_dir`; a missing one is an error naming the path.
    pub fn load(recipe: &Recipe, exe_dir: &Path) -> Result<Self, ImageError> {
        let mut entries: Vec<Entry> = recipe
            .files
            .iter()
            .map(|(name, content)| Entry {
                name,
                bytes: Cow::Borrowed(content.as_bytes()),
                mode: if name.ends_with(".sh") { 0o755 } else { 0o644 },
            })
            .collect();
        for host_file in recipe.host_files {
            let HostFile::Executable(name) = *host_file;
            let path = exe_dir.join(name);
            let bytes = std::fs::read(&path).map_err(|e| {
                ImageError::Base(format!(
                    "{} needs {name}, which ships next to the berth executable, but {} cannot \
                     be read ({e}); build it with the rest of Berth (`cargo build --workspace`)",
                    recipe.reference(),
                    path.display()
                ))
            })?;
            entries.push(Entry {
                name,
                bytes: Cow::Owned(bytes),
                mode: 0o755,
            });
        }
        Ok(Self {
            entries,
            suite: recipe.suite,
            build_args: recipe.build_args,
        })
    }

    /// Hash of everything that goes into the image. For recipes without host files it is the
    /// same as before host files existed, so existing images are not rebuilt for nothing.
    pub fn input_hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(BASE_REPOSITORY);
        hasher.update(self.suite);
        for entry in &self.entries {
            hasher.update(entry.name.as_bytes());
            hasher.update([0]);
            hasher.update(&entry.bytes);
            hasher.update([0]);
        }
        // After the files, and only when there are any: recipes without build arguments keep
        // the hash they always had.
        for (name, value) in self.build_args {
            hasher.update(b"ARG\0");
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(value.as_bytes());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }

    /// The build context as the tar archive Docker expects, with the host's CA bundle as
    /// [`super::HOST_CA_FILE`] (not part of the input hash).
    pub fn tar(&self, host_ca: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let ca = Entry {
            name: super::HOST_CA_FILE,
            bytes: Cow::Owned(host_ca.to_vec()),
            mode: 0o644,
        };
        for entry in self.entries.iter().chain([&ca]) {
            let mut header = tar::Header::new_gnu();
            header.set_size(entry.bytes.len() as u64);
            header.set_mode(entry.mode);
            header.set_cksum();
            builder
                .append_data(&mut header, entry.name, entry.bytes.as_ref())
                .expect("writing to a Vec cannot fail");
        }
        builder.into_inner().expect("writing to a Vec cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMBEDDED: Recipe = Recipe {
        repository: "berth/x",
        tag: "1",
        suite: "bookworm",
        build_args: &[],
        files: &[("Dockerfile", "FROM a")],
        host_files: &[],
    };

    fn hash(recipe: &Recipe, dir: &Path) -> String {
        Context::load(recipe, dir).unwrap().input_hash()
    }

    #[test]
    fn input_hash_changes_with_files() {
        let dir = tempfile::tempdir().unwrap();
        let b = Recipe {
            files: &[("Dockerfile", "FROM b")],
            ..EMBEDDED
        };
        assert_ne!(hash(&EMBEDDED, dir.path()), hash(&b, dir.path()));
        assert_eq!(hash(&EMBEDDED, dir.path()), hash(&EMBEDDED, dir.path()));
    }

    #[test]
    fn input_hash_of_embedded_recipes_is_unchanged() {
        // The value the hash had before host files existed: images built then stay current.
        let dir = tempfile::tempdir().unwrap();
        let mut old = Sha256::new();
        old.update(BASE_REPOSITORY);
        old.update("bookworm");
        old.update(b"Dockerfile\0FROM a\0");
        assert_eq!(hash(&EMBEDDED, dir.path()), hex::encode(old.finalize()));
    }

    #[test]
    fn input_hash_changes_with_suite_and_build_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let trixie = Recipe {
            suite: "trixie",
            ..EMBEDDED
        };
        let with_arg = Recipe {
            build_args: &[("V", "1")],
            ..EMBEDDED
        };
        let other_arg = Recipe {
            build_args: &[("V", "2")],
            ..EMBEDDED
        };
        let base = hash(&EMBEDDED, dir.path());
        assert_ne!(base, hash(&trixie, dir.path()));
        assert_ne!(base, hash(&with_arg, dir.path()));
        assert_ne!(hash(&with_arg, dir.path()), hash(&other_arg, dir.path()));
    }

    #[test]
    fn host_executable_is_in_the_context_and_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = Recipe {
            host_files: &[HostFile::Executable("tool")],
            ..EMBEDDED
        };
        std::fs::write(dir.path().join("tool"), b"version 1").unwrap();
        let first = Context::load(&recipe, dir.path()).unwrap();
        std::fs::write(dir.path().join("tool"), b"version 2").unwrap();
        let second = Context::load(&recipe, dir.path()).unwrap();
        assert_ne!(first.input_hash(), second.input_hash());

        // The host's CA bundle rides along, outside the hash.
        let tar = second.tar(b"-----BEGIN CERTIFICATE-----");
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().to_string();
            let mode = entry.header().mode().unwrap();
            let mut body = String::new();
            std::io::Read::read_to_string(&mut entry, &mut body).unwrap();
            seen.push((name, mode, body));
        }
        assert_eq!(
            seen,
            [
                ("Dockerfile".to_string(), 0o644, "FROM a".to_string()),
                ("tool".to_string(), 0o755, "version 2".to_string()),
                (
                    super::super::HOST_CA_FILE.to_string(),
                    0o644,
                    "-----BEGIN CERTIFICATE-----".to_string()
                ),
            ]
        );
    }

    #[test]
    fn missing_host_executable_is_an_error_naming_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = Recipe {
            host_files: &[HostFile::Executable("tool")],
            ..EMBEDDED
        };
        let Err(err) = Context::load(&recipe, dir.path()) else {
            panic!("loaded a missing file")
        };
        let expected = dir.path().join("tool");
        assert!(
            err.to_string().contains(&expected.display().to_string()),
            "{err}"
        );
    }
}
