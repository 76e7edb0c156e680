"""The optional features a storage declares: what it can do beyond huey's method list.

A storage class states its features in one class attribute, ``features``, a frozenset of :class:`Feature`
members (or their string values). The hub, the system checks and the admin read that declaration and nothing
else: they never look at which methods a class overrides or which parameters its methods take. A storage that
declares nothing — one written for huey — gets the at-most-once defaults of the contract and works.

The declaration is checked when the class is defined (:func:`declared_features`, called by
``BaseStorage.__init_subclass__``): an unknown name is refused, and so is a feature whose methods the class does
not implement itself (it would inherit the contract's default) or whose methods lack a parameter the hub passes
with it. Every class is checked against the features it has, declared or inherited. A building block of a
storage (a mixin such as the file storage's parts) declares none and so passes; the class that brings the
parts together declares the features and is checked with all its methods in place.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Mapping
from typing import Final

__all__ = ["FEATURE_REQUIREMENTS", "Feature", "declared_features"]


class Feature(enum.StrEnum):
    """One optional ability of a storage. The value is the name a storage may also declare it by."""

    RELIABLE = "reliable"
    """At-least-once delivery: reservations under a lease with fencing tokens, reclaimed when they expire."""

    DEAD_LETTERS = "dead_letters"
    """Messages given up on are kept, listed, requeued and purged (otherwise they are logged and dropped)."""

    COUNTERS = "counters"
    """Atomic counters, apart from the key/value data (rate limits, chords)."""

    KEY_LISTING = "key_listing"
    """The keys of stored values can be listed by prefix (the admin's held unique keys, revocation markers)."""

    WAIT_FOR_MESSAGES = "wait_for_messages"
    """An idle worker can wait for a message to arrive instead of polling (for storages that do not block)."""

    PEEK_ON_RESERVE = "peek_on_reserve"
    """A claim also reads the values of the keys it is given (``peek=``), saving the hub a read per task."""

    REAP_BY_PROGRESS = "reap_by_progress"
    """The reaper caps a reservation whose worker vanished mid-task by ``max_reclaims`` rather than
    ``max_attempts``."""

    PROCESS_LOCAL = "process_local"
    """The data lives inside one process: another process (``run_tasks``) cannot see it. The one feature that
    states a limit, so that a storage which declares nothing is taken to be shared, as huey's are."""


FEATURE_REQUIREMENTS: Final[Mapping[Feature, Mapping[str, tuple[str, ...]]]] = {
    Feature.RELIABLE: {
        "reserve": (),
        "ack": (),
        "renew": (),
        "release": (),
        "requeue_expired": (),
        "in_flight_items": (),
    },
    Feature.DEAD_LETTERS: {
        "add_dead_letter": (),
        "dead_letters": (),
        "requeue_dead_letter": (),
        "purge_dead_letters": (),
    },
    Feature.COUNTERS: {"incr": (), "delete_counter": (), "flush_counters": ()},
    Feature.KEY_LISTING: {"data_keys": ()},
    Feature.WAIT_FOR_MESSAGES: {"wait_for_messages": ()},
    Feature.PEEK_ON_RESERVE: {"reserve": ("peek",), "ack_and_reserve": ("peek",)},
    Feature.REAP_BY_PROGRESS: {"requeue_expired": ("max_reclaims", "progress_span")},
    Feature.PROCESS_LOCAL: {},
}
"""Each feature's methods, each with the parameters it must take beyond the contract's: a storage that declares
the feature implements every one of them itself."""


def declared_features(storage_class: type, contract: type) -> frozenset[Feature]:
    """The features ``storage_class`` declares (or inherits), checked against its methods; :class:`TypeError`
    naming the class, the feature and what is wrong when the declaration does not hold.

    ``contract`` is the class whose methods are the defaults (``BaseStorage``): a method the storage class
    shares with it is not implemented.
    """
    name = storage_class.__name__
    declared: object = getattr(storage_class, "features", frozenset())
    if isinstance(declared, (str, bytes)) or not isinstance(declared, (set, frozenset, tuple, list)):
        raise TypeError(f"{name}.features must be a frozenset of feature names, got {declared!r}")
    features = []
    for item in declared:
        try:
            features.append(Feature(item))
        except ValueError:
            known = ", ".join(feature.value for feature in Feature)
            raise TypeError(f"{name}.features: unknown feature {item!r} (known: {known})") from None
    for feature in features:
        for method_name, parameters in FEATURE_REQUIREMENTS[feature].items():
            method = getattr(storage_class, method_name)
            if method is getattr(contract, method_name):
                raise TypeError(
                    f"{name} declares the feature {feature.value!r} but does not implement {method_name}() "
                    f"(it inherits {contract.__name__}'s default)"
                )
            missing = [p for p in parameters if p not in inspect.signature(method).parameters]
            if missing:
                raise TypeError(
                    f"{name} declares the feature {feature.value!r} but its {method_name}() takes no "
                    f"{', '.join(missing)} parameter; declare {name}.features without it"
                )
    return frozenset(features)
