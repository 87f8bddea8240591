"""Batch normalization at fine-tuning time: frozen BN, freezing a model's BN, recalibrating it.

- ``FrozenBatchNorm2d`` (and ``FrozenBatchNorm1d`` for (N, C) and (N, C, L)): BN whose
  statistics *and* affine parameters are fixed buffers, so it is the same affine map in every
  mode: ``model.train()`` cannot turn it back into batch statistics. The semantics of
  torchvision's ``torchvision.ops.FrozenBatchNorm2d`` (torchvision/ops/misc.py; its default eps
  is 1e-5 in current versions, 0 in early ones): four buffers ``weight``, ``bias``,
  ``running_mean``, ``running_var`` and

      scale = weight * (running_var + eps).rsqrt()
      bias  = bias - running_mean * scale
      out   = x * scale + bias

  which is ``BatchNorm2d.eval()``'s output; loading a BatchNorm state dict drops its
  ``num_batches_tracked``. torchvision is not needed: this re-implements its documented
  behaviour, and the tests check it against ``nn.BatchNorm2d`` in eval mode (float64, 1e-12).
- ``convert_frozen_batchnorm(module)``: every ``BatchNorm1d/2d`` in a model replaced by its frozen
  twin with the same numbers (as detectron2's ``FrozenBatchNorm2d.convert_frozen_batchnorm``).
- ``freeze_batchnorm(model)``: the in-place alternative, every BN layer in eval mode with
  gamma and beta not trainable; ``model.train()`` undoes the mode part, so call it again after
  every ``model.train()`` (``batchnorm_modes`` shows what each layer is doing).
- ``recalibrate_batchnorm(model, batches)``: notebook 04's recipe (reset the running statistics,
  ``momentum=None`` for the cumulative average, training-mode forward passes without gradients),
  also known as AdaBN when the batches come from a new domain (Li et al. 2016).
"""

from __future__ import annotations

import torch
from torch import nn

from helpers.i18n import _

__all__ = [
    "FrozenBatchNorm1d",
    "FrozenBatchNorm2d",
    "batchnorm_layers",
    "batchnorm_modes",
    "convert_frozen_batchnorm",
    "freeze_batchnorm",
    "recalibrate_batchnorm",
]


class _FrozenBatchNorm(nn.Module):
    """Shared by the 1-d and 2-d versions: fixed buffers, the affine map of BN in eval mode."""

    _dims = ()  # the numbers of dimensions an input may have

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        if int(num_features) != num_features or num_features < 1:
            raise ValueError(_("num_features must be a positive integer, got {num_features!r}").format(num_features=num_features))
        if not eps >= 0:
            raise ValueError(_("eps must be >= 0, got {eps!r}").format(eps=eps))
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # a BatchNorm checkpoint carries a batch counter that a frozen layer has no use for
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in self._dims or x.shape[1] != self.num_features:
            raise ValueError(_("{layer}({channels}) expects an input with {dims} dimensions and "
                               "{channels} channels on axis 1, got shape {shape}").format(
                layer=type(self).__name__, channels=self.num_features,
                dims=" or ".join(map(str, self._dims)), shape=tuple(x.shape)))
        shape = (1, -1) + (1,) * (x.dim() - 2)  # per channel, along axis 1
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.reshape(shape) + bias.reshape(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class FrozenBatchNorm2d(_FrozenBatchNorm):
    """BatchNorm2d with fixed statistics and affine parameters (torchvision's semantics).

    Args:
        num_features: C, for inputs (N, C, H, W)
        eps:          added to running_var (default 1e-5, as nn.BatchNorm2d)
    """

    _dims = (4,)


class FrozenBatchNorm1d(_FrozenBatchNorm):
    """BatchNorm1d with fixed statistics and affine parameters, for inputs (N, C) or (N, C, L)."""

    _dims = (2, 3)


_FROZEN_TWIN = {nn.BatchNorm1d: FrozenBatchNorm1d, nn.BatchNorm2d: FrozenBatchNorm2d}


def batchnorm_layers(model: nn.Module) -> list:
    """The model's BatchNorm layers (any _BatchNorm: 1d, 2d, 3d, SyncBatchNorm), in order."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def convert_frozen_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm1d`` / ``BatchNorm2d`` in ``module`` by a frozen twin holding
    the same weight, bias, running statistics and eps (in their dtype).

    Returns the converted module: a new frozen layer if ``module`` itself is a BN layer,
    otherwise ``module`` with its children replaced in place. Layers without affine parameters
    get weight 1 and bias 0; layers without running statistics raise ValueError.
    """
    twin = _FROZEN_TWIN.get(type(module))
    if twin is not None:
        if module.running_mean is None:
            raise ValueError(_("{module} tracks no running statistics: there is nothing to freeze").format(module=module))
        frozen = twin(module.num_features, module.eps)
        with torch.no_grad():
            for name in ("running_mean", "running_var"):
                getattr(frozen, name).data = getattr(module, name).detach().clone()
            if module.affine:
                frozen.weight.data = module.weight.detach().clone()
                frozen.bias.data = module.bias.detach().clone()
            else:
                frozen.weight.data = frozen.weight.to(module.running_mean.dtype)
                frozen.bias.data = frozen.bias.to(module.running_mean.dtype)
        return frozen
    for name, child in module.named_children():
        converted = convert_frozen_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)
    return module


def freeze_batchnorm(model: nn.Module) -> nn.Module:
    """Put every BN layer of ``model`` in eval mode and stop its gamma and beta from training.

    The rest of the model keeps its mode. ``model.train()`` switches the BN layers back to batch
    statistics (their parameters stay frozen): call this again after every ``model.train()``, or
    use ``convert_frozen_batchnorm``. Returns the model.
    """
    for layer in batchnorm_layers(model):
        layer.eval()
        for parameter in layer.parameters():
            parameter.requires_grad_(False)
    return model


def batchnorm_modes(model: nn.Module) -> list:
    """For each BN layer: "batch statistics" (training mode) or "running statistics" (eval),
    in the current language."""
    return [_("batch statistics") if layer.training else _("running statistics")
            for layer in batchnorm_layers(model)]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches) -> nn.Module:
    """Re-estimate every BN layer's running statistics from ``batches``, weights untouched.

    Notebook 04's recipe: reset the running statistics, switch to the cumulative average
    (``momentum=None``: every batch weighs the same, Algorithm 2's population average), run the
    batches through the model in training mode without gradients, then restore each layer's
    momentum and every module's mode. Only the BN layers are switched to training mode for the
    passes: the other layers keep the mode they have (call ``model.eval()`` first, and a Dropout
    stays off while the statistics are measured).

    Args:
        model:   a torch module with BN layers
        batches: an iterable of input tensors (each a batch of 2 or more examples)

    Returns:
        the model, with new running statistics, in the modes it had before
    """
    layers = batchnorm_layers(model)
    modes = {module: module.training for module in model.modules()}
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
        layer.train()
    count = 0
    try:
        for batch in batches:
            model(batch)
            count += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for module, training in modes.items():
            module.training = training
    if count == 0:
        raise ValueError(_("recalibrate_batchnorm needs at least one batch"))
    return model
