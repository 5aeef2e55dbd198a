//! Where a model file comes from, parsed from what a user writes (`--model`, a config file,
//! `inferd pull`).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::ArtifactError;

/// A model's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactSource {
    /// A file on local disk, used where it is (never copied).
    Local(PathBuf),
    /// A `file://` URL: copied into the cache like a download (for set-up steps that unpack a
    /// model somewhere temporary).
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Http(url::Url),
    /// An `s3://bucket/key` URI.
    S3(S3Location),
}

/// An object in an S3 (or S3-compatible) bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Object key, without a leading `/`.
    pub key: String,
}

impl ArtifactSource {
    /// Parses a source: `s3://bucket/key`, `http(s)://…`, `file:///abs/path`, or anything
    /// without a scheme as a local path.
    pub fn parse(input: &str) -> Result<Self, ArtifactError> {
        let invalid = |reason: &str| ArtifactError::InvalidSource {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        let Some((scheme, _)) = trimmed.split_once("://") else {
            return Ok(Self::Local(PathBuf::from(trimmed)));
        };
        let scheme = scheme.to_ascii_lowercase();
        if scheme == "s3" {
            // Parsed by hand: a URL parser would resolve `..` in the key and fetch another object.
            let rest = &trimmed["s3://".len()..];
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("no bucket: write s3://BUCKET/KEY"));
            }
            if key.is_empty() || key.ends_with('/') {
                return Err(invalid("no object key: write s3://BUCKET/KEY"));
            }
            if key.split('/').any(|seg| seg == ".." || seg == ".") {
                return Err(invalid("`.` and `..` are not allowed in the key"));
            }
            return Ok(Self::S3(S3Location {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            }));
        }
        let url =
            url::Url::parse(trimmed).map_err(|e| invalid(&format!("not a valid URL: {e}")))?;
        match scheme.as_str() {
            "http" | "https" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(invalid("the URL has no host"));
                }
                if url
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .is_none_or(str::is_empty)
                {
                    return Err(invalid(
                        "the URL does not name a file (its path ends in `/`)",
                    ));
                }
                Ok(Self::Http(url))
            }
            "file" => {
                if url
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(invalid(
                        "file:// URLs must name a local file (file:///path)",
                    ));
                }
                let path = url
                    .to_file_path()
                    .map_err(|()| invalid("not a local file path"))?;
                Ok(Self::File(path))
            }
            other => Err(invalid(&format!(
                "unsupported scheme `{other}`: use a path, file://, http://, https:// or s3://"
            ))),
        }
    }

    /// What `inferd.model.artifacts.source` says when this source is downloaded: `file`, `http`
    /// (also for https) or `s3`; `local_cache` for a local path.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local(_) => inferd_otel::semconv::INFERD_MODEL_ARTIFACTS_SOURCE_LOCAL_CACHE,
            Self::File(_) => "file",
            Self::Http(_) => "http",
            Self::S3(_) => "s3",
        }
    }

    /// The source as it may be logged or put on a span: no user, password or URL signature.
    pub fn display_url(&self) -> String {
        match self {
            Self::Local(p) => p.display().to_string(),
            Self::File(p) => format!("file://{}", p.display()),
            Self::Http(url) => inferd_otel::sanitize_url(url.as_str()),
            Self::S3(loc) => format!("s3://{}/{}", loc.bucket, loc.key),
        }
    }

    /// Where a downloaded copy lives under the cache directory:
    /// `SCHEME/HOST[_PORT]/PATH` for URLs (query ignored), `s3/BUCKET/KEY`,
    /// `file/ABSOLUTE/PATH`. `None` for a local path (used in place).
    pub fn cache_relative_path(&self) -> Option<PathBuf> {
        let mut out = PathBuf::new();
        match self {
            Self::Local(_) => return None,
            Self::File(path) => {
                out.push("file");
                push_segments(&mut out, path.to_string_lossy().split('/'));
            }
            Self::Http(url) => {
                out.push(url.scheme());
                let host = url.host_str().unwrap_or("unknown-host");
                match url.port() {
                    Some(port) => out.push(format!("{host}_{port}")),
                    None => out.push(host),
                }
                push_segments(&mut out, url.path().split('/'));
            }
            Self::S3(loc) => {
                out.push("s3");
                push_segments(&mut out, std::iter::once(loc.bucket.as_str()));
                push_segments(&mut out, loc.key.split('/'));
            }
        }
        Some(out)
    }
}

/// Appends path segments, dropping empty, `.` and `..` ones so a source can never name a
/// file outside the cache.
fn push_segments<'a>(out: &mut PathBuf, segments: impl Iterator<Item = &'a str>) {
    for seg in segments {
        if seg.is_empty() || seg == "." || seg == ".." || Path::new(seg).is_absolute() {
            continue;
        }
        out.push(seg.replace('\\', "_"));
    }
}

impl fmt::Display for ArtifactSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_url())
    }
}

impl std::str::FromStr for ArtifactSource {
    type Err = ArtifactError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ArtifactSource {
        match ArtifactSource::parse(s) {
            Ok(src) => src,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn reason(s: &str) -> String {
        match ArtifactSource::parse(s) {
            Ok(src) => panic!("{s} parsed as {src:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn each_kind_parses() {
        assert_eq!(parse("./m.gguf"), ArtifactSource::Local("./m.gguf".into()));
        assert_eq!(
            parse("/abs/m.gguf"),
            ArtifactSource::Local("/abs/m.gguf".into())
        );
        assert_eq!(
            parse("file:///tmp/m.gguf"),
            ArtifactSource::File("/tmp/m.gguf".into())
        );
        assert!(matches!(
            parse("https://h.example/a/m.gguf"),
            ArtifactSource::Http(_)
        ));
        assert_eq!(
            parse("s3://models/team/m.gguf"),
            ArtifactSource::S3(S3Location {
                bucket: "models".into(),
                key: "team/m.gguf".into()
            })
        );
    }

    #[test]
    fn bad_sources_say_what_is_wrong() {
        assert!(reason("").contains("empty"));
        assert!(reason("ftp://h/m.gguf").contains("unsupported scheme `ftp`"));
        assert!(reason("s3://bucket").contains("no object key"));
        assert!(reason("s3://bucket/dir/").contains("no object key"));
        assert!(reason("s3://b/a/../../etc/passwd").contains("not allowed"));
        assert!(reason("http://h.example/").contains("does not name a file"));
        assert!(reason("file://otherhost/m.gguf").contains("local file"));
        let err = reason("http://[bad/m.gguf");
        assert!(
            err.contains("http://[bad/m.gguf") && err.contains("not a valid URL"),
            "{err}"
        );
    }

    #[test]
    fn display_url_drops_credentials() {
        let src = parse("https://user:secret@h.example:8443/m.gguf?X-Amz-Signature=abc");
        let shown = src.display_url();
        assert!(
            !shown.contains("secret") && !shown.contains("abc"),
            "{shown}"
        );
        assert_eq!(src.kind(), "http");
    }

    #[test]
    fn cache_paths_are_per_source_and_stay_inside_the_cache() {
        assert_eq!(
            parse("http://127.0.0.1:9000/a/m.gguf?sig=x").cache_relative_path(),
            Some(PathBuf::from("http/127.0.0.1_9000/a/m.gguf"))
        );
        assert_eq!(
            parse("s3://bkt/team/m.gguf").cache_relative_path(),
            Some(PathBuf::from("s3/bkt/team/m.gguf"))
        );
        assert_eq!(
            parse("file:///tmp/x/m.gguf").cache_relative_path(),
            Some(PathBuf::from("file/tmp/x/m.gguf"))
        );
        assert_eq!(parse("m.gguf").cache_relative_path(), None);
        // URL parsing resolves dot segments; the result never climbs out.
        let p = parse("http://h/../../etc/m.gguf").cache_relative_path();
        assert_eq!(p, Some(PathBuf::from("http/h/etc/m.gguf")));
    }
}
