//! [`RedisStore`]: files, batches and results in Redis, and the lines of every batch as
//! messages of one Redis Stream read by a consumer group, so several inferd processes share
//! the batch work and answer for any batch.
//!
//! Keys: `inferd:files` and `inferd:batches` (sorted sets of ids, score 0, so lexical order
//! is creation order), `inferd:file:{id}` (hash: the File object's fields, `owner`,
//! `content`), `inferd:batch:{id}` (hash: `record`, the batch as created, in JSON; `owner`,
//! `total`, `expires_at`, and the fields that change: `status`, `completed`, `failed`, the file ids and
//! timestamps), `inferd:batch:{id}:results` (hash: line index → `0`/`1`/`2` (ok, failed,
//! dropped by a cancel) then the output line), and the stream [`STREAM_KEY`] with the group
//! [`GROUP`]. Recording a result and ending the batch is one Lua script ([`FINISH_LINE`]),
//! so a result is written once per line and a batch ends once, whoever finishes last.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamPendingReply, StreamRangeReply,
    StreamReadReply,
};
use redis::{AsyncCommands, Script};

mod fields;

use fields::{batch_from_fields, file_from_fields, line_from_entry};

use crate::input::InputLine;
use crate::records::{Batch, FileObject, Line, LineResult, QueueDepth};
use crate::store::{new_batch_record, new_file_record, new_id, now, BatchPage, NewBatch};
use crate::JobsError;

/// The stream holding every batch's lines.
pub const STREAM_KEY: &str = "inferd:batch-lines";
/// The consumer group all inferd processes read the stream in.
pub const GROUP: &str = "inferd";
/// How long one read waits on the stream for a new line.
const READ_BLOCK: Duration = Duration::from_secs(1);
/// Lines of cancelled batches skipped by one claim before it gives the worker back control.
const MAX_SKIPS: usize = 256;

const FILES: &str = "inferd:files";
const BATCHES: &str = "inferd:batches";

fn file_key(id: &str) -> String {
    format!("inferd:file:{id}")
}

fn batch_key(id: &str) -> String {
    format!("inferd:batch:{id}")
}

fn results_key(id: &str) -> String {
    format!("inferd:batch:{id}:results")
}

fn result_field(index: u32) -> String {
    format!("{index:08}")
}

/// Records one line's result (HSETNX: once per line), counts it, and when every line of the
/// batch has a result, writes the output and error files (results in line order) and ends the
/// batch: `cancelled` if it was cancelling, else `completed`. Returns 0 when there is no
/// such batch, 1 when the batch goes on, 2 when this call ended it. A script runs alone on
/// the server, so two workers finishing the last two lines at once end the batch once.
///
/// KEYS: batch hash, results hash, files set, output file hash, error file hash.
/// ARGV: result field, flag and line, now, output file id, error file id, output name,
/// error name.
pub const FINISH_LINE: &str = include_str!("finish_line.lua");

/// Marks an in-progress batch `cancelling` (its lines not yet run are then dropped by the
/// workers that read them). KEYS: batch hash. ARGV: now. Returns 0 when there is no batch.
const CANCEL: &str = include_str!("cancel.lua");

/// What [`RedisStore::finish_line`] did to the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The batch no longer exists.
    NoBatch,
    /// The result is recorded (or was already); the batch goes on.
    Recorded,
    /// This call ended the batch (completed or cancelled) and wrote its files.
    Ended,
}

/// A line taken from the stream, with the stream entry to acknowledge.
#[derive(Debug, Clone)]
pub struct StreamLine {
    pub line: Line,
    pub entry_id: String,
}

/// The shared store; see the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    /// Requests and answers of the API.
    conn: ConnectionManager,
    /// The worker's blocking reads, on a connection of their own so they delay nothing else.
    reader: ConnectionManager,
    consumer: String,
    visibility: Duration,
    finish: Script,
    cancel: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("consumer", &self.consumer)
            .field("visibility", &self.visibility)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` and creates the stream's consumer group if missing. `consumer`
    /// names this process in the group; a line it took and has not acknowledged within
    /// `visibility` is taken over by another consumer.
    pub async fn connect(
        url: &str,
        consumer: &str,
        visibility: Duration,
    ) -> Result<Self, JobsError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)));
        let conn = ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
        let reader = ConnectionManager::new_with_config(
            client,
            config.set_response_timeout(Some(READ_BLOCK + Duration::from_secs(30))),
        )
        .await?;
        let mut store = Self {
            conn,
            reader,
            consumer: consumer.to_owned(),
            visibility,
            finish: Script::new(FINISH_LINE),
            cancel: Script::new(CANCEL),
        };
        let created: Result<(), redis::RedisError> = store
            .conn
            .xgroup_create_mkstream(STREAM_KEY, GROUP, "0")
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e.into()),
            _ => Ok(store),
        }
    }

    /// This process's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Stores a file; `owner` is the API key id it belongs to.
    pub async fn put_file(
        &self,
        purpose: &str,
        filename: &str,
        bytes: &[u8],
        owner: Option<&str>,
    ) -> Result<FileObject, JobsError> {
        let file = new_file_record(purpose, filename, bytes.len());
        let key = file_key(&file.id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                &key,
                &[
                    ("id", file.id.clone()),
                    ("bytes", file.bytes.to_string()),
                    ("created_at", file.created_at.to_string()),
                    ("filename", file.filename.clone()),
                    ("purpose", file.purpose.clone()),
                    ("status", file.status.clone()),
                ],
            )
            .ignore()
            .hset(&key, "content", bytes)
            .ignore();
        if let Some(owner) = owner {
            pipe.hset(&key, "owner", owner).ignore();
        }
        pipe.zadd(FILES, &file.id, 0).ignore();
        let () = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(file)
    }

    /// A file and its owner.
    pub async fn file(&self, id: &str) -> Result<Option<(FileObject, Option<String>)>, JobsError> {
        let fields: Vec<Option<String>> = self
            .conn
            .clone()
            .hmget(
                file_key(id),
                &[
                    "id",
                    "bytes",
                    "created_at",
                    "filename",
                    "purpose",
                    "status",
                    "owner",
                ],
            )
            .await?;
        Ok(file_from_fields(fields))
    }

    /// A file's bytes.
    pub async fn file_content(&self, id: &str) -> Result<Option<Vec<u8>>, JobsError> {
        Ok(self.conn.clone().hget(file_key(id), "content").await?)
    }

    /// Deletes a file; whether there was one.
    pub async fn delete_file(&self, id: &str) -> Result<bool, JobsError> {
        let (deleted, _): (u64, u64) = redis::pipe()
            .atomic()
            .del(file_key(id))
            .zrem(FILES, id)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(deleted > 0)
    }

    /// Every file of `owner` (all files when `None`), newest first.
    pub async fn files(&self, owner: Option<&str>) -> Result<Vec<FileObject>, JobsError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn.zrevrangebylex(FILES, "+", "-").await?;
        let mut out = Vec::new();
        for id in ids {
            if let Some((file, file_owner)) = self.file(&id).await? {
                if owner.is_none() || file_owner.as_deref() == owner {
                    out.push(file);
                }
            }
        }
        Ok(out)
    }

    /// Creates a batch in progress and puts its lines on the stream, in one transaction.
    pub async fn create_batch(
        &self,
        new: NewBatch,
        lines: Vec<InputLine>,
    ) -> Result<Batch, JobsError> {
        let total = lines.len() as u64;
        let stored = new_batch_record(new, total);
        let batch = stored.batch.clone();
        let key = batch_key(&batch.id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                &key,
                &[
                    ("record", serde_json::to_string(&stored)?),
                    ("total", total.to_string()),
                    ("status", "in_progress".to_owned()),
                    ("completed", "0".to_owned()),
                    ("failed", "0".to_owned()),
                    (
                        "expires_at",
                        batch.expires_at.unwrap_or(u64::MAX).to_string(),
                    ),
                ],
            )
            .ignore();
        if let Some(owner) = &stored.owner {
            pipe.hset(&key, "owner", owner).ignore();
        }
        pipe.zadd(BATCHES, &batch.id, 0).ignore();
        for (index, input) in lines.into_iter().enumerate() {
            let mut fields = vec![
                ("batch_id", batch.id.clone()),
                ("index", index.to_string()),
                ("custom_id", input.custom_id),
                ("url", input.url),
                ("body", input.body.to_string()),
            ];
            for (name, value) in stored.trace.to_map() {
                let name = match name.as_str() {
                    "traceparent" => "traceparent",
                    "tracestate" => "tracestate",
                    _ => "baggage",
                };
                fields.push((name, value));
            }
            pipe.xadd(STREAM_KEY, "*", &fields).ignore();
        }
        let () = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(batch)
    }

    /// A batch and its owner.
    pub async fn batch(&self, id: &str) -> Result<Option<(Batch, Option<String>)>, JobsError> {
        let fields: HashMap<String, String> = self.conn.clone().hgetall(batch_key(id)).await?;
        batch_from_fields(&fields)
    }

    /// Up to `limit` batches of `owner` (all when `None`), newest first, older than `after`
    /// when given (OpenAI's cursor).
    pub async fn batches(
        &self,
        owner: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<BatchPage, JobsError> {
        let max = after.map_or_else(|| "+".to_owned(), |after| format!("({after}"));
        let ids: Vec<String> = self.conn.clone().zrevrangebylex(BATCHES, max, "-").await?;
        let mut data = Vec::new();
        let mut has_more = false;
        for id in ids {
            let Some((batch, batch_owner)) = self.batch(&id).await? else {
                continue;
            };
            if owner.is_some() && batch_owner.as_deref() != owner {
                continue;
            }
            if data.len() == limit {
                has_more = true;
                break;
            }
            data.push(batch);
        }
        Ok(BatchPage { data, has_more })
    }

    /// Cancels a batch: it is `cancelling` until every line not yet run has been read off the
    /// stream and dropped, and the running ones have ended, then `cancelled`. A batch already
    /// over is returned as it is. `None`: no such batch.
    pub async fn cancel_batch(&self, id: &str) -> Result<Option<Batch>, JobsError> {
        let found: i64 = self
            .cancel
            .key(batch_key(id))
            .arg(now())
            .invoke_async(&mut self.conn.clone())
            .await?;
        if found == 0 {
            return Ok(None);
        }
        Ok(self.batch(id).await?.map(|(batch, _)| batch))
    }

    /// Takes a line: first one another consumer took and left unacknowledged longer than the
    /// visibility timeout, else a new one (waiting up to a second for it). Lines of cancelled
    /// batches are dropped on the way, and lines of batches whose window has ended recorded
    /// as expired.
    pub async fn claim_next(&self) -> Result<Option<StreamLine>, JobsError> {
        for _ in 0..MAX_SKIPS {
            let Some((entry, attempts)) = self.read_entry().await? else {
                return Ok(None);
            };
            let Some(line) = line_from_entry(&entry, attempts) else {
                ack_and_delete(self, &entry.id).await?;
                continue;
            };
            let key = batch_key(&line.batch_id);
            let (status, expires_at): (Option<String>, Option<u64>) = redis::cmd("HMGET")
                .arg(&key)
                .arg("status")
                .arg("expires_at")
                .query_async(&mut self.conn.clone())
                .await?;
            let claimed = StreamLine {
                line,
                entry_id: entry.id,
            };
            if status.as_deref() != Some("in_progress") {
                self.finish_line(&claimed, None).await?;
                continue;
            }
            let at = now();
            if expires_at.is_some_and(|end| at >= end) {
                // Its batch's window has ended: recorded as expired, not run.
                let () = self.conn.clone().hset_nx(&key, "expired_at", at).await?;
                let expired = LineResult::expired(&claimed.line);
                self.finish_line(&claimed, Some(&expired)).await?;
                continue;
            }
            return Ok(Some(claimed));
        }
        Ok(None)
    }

    /// The next entry to run and how many times it has been delivered (1: a new one).
    async fn read_entry(&self) -> Result<Option<(StreamId, u32)>, JobsError> {
        let mut reader = self.reader.clone();
        let idle = u64::try_from(self.visibility.as_millis()).unwrap_or(u64::MAX);
        let reclaimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(STREAM_KEY)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(idle)
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut reader)
            .await?;
        if let Some(entry) = reclaimed.claimed.into_iter().next() {
            let pending: StreamPendingCountReply = reader
                .xpending_count(STREAM_KEY, GROUP, &entry.id, &entry.id, 1)
                .await?;
            let delivered = pending
                .ids
                .first()
                .map_or(2, |p| u32::try_from(p.times_delivered).unwrap_or(u32::MAX));
            return Ok(Some((entry, delivered)));
        }
        let read: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(READ_BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(STREAM_KEY)
            .arg(">")
            .query_async(&mut reader)
            .await?;
        Ok(read
            .and_then(|r| r.keys.into_iter().next()?.ids.into_iter().next())
            .map(|entry| (entry, 1)))
    }

    /// The lines in the stream: not yet taken, taken and not finished, and the oldest one's
    /// time (a stream entry's id starts with the time it was added, in ms).
    pub async fn depth(&self) -> Result<QueueDepth, JobsError> {
        let mut conn = self.conn.clone();
        let (len, pending, first): (u64, StreamPendingReply, StreamRangeReply) = redis::pipe()
            .xlen(STREAM_KEY)
            .xpending(STREAM_KEY, GROUP)
            .xrange_count(STREAM_KEY, "-", "+", 1)
            .query_async(&mut conn)
            .await?;
        let taken = pending.count() as u64;
        let oldest_queued_ms = first
            .ids
            .first()
            .and_then(|entry| entry.id.split('-').next()?.parse().ok());
        Ok(QueueDepth {
            waiting: len.saturating_sub(taken),
            taken,
            oldest_queued_ms,
        })
    }

    /// `XCLAIM` of the line by this consumer (resetting its idle time, or setting it to
    /// `idle_ms`), without reading it again.
    async fn xclaim(&self, claimed: &StreamLine, idle_ms: Option<u64>) -> Result<(), JobsError> {
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(STREAM_KEY)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(0)
            .arg(&claimed.entry_id);
        if let Some(idle) = idle_ms {
            cmd.arg("IDLE").arg(idle);
        }
        let _: Vec<String> = cmd
            .arg("JUSTID")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Tells the group this consumer still works on the line, so it is not taken over.
    pub async fn keep_alive(&self, claimed: &StreamLine) -> Result<(), JobsError> {
        self.xclaim(claimed, None).await
    }

    /// Gives a line back unfinished (this process is stopping): it is marked idle for the
    /// whole visibility timeout, so the next consumer to look takes it over at once.
    pub async fn release(&self, claimed: &StreamLine) -> Result<(), JobsError> {
        let idle = u64::try_from(self.visibility.as_millis()).unwrap_or(u64::MAX);
        self.xclaim(claimed, Some(idle)).await
    }

    /// Records a line's result (`None`: dropped by a cancel) once per line, ends the batch
    /// when it was its last, and acknowledges and deletes the stream entry.
    pub async fn finish_line(
        &self,
        claimed: &StreamLine,
        result: Option<&LineResult>,
    ) -> Result<Finished, JobsError> {
        let value = match result {
            Some(r) if r.failed => format!("1{}", r.json),
            Some(r) => format!("0{}", r.json),
            None => "2".to_owned(),
        };
        let batch_id = &claimed.line.batch_id;
        let (output_id, error_id) = (new_id("file-"), new_id("file-"));
        let outcome: i64 = self
            .finish
            .key(batch_key(batch_id))
            .key(results_key(batch_id))
            .key(FILES)
            .key(file_key(&output_id))
            .key(file_key(&error_id))
            .arg(result_field(claimed.line.index))
            .arg(value)
            .arg(now())
            .arg(&output_id)
            .arg(&error_id)
            .arg(format!("{batch_id}_output.jsonl"))
            .arg(format!("{batch_id}_error.jsonl"))
            .invoke_async(&mut self.conn.clone())
            .await?;
        ack_and_delete(self, &claimed.entry_id).await?;
        Ok(match outcome {
            0 => Finished::NoBatch,
            2 => Finished::Ended,
            _ => Finished::Recorded,
        })
    }
}

/// Acknowledges a stream entry and deletes it (its line is done or unreadable).
async fn ack_and_delete(store: &RedisStore, entry_id: &str) -> Result<(), JobsError> {
    let () = redis::pipe()
        .xack(STREAM_KEY, GROUP, &[entry_id])
        .ignore()
        .xdel(STREAM_KEY, &[entry_id])
        .ignore()
        .query_async(&mut store.conn.clone())
        .await?;
    Ok(())
}
