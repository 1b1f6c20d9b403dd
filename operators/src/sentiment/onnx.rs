//! A transformer sentiment scorer over ONNX Runtime (cargo feature `sentiment-onnx`).
//!
//! ONNX Runtime is loaded at run time (`ort` with `load-dynamic`): nothing is downloaded at build
//! time, and the default build does not link it. A model directory holds:
//! - `model.onnx`: a BERT-family encoder taking `input_ids`, `attention_mask` and (when it has
//!   that input) `token_type_ids`, all int64 `[batch, sequence]`;
//! - `tokenizer.json`: its Hugging Face tokenizer;
//! - `cryptoflow-sentiment.json`: how to read the output —
//!   - `{"kind": "classifier", "labels": [...]}` for a sequence classifier (FinBERT,
//!     CryptoBERT exported by the user): logits `[batch, labels]`, softmax; each label is
//!     `negative`/`neutral`/`positive` (or `bearish`/`bullish`, any case);
//!   - `{"kind": "embedding_head", "labels": [...], "normalize": true, "weights": [[...]],
//!     "bias": [...]}` for a sentence-embedding encoder (all-MiniLM-L6-v2) plus a small linear
//!     head: attention-masked mean of `last_hidden_state`, optionally L2-normalized, then
//!     `weights · e + bias` and softmax;
//!   - optional `name` (stored as the model name, default `onnx-<dir name>`), `max_length`
//!     (tokens, default 128) and `output` (output name, default the first).
//!
//! Scores: the class probabilities as `neg`/`neu`/`pos` (0 for a class the model lacks) and
//! `compound = pos − neg`, unrounded. Texts are scored one at a time with padding off, the
//! same inputs the Python reference (`tests/reference/onnx_reference.py`) feeds onnxruntime.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;

use super::{SentimentModel, SentimentScore};

/// How to load ONNX Runtime and run the model.
#[derive(Debug, Clone, Default)]
pub struct OnnxOptions {
    /// `libonnxruntime.so`; `None`: `ORT_DYLIB_PATH`, else the library search path.
    pub runtime_library: Option<PathBuf>,
    /// Intra-op threads per inference (at least 1).
    pub threads: usize,
}

/// An error loading or running the model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// A file of the model directory could not be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The configuration does not fit the model.
    #[error("cryptoflow-sentiment.json: {0}")]
    Config(String),
    /// ONNX Runtime failed.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Classifier,
    EmbeddingHead,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelConfig {
    kind: Kind,
    labels: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "default_max_length")]
    max_length: usize,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    normalize: bool,
    #[serde(default)]
    weights: Vec<Vec<f64>>,
    #[serde(default)]
    bias: Vec<f64>,
    /// Free-form notes (provenance, training), ignored.
    #[serde(default)]
    #[allow(dead_code)]
    notes: Option<serde_json::Value>,
}

fn default_max_length() -> usize {
    128
}

/// Which of neg/neu/pos a label is.
fn class_of(label: &str) -> Option<usize> {
    match label.to_ascii_lowercase().as_str() {
        "negative" | "bearish" | "neg" => Some(0),
        "neutral" | "neu" => Some(1),
        "positive" | "bullish" | "pos" => Some(2),
        _ => None,
    }
}

/// The transformer scorer.
pub struct OnnxSentiment {
    session: Mutex<Session>,
    tokenizer: tokenizers::Tokenizer,
    config: ModelConfig,
    classes: Vec<usize>,
    token_type_ids: bool,
    output: String,
    name: String,
}

fn read(path: &Path) -> Result<String, OnnxError> {
    std::fs::read_to_string(path).map_err(|e| OnnxError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn rt(e: impl std::fmt::Display) -> OnnxError {
    OnnxError::Runtime(e.to_string())
}

impl OnnxSentiment {
    /// Loads ONNX Runtime (once per process), the model, its tokenizer and its configuration.
    pub fn load(dir: &Path, options: &OnnxOptions) -> Result<Self, OnnxError> {
        let config_path = dir.join("cryptoflow-sentiment.json");
        let config: ModelConfig =
            serde_json::from_str(&read(&config_path)?).map_err(|e| OnnxError::File {
                path: config_path.clone(),
                message: e.to_string(),
            })?;
        let classes = config
            .labels
            .iter()
            .map(|l| {
                class_of(l).ok_or_else(|| {
                    OnnxError::Config(format!(
                        "label {l:?} is not negative/neutral/positive (or bearish/bullish)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if classes.len() < 2 {
            return Err(OnnxError::Config("at least two labels are needed".into()));
        }
        if config.kind == Kind::EmbeddingHead
            && (config.weights.len() != classes.len() || config.bias.len() != classes.len())
        {
            return Err(OnnxError::Config(format!(
                "embedding_head needs one weight row and one bias per label ({} labels, {} rows, {} biases)",
                classes.len(),
                config.weights.len(),
                config.bias.len()
            )));
        }
        if config.max_length < 2 {
            return Err(OnnxError::Config("max_length must be at least 2".into()));
        }

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(&tokenizer_path).map_err(|e| OnnxError::File {
                path: tokenizer_path.clone(),
                message: e.to_string(),
            })?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: config.max_length,
                ..Default::default()
            }))
            .map_err(|e| OnnxError::Tokenizer(e.to_string()))?;

        let model_path = dir.join("model.onnx");
        if !model_path.is_file() {
            return Err(OnnxError::File {
                path: model_path,
                message: "not found".into(),
            });
        }
        let library = options
            .runtime_library
            .clone()
            .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from));
        if let Some(lib) = &library {
            if !lib.is_file() {
                return Err(OnnxError::File {
                    path: lib.clone(),
                    message: "ONNX Runtime's library is not there (set [sentiment.onnx] runtime_library or ORT_DYLIB_PATH to libonnxruntime.so)".into(),
                });
            }
        }
        // `ort` panics when the library cannot be loaded or is too old: report that as an error.
        let threads = options.threads.max(1);
        let build = std::panic::catch_unwind(|| -> Result<Session, OnnxError> {
            let env = match &library {
                Some(lib) => ort::init_from(lib.display().to_string()),
                None => ort::init(),
            };
            // A second load in the same process keeps the first environment; that is fine.
            env.with_name("cryptoflow").commit().map_err(rt)?;
            Session::builder()
                .map_err(rt)?
                .with_intra_threads(threads)
                .map_err(rt)?
                .with_inter_threads(1)
                .map_err(rt)?
                .commit_from_file(&model_path)
                .map_err(rt)
        });
        let session = match build {
            Ok(session) => session?,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown failure".into());
                return Err(OnnxError::Runtime(format!(
                    "cannot load ONNX Runtime ({}): {why}",
                    library
                        .as_ref()
                        .map_or("libonnxruntime.so on the library path".to_string(), |p| p
                            .display()
                            .to_string())
                )));
            }
        };
        let names: Vec<&str> = session.inputs.iter().map(|i| i.name.as_str()).collect();
        for needed in ["input_ids", "attention_mask"] {
            if !names.contains(&needed) {
                return Err(OnnxError::Config(format!(
                    "the model has no input {needed:?} (inputs: {names:?})"
                )));
            }
        }
        let token_type_ids = names.contains(&"token_type_ids");
        let output = match &config.output {
            Some(o) => {
                if !session.outputs.iter().any(|x| &x.name == o) {
                    return Err(OnnxError::Config(format!("the model has no output {o:?}")));
                }
                o.clone()
            }
            None => session
                .outputs
                .first()
                .map(|o| o.name.clone())
                .ok_or_else(|| OnnxError::Config("the model has no outputs".into()))?,
        };
        let name = config.name.clone().unwrap_or_else(|| {
            format!(
                "onnx-{}",
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )
        });
        Ok(OnnxSentiment {
            session: Mutex::new(session),
            tokenizer,
            config,
            classes,
            token_type_ids,
            output,
            name,
        })
    }

    /// The class probabilities of one text, in the order of the configured labels.
    pub fn probabilities(&self, text: &str) -> Result<Vec<f64>, OnnxError> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| OnnxError::Tokenizer(e.to_string()))?;
        let len = enc.get_ids().len();
        let ids: Vec<i64> = enc.get_ids().iter().map(|&x| i64::from(x)).collect();
        let mask: Vec<i64> = enc
            .get_attention_mask()
            .iter()
            .map(|&x| i64::from(x))
            .collect();
        let mut inputs: Vec<(
            std::borrow::Cow<'_, str>,
            ort::session::SessionInputValue<'_>,
        )> = vec![
            (
                "input_ids".into(),
                Tensor::from_array(([1usize, len], ids)).map_err(rt)?.into(),
            ),
            (
                "attention_mask".into(),
                Tensor::from_array(([1usize, len], mask.clone()))
                    .map_err(rt)?
                    .into(),
            ),
        ];
        if self.token_type_ids {
            let types: Vec<i64> = enc.get_type_ids().iter().map(|&x| i64::from(x)).collect();
            inputs.push((
                "token_type_ids".into(),
                Tensor::from_array(([1usize, len], types))
                    .map_err(rt)?
                    .into(),
            ));
        }
        let mut session = self
            .session
            .lock()
            .map_err(|_| OnnxError::Runtime("a previous inference panicked".into()))?;
        let outputs = session.run(inputs).map_err(rt)?;
        let value = outputs
            .get(&self.output)
            .ok_or_else(|| OnnxError::Runtime(format!("no output {:?}", self.output)))?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(rt)?;
        let logits = match self.config.kind {
            Kind::Classifier => {
                if data.len() != self.classes.len() {
                    return Err(OnnxError::Config(format!(
                        "the classifier gives {} logits for {} labels (shape {shape:?})",
                        data.len(),
                        self.classes.len()
                    )));
                }
                data.iter().map(|&x| f64::from(x)).collect()
            }
            Kind::EmbeddingHead => {
                let dims: Vec<i64> = shape.iter().copied().collect();
                let (seq, dim) = match dims.as_slice() {
                    [1, s, d] => (*s as usize, *d as usize),
                    _ => {
                        return Err(OnnxError::Config(format!(
                            "expected a [1, sequence, dim] output, got {dims:?}"
                        )))
                    }
                };
                let embedding = mean_pool(data, &mask, seq, dim, self.config.normalize);
                head(&self.config.weights, &self.config.bias, &embedding)?
            }
        };
        Ok(softmax(&logits))
    }
}

/// The attention-masked mean over tokens, optionally L2-normalized (sentence-transformers'
/// pooling; the normalization divides by max(‖e‖, 1e-12) as torch's `normalize` does).
fn mean_pool(data: &[f32], mask: &[i64], seq: usize, dim: usize, normalize: bool) -> Vec<f64> {
    let mut sum = vec![0.0f64; dim];
    let mut count = 0.0f64;
    for t in 0..seq {
        if mask.get(t).copied().unwrap_or(0) == 0 {
            continue;
        }
        count += 1.0;
        for (s, &x) in sum.iter_mut().zip(&data[t * dim..(t + 1) * dim]) {
            *s += f64::from(x);
        }
    }
    let count = count.max(1e-9);
    let mut e: Vec<f64> = sum.into_iter().map(|s| s / count).collect();
    if normalize {
        let norm = e.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        for x in &mut e {
            *x /= norm;
        }
    }
    e
}

fn head(weights: &[Vec<f64>], bias: &[f64], e: &[f64]) -> Result<Vec<f64>, OnnxError> {
    weights
        .iter()
        .zip(bias)
        .map(|(row, b)| {
            if row.len() != e.len() {
                return Err(OnnxError::Config(format!(
                    "head rows have {} weights for a {}-dimensional embedding",
                    row.len(),
                    e.len()
                )));
            }
            Ok(row.iter().zip(e).map(|(w, x)| w * x).sum::<f64>() + b)
        })
        .collect()
}

fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|x| (x - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    exp.into_iter().map(|x| x / total).collect()
}

impl SentimentModel for OnnxSentiment {
    fn name(&self) -> &str {
        &self.name
    }

    /// Scores one text; a text the runtime cannot score (it logs why) scores neutral.
    fn score(&self, text: &str) -> SentimentScore {
        let mut s = [0.0f64; 3];
        match self.probabilities(text) {
            Ok(p) => {
                for (class, prob) in self.classes.iter().zip(p) {
                    s[*class] += prob;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "sentiment model failed on a text; scored neutral");
                s[1] = 1.0;
            }
        }
        SentimentScore {
            neg: s[0],
            neu: s[1],
            pos: s[2],
            compound: s[2] - s[0],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_head_and_softmax() {
        // Two tokens of dim 2, the second masked out.
        let e = mean_pool(&[3.0, 4.0, 100.0, 100.0], &[1, 0], 2, 2, true);
        assert!((e[0] - 0.6).abs() < 1e-12 && (e[1] - 0.8).abs() < 1e-12);
        let l = head(&[vec![1.0, 0.0], vec![0.0, 1.0]], &[0.0, 0.5], &e).unwrap();
        assert_eq!(l, vec![0.6, 1.3]);
        let p = softmax(&[0.0, 0.0, 0.0]);
        assert!(p.iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-15));
        assert!(head(&[vec![1.0]], &[0.0], &e).is_err());
    }

    #[test]
    fn labels_map_to_classes() {
        assert_eq!(class_of("Bearish"), Some(0));
        assert_eq!(class_of("NEUTRAL"), Some(1));
        assert_eq!(class_of("positive"), Some(2));
        assert_eq!(class_of("joy"), None);
    }

    #[test]
    fn a_missing_runtime_library_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("cf-onnx-lib-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("cryptoflow-sentiment.json"),
            r#"{"kind": "classifier", "labels": ["negative", "neutral", "positive"]}"#,
        )
        .unwrap();
        // A minimal WordPiece tokenizer.
        std::fs::write(
            dir.join("tokenizer.json"),
            r###"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
               "pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
               "model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##",
                        "max_input_chars_per_word":100,"vocab":{"[UNK]":0,"up":1}}}"###,
        )
        .unwrap();
        std::fs::write(dir.join("model.onnx"), b"not a model").unwrap();
        let options = OnnxOptions {
            runtime_library: Some(dir.join("libonnxruntime.so")),
            threads: 1,
        };
        let err = OnnxSentiment::load(&dir, &options).err().expect("error");
        assert!(
            err.to_string()
                .contains("runtime_library or ORT_DYLIB_PATH"),
            "{err}"
        );
        // A file that is not a library: `ort` panics inside; the scorer reports an error.
        std::fs::write(dir.join("libonnxruntime.so"), b"not a library").unwrap();
        let err = OnnxSentiment::load(&dir, &options).err().expect("error");
        assert!(
            err.to_string().contains("cannot load ONNX Runtime"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let err = OnnxSentiment::load(Path::new("/nonexistent/model"), &OnnxOptions::default())
            .err()
            .expect("error");
        assert!(
            err.to_string().contains("cryptoflow-sentiment.json"),
            "{err}"
        );
    }
}
