"""posterior_client: a Python client of the posterior decision service.

``Client`` (blocking) and ``AsyncClient`` (asyncio) speak gRPC to a
``posterior serve``: bandit experiments (choose / reward) and Bayesian
optimization studies (ask / tell). Errors are exceptions by status code
(``NotFound``, ``InvalidArgument``... all ``PosteriorError``).
"""

from ._aio import AsyncClient, AsyncExperiment, AsyncStudy
from ._client import Client, Experiment, Study
from ._ops import Retry
from ._types import (
    ArmSummary,
    ArmVerdict,
    Decision,
    ExperimentListing,
    GateResult,
    HistoryArm,
    HistoryPoint,
    ParamValue,
    Recommendation,
    Rewarded,
    StudyState,
    Summary,
    Trial,
    Verdict,
)
from .errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PosteriorError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "Client",
    "Experiment",
    "Study",
    "AsyncClient",
    "AsyncExperiment",
    "AsyncStudy",
    "Retry",
    "ArmSummary",
    "ArmVerdict",
    "Decision",
    "ExperimentListing",
    "GateResult",
    "HistoryArm",
    "HistoryPoint",
    "ParamValue",
    "Recommendation",
    "Rewarded",
    "StudyState",
    "Summary",
    "Trial",
    "Verdict",
    "PosteriorError",
    "InvalidArgument",
    "NotFound",
    "AlreadyExists",
    "FailedPrecondition",
    "Unavailable",
    "ResourceExhausted",
    "Unauthenticated",
    "PermissionDenied",
    "DeadlineExceeded",
]

__version__ = "0.1.0"
