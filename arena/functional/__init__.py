"""The five architectures written once, for the frameworks that run a model as pure functions of its
official-named tensors: JAX, TensorFlow and tinygrad.

Each family module here (`llama`, `whisper`, `resnet`, `vla_expert`, `unet2d_condition`) restates the
official implementation once, as functions whose first argument `nn` is a framework's layers module.
`nn` supplies every operation on that framework's tensors: the layers (linear, norms, convolution,
attention), the few array operations the architectures need (reshape, concat, ...) and the layout a
framework keeps activations in (channels-last for XLA and TensorFlow, channels-first for tinygrad; K/V
heads-second or heads-first). `layers.Layers` is that contract, checked against every framework's
module by tests/frameworks/test_functional.py.

Each of those adapters lists this folder in its `SOURCES`, so a change here re-runs their cells.
What differs between the frameworks stays in their own package: how parameters are held and
differentiated, how a call is compiled (jit, tf.function, TinyJit), loops (lax.fori_loop, tf.while_loop,
unrolled), and rematerialisation.
"""
