//! MongoDB: the seed's parameters, the official image's contract (root user from
//! `MONGO_INITDB_ROOT_USERNAME`, password from a file), and per-project databases with a
//! `readWrite` user each. Berth's default image is a MongoDB-compatible stand-in (SecantusDB,
//! see `images/mongodb`): the service view says so. The pieces: [`image`] (recipe and container
//! contract), [`names`] (what the server accepts), [`admin`] (operations as the server's root,
//! through the official driver), `tenancy` (linking), `backup` (dumps and restores through the
//! driver).

use async_trait::async_trait;
use berth_core::{ParamKind, ParamSpec, Parameters};

use super::{ContainerFile, Engine, ImageRecipe, Tenancy};

pub mod admin;
mod backup;
pub mod image;
pub mod names;
mod tenancy;

pub struct MongoDb;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "port",
        doc: "Host port on 127.0.0.1; auto-assigned from 27017",
        kind: ParamKind::Port { base: 27017 },
        default: None,
        editable: true,
    },
    ParamSpec {
        name: "docker_image",
        doc: "Image honouring the official mongo contract (MONGO_INITDB_ROOT_USERNAME/_PASSWORD_FILE)",
        kind: ParamKind::Image,
        default: None,
        editable: true,
    },
    ParamSpec {
        name: "database",
        doc: "The admin's authentication database",
        kind: ParamKind::Choice(&["admin"]),
        default: Some("admin"),
        editable: false,
    },
    ParamSpec {
        name: "username",
        doc: "Root user",
        kind: ParamKind::Choice(&["admin"]),
        default: Some("admin"),
        editable: false,
    },
    ParamSpec {
        name: "password",
        doc: "Root password (generated)",
        kind: ParamKind::Secret { length: 32 },
        default: None,
        editable: false,
    },
];

pub(super) fn param<'a>(params: &'a Parameters, name: &str) -> &'a str {
    params.get(name).map(String::as_str).unwrap_or_default()
}

#[async_trait]
impl Engine for MongoDb {
    fn service_type(&self) -> &'static str {
        "mongodb"
    }

    fn display_name(&self) -> &'static str {
        "MongoDB"
    }

    fn description(&self) -> &'static str {
        "Document database (one database and readWrite user per linked project environment)"
    }

    fn color(&self) -> &'static str {
        "#47A248"
    }

    fn icon_svg(&self) -> String {
        super::badge_svg(self.color(), "M")
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn image_recipe(&self) -> Option<ImageRecipe> {
        Some(image::RECIPE)
    }

    fn image_notice(&self, image_ref: &str) -> Option<String> {
        let repository = image_ref
            .split_once(':')
            .map(|(r, _)| r)
            .unwrap_or(image_ref);
        (repository == image::RECIPE.repository).then(|| {
            "berth/mongodb is a test stand-in (SecantusDB, which speaks MongoDB's wire protocol), not MongoDB: \
             not for production data; bulkWrite and cross-database renameCollection are not confined to a \
             project's database. Use an image with a real mongod (`docker_image`) for production"
                .to_string()
        })
    }

    /// MongoDB moves its data files forward one major at a time, each step after setting
    /// `featureCompatibilityVersion`; Berth does not run those steps, so it says so.
    fn check_major_change(&self, from: u32, to: u32) -> Result<(), String> {
        if from == to {
            return Ok(());
        }
        Err(format!(
            "MongoDB {from} data cannot be opened by MongoDB {to} after a plain image swap: \
             majors are upgraded one at a time, each after setting featureCompatibilityVersion, \
             and Berth does not run those steps. Back the service up and restore it into a new \
             service of the new version instead (`berth backup restore ID --into NAME`)"
        ))
    }

    fn signature(&self) -> Option<super::recognize::Signature> {
        Some(super::recognize::Signature {
            executables: &["mongod", "secantusd"],
            env_names: &[
                "MONGO_VERSION",
                "MONGO_MAJOR",
                "MONGO_INITDB_ROOT_USERNAME",
                "SECANTUSDB_VERSION",
            ],
            image_words: &["mongo", "secantus"],
        })
    }

    fn ports(&self) -> &'static [(u16, &'static str)] {
        &[(image::PORT, "port")]
    }

    fn data_path(&self) -> &'static str {
        image::DATA_PATH
    }

    fn container_env(&self, params: &Parameters) -> Vec<String> {
        image::container_env(param(params, "username"))
    }

    fn secret_files(&self, params: &Parameters) -> Vec<ContainerFile> {
        image::secret_files(param(params, "password"))
    }

    fn container_cmd(&self, _params: &Parameters) -> Vec<String> {
        Vec::new()
    }

    async fn probe(&self, host_port: u16, params: &Parameters) -> Result<(), String> {
        admin::probe(
            host_port,
            param(params, "username"),
            param(params, "password"),
        )
        .await
        .map_err(|e| e.to_string())
    }

    fn connection_info(&self, host: &str, params: &Parameters) -> Option<String> {
        Some(format!(
            "mongodb://{}:***@{host}:{}/?authSource=admin",
            param(params, "username"),
            image::PORT
        ))
    }

    fn backup(&self) -> Option<&dyn super::backup::BackupEngine> {
        Some(self)
    }

    fn tenancy(&self) -> Option<&dyn Tenancy> {
        Some(self)
    }
}
