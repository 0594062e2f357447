//! Every image Berth builds, by the name `berth images build <name>` knows it: each engine's own
//! image, named by its service type.

use super::recipe::Recipe;
use crate::engines;

/// One of Berth's images and its name on the command line.
#[derive(Debug, Clone, Copy)]
pub struct OwnImage {
    pub name: &'static str,
    pub recipe: Recipe,
}

/// The engines' own images, in registry order (engines without one are skipped): each
/// engine's default image under its service type's name, then its older ones.
pub fn own_images() -> Vec<OwnImage> {
    let mut images = Vec::new();
    for engine in engines::registry() {
        if let Some(recipe) = engine.image_recipe() {
            images.push(OwnImage {
                name: engine.service_type(),
                recipe,
            });
        }
        for &(name, recipe) in engine.older_images() {
            images.push(OwnImage { name, recipe });
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
