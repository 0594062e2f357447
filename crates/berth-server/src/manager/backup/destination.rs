//! Backup destinations (Temps' "S3 sources"): any S3-compatible endpoint, or a Berth-managed
//! S3 service named by id, whose address and admin keys are read from the service each time
//! (so they follow its updates). What reaches S3 is validated here, before anything is stored.

use std::sync::Arc;

use berth_core::backup::layout::normalize_prefix;
use bytes::Bytes;
use futures_util::StreamExt;

use super::super::{ManagerError, ManagerResult, ServiceManager};
use crate::s3client::{S3Client, S3Endpoint};
use crate::store::{Destination, DestinationFields};

/// A destination resolved to a client: where its backups go.
pub struct Target {
    pub client: S3Client,
    pub bucket: String,
    /// The destination's prefix, normalised: no empty segments, no leading or trailing `/`.
    pub prefix: String,
    /// `s3://bucket/prefix` for messages.
    pub location: String,
}

/// What a user asks for; `None` fields keep the stored value on an edit.
#[derive(Debug, Clone, Default)]
pub struct DestinationRequest {
    pub name: Option<String>,
    pub bucket_name: Option<String>,
    pub bucket_path: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub force_path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_key: Option<String>,
    pub service_id: Option<i64>,
}

impl ServiceManager {
    /// The buckets of Berth-managed S3 service `service_id` that destinations keep backups
    /// in: a backup of that service leaves them out and a restore never writes them.
    pub(super) async fn destination_buckets_in(
        &self,
        service_id: i64,
    ) -> ManagerResult<Vec<String>> {
        Ok(self
            .store
            .list_destinations()
            .await?
            .into_iter()
            .filter(|d| d.service_id == Some(service_id))
            .map(|d| d.bucket_name)
            .collect())
    }

    pub async fn create_destination(
        self: &Arc<Self>,
        request: DestinationRequest,
    ) -> ManagerResult<Destination> {
        let fields = self.destination_fields(None, request).await?;
        if self
            .store
            .destination_by_name(&fields.name)
            .await?
            .is_some()
        {
            return Err(ManagerError::Conflict(format!(
                "a backup destination named {:?} exists already",
                fields.name
            )));
        }
        let created = self.store.insert_destination(&fields).await?;
        if let Some(service_id) = created.service_id {
            // Berth owns that server: the bucket can be made for the user.
            let target = self.destination_target(&created).await?;
            if let Err(e) = target.client.create_bucket(&target.bucket).await {
                self.store.delete_destination(created.id).await?;
                return Err(ManagerError::Unavailable(format!(
                    "creating bucket {:?} in service {service_id}: {e}",
                    target.bucket
                )));
            }
        }
        Ok(created)
    }

    pub async fn update_destination(
        self: &Arc<Self>,
        id: i64,
        request: DestinationRequest,
    ) -> ManagerResult<Destination> {
        let current = self.destination(id).await?;
        let fields = self.destination_fields(Some(current), request).await?;
        if let Some(other) = self.store.destination_by_name(&fields.name).await?
            && other.id != id
        {
            return Err(ManagerError::Conflict(format!(
                "a backup destination named {:?} exists already",
                fields.name
            )));
        }
        self.store
            .update_destination(id, &fields)
            .await?
            .ok_or_else(|| not_found(id))
    }

    pub async fn delete_destination(&self, id: i64) -> ManagerResult<()> {
        self.destination(id).await?;
        let recorded = self.store.count_backups_in_destination(id).await?;
        if recorded > 0 {
            return Err(ManagerError::Conflict(format!(
                "backup destination {id} holds {recorded} recorded backup(s); delete them first \
                 (their records say where the data is)"
            )));
        }
        let schedules = self.store.count_schedules_in_destination(id).await?;
        if schedules > 0 {
            return Err(ManagerError::Conflict(format!(
                "backup destination {id} is used by {schedules} backup schedule(s); delete them first"
            )));
        }
        self.store.delete_destination(id).await?;
        Ok(())
    }

    pub async fn destination(&self, id: i64) -> ManagerResult<Destination> {
        self.store
            .destination(id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// A client for the destination, with its bucket and prefix.
    pub async fn destination_target(&self, destination: &Destination) -> ManagerResult<Target> {
        let client = match destination.service_id {
            Some(service_id) => {
                let service = self.service(service_id).await?;
                let engine = Self::engine_for(&service)?;
                let port = Self::host_port(engine, &service)?;
                let endpoint = engine
                    .object_store(port, &service.all_parameters())
                    .ok_or_else(|| not_object_store(&service.name))?;
                S3Client::new(endpoint)
            }
            None => {
                let endpoint = S3Endpoint {
                    url: destination
                        .endpoint
                        .clone()
                        .unwrap_or_else(|| aws_endpoint(&destination.region)),
                    region: destination.region.clone(),
                    access_key: destination.access_key_id.clone(),
                    secret_key: destination.secret_key.clone(),
                };
                let client = S3Client::new(endpoint);
                if destination.force_path_style {
                    client
                } else {
                    client.virtual_hosted()
                }
            }
        };
        let prefix = normalize_prefix(&destination.bucket_path);
        Ok(Target {
            client,
            location: format!("s3://{}/{}", destination.bucket_name, prefix),
            bucket: destination.bucket_name.clone(),
            prefix,
        })
    }

    /// `POST .../test`: writes a probe object, reads it back, compares, deletes it. Each step
    /// that fails says which, so a user knows whether the keys, the bucket or the network is
    /// wrong.
    pub async fn test_destination(&self, id: i64) -> ManagerResult<String> {
        let destination = self.destination(id).await?;
        let target = self.destination_target(&destination).await?;
        let key = match target.prefix.as_str() {
            "" => format!(".berth-probe-{}", random_suffix()),
            prefix => format!("{prefix}/.berth-probe-{}", random_suffix()),
        };
        let body = format!("berth destination probe {key}");
        let failed = |step: &str, e: &dyn std::fmt::Display| {
            ManagerError::BadRequest(format!(
                "destination {:?} ({}): {step} failed: {e}",
                destination.name, target.location
            ))
        };
        // Some servers (s3s-fs) make a missing bucket on the first write: ask first.
        match target.client.bucket_exists(&target.bucket).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(failed(
                    "finding the bucket",
                    &format!("bucket {:?} does not exist", target.bucket),
                ));
            }
            Err(e) => return Err(failed("finding the bucket", &e)),
        }
        let stream = futures_util::stream::iter([Ok::<_, String>(Bytes::from(body.clone()))]);
        target
            .client
            .put_stream(&target.bucket, &key, "text/plain", stream, u64::MAX)
            .await
            .map_err(|e| failed("writing a probe object", &e))?;
        let read = async {
            let response = target
                .client
                .get_object(&target.bucket, &key, None)
                .await?
                .ok_or_else(|| {
                    crate::s3client::S3Error::Other("the object written is not there".into())
                })?;
            let mut body = response.bytes_stream();
            let mut read = Vec::new();
            while let Some(chunk) = body.next().await {
                let chunk =
                    chunk.map_err(|e| crate::s3client::S3Error::Unreachable(e.to_string()))?;
                read.extend_from_slice(&chunk);
            }
            Ok::<_, crate::s3client::S3Error>(read)
        }
        .await;
        let deleted = target.client.delete_object(&target.bucket, &key).await;
        let read = read.map_err(|e| failed("reading the probe object back", &e))?;
        if read != body.as_bytes() {
            return Err(failed(
                "reading the probe object back",
                &"the bytes read differ from those written",
            ));
        }
        deleted.map_err(|e| failed("deleting the probe object", &e))?;
        Ok(format!(
            "wrote, read back and deleted a probe object in {}",
            target.location
        ))
    }

    /// Validated fields from a request (a create when `current` is `None`).
    async fn destination_fields(
        &self,
        current: Option<Destination>,
        request: DestinationRequest,
    ) -> ManagerResult<DestinationFields> {
        let pick = |asked: Option<String>, stored: Option<&String>| {
            asked.or_else(|| stored.cloned()).unwrap_or_default()
        };
        let service_id = request
            .service_id
            .or(current.as_ref().and_then(|c| c.service_id));
        let name = pick(request.name, current.as_ref().map(|c| &c.name));
        validate_name(&name)?;
        let bucket_name = pick(
            request.bucket_name,
            current.as_ref().map(|c| &c.bucket_name),
        );
        validate_bucket(&bucket_name)?;
        let bucket_path = pick(
            request.bucket_path,
            current.as_ref().map(|c| &c.bucket_path),
        );
        validate_prefix(&bucket_path)?;
        let mut fields = DestinationFields {
            name,
            bucket_name,
            bucket_path,
            region: pick(request.region, current.as_ref().map(|c| &c.region)),
            endpoint: request
                .endpoint
                .or(current.as_ref().and_then(|c| c.endpoint.clone()))
                .filter(|e| !e.is_empty()),
            force_path_style: request
                .force_path_style
                .or(current.as_ref().map(|c| c.force_path_style))
                .unwrap_or(true),
            access_key_id: pick(
                request.access_key_id,
                current.as_ref().map(|c| &c.access_key_id),
            ),
            secret_key: pick(request.secret_key, current.as_ref().map(|c| &c.secret_key)),
            service_id,
        };
        match service_id {
            Some(id) => {
                // A Berth-managed S3 service: address and keys come from the service.
                let service = self.service(id).await?;
                let engine = Self::engine_for(&service)?;
                let port = Self::host_port(engine, &service)?;
                let endpoint = engine
                    .object_store(port, &service.all_parameters())
                    .ok_or_else(|| not_object_store(&service.name))?;
                fields.endpoint = None;
                fields.force_path_style = true;
                fields.access_key_id = String::new();
                fields.secret_key = String::new();
                if fields.region.is_empty() {
                    fields.region = endpoint.region;
                }
            }
            None => {
                if fields.access_key_id.is_empty() || fields.secret_key.is_empty() {
                    return Err(ManagerError::BadRequest(
                        "access_key_id and secret_key are required (or service_id of a \
                         Berth-managed S3 service)"
                            .into(),
                    ));
                }
                if let Some(endpoint) = &fields.endpoint {
                    validate_endpoint(endpoint)?;
                }
            }
        }
        if fields.region.is_empty() {
            fields.region = "us-east-1".into();
        }
        validate_region(&fields.region)?;
        Ok(fields)
    }
}

fn not_found(id: i64) -> ManagerError {
    ManagerError::NotFound(format!("backup destination {id} does not exist"))
}

fn not_object_store(name: &str) -> ManagerError {
    ManagerError::BadRequest(format!(
        "service {name:?} does not store objects over S3; a destination needs an S3 service"
    ))
}

fn aws_endpoint(region: &str) -> String {
    format!("https://s3.{region}.amazonaws.com")
}

fn random_suffix() -> String {
    let bytes: [u8; 8] = rand::random();
    hex::encode(bytes)
}

fn validate_name(name: &str) -> ManagerResult<()> {
    if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ManagerError::BadRequest(
            "name must be 1-100 printable characters".into(),
        ));
    }
    Ok(())
}

/// S3's bucket rules (3-63 of `a-z0-9.-`, starting and ending with a letter or digit).
fn validate_bucket(bucket: &str) -> ManagerResult<()> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !bucket.contains("..");
    if !ok {
        return Err(ManagerError::BadRequest(format!(
            "bucket_name {bucket:?} is not a valid S3 bucket name (3-63 characters of a-z, 0-9, \
             '-' and '.', starting and ending with a letter or digit)"
        )));
    }
    Ok(())
}

fn validate_prefix(path: &str) -> ManagerResult<()> {
    let bad_segment = path
        .split('/')
        .any(|segment| segment == "." || segment == "..");
    if path.len() > 512 || bad_segment || path.chars().any(char::is_control) {
        return Err(ManagerError::BadRequest(format!(
            "bucket_path {path:?} must be at most 512 printable characters with no '.' or '..' \
             segments"
        )));
    }
    Ok(())
}

fn validate_region(region: &str) -> ManagerResult<()> {
    let ok = region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(ManagerError::BadRequest(format!(
            "region {region:?} must be letters, digits, '-' or '_'"
        )));
    }
    Ok(())
}

fn validate_endpoint(endpoint: &str) -> ManagerResult<()> {
    let parsed = url::Url::parse(endpoint).map_err(|e| {
        ManagerError::BadRequest(format!("endpoint {endpoint:?} is not a URL: {e}"))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ManagerError::BadRequest(format!(
            "endpoint {endpoint:?} must be an http:// or https:// URL with a host"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ManagerError::BadRequest(
            "endpoint must not carry credentials; use access_key_id and secret_key".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["abc", "berth-backups", "my.bucket.1"] {
            validate_bucket(ok).unwrap();
        }
        for bad in [
            "ab",
            "Upper",
            "-lead",
            "trail-",
            "a..b",
            "has_underscore",
            &"x".repeat(64),
        ] {
            assert!(validate_bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_with_dot_segments_are_refused() {
        validate_prefix("daily/db").unwrap();
        for bad in ["../up", "a/./b", "a/..", "nul\0"] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn endpoints_must_be_http_urls_without_credentials() {
        validate_endpoint("http://127.0.0.1:9000").unwrap();
        validate_endpoint("https://s3.example.test").unwrap();
        for bad in ["ftp://x", "not a url", "http://user:pw@host"] {
            assert!(validate_endpoint(bad).is_err(), "{bad}");
        }
    }
}
