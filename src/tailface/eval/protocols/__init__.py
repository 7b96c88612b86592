"""Evaluation protocols as a registry (see :mod:`tailface.eval.protocols.registry`).

One file per protocol; the imports below are the registrations (their order is the order of the
summary tables)."""

from tailface.eval.protocols.registry import (EvalOptions, EvalSet, Features, Protocol, get_eval_set, get_protocol,
                                              list_protocols, parse_protocols, protocols_in, register_eval_set,
                                              register_protocol, register_protocol_family)
from tailface.eval.protocols import sets  # noqa: F401  (the evaluation sets)
from tailface.eval.protocols import synthetic, blufr, lfw_pairs, megaface_proxy, heldout  # noqa: F401  (protocols)
from tailface.eval.protocols import verification_bin  # noqa: F401  (family: bin:PATH / PATH.bin)
from tailface.eval.protocols import ijb  # noqa: F401  (family: ijbb:PATH / ijbc:PATH)
from tailface.eval.protocols import verification_suite  # noqa: F401  (family: verification:DIR)

__all__ = ["EvalOptions", "EvalSet", "Features", "Protocol", "get_eval_set", "get_protocol", "list_protocols",
           "parse_protocols", "protocols_in", "register_eval_set", "register_protocol", "register_protocol_family"]
