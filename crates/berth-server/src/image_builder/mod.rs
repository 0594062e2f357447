//! Builds Berth's own images without a registry: a Debian base made by `debootstrap` from the
//! host's own apt mirror and imported with `docker import`, then each image's embedded
//! Dockerfile on top (`recipe`: what goes in; `catalog`: which images exist). Images are
//! labelled with a hash of their inputs and rebuilt only when the inputs change.

mod catalog;
mod recipe;

pub use catalog::{OwnImage, own_images, recipe_for};
pub use recipe::{Context, HostFile, Recipe, current_exe_dir};

/// Name of the host's CA bundle in every build context (empty if the host has none), so a
/// build stage that downloads over TLS (the MongoDB image's wheels) trusts what the host
/// trusts, a TLS-intercepting proxy's CA included. Dockerfiles copy it into a build stage
/// only, never into the final image; it is not part of the input hash (a CA rotation must not
/// rebuild every image, and the downloads are pinned by hash).
pub const HOST_CA_FILE: &str = "host-ca.pem";

/// Where hosts keep their CA bundle, after `SSL_CERT_FILE`: Debian/Ubuntu/Alpine/Arch,
/// Fedora/RHEL, openSUSE, BSD-style.
const HOST_CA_PATHS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use thiserror::Error;
use tokio::sync::Mutex;
use tokio_util::io::ReaderStream;

use crate::docker::{DockerClient, DockerError};

/// Berth's Debian base images, one per suite: `berth/debian-base:<suite>`.
pub const BASE_REPOSITORY: &str = "berth/debian-base";
const LABEL_INPUT_HASH: &str = "berth.input-hash";

#[derive(Debug, Error)]
pub enum ImageError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// An input of one of Berth's images cannot be made or found (the Debian base, an
    /// executable that should ship beside `berth`): the installation, not the request, is at
    /// fault.
    #[error("{0}")]
    Base(String),
    #[error(
        "image {0} is not present locally and could not be pulled ({1}); build or load it first"
    )]
    Unavailable(String, String),
}

/// Serialises builds: two creates needing the same image build it once.
pub struct ImageBuilder {
    docker: std::sync::Arc<DockerClient>,
    work_dir: PathBuf,
    /// Where host executables are found; `None`: beside the running executable.
    exe_dir: Option<PathBuf>,
    lock: Mutex<()>,
}

impl ImageBuilder {
    pub fn new(docker: std::sync::Arc<DockerClient>, work_dir: PathBuf) -> Self {
        Self {
            docker,
            work_dir,
            exe_dir: None,
            lock: Mutex::new(()),
        }
    }

    /// Looks for host executables in `dir` instead of beside the running executable (tests,
    /// whose executable is not `berth`).
    pub fn with_exe_dir(mut self, dir: PathBuf) -> Self {
        self.exe_dir = Some(dir);
        self
    }

    /// Reads `recipe`'s build context (its host files included).
    pub fn context(&self, recipe: &Recipe) -> Result<Context, ImageError> {
        let dir = match &self.exe_dir {
            Some(dir) => dir.clone(),
            None => current_exe_dir()?,
        };
        Context::load(recipe, &dir)
    }

    /// Makes sure `image` exists locally: builds it if it is one of Berth's own (missing or
    /// outdated), otherwise tries to pull it.
    pub async fn ensure(
        &self,
        image: &str,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), ImageError> {
        if let Some(recipe) = recipe_for(image) {
            return self.build(&recipe, false, progress).await;
        }
        if self.docker.image_labels(image).await?.is_some() {
            return Ok(());
        }
        progress(&format!("pulling {image}"));
        self.docker
            .pull_image(image)
            .await
            .map_err(|e| ImageError::Unavailable(image.to_string(), e.to_string()))
    }

    /// Builds one of Berth's images unless an image with the same input hash exists.
    pub async fn build(
        &self,
        recipe: &Recipe,
        force: bool,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), ImageError> {
        let _guard = self.lock.lock().await;
        let reference = recipe.reference();
        let context = self.context(recipe)?;
        let hash = context.input_hash();
        if !force
            && let Some(labels) = self.docker.image_labels(&reference).await?
            && labels.get(LABEL_INPUT_HASH) == Some(&hash)
        {
            return Ok(());
        }
        self.ensure_base(recipe.suite, force, progress).await?;
        progress(&format!("building {reference}"));
        let context = context.tar(&host_ca_bundle());
        let mut args = HashMap::from([(
            "BASE".to_string(),
            format!("{BASE_REPOSITORY}:{}", recipe.suite),
        )]);
        for (name, value) in recipe.build_args {
            args.insert(name.to_string(), value.to_string());
        }
        let labels = HashMap::from([(LABEL_INPUT_HASH.to_string(), hash)]);
        let mut tail = OutputTail::default();
        let built = self
            .docker
            .build_image(&reference, context, args, labels, |line| {
                tracing::debug!(image = %reference, "{}", line.0);
                tail.push(&line.0);
                if line.0.starts_with("Step ") {
                    progress(&format!("{reference}: {}", line.0));
                }
            })
            .await;
        built.map_err(|e| ImageError::Base(format!("{e}{}", tail.render())))
    }

    /// Makes `berth/debian-base:<suite>` with debootstrap if it is missing.
    async fn ensure_base(
        &self,
        suite: &'static str,
        force: bool,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), ImageError> {
        let base = format!("{BASE_REPOSITORY}:{suite}");
        if !force && self.docker.image_labels(&base).await?.is_some() {
            return Ok(());
        }
        let mirror = debian_mirror()?;
        progress(&format!(
            "bootstrapping {base} with debootstrap (about a minute)"
        ));
        tokio::fs::create_dir_all(&self.work_dir)
            .await
            .map_err(|e| ImageError::Base(format!("creating {}: {e}", self.work_dir.display())))?;
        let rootfs = self.work_dir.join(format!("rootfs-{}", std::process::id()));
        let _ = tokio::fs::remove_dir_all(&rootfs).await;
        let result = self
            .bootstrap_and_import(suite, &rootfs, &mirror, progress)
            .await;
        let _ = tokio::fs::remove_dir_all(&rootfs).await;
        result
    }

    async fn bootstrap_and_import(
        &self,
        suite: &'static str,
        rootfs: &Path,
        mirror: &str,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), ImageError> {
        let mut child = tokio::process::Command::new("debootstrap")
            .args(["--variant=minbase", suite])
            .arg(rootfs)
            .arg(mirror)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                ImageError::Base(format!(
                    "cannot run debootstrap ({e}); install it with `apt-get install debootstrap` (needs root)"
                ))
            })?;
        // Each "I: Retrieving ..." line as it comes: a minute of silence reads as a hang.
        use tokio::io::AsyncBufReadExt;
        let mut tail = OutputTail::default();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        // Its warnings and errors, read alongside so neither pipe fills up.
        let errors = tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            let mut read = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                read.push(line);
            }
            read
        });
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tail.push(&line);
            progress(&format!("base system: {}", line.trim()));
        }
        let status = child
            .wait()
            .await
            .map_err(|e| ImageError::Base(format!("debootstrap: {e}")))?;
        for line in errors.await.unwrap_or_default() {
            tail.push(&line);
        }
        if !status.success() {
            return Err(ImageError::Base(format!(
                "debootstrap failed ({status}){}",
                tail.render()
            )));
        }
        // Downloaded .debs are not needed in the image.
        let archives = rootfs.join("var/cache/apt/archives");
        if let Ok(mut dir) = tokio::fs::read_dir(&archives).await {
            while let Ok(Some(entry)) = dir.next_entry().await {
                if entry.path().extension().is_some_and(|e| e == "deb") {
                    let _ = tokio::fs::remove_file(entry.path()).await;
                }
            }
        }
        let mut tar = tokio::process::Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| ImageError::Base(format!("cannot run tar: {e}")))?;
        let stdout = tar.stdout.take().expect("piped");
        self.docker
            .import_rootfs(BASE_REPOSITORY, suite, ReaderStream::new(stdout))
            .await?;
        let status = tar
            .wait()
            .await
            .map_err(|e| ImageError::Base(format!("tar: {e}")))?;
        if !status.success() {
            return Err(ImageError::Base(format!("tar exited with {status}")));
        }
        Ok(())
    }
}

/// The last lines a step printed, shown with its failure (the error alone rarely says why).
#[derive(Default)]
struct OutputTail(std::collections::VecDeque<String>);

impl OutputTail {
    const LINES: usize = 12;

    fn push(&mut self, line: &str) {
        let line = line.trim_end();
        if line.is_empty() {
            return;
        }
        if self.0.len() == Self::LINES {
            self.0.pop_front();
        }
        self.0.push_back(line.to_string());
    }

    /// A "last output:" block of indented lines, or nothing if the step printed nothing.
    fn render(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let lines: Vec<String> = self.0.iter().map(|l| format!("  {l}")).collect();
        format!("\nlast output:\n{}", lines.join("\n"))
    }
}

/// The host's CA bundle (`SSL_CERT_FILE`, else the first of [`HOST_CA_PATHS`]), or nothing.
/// Certificates are public: reading them is no secret handling.
pub fn host_ca_bundle() -> Vec<u8> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    for path in from_env
        .into_iter()
        .chain(HOST_CA_PATHS.iter().map(PathBuf::from))
    {
        if let Ok(bundle) = std::fs::read(&path) {
            return bundle;
        }
    }
    Vec::new()
}

/// The Debian mirror this machine's apt uses (`BERTH_DEBIAN_MIRROR` overrides). Read from the
/// machine so no mirror host is ever hard-coded.
pub fn debian_mirror() -> Result<String, ImageError> {
    if let Ok(m) = std::env::var("BERTH_DEBIAN_MIRROR")
        && !m.is_empty()
    {
        return Ok(m);
    }
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if let Some(m) = mirror_from_sources(&text) {
            return Ok(m);
        }
    }
    Err(ImageError::Base(
        "no Debian bookworm mirror found in /etc/apt/sources.list*; set BERTH_DEBIAN_MIRROR".into(),
    ))
}

/// The suite the machine itself runs (Debian 12), by which its main archive is found among
/// its apt sources. That archive serves the other suites Berth bootstraps (trixie) too.
const HOST_SUITE: &str = "bookworm";

/// Finds the URI serving the plain `bookworm` suite, in one-line or deb822 format.
fn mirror_from_sources(text: &str) -> Option<String> {
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"deb") {
            let rest: Vec<&str> = words[1..]
                .iter()
                .copied()
                .filter(|w| !w.starts_with('['))
                .collect();
            if rest.len() >= 2 && rest[1] == HOST_SUITE {
                return Some(rest[0].to_string());
            }
        }
    }
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.strip_prefix(':'))
                    .map(str::trim)
            })
        };
        let (Some(uris), Some(suites)) = (field("URIs"), field("Suites")) else {
            continue;
        };
        if suites.split_whitespace().any(|s| s == HOST_SUITE) {
            return uris.split_whitespace().next().map(str::to_string);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_shows_the_last_lines_of_its_step() {
        let mut tail = OutputTail::default();
        assert_eq!(tail.render(), "");
        for n in 0..20 {
            tail.push(&format!("line {n}"));
        }
        tail.push("   ");
        let shown = tail.render();
        assert!(shown.starts_with("\nlast output:\n  line 8\n"), "{shown}");
        assert!(shown.ends_with("  line 19"), "{shown}");
        assert_eq!(shown.lines().count(), 2 + OutputTail::LINES);
    }

    #[test]
    fn finds_mirror_in_both_formats() {
        let one_line = "# comment\ndeb http://mirror.example/debian bookworm main\n";
        assert_eq!(
            mirror_from_sources(one_line).as_deref(),
            Some("http://mirror.example/debian")
        );
        let deb822 = "Types: deb\nURIs: http://m.example/debian-security\nSuites: bookworm-security\n\n\
                      Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n";
        assert_eq!(
            mirror_from_sources(deb822).as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(mirror_from_sources("deb http://x trixie main"), None);
    }
}
