"""The one parameter counter (``rsitr.models.describe.count_parameters``)."""

from __future__ import annotations

from torch import nn

from rsitr.models.describe import ParameterCount, count_parameters, parameter_counts


def _model() -> nn.Module:
    encoder = nn.Linear(4, 3)  # 15 parameters
    decoder = nn.Linear(3, 4, bias=False)
    model = nn.Sequential(encoder, nn.ReLU(), decoder, nn.Linear(4, 2))  # 15 + 12 + 10
    model[3].weight = nn.Parameter(model[3].weight.detach().clone(), requires_grad=False)  # 8 frozen
    return model


def test_counts_trainable_and_total() -> None:
    assert count_parameters(_model()) == ParameterCount(trainable=15 + 12 + 2, total=15 + 12 + 10)


def test_a_shared_parameter_counts_once_in_a_list_too() -> None:
    model = _model()
    params = [*model.parameters(), *model[0].parameters()]  # the first layer twice
    assert count_parameters(params) == count_parameters(model)
    assert parameter_counts(params) == {"total": 37, "trainable": 29}


def test_logged_counts_zero_trainable_for_a_method_that_does_not_train() -> None:
    counts = count_parameters(_model())
    assert counts.logged(True) == {"total_params": 37, "trainable_params": 29}
    assert counts.logged(False) == {"total_params": 37, "trainable_params": 0}
