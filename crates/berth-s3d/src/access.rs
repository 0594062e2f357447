//! Authentication (which secret verifies a signature) and authorization (what the signer may do)
//! through s3s' hooks. The admin key may do anything; a tenant key may work on objects of the
//! buckets its file lists, list those buckets, and nothing else: no bucket creation or deletion,
//! no other bucket, no copy from another bucket. Denials are S3 `AccessDenied` (403).
//!
//! Object keys reach the filesystem as paths (s3s-fs stores `bucket/key` under its root and
//! resolves `..` inside that root), so a key with a `.` or `..` segment could name another
//! bucket's object: such keys are refused for everyone, before any operation runs.

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::{CopyObjectInput, CopySource, DeleteObjectsInput, UploadPartCopyInput};
use s3s::path::S3Path;
use s3s::{S3Request, S3Result, s3_error};

use crate::keys::{KeyStore, Principal};

/// Operations a tenant key may call (on its own buckets). Everything else, including bucket
/// creation and deletion and every bucket setting, is the admin's.
const TENANT_OPERATIONS: &[&str] = &[
    "ListBuckets",
    "HeadBucket",
    "GetBucketLocation",
    "ListObjects",
    "ListObjectsV2",
    "ListMultipartUploads",
    "GetObject",
    "HeadObject",
    "PutObject",
    "DeleteObject",
    "DeleteObjects",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListParts",
];

/// Both hooks in one: the key store decides who signed, the rules below what they may do.
#[derive(Clone)]
pub struct Guard {
    keys: Arc<KeyStore>,
}

impl Guard {
    pub fn new(keys: Arc<KeyStore>) -> Self {
        Self { keys }
    }

    fn principal(&self, access_key: Option<&str>) -> S3Result<Principal> {
        let access_key =
            access_key.ok_or_else(|| s3_error!(AccessDenied, "a signed request is required"))?;
        // Known at authentication, but the file may have been removed since: then it is gone.
        self.keys
            .principal(access_key)
            .ok_or_else(|| s3_error!(AccessDenied, "the access key is no longer valid"))
    }

    /// The source of a copy is a second object the signer must be allowed to read.
    fn check_copy_source(&self, access_key: Option<&str>, source: &CopySource) -> S3Result<()> {
        let principal = self.principal(access_key)?;
        let CopySource::Bucket { bucket, key, .. } = source else {
            return Err(s3_error!(NotImplemented, "copy sources must be bucket/key"));
        };
        authorize(&principal, "GetObject", &S3Path::object(bucket, key))
    }
}

#[async_trait::async_trait]
impl S3Auth for Guard {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.keys.lookup(access_key) {
            Some((_, secret)) => Ok(SecretKey::from(secret)),
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }
}

#[async_trait::async_trait]
impl S3Access for Guard {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let principal = self.principal(cx.credentials().map(|c| c.access_key.as_str()))?;
        authorize(&principal, cx.s3_op().name(), cx.s3_path())
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let access_key = req.credentials.as_ref().map(|c| c.access_key.as_str());
        self.check_copy_source(access_key, &req.input.copy_source)
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        let access_key = req.credentials.as_ref().map(|c| c.access_key.as_str());
        self.check_copy_source(access_key, &req.input.copy_source)
    }

    /// The keys of a bulk delete come in the body, unseen by `check`.
    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        req.input
            .delete
            .objects
            .iter()
            .try_for_each(|o| check_key(&o.key))
    }
}

/// May `principal` call `operation` on `path`?
pub fn authorize(principal: &Principal, operation: &str, path: &S3Path) -> S3Result<()> {
    if let Some(key) = path.get_object_key() {
        check_key(key)?;
    }
    let Principal::Tenant(tenant) = principal else {
        return Ok(());
    };
    if !TENANT_OPERATIONS.contains(&operation) {
        return Err(s3_error!(
            AccessDenied,
            "{operation} needs the admin key, not a project key"
        ));
    }
    match path.get_bucket_name() {
        None if operation == "ListBuckets" => Ok(()),
        None => Err(s3_error!(AccessDenied, "{operation} needs a bucket")),
        Some(bucket) if tenant.buckets.contains(bucket) => Ok(()),
        Some(_) => Err(s3_error!(
            AccessDenied,
            "this key has no access to that bucket"
        )),
    }
}

/// Refuses keys whose `/`-separated segments include `.` or `..`, or that start with `/`.
fn check_key(key: &str) -> S3Result<()> {
    if key.starts_with('/') || key.split('/').any(|s| s == "." || s == "..") {
        return Err(s3_error!(
            AccessDenied,
            "object keys may not start with '/' or contain '.' or '..' segments"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::S3ErrorCode;

    fn tenant(buckets: &[&str]) -> Principal {
        let dir = tempfile::tempdir().unwrap();
        let text = serde_json::json!({
            "access_key": "tenant1",
            "secret_key": "secret-one",
            "buckets": buckets,
        });
        std::fs::write(dir.path().join("tenant1.json"), text.to_string()).unwrap();
        let store = KeyStore::new(
            crate::keys::KeyPair {
                access_key: "admin".into(),
                secret_key: "admin-secret".into(),
            },
            dir.path().to_path_buf(),
        );
        store.principal("tenant1").unwrap()
    }

    fn denied(result: S3Result<()>) -> bool {
        matches!(result, Err(e) if *e.code() == S3ErrorCode::AccessDenied)
    }

    #[test]
    fn tenant_works_inside_its_buckets_only() {
        let t = tenant(&["own-bucket"]);
        let own = S3Path::object("own-bucket", "a/b.txt");
        let other = S3Path::object("other-bucket", "a/b.txt");
        for op in [
            "GetObject",
            "PutObject",
            "DeleteObject",
            "UploadPart",
            "HeadObject",
        ] {
            assert!(authorize(&t, op, &own).is_ok(), "{op}");
            assert!(denied(authorize(&t, op, &other)), "{op}");
        }
        assert!(authorize(&t, "ListObjectsV2", &S3Path::bucket("own-bucket")).is_ok());
        assert!(denied(authorize(
            &t,
            "ListObjectsV2",
            &S3Path::bucket("other-bucket")
        )));
        assert!(authorize(&t, "ListBuckets", &S3Path::root()).is_ok());
    }

    #[test]
    fn tenant_cannot_create_delete_or_configure_buckets() {
        let t = tenant(&["own-bucket"]);
        for op in [
            "CreateBucket",
            "DeleteBucket",
            "PutBucketPolicy",
            "PutBucketVersioning",
        ] {
            assert!(
                denied(authorize(&t, op, &S3Path::bucket("own-bucket"))),
                "{op}"
            );
            assert!(
                denied(authorize(&t, op, &S3Path::bucket("new-bucket"))),
                "{op}"
            );
        }
    }

    #[test]
    fn admin_may_do_anything_with_safe_keys() {
        for op in ["CreateBucket", "DeleteBucket", "GetObject", "ListBuckets"] {
            assert!(authorize(&Principal::Admin, op, &S3Path::bucket("any-bucket")).is_ok());
        }
    }

    #[test]
    fn dot_segments_are_refused_for_everyone() {
        let t = tenant(&["own-bucket"]);
        for key in [
            "../other-bucket/x",
            "a/../../other-bucket/x",
            "./x",
            "a/./b",
            "/abs",
            "..",
        ] {
            let path = S3Path::object("own-bucket", key);
            assert!(denied(authorize(&t, "GetObject", &path)), "{key}");
            assert!(
                denied(authorize(&Principal::Admin, "GetObject", &path)),
                "{key}"
            );
        }
        for key in ["a..b", ".hidden", "dir/.x", "...", "a/b/"] {
            let path = S3Path::object("own-bucket", key);
            assert!(authorize(&t, "GetObject", &path).is_ok(), "{key}");
        }
    }
}
