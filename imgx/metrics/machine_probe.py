"""How fast the machine is while a case is timed: a fixed torch workload timed between the case's calls.

A latency median moves between runs of identical code when the machine itself is slower (a shared CI runner,
a neighbour's job, a throttled CPU). The probe runs the same small workload after every timed call (outside
the call's timing) on the case's device; its median is the ``machine_probe_ms`` row. A comparison holds the two
runs' probes against each other to tell a slower machine from slower code (:mod:`imgx.compare`).
"""

from __future__ import annotations

from imgx.metrics.timing import Clock, percentile

WORKLOAD = "conv2d 3x3 64->64 on 1x64x64x64 and a 256x256 matmul, float32, 2 rounds"


class MachineProbe:
    """Times :data:`WORKLOAD` on ``device``; each call returns one sample in ms (CUDA synchronised)."""

    def __init__(self, device: str = "cpu"):
        import torch

        self.device = str(device)
        gen = torch.Generator("cpu").manual_seed(0)
        self._x = torch.randn(1, 64, 64, 64, generator=gen).to(self.device)
        self._w = torch.randn(64, 64, 3, 3, generator=gen).to(self.device) / 24
        self._a = torch.randn(256, 256, generator=gen).to(self.device) / 16
        self.samples: list[float] = []
        self._run()  # first-call costs (kernel selection, allocation) stay out of the samples

    def _run(self) -> None:
        import torch

        with torch.inference_mode():
            for _ in range(2):
                torch.nn.functional.conv2d(self._x, self._w, padding=1)
                self._a @ self._a

    def __call__(self) -> float:
        with Clock(self.device) as clock:
            self._run()
        self.samples.append(clock.ms)
        return clock.ms

    @property
    def median_ms(self) -> float:
        return percentile(self.samples, 50)
