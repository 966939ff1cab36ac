//! unet2d_condition in Candle: not written yet.

use arena_common::{Arrays, Error, NativeModel, Result};
use candle_core::Device;

pub fn build(_config_json: &str, _weights: Arrays, _device: &Device) -> Result<Box<dyn NativeModel>> {
    Err(Error::msg("the Candle unet2d_condition family is not implemented yet"))
}
