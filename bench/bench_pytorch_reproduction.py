"""Training-step time of the public PyTorch HGN reproduction, on this machine (what a user would
run instead of hgn_tf): prints seconds per step, as `bench_train_step.py` does for ours.

    python bench/bench_pytorch_reproduction.py --repo PATH [--steps 6] [--warmup 2]

Runs under a Python that has PyTorch (not this package's .venv: e.g. `python -m venv
/tmp/torchvenv; /tmp/torchvenv/bin/pip install torch numpy pyyaml scipy matplotlib
opencv-python-headless`), with PATH a clone of github.com/CampusAI/Hamiltonian-Generative-Networks
(the reproduction; archived, last commit 702d3ff). It builds the model from the reproduction's own
default configuration (`experiment_params/train_config_default.yaml` and
`dataset_online_default.yaml`: batch 16, 32x32 RGB, rollouts of 34 frames of which the encoder
reads 5, 29 leapfrog steps, 30 frames decoded and scored, GECO, Adam) exactly as its
`utilities.loader.load_hgn` does, and times `HgnTrainer.training_step`'s body: the forward pass,
the GECO loss, backward and the Adam step. The two functions are transcribed below (the originals
import the reproduction's data loaders, which need torchvision); nothing else is changed. The
frames are random (the time does not depend on them).

The like-for-like configuration of ours, the same protocol at the paper's network sizes:

    python bench/bench_train_step.py --preset paper --input-frames 5

(ours is the larger model: the paper's Hamiltonian of 6 convolutions of 64 filters per term where
the reproduction has 4 layers on a state it strides to 2x2, and 30 frames into the encoder's first
layer's 5 here and there). `bench/vs_pytorch.sh` runs the two alternately.
"""

import argparse
import os
import statistics
import sys
import time


def _load_hgn(params, device, dtype):
    """The reproduction's `utilities.loader.load_hgn`, transcribed (its module imports the data
    loaders, which need torchvision)."""
    from hamiltonian_generative_network import HGN
    from networks.decoder_net import DecoderNet
    from networks.encoder_net import EncoderNet
    from networks.hamiltonian_net import HamiltonianNet
    from networks.transformer_net import TransformerNet
    from utilities.integrator import Integrator

    encoder = EncoderNet(seq_len=params["optimization"]["input_frames"],
                         in_channels=params["dataset"]["rollout"]["n_channels"],
                         **params["networks"]["encoder"], dtype=dtype).to(device)
    transformer = TransformerNet(in_channels=params["networks"]["encoder"]["out_channels"],
                                 **params["networks"]["transformer"], dtype=dtype).to(device)
    hnn = HamiltonianNet(**params["networks"]["hamiltonian"], dtype=dtype).to(device)
    decoder = DecoderNet(in_channels=params["networks"]["transformer"]["out_channels"],
                         out_channels=params["dataset"]["rollout"]["n_channels"],
                         **params["networks"]["decoder"], dtype=dtype).to(device)
    integrator = Integrator(delta_t=params["dataset"]["rollout"]["delta_time"],
                            method=params["integrator"]["method"])
    return HGN(encoder=encoder, transformer=transformer, hnn=hnn, decoder=decoder,
               integrator=integrator, device=device, dtype=dtype,
               seq_len=params["dataset"]["rollout"]["seq_length"],
               channels=params["dataset"]["rollout"]["n_channels"])


class _Trainer:
    """The state `HgnTrainer.training_step` reads, and that method's variational branch,
    transcribed from the reproduction's train.py."""

    def __init__(self, params, device, dtype):
        import torch
        self.params = params
        self.hgn = _load_hgn(params, device, dtype)
        opt = params["optimization"]
        self.optimizer = torch.optim.Adam([
            {"params": self.hgn.encoder.parameters(), "lr": opt["encoder_lr"]},
            {"params": self.hgn.transformer.parameters(), "lr": opt["transformer_lr"]},
            {"params": self.hgn.hnn.parameters(), "lr": opt["hnn_lr"]},
            {"params": self.hgn.decoder.parameters(), "lr": opt["decoder_lr"]},
        ])
        self.langrange_multiplier = params["geco"]["initial_lagrange_multiplier"]
        self.C_ma = None

    def training_step(self, rollouts):
        import torch
        from utilities.losses import geco_constraint, kld_loss
        self.optimizer.zero_grad()
        rollout_len = rollouts.shape[1]
        input_frames = self.params["optimization"]["input_frames"]
        roll = rollouts[:, :input_frames]
        hgn_output = self.hgn.forward(rollout_batch=roll, n_steps=rollout_len - input_frames)
        target = rollouts[:, input_frames - 1:]
        prediction = hgn_output.reconstructed_rollout
        geco = self.params["geco"]
        C, rec_loss = geco_constraint(target, prediction, geco["tol"])
        if self.C_ma is None:
            self.C_ma = C.detach()
        else:
            self.C_ma = geco["alpha"] * self.C_ma + (1 - geco["alpha"]) * C.detach()
        C = C + (self.C_ma - C.detach())
        kld = kld_loss(mu=hgn_output.z_mean, logvar=hgn_output.z_logvar)
        kld = kld / prediction.flatten(1).size(1)
        train_loss = kld + self.langrange_multiplier * C
        self.langrange_multiplier = self.langrange_multiplier * torch.exp(
            geco["lagrange_multiplier_param"] * C.detach())
        self.langrange_multiplier = torch.clamp(self.langrange_multiplier, 1e-10, 1e10)
        train_loss.backward()
        self.optimizer.step()
        return float(train_loss.detach())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True,
                    help="a clone of CampusAI/Hamiltonian-Generative-Networks")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--flops", action="store_true",
                    help="also count the FLOPs of one forward pass and of one training step "
                         "(torch.utils.flop_counter; a multiply-add counts 2)")
    args = ap.parse_args()
    repo = os.path.abspath(args.repo)
    if not os.path.isfile(os.path.join(repo, "hamiltonian_generative_network.py")):
        raise SystemExit(f"--repo {args.repo!r}: no hamiltonian_generative_network.py there; "
                         "give a clone of CampusAI/Hamiltonian-Generative-Networks")
    sys.path.insert(0, repo)
    import torch
    import yaml

    params = {}
    for name in ("train_config_default.yaml", "dataset_online_default.yaml"):
        with open(os.path.join(repo, "experiment_params", name)) as f:
            params.update(yaml.safe_load(f))
    params["device"] = "cpu"
    torch.manual_seed(0)
    trainer = _Trainer(params, "cpu", torch.float)
    ro = params["dataset"]["rollout"]
    b = params["optimization"]["batch_size"]
    size = params["dataset"]["img_size"]
    rollouts = torch.rand(b, ro["seq_length"], ro["n_channels"], size, size)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads; the reproduction's "
          f"default config: batch {b}, {ro['seq_length']} frames of {size}x{size}, the encoder "
          f"reads {params['optimization']['input_frames']}, {params['integrator']['method']}")
    if args.flops:
        from torch.utils.flop_counter import FlopCounterMode
        k = params["optimization"]["input_frames"]
        with FlopCounterMode(display=False) as forward:
            trainer.hgn.forward(rollout_batch=rollouts[:, :k], n_steps=ro["seq_length"] - k)
        with FlopCounterMode(display=False) as step:
            trainer.training_step(rollouts)
        print(f"GFLOP: forward {forward.get_total_flops() / 1e9:.2f}, training step "
              f"{step.get_total_flops() / 1e9:.2f}")
    for _ in range(args.warmup):
        trainer.training_step(rollouts)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        trainer.training_step(rollouts)
        times.append(time.perf_counter() - t0)
    print(f"step time: median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
          f"max {max(times):.3f} s over {args.steps} steps")


if __name__ == "__main__":
    main()
