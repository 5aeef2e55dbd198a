//! Fetches one source into a cache directory and reports the time taken:
//! `cargo run --release -p inferd-artifacts --example fetch -- SOURCE CACHE_DIR [SHA256]`.
//! S3 settings come from the AWS_* variables.

use std::time::Instant;

use inferd_artifacts::{ArtifactRequest, ArtifactSource, ArtifactStore, S3Config, StoreConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(source), Some(cache)) = (args.next(), args.next()) else {
        return Err("usage: fetch SOURCE CACHE_DIR [SHA256]".into());
    };
    let sha256 = args.next().map(|s| s.parse()).transpose()?;
    let mut config = StoreConfig::new(cache);
    config.s3 = S3Config::from_env(&inferd_otel::ProcessEnv);
    let store = ArtifactStore::new(config)?;
    let request =
        ArtifactRequest::new("example", ArtifactSource::parse(&source)?).with_sha256(sha256);
    let started = Instant::now();
    let artifact = store.fetch(&request).await?;
    let secs = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let mb = artifact.bytes as f64 / 1e6;
    println!(
        "{:?} {} ({:.1} MB in {secs:.2} s, {:.1} MB/s)",
        artifact.origin,
        artifact.path.display(),
        mb,
        mb / secs
    );
    Ok(())
}
