from tests.faults.base import faulty

build, inference, latency, training = faulty("vla_expert")
