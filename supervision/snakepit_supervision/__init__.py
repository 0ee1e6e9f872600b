"""OTP-style supervision on Thespian: supervisors, the Starter pattern and a key registry.

Generic and reusable: it knows nothing of pools and never imports ``snakepit_actors``.

    Supervisor (supervisor.py)   one_for_one | one_for_all | rest_for_one, intensity, backoff
    Starter    (starter.py)      a Supervisor of exactly one child
    Registry   (registry.py)     key -> (address, value), subscriptions, removal on exit
    SupervisorCore (supervisor_core.py)  a Supervisor's children, restart batches, effects
    RestartPlanner & co (intensity.py)   the pure decisions, driven with an explicit clock
    SupervisedActor, die_with_parent (lifetime.py)   children die with their parent
    unborn.py                    the exit of a child killed before it connected, reported

See ``docs/supervision.md`` for the concepts, the message table and the hooks.
"""

from .children import load_actor_class
from .intensity import (
    Backoff,
    Decision,
    Escalate,
    Ignore,
    Restart,
    RestartIntensity,
    RestartPlanner,
    affected_ids,
    restarts_after_exit,
)
from .lifetime import SupervisedActor, die_with_parent
from .messages import (
    ChildExited,
    ChildInfo,
    ChildrenList,
    ChildRequestRejected,
    ChildRestarting,
    ChildSpec,
    ChildStarted,
    ChildTerminated,
    InitKeyRegistry,
    InitSupervisor,
    ListEntries,
    Lookup,
    LookupResult,
    Register,
    Registered,
    RegistrationRejected,
    RegistryChanged,
    RegistryEntry,
    RegistrySnapshot,
    RestartType,
    StartChild,
    StoppingNormally,
    Strategy,
    SubscribeRegistry,
    SupervisorEscalated,
    SupervisorInitFailed,
    SupervisorStarted,
    TerminateChild,
    Unregister,
    UnregisterAddress,
    Unregistered,
    UnsubscribeRegistry,
    WhichChildren,
)
from .registry import Registry
from .starter import Starter
from .supervisor import Supervisor

__all__ = [
    "Backoff",
    "ChildExited",
    "ChildInfo",
    "ChildRequestRejected",
    "ChildRestarting",
    "ChildSpec",
    "ChildStarted",
    "ChildTerminated",
    "ChildrenList",
    "Decision",
    "Escalate",
    "Ignore",
    "InitKeyRegistry",
    "InitSupervisor",
    "ListEntries",
    "Lookup",
    "LookupResult",
    "Register",
    "Registered",
    "RegistrationRejected",
    "Registry",
    "RegistryChanged",
    "RegistryEntry",
    "RegistrySnapshot",
    "Restart",
    "RestartIntensity",
    "RestartPlanner",
    "RestartType",
    "StartChild",
    "Starter",
    "StoppingNormally",
    "Strategy",
    "SubscribeRegistry",
    "SupervisedActor",
    "Supervisor",
    "SupervisorEscalated",
    "SupervisorInitFailed",
    "SupervisorStarted",
    "TerminateChild",
    "Unregister",
    "UnregisterAddress",
    "Unregistered",
    "UnsubscribeRegistry",
    "WhichChildren",
    "affected_ids",
    "die_with_parent",
    "load_actor_class",
    "restarts_after_exit",
]
