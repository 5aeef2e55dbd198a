//! `http://` and `https://` downloads with reqwest: each request reported to the store's
//! observer (its context sent as traceparent), and a Range request to resume an interrupted
//! `.part` when the server supports it.

use ::http::header::{ACCEPT_RANGES, CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use ::http::{HeaderMap, HeaderValue, Method, StatusCode};
use inferd_otel::propagate::inject_into_headers;
use opentelemetry::context::FutureExt as _;

use crate::cache::{self, part_meta_path, part_path, PartMeta};
use crate::observe::HttpRequest;
use crate::part::PartWriter;
use crate::transfer::{error_chain, stream_to_part, Downloaded, Job};
use crate::ArtifactError;

pub(crate) async fn download(
    client: &reqwest::Client,
    url: &url::Url,
    job: &Job<'_>,
) -> Result<Downloaded, ArtifactError> {
    let part = part_path(job.dest);
    let meta_path = part_meta_path(job.dest);
    let mut resume = resumable_part(&part, &meta_path).await;
    // At most two requests: a resume attempt, then (if the server would not resume) a fresh one.
    loop {
        let request = job.download.request_started(&HttpRequest {
            method: &Method::GET,
            url,
        });
        let mut headers = HeaderMap::new();
        if let Some((offset, meta)) = &resume {
            insert(&mut headers, RANGE, &format!("bytes={offset}-"));
            insert(&mut headers, IF_RANGE, &meta.validator);
        }
        // The request's own context, else the download's (the caller's when nobody observes).
        let cx = request
            .context()
            .unwrap_or_else(|| job.download.context())
            .clone();
        inject_into_headers(&cx, &mut headers);
        let attempt = async {
            let response = client
                .get(url.clone())
                .headers(headers)
                .send()
                .await
                .map_err(|e| ArtifactError::Transfer {
                    url: job.source_url.to_owned(),
                    message: error_chain(&e),
                });
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    request.failed(&e);
                    return Err(e);
                }
            };
            let status = response.status();
            request.responded(status);
            let etag = header(response.headers(), ETAG);
            match (status, &resume) {
                (StatusCode::PARTIAL_CONTENT, Some((offset, _))) => {
                    let range = content_range(response.headers());
                    let writer = match range {
                        Some((start, _)) if start == *offset => {
                            Some(PartWriter::resume(&part).await?)
                        }
                        _ => None,
                    };
                    match (writer, range) {
                        (Some(writer), Some((_, total))) if writer.written() == *offset => {
                            job.download.resuming(*offset, job.source_url);
                            let body = response.bytes_stream();
                            Ok(Some(
                                stream_to_part(writer, body, total, true, job, etag).await,
                            ))
                        }
                        // The server answered another range than asked: start over.
                        _ => Ok(None),
                    }
                }
                (StatusCode::OK, _) => {
                    let total = response.content_length();
                    let validator = etag
                        .clone()
                        .or_else(|| header(response.headers(), LAST_MODIFIED));
                    let accepts_ranges = header(response.headers(), ACCEPT_RANGES)
                        .is_some_and(|v| v.eq_ignore_ascii_case("bytes"));
                    let resumable = match validator {
                        Some(validator) if accepts_ranges => {
                            cache::write_json(&meta_path, &PartMeta { validator, total }).await?;
                            true
                        }
                        _ => {
                            cache::remove_if_exists(&meta_path).await?;
                            false
                        }
                    };
                    let writer = PartWriter::create(&part).await?;
                    let body = response.bytes_stream();
                    Ok(Some(
                        stream_to_part(writer, body, total, resumable, job, etag).await,
                    ))
                }
                (StatusCode::RANGE_NOT_SATISFIABLE, Some(_)) => Ok(None),
                (StatusCode::NOT_FOUND | StatusCode::GONE, _) => Err(ArtifactError::NotFound {
                    source_url: job.source_url.to_owned(),
                    detail: format!(": HTTP {}", status.as_u16()),
                }),
                _ => Err(ArtifactError::HttpStatus {
                    url: job.source_url.to_owned(),
                    status: status.as_u16(),
                }),
            }
        };
        // The request's context is current while the body streams to disk; the request ends
        // with the attempt.
        let attempt = attempt.with_context(cx).await;
        if let Ok(Some(Err(e))) = &attempt {
            request.failed(e);
        }
        drop(request);
        match attempt {
            Ok(Some(result)) => return result,
            Ok(None) if resume.is_some() => {
                cache::remove_if_exists(&part).await?;
                cache::remove_if_exists(&meta_path).await?;
                resume = None;
            }
            Ok(None) => {
                return Err(ArtifactError::Transfer {
                    url: job.source_url.to_owned(),
                    message: "unexpected partial response to a full request".into(),
                })
            }
            Err(e) => return Err(e),
        }
    }
}

/// The size and validator of an interrupted download that may be resumed.
async fn resumable_part(
    part: &std::path::Path,
    meta_path: &std::path::Path,
) -> Option<(u64, PartMeta)> {
    let len = tokio::fs::metadata(part).await.ok()?.len();
    let meta: PartMeta = cache::read_json(meta_path).await?;
    (len > 0 && meta.total.is_none_or(|t| len < t)).then_some((len, meta))
}

fn insert(headers: &mut HeaderMap, name: ::http::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn header(headers: &HeaderMap, name: ::http::HeaderName) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

/// `Content-Range: bytes START-END/TOTAL` → (START, TOTAL); TOTAL may be `*`.
fn content_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let value = header(headers, CONTENT_RANGE)?;
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_is_parsed() {
        let mut h = HeaderMap::new();
        insert(&mut h, CONTENT_RANGE, "bytes 100-199/200");
        assert_eq!(content_range(&h), Some((100, Some(200))));
        insert(&mut h, CONTENT_RANGE, "bytes 5-9/*");
        assert_eq!(content_range(&h), Some((5, None)));
        insert(&mut h, CONTENT_RANGE, "items 1-2/3");
        assert_eq!(content_range(&h), None);
    }
}
