//! Every image Berth builds, by the name `berth images build <name>` knows it: each engine's
//! image, plus images that are ready before the engine that will use them. The S3 image is one:
//! its engine is not written yet, and engines' `ImageRecipe` cannot name host files; when the
//! engine lands it should return [`S3`]'s reference and `ImageRecipe` and [`Recipe`] become one.

use super::recipe::{HostFile, Recipe};
use crate::engines;

/// Berth's S3 server (`berth-s3d`, s3s-fs storage) with stunnel for HTTPS. The tag follows
/// s3s-fs' on-disk layout (0.14), not Berth's version.
pub const S3: Recipe = Recipe {
    repository: "berth/s3",
    tag: "0.14",
    files: &[
        (
            "Dockerfile",
            include_str!("../../../../images/s3/Dockerfile"),
        ),
        (
            "docker-entrypoint.sh",
            include_str!("../../../../images/s3/docker-entrypoint.sh"),
        ),
        (
            "stunnel.conf",
            include_str!("../../../../images/s3/stunnel.conf"),
        ),
    ],
    host_files: &[HostFile::Executable("berth-s3d")],
};

/// Images not (yet) tied to an engine, by name.
const STANDALONE: &[(&str, Recipe)] = &[("s3", S3)];

/// One of Berth's images and its name on the command line.
#[derive(Debug, Clone, Copy)]
pub struct OwnImage {
    pub name: &'static str,
    pub recipe: Recipe,
}

/// Engines' images first (named by service type), then the standalone ones; a standalone
/// recipe replaces an engine's of the same reference, since only it can carry host files.
pub fn own_images() -> Vec<OwnImage> {
    let mut images: Vec<OwnImage> = engines::registry()
        .iter()
        .map(|e| OwnImage {
            name: e.service_type(),
            recipe: e.image_recipe().into(),
        })
        .collect();
    for &(name, recipe) in STANDALONE {
        let image = OwnImage { name, recipe };
        match images
            .iter_mut()
            .find(|i| i.recipe.reference() == recipe.reference())
        {
            Some(existing) => *existing = image,
            None => images.push(image),
        }
    }
    images
}

/// The recipe for `reference`, if it is one of Berth's images.
pub fn recipe_for(reference: &str) -> Option<Recipe> {
    own_images()
        .into_iter()
        .map(|i| i.recipe)
        .find(|r| r.reference() == reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_image_has_a_unique_name_and_reference() {
        let images = own_images();
        for (i, a) in images.iter().enumerate() {
            for b in &images[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.recipe.reference(), b.recipe.reference());
            }
        }
        assert!(images.iter().any(|i| i.name == "s3"));
        assert!(recipe_for("berth/s3:0.14").is_some_and(|r| !r.host_files.is_empty()));
    }
}
