"""Routers are included in traffic order (app/main.py); that is only safe while no route of
one router can match a path of another router's route."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute

from app.main import create_app


def _api_routes() -> list[tuple[int, APIRoute]]:
    """(inclusion position, route) for every operation."""
    app = create_app()
    routes: list[tuple[int, APIRoute]] = []
    for position, included in enumerate(app.router.routes):
        router = getattr(included, "original_router", None)  # an include_router() node
        members = router.routes if router is not None else [included]
        routes.extend((position, route) for route in members if isinstance(route, APIRoute))
    return routes


def test_no_route_of_one_router_shadows_another_routers_path() -> None:
    routes = _api_routes()
    assert len(routes) > 100
    clashes = []
    for position, route in routes:
        concrete = re.sub(r"\{[^}]+\}", "p", route.path)
        for other_position, other in routes:
            if other_position == position or not set(other.methods or ()) & set(
                route.methods or ()
            ):
                continue
            if other.path_regex.match(concrete):
                clashes.append((other.path, route.path, other_position > position))
    # The one overlap: the fixed path's router is included first, so it wins.
    assert clashes == [("/v1/contacts/{contact_id}", "/v1/contacts/imports", True)]
