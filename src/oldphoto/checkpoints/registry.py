"""The network of each official checkpoint: a constructor call with that checkpoint's options.

:data:`REGISTRY` maps every registry name of the table
:data:`oldphoto.checkpoints.files.OFFICIAL_CHECKPOINTS` to its class in :mod:`oldphoto.nets`
called with that checkpoint's inference options; :func:`build_network` builds one. This module is
where the table and the architecture code meet: :mod:`oldphoto.nets` imports nothing from
:mod:`oldphoto.checkpoints`, as in BasicSR and spandrel the architectures know no loader.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from torch import nn

from oldphoto import nets
from oldphoto.checkpoints.files import OFFICIAL_CHECKPOINTS

__all__ = ["ARCHITECTURES", "REGISTRY", "build_network"]

#: class name (``OfficialCheckpoint.arch``) -> network class of :mod:`oldphoto.nets`.
ARCHITECTURES: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (nets.UNet, nets.GlobalGenerator_DCDCv2, nets.Mapping_Model,
                nets.Mapping_Model_with_mask, nets.Mapping_Model_with_mask_2, nets.SPADEGenerator)
}

#: registry name -> the constructor call of its official checkpoint (class and options).
REGISTRY: dict[str, Callable[[], nn.Module]] = {
    name: partial(ARCHITECTURES[checkpoint.arch], **checkpoint.options)
    for name, checkpoint in OFFICIAL_CHECKPOINTS.items()
}


def build_network(name: str) -> nn.Module:
    """The network of official checkpoint ``name`` (see :data:`REGISTRY`): random weights, eval
    mode, no gradients, TF32 off (:func:`oldphoto.nets.configure_torch`)."""
    if name not in REGISTRY:
        raise KeyError(f"unknown network {name!r}; known: {sorted(REGISTRY)}")
    nets.configure_torch()
    net = REGISTRY[name]()
    net.eval()
    net.requires_grad_(False)
    return net
