"""The ``--ray`` options of the commands that run a network over many photos (``train``,
``localize``, ``predict``, ``detect``, ``train-boxes``, ``pipeline``): where the photo passes run
(:mod:`groundwork.photo_map`)."""

from __future__ import annotations

import argparse

from groundwork.photo_map import LOCAL, RayOptions

__all__ = ["add_ray_arguments", "ray_options"]


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Ray (pip install 'boxstrap[ray]')")
    group.add_argument("--ray", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
                       help="run the photo passes on Ray: alone, on a Ray instance started on this machine; with "
                            "an address (HOST:6379 of `ray start --head`, or auto), on that cluster. Photos must "
                            "be at paths every machine sees. Write it after the positional arguments, or as "
                            "--ray=ADDRESS")
    group.add_argument("--ray-workers", type=int, default=None, metavar="N",
                       help="Ray workers, each loading the model once (default: the cluster's CPUs)")
    group.add_argument("--ray-cpus-per-worker", type=int, default=1, metavar="N",
                       help="CPUs (and TensorFlow threads) per Ray worker (default %(default)s)")


def ray_options(args: argparse.Namespace) -> RayOptions | None:
    """The run's :class:`RayOptions`, or None without ``--ray``."""
    if getattr(args, "ray", None) is None:
        if getattr(args, "ray_workers", None) is not None:
            raise ValueError("--ray-workers needs --ray.")
        return None
    return RayOptions(address=args.ray, workers=args.ray_workers, cpus_per_worker=args.ray_cpus_per_worker)
