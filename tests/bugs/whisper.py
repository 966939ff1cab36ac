from tests.bugs.base import buggy

build, inference, latency, training = buggy("whisper")
