from tests.faults.base import faulty

build, inference, latency, training = faulty("unet2d_condition")
