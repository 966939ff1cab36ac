from tests.bugs.base import buggy

build, inference, latency, training = buggy("unet2d_condition")
