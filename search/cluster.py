"""Can the Ray cluster run one trial? Checked after ray.init, before any trial starts.

Ray would otherwise keep a trial that asks for a GPU on a CPU-only cluster (or
more CPUs than any node has) PENDING forever: the search hangs silently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable


class ResourceError(ValueError):
    """A per-trial resource request that is malformed or that no node can satisfy."""


@dataclass(frozen=True)
class NodeResources:
    node_id: str
    address: str
    cpu: float
    gpu: float


def check_request(cpu: float, gpu: float, source: str = "trial resources") -> None:
    """The request itself: cpu > 0; gpu >= 0, and a whole number when above 1.

    Ray packs fractional GPUs (0.25 = four trials per GPU) but cannot split a
    trial across 1.5 GPUs.
    """
    if isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or not math.isfinite(cpu) or cpu <= 0:
        raise ResourceError(f"{source}: cpu is {cpu!r}, but must be a number > 0")
    if isinstance(gpu, bool) or not isinstance(gpu, (int, float)) or not math.isfinite(gpu) or gpu < 0:
        raise ResourceError(f"{source}: gpu is {gpu!r}, but must be a number >= 0")
    if gpu > 1 and not float(gpu).is_integer():
        raise ResourceError(f"{source}: gpu is {gpu!r}, but a trial asks for a fraction of one GPU "
                            f"(<= 1, e.g. 0.25) or a whole number of GPUs")


def alive_nodes() -> list[NodeResources]:
    """The live nodes of the connected Ray cluster and their total CPUs/GPUs."""
    import ray

    nodes = []
    for node in ray.nodes():
        if not node.get("Alive", False):
            continue
        resources: dict[str, Any] = node.get("Resources", {})
        nodes.append(NodeResources(node_id=str(node.get("NodeID", "")),
                                   address=str(node.get("NodeManagerAddress", "")),
                                   cpu=float(resources.get("CPU", 0.0)),
                                   gpu=float(resources.get("GPU", 0.0))))
    return nodes


def check_fits(cpu: float, gpu: float, nodes: Iterable[NodeResources]) -> None:
    """Raise ResourceError unless one node alone can hold one trial's {cpu, gpu}."""
    nodes = list(nodes)
    if not nodes:
        raise ResourceError("the Ray cluster has no live nodes")
    total_gpus = sum(n.gpu for n in nodes)
    if gpu > 0 and total_gpus == 0:
        raise ResourceError(f"each trial asks for {gpu:g} GPU, but the Ray cluster has no GPUs "
                            f"(use --gpus-per-trial 0 or set trials.resources.gpu: 0)")
    max_cpu = max(n.cpu for n in nodes)
    if cpu > max_cpu:
        raise ResourceError(f"each trial asks for {cpu:g} CPUs, but the largest Ray node has {max_cpu:g} "
                            f"(lower --cpus-per-trial or trials.resources.cpu)")
    if not any(n.cpu >= cpu and n.gpu >= gpu for n in nodes):
        max_gpu = max(n.gpu for n in nodes)
        raise ResourceError(f"each trial asks for {cpu:g} CPUs and {gpu:g} GPUs on one node, but no node has "
                            f"both (most GPUs on a node: {max_gpu:g})")


def cluster_concurrency(cpu: float, gpu: float, nodes: Iterable[NodeResources]) -> int:
    """How many trials of {cpu, gpu} the cluster holds at once (at least 1): a space
    without trials.max_concurrent runs that many at a time."""
    total = 0
    for n in nodes:
        fit = math.floor(n.cpu / cpu + 1e-9)
        if gpu > 0:
            fit = min(fit, math.floor(n.gpu / gpu + 1e-9))
        total += max(fit, 0)
    return max(total, 1)


def check_cluster(cpu: float, gpu: float) -> list[NodeResources]:
    nodes = alive_nodes()
    check_fits(cpu, gpu, nodes)
    return nodes
