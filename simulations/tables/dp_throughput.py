"""`make bench TABLE=dp-throughput`: DP-SGD training throughput per grad-sample mode.

Local training samples/s of every grad-sample mode against non-DP training, for every default
model (one process, repetitions interleaved, each ratio within a repetition), with what one
step's secure noise costs next to a non-DP step.
"""

from __future__ import annotations

import statistics
import sys
import time

from bench_runner import ROOT, Settings, Table, spend

from fedkd.privacy.modes import GRAD_SAMPLE_MODES

DP_THROUGHPUT_TARGET = 0.85
GRAD_SAMPLE_COLUMNS = ("output-grads", *(m for m in GRAD_SAMPLE_MODES if m != "output-grads"))
"""fedkd's own mode first, then every other registered one (a new mode is a new column)."""


def build(s: Settings) -> Table:
    """The table from its runs (complete ones are reused), or its code path on the smoke
    setting's tiny one."""
    sys.path.insert(0, str(ROOT / "simulations"))
    from bench_dp_throughput import measure, synthetic_records
    from bench_secure_noise import step_noise_seconds

    from fedkd.allocator import keep_freed_memory
    from fedkd.models import ModelSpec, build_model

    keep_freed_memory()  # as a node's process does (the allocator table measures what it does)
    if s.smoke:
        records, reps, cells = 512, 1, [("cnn-s", 256), ("mlp-m", 256)]
    else:  # every default model at a usual DP-SGD batch; the MLP also where noise amortises
        records, reps = 6000, 9
        cells = [
            ("scatnet-linear", 256), ("cnn-m", 256), ("cnn-s", 256), ("mlp-m", 256),
            ("mlp-m", 1024),
        ]  # fmt: skip
    x, y = synthetic_records(records)
    rows, measured = [], {}
    for model_name, batch in cells:
        started = time.perf_counter()
        got = measure(model_name, x, y, device="cpu", batch=batch, physical=512, reps=reps)
        spend(time.perf_counter() - started)
        model = build_model(model_name, ModelSpec(input_shape=(1, 28, 28), num_classes=10))
        params = [p.detach() for p in model.parameters()]
        noise_s = statistics.median(step_noise_seconds(params, "csprng") for _ in range(30))
        torch_noise_s = statistics.median(
            step_noise_seconds(params, "torch-secure") for _ in range(30)
        )
        non_dp = got["samples_per_s_median"]["none"]
        step_s = batch / non_dp
        ratio, every = got["ratio_to_non_dp"], got["ratio_to_non_dp_all"]
        default = got["default_mode"]
        measured[f"{model_name}@{batch}"] = {
            **got, "noise_s": noise_s, "torch_secure_noise_s": torch_noise_s,
            "non_dp_step_s": step_s,
        }  # fmt: skip
        rows.append([
            model_name, str(batch), f"{non_dp:,.0f}",
            *(f"{ratio[m]:.2f}× [{min(every[m]):.2f}–{max(every[m]):.2f}]"
              for m in GRAD_SAMPLE_COLUMNS),
            f"{default}: {ratio[default]:.2f}×",
            f"{1e3 * noise_s:.2f} ms ({1e3 * torch_noise_s:.2f} ms) vs {1e3 * step_s:.2f} ms",
            f"{step_s / (step_s + noise_s):.2f}×",
        ])  # fmt: skip
    at_256 = {
        name.split("@")[0]: got["ratio_to_non_dp"][got["default_mode"]]
        for name, got in measured.items()
        if name.endswith("@256")
    }
    met = [name for name, ratio in at_256.items() if ratio >= DP_THROUGHPUT_TARGET]
    headline = "default mode at logical batch 256: " + ", ".join(
        f"{name} {ratio:.2f}×" for name, ratio in at_256.items()
    )
    headline += (
        f"; target ≥ {DP_THROUGHPUT_TARGET}× met for every default model"
        if len(met) == len(at_256)
        else f"; target ≥ {DP_THROUGHPUT_TARGET}× met by {', '.join(met) or 'none'}"
    )
    return Table(
        name="dp-throughput",
        title="DP at CNN scale: DP-SGD training throughput per grad-sample mode",
        command="make bench TABLE=dp-throughput  # CPU; simulations/bench_dp_throughput.py",
        columns=[
            "model",
            "logical batch",
            "non-DP samples/s",
            *GRAD_SAMPLE_COLUMNS,
            "default",
            "CSPRNG noise (torch secure mode) vs non-DP step",
            "bound from the noise alone",
        ],
        rows=rows,
        headline=headline,
        notes=[
            f"One process, {records:,} MNIST-shaped records, {reps} repetitions; each "
            "repetition times one epoch of non-DP training and one of every mode back to "
            "back in rotating order, and a mode's ratio is taken within its repetition "
            "(median [range]). DP: Poisson sampling, BatchMemoryManager (physical ≤ 512), "
            "σ = 1, C = 1, the per-call set-up (make_private) inside the epoch, as in a round.",
            "output-grads is fedkd's mode (fedkd/privacy/output_grads.py): one backward pass "
            "without batched parameter gradients; Linear layers clipped from ‖g_i‖·‖a_i‖ "
            "without per-sample gradients and summed by one matrix product; Conv2d "
            "per-sample gradients by the grouped kernel. Its clipped sums equal Opacus's "
            "clipping of the hooks mode, and training equals hooks step for step "
            "(tests/privacy/test_output_grads.py).",
            "Noise: every step, for every parameter, whatever the batch, fedkd draws each "
            "noise value from its ChaCha20 CSPRNG (256-bit key from the OS) as a sum of four "
            "Box–Muller normals in float64 (fedkd/privacy/secure_noise.py, against "
            "floating-point attacks); in brackets the same step's noise from Opacus's secure "
            "mode on torch's generator (a sum of four torch.normal draws, not "
            "cryptographic: what fedkd used before). Where one step's noise is comparable "
            "to a non-DP step "
            "(the MLP: 159,010 parameters, a step of a 784-200-10 network is a few "
            "milliseconds) the last column bounds the ratio any clipping method can reach: "
            "non-DP step ÷ (non-DP step + noise). A larger logical batch amortises it.",
            "Where a CNN's DP epoch goes beyond the non-DP one: "
            "`python simulations/profile_dp_epoch.py --model cnn-s` (operators' self-times "
            "side by side): the per-sample gradients themselves (multiplies and batched "
            "matrix products), Opacus's GroupNorm sampler normalising its input again, and "
            "the per-sample norms and sums, against the weight gradients they replace.",
            "scatnet-linear: the scattering transform learns nothing and its features are "
            "cached per image (fedkd/models/scatnet.py), so every mode trains a GroupNorm and "
            "a linear layer on cached features; the first repetition's non-DP epoch filled "
            "that cache for every record, hence the top of its ranges (the median is taken "
            "over cached steps).",
        ],
        data=measured,
    )
