//! [`JobStore`]: files, batches, queued lines and their results in one `redb` database.
//!
//! Tables (keys are strings, values JSON unless said): `files` (id → [`FileObject`] and
//! owner), `file_contents` (id → raw bytes), `batches` (id → [`Batch`], owner, trace
//! context), `lines` (`BATCH/INDEX` → [`Line`]), `pending` (`BATCH/INDEX` → nothing: the
//! lines waiting, oldest batch first), `running` (`BATCH/INDEX` → nothing: the lines a
//! worker took and has not finished), `results` (`BATCH/INDEX` → [`LineResult`], written
//! once). Ids start with the creation time in hex, so key order is creation order.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::input::InputLine;
use crate::records::{
    Batch, BatchStatus, FileObject, Line, LineResult, LineState, QueueDepth, RequestCounts,
    TraceFields,
};
use crate::JobsError;

/// The database file inside the jobs directory.
pub const JOBS_DB_FILE: &str = "jobs.redb";

type Json = TableDefinition<'static, &'static str, &'static [u8]>;
const FILES: Json = TableDefinition::new("files");
const CONTENTS: Json = TableDefinition::new("file_contents");
const BATCHES: Json = TableDefinition::new("batches");
const LINES: Json = TableDefinition::new("lines");
const PENDING: Json = TableDefinition::new("pending");
const RESULTS: Json = TableDefinition::new("results");
const RUNNING: Json = TableDefinition::new("running");

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredFile {
    file: FileObject,
    owner: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredBatch {
    pub(crate) batch: Batch,
    pub(crate) owner: Option<String>,
    pub(crate) trace: TraceFields,
}

/// What a new batch is made of (its lines come from the checked input file).
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub endpoint: String,
    pub input_file_id: String,
    pub completion_window: String,
    pub metadata: Option<Value>,
    pub owner: Option<String>,
    pub trace: TraceFields,
    /// Seconds the batch has to finish (its `expires_at` is its creation plus these); lines
    /// not started by then are not run.
    pub expires_in: u64,
}

/// One page of [`JobStore::batches`].
#[derive(Debug, Clone)]
pub struct BatchPage {
    pub data: Vec<Batch>,
    pub has_more: bool,
}

/// The durable job store; see the module documentation. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct JobStore {
    db: Database,
    path: PathBuf,
}

/// Now in the seconds the batch and file objects' `*_at` fields hold.
pub(crate) use inferd_openai::unix_timestamp as now;

/// `PREFIX` + creation time (ns, hex) + random: unique, and ordered by creation.
pub(crate) fn new_id(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{prefix}{nanos:016x}{:08x}", fastrand::u32(..))
}

fn line_key(batch_id: &str, index: u32) -> String {
    format!("{batch_id}/{index:08}")
}

/// The key range of one batch's lines (`'0'` sorts right after `'/'`).
fn batch_range(batch_id: &str) -> (String, String) {
    (format!("{batch_id}/"), format!("{batch_id}0"))
}

fn read<T: for<'de> Deserialize<'de>>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, JobsError> {
    match table.get(key)? {
        Some(guard) => Ok(Some(serde_json::from_slice(guard.value())?)),
        None => Ok(None),
    }
}

fn write<T: Serialize>(
    table: &mut Table<&'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> Result<(), JobsError> {
    table.insert(key, serde_json::to_vec(value)?.as_slice())?;
    Ok(())
}

impl JobStore {
    /// Opens (or creates) the store in `dir`, and puts back in the queue the lines a previous
    /// process left running, so their batches resume.
    pub fn open(dir: &Path) -> Result<Self, JobsError> {
        std::fs::create_dir_all(dir).map_err(|source| JobsError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(JOBS_DB_FILE);
        let db = Database::create(&path)?;
        let store = Self { db, path };
        store.requeue_running()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn requeue_running(&self) -> Result<usize, JobsError> {
        let txn = self.db.begin_write()?;
        let mut requeued = 0;
        {
            for table in [FILES, CONTENTS, BATCHES, RESULTS] {
                txn.open_table(table)?;
            }
            let mut lines = txn.open_table(LINES)?;
            let mut pending = txn.open_table(PENDING)?;
            let mut taken = txn.open_table(RUNNING)?;
            taken.retain(|_, _| false)?;
            let mut running = Vec::new();
            for entry in lines.iter()? {
                let (key, value) = entry?;
                let line: Line = serde_json::from_slice(value.value())?;
                if line.state == LineState::Running {
                    running.push((key.value().to_owned(), line));
                }
            }
            for (key, mut line) in running {
                line.state = LineState::Pending;
                write(&mut lines, &key, &line)?;
                pending.insert(key.as_str(), [].as_slice())?;
                requeued += 1;
            }
        }
        txn.commit()?;
        Ok(requeued)
    }

    /// Stores a file; `owner` is the API key id it belongs to.
    pub fn put_file(
        &self,
        purpose: &str,
        filename: &str,
        bytes: &[u8],
        owner: Option<&str>,
    ) -> Result<FileObject, JobsError> {
        let txn = self.db.begin_write()?;
        let file = insert_file(&txn, purpose, filename, bytes, owner)?;
        txn.commit()?;
        Ok(file)
    }

    /// A file and its owner.
    pub fn file(&self, id: &str) -> Result<Option<(FileObject, Option<String>)>, JobsError> {
        let txn = self.db.begin_read()?;
        let files = txn.open_table(FILES)?;
        Ok(read::<StoredFile>(&files, id)?.map(|s| (s.file, s.owner)))
    }

    /// A file's bytes.
    pub fn file_content(&self, id: &str) -> Result<Option<Vec<u8>>, JobsError> {
        let txn = self.db.begin_read()?;
        let contents = txn.open_table(CONTENTS)?;
        let bytes = contents.get(id)?.map(|guard| guard.value().to_vec());
        Ok(bytes)
    }

    /// Deletes a file; whether there was one.
    pub fn delete_file(&self, id: &str) -> Result<bool, JobsError> {
        let txn = self.db.begin_write()?;
        let existed = {
            let mut files = txn.open_table(FILES)?;
            let mut contents = txn.open_table(CONTENTS)?;
            contents.remove(id)?;
            let removed = files.remove(id)?.is_some();
            removed
        };
        txn.commit()?;
        Ok(existed)
    }

    /// Every file of `owner` (all files when `None`), newest first.
    pub fn files(&self, owner: Option<&str>) -> Result<Vec<FileObject>, JobsError> {
        let txn = self.db.begin_read()?;
        let files = txn.open_table(FILES)?;
        let mut out = Vec::new();
        for entry in files.iter()?.rev() {
            let (_, value) = entry?;
            let stored: StoredFile = serde_json::from_slice(value.value())?;
            if owner.is_none() || stored.owner.as_deref() == owner {
                out.push(stored.file);
            }
        }
        Ok(out)
    }

    /// Creates a batch in progress with one pending queue entry per line, in one transaction.
    pub fn create_batch(&self, new: NewBatch, lines: Vec<InputLine>) -> Result<Batch, JobsError> {
        let stored = new_batch_record(new, lines.len() as u64);
        let batch = stored.batch.clone();
        let txn = self.db.begin_write()?;
        {
            let mut batches = txn.open_table(BATCHES)?;
            let mut queued = txn.open_table(LINES)?;
            let mut pending = txn.open_table(PENDING)?;
            for (index, input) in lines.into_iter().enumerate() {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                let key = line_key(&batch.id, index);
                let line = Line {
                    batch_id: batch.id.clone(),
                    index,
                    custom_id: input.custom_id,
                    url: input.url,
                    body: input.body,
                    state: LineState::Pending,
                    trace: stored.trace.clone(),
                    attempts: 0,
                };
                write(&mut queued, &key, &line)?;
                pending.insert(key.as_str(), [].as_slice())?;
            }
            write(&mut batches, &batch.id, &stored)?;
        }
        txn.commit()?;
        Ok(batch)
    }

    /// A batch and its owner.
    pub fn batch(&self, id: &str) -> Result<Option<(Batch, Option<String>)>, JobsError> {
        let txn = self.db.begin_read()?;
        let batches = txn.open_table(BATCHES)?;
        Ok(read::<StoredBatch>(&batches, id)?.map(|s| (s.batch, s.owner)))
    }

    /// Up to `limit` batches of `owner` (all when `None`), newest first, older than `after`
    /// when given (OpenAI's cursor).
    pub fn batches(
        &self,
        owner: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<BatchPage, JobsError> {
        let txn = self.db.begin_read()?;
        let batches = txn.open_table(BATCHES)?;
        let range = match after {
            Some(after) => batches.range(..after)?,
            None => batches.iter()?,
        };
        let mut data = Vec::new();
        let mut has_more = false;
        for entry in range.rev() {
            let (_, value) = entry?;
            let stored: StoredBatch = serde_json::from_slice(value.value())?;
            if owner.is_some() && stored.owner.as_deref() != owner {
                continue;
            }
            if data.len() == limit {
                has_more = true;
                break;
            }
            data.push(stored.batch);
        }
        Ok(BatchPage { data, has_more })
    }

    /// Cancels a batch: its pending lines are dropped; it is `cancelling` while a line still
    /// runs, then `cancelled`. A batch already over is returned as it is. `None`: no such batch.
    pub fn cancel_batch(&self, id: &str) -> Result<Option<Batch>, JobsError> {
        let txn = self.db.begin_write()?;
        let batch = {
            let mut batches = txn.open_table(BATCHES)?;
            let Some(mut stored) = read::<StoredBatch>(&batches, id)? else {
                return Ok(None);
            };
            if !stored.batch.status.is_final() && stored.batch.status != BatchStatus::Cancelling {
                stored.batch.status = BatchStatus::Cancelling;
                stored.batch.cancelling_at = Some(now());
                let mut lines = txn.open_table(LINES)?;
                let mut pending = txn.open_table(PENDING)?;
                let (start, end) = batch_range(id);
                let mut dropped = Vec::new();
                for entry in pending.range(start.as_str()..end.as_str())? {
                    dropped.push(entry?.0.value().to_owned());
                }
                for key in dropped {
                    pending.remove(key.as_str())?;
                    if let Some(mut line) = read::<Line>(&lines, &key)? {
                        line.state = LineState::Done;
                        write(&mut lines, &key, &line)?;
                    }
                }
                let settled = settled(&lines, id)?;
                drop((lines, pending));
                if settled {
                    finalize(&txn, &mut stored)?;
                }
                write(&mut batches, id, &stored)?;
            }
            stored.batch
        };
        txn.commit()?;
        Ok(Some(batch))
    }

    /// Takes the oldest pending line and marks it running. Lines of a batch whose completion
    /// window has ended are not run: each is recorded as expired on the way (and the batch
    /// ends `expired` with its last line).
    pub fn claim_next(&self) -> Result<Option<Line>, JobsError> {
        let txn = self.db.begin_write()?;
        let mut pending = txn.open_table(PENDING)?;
        let claimed = loop {
            let first = pending.pop_first()?.map(|(key, _)| key.value().to_owned());
            let Some(key) = first else {
                break None;
            };
            let Some(mut line) = read::<Line>(&txn.open_table(LINES)?, &key)? else {
                continue;
            };
            let batch = read::<StoredBatch>(&txn.open_table(BATCHES)?, &line.batch_id)?;
            let at = now();
            if batch.is_some_and(|b| b.batch.expires_at.is_some_and(|end| at >= end)) {
                record_result(&txn, &line, &LineResult::expired(&line), Some(at))?;
                continue;
            }
            line.state = LineState::Running;
            line.attempts += 1;
            write(&mut txn.open_table(LINES)?, &key, &line)?;
            txn.open_table(RUNNING)?
                .insert(key.as_str(), [].as_slice())?;
            break Some(line);
        };
        drop(pending);
        txn.commit()?;
        Ok(claimed)
    }

    /// Records a line's outcome (once: a second result for the same line is ignored), and when
    /// it was the batch's last, writes the output and error files and ends the batch.
    pub fn finish_line(
        &self,
        line: &Line,
        result: &LineResult,
    ) -> Result<Option<Batch>, JobsError> {
        let txn = self.db.begin_write()?;
        let batch = record_result(&txn, line, result, None)?;
        txn.commit()?;
        Ok(batch)
    }
}

/// Records a line's result once, marks the line done, and ends its batch when it was the
/// last. `expired_at`: the line was not run because its batch's window ended then.
fn record_result(
    txn: &WriteTransaction,
    line: &Line,
    result: &LineResult,
    expired_at: Option<u64>,
) -> Result<Option<Batch>, JobsError> {
    let mut batches = txn.open_table(BATCHES)?;
    let Some(mut stored) = read::<StoredBatch>(&batches, &line.batch_id)? else {
        return Ok(None);
    };
    let key = line_key(&line.batch_id, line.index);
    let mut results = txn.open_table(RESULTS)?;
    if results.get(key.as_str())?.is_none() {
        write(&mut results, &key, result)?;
        let counts = &mut stored.batch.request_counts;
        if result.failed {
            counts.failed += 1;
        } else {
            counts.completed += 1;
        }
    }
    drop(results);
    if expired_at.is_some() && stored.batch.expired_at.is_none() {
        stored.batch.expired_at = expired_at;
    }
    txn.open_table(RUNNING)?.remove(key.as_str())?;
    let mut lines = txn.open_table(LINES)?;
    let mut done = line.clone();
    done.state = LineState::Done;
    write(&mut lines, &key, &done)?;
    let settled = settled(&lines, &line.batch_id)?;
    drop(lines);
    if settled && !stored.batch.status.is_final() {
        finalize(txn, &mut stored)?;
    }
    write(&mut batches, &line.batch_id, &stored)?;
    Ok(Some(stored.batch))
}

impl JobStore {
    /// The lines waiting and running, and when the oldest of them was queued (its batch's
    /// creation, which its key begins with).
    pub fn depth(&self) -> Result<QueueDepth, JobsError> {
        let txn = self.db.begin_read()?;
        let pending = txn.open_table(PENDING)?;
        let running = txn.open_table(RUNNING)?;
        let oldest = |table: &redb::ReadOnlyTable<&'static str, &'static [u8]>| {
            Ok::<_, JobsError>(table.first()?.and_then(|(key, _)| queued_ms(key.value())))
        };
        let oldest_queued_ms = match (oldest(&pending)?, oldest(&running)?) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(QueueDepth {
            waiting: pending.len()?,
            taken: running.len()?,
            oldest_queued_ms,
        })
    }
}

/// When the line of `key` (`batch_<ns hex><random>/INDEX`) was queued, in ms.
fn queued_ms(key: &str) -> Option<u64> {
    let hex = key.strip_prefix("batch_")?.get(..16)?;
    Some(u64::from_str_radix(hex, 16).ok()? / 1_000_000)
}

/// A new batch in progress of `total` lines, with its owner and trace context.
pub(crate) fn new_batch_record(new: NewBatch, total: u64) -> StoredBatch {
    let created = now();
    let batch = Batch {
        id: new_id("batch_"),
        object: "batch".into(),
        endpoint: new.endpoint,
        errors: None,
        input_file_id: new.input_file_id,
        completion_window: new.completion_window,
        status: BatchStatus::InProgress,
        output_file_id: None,
        error_file_id: None,
        created_at: created,
        in_progress_at: Some(created),
        expires_at: Some(created.saturating_add(new.expires_in)),
        finalizing_at: None,
        completed_at: None,
        failed_at: None,
        expired_at: None,
        cancelling_at: None,
        cancelled_at: None,
        request_counts: RequestCounts {
            total,
            ..RequestCounts::default()
        },
        metadata: new.metadata,
    };
    StoredBatch {
        batch,
        owner: new.owner,
        trace: new.trace,
    }
}

/// A new stored file's record (both stores make them alike).
pub(crate) fn new_file_record(purpose: &str, filename: &str, bytes: usize) -> FileObject {
    FileObject {
        id: new_id("file-"),
        object: "file".into(),
        bytes: bytes as u64,
        created_at: now(),
        filename: filename.to_owned(),
        purpose: purpose.to_owned(),
        status: "processed".into(),
    }
}

fn insert_file(
    txn: &WriteTransaction,
    purpose: &str,
    filename: &str,
    bytes: &[u8],
    owner: Option<&str>,
) -> Result<FileObject, JobsError> {
    let file = new_file_record(purpose, filename, bytes.len());
    let mut files = txn.open_table(FILES)?;
    let mut contents = txn.open_table(CONTENTS)?;
    contents.insert(file.id.as_str(), bytes)?;
    let stored = StoredFile {
        file: file.clone(),
        owner: owner.map(str::to_owned),
    };
    write(&mut files, &file.id, &stored)?;
    Ok(file)
}

/// Whether no line of the batch is pending or running.
fn settled(
    lines: &impl ReadableTable<&'static str, &'static [u8]>,
    batch_id: &str,
) -> Result<bool, JobsError> {
    let (start, end) = batch_range(batch_id);
    for entry in lines.range(start.as_str()..end.as_str())? {
        let (_, value) = entry?;
        let line: Line = serde_json::from_slice(value.value())?;
        if line.state != LineState::Done {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes the output and error files (in line order) and ends the batch: `cancelled` when it
/// was being cancelled, `expired` when lines were left unrun as its window ended, else
/// `completed`.
fn finalize(txn: &WriteTransaction, stored: &mut StoredBatch) -> Result<(), JobsError> {
    let id = stored.batch.id.clone();
    let (mut output, mut errors) = (Vec::new(), Vec::new());
    {
        let results = txn.open_table(RESULTS)?;
        let (start, end) = batch_range(&id);
        for entry in results.range(start.as_str()..end.as_str())? {
            let (_, value) = entry?;
            let result: LineResult = serde_json::from_slice(value.value())?;
            let file = if result.failed {
                &mut errors
            } else {
                &mut output
            };
            file.extend_from_slice(result.json.as_bytes());
            file.push(b'\n');
        }
    }
    let owner = stored.owner.as_deref();
    if !output.is_empty() {
        let name = format!("{id}_output.jsonl");
        stored.batch.output_file_id =
            Some(insert_file(txn, "batch_output", &name, &output, owner)?.id);
    }
    if !errors.is_empty() {
        let name = format!("{id}_error.jsonl");
        stored.batch.error_file_id =
            Some(insert_file(txn, "batch_output", &name, &errors, owner)?.id);
    }
    let at = now();
    let batch = &mut stored.batch;
    if batch.status == BatchStatus::Cancelling {
        batch.status = BatchStatus::Cancelled;
        batch.cancelled_at = Some(at);
    } else if batch.expired_at.is_some() {
        batch.status = BatchStatus::Expired;
    } else {
        batch.status = BatchStatus::Completed;
        batch.finalizing_at = Some(at);
        batch.completed_at = Some(at);
    }
    Ok(())
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
