"""Exactness of the FFT convolution and the sub-pixel decoder convolution against direct
convolution (values and gradients). No timing here: benchmarks/ measures speed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stae.model import fftconv
from stae.model.fftconv import fft_conv2d, fft_plan, kernel_spectrum
from stae.model.subpixel import upsample_conv2d


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("n,cin,cout,k,h,w", [(2, 3, 4, 7, 8, 8), (1, 5, 2, 15, 9, 11), (3, 6, 8, 7, 32, 32),
                                              (2, 4, 2, 15, 32, 32), (1, 2, 3, 3, 5, 7), (2, 3, 2, 1, 4, 4)])
def test_fft_conv2d_matches_direct_float64(n, cin, cout, k, h, w):
    g = torch.Generator().manual_seed(k * 100 + h)
    x = torch.randn(n, cin, h, w, generator=g, dtype=torch.float64)
    wt = torch.randn(cout, cin, k, k, generator=g, dtype=torch.float64)
    b = torch.randn(cout, generator=g, dtype=torch.float64)
    ref = F.conv2d(x, wt, b, padding=k // 2)
    out = fft_conv2d(x, wt, b)
    assert out.shape == ref.shape and out.dtype == torch.float64
    assert _rel(out, ref) < 1e-10


def test_fft_conv2d_float32_close():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 77, 32, 32, generator=g)
    wt = torch.randn(180, 77, 7, 7, generator=g) * 0.08
    ref = F.conv2d(x.double(), wt.double(), padding=3)
    out = fft_conv2d(x, wt)
    assert out.dtype == torch.float32
    assert _rel(out.double(), ref) < 1e-5


def test_fft_conv2d_gradcheck():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fft_conv2d, (x, wt, b), fast_mode=True)


def test_fft_conv2d_gradients_match_direct():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 6, 12, 10, generator=g, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(5, 6, 7, 7, generator=g, dtype=torch.float64, requires_grad=True)
    gy = torch.randn(3, 5, 12, 10, generator=g, dtype=torch.float64)
    gx_ref, gw_ref = torch.autograd.grad(F.conv2d(x, wt, padding=3), (x, wt), gy)
    gx, gw = torch.autograd.grad(fft_conv2d(x, wt), (x, wt), gy)
    assert _rel(gx, gx_ref) < 1e-10 and _rel(gw, gw_ref) < 1e-10


def test_spectral_mix_with_precomputed_adjoint_gradients():
    # Reusing one kernel spectrum and its adjoint for several inputs (as the memory does over
    # time) gives the same gradients as autograd's plain complex matmul.
    g = torch.Generator().manual_seed(3)
    xs = [torch.randn(6, 2, 3, generator=g, dtype=torch.complex128, requires_grad=True) for _ in range(3)]
    w = torch.randn(6, 3, 4, generator=g, dtype=torch.complex128, requires_grad=True)
    adj = fftconv.adjoint(w)
    loss = sum((fftconv.spectral_mix(x, w, adj).abs() ** 2).sum() for x in xs)
    grads = torch.autograd.grad(loss, xs + [w])
    loss_ref = sum((torch.bmm(x, w).abs() ** 2).sum() for x in xs)
    grads_ref = torch.autograd.grad(loss_ref, xs + [w])
    for a, b in zip(grads, grads_ref):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


def test_grad_sink_accumulates_kernel_gradient():
    g = torch.Generator().manual_seed(6)
    xs = [torch.randn(6, 2, 3, generator=g, dtype=torch.complex128, requires_grad=True) for _ in range(4)]
    w = torch.randn(6, 3, 4, generator=g, dtype=torch.complex128, requires_grad=True)
    targets = [torch.randn(6, 2, 4, generator=g, dtype=torch.complex128) for _ in range(4)]
    sink = fftconv.GradSink()
    ws = sink.attach(w)
    loss = sum(((fftconv.spectral_mix(x, ws, None, sink) - t).abs() ** 2).sum() for x, t in zip(xs, targets))
    loss = loss + (ws.abs() ** 2).sum()  # a direct use too: its gradient is added to the sink's
    grads = torch.autograd.grad(loss, xs + [w])
    loss_ref = sum(((torch.bmm(x, w) - t).abs() ** 2).sum() for x, t in zip(xs, targets)) + (w.abs() ** 2).sum()
    for a, b in zip(grads, torch.autograd.grad(loss_ref, xs + [w])):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    assert sink.acc is None  # handed out, so a second backward would start afresh


def test_kernel_adjoint_is_conjugate_transpose():
    wt = torch.randn(5, 3, 7, 7, dtype=torch.float64)
    plan = fft_plan(10, 12, 7)
    assert torch.allclose(fftconv.kernel_adjoint(wt, plan), fftconv.adjoint(kernel_spectrum(wt, plan)), atol=1e-12)


def test_spatial_major_layout_matches():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 4, 16, 16, generator=g, dtype=torch.float64)
    wt = torch.randn(6, 4, 7, 7, generator=g, dtype=torch.float64)
    plan = fft_plan(16, 16, 7)
    y = fftconv.output_from_spectrum_hwnc(
        fftconv.spectral_mix(fftconv.input_spectrum_hwnc(x.permute(2, 3, 0, 1), plan), kernel_spectrum(wt, plan)), plan)
    assert _rel(y.permute(2, 3, 0, 1), F.conv2d(x, wt, padding=3)) < 1e-10


@pytest.mark.parametrize("n,cin,cout,k,h,w,tile", [(1, 9, 12, 7, 32, 32, 8), (2, 3, 4, 7, 13, 9, 8),
                                                   (1, 5, 2, 15, 20, 20, 8), (1, 3, 2, 3, 5, 5, 4),
                                                   (1, 4, 3, 7, 20, 20, 9)])  # n = 14, 14, 22, 6, 15
def test_tiled_conv2d_matches_direct(n, cin, cout, k, h, w, tile):
    g = torch.Generator().manual_seed(h + k)
    x = torch.randn(n, cin, h, w, generator=g, dtype=torch.float64)
    wt = torch.randn(cout, cin, k, k, generator=g, dtype=torch.float64)
    b = torch.randn(cout, generator=g, dtype=torch.float64)
    tp = fftconv.tile_plan(k, tile)
    out = fftconv.tiled_conv2d(x, fftconv.tiled_kernel_spectrum(wt, tp), tp, b)
    assert _rel(out, F.conv2d(x, wt, b, padding=k // 2)) < 1e-10
    assert tp.n == tile + k - 1  # DFT matrices: any size, even or odd
    assert out.is_contiguous(memory_format=torch.channels_last) or (h % tile, w % tile) != (0, 0)
    if cout % 2 == 0:  # two groups of output channels, each (N, h, w, C_out / 2)
        grouped = fftconv.tiled_conv2d(x, fftconv.tiled_kernel_spectrum(wt, tp), tp, b, groups=2)
        assert grouped.shape == (2, n, h, w, cout // 2)
        assert torch.equal(grouped, torch.stack(out.permute(0, 2, 3, 1).chunk(2, dim=3)))


def test_plan_sizes_and_contiguous_spectrum():
    p = fft_plan(32, 32, 7)
    assert (p.n_h, p.n_w) == (36, 36) and p.freqs == 36 * 19  # smallest 2^a 3^b 5^c >= 32 + 3
    assert (fft_plan(32, 32, 15).n_h, fft_plan(9, 11, 15).n_w) == (40, 18)
    spec = kernel_spectrum(torch.randn(5, 3, 7, 7), p)
    assert spec.shape == (p.freqs, 3, 5) and spec.is_contiguous() and spec.dtype == torch.complex64
    with pytest.raises(ValueError, match="odd"):
        fft_plan(8, 8, 4)


@pytest.mark.parametrize("k", [3, 5, 7, 9])
def test_upsample_conv2d_matches_upsample_then_conv(k):
    g = torch.Generator().manual_seed(k)
    x = torch.randn(2, 3, 6, 5, generator=g, dtype=torch.float64)
    wt = torch.randn(4, 3, k, k, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    ref = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), wt, b, padding=k // 2)
    out = upsample_conv2d(x, wt, b)
    assert out.shape == ref.shape
    assert _rel(out, ref) < 1e-12


def test_upsample_conv2d_gradcheck():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 2, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(1, 2, 7, 7, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(upsample_conv2d, (x, wt, b), fast_mode=True)


def test_bf16_block_mixing_is_the_complex_mixing():
    """On values bfloat16 holds exactly (small integers: every product and sum exact too), the
    real block form in bfloat16 gives the complex matmul bit for bit."""
    g = torch.Generator().manual_seed(5)
    ints = lambda *s: torch.randint(-2, 3, s, generator=g).to(torch.float32)  # noqa: E731
    x = torch.complex(ints(6, 5, 3), ints(6, 5, 3))
    k = torch.complex(ints(6, 3, 4), ints(6, 3, 4))
    block = fftconv.bf16_block_spectrum(k)
    assert block.dtype == torch.bfloat16 and block.shape == (6, 6, 8)
    assert torch.equal(fftconv.spectral_mix(x, block), torch.bmm(x, k))


def test_tiled_conv2d_with_bf16_mixing_stays_close():
    g = torch.Generator().manual_seed(6)
    x, wt = torch.randn(1, 9, 16, 16, generator=g), torch.randn(12, 9, 7, 7, generator=g)
    tp = fftconv.tile_plan(7)
    k_spec = fftconv.tiled_kernel_spectrum(wt, tp)
    exact = fftconv.tiled_conv2d(x, k_spec, tp)
    approx = fftconv.tiled_conv2d(x, fftconv.bf16_block_spectrum(k_spec), tp)
    assert 0 < _rel(approx, exact) < 1e-2  # bfloat16's 8-bit mantissa, float32 accumulation
