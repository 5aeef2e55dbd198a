//! Where prompts come from: synthetic prompts of given token lengths (fixed or drawn from a
//! distribution), a JSONL file of prompts, or a ShareGPT file. Everything random is drawn from
//! the run's seed, so the same seed sends the same requests.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Input length of synthetic prompts when none is given.
pub const DEFAULT_INPUT_TOKENS: u32 = 128;
/// Output length of synthetic prompts when none is given.
pub const DEFAULT_OUTPUT_TOKENS: u32 = 64;
/// How many distinct synthetic prompts are made (requests cycle through them).
const DEFAULT_SYNTHETIC_PROMPTS: usize = 1000;

/// The `[data]` table of the config file, or the `--data`/`--input-tokens` flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum DataSpec {
    /// Random common English words, one token each in the usual BPE vocabularies, so a prompt of
    /// N words is about N input tokens; `max_tokens` is the drawn output length.
    Synthetic {
        /// Input length in tokens.
        #[serde(default = "default_input")]
        input_tokens: LengthSpec,
        /// Output length in tokens (sent as `max_tokens`).
        #[serde(default = "default_output")]
        output_tokens: LengthSpec,
        /// Distinct prompts to make (default 1000).
        #[serde(default)]
        prompts: Option<usize>,
    },
    /// One JSON object per line: `{"prompt": "..."}` or `{"messages": [...]}`, optionally with
    /// `"max_tokens"`.
    Jsonl {
        /// The file.
        path: PathBuf,
    },
    /// A ShareGPT-format JSON array: the first human turn of each conversation is the prompt;
    /// the gpt answer's length (chars/4) is its `max_tokens` unless `max_tokens` is set.
    Sharegpt {
        /// The file.
        path: PathBuf,
    },
}

fn default_input() -> LengthSpec {
    LengthSpec::Fixed(DEFAULT_INPUT_TOKENS)
}

fn default_output() -> LengthSpec {
    LengthSpec::Fixed(DEFAULT_OUTPUT_TOKENS)
}

/// A token length: a fixed number or a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LengthSpec {
    /// Always this many.
    Fixed(u32),
    /// Drawn per prompt.
    Distribution(LengthDistribution),
}

/// A distribution of token lengths, clamped to `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum LengthDistribution {
    /// Normal with `mean` and `std_dev`, rounded and clamped.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std_dev: f64,
        /// Smallest length (default 1).
        #[serde(default)]
        min: Option<u32>,
        /// Largest length (default mean + 4 standard deviations).
        #[serde(default)]
        max: Option<u32>,
    },
    /// Uniform over `min..=max`.
    Uniform {
        /// Smallest length.
        min: u32,
        /// Largest length.
        max: u32,
    },
}

impl LengthSpec {
    fn validate(&self, what: &str) -> anyhow::Result<()> {
        match *self {
            LengthSpec::Fixed(0) => bail!("data.{what}: must be at least 1"),
            LengthSpec::Fixed(_) => Ok(()),
            LengthSpec::Distribution(LengthDistribution::Uniform { min, max }) => {
                if min == 0 || min > max {
                    bail!("data.{what}: uniform needs 1 <= min <= max (got min {min}, max {max})");
                }
                Ok(())
            }
            LengthSpec::Distribution(LengthDistribution::Normal {
                mean,
                std_dev,
                min,
                max,
            }) => {
                if !(mean.is_finite() && mean >= 1.0 && std_dev.is_finite() && std_dev >= 0.0) {
                    bail!("data.{what}: normal needs mean >= 1 and std_dev >= 0");
                }
                if min == Some(0) || min.unwrap_or(1) > max.unwrap_or(u32::MAX) {
                    bail!("data.{what}: normal needs 1 <= min <= max");
                }
                Ok(())
            }
        }
    }

    /// Draws one length.
    pub fn sample(&self, rng: &mut StdRng) -> u32 {
        match *self {
            LengthSpec::Fixed(n) => n,
            LengthSpec::Distribution(LengthDistribution::Uniform { min, max }) => {
                rng.random_range(min..=max)
            }
            LengthSpec::Distribution(LengthDistribution::Normal {
                mean,
                std_dev,
                min,
                max,
            }) => {
                // Box-Muller; 1-u1 is in (0, 1], so ln is finite.
                let u1: f64 = rng.random();
                let u2: f64 = rng.random();
                let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let lo = f64::from(min.unwrap_or(1));
                let hi = max.map_or(mean + 4.0 * std_dev, f64::from).max(lo);
                (mean + z * std_dev).round().clamp(lo, hi) as u32
            }
        }
    }
}

/// A chat message of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Text.
    pub content: String,
}

/// One prompt, ready to be turned into a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The conversation (a single user message for plain prompts).
    pub messages: Vec<Message>,
    /// Input tokens as estimated here (used only when the server reports no usage).
    pub input_tokens: u32,
    /// `max_tokens` the data asks for, if any.
    pub max_tokens: Option<u32>,
}

impl Prompt {
    fn user(text: String, input_tokens: u32, max_tokens: Option<u32>) -> Prompt {
        Prompt {
            messages: vec![Message {
                role: "user".to_owned(),
                content: text,
            }],
            input_tokens,
            max_tokens,
        }
    }

    /// The text sent as `prompt` to /v1/completions: the messages' contents, one per line.
    pub fn text(&self) -> String {
        let parts: Vec<&str> = self.messages.iter().map(|m| m.content.as_str()).collect();
        parts.join("\n")
    }
}

/// Rough token count of free text (4 characters a token), at least 1.
fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.chars().count().div_ceil(4))
        .unwrap_or(u32::MAX)
        .max(1)
}

/// Common English words that are one token each, with or without a leading space, in GPT-2
/// style BPE vocabularies (Llama, SmolLM, Qwen, GPT-4's); N of them make an N-token prompt.
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
    "been", "if", "more", "when", "will", "would", "who", "so", "no", "time", "out", "up", "about",
    "into", "than", "them", "only", "other", "new", "some", "could", "these", "two", "may",
    "first", "then", "do", "any", "like", "my", "now", "over", "such", "our", "man", "me", "even",
    "most", "made", "after", "also", "did", "many", "before", "must", "through", "back", "years",
    "where", "much", "your", "way", "well", "down", "should", "because", "each", "just", "those",
    "people", "how", "too", "little", "state", "good", "very", "make", "world", "still", "own",
    "see", "work", "long", "get", "here", "between", "both", "life", "being", "under", "never",
    "day", "same", "another", "know", "while", "last", "might", "us", "great", "old", "year",
    "off", "come", "since", "against", "go", "came", "right", "used", "take", "three",
];

impl DataSpec {
    /// Synthetic prompts of the default lengths.
    pub fn default_synthetic() -> DataSpec {
        DataSpec::Synthetic {
            input_tokens: default_input(),
            output_tokens: default_output(),
            prompts: None,
        }
    }

    /// The data file named by `--data`, its format from `--data-format` or the file name
    /// (`.jsonl` is JSONL, `.json` ShareGPT).
    pub fn from_path(path: &Path, format: Option<DataFormat>) -> anyhow::Result<DataSpec> {
        let format = match format {
            Some(f) => f,
            None => match path.extension().and_then(|e| e.to_str()) {
                Some("jsonl") => DataFormat::Jsonl,
                Some("json") => DataFormat::Sharegpt,
                _ => bail!(
                    "--data {}: cannot tell the format from the name; add --data-format jsonl or sharegpt",
                    path.display()
                ),
            },
        };
        Ok(match format {
            DataFormat::Jsonl => DataSpec::Jsonl {
                path: path.to_path_buf(),
            },
            DataFormat::Sharegpt => DataSpec::Sharegpt {
                path: path.to_path_buf(),
            },
        })
    }

    /// Checks lengths and counts (files are checked when read).
    pub fn validate(&self) -> anyhow::Result<()> {
        if let DataSpec::Synthetic {
            input_tokens,
            output_tokens,
            prompts,
        } = self
        {
            input_tokens.validate("input_tokens")?;
            output_tokens.validate("output_tokens")?;
            if *prompts == Some(0) {
                bail!("data.prompts: must be at least 1");
            }
        }
        Ok(())
    }

    /// Makes (or reads) the prompts, in the order requests use them.
    pub fn load(&self, seed: u64) -> anyhow::Result<Vec<Prompt>> {
        match self {
            DataSpec::Synthetic {
                input_tokens,
                output_tokens,
                prompts,
            } => Ok(synthetic(
                input_tokens,
                output_tokens,
                prompts.unwrap_or(DEFAULT_SYNTHETIC_PROMPTS),
                seed,
            )),
            DataSpec::Jsonl { path } => {
                let text = read(path)?;
                parse_jsonl(&text).with_context(|| format!("data file {}", path.display()))
            }
            DataSpec::Sharegpt { path } => {
                let text = read(path)?;
                parse_sharegpt(&text).with_context(|| format!("data file {}", path.display()))
            }
        }
    }
}

/// The format of a `--data` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataFormat {
    /// One JSON object per line.
    Jsonl,
    /// A ShareGPT JSON array.
    Sharegpt,
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the data file {}", path.display()))
}

fn synthetic(input: &LengthSpec, output: &LengthSpec, count: usize, seed: u64) -> Vec<Prompt> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_da7a);
    (0..count)
        .map(|_| {
            let n_in = input.sample(&mut rng);
            let n_out = output.sample(&mut rng);
            let mut text = String::with_capacity(n_in as usize * 6);
            for i in 0..n_in {
                if i > 0 {
                    text.push(' ');
                }
                text.push_str(WORDS[rng.random_range(0..WORDS.len())]);
            }
            Prompt::user(text, n_in, Some(n_out))
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonlLine {
    prompt: Option<String>,
    messages: Option<Vec<Message>>,
    max_tokens: Option<u32>,
}

/// Parses a JSONL prompts file; an error names the line.
pub fn parse_jsonl(text: &str) -> anyhow::Result<Vec<Prompt>> {
    let mut prompts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let n = i + 1;
        let parsed: JsonlLine = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("line {n} is not a valid prompt object: {e}"))?;
        let prompt = match (parsed.prompt, parsed.messages) {
            (Some(_), Some(_)) => bail!("line {n}: give `prompt` or `messages`, not both"),
            (Some(text), None) => {
                let tokens = estimate_tokens(&text);
                Prompt::user(text, tokens, parsed.max_tokens)
            }
            (None, Some(messages)) if !messages.is_empty() => {
                let tokens = messages.iter().map(|m| estimate_tokens(&m.content)).sum();
                Prompt {
                    messages,
                    input_tokens: tokens,
                    max_tokens: parsed.max_tokens,
                }
            }
            _ => bail!("line {n}: needs a `prompt` string or a non-empty `messages` array"),
        };
        prompts.push(prompt);
    }
    if prompts.is_empty() {
        bail!("no prompts in the file");
    }
    Ok(prompts)
}

#[derive(Debug, Deserialize)]
struct ShareGptEntry {
    conversations: Vec<ShareGptTurn>,
}

#[derive(Debug, Deserialize)]
struct ShareGptTurn {
    from: String,
    value: String,
}

/// Parses a ShareGPT file (a JSON array of `{"conversations": [{"from", "value"}, ...]}`).
/// Conversations without a human turn are skipped.
pub fn parse_sharegpt(text: &str) -> anyhow::Result<Vec<Prompt>> {
    let entries: Vec<ShareGptEntry> = serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!("not a ShareGPT file (a JSON array of {{\"conversations\": [{{\"from\", \"value\"}}]}}): {e}")
    })?;
    let prompts: Vec<Prompt> = entries
        .iter()
        .filter_map(|entry| {
            let turns = &entry.conversations;
            let human = turns
                .iter()
                .position(|t| t.from == "human" || t.from == "user")?;
            let question = &turns[human].value;
            if question.trim().is_empty() {
                return None;
            }
            let answer = turns[human + 1..]
                .iter()
                .find(|t| t.from == "gpt" || t.from == "assistant")
                .map(|t| estimate_tokens(&t.value));
            Some(Prompt::user(
                question.clone(),
                estimate_tokens(question),
                answer,
            ))
        })
        .collect();
    if prompts.is_empty() {
        bail!("no conversation with a human turn in the file");
    }
    Ok(prompts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_prompts_have_the_asked_lengths_and_repeat_with_the_seed() {
        let prompts = synthetic(&LengthSpec::Fixed(32), &LengthSpec::Fixed(8), 5, 1);
        assert_eq!(prompts.len(), 5);
        for p in &prompts {
            assert_eq!(p.text().split(' ').count(), 32);
            assert_eq!(p.input_tokens, 32);
            assert_eq!(p.max_tokens, Some(8));
        }
        assert_ne!(prompts[0], prompts[1], "prompts should differ");
        assert_eq!(
            prompts,
            synthetic(&LengthSpec::Fixed(32), &LengthSpec::Fixed(8), 5, 1)
        );
        assert_ne!(
            prompts,
            synthetic(&LengthSpec::Fixed(32), &LengthSpec::Fixed(8), 5, 2)
        );
    }

    #[test]
    fn distributions_stay_in_bounds_and_centre_on_the_mean() {
        let mut rng = StdRng::seed_from_u64(3);
        let normal = LengthSpec::Distribution(LengthDistribution::Normal {
            mean: 100.0,
            std_dev: 20.0,
            min: Some(50),
            max: Some(130),
        });
        let draws: Vec<u32> = (0..10_000).map(|_| normal.sample(&mut rng)).collect();
        assert!(draws.iter().all(|&d| (50..=130).contains(&d)));
        let mean = draws.iter().map(|&d| f64::from(d)).sum::<f64>() / draws.len() as f64;
        assert!((mean - 98.0).abs() < 3.0, "mean {mean}");
        assert!(draws.contains(&130), "upper clamp never reached");

        let uniform = LengthSpec::Distribution(LengthDistribution::Uniform { min: 5, max: 9 });
        let draws: Vec<u32> = (0..1000).map(|_| uniform.sample(&mut rng)).collect();
        assert!(draws.iter().all(|&d| (5..=9).contains(&d)));
        for v in 5..=9 {
            assert!(draws.contains(&v), "{v} never drawn");
        }
    }

    #[test]
    fn length_specs_parse_from_toml_and_bad_ones_are_refused() {
        let spec: DataSpec = toml::from_str(
            "type = \"synthetic\"\ninput_tokens = { type = \"normal\", mean = 64, std_dev = 8 }\noutput_tokens = 16\n",
        )
        .expect("parse");
        assert!(spec.validate().is_ok());
        let DataSpec::Synthetic { input_tokens, .. } = spec else {
            panic!("not synthetic")
        };
        assert!(matches!(
            input_tokens,
            LengthSpec::Distribution(LengthDistribution::Normal { .. })
        ));
        let bad = DataSpec::Synthetic {
            input_tokens: LengthSpec::Distribution(LengthDistribution::Uniform { min: 9, max: 2 }),
            output_tokens: LengthSpec::Fixed(1),
            prompts: None,
        };
        let err = bad.validate().expect_err("min > max accepted");
        assert!(err.to_string().contains("input_tokens"), "{err}");
    }

    #[test]
    fn jsonl_reads_prompts_and_messages_and_names_a_bad_line() {
        let prompts = parse_jsonl(
            "{\"prompt\": \"Hello there\", \"max_tokens\": 5}\n\n{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"}]}\n",
        )
        .expect("parse");
        assert_eq!(prompts.len(), 2);
        assert_eq!(prompts[0].max_tokens, Some(5));
        assert_eq!(prompts[0].messages[0].content, "Hello there");
        assert_eq!(prompts[0].input_tokens, 3);
        assert_eq!(prompts[1].messages.len(), 2);
        assert_eq!(prompts[1].text(), "Be brief.\nHi");

        let err = parse_jsonl("{\"prompt\": \"ok\"}\n{not json}\n").expect_err("bad line");
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = parse_jsonl("{\"text\": \"x\"}\n").expect_err("unknown key");
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(parse_jsonl("\n\n").is_err());
    }

    #[test]
    fn sharegpt_takes_the_first_human_turn_and_the_answer_length() {
        let prompts = parse_sharegpt(
            r#"[
              {"id": "a", "conversations": [
                {"from": "human", "value": "What is Rust?"},
                {"from": "gpt", "value": "A systems programming language."}]},
              {"id": "b", "conversations": [{"from": "gpt", "value": "orphan"}]},
              {"id": "c", "conversations": [{"from": "human", "value": "Only a question"}]}
            ]"#,
        )
        .expect("parse");
        assert_eq!(prompts.len(), 2);
        assert_eq!(prompts[0].messages[0].content, "What is Rust?");
        assert_eq!(prompts[0].max_tokens, Some(8));
        assert_eq!(prompts[1].max_tokens, None);
        assert!(parse_sharegpt("{\"not\": \"an array\"}").is_err());
        assert!(parse_sharegpt("[]").is_err());
    }
}
