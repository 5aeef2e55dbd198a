//! Models in the `--config` file: `models` is a list whose entries are either what `--model`
//! takes (`"smollm2-135m"`, `"ID=PATH"`) or tables with every setting; and the memory budget.

use std::path::Path;

use anyhow::{bail, Context};
use inferd_engine::catalog;
use inferd_engine::local::LocalEngineConfig;
use inferd_engine::ModelSpec;
use serde::Deserialize;

/// Most sequences one engine decodes together (llama.cpp's limit is 256; KV cache and step
/// size grow with it).
const MAX_PARALLEL: u32 = 64;

/// Checks a `parallel` setting.
pub fn check_parallel(n: u32) -> anyhow::Result<()> {
    if !(1..=MAX_PARALLEL).contains(&n) {
        bail!("must be between 1 and {MAX_PARALLEL} sequences, not {n}");
    }
    Ok(())
}

/// Checks a `prefill_chunk` setting.
pub fn check_prefill_chunk(n: u32) -> anyhow::Result<()> {
    if !(8..=8192).contains(&n) {
        bail!("must be between 8 and 8192 tokens, not {n}");
    }
    Ok(())
}

/// One entry of the file's `models` list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileModel {
    /// As `--model` takes it.
    Arg(String),
    Table(ModelTable),
}

/// A model with every setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelTable {
    id: String,
    /// A known model id, a path to a .gguf file, or a URL (http(s)://, s3://, file://).
    source: String,
    #[serde(default)]
    aliases: Vec<String>,
    /// Expected sha256 (hex) of the file.
    sha256: Option<String>,
    ctx_size: Option<u32>,
    threads: Option<usize>,
    max_queue: Option<usize>,
    /// Sequences decoded together (overrides the server-wide `parallel`).
    parallel: Option<u32>,
    /// Prompt tokens per engine step (overrides the server-wide `prefill_chunk`).
    prefill_chunk: Option<u32>,
    /// `startup` (default) or `on_demand` (first request loads it).
    load: Option<String>,
}

/// A `models` entry as a [`ModelSpec`]; `engine` holds the server-wide engine settings.
pub fn spec(
    model: &FileModel,
    models_dir: &Path,
    engine: &LocalEngineConfig,
) -> anyhow::Result<ModelSpec> {
    match model {
        FileModel::Arg(arg) => Ok(catalog::resolve_model_arg(arg, models_dir, engine)?),
        FileModel::Table(t) => table_spec(t, models_dir, engine),
    }
}

fn table_spec(
    t: &ModelTable,
    models_dir: &Path,
    engine: &LocalEngineConfig,
) -> anyhow::Result<ModelSpec> {
    let id = t.id.trim();
    if id.is_empty() {
        bail!("a model table has an empty id");
    }
    let mut engine = engine.clone();
    if let Some(n) = t.ctx_size {
        if n < 64 {
            bail!("model `{id}`: ctx_size must be at least 64 tokens");
        }
        engine.context_length = Some(n);
    }
    if let Some(n) = t.threads {
        if n == 0 {
            bail!("model `{id}`: threads must be at least 1");
        }
        engine.threads = n;
    }
    if let Some(n) = t.max_queue {
        if n == 0 {
            bail!("model `{id}`: max_queue must be at least 1");
        }
        engine.max_queue = n;
    }
    if let Some(n) = t.parallel {
        check_parallel(n).with_context(|| format!("model `{id}`: parallel"))?;
        engine.parallel = n;
    }
    if let Some(n) = t.prefill_chunk {
        check_prefill_chunk(n).with_context(|| format!("model `{id}`: prefill_chunk"))?;
        engine.prefill_chunk = n;
    }
    let mut spec = if t.source.contains("://") {
        ModelSpec::local(id, &t.source, engine)
    } else {
        // A known id or a path, checked now so a typo fails at start-up.
        let mut spec = catalog::resolve_model_arg(
            &format!("{id}={}", known_or_path(&t.source, models_dir)),
            models_dir,
            &engine,
        )
        .with_context(|| format!("model `{id}`"))?;
        spec.engine = engine;
        spec
    };
    spec.aliases = t.aliases.clone();
    if let Some(sha) = &t.sha256 {
        let sha = sha.trim().to_ascii_lowercase();
        if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("model `{id}`: sha256 must be 64 hex digits");
        }
        spec.sha256 = Some(sha);
    }
    spec.load_at_startup = match t.load.as_deref() {
        None | Some("startup") => true,
        Some("on_demand") => false,
        Some(other) => bail!("model `{id}`: load = `{other}`; expected startup or on_demand"),
    };
    Ok(spec)
}

/// The path of a known model's file, or `source` itself.
fn known_or_path(source: &str, models_dir: &Path) -> String {
    catalog::KNOWN_MODELS
        .iter()
        .find(|m| m.id == source)
        .map_or_else(
            || source.to_owned(),
            |m| models_dir.join(m.file_name).display().to_string(),
        )
}

/// A size such as `2GiB`, `512MiB`, `1.5GB`, `800M` or plain bytes.
pub fn parse_bytes(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .with_context(|| format!("`{text}` is not a size (e.g. 2GiB, 512MiB, 1000000)"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            bail!("unknown size unit `{other}` in `{text}` (use B, KB, MB, GB, KiB, MiB, GiB)")
        }
    };
    let bytes = value * scale;
    if !(1.0..=1e18).contains(&bytes) {
        bail!("size `{text}` is out of range");
    }
    // f64 is exact only up to 2^53: a whole number is multiplied exactly, and a fraction is
    // rounded to the nearest byte, not cut (1.15 × 1000 is 1149.999… in f64).
    match number.parse::<u64>() {
        Ok(whole) => match whole.checked_mul(scale as u64) {
            Some(bytes) if bytes <= 1_000_000_000_000_000_000 => Ok(bytes),
            _ => bail!("size `{text}` is out of range"),
        },
        Err(_) => Ok(bytes.round() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_bytes("1000").expect("plain"), 1000);
        assert_eq!(parse_bytes("2GiB").expect("gib"), 2 * 1024 * 1024 * 1024);
        assert_eq!(parse_bytes("1.5GB").expect("gb"), 1_500_000_000);
        assert_eq!(parse_bytes("512 MiB").expect("space"), 512 * 1024 * 1024);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
        assert!(parse_bytes("0").is_err());
    }

    #[test]
    fn model_tables_set_aliases_load_policy_and_engine_settings() {
        let scratch = inferd_testkit::temp_dir("models");
        let dir = scratch.path();
        std::fs::create_dir_all(dir).expect("mkdir");
        let file = dir.join("m.gguf");
        std::fs::write(&file, b"x").expect("write");
        let toml_text = format!(
            "models = [\"x={}\", {{ id = \"lazy\", source = \"{}\", aliases = [\"l\"], load = \"on_demand\", ctx_size = 512, parallel = 2, prefill_chunk = 64, sha256 = \"{}\" }}, {{ id = \"far\", source = \"https://example.com/m.gguf\" }}]",
            file.display(),
            file.display(),
            "ab".repeat(32)
        );
        #[derive(Deserialize)]
        struct F {
            models: Vec<FileModel>,
        }
        let parsed: F = toml::from_str(&toml_text).expect("toml");
        let engine = LocalEngineConfig::default();
        let specs: Vec<ModelSpec> = parsed
            .models
            .iter()
            .map(|m| spec(m, dir, &engine).expect("spec"))
            .collect();
        assert_eq!(specs[0].id, "x");
        assert!(specs[0].load_at_startup);
        assert_eq!(specs[1].aliases, vec!["l"]);
        assert!(!specs[1].load_at_startup);
        assert_eq!(specs[1].engine.context_length, Some(512));
        assert_eq!(specs[1].engine.parallel, 2);
        assert_eq!(specs[1].engine.prefill_chunk, 64);
        assert_eq!(
            specs[0].engine.parallel, engine.parallel,
            "the server-wide default"
        );
        assert_eq!(specs[1].sha256.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(specs[2].source, "https://example.com/m.gguf");
        let bad: F =
            toml::from_str("models = [{ id = \"y\", source = \"/nope/y.gguf\" }]").expect("toml");
        let err = spec(&bad.models[0], dir, &engine).expect_err("missing file");
        assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
        let bad: F = toml::from_str(&format!(
            "models = [{{ id = \"y\", source = \"{}\", load = \"later\" }}]",
            file.display()
        ))
        .expect("toml");
        assert!(spec(&bad.models[0], dir, &engine).is_err());
        let bad: F = toml::from_str(&format!(
            "models = [{{ id = \"y\", source = \"{}\", parallel = 0 }}]",
            file.display()
        ))
        .expect("toml");
        let err = spec(&bad.models[0], dir, &engine).expect_err("parallel 0");
        assert!(format!("{err:#}").contains("parallel"), "{err:#}");
    }
}

#[cfg(test)]
#[path = "models_proptests.rs"]
mod proptests;
