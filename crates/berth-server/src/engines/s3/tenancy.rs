//! A project environment's share of an S3 service: a bucket named like the tenant
//! (`web-shop-production`, a DNS label) and, on Berth's image, an access key of its own that
//! may use only that bucket (a key file in `/data/keys.d`, read by berth-s3d on the next
//! request). On other images every tenant gets the admin key: the bucket is its own by
//! convention only, and the service view says so.

use std::collections::HashSet;

use async_trait::async_trait;
use berth_core::Parameters;
use berth_core::names::NameStyle;

use super::super::tenancy::{Address, Allocation, Credentials, ServiceAccess, Tenancy};
use super::{REGION, S3, admin_client, is_own_image, param};
use crate::docker::ContainerFile;
use crate::s3client::{S3Client, S3Endpoint};

const KEYS_DIR: &str = "/data/keys.d";

fn key_file(access_key: &str) -> Result<String, String> {
    // Tenant names are DNS labels; anything else must never become a path.
    if access_key.is_empty()
        || !access_key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "refusing access key {access_key:?}: not a tenant name"
        ));
    }
    Ok(format!("{KEYS_DIR}/{access_key}.json"))
}

/// The keys a tenant's application uses: its own on Berth's image, else the admin's.
fn tenant_keys(params: &Parameters, tenant: &Credentials) -> (String, String) {
    if is_own_image(params) {
        (tenant.username.clone(), tenant.password.clone())
    } else {
        (
            param(params, "access_key").to_string(),
            param(params, "secret_key").to_string(),
        )
    }
}

#[async_trait]
impl Tenancy for S3 {
    fn allocation(&self) -> Allocation {
        Allocation::Named
    }

    fn name_style(&self) -> NameStyle {
        NameStyle::DnsLabel
    }

    /// Creates the bucket (kept if it exists: it is this tenant's, recorded before) and writes
    /// the tenant's key file.
    async fn provision(
        &self,
        service: &ServiceAccess<'_>,
        tenant: &Credentials,
    ) -> Result<(), String> {
        let admin = admin_client(service.host_port, service.params);
        admin
            .create_bucket(&tenant.resource_name)
            .await
            .map_err(|e| format!("creating bucket {}: {e}", tenant.resource_name))?;
        if !is_own_image(service.params) {
            return Ok(());
        }
        let contents = serde_json::to_vec(&serde_json::json!({
            "access_key": tenant.username,
            "secret_key": tenant.password,
            "buckets": [tenant.resource_name],
        }))
        .map_err(|e| e.to_string())?;
        // keys.d is 0700 and owned by the server's user: 0644 shows the file to it alone.
        service
            .write_files(&[ContainerFile {
                path: key_file(&tenant.username)?,
                contents,
                mode: 0o644,
            }])
            .await
            .map_err(|e| format!("writing the key of {}: {e}", tenant.username))
    }

    /// The bucket exists and the tenant's key can reach it.
    async fn is_provisioned(
        &self,
        service: &ServiceAccess<'_>,
        tenant: &Credentials,
    ) -> Result<bool, String> {
        let (access_key, secret_key) = tenant_keys(service.params, tenant);
        let client = S3Client::new(S3Endpoint {
            url: format!("http://127.0.0.1:{}", service.host_port),
            region: REGION.into(),
            access_key,
            secret_key,
        });
        match client.bucket_exists(&tenant.resource_name).await {
            Ok(exists) => Ok(exists),
            // The key is gone or no longer covers the bucket.
            Err(e) if matches!(e.status(), Some(401 | 403)) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Removes the tenant's key file: its next request is refused; the bucket and its objects
    /// stay. Nothing to remove on images without per-project keys (tenants use the admin key).
    async fn revoke(
        &self,
        service: &ServiceAccess<'_>,
        tenant: &Credentials,
    ) -> Result<(), String> {
        if !is_own_image(service.params) {
            tracing::warn!(
                tenant = %tenant.username,
                "this S3 image has no per-project keys; the tenant's bucket stays reachable with the admin key"
            );
            return Ok(());
        }
        let path = key_file(&tenant.username)?;
        service
            .exec(&["rm", "-f", "--", &path], None, None)
            .await?
            .success()
            .map(|_| ())
            .map_err(|e| format!("removing {path}: {e}"))
    }

    /// Buckets that exist: never given to a tenant unless recorded for it.
    async fn names_in_use(&self, service: &ServiceAccess<'_>) -> Result<HashSet<String>, String> {
        let admin = admin_client(service.host_port, service.params);
        Ok(admin
            .list_buckets()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect())
    }

    fn env(
        &self,
        params: &Parameters,
        address: &Address,
        tenant: &Credentials,
    ) -> Vec<(String, String)> {
        let (access_key, secret_key) = tenant_keys(params, tenant);
        let endpoint = format!("http://{}:{}", address.host, address.port);
        [
            ("S3_ENDPOINT", endpoint.clone()),
            ("S3_HOST", address.host.clone()),
            ("S3_PORT", address.port.to_string()),
            ("S3_BUCKET", tenant.resource_name.clone()),
            ("S3_REGION", REGION.to_string()),
            ("S3_ACCESS_KEY", access_key.clone()),
            ("S3_SECRET_KEY", secret_key.clone()),
            ("S3_FORCE_PATH_STYLE", "true".to_string()),
            ("AWS_ACCESS_KEY_ID", access_key),
            ("AWS_SECRET_ACCESS_KEY", secret_key),
            ("AWS_DEFAULT_REGION", REGION.to_string()),
            ("AWS_ENDPOINT_URL", endpoint),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn admin_credentials(&self, params: &Parameters) -> Credentials {
        Credentials {
            resource_name: String::new(),
            resource_number: None,
            username: param(params, "access_key").to_string(),
            password: param(params, "secret_key").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tenant_names_become_key_paths() {
        assert_eq!(
            key_file("web-shop-production").unwrap(),
            "/data/keys.d/web-shop-production.json"
        );
        for bad in ["", "../x", "a/b", "A", "a.json", "a b"] {
            assert!(key_file(bad).is_err(), "{bad:?}");
        }
    }
}
