//! Errors of service operations. The API maps each variant to one HTTP status; the CLI shows
//! the message as is, so messages are written for users.

use thiserror::Error;

use crate::docker::DockerError;
use crate::image_builder::ImageError;
use crate::store::StoreError;

#[derive(Debug, Error)]
pub enum ManagerError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    /// The service did not come up with the requested image or parameters (it exited or never
    /// accepted connections); what was changed has been undone.
    #[error("{0}")]
    NotStarted(String),
    /// The service's volume is gone or holds other data; nothing was recreated.
    #[error("{0}")]
    DataMissing(String),
    /// A body larger than allowed (a blob over `blob_max_bytes`); nothing was stored.
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Internal(String),
}

pub type ManagerResult<T> = Result<T, ManagerError>;

impl ManagerError {
    /// The same kind of error with a new message (after redaction or adding context).
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            ManagerError::BadRequest(m) => ManagerError::BadRequest(f(m)),
            ManagerError::NotFound(m) => ManagerError::NotFound(f(m)),
            ManagerError::Conflict(m) => ManagerError::Conflict(f(m)),
            ManagerError::Unavailable(m) => ManagerError::Unavailable(f(m)),
            ManagerError::NotStarted(m) => ManagerError::NotStarted(f(m)),
            ManagerError::DataMissing(m) => ManagerError::DataMissing(f(m)),
            ManagerError::TooLarge(m) => ManagerError::TooLarge(f(m)),
            ManagerError::Internal(m) => ManagerError::Internal(f(m)),
        }
    }
}

impl From<StoreError> for ManagerError {
    fn from(e: StoreError) -> Self {
        ManagerError::Internal(e.to_string())
    }
}

impl From<DockerError> for ManagerError {
    fn from(e: DockerError) -> Self {
        match e {
            DockerError::Unavailable(msg) => ManagerError::Unavailable(format!(
                "Docker engine is unreachable ({msg}); check that dockerd is running and DOCKER_HOST is right"
            )),
            DockerError::NotFound(msg) => ManagerError::NotFound(msg),
            DockerError::Conflict(msg) => ManagerError::Conflict(msg),
            DockerError::BadRequest(msg) => ManagerError::BadRequest(msg),
            DockerError::Other(msg) => ManagerError::Internal(msg),
        }
    }
}

impl From<ImageError> for ManagerError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Docker(d) => d.into(),
            ImageError::Unavailable(..) => ManagerError::BadRequest(e.to_string()),
            ImageError::Base(msg) => ManagerError::Internal(msg),
        }
    }
}

impl From<berth_core::ParamError> for ManagerError {
    fn from(e: berth_core::ParamError) -> Self {
        ManagerError::BadRequest(e.to_string())
    }
}
