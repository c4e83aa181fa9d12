"""FunRL-style cluster layout (Fun-ASR section 4.4.1): encoder, rollout and policy take turns on the
same GPUs, orchestrated by Ray.

Each GPU holds one *colocated worker* (a Ray actor) with all three roles: the audio encoder and
adaptor, a rollout engine (vLLM with prompt embeddings, or the transformers loop) and the policy
being trained. A step runs the phases of `training/grpo.py` in turn, and a role not in use parks
its weights and caches on the CPU so the active one has the GPU to itself:

    weight sync (policy -> engine, same GPU)  ->  encode (encoder on GPU)
    ->  rollout (engine on GPU)  ->  reward (same worker, CPU)  ->  update (policy on GPU)

so the weight sync is a device-local copy rather than a broadcast between machines. Each worker
runs the one training loop; with several, each would be a rank of the streaming loader, which
splits the RL shards between ranks (whole utterances, so each group stays on one worker:
advantages need only the worker's own groups).

Not wired yet: averaging the workers' gradients (a torch.distributed group across the actors, as
the SFT trainer's DDP does). Without it every worker would train its own policy on its share of
the batch, so `ColocatedCluster` refuses more than one worker. Parking idle roles on the CPU is
left to the engines (vLLM's sleep mode); the transformers engine keeps its copy on the device.

`ray` is an optional extra: nothing here imports it until `ColocatedCluster` is built. What runs
without Ray (the placement plan, the one-worker check and the phase order) is tested; the actors
themselves are not exercised in this repository's tests (no Ray, no GPU on the test machines).
"""

from __future__ import annotations

from dataclasses import dataclass

from funfactory.errors import FunfactoryError, MissingAssetError

ROLES = ("encoder", "rollout", "policy")
PHASE_ORDER = (("weight_sync", "rollout"), ("encode", "encoder"), ("rollout", "rollout"),
               ("reward", None), ("update", "policy"))


@dataclass(frozen=True)
class Placement:
    """One worker per GPU bundle; every role of the worker shares the bundle."""
    workers: int
    gpus_per_worker: float
    cpus_per_worker: int
    strategy: str = "PACK"

    def bundles(self) -> list[dict]:
        bundle = {"CPU": self.cpus_per_worker}
        if self.gpus_per_worker:
            bundle["GPU"] = self.gpus_per_worker
        return [dict(bundle) for _ in range(self.workers)]


def plan_placement(num_gpus: int, cpus_per_gpu: int = 8, num_cpu_workers: int = 1) -> Placement:
    """A bundle per GPU (colocated roles), or `num_cpu_workers` CPU bundles without GPUs."""
    if num_gpus < 0 or num_cpu_workers < 1 or cpus_per_gpu < 1:
        raise FunfactoryError(f"bad layout: {num_gpus} GPUs, {num_cpu_workers} CPU workers, "
                              f"{cpus_per_gpu} CPUs per worker")
    if num_gpus == 0:
        return Placement(num_cpu_workers, 0, cpus_per_gpu)
    return Placement(num_gpus, 1, cpus_per_gpu)


def check_single_policy(placement: Placement) -> None:
    """Refuse layouts that would train one independent policy per worker."""
    if placement.workers > 1:
        raise FunfactoryError(
            f"{placement.workers} workers would each train their own policy: the workers' "
            "gradients are not averaged yet. Use one worker (one GPU), or run GRPO in one process "
            "with `funfactory train grpo`")


class ColocatedWorker:
    """The body of one Ray actor: a GRPO run (`training/grpo.py`'s `run_grpo`, the one training
    loop with its loader and checkpoints) whose roles share one device.

    `ray.remote(ColocatedWorker)` turns it into an actor; the same class runs in-process when
    called directly (a one-GPU or CPU run without Ray).
    """

    def __init__(self, init_model: str, shards: str, out_dir: str, config, device: str = "cpu"):
        self.args = (init_model, shards, out_dir, config)
        self.device = device

    def run(self) -> dict:
        from funfactory.training.grpo import run_grpo

        init_model, shards, out_dir, config = self.args
        return run_grpo(init_model, shards, out_dir, config, device=self.device)


class ColocatedCluster:
    """Ray actors, one per placement bundle, each running `ColocatedWorker`."""

    def __init__(self, init_model: str, shards: str, out_dir: str, config, placement: Placement,
                 address: str | None = None):
        check_single_policy(placement)
        try:
            import ray
            from ray.util.placement_group import placement_group
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        except ImportError:
            raise MissingAssetError("the cluster layout needs Ray: pip install 'ray==2.60.0' "
                                    "(or run GRPO in one process with `funfactory train grpo`)") from None
        if not ray.is_initialized():
            ray.init(address=address)
        self.ray = ray
        self.group = placement_group(placement.bundles(), strategy=placement.strategy)
        ray.get(self.group.ready())
        actor = ray.remote(ColocatedWorker)
        device = "cuda" if placement.gpus_per_worker else "cpu"
        self.workers = [
            actor.options(num_gpus=placement.gpus_per_worker, num_cpus=placement.cpus_per_worker,
                          scheduling_strategy=PlacementGroupSchedulingStrategy(
                              placement_group=self.group, placement_group_bundle_index=i))
            .remote(init_model, shards, out_dir, config, device)
            for i in range(placement.workers)]

    def run(self) -> list[dict]:
        """The GRPO run on the worker; its last step's metrics."""
        return self.ray.get([w.run.remote() for w in self.workers])
