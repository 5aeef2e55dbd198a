//! `file://` sources: copied into the cache through the same `.part`, hash and rename steps
//! as a download.

use std::path::Path;

use bytes::Bytes;
use tokio::io::AsyncReadExt;

use crate::part::PartWriter;
use crate::transfer::{stream_to_part, Downloaded, Job};
use crate::ArtifactError;

pub(crate) async fn copy(source: &Path, job: &Job<'_>) -> Result<Downloaded, ArtifactError> {
    let file = match tokio::fs::File::open(source).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ArtifactError::NotFound {
                source_url: job.source_url.to_owned(),
                detail: String::new(),
            })
        }
        Err(e) => return Err(ArtifactError::io("open", source, e)),
    };
    let total = file
        .metadata()
        .await
        .map_err(|e| ArtifactError::io("read", source, e))?
        .len();
    let chunks = futures::stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 1 << 20];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let writer = PartWriter::create(&crate::cache::part_path(job.dest)).await?;
    stream_to_part(writer, chunks, Some(total), false, job, None).await
}
