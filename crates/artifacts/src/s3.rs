//! `s3://` downloads through object_store (signing, retries and endpoints are its job). An
//! interrupted `.part` is resumed with a ranged GET conditional on the object's ETag.

use object_store::aws::AmazonS3Builder;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, RetryConfig};

use crate::cache::{self, part_meta_path, part_path, PartMeta};
use crate::config::{S3Config, StoreConfig};
use crate::part::PartWriter;
use crate::source::S3Location;
use crate::transfer::{error_chain, stream_to_part, Downloaded, Job};
use crate::ArtifactError;

/// A client for `bucket` built from `config`; it carries the current trace context
/// (traceparent) on its requests.
pub(crate) fn client(
    config: &StoreConfig,
    bucket: &str,
) -> Result<object_store::aws::AmazonS3, ArtifactError> {
    let s3: &S3Config = &config.s3;
    let mut headers = ::http::HeaderMap::new();
    inferd_otel::inject_current_into_headers(&mut headers);
    let options = ClientOptions::new()
        .with_default_headers(headers)
        .with_connect_timeout(config.connect_timeout)
        .with_allow_http(s3.allow_http)
        // The body of a model can take minutes; silence is caught by the read timeout below.
        .with_timeout_disabled();
    let retry = RetryConfig {
        max_retries: 3,
        ..RetryConfig::default()
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_client_options(options)
        .with_retry(retry)
        .with_allow_http(s3.allow_http)
        .with_skip_signature(s3.skip_signature);
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &s3.region {
        builder = builder.with_region(region);
    }
    if let Some(id) = &s3.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &s3.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = &s3.session_token {
        builder = builder.with_token(token);
    }
    builder
        .build()
        .map_err(|e| ArtifactError::Config(format!("S3 client for bucket `{bucket}`: {e}")))
}

pub(crate) async fn download(
    config: &StoreConfig,
    location: &S3Location,
    job: &Job<'_>,
) -> Result<Downloaded, ArtifactError> {
    let store = client(config, &location.bucket)?;
    let path = object_store::path::Path::parse(&location.key).map_err(|e| {
        ArtifactError::InvalidSource {
            input: job.source_url.to_owned(),
            reason: e.to_string(),
        }
    })?;
    let part = part_path(job.dest);
    let meta_path = part_meta_path(job.dest);
    let mut resume = match (
        tokio::fs::metadata(&part).await,
        cache::read_json::<PartMeta>(&meta_path).await,
    ) {
        (Ok(m), Some(meta)) if m.len() > 0 => Some((m.len(), meta)),
        _ => None,
    };
    loop {
        let mut options = GetOptions::default();
        if let Some((offset, meta)) = &resume {
            options.range = Some(GetRange::Offset(*offset));
            options.if_match = Some(meta.validator.clone());
        }
        let result = match store.get_opts(&path, options).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(ArtifactError::NotFound {
                    source_url: job.source_url.to_owned(),
                    detail: String::new(),
                })
            }
            Err(object_store::Error::Precondition { .. }) if resume.is_some() => {
                // The object changed since the part was written.
                cache::remove_if_exists(&part).await?;
                cache::remove_if_exists(&meta_path).await?;
                resume = None;
                continue;
            }
            Err(e) => {
                return Err(ArtifactError::Transfer {
                    url: job.source_url.to_owned(),
                    message: error_chain(&e),
                })
            }
        };
        let total = result.meta.size;
        let etag = result.meta.e_tag.clone();
        let writer = match &resume {
            Some((offset, _)) if result.range.start == *offset => {
                let writer = PartWriter::resume(&part).await?;
                if writer.written() != *offset {
                    drop(writer);
                    cache::remove_if_exists(&part).await?;
                    resume = None;
                    continue;
                }
                writer
            }
            _ => {
                match &etag {
                    Some(validator) => {
                        let meta = PartMeta {
                            validator: validator.clone(),
                            total: Some(total),
                        };
                        cache::write_json(&meta_path, &meta).await?;
                    }
                    None => cache::remove_if_exists(&meta_path).await?,
                }
                PartWriter::create(&part).await?
            }
        };
        let resumable = etag.is_some();
        let body = result.into_stream();
        return stream_to_part(writer, body, Some(total), resumable, job, etag).await;
    }
}
