//! `inferd pull`: download a model into the cache (the artifact store does the work) and print
//! the local path.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use inferd_artifacts::{
    default_cache_dir, ArtifactOrigin, ArtifactStore, PullOptions, S3Config, Sha256Digest,
    StoreConfig,
};
use inferd_engine::catalog::KNOWN_MODELS;
use inferd_otel::ProcessEnv;

/// Flags of `inferd pull`.
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// What to fetch: an http(s):// URL, s3://BUCKET/KEY (AWS_* variables for endpoint, region
    /// and credentials), file:///PATH (copied into the cache), a local path (checked in place),
    /// or a known model id (smollm2-135m).
    #[arg(value_name = "MODEL_OR_SOURCE")]
    pub source: String,

    /// The sha256 the file must have (64 hex characters); on a mismatch nothing is cached.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,

    /// Model cache directory [default: $INFERD_HOME/models, else ~/.cache/inferd/models, where
    /// `inferd serve` looks].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

pub fn pull(args: PullArgs) -> anyhow::Result<()> {
    let cache_dir = match args.cache_dir {
        Some(dir) => dir,
        None => default_cache_dir(&ProcessEnv)
            .context("cannot find a home directory for the model cache; pass --cache-dir")?,
    };
    let sha256: Option<Sha256Digest> = args.sha256.as_deref().map(str::parse).transpose()?;
    // A known id names a file in the cache that a set-up step puts there.
    let (source, model_id) = match KNOWN_MODELS.iter().find(|m| m.id == args.source) {
        Some(known) => {
            let path = cache_dir.join(known.file_name);
            if !path.is_file() {
                anyhow::bail!(
                    "model `{}` is not in {} and has no download source; {}",
                    known.id,
                    cache_dir.display(),
                    known.fetch_hint
                );
            }
            (path.display().to_string(), Some(known.id.to_owned()))
        }
        None => (args.source, None),
    };
    let mut config = StoreConfig::new(cache_dir);
    config.s3 = S3Config::from_env(&ProcessEnv);
    let store = ArtifactStore::new(config)?;
    let options = PullOptions {
        sha256,
        model_id,
        ..PullOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let artifact = runtime.block_on(inferd_artifacts::pull(&store, &source, &options))?;
    let how = match artifact.origin {
        ArtifactOrigin::Downloaded => "downloaded",
        ArtifactOrigin::CacheHit => "already in the cache",
        ArtifactOrigin::LocalFile => "local file, used in place",
    };
    let digest = artifact
        .sha256
        .map(|d| format!(", sha256 {d}"))
        .unwrap_or_default();
    eprintln!("{how}: {} bytes{digest}", artifact.bytes);
    println!("{}", artifact.path.display());
    Ok(())
}
