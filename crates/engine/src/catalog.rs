//! Models inferd knows by name, and how a `--model` argument becomes a [`ModelSpec`].

use std::path::{Path, PathBuf};

use crate::local::LocalEngineConfig;
use crate::registry::ModelSpec;

/// The model served when none is named.
pub const DEFAULT_MODEL_ID: &str = "smollm2-135m";

/// A model inferd can find in its model cache by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    pub id: &'static str,
    /// File name inside `$INFERD_HOME/models`.
    pub file_name: &'static str,
    /// How to get the file there.
    pub fetch_hint: &'static str,
}

/// Every model known by id.
pub const KNOWN_MODELS: &[KnownModel] = &[KnownModel {
    id: DEFAULT_MODEL_ID,
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    fetch_hint: "run `make model` (or scripts/fetch-default-model.sh)",
}];

/// Why a `--model` argument could not be turned into a model.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelArgError {
    #[error("unknown model `{0}`: give a path to a .gguf file, ID=PATH, or one of: {known}", known = known_ids())]
    Unknown(String),
    #[error("model id in `{0}` is empty: write ID=PATH")]
    EmptyId(String),
    #[error("model file {path} for `{id}` does not exist; {hint}")]
    Missing {
        id: String,
        path: String,
        hint: String,
    },
}

fn known_ids() -> String {
    KNOWN_MODELS
        .iter()
        .map(|m| m.id)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cache directory for model files under an inferd home directory.
pub fn models_dir(inferd_home: &Path) -> PathBuf {
    inferd_home.join("models")
}

/// Whether `source` is a URL (`https://`, `s3://`, `file://`, …) for the artifact store.
pub fn is_url(source: &str) -> bool {
    source.contains("://")
}

/// Resolves a `--model` argument: `ID=SOURCE`, a path to a GGUF file or a URL (id = file
/// stem), or the id of a known model found in `models_dir`. Local files must exist; URLs are
/// fetched when the model loads.
pub fn resolve_model_arg(
    arg: &str,
    models_dir: &Path,
    engine: &LocalEngineConfig,
) -> Result<ModelSpec, ModelArgError> {
    let spec = |id: &str, path: PathBuf| ModelSpec::local(id, path, engine.clone());
    if let Some((id, source)) = arg.split_once('=').filter(|(id, _)| !is_url(id)) {
        if id.trim().is_empty() {
            return Err(ModelArgError::EmptyId(arg.to_owned()));
        }
        if is_url(source) {
            return Ok(ModelSpec::local(id.trim(), source.trim(), engine.clone()));
        }
        return existing(spec(id.trim(), PathBuf::from(source)), "check the path");
    }
    if is_url(arg) {
        // The id is the file stem of the URL's path (query and fragment ignored).
        let path = arg.split(['?', '#']).next().unwrap_or(arg);
        let id = path
            .rsplit('/')
            .next()
            .and_then(|name| Path::new(name).file_stem())
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ModelArgError::Unknown(arg.to_owned()))?;
        return Ok(ModelSpec::local(id, arg.trim(), engine.clone()));
    }
    if let Some(known) = KNOWN_MODELS.iter().find(|m| m.id == arg) {
        return existing(
            spec(known.id, models_dir.join(known.file_name)),
            known.fetch_hint,
        );
    }
    let path = PathBuf::from(arg);
    if path.is_file() || arg.ends_with(".gguf") {
        let id = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ModelArgError::Unknown(arg.to_owned()))?
            .to_owned();
        return existing(spec(&id, path), "check the path");
    }
    Err(ModelArgError::Unknown(arg.to_owned()))
}

fn existing(spec: ModelSpec, hint: &str) -> Result<ModelSpec, ModelArgError> {
    if Path::new(&spec.source).is_file() {
        Ok(spec)
    } else {
        Err(ModelArgError::Missing {
            id: spec.id,
            path: spec.source,
            hint: hint.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_id_resolves_into_models_dir() {
        let scratch = inferd_testkit::temp_dir("catalog-known");
        let dir = scratch.path();
        let file = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
        std::fs::write(&file, b"x").expect("write");
        let spec = resolve_model_arg("smollm2-135m", dir, &LocalEngineConfig::default())
            .expect("resolves");
        assert_eq!(spec.id, "smollm2-135m");
        assert_eq!(spec.source, file.display().to_string());
    }

    #[test]
    fn known_id_missing_file_says_how_to_fetch() {
        let scratch = inferd_testkit::temp_dir("catalog-missing");
        let dir = scratch.path();
        let err = resolve_model_arg(
            "smollm2-135m",
            &dir.join("nope"),
            &LocalEngineConfig::default(),
        )
        .expect_err("missing");
        assert!(err.to_string().contains("make model"), "{err}");
    }

    #[test]
    fn path_uses_file_stem_and_id_eq_path_overrides() {
        let scratch = inferd_testkit::temp_dir("catalog-path");
        let dir = scratch.path();
        let file = dir.join("tiny.gguf");
        std::fs::write(&file, b"x").expect("write");
        let arg = file.display().to_string();
        let cfg = LocalEngineConfig::default();
        assert_eq!(resolve_model_arg(&arg, dir, &cfg).expect("path").id, "tiny");
        let named = resolve_model_arg(&format!("mine={arg}"), dir, &cfg).expect("named");
        assert_eq!(named.id, "mine");
        assert_eq!(
            resolve_model_arg(&format!("={arg}"), dir, &cfg),
            Err(ModelArgError::EmptyId(format!("={arg}")))
        );
    }

    #[test]
    fn urls_are_taken_as_they_are_with_the_file_stem_as_id() {
        let cfg = LocalEngineConfig::default();
        let dir = Path::new("/nonexistent");
        let spec =
            resolve_model_arg("https://h.example/m/tiny.Q4.gguf?sig=1", dir, &cfg).expect("url");
        assert_eq!(spec.id, "tiny.Q4");
        assert_eq!(spec.source, "https://h.example/m/tiny.Q4.gguf?sig=1");
        let named = resolve_model_arg("mine=s3://bucket/dir/x.gguf", dir, &cfg).expect("named");
        assert_eq!(
            (named.id.as_str(), named.source.as_str()),
            ("mine", "s3://bucket/dir/x.gguf")
        );
        assert!(is_url("file:///tmp/x.gguf") && !is_url("/tmp/x.gguf"));
    }

    #[test]
    fn unknown_name_is_an_error_listing_known_ids() {
        let err = resolve_model_arg(
            "gpt-9",
            Path::new("/nonexistent"),
            &LocalEngineConfig::default(),
        )
        .expect_err("unknown");
        assert!(err.to_string().contains("smollm2-135m"));
    }
}
