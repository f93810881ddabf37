"""Errors a user can act on. The CLI maps every :class:`ImgxError` to exit code 2 and one line per problem."""

from __future__ import annotations


class ImgxError(Exception):
    """Base class for errors caused by the user's input (suite, path, flag, weights), not by imgx itself."""

    def problems(self) -> list[str]:
        """The messages to print, one per problem."""
        return [str(self)]


class SuiteError(ImgxError):
    """A suite file is malformed; carries every problem found, each naming the file and the field path."""

    def __init__(self, problems: list[str]):
        self._problems = list(problems)
        super().__init__("\n".join(self._problems))

    def problems(self) -> list[str]:
        return list(self._problems)


class DataError(ImgxError):
    """A data set cannot be read: missing root, unreadable or corrupt image, empty folder."""


class WeightsError(ImgxError):
    """Model weights are missing, unsafe (pickle, remote code) or not in the expected format."""


class RunDirError(ImgxError):
    """A run directory cannot be used: locked by another run, not a directory, or from a newer imgx."""


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss; the case fails, the suite goes on."""

    def __init__(self, epoch: int, step: int, loss: float):
        self.epoch, self.step, self.loss = epoch, step, loss
        super().__init__(f"non-finite loss {loss} at epoch {epoch}, step {step}")
