"""Last for each point (suites/conftest.py orders it so; under xdist, one for each part of
the point, context.POINT_PARTS, in that part's group): its guests shut down cleanly. A
kernel WARNING or crash while a guest powers off (module exit paths, state left by the
tests) is the point's product failing, FAILED here naming the splat; it is never pinned on
whichever test happened to run last."""

from __future__ import annotations

import pytest

from harness.guest.pool import GuestPool
from harness.run.pointrun import PointRun

pytestmark = pytest.mark.lifetime


def test_guests_shut_down_cleanly(point_run: PointRun, guest_pool: GuestPool) -> None:
    if not guest_pool.close_owned(point_run.point.id):
        pytest.skip(f"no guest of {point_run.point.id} ran in this process")
