//! The registry's [`ArtifactResolver`] backed by the artifact store (`inferd-artifacts`):
//! local paths in place, `file://`, `http(s)://` and `s3://` sources through the verified
//! cache, downloaded on a miss with single flight. It lives in the binary, which joins the
//! two crates, so the engine does not depend on the store's HTTP and S3 clients.

use async_trait::async_trait;
use inferd_artifacts::{ArtifactError, ArtifactRequest, ArtifactSource, ArtifactStore};

use inferd_engine::{ArtifactResolver, EngineError, ModelSpec, ResolvedArtifact};

/// Resolves model sources with an [`ArtifactStore`].
#[derive(Debug, Clone)]
pub struct StoreResolver {
    store: ArtifactStore,
}

impl StoreResolver {
    pub fn new(store: ArtifactStore) -> Self {
        Self { store }
    }

    fn request(spec: &ModelSpec) -> Result<ArtifactRequest, ArtifactError> {
        let source = ArtifactSource::parse(&spec.source)?;
        let sha256 = spec.sha256.as_deref().map(str::parse).transpose()?;
        Ok(ArtifactRequest::new(&spec.id, source).with_sha256(sha256))
    }
}

/// The error as the registry reports it, naming the source without credentials.
fn load_error(spec: &ModelSpec, err: &ArtifactError) -> EngineError {
    let shown = ArtifactSource::parse(&spec.source)
        .map(|s| s.display_url())
        .unwrap_or_else(|_| "(invalid source)".into());
    EngineError::Load {
        model: spec.id.clone(),
        path: shown,
        reason: err.to_string(),
    }
}

#[async_trait]
impl ArtifactResolver for StoreResolver {
    fn is_remote(&self, spec: &ModelSpec) -> bool {
        Self::request(spec).is_ok_and(|r| self.store.needs_download(&r))
    }

    async fn resolve(&self, spec: &ModelSpec) -> Result<ResolvedArtifact, EngineError> {
        let request = Self::request(spec).map_err(|e| load_error(spec, &e))?;
        let artifact = self
            .store
            .fetch(&request)
            .await
            .map_err(|e| load_error(spec, &e))?;
        Ok(ResolvedArtifact {
            path: artifact.path,
            source: artifact.source,
            bytes: artifact.bytes,
        })
    }
}
