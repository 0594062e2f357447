//! Berth's S3 image: berth-s3d (s3s-fs storage with an admin key and per-project keys) on 9000,
//! its status page on 9001, and stunnel on 9443 for clients that speak S3 over HTTPS only
//! (pgBackRest). berth-s3d is not built in the image: the builder copies the executable that
//! ships next to `berth`.

use super::super::{HostFile, ImageRecipe};

/// The tag follows s3s-fs' on-disk layout (0.14), not Berth's version.
pub const RECIPE: ImageRecipe = ImageRecipe {
    repository: "berth/s3",
    tag: "0.14",
    suite: "bookworm",
    build_args: &[],
    files: &[
        (
            "Dockerfile",
            include_str!("../../../../../images/s3/Dockerfile"),
        ),
        (
            "docker-entrypoint.sh",
            include_str!("../../../../../images/s3/docker-entrypoint.sh"),
        ),
        (
            "stunnel.conf",
            include_str!("../../../../../images/s3/stunnel.conf"),
        ),
    ],
    host_files: &[HostFile::Executable("berth-s3d")],
};
