//! Files inside containers: written before a container starts (secrets its entrypoint reads,
//! kept out of `docker inspect`) and read back without starting it (the data volume's identity
//! marker). Both go through Docker's archive endpoint, which works on created containers and
//! reaches the paths their volumes are mounted on.

use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use futures_util::StreamExt;

use super::{DockerClient, DockerError, DockerResult};

/// A file to write into a container. `contents` may be a secret: never logged.
#[derive(Clone)]
pub struct ContainerFile {
    /// Absolute path inside the container; missing parent directories are created (0755).
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

impl std::fmt::Debug for ContainerFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerFile")
            .field("path", &self.path)
            .field("bytes", &self.contents.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// A tar archive holding `file` at `relative` (to the directory it is extracted into), with
/// entries for the directories between. Existing directories must never appear in it: Docker
/// would reset their owner and mode to the entry's (root, 0755), e.g. making Redis' /data
/// unwritable for the redis user.
fn archive(relative: &std::path::Path, file: &ContainerFile) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut parent = std::path::PathBuf::new();
    let components: Vec<_> = relative.components().collect();
    for component in &components[..components.len().saturating_sub(1)] {
        parent.push(component);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        builder.append_data(&mut header, &parent, std::io::empty())?;
    }
    let mut header = tar::Header::new_gnu();
    header.set_mode(file.mode);
    header.set_size(file.contents.len() as u64);
    builder.append_data(&mut header, relative, file.contents.as_slice())?;
    builder.into_inner()
}

impl DockerClient {
    /// Writes `files` into the container (created or running). Missing parent directories are
    /// created (0755); existing ones are left as they are.
    pub async fn write_files(&self, container: &str, files: &[ContainerFile]) -> DockerResult<()> {
        for file in files {
            self.write_file(container, file).await?;
        }
        Ok(())
    }

    /// Extracts the file into its parent directory, or, while that does not exist, into the
    /// nearest ancestor that does, with the missing directories in the archive.
    async fn write_file(&self, container: &str, file: &ContainerFile) -> DockerResult<()> {
        let path = std::path::Path::new(&file.path);
        let mut base = path.parent().unwrap_or(std::path::Path::new("/"));
        loop {
            let relative = path
                .strip_prefix(base)
                .map_err(|e| DockerError::Other(format!("bad path {}: {e}", file.path)))?;
            let tar = archive(relative, file)
                .map_err(|e| DockerError::Other(format!("building archive: {e}")))?;
            let container = container.to_string();
            let target = base.to_string_lossy().to_string();
            let result = self
                .with(|d| async move {
                    let options = UploadToContainerOptions {
                        path: target,
                        ..Default::default()
                    };
                    d.upload_to_container(
                        &container,
                        Some(options),
                        bollard::body_full(tar.into()),
                    )
                    .await?;
                    Ok(())
                })
                .await;
            match (result, base.parent()) {
                (Err(DockerError::NotFound(_)), Some(up)) => base = up,
                (result, _) => return result,
            }
        }
    }

    /// Reads one regular file from a container (created, running or stopped); `None` if it
    /// does not exist. Meant for small files: the whole archive is held in memory.
    pub async fn read_file(&self, container: &str, path: &str) -> DockerResult<Option<Vec<u8>>> {
        let container = container.to_string();
        let path = path.to_string();
        self.with(|d| async move {
            let options = DownloadFromContainerOptions { path: path.clone() };
            let mut stream = d.download_from_container(&container, Some(options));
            let mut tar_bytes = Vec::new();
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(bytes) => tar_bytes.extend_from_slice(&bytes),
                    Err(e) => {
                        return match DockerError::from(e) {
                            DockerError::NotFound(_) => Ok(None),
                            other => Err(other),
                        };
                    }
                }
            }
            let mut archive = tar::Archive::new(tar_bytes.as_slice());
            let entries = archive
                .entries()
                .map_err(|e| DockerError::Other(format!("reading archive of {path}: {e}")))?;
            for entry in entries {
                let mut entry = entry
                    .map_err(|e| DockerError::Other(format!("reading archive of {path}: {e}")))?;
                if entry.header().entry_type().is_file() {
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(&mut entry, &mut out)
                        .map_err(|e| DockerError::Other(format!("reading {path}: {e}")))?;
                    return Ok(Some(out));
                }
            }
            Ok(None)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_holds_only_the_missing_parents_then_the_file_with_its_mode() {
        let file = ContainerFile {
            path: "/run/berth/secret".into(),
            contents: b"pw".to_vec(),
            mode: 0o400,
        };
        let tar = archive(std::path::Path::new("berth/secret"), &file).unwrap();
        let mut reader = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32, u64)> = reader
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path()
                        .unwrap()
                        .to_string_lossy()
                        .trim_end_matches('/')
                        .to_string(),
                    e.header().mode().unwrap(),
                    e.header().size().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("berth".to_string(), 0o755, 0),
                ("berth/secret".to_string(), 0o400, 2),
            ]
        );
        let tar = archive(std::path::Path::new("secret"), &file).unwrap();
        assert_eq!(
            tar::Archive::new(tar.as_slice()).entries().unwrap().count(),
            1,
            "an existing parent gets no entry"
        );
    }
}
