//! `berth images build`: builds Berth's own images from the Dockerfiles embedded in the binary,
//! bootstrapping a Debian base image from the host's apt mirror when needed.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_server::docker::DockerClient;
use berth_server::image_builder::{ImageBuilder, own_images};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build images (all unless some are named), skipping up-to-date ones.
    Build {
        /// Images to build: service types (postgres, redis, ...) and s3.
        engines: Vec<String>,
        /// Rebuild even if the image is up to date (also re-bootstraps the base image).
        #[arg(long)]
        force: bool,
    },
    /// List Berth's images and whether they are present and current.
    List,
}

pub async fn run(command: ImagesCommand, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let docker = Arc::new(DockerClient::new());
    let work = data_dir
        .unwrap_or_else(berth_server::config::default_data_dir)
        .join("images");
    let builder = ImageBuilder::new(docker.clone(), work);
    match command {
        ImagesCommand::Build {
            engines: names,
            force,
        } => {
            let images = own_images();
            let selected: Vec<_> = images
                .iter()
                .filter(|i| names.is_empty() || names.iter().any(|n| n == i.name))
                .collect();
            if selected.len() != names.len() && !names.is_empty() {
                let known: Vec<_> = images.iter().map(|i| i.name).collect();
                anyhow::bail!("unknown image in {names:?}; known: {}", known.join(", "));
            }
            for (i, image) in selected.iter().enumerate() {
                let recipe = image.recipe;
                let spinner = ProgressBar::new_spinner();
                spinner.set_style(
                    ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("template"),
                );
                spinner.enable_steady_tick(Duration::from_millis(100));
                spinner.set_message(format!(
                    "{} ({}/{})",
                    recipe.reference(),
                    i + 1,
                    selected.len()
                ));
                let started = Instant::now();
                // A spinner draws only on a terminal; in a log (CI, systemd) each stage is a
                // line with its time, so a long build never looks like a hang.
                let interactive = std::io::stderr().is_terminal();
                let progress = {
                    let spinner = spinner.clone();
                    move |line: &str| {
                        if interactive {
                            spinner.set_message(line.to_string())
                        } else {
                            eprintln!("[{:>6.1}s] {line}", started.elapsed().as_secs_f64());
                        }
                    }
                };
                builder.build(&recipe, force && i == 0, &progress).await?;
                spinner.finish_and_clear();
                eprintln!(
                    "{} ready ({:.1}s)",
                    recipe.reference(),
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        ImagesCommand::List => {
            for image in own_images() {
                let recipe = image.recipe;
                let labels = docker.image_labels(&recipe.reference()).await?;
                // A missing host executable makes the image unbuildable, not the list fail.
                let hash = builder.context(&recipe).map(|c| c.input_hash());
                let state = match (labels, hash) {
                    (_, Err(e)) => format!("cannot build: {e}"),
                    (None, _) => "missing".into(),
                    (Some(l), Ok(hash)) if l.get("berth.input-hash") == Some(&hash) => {
                        "current".into()
                    }
                    (Some(_), _) => "outdated".into(),
                };
                println!("{}\t{}\t{state}", image.name, recipe.reference());
            }
            Ok(())
        }
    }
}
