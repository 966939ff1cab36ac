"""The one place where PyTorch layouts meet channels-last frameworks: every conversion round-trips and
puts each element where the framework's op expects it."""

from __future__ import annotations

import numpy as np
import pytest

from arena.frameworks.layouts import grads_to_official, kernel_from, kernel_to, kernels_to, to_channels_first, to_channels_last, trainable_names

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(8, 3, 7, 5), (16, 80, 3)])
def test_kernel_round_trips_and_element_placement(shape):
    kernel = RNG.standard_normal(shape).astype(np.float32)
    out, cin, *k = (s - 1 for s in shape)  # the last element along every axis
    channels_last = kernel_to(kernel, "channels_last")  # [out, *k, in]
    assert channels_last.shape == (shape[0], *shape[2:], shape[1])
    assert channels_last[(out, *k, cin)] == kernel[(out, cin, *k)]
    spatial_first = kernel_to(kernel, "spatial_first")  # [*k, in, out]
    assert spatial_first.shape == (*shape[2:], shape[1], shape[0])
    assert spatial_first[(*k, cin, out)] == kernel[(out, cin, *k)]
    for layout, converted in (("channels_last", channels_last), ("spatial_first", spatial_first)):
        np.testing.assert_array_equal(kernel_from(converted, layout), kernel)


def test_activations_round_trip():
    images = RNG.standard_normal((2, 3, 5, 4)).astype(np.float32)
    nhwc = to_channels_last(images)
    assert nhwc.shape == (2, 5, 4, 3) and nhwc[1, 4, 3, 2] == images[1, 2, 4, 3]
    np.testing.assert_array_equal(to_channels_first(nhwc), images)


def test_channels_last_conv_matches_pytorch_conv():
    """A kernel converted here, applied channels-last, gives PyTorch's NCHW convolution."""
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w)).numpy()
    xl, wl = to_channels_last(x), kernel_to(w, "channels_last")  # NHWC, OHWI
    out = np.zeros((1, 4, 4, 4), np.float32)
    for i in range(4):
        for j in range(4):
            out[0, i, j] = np.einsum("hwc,ohwc->o", xl[0, i : i + 3, j : j + 3], wl)
    np.testing.assert_allclose(to_channels_first(out), expected, rtol=1e-5, atol=1e-5)


def test_state_dict_conversion_touches_only_kernels():
    weights = {"conv.weight": np.zeros((4, 3, 3, 3)), "fc.weight": np.zeros((5, 4)), "bn.bias": np.zeros(4)}
    converted = kernels_to(weights | {"conv.weight": np.zeros((4, 3, 5, 5))}, "spatial_first")
    assert converted["conv.weight"].shape == (5, 5, 3, 4)
    assert converted["fc.weight"] is weights["fc.weight"] and converted["bn.bias"] is weights["bn.bias"]
    grads = grads_to_official({"conv.weight": np.zeros((4, 7, 7, 3)), "fc.weight": np.zeros((5, 4))}, "channels_last")
    assert grads["grad/conv.weight"].shape == (4, 3, 7, 7) and grads["grad/fc.weight"].shape == (5, 4)


def test_trainable_names_skip_buffers_and_integers():
    weights = {
        "conv.weight": np.zeros(3, np.float32),
        "bn.running_mean": np.zeros(3, np.float32),
        "bn.num_batches_tracked": np.zeros((), np.int64),
        "encoder.embed_positions.weight": np.zeros(3, np.float32),
    }
    frozen = ("running_mean", "num_batches_tracked", "embed_positions.weight")
    assert trainable_names(weights, frozen) == ["conv.weight"]
