"""Plan conversion routes: chains of bridges from a source form to a form a target accepts."""
from __future__ import annotations

from dataclasses import dataclass

from .bridges.base import BRIDGES, Bridge
from .errors import UnsupportedRouteError
from .targets.base import Target

FORMS = ("keras", "savedmodel", "tflite", "onnx", "torch")
MAX_HOPS = 3


@dataclass
class Route:
    form: str               # the source's form
    bridges: list[Bridge]
    target: Target

    def steps(self) -> list[str]:
        return [b.describe() for b in self.bridges] + [f"{self.target.name} ({self.target.name} converter)"]

    def describe(self) -> str:
        return " → ".join([self.form, *(b.dst for b in self.bridges), self.target.name])

    def unavailable_reason(self) -> str | None:
        for step in [*self.bridges, self.target]:
            reason = step.unavailable_reason()
            if reason:
                return f"{getattr(step, 'name', step)} {reason}"
        return None


def candidate_routes(form: str, target: Target) -> list[Route]:
    """Every bridge chain of at most MAX_HOPS from `form` to the target, shortest first (chains
    of one length are equal candidates; longer ones are the fallbacks when all shorter ones fail).
    A chain never returns to a form it has passed."""
    routes = [Route(form, [], target)] if form in target.accepts else []
    bridges = BRIDGES.values()
    frontier: list[list[Bridge]] = [[b] for b in bridges if b.src == form]
    for _ in range(MAX_HOPS):
        routes += [Route(form, chain, target) for chain in frontier if chain[-1].dst in target.accepts]
        frontier = [chain + [b] for chain in frontier for b in bridges
                    if b.src == chain[-1].dst and b.dst not in {c.src for c in chain} | {form}]
    return routes


def plan(form: str, target: Target) -> list[Route]:
    """Routes that can run here, shortest first; a clear refusal when none exists. convert()
    builds every route of the shortest length and falls back to the next length only when all
    of them fail, recording each try in the manifest (`route_candidates`)."""
    if form in target.refusals:
        raise UnsupportedRouteError(f"no sound route from {form} to {target.name}: {target.refusals[form]}")
    routes = candidate_routes(form, target)
    if not routes:
        raise UnsupportedRouteError(f"no route from {form} to {target.name}",
                                    f"{target.name} converts from {', '.join(target.accepts)}")
    runnable = [r for r in routes if r.unavailable_reason() is None]
    if not runnable:
        raise UnsupportedRouteError(f"the route {routes[0].describe()} is unavailable: "
                                    f"{routes[0].unavailable_reason()}")
    return runnable


def matrix(targets: list[Target]) -> dict[str, dict[str, str]]:
    """source form -> target -> route description or refusal reason (for `edgekit doctor`)."""
    table: dict[str, dict[str, str]] = {}
    for form in FORMS:
        row = table.setdefault(form, {})
        for target in targets:
            if form in target.refusals:
                row[target.name] = f"refused: {target.refusals[form]}"
                continue
            routes = candidate_routes(form, target)
            if not routes:
                row[target.name] = "no route"
                continue
            reason = routes[0].unavailable_reason()
            row[target.name] = routes[0].describe() + (f" (unavailable: {reason})" if reason else "")
    return table
