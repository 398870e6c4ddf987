"""What every router shares: the app's ``WebContext`` (database, links, Temporal, clock),
kept on ``app.state`` by ``create_app`` and handed to routes by ``Depends``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from activities.db import SessionFactory
from activities.links import Links
from starter.web.temporal import Signaller


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebContext:
    sessions: SessionFactory
    links: Links
    signaller: Signaller
    #: the clock (tests set it)
    now: Callable[[], datetime] = field(default=utc_now)
    #: seconds a click waits for Temporal before the customer is redirected anyway
    signal_timeout: float = 5.0
    #: seconds ``/readyz`` waits for each check
    check_timeout: float = 3.0


def get_context(request: Request) -> WebContext:
    context: WebContext = request.app.state.context
    return context


Context = Annotated[WebContext, Depends(get_context)]
