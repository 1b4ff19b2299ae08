"""The one error every argument check raises: it names the argument and the problem."""

from __future__ import annotations


class ArgumentError(ValueError):
    """`argument` is invalid: `problem` says why. str() is "argument: problem"."""

    def __init__(self, argument: str, problem: str) -> None:
        super().__init__(f"{argument}: {problem}")
        self.argument = argument
        self.problem = problem
