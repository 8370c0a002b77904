//! The object store that holds uploads, opened the same way by the API (which writes and
//! serves them) and the transcriber (which reads them): the local filesystem, the embedded
//! default, or S3 (or anything that speaks it: MinIO, moto) when `s3.bucket` is set.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::signer::Signer;
use object_store::ObjectStore;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3 {
    /// Empty: the local filesystem is used instead.
    pub bucket: String,
    pub region: String,
    /// Empty for AWS itself; e.g. `http://127.0.0.1:9000` for a local S3-compatible server.
    pub endpoint: String,
    /// Empty: the usual AWS variables and instance credentials (`AWS_ACCESS_KEY_ID`, …).
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Allow a plain-http endpoint (local servers only).
    pub allow_http: bool,
    /// How long a presigned download URL stays valid.
    pub presign_secs: u64,
}

impl Default for S3 {
    fn default() -> Self {
        S3 {
            bucket: String::new(),
            region: "us-east-1".into(),
            endpoint: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            allow_http: false,
            presign_secs: 900,
        }
    }
}

/// The store, and on S3 what signs download URLs.
#[derive(Clone)]
pub struct Blobs {
    pub store: Arc<dyn ObjectStore>,
    signer: Option<(Arc<AmazonS3>, Duration)>,
}

impl Blobs {
    pub fn open(path: &Path, s3: &S3) -> anyhow::Result<Blobs> {
        if s3.bucket.is_empty() {
            std::fs::create_dir_all(path)?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(path)?;
            return Ok(Blobs {
                store: Arc::new(store),
                signer: None,
            });
        }
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&s3.bucket)
            .with_region(&s3.region)
            .with_allow_http(s3.allow_http);
        if !s3.endpoint.is_empty() {
            b = b.with_endpoint(&s3.endpoint);
        }
        if !s3.access_key_id.is_empty() {
            b = b
                .with_access_key_id(&s3.access_key_id)
                .with_secret_access_key(&s3.secret_access_key);
        }
        let s3_store = Arc::new(b.build()?);
        Ok(Blobs {
            store: s3_store.clone(),
            signer: Some((s3_store, Duration::from_secs(s3.presign_secs.max(1)))),
        })
    }

    /// A presigned GET URL for `key` when the store is S3; `None` on the local filesystem.
    pub async fn presigned_get(&self, key: &str) -> Option<object_store::Result<(String, u64)>> {
        let (signer, ttl) = self.signer.as_ref()?;
        let path = object_store::path::Path::from(key);
        Some(
            signer
                .signed_url(object_store::signer::Method::GET, &path, *ttl)
                .await
                .map(|url| (url.to_string(), ttl.as_secs())),
        )
    }
}
