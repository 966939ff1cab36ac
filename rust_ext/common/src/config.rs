//! The family configs, deserialised from the JSON of the spec's validated pydantic config
//! (`config.model_dump_json()`): the same field names as `arena/families/<family>.py`. Fields a
//! framework does not need (init scales, token ids) are ignored; derived sizes are methods, written as
//! the Python family writes them.

use serde::Deserialize;

use crate::{Error, Result};

pub fn parse<T: for<'de> Deserialize<'de>>(family: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| Error(format!("{family} config: {e}")))
}

/// LLaMA-style causal LM (transformers LlamaConfig names).
#[derive(Debug, Clone, Deserialize)]
pub struct Llama {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: Option<usize>,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub tie_word_embeddings: bool,
}

impl Llama {
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }
}

/// Whisper (transformers WhisperConfig names).
#[derive(Debug, Clone, Deserialize)]
pub struct Whisper {
    pub vocab_size: usize,
    pub num_mel_bins: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_layers: usize,
    pub decoder_attention_heads: usize,
    pub encoder_ffn_dim: usize,
    pub decoder_ffn_dim: usize,
    pub max_source_positions: usize,
    pub max_target_positions: usize,
}

impl Whisper {
    /// Mel frames of the input: two per encoder position (conv2 has stride 2).
    pub fn num_frames(&self) -> usize {
        2 * self.max_source_positions
    }
}

/// torchvision ResNet.
#[derive(Debug, Clone, Deserialize)]
pub struct Resnet {
    pub block: String, // "basic" | "bottleneck"
    pub layers: [usize; 4],
    pub num_classes: usize,
    pub groups: usize,
    pub width_per_group: usize,
}

impl Resnet {
    pub fn expansion(&self) -> usize {
        if self.block == "bottleneck" { 4 } else { 1 }
    }
}

/// diffusers UNet2DConditionModel (SD 1.x shapes).
#[derive(Debug, Clone, Deserialize)]
pub struct Unet {
    pub in_channels: usize,
    pub out_channels: usize,
    pub center_input_sample: bool,
    pub flip_sin_to_cos: bool,
    pub freq_shift: f64,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub mid_block_scale_factor: f64,
    pub norm_num_groups: usize,
    pub norm_eps: f64,
    pub cross_attention_dim: usize,
    /// The NUMBER OF HEADS per level in SD configs (diffusers naming quirk, issue #2011).
    pub attention_head_dim: HeadsPerLevel,
    pub use_linear_projection: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HeadsPerLevel {
    Same(usize),
    PerLevel(Vec<usize>),
}

impl Unet {
    pub fn heads(&self, level: usize) -> usize {
        match &self.attention_head_dim {
            HeadsPerLevel::Same(h) => *h,
            HeadsPerLevel::PerLevel(h) => h[level],
        }
    }

    pub fn time_embed_dim(&self) -> usize {
        4 * self.block_out_channels[0]
    }
}

/// The SmolVLA action expert (LlamaConfig fields of the expert plus SmolVLAConfig's).
#[derive(Debug, Clone, Deserialize)]
pub struct VlaExpert {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_max_wavelength: f64,
    pub self_attn_every_n_layers: usize,
    pub max_action_dim: usize,
    pub min_period: f64,
    pub max_period: f64,
}

impl VlaExpert {
    /// A small valid config (2 layers, one of them cross-attention) for the families' unit tests.
    pub fn tiny_example() -> Self {
        parse(
            "vla_expert",
            r#"{"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                "num_key_value_heads": 1, "head_dim": 4, "rms_norm_eps": 1e-5, "rope_max_wavelength": 10000.0,
                "self_attn_every_n_layers": 2, "max_action_dim": 3, "min_period": 0.004, "max_period": 4.0}"#,
        )
        .expect("the example config parses")
    }

    pub fn vlm_kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    pub fn is_self_attn(&self, layer: usize) -> bool {
        let n = self.self_attn_every_n_layers;
        n > 0 && layer % n == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_parses_ignoring_fields_a_framework_does_not_need() {
        let json = r#"{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": null, "max_position_embeddings": 32,
            "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": true, "initializer_range": 0.02}"#;
        let config: Llama = parse("llama", json).unwrap();
        assert_eq!(config.head_dim(), 4);
    }

    #[test]
    fn a_bad_config_names_the_family_and_the_field() {
        let err = parse::<Llama>("llama", r#"{"vocab_size": "many"}"#).unwrap_err();
        assert!(err.0.starts_with("llama config:") && err.0.contains("invalid type"), "{err}");
    }

    #[test]
    fn unet_heads_are_one_number_or_one_per_level() {
        let same: HeadsPerLevel = serde_json::from_str("8").unwrap();
        let per: HeadsPerLevel = serde_json::from_str("[5, 10]").unwrap();
        assert!(matches!(same, HeadsPerLevel::Same(8)));
        assert!(matches!(per, HeadsPerLevel::PerLevel(ref v) if v == &vec![5, 10]));
    }
}
