//! Fixed tables both frameworks compute on the host, in exactly the reference's arithmetic (dtype and
//! operation order), and then place on their device: position and time embeddings.

use crate::config::VlaExpert;

/// diffusers get_timestep_embedding (max_period 10000, scale 1) in f32 as torch computes it:
/// exponent_i = (-ln 10000 * i) / (half - shift), angle = t * exp(exponent), then [sin, cos] (or
/// [cos, sin] with flip_sin_to_cos). [b] -> [b, dim] values, row-major.
pub fn timestep_sinusoid(timesteps: &[i64], dim: usize, flip_sin_to_cos: bool, freq_shift: f64) -> Vec<f32> {
    let half = dim / 2;
    let log_period = -(10000f64.ln()) as f32;
    let denom = (half as f64 - freq_shift) as f32;
    let freqs: Vec<f32> = (0..half).map(|i| ((log_period * i as f32) / denom).exp()).collect();
    let mut out = Vec::with_capacity(timesteps.len() * dim);
    for &t in timesteps {
        let angles = freqs.iter().map(|f| t as f32 * f);
        let (sin, cos) = (angles.clone().map(f32::sin), angles.map(f32::cos));
        if flip_sin_to_cos {
            out.extend(cos.chain(sin));
        } else {
            out.extend(sin.chain(cos));
        }
    }
    out
}

/// transformers' LlamaRotaryEmbedding angles for positions 0..n: [n, head_dim / 2] values, p * inv_freq_i
/// as a float32 product, with inv_freq_i = 1 / theta^(2i / head_dim) computed in float64 and rounded.
pub fn llama_rope_angles(n: usize, head_dim: usize, theta: f64) -> Vec<f32> {
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half).map(|i| (1.0 / theta.powf(2.0 * i as f64 / head_dim as f64)) as f32).collect();
    (0..n).flat_map(|p| inv_freq.iter().map(move |f| p as f32 * f)).collect()
}

impl VlaExpert {
    /// lerobot create_sinusoidal_pos_embedding of the times [b] -> [b, hidden_size] values: sin half
    /// then cos half, computed in float64 (torch.linspace's two-sided formula for the fractions) and
    /// rounded to float32. The periods go down to 4 ms, so a float32 angle would move the output.
    pub fn time_embedding(&self, times: &[f32]) -> Vec<f32> {
        let n = self.hidden_size / 2;
        let step = if n > 1 { 1.0 / (n - 1) as f64 } else { 0.0 };
        let fraction = |i: usize| if i < n / 2 { step * i as f64 } else { 1.0 - step * (n - 1 - i) as f64 };
        let cycles: Vec<f64> = (0..n)
            .map(|i| {
                let period = self.min_period * (self.max_period / self.min_period).powf(fraction(i));
                1.0 / period * 2.0 * std::f64::consts::PI
            })
            .collect();
        let mut out = Vec::with_capacity(times.len() * 2 * n);
        for &t in times {
            out.extend(cycles.iter().map(|c| (c * t as f64).sin() as f32));
            out.extend(cycles.iter().map(|c| (c * t as f64).cos() as f32));
        }
        out
    }

    /// lerobot's RoPE angles in float32 for positions 0..n: [n, head_dim / 2] values, p / timescale_i
    /// with timescale_i = max_wavelength^(2i / head_dim).
    pub fn rope_angles(&self, n: usize) -> Vec<f32> {
        let half = self.head_dim / 2;
        let scale = 2.0f32 / self.head_dim as f32;
        let timescale: Vec<f32> = (0..half).map(|i| (self.rope_max_wavelength as f32).powf(scale * i as f32)).collect();
        (0..n).flat_map(|p| timescale.iter().map(move |t| p as f32 / t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timestep_sinusoid_is_diffusers_ordering() {
        let t = timestep_sinusoid(&[0, 3], 4, true, 0.0);
        assert_eq!(t[..4], [1.0, 1.0, 0.0, 0.0]); // cos first with flip_sin_to_cos
        assert!((t[4] - 3f32.cos()).abs() < 1e-6 && (t[6] - 3f32.sin()).abs() < 1e-6);
        assert!((t[5] - 0.03f32.cos()).abs() < 1e-6); // freq 10000^(-1/2)
    }

    #[test]
    fn the_time_embedding_is_sin_then_cos_from_the_shortest_period() {
        let e = VlaExpert::tiny_example().time_embedding(&[0.0, 0.5]);
        assert_eq!(e[..8], [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        // fraction 1: period = max_period; angle = 2 pi * 0.5 / 4
        assert!((e[8 + 3] - (std::f64::consts::PI / 4.0).sin() as f32).abs() < 1e-7);
    }

    #[test]
    fn the_llama_rope_angles_are_position_times_inverse_frequency() {
        // head_dim 4, theta 100: inv_freq [1, 1/10]; position 3
        assert_eq!(llama_rope_angles(4, 4, 100.0)[6..], [3.0f32, 0.3]);
    }

    #[test]
    fn the_rope_angles_are_position_over_timescale() {
        // position 2: [2, 2 / 100] (timescale 10000^(i/2))
        assert_eq!(VlaExpert::tiny_example().rope_angles(3)[4..], [2.0f32, 0.02]);
    }
}
