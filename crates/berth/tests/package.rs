//! The Debian package (`scripts/package.sh`), built from the debug binaries this test run
//! already has: its contents, its systemd unit (`systemd-analyze verify`), and a clean
//! container made from Berth's own base image with the host's Docker socket, where it is
//! installed, runs `berth doctor` and `berth serve` as berth.service would, is upgraded over
//! an older build without touching the state, and is purged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use berth_server::app::{ADMIN_TOKEN_FILE, INSTANCE_FILE, KEY_FILE};
use berth_server::image_builder::BASE_REPOSITORY;
use berth_server::store::STATE_DB_FILE;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_berth");
/// The version the upgrade starts from: below the workspace's.
const OLD_VERSION: &str = "0.0.1-1";
const NEW_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-1");
/// Containers this test makes are named with this prefix.
const PREFIX: &str = "berth-pkgtest";
/// What enabling berth.service leaves on disk.
const ENABLED: &str = "/etc/systemd/system/multi-user.target.wants/berth.service";

struct Debs {
    new: PathBuf,
    old: PathBuf,
    /// The binaries packaged: a copy of this test run's build, taken first, so that a build
    /// finishing meanwhile in the same target directory changes nothing here.
    built: PathBuf,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The target directory the test binaries were built in (`.../debug/berth`).
fn target_dir() -> PathBuf {
    Path::new(BIN)
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Both packages, built once per test run by the documented script from this run's debug
/// binaries (no release build).
fn debs() -> &'static Debs {
    static DEBS: OnceLock<Debs> = OnceLock::new();
    DEBS.get_or_init(|| {
        let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("package-test");
        let _ = std::fs::remove_dir_all(&out_dir);
        let built = out_dir.join("built");
        std::fs::create_dir_all(&built).unwrap();
        for exe in ["berth", "berth-s3d"] {
            std::fs::copy(Path::new(BIN).with_file_name(exe), built.join(exe)).unwrap();
        }
        let build = |version: Option<&str>, dir: &str| {
            let dir = out_dir.join(dir);
            let mut cmd = Command::new(repo_root().join("scripts/package.sh"));
            cmd.arg("--from")
                .arg(&built)
                .arg("--output")
                .arg(&dir)
                .env("CARGO_TARGET_DIR", target_dir());
            if let Some(version) = version {
                cmd.args(["--deb-version", version]);
            }
            let started = Instant::now();
            run(&mut cmd);
            eprintln!("package built in {:?}", started.elapsed());
            let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "deb"))
                .collect();
            assert_eq!(debs.len(), 1, "{debs:?}");
            debs.pop().unwrap()
        };
        let new = build(None, "new");
        let old = build(Some(OLD_VERSION), "old");
        Debs { new, old, built }
    })
}

fn field(deb: &Path, name: &str) -> String {
    let out = run(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The package's files, extracted into a directory.
fn extracted(deb: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir.path()));
    dir
}

fn control_file(deb: &Path, name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(dir.path()));
    std::fs::read_to_string(dir.path().join(name)).unwrap_or_default()
}

fn sha256(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn package_holds_both_binaries_unit_config_completions_and_man_pages() {
    let debs = debs();
    let deb = &debs.new;
    assert_eq!(field(deb, "Package"), "berth");
    assert_eq!(field(deb, "Version"), NEW_VERSION);
    assert_eq!(field(&debs.old, "Version"), OLD_VERSION);
    let size = std::fs::metadata(deb).unwrap().len();
    eprintln!("package size (debug binaries): {} MiB", size >> 20);

    let root = extracted(deb);
    let root = root.path();
    // Both programs, byte for byte as built: berth/s3 is built from the berth-s3d beside berth.
    for exe in ["berth", "berth-s3d"] {
        let installed = root.join("usr/bin").join(exe);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&installed).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o755, "{exe}");
        assert_eq!(sha256(&installed), sha256(&debs.built.join(exe)), "{exe}");
    }
    // The unit, as shipped in the repository.
    let unit = std::fs::read_to_string(root.join("usr/lib/systemd/system/berth.service")).unwrap();
    assert_eq!(
        unit,
        std::fs::read_to_string(repo_root().join("packaging/berth.service")).unwrap()
    );
    assert!(unit.contains("\nExecStart=/usr/bin/berth serve --config /etc/berth/config.toml\n"));
    assert!(unit.contains("\nRestart=on-failure\n"));
    // The configuration, a conffile.
    let config = std::fs::read_to_string(root.join("etc/berth/config.toml")).unwrap();
    assert!(config.contains("\nlisten = \"127.0.0.1:8080\"\n"));
    assert!(config.contains("\ndata_dir = \"/var/lib/berth\"\n"));
    let conffiles = control_file(deb, "conffiles");
    assert_eq!(conffiles.trim(), "/etc/berth/config.toml", "{conffiles}");
    // Maintainer scripts.
    for script in ["postinst", "prerm", "postrm"] {
        assert!(!control_file(deb, script).is_empty(), "no {script}");
    }
    // Completions, generated by this berth from its clap definitions.
    for (path, marker) in [
        (
            "usr/share/bash-completion/completions/berth",
            "complete -F _berth",
        ),
        ("usr/share/zsh/vendor-completions/_berth", "#compdef berth"),
        (
            "usr/share/fish/vendor_completions.d/berth.fish",
            "complete -c berth",
        ),
    ] {
        let script = std::fs::read_to_string(root.join(path)).unwrap_or_default();
        assert!(script.contains(marker), "{path}: {script:.200}");
        assert!(script.contains("doctor"), "{path} lacks the doctor command");
    }
    // Man pages: berth(1) and one per command, gzipped as Debian wants them.
    let man = root.join("usr/share/man/man1");
    for page in ["berth.1.gz", "berth-serve.1.gz", "berth-doctor.1.gz"] {
        let out = run(Command::new("zcat").arg(man.join(page)));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(".TH"),
            "{page} is not a man page"
        );
    }
    // The package depends only on what a minimal Debian has (dpkg -i works offline).
    let depends = field(deb, "Depends");
    for dependency in depends.split(',') {
        let name = dependency.split_whitespace().next().unwrap();
        assert!(
            ["libc6", "libgcc-s1"].contains(&name),
            "depends on {name}: {depends}"
        );
    }
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let root = extracted(&debs().new);
    let root = root.path();
    let unit = root.join("usr/lib/systemd/system/berth.service");
    // --root: ExecStart's /usr/bin/berth is looked up in the package, beside this machine's
    // own units (the targets it is ordered against); MANPATH: so are the man pages named in
    // Documentation=.
    run(Command::new("cp")
        .arg("-rn")
        .arg("/usr/lib/systemd/system/.")
        .arg(root.join("usr/lib/systemd/system")));
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(&unit)
        .env("MANPATH", root.join("usr/share/man"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = text(&out);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{said}"
    );
    assert!(
        !said.contains("berth.service"),
        "systemd-analyze verify has something to say about the unit:\n{said}"
    );
}

/// A container of Berth's base image, removed when dropped.
struct Container {
    name: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Container {
    /// `sh -c script` inside, as root; the output, whatever the exit status.
    fn sh(&self, script: &str) -> Output {
        Command::new("docker")
            .args(["exec", &self.name, "sh", "-c", script])
            .output()
            .unwrap()
    }

    /// Like [`Self::sh`], failing the test if the script does.
    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in the container: {script}\nfailed ({}):\n{}",
            out.status,
            text(&out)
        );
        text(&out)
    }

    /// Starts the unit's ExecStart in the background, with the unit's (empty) environment
    /// and user (root), and waits for `/healthz`.
    fn start_berth(&self) {
        self.ok(
            "cmd=$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/berth.service) && \
             [ -n \"$cmd\" ] && \
             (env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c \"echo \\$\\$ > /run/berth.pid; exec $cmd\" \
                 >>/run/berth.log 2>&1 &)",
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // No curl in a minimal Debian: bash's /dev/tcp speaks to the API.
            let out = self.sh("bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080 && \
                 printf \"GET /healthz HTTP/1.0\\r\\n\\r\\n\" >&3 && cat <&3'");
            let answer = String::from_utf8_lossy(&out.stdout).to_string();
            if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "berth serve did not answer /healthz; its log:\n{}",
                self.ok("cat /run/berth.log")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, and waits until the process is gone.
    fn stop_berth(&self) {
        self.ok(
            "pid=$(cat /run/berth.pid) && kill -TERM $pid && \
             for i in $(seq 1 300); do kill -0 $pid 2>/dev/null || exit 0; sleep 0.1; done; exit 1",
        );
    }

    /// Every file directly in /var/lib/berth with its SHA-256.
    fn state_hashes(&self) -> BTreeMap<String, String> {
        self.ok("cd /var/lib/berth && find . -maxdepth 1 -type f | sort | xargs sha256sum")
            .lines()
            .map(|line| {
                let (hash, name) = line.split_once("  ").unwrap();
                (name.to_string(), hash.to_string())
            })
            .collect()
    }
}

/// The Docker socket this test talks to (what `berth serve` in the container gets).
fn docker_socket() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => host["unix://".len()..].to_string(),
        _ => "/var/run/docker.sock".to_string(),
    }
}

#[test]
fn installs_runs_upgrades_and_purges_in_a_clean_debian_container() {
    let debs = debs();
    // The images berth doctor checks, current for these binaries (no-op when they are).
    let scratch = tempfile::tempdir().unwrap();
    run(Command::new(debs.built.join("berth"))
        .args(["images", "build", "--data-dir"])
        .arg(scratch.path()));

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let container = Container {
        name: format!("{PREFIX}-{}-{nanos:x}", std::process::id()),
    };
    // No network but loopback: everything it gets is the packages and the Docker socket.
    let socket = docker_socket();
    run(Command::new("docker")
        // --init reaps the servers this test starts and stops (sleep would leave zombies).
        .args([
            "create",
            "--init",
            "--name",
            &container.name,
            "--network",
            "none",
        ])
        .arg("-v")
        .arg(format!("{socket}:/var/run/docker.sock"))
        .arg(format!("{BASE_REPOSITORY}:bookworm"))
        .args(["sleep", "infinity"]));
    for (deb, name) in [(&debs.old, "old.deb"), (&debs.new, "new.deb")] {
        run(Command::new("docker")
            .arg("cp")
            .arg(deb)
            .arg(format!("{}:/root/{name}", container.name)));
    }
    run(Command::new("docker").args(["start", &container.name]));

    // Install the older build.
    let said = container.ok("dpkg -i /root/old.deb 2>&1");
    assert!(said.contains("berth images build"), "{said}");
    assert_eq!(container.ok("stat -c %a /var/lib/berth").trim(), "700");
    assert!(
        container
            .ok("dpkg-query -W -f='${Conffiles}' berth")
            .contains("/etc/berth/config.toml")
    );
    container.ok("test -s /usr/share/man/man1/berth.1.gz && test -x /usr/bin/berth-s3d");
    // Enabled for the next boot, though no systemd runs here (deb-systemd-helper's symlink).
    container.ok(&format!("test -L {ENABLED}"));

    // Run it as the unit does; berth doctor from the installed path passes every check.
    container.start_berth();
    let out = container.sh("berth doctor --config /etc/berth/config.toml --json");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor said no JSON ({e}):\n{}", text(&out)));
    assert!(out.status.success(), "berth doctor failed:\n{report:#}");
    for check in report["checks"].as_array().unwrap() {
        assert_eq!(check["status"], "pass", "{check}");
    }
    // The admin token (where the README says) works; something to find after the upgrade.
    let token = container
        .ok("cat /var/lib/berth/admin-token")
        .trim()
        .to_string();
    container.ok("berth project create pkg-upgrade --json");
    // An administrator's change to the conffile, which the upgrade must keep.
    container.ok(
        "sed -i 's/^# reconcile_interval_secs = 30$/reconcile_interval_secs = 15/' \
         /etc/berth/config.toml && grep -qx 'reconcile_interval_secs = 15' /etc/berth/config.toml",
    );
    container.stop_berth();
    let before = container.state_hashes();
    for file in [STATE_DB_FILE, KEY_FILE, ADMIN_TOKEN_FILE, INSTANCE_FILE] {
        assert!(
            before.contains_key(&format!("./{file}")),
            "{file} missing: {before:?}"
        );
    }

    // Upgrade as on a systemd machine: a stand-in systemctl records what the maintainer
    // scripts ask of systemd (this container runs no systemd).
    container.ok(
        "mkdir -p /run/systemd/system && \
         printf '#!/bin/sh\\necho \"$*\" >> /run/systemctl.calls\\n' > /usr/local/sbin/systemctl && \
         chmod 755 /usr/local/sbin/systemctl",
    );
    container.ok("dpkg -i /root/new.deb 2>&1");
    assert_eq!(
        container.ok("cat /run/systemctl.calls"),
        "--system daemon-reload\ntry-restart berth.service\n",
        "an upgrade must restart Berth and nothing else"
    );
    container.ok("rm -r /run/systemd /usr/local/sbin/systemctl /run/systemctl.calls");
    assert_eq!(
        container.ok("dpkg-query -W -f='${Version}' berth"),
        NEW_VERSION
    );
    assert_eq!(
        container.state_hashes(),
        before,
        "the upgrade changed the state"
    );
    container.ok("grep -qx 'reconcile_interval_secs = 15' /etc/berth/config.toml");

    // The upgraded binary starts on the same state; the token from before works.
    container.start_berth();
    let projects = container.ok(&format!("berth --token {token} --json project list"));
    assert!(projects.contains("pkg-upgrade"), "{projects}");
    container.stop_berth();

    // Purge: the program and /etc/berth go, the state and the key stay, and it says so.
    let said = container.ok("dpkg --purge berth 2>&1");
    for mention in [
        "/var/lib/berth",
        "secret.key",
        "volume",
        "berth.managed=true",
    ] {
        assert!(
            said.contains(mention),
            "purge does not mention {mention}:\n{said}"
        );
    }
    container.ok(&format!(
        "! test -e /usr/bin/berth && ! test -e /etc/berth && ! test -e {ENABLED}"
    ));
    container.ok(&format!(
        "test -s /var/lib/berth/{KEY_FILE} && test -s /var/lib/berth/{STATE_DB_FILE}"
    ));
}
