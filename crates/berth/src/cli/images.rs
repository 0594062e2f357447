//! `berth images build`: builds Berth's own images from the Dockerfiles embedded in the binary,
//! bootstrapping a Debian base image from the host's apt mirror when needed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_server::docker::DockerClient;
use berth_server::engines;
use berth_server::image_builder::ImageBuilder;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build images (all engines unless some are named), skipping up-to-date ones.
    Build {
        /// Service types to build (postgres, redis, ...).
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
            let selected: Vec<_> = engines::registry()
                .iter()
                .filter(|e| names.is_empty() || names.iter().any(|n| n == e.service_type()))
                .collect();
            if selected.len() != names.len() && !names.is_empty() {
                anyhow::bail!(
                    "unknown service type in {:?}; known: {}",
                    names,
                    engines::service_types().join(", ")
                );
            }
            // Engines without an image of Berth's own have nothing to build.
            let recipes: Vec<_> = selected.iter().filter_map(|e| e.image_recipe()).collect();
            for (i, recipe) in recipes.iter().enumerate() {
                let spinner = ProgressBar::new_spinner();
                spinner.set_style(
                    ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("template"),
                );
                spinner.enable_steady_tick(Duration::from_millis(100));
                spinner.set_message(format!(
                    "{} ({}/{})",
                    recipe.reference(),
                    i + 1,
                    recipes.len()
                ));
                let started = Instant::now();
                let progress = {
                    let spinner = spinner.clone();
                    move |line: &str| spinner.set_message(line.to_string())
                };
                builder.build(recipe, force && i == 0, &progress).await?;
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
            for engine in engines::registry() {
                let Some(recipe) = engine.image_recipe() else {
                    println!(
                        "{}\t{}\tnot built by Berth",
                        engine.service_type(),
                        engine.default_image()
                    );
                    continue;
                };
                let labels = docker.image_labels(&recipe.reference()).await?;
                let state = match labels {
                    None => "missing",
                    Some(l)
                        if l.get("berth.input-hash")
                            == Some(&berth_server::image_builder::input_hash(&recipe)) =>
                    {
                        "current"
                    }
                    Some(_) => "outdated",
                };
                println!("{}\t{}\t{state}", engine.service_type(), recipe.reference());
            }
            Ok(())
        }
    }
}
