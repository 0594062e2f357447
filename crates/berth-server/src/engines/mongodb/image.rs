//! Berth's MongoDB-compatible image and how a container of it is started: the official mongo
//! image's contract (root user from `MONGO_INITDB_ROOT_USERNAME` and a password file, data in
//! `/data`, port 27017), so another image honouring that contract can replace it.

use crate::docker::ContainerFile;
use crate::engines::ImageRecipe;

/// SecantusDB, not MongoDB: the tag names what runs (see `images/mongodb/Dockerfile`).
pub const RECIPE: ImageRecipe = ImageRecipe {
    repository: "berth/mongodb",
    tag: "secantusdb-0.7.0b3",
    suite: "bookworm",
    build_args: &[],
    files: &[
        (
            "Dockerfile",
            include_str!("../../../../../images/mongodb/Dockerfile"),
        ),
        (
            "docker-entrypoint.sh",
            include_str!("../../../../../images/mongodb/docker-entrypoint.sh"),
        ),
        (
            "berth-init-root.py",
            include_str!("../../../../../images/mongodb/berth-init-root.py"),
        ),
        (
            "requirements.txt",
            include_str!("../../../../../images/mongodb/requirements.txt"),
        ),
    ],
    host_files: &[],
};

/// The server's port inside the container.
pub const PORT: u16 = 27017;

/// The data volume's mount point (the server's files are in `db/` below it).
pub const DATA_PATH: &str = "/data";

/// Where the root password is written inside the container: outside the data volume and out
/// of `docker inspect`.
pub const PASSWORD_FILE: &str = "/run/berth/mongodb-password";

/// The container's environment: the root user's name and where its password is. Never the
/// password itself.
pub fn container_env(username: &str) -> Vec<String> {
    vec![
        format!("MONGO_INITDB_ROOT_USERNAME={username}"),
        format!("MONGO_INITDB_ROOT_PASSWORD_FILE={PASSWORD_FILE}"),
    ]
}

/// The root password behind `MONGO_INITDB_ROOT_PASSWORD_FILE`. Readable by every user of the
/// container because the official image reads it after dropping to its `mongodb` user; Berth's
/// own entrypoint narrows it to `mongodb`, mode 0400.
pub fn secret_files(password: &str) -> Vec<ContainerFile> {
    vec![ContainerFile {
        path: PASSWORD_FILE.to_string(),
        contents: password.as_bytes().to_vec(),
        mode: 0o444,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_does_not_pass_for_mongodb() {
        assert!(RECIPE.tag.starts_with("secantusdb-"), "{}", RECIPE.tag);
        assert!(
            RECIPE
                .tag
                .chars()
                .next()
                .is_some_and(|c| !c.is_ascii_digit())
        );
    }

    #[test]
    fn password_goes_into_a_file_outside_the_volume_not_the_environment() {
        let env = container_env("admin");
        assert!(env.iter().all(|e| !e.contains("s3cret")));
        assert!(env.contains(&format!("MONGO_INITDB_ROOT_PASSWORD_FILE={PASSWORD_FILE}")));
        let files = secret_files("s3cret");
        assert_eq!(files[0].path, PASSWORD_FILE);
        assert_eq!(files[0].contents, b"s3cret");
        assert!(!PASSWORD_FILE.starts_with(DATA_PATH));
    }

    #[test]
    fn dockerfile_keeps_the_host_ca_bundle_out_of_the_final_stage() {
        let dockerfile = RECIPE.files[0].1;
        let final_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
        assert!(dockerfile.contains(crate::image_builder::HOST_CA_FILE));
        assert!(
            !final_stage.contains(crate::image_builder::HOST_CA_FILE)
                && !final_stage.contains("/build"),
            "{final_stage}"
        );
        assert!(final_stage.contains("COPY --from=venv /opt/secantus /opt/secantus"));
    }
}
