"""The published numbers stae is compared with, each where it stands in its source.

Pătrăucean, Handa & Cipolla, "Spatio-temporal video autoencoder with differentiable memory"
(arXiv:1511.06309), and, for the OpenSTL protocol, the OpenSTL benchmark. Nothing here is
measured by stae: `stae info`, `stae warp-check` and `scripts/reproduce.py` print these beside
their own measurements, labelled as published. Places are given by table, figure and section
title ("Experiments", "Network parameters"), which read the same in every version of the paper.
"""

from __future__ import annotations

from typing import Any

# Number of trainable parameters per architecture: paper Table 2, column "Number of trainable
# parameters" (section Experiments, "Synthetic dataset"). The vanilla model's 703,651 is also
# Table 1's total (section "Network parameters"). `stae info` prints them beside ours; tests/test_model_params.py pins ours to them.
PAPER_PARAMETERS: dict[str, int] = {
    "conv-1enc-1lstm": 703_651,  # Table 2, row conv-1enc-1LSTM (= Table 1, Total)
    "conv-1enc-2lstm": 6_083_563,  # Table 2, row conv-1enc-2LSTM
    "conv-2enc-1lstm": 1_285_995,  # Table 2, row conv-2enc-1LSTM
    "conv-2enc-2lstm": 6_132_203,  # Table 2, row conv-2enc-2LSTM
    "fc-2enc-1lstm": 50_404_347,  # Table 2, row fc-2enc-1LSTM
    "fc-2enc-2lstm": 83_973_115,  # Table 2, row fc-2enc-2LSTM
}

# Per-pixel binary cross-entropy test error of next-frame prediction on binary Moving MNIST:
# paper Table 2, column "Cross-entropy test error" (section Experiments, "Synthetic dataset").
PAPER_TABLE2: dict[str, float] = {
    "conv-1enc-1lstm": 0.12827,  # Table 2, row conv-1enc-1LSTM (the vanilla model)
    "conv-1enc-2lstm": 0.09116,  # Table 2, row conv-1enc-2LSTM
    "conv-2enc-1lstm": 0.11810,  # Table 2, row conv-2enc-1LSTM
    "conv-2enc-2lstm": 0.08346,  # Table 2, row conv-2enc-2LSTM (bold: the best)
    "fc-2enc-1lstm": 0.15648,  # Table 2, row fc-2enc-1LSTM
    "fc-2enc-2lstm": 0.14484,  # Table 2, row fc-2enc-2LSTM
}
# The best (bold) entry of that column, conv-2enc-2LSTM: the goal of the Table 2 reproduction.
PAPER_TABLE2_BEST = 0.08346

# Test L2-squared error per pixel on float Moving MNIST, conv-1enc-2LSTM trained with each
# loss of eq. (5): paper Table 3 (section Experiments, "Synthetic dataset"), its only row.
PAPER_TABLE3: dict[str, Any] = {
    "model": "conv-1enc-2lstm",  # Table 3, the row's architecture
    "intensity": 0.03186,  # Table 3, column "Difference-of-intensities"
    "gradient": 0.03095,  # Table 3, column "Difference-of-gradients"
    "both": 0.02964,  # Table 3, column "Sum of both"
}

# Average per-pixel error (pixel values in [0, 1]) of the grid generator + sampler warping
# Sintel frames with the true flow: paper, section Experiments, first paragraph ("The average
# per-pixel error induced by the sampler on this dataset is of 0.004"; the warping of Fig. 3).
PAPER_SINTEL_ERROR = 0.004

# Not the paper's: the ConvLSTM row of OpenSTL's Moving MNIST benchmark (Tan et al., "OpenSTL:
# a comprehensive benchmark of spatio-temporal predictive learning", NeurIPS 2023 Datasets and
# Benchmarks; 10 frames in, 10 out, 64x64, MSE and MAE summed over a frame's 4,096 pixels).
OPENSTL_CONVLSTM: dict[str, Any] = {
    "source": "OpenSTL (2023) Moving MNIST benchmark, ConvLSTM row",
    "params": 15_000_000,  # "15.0M" parameters
    "epochs": 200,  # training epochs of the row
    "train_sequences": 10_000,  # sequences per epoch
    "sequences_seen": 2_000_000,  # epochs x sequences per epoch
    "mse_per_frame": 29.80,
    "mae_per_frame": 90.64,
    "ssim": 0.9288,
    "psnr": 22.10,
}

# Video Pixel Networks (Kalchbrenner et al. 2016), Table 1: Moving MNIST 10 -> 10 on binarised
# frames, cross-entropy in nats per frame (summed over the 64x64 pixels, averaged over the 10
# predicted frames). The table states no parameter counts or training budgets.
VPN_NATS: dict[str, Any] = {
    "source": "Kalchbrenner et al. (2016), Video Pixel Networks, Table 1 (Moving MNIST, nats per frame)",
    "rows": {"Shi et al. (ConvLSTM)": 367.2, "Srivastava et al.": 341.2, "De Brabandere et al.": 285.2,
             "Cricri et al.": 187.7, "Pătrăucean et al. (this paper)": 179.8, "VPN baseline": 110.1,
             "VPN": 87.6, "lower bound": 86.3},
}
