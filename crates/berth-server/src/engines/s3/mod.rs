//! S3-compatible object storage: the seed's "S3 / RustFS" parameters, run on Berth's own
//! `berth/s3` image (berth-s3d: s3s-fs storage, per-project keys, HTTPS through stunnel on 9443)
//! or on an image with RustFS' contract (`RUSTFS_ACCESS_KEY` / `RUSTFS_SECRET_KEY`).
//!
//! On Berth's image the admin keys are files written before the first start
//! (`RUSTFS_*_FILE`), never environment; an image without `_FILE` support gets them as
//! environment, and the service view says so.

use std::time::Duration;

use async_trait::async_trait;
use berth_core::{ParamKind, ParamSpec, Parameters};

use super::{ContainerFile, Engine, ImageRecipe, Tenancy};
use crate::s3client::{S3Client, S3Endpoint};

mod backup;
mod image;
mod tenancy;

pub struct S3;

/// The repository of Berth's own image; only it reads key files and has per-project keys.
const OWN_REPOSITORY: &str = image::RECIPE.repository;
const ACCESS_KEY_FILE: &str = "/run/berth/access-key";
const SECRET_KEY_FILE: &str = "/run/berth/secret-key";
/// The region clients are told to sign for (the servers here accept any).
pub const REGION: &str = "us-east-1";
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "port",
        doc: "Host port of the S3 API on 127.0.0.1; auto-assigned from 9000",
        kind: ParamKind::Port { base: 9000 },
        default: None,
        editable: true,
    },
    ParamSpec {
        name: "console_port",
        doc: "Host port of the console on 127.0.0.1 (Berth's image: a status page); auto-assigned from 9001",
        kind: ParamKind::Port { base: 9001 },
        default: None,
        editable: true,
    },
    ParamSpec {
        name: "docker_image",
        doc: "Image with RustFS' contract (RUSTFS_ACCESS_KEY/RUSTFS_SECRET_KEY, S3 on 9000, console on 9001)",
        kind: ParamKind::Image,
        default: None,
        editable: true,
    },
    ParamSpec {
        name: "access_key",
        doc: "Admin access key (generated)",
        kind: ParamKind::Secret { length: 20 },
        default: None,
        editable: false,
    },
    ParamSpec {
        name: "secret_key",
        doc: "Admin secret key (generated)",
        kind: ParamKind::Secret { length: 40 },
        default: None,
        editable: false,
    },
];

pub(super) fn param<'a>(params: &'a Parameters, name: &str) -> &'a str {
    params.get(name).map(String::as_str).unwrap_or_default()
}

/// Whether the service runs Berth's own image (key files, per-project keys).
pub(super) fn is_own_image(params: &Parameters) -> bool {
    param(params, berth_core::params::DOCKER_IMAGE)
        .split_once(':')
        .map(|(repo, _)| repo)
        .unwrap_or(param(params, berth_core::params::DOCKER_IMAGE))
        == OWN_REPOSITORY
}

/// An admin client through the published port.
pub(super) fn admin_client(host_port: u16, params: &Parameters) -> S3Client {
    S3Client::new(admin_endpoint(host_port, params))
}

fn admin_endpoint(host_port: u16, params: &Parameters) -> S3Endpoint {
    S3Endpoint {
        url: format!("http://127.0.0.1:{host_port}"),
        region: REGION.into(),
        access_key: param(params, "access_key").into(),
        secret_key: param(params, "secret_key").into(),
    }
}

#[async_trait]
impl Engine for S3 {
    fn service_type(&self) -> &'static str {
        "s3"
    }

    fn display_name(&self) -> &'static str {
        "S3 Storage"
    }

    fn description(&self) -> &'static str {
        "S3-compatible object storage (one bucket, and on Berth's image one access key, per linked project environment)"
    }

    fn color(&self) -> &'static str {
        "#E8572A"
    }

    fn icon_svg(&self) -> String {
        super::badge_svg(self.color(), "S3")
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn image_recipe(&self) -> Option<ImageRecipe> {
        Some(image::RECIPE)
    }

    fn image_notice(&self, image: &str) -> Option<String> {
        let own = image.split_once(':').map(|(r, _)| r).unwrap_or(image) == OWN_REPOSITORY;
        if own {
            return Some(
                "berth/s3 is berth-s3d on s3s-fs, an experimental S3 server: fine for development and \
                 tests, not proven for production data"
                    .into(),
            );
        }
        Some(format!(
            "{image} gets its admin keys as environment variables (visible to `docker inspect`), and linked \
             projects share the admin key: each gets its own bucket, but nothing stops one project's \
             application from reading another's bucket"
        ))
    }

    fn signature(&self) -> Option<super::recognize::Signature> {
        Some(super::recognize::Signature {
            executables: &["minio", "rustfs", "berth-s3d", "versitygw"],
            env_names: &[
                "MINIO_ROOT_USER",
                "MINIO_ACCESS_KEY",
                "RUSTFS_ACCESS_KEY",
                "RUSTFS_ACCESS_KEY_FILE",
            ],
            image_words: &["minio", "rustfs", "s3"],
        })
    }

    fn ports(&self) -> &'static [(u16, &'static str)] {
        &[(9000, "port"), (9001, "console_port")]
    }

    fn data_path(&self) -> &'static str {
        "/data"
    }

    fn container_env(&self, params: &Parameters) -> Vec<String> {
        if is_own_image(params) {
            vec![
                format!("RUSTFS_ACCESS_KEY_FILE={ACCESS_KEY_FILE}"),
                format!("RUSTFS_SECRET_KEY_FILE={SECRET_KEY_FILE}"),
            ]
        } else {
            // RustFS reads its keys from the environment only; said on the service view.
            vec![
                format!("RUSTFS_ACCESS_KEY={}", param(params, "access_key")),
                format!("RUSTFS_SECRET_KEY={}", param(params, "secret_key")),
                "RUSTFS_ADDRESS=:9000".into(),
                "RUSTFS_CONSOLE_ENABLE=true".into(),
            ]
        }
    }

    fn secret_files(&self, params: &Parameters) -> Vec<ContainerFile> {
        if !is_own_image(params) {
            return Vec::new();
        }
        [
            (ACCESS_KEY_FILE, "access_key"),
            (SECRET_KEY_FILE, "secret_key"),
        ]
        .into_iter()
        .map(|(path, name)| ContainerFile {
            path: path.into(),
            contents: param(params, name).as_bytes().to_vec(),
            mode: 0o400,
        })
        .collect()
    }

    fn container_cmd(&self, _params: &Parameters) -> Vec<String> {
        Vec::new()
    }

    /// Lists the buckets as the admin: proves the server answers and the keys work.
    async fn probe(&self, host_port: u16, params: &Parameters) -> Result<(), String> {
        let client = admin_client(host_port, params);
        tokio::time::timeout(PROBE_TIMEOUT, client.list_buckets())
            .await
            .map_err(|_| "timed out listing buckets".to_string())?
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn connection_info(&self, host: &str, _params: &Parameters) -> Option<String> {
        Some(format!("http://{host}:9000"))
    }

    fn backup(&self) -> Option<&dyn super::backup::BackupEngine> {
        Some(self)
    }

    fn tenancy(&self) -> Option<&dyn Tenancy> {
        Some(self)
    }

    fn object_store(&self, host_port: u16, params: &Parameters) -> Option<S3Endpoint> {
        Some(admin_endpoint(host_port, params))
    }
}
