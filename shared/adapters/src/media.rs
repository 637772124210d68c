//! Where recordings' media is: files in a folder (teleapi-local's workers write them), or
//! objects in the stack's S3 bucket (the media workers put them), handed out as short-lived
//! presigned URLs.
//!
//! S3 is reached with `aws-sigv4` (already in the tree through the AWS SDK) and `reqwest`,
//! rather than `aws-sdk-s3`: the functions and workers need three requests of it (a presigned
//! GET, a DELETE, a PUT), and the S3 SDK would add more compile time than the rest of the
//! dependencies together.

use std::path::{Path, PathBuf};
#[cfg(feature = "aws")]
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
#[cfg(feature = "aws")]
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
#[cfg(feature = "aws")]
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
#[cfg(feature = "aws")]
use aws_sigv4::sign::v4;

use teleapi_ports::{Media, MediaStore, StoreError, is_media_key};

/// The key refused, as a store error.
fn bad_key(key: &str) -> StoreError {
    StoreError::Failed(format!("{key:?} is not a media key"))
}

/// Media as files under one folder: `file://` locations inside it, nothing else. Every
/// account's files are in the one folder, named by their key's last segment (a recording's
/// sid is unique in the deployment).
#[derive(Debug, Clone)]
pub struct FileMedia {
    dir: PathBuf,
}

impl FileMedia {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a location names, if it is one of this folder's (no `..`, no other folder).
    fn path(&self, location: &str) -> Option<PathBuf> {
        let path = Path::new(location.strip_prefix("file://")?);
        let inside = path.parent()? == self.dir
            && path
                .file_name()?
                .to_str()?
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.');
        inside.then(|| path.to_owned())
    }
}

#[async_trait]
impl MediaStore for FileMedia {
    async fn fetch(&self, location: &str) -> Result<Option<Media>, StoreError> {
        let Some(path) = self.path(location) else {
            return Ok(None);
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(Media::Bytes(bytes))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(StoreError::Unavailable(format!(
                "{}: {err}",
                path.display()
            ))),
        }
    }

    async fn delete(&self, location: &str) -> Result<(), StoreError> {
        let Some(path) = self.path(location) else {
            return Ok(());
        };
        match tokio::fs::remove_file(&path).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Unavailable(
                format!("{}: {err}", path.display()),
            )),
            _ => Ok(()),
        }
    }

    async fn put(
        &self,
        key: &str,
        _content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, StoreError> {
        let name = key.rsplit('/').next().filter(|_| is_media_key(key));
        let Some(name) = name else {
            return Err(bad_key(key));
        };
        let path = self.dir.join(name);
        // Written beside, then renamed: a reader never sees half a file.
        let partial = self.dir.join(format!(".{name}.partial"));
        let failed =
            |err: std::io::Error| StoreError::Unavailable(format!("{}: {err}", path.display()));
        tokio::fs::write(&partial, bytes).await.map_err(failed)?;
        tokio::fs::rename(&partial, &path).await.map_err(failed)?;
        Ok(format!("file://{}", path.display()))
    }
}

/// How long a presigned media URL works.
#[cfg(feature = "aws")]
pub const PRESIGNED_FOR: Duration = Duration::from_secs(300);

/// Media as objects of one S3 bucket: `s3://{bucket}/{key}` locations of that bucket.
#[cfg(feature = "aws")]
#[derive(Clone)]
pub struct S3Media {
    bucket: String,
    region: String,
    /// `https://s3.{region}.amazonaws.com`, or the emulator's (path-style addressing).
    endpoint: String,
    credentials: SharedCredentialsProvider,
    http: reqwest::Client,
}

#[cfg(feature = "aws")]
impl S3Media {
    pub fn new(
        bucket: String,
        region: String,
        endpoint: Option<String>,
        credentials: SharedCredentialsProvider,
    ) -> Self {
        let endpoint = endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        Self {
            bucket,
            region,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            credentials,
            http: reqwest::Client::new(),
        }
    }

    /// The object's key, if `location` is in this bucket.
    fn key<'a>(&self, location: &'a str) -> Option<&'a str> {
        let rest = location.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/')?;
        (bucket == self.bucket && !key.is_empty()).then_some(key)
    }

    /// `s3://{bucket}/{key}`: where a worker puts the media of `key`.
    pub fn location(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// A URL that performs `method` on the object `key` for [`PRESIGNED_FOR`], without
    /// credentials (query-string SigV4).
    pub async fn presign(&self, method: &str, key: &str) -> Result<String, StoreError> {
        let encoded: Vec<String> = key
            .split('/')
            .map(|part| {
                percent_encoding::utf8_percent_encode(part, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            })
            .collect();
        let url = format!("{}/{}/{}", self.endpoint, self.bucket, encoded.join("/"));
        let failed = |e: &dyn std::fmt::Display| StoreError::Failed(format!("signing: {e}"));
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| StoreError::Unavailable(format!("credentials: {e}")))?;
        let identity = credentials.into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(PRESIGNED_FOR);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| failed(&e))?
            .into();
        let signable = SignableRequest::new(
            method,
            &url,
            std::iter::empty(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| failed(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| failed(&e))?
            .into_parts();
        let mut request = http::Request::builder()
            .method(method)
            .uri(&url)
            .body(())
            .map_err(|e| failed(&e))?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(request.uri().to_string())
    }
}

#[cfg(feature = "aws")]
#[async_trait]
impl MediaStore for S3Media {
    async fn fetch(&self, location: &str) -> Result<Option<Media>, StoreError> {
        match self.key(location) {
            Some(key) => self
                .presign("GET", key)
                .await
                .map(|url| Some(Media::Redirect(url))),
            None => Ok(None),
        }
    }

    async fn delete(&self, location: &str) -> Result<(), StoreError> {
        let Some(key) = self.key(location) else {
            return Ok(());
        };
        let url = self.presign("DELETE", key).await?;
        let response = self
            .http
            .delete(&url)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(format!("deleting {location}: {e}")))?;
        // S3 answers 204 whether or not the object was there.
        if response.status().is_success() {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "deleting {location}: HTTP {}",
                response.status()
            )))
        }
    }

    async fn put(
        &self,
        key: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, StoreError> {
        if !is_media_key(key) {
            return Err(bad_key(key));
        }
        let location = self.location(key);
        let url = self.presign("PUT", key).await?;
        let response = self
            .http
            .put(&url)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(format!("putting {location}: {e}")))?;
        if response.status().is_success() {
            Ok(location)
        } else {
            Err(StoreError::Unavailable(format!(
                "putting {location}: HTTP {}",
                response.status()
            )))
        }
    }
}
