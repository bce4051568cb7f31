"""prefmill.errors: any PrefmillError is its message and its exit code; anything else is a bug and propagates."""

import importlib

import pytest
import typer

from prefmill.errors import handle_errors
from schemas.errors import PrefmillError
from schemas.validation import ValidationFailed


class NewKindOfFailure(PrefmillError):
    """Defined here, known to no list: the rule must still apply."""

    exit_code = 7


def raising(exc: BaseException):
    @handle_errors
    def command():
        raise exc

    return command


def exit_of(exc: BaseException, capsys) -> tuple[int, str]:
    with pytest.raises(typer.Exit) as info:
        raising(exc)()
    return info.value.exit_code, capsys.readouterr().err


def test_any_prefmill_error_is_its_line_and_exit_code(capsys):
    code, err = exit_of(NewKindOfFailure("the [bold]thing[/] is wrong"), capsys)
    assert code == 7
    assert err.strip() == "error: the [bold]thing[/] is wrong"  # printed as text, not as rich markup


def test_validation_failed_is_a_prefmill_error_that_exits_1():
    assert issubclass(ValidationFailed, PrefmillError) and ValidationFailed.exit_code == 1


def test_multi_line_message_is_printed_whole(capsys):
    code, err = exit_of(PrefmillError("server exited (log: /tmp/x.log):\nline one\nline two"), capsys)
    assert code == 2
    assert err.splitlines() == ["error: server exited (log: /tmp/x.log):", "line one", "line two"]


def test_interrupt_exits_130(capsys):
    assert exit_of(KeyboardInterrupt(), capsys) == (130, "error: interrupted\n")


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        raising(ZeroDivisionError("a bug"))()


@pytest.mark.parametrize(
    "path",
    [
        "schemas.readers.SourceError",
        "schemas.adapters.UnknownFormat",
        "schemas.adapters.mapping_spec.MappingError",
        "warehouse.errors.WarehouseError",
        "curation.errors.CurationError",
        "curation.embed.ModelNotFound",
        "judges.errors.EngineError",
        "judges.errors.JudgeError",
        "judges.errors.BudgetExhausted",
        "judges.generators.common.GeneratorError",
        "judges.vllm_env.VllmEnvError",
        "judges.vllm_env.VllmServeError",
    ],
)
def test_every_layers_expected_failures_are_prefmill_errors(path):
    # handle_errors has no list of classes: an expected failure that is not a PrefmillError would be a traceback.
    module, _, name = path.rpartition(".")
    assert issubclass(getattr(importlib.import_module(module), name), PrefmillError)
